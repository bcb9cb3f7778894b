//! The RDB data a load reads after its check: a file (given, or a spooled stream), or
//! data that can be read again from its start (a backup's proven copy, decompressed
//! anew). Reading a backup again spares writing its decompressed data to disk during the
//! check and the disk space it takes; the check and the load each decompress it once.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::io::SyncIoBridge;

use super::check::from_rdb;
use super::rdb::RdbReader;
use crate::engine::{Error, Reread};

/// The data is read through a buffer of this size.
const READ_BUFFER: usize = 1 << 20;

/// Where a load finds its data again (see the module's documentation).
#[derive(Clone)]
pub(super) enum Source {
    /// An RDB file.
    File(PathBuf),
    /// Data read again from its start; a check's scratch files go to `scratch`.
    Again { data: Arc<dyn Reread>, scratch: PathBuf },
}

impl Source {
    /// Where a check's scratch files go: beside the file, or in the spool directory.
    pub(super) fn scratch_dir(&self) -> &Path {
        match self {
            Source::File(path) => path.parent().unwrap_or(Path::new(".")),
            Source::Again { scratch, .. } => scratch,
        }
    }

    /// A reader of the data from its first byte, with payloads of at most `max_payload`.
    /// Blocks: for a blocking thread of the runtime (data read again is decompressed on
    /// it, as the reader asks).
    pub(super) fn open(&self, max_payload: usize) -> Result<RdbReader<Box<dyn Read + Send>>, Error> {
        let data: Box<dyn Read + Send> = match self {
            Source::File(path) => {
                let file = File::open(path).map_err(|error| {
                    Error::Unsupported(format!("cannot open the rdb file {}: {error}", path.display()))
                })?;
                Box::new(BufReader::with_capacity(READ_BUFFER, file))
            }
            Source::Again { data, .. } => {
                let runtime = tokio::runtime::Handle::current();
                let data = runtime.block_on(data.reopen())?;
                Box::new(BufReader::with_capacity(READ_BUFFER, SyncIoBridge::new_with_handle(data, runtime)))
            }
        };
        Ok(RdbReader::new(data).map_err(from_rdb)?.with_max_payload(max_payload))
    }
}

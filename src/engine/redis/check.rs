//! The check that stands before every load: a whole read of the RDB data without
//! loading anything ([`walk`]), so that data that cannot be loaded whole never touches a
//! target. It counts keys and functions, notes what only some servers can hold, and fails
//! on damage (the CRC64 included) or on what no load could carry. A stream is read by the
//! check as it arrives, and written to a spool file at once unless it can be read again
//! (`source.rs`), in one pass ([`spool_checked`], [`checked`]); keys too big for one
//! payload are decoded in a second read of the data, as the load will. Data
//! from elsewhere is also searched for a key held twice (`duplicates.rs`), and has its
//! compact blobs checked as Redis's loader checks them ([`Origin`]).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::duplicates::KeyIndex;
use super::plan::Survey;
use super::rdb::{self, Item, KeyHeader, RdbReader, value_type};
use super::source::Source;
use crate::engine::{CheckedFile, DataStream, Error, ProgressSink};
use crate::pipeline::unpack::SpoolFile;

/// Keys already expired in the file, remembered for deleting after a replication load,
/// at most; past that, the target's own expiry cycle removes them.
const MAX_EXPIRED: usize = 65_536;
/// A stream is spooled in chunks of this size, each handed to the check too, with at
/// most this many waiting for it.
pub(super) const TEE_CHUNK: usize = 1 << 20;
pub(super) const TEE_QUEUE: usize = 4;

/// Where the data comes from, which decides how closely a check reads it. Redis's loader
/// stops the whole server (a replica included) on damage that only the bytes Redis
/// wrote are known to be free of: a key held twice (`duplicates.rs`), or a compact blob
/// that does not hold together ([`RdbReader::checking_blobs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// Data from elsewhere: searched for keys held twice, and every compact blob read
    /// and checked.
    Elsewhere,
    /// Data a Redis server wrote, or checked so before: a backup from the catalog
    /// (taken from a server, or checked when it was imported), or data checked again.
    Trusted,
}

impl Origin {
    /// Where a stream's data comes from: a backup from the catalog is trusted.
    pub(super) fn of(stream: &DataStream<'_>) -> Origin {
        if stream.from_catalog { Origin::Trusted } else { Origin::Elsewhere }
    }
}

/// Checks the RDB file at `path` whole, as a load does before it touches a target, as
/// data from elsewhere: the file is not known to come from a server.
pub(super) async fn check_file(path: &Path, max_payload: usize) -> Result<CheckedFile, Error> {
    let survey = survey(Source::File(path.to_owned()), max_payload, Origin::Elsewhere).await?;
    Ok(CheckedFile {
        format: "rdb",
        format_version: survey.version.to_string(),
        server_version: String::new(),
        items: survey.keys,
    })
}

// Reads the whole data once without loading anything (see [`walk`]), as closely as its
// `origin` asks (a search's runs go to the source's scratch directory); then the keys
// too big for one payload, if any, decoded in a second read.
pub(super) async fn survey(source: Source, max_payload: usize, origin: Origin) -> Result<Survey, Error> {
    let surveyed = tokio::task::spawn_blocking(move || {
        let (survey, twice) = walk_searching(source.open(max_payload)?, origin, source.scratch_dir())?;
        if let Some(number) = twice {
            return Err(held_twice(&source, max_payload, number));
        }
        decode_big_keys(&source, max_payload, &survey)?;
        Ok(survey)
    })
    .await;
    surveyed.map_err(|join_error| Error::Unsupported(format!("the rdb check stopped: {join_error}")))?
}

// Writes `stream` to a spool file in `stream.spool_dir` while the check reads the same
// bytes (see [`checked`]), so that the data is read once to be both spooled and checked.
pub(super) async fn spool_checked(
    stream: DataStream<'_>,
    max_payload: usize,
    progress: ProgressSink<'_>,
) -> Result<(SpoolFile, Survey), Error> {
    let dir = stream.spool_dir;
    let mut spool = SpoolFile::create(dir).await.map_err(|error| spool_failed(dir, error))?;
    let source = Source::File(spool.path().to_owned());
    let survey = tee_checked(stream, Some(&mut spool), source, max_payload, progress).await?;
    Ok((spool, survey))
}

// Checks `stream` on a blocking thread as it is read (a bounded queue of chunks between
// them); then the keys too big for one payload, if any, are decoded from `source`, the
// same data read again, which the load reads too. `progress` gets the bytes read. A
// check that fails stops the reading at once.
pub(super) async fn checked(
    stream: DataStream<'_>,
    source: Source,
    max_payload: usize,
    progress: ProgressSink<'_>,
) -> Result<Survey, Error> {
    tee_checked(stream, None, source, max_payload, progress).await
}

fn spool_failed(dir: &Path, error: std::io::Error) -> Error {
    Error::Unsupported(format!("cannot spool the rdb in {}: {error}", dir.display()))
}

// [`checked`], with every chunk also written to `spool` (which `source` then names).
async fn tee_checked(
    stream: DataStream<'_>,
    mut spool: Option<&mut SpoolFile>,
    source: Source,
    max_payload: usize,
    progress: ProgressSink<'_>,
) -> Result<Survey, Error> {
    let dir = stream.spool_dir;
    let (chunks, received) = mpsc::channel::<Bytes>(TEE_QUEUE);
    let origin = Origin::of(&stream);
    let index_dir = dir.to_owned();
    let mut check = Some(tokio::task::spawn_blocking(move || {
        let reader = RdbReader::new(Chunks::new(received)).map_err(from_rdb)?;
        walk_searching(reader.with_max_payload(max_payload), origin, &index_dir)
    }));
    let mut checked = None;
    let mut read_so_far = 0;
    loop {
        let mut chunk = Vec::with_capacity(TEE_CHUNK);
        let read = (&mut *stream.body)
            .take(TEE_CHUNK as u64)
            .read_to_end(&mut chunk)
            .await
            .map_err(|error| Error::Corrupt(format!("cannot read the data: {error}")))?;
        if read == 0 {
            break;
        }
        if let Some(spool) = &mut spool {
            spool.file().write_all(&chunk).await.map_err(|error| spool_failed(dir, error))?;
        }
        read_so_far += read as u64;
        progress(read_so_far, 0, 0);
        if let Some(running) = check.take() {
            if chunks.send(Bytes::from(chunk)).await.is_ok() {
                check = Some(running);
            } else {
                // The check ended before the data did: a failure ends the load now.
                checked = Some(finished(running).await?);
            }
        }
    }
    drop(chunks);
    if let Some(spool) = spool {
        spool.file().flush().await.map_err(|error| spool_failed(dir, error))?;
    }
    let (survey, twice) = match (checked, check) {
        (Some(checked), _) => checked,
        (None, Some(running)) => finished(running).await?,
        (None, None) => return Err(Error::Unsupported("the rdb check was lost".to_owned())),
    };
    if let Some(number) = twice {
        let error = tokio::task::spawn_blocking(move || held_twice(&source, max_payload, number)).await;
        return Err(error.unwrap_or_else(|join_error| {
            Error::Unsupported(format!("the rdb check stopped: {join_error}"))
        }));
    }
    decoded_big_keys(source, max_payload, survey).await
}

/// Decodes the keys `survey` found too big for one payload from `source` (a second
/// read, when there are any), as the load will; gives `survey` back.
pub(super) async fn decoded_big_keys(
    source: Source,
    max_payload: usize,
    survey: Survey,
) -> Result<Survey, Error> {
    let decoded = tokio::task::spawn_blocking(move || {
        decode_big_keys(&source, max_payload, &survey)?;
        Ok(survey)
    });
    finished(decoded).await
}

/// The outcome of the check's thread.
async fn finished<T>(check: tokio::task::JoinHandle<Result<T, Error>>) -> Result<T, Error> {
    check.await.map_err(|join_error| Error::Unsupported(format!("the rdb check stopped: {join_error}")))?
}

/// The check's side of a spooled stream: the chunks as one `Read`, ending when the
/// spooling side is gone (early, only when it failed: the check then fails truncated).
pub(super) struct Chunks {
    received: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Chunks {
    pub(super) fn new(received: mpsc::Receiver<Bytes>) -> Chunks {
        Chunks { received, current: Bytes::new() }
    }
}

impl Read for Chunks {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.received.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let count = buffer.len().min(self.current.len());
        buffer[..count].copy_from_slice(&self.current[..count]);
        self.current.advance(count);
        Ok(count)
    }
}

/// What a walk tells of its progress: see [`walk`].
pub(super) type Passed<'a> = dyn FnMut(Option<&Item>, u64) -> Result<(), Error> + 'a;

// Reads the whole file once without loading anything: counts keys and functions, notes
// what only some servers can hold, and fails on anything the load would fail on (damage,
// module types). With a payload limit of 0 every value is decoded as the load will
// decode it.
//
// Values are walked, not kept; keys whose value is too big for one payload are noted
// (for a second read, [`decode_big_keys`]), so that nothing here holds more than a
// batch of elements whatever the sizes.
//
// `passed` is told of every item with the offset after it, then of the end (`None`)
// with the data's length, once its checksum matched; its error stops the walk.
pub(super) fn walk<R: Read>(reader: RdbReader<R>, passed: &mut Passed<'_>) -> Result<Survey, Error> {
    let mut reader = reader.walk_only();
    walk_on(&mut reader, passed)
}

/// [`walk`] with a reader the caller keeps (made [`RdbReader::walk_only`] by it).
#[inline]
pub(super) fn walk_on<R: Read>(reader: &mut RdbReader<R>, passed: &mut Passed<'_>) -> Result<Survey, Error> {
    let max_payload = reader.max_payload();
    let mut survey = Survey { version: reader.version(), ..Survey::default() };
    let mut big_keys = BTreeSet::new();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64);
    while let Some(item) = reader.next().map_err(from_rdb)? {
        if let Item::Walked { value_len, header } = &item {
            // The payload adds the type byte, the version and the checksum.
            if value_len.saturating_add(11) > max_payload as u64 {
                if let Some(module) = &header.module {
                    survey.module_too_big.get_or_insert_with(|| {
                        format!(
                            "the value of key '{}' (module type {module}) is too big for one RESTORE",
                            shown(&header.key)
                        )
                    });
                } else {
                    big_keys.insert(survey.keys);
                }
            }
        }
        passed(Some(&item), reader.offset())?;
        match &item {
            Item::Key { header: KeyHeader { module: Some(module), .. }, payload } => {
                let probe = survey.modules.entry(module.clone()).or_default();
                if probe.is_none() {
                    *probe = Some(payload.clone());
                }
            }
            Item::Walked { header: KeyHeader { module: Some(module), .. }, .. } => {
                survey.modules.entry(module.clone()).or_default();
            }
            Item::ModuleAux { module } => {
                survey.module_aux.insert(module.clone());
            }
            _ => {}
        }
        match item {
            Item::Key { header, .. } | Item::BigKey { header } | Item::Walked { header, .. } => {
                survey.keys += 1;
                if header.expire_at_ms.is_some_and(|at| at <= now_ms) && survey.expired.len() < MAX_EXPIRED {
                    survey.expired.push((header.db, header.key.clone()));
                }
                match header.value_type {
                    value_type::STREAM_LISTPACKS
                    | value_type::STREAM_LISTPACKS_2
                    | value_type::STREAM_LISTPACKS_3 => survey.streams = true,
                    // Redis 7.4's four types, and Valkey 9's type 22.
                    value_type::HASH_METADATA_PRE_GA..=value_type::HASH_LISTPACK_EX => {
                        survey.field_expiry = true
                    }
                    _ => {}
                }
            }
            Item::Function { .. } => survey.functions += 1,
            Item::SelectDb(db) => survey.max_db = survey.max_db.max(db),
            _ => {}
        }
    }
    passed(None, reader.offset())?;
    survey.big_keys = vec![big_keys];
    Ok(survey)
}

// Walks as [`walk`] does; data from elsewhere ([`Origin::Elsewhere`]) also has every
// compact blob checked, and is searched for a key held twice (the search's runs go to
// `dir`): gives the number of the second one (0 for the data's first key).
fn walk_searching<R: Read>(
    reader: RdbReader<R>,
    origin: Origin,
    dir: &Path,
) -> Result<(Survey, Option<u64>), Error> {
    let elsewhere = origin == Origin::Elsewhere;
    let reader = if elsewhere { reader.checking_blobs() } else { reader };
    let mut index = elsewhere.then(|| KeyIndex::new(dir));
    let survey = walk(reader, &mut |item, _| {
        if let (Some(index), Some(header)) = (&mut index, item.and_then(key_header)) {
            index.add(header.db, &header.key)?;
        }
        Ok(())
    })?;
    let twice = match index {
        Some(index) => index.finish()?,
        None => None,
    };
    Ok((survey, twice))
}

// The error for the data of `source` holding a key twice, the second being key
// `number`: named from a second read (a failure to read it only leaves the name out).
fn held_twice(source: &Source, max_payload: usize, number: u64) -> Error {
    let unnamed = || Error::Corrupt(format!("{} (key number {number})", HELD_TWICE));
    let Ok(reader) = source.open(max_payload) else { return unnamed() };
    let mut reader = reader.walk_only();
    let mut keys = 0;
    while let Ok(Some(item)) = reader.next() {
        let Some(header) = key_header(&item) else { continue };
        if keys == number {
            return Error::Corrupt(format!(
                "{HELD_TWICE}: key '{}' in database {}",
                shown(&header.key),
                header.db
            ));
        }
        keys += 1;
    }
    unnamed()
}

/// What is wrong with data that holds a key twice.
const HELD_TWICE: &str = "the rdb holds a key twice, which Redis refuses to load (its server stops)";

/// The key `item` is, if it is one.
fn key_header(item: &Item) -> Option<&KeyHeader> {
    match item {
        Item::Key { header, .. } | Item::BigKey { header } | Item::Walked { header, .. } => Some(header),
        _ => None,
    }
}

// Decodes the keys of `source` that `survey` found too big for one payload (nothing to
// do when there are none), as the load will, to check that they decode.
fn decode_big_keys(source: &Source, max_payload: usize, survey: &Survey) -> Result<(), Error> {
    let big_keys = survey.big_keys.last().cloned().unwrap_or_default();
    if big_keys.is_empty() {
        return Ok(());
    }
    let mut reader = source.open(max_payload)?.walk_only().with_decoded_keys(big_keys);
    while reader.next().map_err(from_rdb)?.is_some() {}
    Ok(())
}

pub(super) fn from_rdb(error: rdb::Error) -> Error {
    match error {
        rdb::Error::ModuleNotSupported { module } => Error::ModuleNotSupported(format!(
            "the data holds values of module '{module}', which the target cannot load without it"
        )),
        rdb::Error::ModuleValueTooBig { .. } => Error::ModuleNotSupported(error.to_string()),
        rdb::Error::Io(error) => Error::Unsupported(format!("cannot read the rdb data: {error}")),
        other => Error::Corrupt(other.to_string()),
    }
}

/// A key as messages show it: at most 64 bytes, lossily as text.
pub(super) fn shown(key: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&key[..key.len().min(64)])
}

//! Loading a checked stream by replication as it is read. A backup's stored bytes are
//! proven by their SHA-256 before the first of them is given to the engine: they are the
//! bytes of an RDB that was checked when the backup was made (its CRC64 as the server
//! sent it, or the whole check of an imported file). So the target can start loading
//! them as our replica at once, while they are spooled and walked, instead of after a
//! whole pass over the data.
//!
//! The walk stands between the data and the target: the transfer sends what the walk
//! writes as it passes the data (`rdb/expand.rs`: the same RDB with its LZF-compressed
//! strings stored plain, which the target loads with less work, and a checksum of its
//! own; its length is not known ahead, so the transfer is framed by an end mark). The
//! walk stops short of module data (the target may lack the module) and of a numbered
//! database past the target's `databases` setting: a replica that meets data it cannot
//! load stops the whole server. The end of the data goes only once the walk matched its
//! checksum and length. A stop cuts the transfer before its end: the replica's load
//! fails short of it and, with `repl-diskless-load swapdb`, it keeps its data. The load then starts over from the
//! spooled file the usual way (`restore.rs`: a whole check, the modules probed, the
//! databases asked for). A target that declines replication gets the data as `RESTORE`
//! commands, read again from its source when it can be (`source.rs`), else spooled.

use std::io::Read;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use super::check::{Chunks, TEE_CHUNK, TEE_QUEUE, from_rdb, walk_on};
use super::connection::{Connection, Reply};
use super::master::{self, Attempt, Body, Transfer};
use super::plan::Survey;
use super::rdb::{Item, KeyHeader, RdbReader};
use super::restore::Limits;
use super::source::Source;
use super::target::Target;
use crate::engine::journal::DatabaseJournal;
use crate::engine::{DataStream, Error, ProgressSink, Reread};
use crate::pipeline::unpack::SpoolFile;

/// Chunks of the rewritten data (about 1 MiB each) waiting for the transfer, at most.
const EXPANDED_QUEUE: usize = 4;

/// What a streamed load came to.
pub(super) enum Streamed {
    /// The target loaded the data: what the walk found in it (the keys already expired
    /// among them, which a replica keeps, are to be deleted), and a connection to it.
    Loaded { survey: Survey, connection: Connection },
    /// Load the data from `source` the usual way. `declined` says why the target
    /// declined replication (the usual way then does not ask again), and `survey` is the
    /// whole walk of the data when it went to the end; both are `None` when the walk
    /// stopped at data that needs the usual checks first. `spool`, when the data was
    /// spooled, is the file `source` names.
    Fallback { spool: Option<SpoolFile>, source: Source, declined: Option<String>, survey: Option<Survey> },
}

/// Loads `stream`, `size` bytes of checked RDB data, into the target at `target` as our
/// replica while it is spooled and walked (see the module's documentation).
pub(super) async fn load(
    target: &Target,
    limits: Limits,
    journal: Option<&DatabaseJournal>,
    stream: DataStream<'_>,
    size: u64,
    progress: ProgressSink<'_>,
) -> Result<Streamed, Error> {
    let dir = stream.spool_dir;
    let spool_failed = move |error: std::io::Error| {
        Error::Unsupported(format!("cannot spool the rdb in {}: {error}", dir.display()))
    };
    // One connection to the target for the whole load: it first says how many
    // databases the target has, which the walk needs before it starts.
    let mut control = Connection::open(target, limits.connect_timeout, limits.idle_timeout).await?;
    let databases = target_databases(&mut control).await?;
    // Data that can be read again is not kept: a fallback reads it again into a spool
    // file, which costs only the rare load that falls back.
    let reread = stream.reread.clone();
    let mut spool = match reread {
        Some(_) => None,
        None => Some(SpoolFile::create(dir).await.map_err(spool_failed)?),
    };
    let (chunks, received) = mpsc::channel::<Bytes>(TEE_QUEUE);
    let (expanded, expanded_chunks) = mpsc::channel::<(Bytes, u64)>(EXPANDED_QUEUE);
    let (verdict, verdict_seen) = watch::channel(Verdict::Pending);
    let (version_sender, version) = oneshot::channel();
    let max_payload = limits.max_payload;
    let walking = tokio::task::spawn_blocking(move || {
        let walk = GatedWalk { verdict: &verdict, version: version_sender, size, max_payload, databases };
        walk.run(Chunks::new(received), expanded)
    });

    let (produced, attempt) = {
        let producing = produce(stream.body, spool.as_mut(), chunks, spool_failed);
        let attempting = async {
            // The header's version decides whether the target may be sent the data.
            let Ok(rdb_version) = version.await else { return Ok(None) };
            let mut body = Expanded { chunks: expanded_chunks, position: 0, verdict: verdict_seen };
            let transfer = Transfer { body: &mut body, size: None, rdb_version };
            let report = |position: u64| progress(position, 0, 0);
            let attempt = master::load(&mut control, target, limits, journal, transfer, &report).await?;
            Ok::<_, Error>(Some((control, attempt)))
        };
        tokio::pin!(producing, attempting);
        // A transfer under way is never dropped: when the data fails, the walk stops it.
        let mut produced = None;
        let attempt = loop {
            tokio::select! {
                result = &mut producing, if produced.is_none() => produced = Some(result),
                attempt = &mut attempting => break attempt,
            }
        };
        let header_failed = matches!(attempt, Ok(None));
        let produced = match produced {
            Some(produced) => produced,
            // The header failed: the walk says how, without the rest of the data.
            None if header_failed => Ok(()),
            None => producing.await,
        };
        (produced, attempt)
    };
    // A failure to read the data is what counts, whatever it did to the transfer.
    produced?;
    let attempt = attempt?;
    let walked = walking.await.unwrap_or_else(|join_error| {
        Walked::Failed(Error::Unsupported(format!("the rdb check stopped: {join_error}")))
    });
    // Data that goes as commands (declined) is read again, and spooled only to go by
    // replication (which sends a file).
    let fallback = |declined: Option<String>, survey: Option<Survey>| async move {
        let (spool, source) = match (spool, reread) {
            (Some(spool), _) => {
                let source = Source::File(spool.path().to_owned());
                (Some(spool), source)
            }
            (None, Some(data)) if declined.is_some() => {
                (None, Source::Again { data, scratch: dir.to_owned() })
            }
            (None, Some(data)) => {
                let spool = respool(data.as_ref(), dir).await?;
                let source = Source::File(spool.path().to_owned());
                (Some(spool), source)
            }
            (None, None) => {
                return Err(Error::Unsupported(
                    "the data was neither spooled nor can be read again".to_owned(),
                ));
            }
        };
        Ok(Streamed::Fallback { spool, source, declined, survey })
    };
    match (attempt, walked) {
        (_, Walked::Failed(error)) => Err(error),
        (None, _) => Err(Error::Unsupported("the rdb check ended before the header".to_owned())),
        (Some((connection, Attempt::Loaded)), Walked::Whole(survey)) => {
            Ok(Streamed::Loaded { survey, connection })
        }
        (Some((_, Attempt::Declined(why))), Walked::Whole(survey)) => fallback(Some(why), Some(survey)).await,
        (Some((_, Attempt::Declined(why))), Walked::Stopped(_)) => fallback(Some(why), None).await,
        (Some((_, Attempt::Cut(_))), Walked::Stopped(why)) => {
            tracing::info!(redis = %target.label, %why, "the streamed replication stopped: checking the whole file first");
            fallback(None, None).await
        }
        (Some((_, Attempt::Cut(error))), Walked::Whole(_)) => Err(error),
        (Some((_, Attempt::Loaded)), Walked::Stopped(why)) => {
            Err(Error::Unsupported(format!("the target loaded data the check stopped at: {why}")))
        }
    }
}

/// What the walk made of the data, for the transfer that sends its rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The walk goes on.
    Pending,
    /// The data is whole, as long as its record says, and its checksum matched: the
    /// rewrite's end went out.
    Whole,
    /// The walk stopped or failed: nothing more goes.
    Stopped,
}

/// How the walk ended.
enum Walked {
    Whole(Survey),
    /// At data that needs the usual checks first: says what.
    Stopped(String),
    Failed(Error),
}

/// How many numbered databases the target at `control` has (its `databases` setting),
/// when it says.
async fn target_databases(control: &mut Connection) -> Result<Option<u64>, Error> {
    Ok(match control.command(&[b"CONFIG", b"GET", b"databases"]).await? {
        Reply::Array(Some(parts)) => match parts.as_slice() {
            [_, Reply::Bulk(Some(value))] => {
                std::str::from_utf8(value).ok().and_then(|value| value.parse().ok())
            }
            _ => None,
        },
        _ => None,
    })
}

/// The walk's side of a streamed load: what it reports, and what it knows of the data
/// and the target.
struct GatedWalk<'a> {
    /// Set once the walk ended.
    verdict: &'a watch::Sender<Verdict>,
    /// Gets the RDB version once the header is read.
    version: oneshot::Sender<u16>,
    /// The data's length, which the walk must find.
    size: u64,
    max_payload: usize,
    /// How many numbered databases the target has, when known.
    databases: Option<u64>,
}

impl GatedWalk<'_> {
    /// Walks the data as [`walk_on`] does, writing its rewrite to `expanded` (with the
    /// offset in the data each chunk reaches) as it passes it, stopping before any module
    /// data, and before a numbered database at or past `databases` (any but 0 when that
    /// is unknown). The rewrite's end goes only once the data is whole and `size` bytes
    /// long.
    fn run(self, chunks: impl Read, expanded: mpsc::Sender<(Bytes, u64)>) -> Walked {
        let GatedWalk { verdict, version, size, max_payload, databases } = self;
        let sink = Box::new(move |bytes: Vec<u8>, offset: u64| {
            expanded.blocking_send((Bytes::from(bytes), offset)).is_ok()
        });
        let mut reader = match RdbReader::new(chunks) {
            Ok(reader) => reader.with_max_payload(max_payload).walk_only().expanding(sink),
            Err(error) => {
                verdict.send_replace(Verdict::Stopped);
                return Walked::Failed(from_rdb(error));
            }
        };
        let _ = version.send(reader.version());
        let mut stop = None;
        let mut end = 0;
        let walked = walk_on(&mut reader, &mut |item, offset| {
            if let Some(why) =
                item.and_then(|item| module_data(item).or_else(|| past_databases(item, databases)))
            {
                stop = Some(why);
                return Err(Error::Unsupported("stopped before data that needs the usual checks".to_owned()));
            }
            end = offset;
            Ok(())
        });
        let walked = match (walked, stop) {
            (_, Some(why)) => Walked::Stopped(why),
            (Ok(survey), None) if end == size => match reader.release_expanded_end() {
                Ok(()) => {
                    tracing::debug!(strings = reader.expanded_strings(), "lzf strings sent plain");
                    verdict.send_replace(Verdict::Whole);
                    return Walked::Whole(survey);
                }
                Err(error) => Walked::Failed(from_rdb(error)),
            },
            (Ok(_), None) => Walked::Failed(Error::Corrupt(format!(
                "the rdb is {end} bytes long, its backup record says {size}"
            ))),
            (Err(error), None) => Walked::Failed(error),
        };
        verdict.send_replace(Verdict::Stopped);
        walked
    }
}

/// What module data `item` is, if it is any.
fn module_data(item: &Item) -> Option<String> {
    match item {
        Item::Key { header: KeyHeader { module: Some(module), .. }, .. }
        | Item::Walked { header: KeyHeader { module: Some(module), .. }, .. } => {
            Some(format!("a value of module type '{module}'"))
        }
        Item::ModuleAux { module } => Some(format!("module data of '{module}' not tied to a key")),
        _ => None,
    }
}

/// What a numbered database the target may not have `item` selects, if it does.
fn past_databases(item: &Item, databases: Option<u64>) -> Option<String> {
    match *item {
        Item::SelectDb(db) if db > 0 && databases.is_none_or(|databases| db >= databases) => {
            Some(format!("keys in database {db}, which the target may not have"))
        }
        _ => None,
    }
}

/// Reads the data again from its start into a new spool file in `dir`.
async fn respool(reread: &dyn Reread, dir: &Path) -> Result<SpoolFile, Error> {
    let spool_failed = |error: std::io::Error| {
        Error::Unsupported(format!("cannot spool the rdb in {}: {error}", dir.display()))
    };
    let mut spool = SpoolFile::create(dir).await.map_err(spool_failed)?;
    let mut data = reread.reopen().await?;
    tokio::io::copy(&mut data, spool.file())
        .await
        .map_err(|error| Error::Unsupported(format!("cannot read the data again: {error}")))?;
    spool.file().flush().await.map_err(spool_failed)?;
    Ok(spool)
}

/// Reads `body` to its end into `spool`, if any, handing every chunk to the walk too
/// (once the walk stopped, the rest is only spooled).
async fn produce(
    body: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
    mut spool: Option<&mut SpoolFile>,
    chunks: mpsc::Sender<Bytes>,
    spool_failed: impl Fn(std::io::Error) -> Error,
) -> Result<(), Error> {
    let mut walk = Some(chunks);
    loop {
        let mut chunk = Vec::with_capacity(TEE_CHUNK);
        let read = (&mut *body)
            .take(TEE_CHUNK as u64)
            .read_to_end(&mut chunk)
            .await
            .map_err(|error| Error::Corrupt(format!("cannot read the data: {error}")))?;
        if read == 0 {
            return match spool {
                Some(spool) => spool.file().flush().await.map_err(&spool_failed),
                None => Ok(()),
            };
        }
        if let Some(spool) = &mut spool {
            spool.file().write_all(&chunk).await.map_err(&spool_failed)?;
        }
        if let Some(sender) = &walk
            && sender.send(Bytes::from(chunk)).await.is_err()
        {
            walk = None;
        }
    }
}

/// The walk's rewrite of the data as a transfer's body: it ends when the walk's does,
/// and only a walk that found the data whole ends it without an error.
struct Expanded {
    chunks: mpsc::Receiver<(Bytes, u64)>,
    /// How far into the data the chunks given so far reach.
    position: u64,
    verdict: watch::Receiver<Verdict>,
}

#[async_trait]
impl Body for Expanded {
    async fn chunk(&mut self) -> Result<Bytes, Error> {
        match self.chunks.recv().await {
            Some((chunk, position)) => {
                self.position = position;
                Ok(chunk)
            }
            // The walk sets its verdict before it lets go of the channel.
            None if *self.verdict.borrow() == Verdict::Whole => Ok(Bytes::new()),
            None => Err(stopped()),
        }
    }

    fn position(&self) -> u64 {
        self.position
    }
}

fn stopped() -> Error {
    Error::Unsupported("the rdb check stopped the transfer".to_owned())
}

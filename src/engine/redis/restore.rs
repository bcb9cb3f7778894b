//! Replacing a server's data with a verified RDB file: a full dry-run read first (so a
//! file that cannot be loaded whole never touches the target), then `FLUSHALL` and every
//! key: `RESTORE` for ordinary keys, element batches (`RPUSH`, `SADD`, `ZADD`, `HSET`,
//! `APPEND`) for keys too big for one payload, `FUNCTION RESTORE` for function libraries.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::connection::{Connection, Reply};
use super::info::ServerFacts;
use super::loader::{DEFAULT_WINDOW, Loader};
use super::master::{self, Attempt};
use super::rdb::{self, Elements, Item, KeyHeader, RdbReader};
use super::target::Target;
use crate::domain::reason;
use crate::engine::{Error, Loaded, PhaseSink, ProgressSink, Warning};

/// Batches read ahead of the loader, at most.
const READ_AHEAD: usize = 16;
/// Items are handed to the loader in batches of this many items or bytes, whichever
/// comes first, so that threads meet once a batch rather than once a key.
const BATCH_ITEMS: usize = 256;
const BATCH_BYTES: usize = 1 << 20;
/// Bytes of items read ahead of the loader, at most (one bigger item may pass alone), so
/// that memory stays bounded whatever the values' sizes.
const BYTES_AHEAD: usize = 32 << 20;
/// The file is read through this buffer.
const FILE_BUFFER: usize = 1 << 20;

/// The engine's settings a load uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long connecting may take.
    pub(crate) connect_timeout: Duration,
    /// How long the target may stay silent.
    pub(crate) idle_timeout: Duration,
    /// The largest value sent as one RESTORE.
    pub(crate) max_payload: usize,
}

/// Keys already expired in the file, remembered for deleting after a replication load,
/// at most; past that, the target's own expiry cycle removes them.
const MAX_EXPIRED: usize = 65_536;

/// What the dry run found.
struct Survey {
    keys: u64,
    functions: u64,
    /// The file's RDB version.
    version: u16,
    /// Keys whose expiry time had passed when the file was read: `(db, key)`.
    expired: Vec<(u64, Vec<u8>)>,
}

/// Loads the RDB files at `paths`, in order, into the server at `target`, replacing its
/// data: every file is read whole first. A single file goes by replication when `method`
/// allows and the target takes it; otherwise the server is flushed once and every key
/// sent as commands.
pub(crate) async fn load(
    target: &Target,
    limits: Limits,
    method: LoadMethod,
    paths: &[PathBuf],
    phase: PhaseSink<'_>,
    progress: ProgressSink<'_>,
) -> Result<Loaded, Error> {
    phase("verifying");
    let started = std::time::Instant::now();
    let mut keys = 0;
    let mut functions = 0;
    let mut newest = 0;
    let mut expired = Vec::new();
    for path in paths {
        let survey = survey(path.clone(), limits.max_payload).await?;
        keys += survey.keys;
        functions += survey.functions;
        newest = newest.max(survey.version);
        expired.extend(survey.expired);
    }
    progress(0, 0, keys);
    let verified = started.elapsed();

    phase("connecting");
    let mut connection = Connection::open(target, limits.connect_timeout, limits.idle_timeout).await?;
    check_target_reads(&mut connection, newest).await?;
    let mut warnings = Vec::new();
    if let ([path], LoadMethod::Auto | LoadMethod::Replication) = (paths, method) {
        phase("replicating");
        let report = |sent: u64| progress(sent, 0, keys);
        match master::load(&mut connection, target, limits, path, newest, &report).await? {
            Attempt::Loaded => {
                let bytes = tokio::fs::metadata(path).await.map(|meta| meta.len()).unwrap_or(0);
                delete_expired(connection, expired).await?;
                progress(bytes, keys, keys);
                log_done("replication", keys, verified, started.elapsed());
                return Ok(Loaded { items: keys, functions, method: "replication", warnings });
            }
            Attempt::Declined(why) if method == LoadMethod::Replication => {
                return Err(Error::Unsupported(format!("cannot load by replication: {why}")));
            }
            Attempt::Declined(why) => {
                tracing::info!(redis = connection.label(), %why, "loading with RESTORE commands instead of replication");
                warnings.push(Warning {
                    reason: reason::REPLICATION_DECLINED,
                    message: format!("loaded with RESTORE commands, not by replication: {why}"),
                });
            }
        }
    }
    let mut loader = Loader::new(connection, DEFAULT_WINDOW);
    phase("loading");
    loader.flush_all().await?;
    if functions > 0 {
        loader.command(0, &[b"FUNCTION", b"FLUSH"], "FUNCTION FLUSH".to_owned()).await?;
    }
    let mut bytes_before = 0;
    for path in paths {
        let report = |offset: u64, restored: u64| progress(bytes_before + offset, restored, keys);
        bytes_before += load_file(&mut loader, path, limits.max_payload, &report).await?;
    }
    let items = loader.finish().await?;
    progress(bytes_before, items, keys);
    log_done("restore", items, verified, started.elapsed());
    Ok(Loaded { items, functions, method: "restore", warnings })
}

fn log_done(method: &str, keys: u64, verified: Duration, total: Duration) {
    tracing::info!(
        method,
        keys,
        verify_s = verified.as_secs_f64(),
        load_s = (total - verified).as_secs_f64(),
        "redis load done"
    );
}

/// How a Redis target is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMethod {
    /// By replication where it applies (one file, a target that takes it), else `RESTORE`.
    #[default]
    Auto,
    /// Always `RESTORE` commands.
    Restore,
    /// Only by replication: fails when the target cannot take it.
    Replication,
}

impl LoadMethod {
    /// Reads `auto`, `restore` or `replication`.
    pub fn parse(text: &str) -> Option<LoadMethod> {
        match text {
            "auto" => Some(LoadMethod::Auto),
            "restore" => Some(LoadMethod::Restore),
            "replication" => Some(LoadMethod::Replication),
            _ => None,
        }
    }
}

// Deletes keys that were loaded although already expired (a replica keeps them).
async fn delete_expired(connection: Connection, expired: Vec<(u64, Vec<u8>)>) -> Result<(), Error> {
    if expired.is_empty() {
        return Ok(());
    }
    let mut loader = Loader::new(connection, DEFAULT_WINDOW);
    for (db, key) in expired {
        loader.command(db, &[b"DEL", &key], describe("DEL", &key)).await?;
    }
    loader.finish().await.map(drop)
}

// Sends one file's keys through the loader; returns the bytes read.
async fn load_file(
    loader: &mut Loader,
    path: &Path,
    max_payload: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<u64, Error> {
    let (sender, mut items) = mpsc::channel(READ_AHEAD);
    let budget = Arc::new(Semaphore::new(BYTES_AHEAD));
    let reading = tokio::task::spawn_blocking({
        let path = path.to_owned();
        let budget = budget.clone();
        let runtime = tokio::runtime::Handle::current();
        move || read_items(&path, max_payload, &sender, &runtime, &budget)
    });
    let mut big_key: Option<KeyHeader> = None;
    let mut offset = 0;
    // Each batch carries its share of the read-ahead budget, given back once it is sent.
    while let Some((batch, _budget_share)) = items.recv().await {
        for (item, read_to) in batch {
            offset = read_to;
            send_item(loader, item, &mut big_key).await?;
        }
        progress(offset, loader.restored());
    }
    // The reader ends its channel when it is done or failed; its result says which.
    match reading.await {
        Ok(result) => result?,
        Err(join_error) => return Err(Error::Unsupported(format!("the rdb reader stopped: {join_error}"))),
    }
    Ok(offset)
}

// Sends one item of the file through the loader; `big_key` is the big key whose
// elements are being sent, if any.
async fn send_item(loader: &mut Loader, item: Item, big_key: &mut Option<KeyHeader>) -> Result<(), Error> {
    match item {
        Item::Key { header, payload } => {
            loader.restore(header.db, &header.key, header.expire_at_ms, payload.as_bytes()).await?;
        }
        Item::Function { payload, .. } => {
            let args: [&[u8]; 4] = [b"FUNCTION", b"RESTORE", payload.as_bytes(), b"REPLACE"];
            loader.command(0, &args, "FUNCTION RESTORE".to_owned()).await?;
        }
        Item::BigKey { header } => {
            loader.command(header.db, &[b"DEL", &header.key], describe("DEL", &header.key)).await?;
            *big_key = Some(header);
        }
        Item::Elements(elements) => {
            let header =
                big_key.as_ref().ok_or_else(|| Error::Corrupt("elements outside a key".to_owned()))?;
            send_elements(loader, header, elements).await?;
        }
        Item::BigKeyEnd => {
            let header =
                big_key.take().ok_or_else(|| Error::Corrupt("a key end outside a key".to_owned()))?;
            if let Some(expire_at_ms) = header.expire_at_ms {
                let at = expire_at_ms.to_string();
                let args: [&[u8]; 3] = [b"PEXPIREAT", &header.key, at.as_bytes()];
                loader.command(header.db, &args, describe("PEXPIREAT", &header.key)).await?;
            }
            loader.count_key();
        }
        _ => {}
    }
    Ok(())
}

// Reads the whole file once without loading anything: counts keys and functions, and
// fails on anything the load would fail on (damage, module types, oversized values of
// types that cannot be sent in batches).
async fn survey(path: PathBuf, max_payload: usize) -> Result<Survey, Error> {
    let surveyed = tokio::task::spawn_blocking(move || {
        let mut reader = open(&path, max_payload)?;
        let mut survey = Survey { keys: 0, functions: 0, version: reader.version(), expired: Vec::new() };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as i64);
        while let Some(item) = reader.next().map_err(from_rdb)? {
            match item {
                Item::Key { header, .. } | Item::BigKey { header } => {
                    survey.keys += 1;
                    if header.expire_at_ms.is_some_and(|at| at <= now_ms)
                        && survey.expired.len() < MAX_EXPIRED
                    {
                        survey.expired.push((header.db, header.key));
                    }
                }
                Item::Function { .. } => survey.functions += 1,
                Item::SkippedKey { header, value_len } => {
                    return Err(Error::Unsupported(format!(
                        "key '{}' holds {value_len} bytes of a type that cannot be loaded in parts",
                        String::from_utf8_lossy(&header.key[..header.key.len().min(64)])
                    )));
                }
                _ => {}
            }
        }
        Ok(survey)
    })
    .await;
    surveyed.map_err(|join_error| Error::Unsupported(format!("the rdb check stopped: {join_error}")))?
}

/// Items with the file offset after each, and their share of the read-ahead budget.
type ReadBatch = (Vec<(Item, u64)>, OwnedSemaphorePermit);

// Refuses, before anything is flushed, a Redis target older than the data's format: it
// would refuse the first RESTORE after its data was already gone. Servers that are not
// Redis (Valkey and others) are left to answer for themselves.
async fn check_target_reads(connection: &mut Connection, rdb_version: u16) -> Result<(), Error> {
    let info = match connection.command(&[b"INFO", b"server"]).await? {
        Reply::Bulk(Some(text)) => ServerFacts::parse(&String::from_utf8_lossy(&text)),
        _ => return Ok(()), // a server that hides INFO answers RESTORE for itself
    };
    if info.flavour.is_some() {
        return Ok(());
    }
    let (Some(required), Some(version)) = (oldest_redis_reading(rdb_version), info.version) else {
        return Ok(());
    };
    match redis_release(&version) {
        Some(release) if release < required => Err(Error::TargetTooOld(format!(
            "redis at {} is {version}; the data is rdb version {rdb_version}, which needs redis {}.{} or newer",
            connection.label(),
            required.0,
            required.1
        ))),
        _ => Ok(()),
    }
}

/// The oldest Redis release that reads RDB `version`; `None` when any release does or
/// the version is not Redis's (Valkey's 80).
pub(super) fn oldest_redis_reading(version: u16) -> Option<(u32, u32)> {
    match version {
        9 => Some((6, 0)),
        10 => Some((7, 0)),
        11 => Some((7, 2)),
        12 => Some((7, 4)),
        80 => Some((u32::MAX, 0)),
        _ => None,
    }
}

/// `7.0.15` → `(7, 0)`.
pub(super) fn redis_release(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn read_items(
    path: &Path,
    max_payload: usize,
    sender: &mpsc::Sender<ReadBatch>,
    runtime: &tokio::runtime::Handle,
    budget: &Arc<Semaphore>,
) -> Result<(), Error> {
    let mut reader = open(path, max_payload)?;
    let mut batch = Vec::with_capacity(BATCH_ITEMS);
    let mut batch_bytes = 0;
    loop {
        let item = reader.next().map_err(from_rdb)?;
        let end = item.is_none();
        if let Some(item) = item {
            batch_bytes += item_size(&item);
            batch.push((item, reader.offset()));
        }
        if batch.is_empty() || (!end && batch.len() < BATCH_ITEMS && batch_bytes < BATCH_BYTES) {
            if end {
                return Ok(());
            }
            continue;
        }
        let share = batch_bytes.clamp(1, BYTES_AHEAD) as u32;
        let Ok(permit) = runtime.block_on(budget.clone().acquire_many_owned(share)) else {
            return Ok(()); // the budget is closed only when the loader is gone
        };
        if sender.blocking_send((std::mem::take(&mut batch), permit)).is_err() {
            return Ok(()); // the loader stopped; its error is the one that counts
        }
        batch_bytes = 0;
        if end {
            return Ok(());
        }
    }
}

// Roughly the memory an item holds.
fn item_size(item: &Item) -> usize {
    match item {
        Item::Key { header, payload } => header.key.len() + payload.as_bytes().len(),
        Item::Function { code, payload } => code.len() + payload.as_bytes().len(),
        Item::Elements(Elements::List(values) | Elements::Set(values)) => values.iter().map(Vec::len).sum(),
        Item::Elements(Elements::SortedSet(members)) => {
            members.iter().map(|(member, _)| member.len() + 8).sum()
        }
        Item::Elements(Elements::Hash(pairs)) => {
            pairs.iter().map(|(field, value)| field.len() + value.len()).sum()
        }
        Item::Elements(Elements::String(piece)) => piece.len(),
        _ => 64,
    }
}

fn open(path: &Path, max_payload: usize) -> Result<RdbReader<BufReader<File>>, Error> {
    let file = File::open(path).map_err(|error| {
        Error::Unsupported(format!("cannot open the spooled rdb {}: {error}", path.display()))
    })?;
    Ok(RdbReader::new(BufReader::with_capacity(FILE_BUFFER, file))
        .map_err(from_rdb)?
        .with_max_payload(max_payload))
}

fn from_rdb(error: rdb::Error) -> Error {
    match error {
        rdb::Error::ModuleNotSupported { module } => Error::ModuleNotSupported(format!(
            "the data holds values of module '{module}', which the target cannot load without it"
        )),
        rdb::Error::Io(error) => Error::Unsupported(format!("cannot read the spooled rdb: {error}")),
        other => Error::Corrupt(other.to_string()),
    }
}

fn describe(command: &str, key: &[u8]) -> String {
    format!("{command} of key '{}'", String::from_utf8_lossy(&key[..key.len().min(64)]))
}

async fn send_elements(loader: &mut Loader, header: &KeyHeader, elements: Elements) -> Result<(), Error> {
    let key = header.key.as_slice();
    let (command, args) = elements.into_command();
    if args.is_empty() {
        return Ok(());
    }
    let mut full: Vec<&[u8]> = vec![command, key];
    full.extend(args.iter().map(Vec::as_slice));
    let what = describe(&String::from_utf8_lossy(command), key);
    loader.command(header.db, &full, what).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_redis_reads_which_rdb() {
        assert_eq!(redis_release("7.0.15"), Some((7, 0)));
        assert_eq!(redis_release("garbage"), None);
        let reads = |release: &str, rdb: u16| {
            oldest_redis_reading(rdb).is_none_or(|required| redis_release(release).unwrap() >= required)
        };
        assert!(reads("7.0.15", 10) && reads("7.0.15", 9) && reads("7.4.1", 12) && reads("6.2.14", 9));
        assert!(!reads("6.2.14", 10) && !reads("7.0.15", 11) && !reads("7.2.4", 12) && !reads("7.4.0", 80));
    }
}

//! Replacing a server's data with a verified RDB file: a full dry-run read first (so a
//! file that cannot be loaded whole never touches the target; a stream is written to a
//! spool file and read by the check at once, in one pass), then, for one file and a
//! target that takes it, a load by replication (`master.rs`); otherwise `FLUSHALL` and
//! every key: `RESTORE` for ordinary keys, element batches (`RPUSH`, `SADD`, `ZADD`, `HSET`
//! and `HPEXPIREAT`, `APPEND`, `XADD` and the stream group commands) for keys too big for
//! one payload, `FUNCTION RESTORE` for function libraries.
//!
//! A Redis target older than the data's RDB version cannot read its payloads: then every
//! key goes through the element commands and every library through `FUNCTION LOAD`
//! (the file is read a second time, decoded, before the flush), and the load says so in
//! its warnings. Data such a target cannot hold at all (streams before Redis 5.0,
//! functions before 7.0, hash fields with their own TTL before 7.4) is refused with
//! `TARGET_TOO_OLD` before anything is flushed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::connection::{Connection, Reply, describe as describe_reply};
use super::loader::{DEFAULT_WINDOW, Loader};
use super::master::{self, Attempt};
use super::plan::{Plan, Survey, plan};
use super::rdb::{self, Dialect, DumpPayload, Elements, Item, KeyHeader, RdbReader, value_type};
use super::target::Target;
use crate::domain::reason;
use crate::engine::journal::DatabaseJournal;
use crate::engine::{CheckedFile, DataStream, Error, LoadData, Loaded, PhaseSink, ProgressSink, Warning};
use crate::pipeline::unpack::SpoolFile;

/// Batches read ahead of the loader, at most.
const READ_AHEAD: usize = 16;
/// Items are handed to the loader in batches of this many items or bytes, whichever
/// comes first, so that threads meet once a batch rather than once a key.
const BATCH_ITEMS: usize = 256;
const BATCH_BYTES: usize = 1 << 20;
/// Keys already expired in the file, remembered for deleting after a replication load,
/// at most; past that, the target's own expiry cycle removes them.
const MAX_EXPIRED: usize = 65_536;
/// Bytes of items read ahead of the loader, at most (one bigger item may pass alone), so
/// that memory stays bounded whatever the values' sizes.
const BYTES_AHEAD: usize = 32 << 20;
/// The file is read through this buffer.
const FILE_BUFFER: usize = 1 << 20;
/// A stream is spooled in chunks of this size, each handed to the check too, with at
/// most this many waiting for it.
const TEE_CHUNK: usize = 1 << 20;
const TEE_QUEUE: usize = 4;

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

/// Loads the RDB files of `data`, in order, into the server at `target`, replacing its
/// data: every file is read whole first (a stream: spooled and read by the check as it
/// is written, in the caller's phase). A single file goes by replication when `method`
/// allows and the target takes it; otherwise the server is flushed once and every key
/// sent as commands.
pub(crate) async fn load(
    target: &Target,
    limits: Limits,
    method: LoadMethod,
    journal: Option<&DatabaseJournal>,
    data: LoadData<'_>,
    phase: PhaseSink<'_>,
    progress: ProgressSink<'_>,
) -> Result<Loaded, Error> {
    let started = std::time::Instant::now();
    // A stream's spool file lives as long as the load.
    let (_spool, paths, survey) = match data {
        LoadData::Files(paths) => {
            phase("verifying");
            let mut survey = Survey::default();
            for path in paths {
                survey = survey.add(self::survey(path.clone(), limits.max_payload).await?);
            }
            (None, paths.to_vec(), survey)
        }
        LoadData::Stream(stream) => {
            let (spool, survey) = spool_checked(stream, limits.max_payload, progress).await?;
            let path = spool.path().to_owned();
            (Some(spool), vec![path], survey)
        }
    };
    let paths = paths.as_slice();
    let keys = survey.keys;
    progress(0, 0, keys);
    let verified = started.elapsed();

    phase("connecting");
    let mut connection = Connection::open(target, limits.connect_timeout, limits.idle_timeout).await?;
    let plan = plan(&mut connection, &survey, limits.max_payload).await?;
    probe_modules(&mut connection, &survey.modules).await?;
    let decoded = plan.max_payload == 0 && limits.max_payload != 0;
    let mut warnings: Vec<Warning> = plan
        .warnings
        .iter()
        .map(|message| Warning { reason: reason::TARGET_TOO_OLD, message: message.clone() })
        .collect();
    if let ([path], false, LoadMethod::Auto | LoadMethod::Replication) = (paths, decoded, method) {
        phase("replicating");
        let report = |sent: u64| progress(sent, 0, keys);
        match master::load(&mut connection, target, limits, journal, path, survey.version, &report).await? {
            Attempt::Loaded => {
                let bytes = tokio::fs::metadata(path).await.map(|meta| meta.len()).unwrap_or(0);
                delete_expired(connection, survey.expired).await?;
                progress(bytes, keys, keys);
                log_done("replication", keys, verified, started.elapsed());
                return Ok(Loaded {
                    items: keys,
                    functions: survey.functions,
                    method: "replication",
                    warnings,
                });
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
    if decoded {
        // Decoded, the values are read otherwise: check that they decode whole first.
        phase("verifying");
        for path in paths {
            self::survey(path.clone(), 0).await?;
        }
    }
    if let Some(problem) = &survey.module_too_big {
        return Err(Error::ModuleNotSupported(format!("{problem}: only a load by replication carries it")));
    }
    if !survey.module_aux.is_empty() {
        let modules = survey.module_aux.iter().cloned().collect::<Vec<_>>().join(", ");
        warnings.push(Warning {
            reason: reason::MODULE_NOT_SUPPORTED,
            message: format!(
                "module data not tied to a key ({modules}) was not loaded: RESTORE commands carry keys only"
            ),
        });
    }
    let mut loader = Loader::new(connection, DEFAULT_WINDOW);
    phase("loading");
    loader.flush_all().await?;
    if survey.functions > 0 {
        loader.command(0, &[b"FUNCTION", b"FLUSH"], "FUNCTION FLUSH".to_owned()).await?;
    }
    let mut bytes_before = 0;
    for (index, path) in paths.iter().enumerate() {
        let report = |offset: u64, restored: u64| progress(bytes_before + offset, restored, keys);
        let big_keys = survey.big_keys.get(index).cloned().unwrap_or_default();
        bytes_before += load_file(&mut loader, path, &plan, big_keys, &report).await?;
    }
    let items = loader.finish().await?;
    progress(bytes_before, items, keys);
    log_done("restore", items, verified, started.elapsed());
    Ok(Loaded { items, functions: survey.functions, method: "restore", warnings })
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
    plan: &Plan,
    big_keys: BTreeSet<u64>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<u64, Error> {
    let max_payload = plan.max_payload;
    let (sender, mut items) = mpsc::channel(READ_AHEAD);
    let budget = Arc::new(Semaphore::new(BYTES_AHEAD));
    let reading = tokio::task::spawn_blocking({
        let path = path.to_owned();
        let budget = budget.clone();
        let runtime = tokio::runtime::Handle::current();
        move || read_items(&path, max_payload, big_keys, &sender, &runtime, &budget)
    });
    let mut big_key: Option<KeyHeader> = None;
    let mut offset = 0;
    // Each batch carries its share of the read-ahead budget, given back once it is sent.
    while let Some((batch, _budget_share)) = items.recv().await {
        for (item, read_to) in batch {
            offset = read_to;
            send_item(loader, item, plan, &mut big_key).await?;
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

// Asks the target whether it loads a value of each module type the data holds, by
// restoring one under a key of its own and deleting it; a target without the module
// (or with one that cannot read the value) is refused before anything is flushed.
async fn probe_modules(
    connection: &mut Connection,
    modules: &BTreeMap<String, Option<DumpPayload>>,
) -> Result<(), Error> {
    for (module, probe) in modules {
        let Some(payload) = probe else {
            return Err(Error::ModuleNotSupported(format!(
                "cannot check that redis at {} loads values of module type '{module}': every one is over {} MiB",
                connection.label(),
                rdb::MODULE_WALK_PAYLOAD >> 20
            )));
        };
        let key = format!("cellar:module-probe:{}", uuid::Uuid::new_v4().simple());
        let restore: [&[u8]; 4] = [b"RESTORE", key.as_bytes(), b"0", payload.as_bytes()];
        match connection.command(&restore).await? {
            Reply::Status(_) => {
                connection.command(&[b"DEL", key.as_bytes()]).await?;
            }
            Reply::Error(message) => {
                return Err(Error::ModuleNotSupported(format!(
                    "the data holds values of module type '{module}', which redis at {} does not load ({message})",
                    connection.label()
                )));
            }
            other => {
                return Err(Error::Protocol(format!(
                    "redis at {} answered RESTORE with {}",
                    connection.label(),
                    describe_reply(&other)
                )));
            }
        }
    }
    Ok(())
}

// Sends one item of the file through the loader; `big_key` is the big key whose
// elements are being sent, if any.
async fn send_item(
    loader: &mut Loader,
    item: Item,
    plan: &Plan,
    big_key: &mut Option<KeyHeader>,
) -> Result<(), Error> {
    match item {
        Item::Key { header, payload } => {
            loader.restore(header.db, &header.key, header.expire_at_ms, payload.as_bytes()).await?;
        }
        Item::Function { code, .. } if plan.functions_as_code => {
            let args: [&[u8]; 4] = [b"FUNCTION", b"LOAD", b"REPLACE", &code];
            loader.command(0, &args, "FUNCTION LOAD".to_owned()).await?;
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
            send_elements(loader, header, elements, plan.dialect).await?;
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

/// Checks the RDB file at `path` whole, as a load does before it touches a target.
pub(super) async fn check_file(path: &Path, max_payload: usize) -> Result<CheckedFile, Error> {
    let survey = survey(path.to_owned(), max_payload).await?;
    Ok(CheckedFile {
        format: "rdb",
        format_version: survey.version.to_string(),
        server_version: String::new(),
        items: survey.keys,
    })
}

// Reads the whole file once without loading anything (see [`walk`]); then the keys too
// big for one payload, if any, decoded in a second read.
async fn survey(path: PathBuf, max_payload: usize) -> Result<Survey, Error> {
    let surveyed = tokio::task::spawn_blocking(move || {
        let survey = walk(open(&path, max_payload)?)?;
        decode_big_keys(&path, max_payload, &survey)?;
        Ok(survey)
    })
    .await;
    surveyed.map_err(|join_error| Error::Unsupported(format!("the rdb check stopped: {join_error}")))?
}

// Writes `stream` to a spool file in `stream.spool_dir` while the check reads the same
// bytes on a blocking thread (a bounded queue of chunks between them), so that the data
// is read once to be both spooled and checked; then the keys too big for one payload,
// if any, are decoded from the spool file. `progress` gets the bytes spooled. A check
// that fails stops the spooling at once.
async fn spool_checked(
    stream: DataStream<'_>,
    max_payload: usize,
    progress: ProgressSink<'_>,
) -> Result<(SpoolFile, Survey), Error> {
    let dir = stream.spool_dir;
    let spool_failed = |error: std::io::Error| {
        Error::Unsupported(format!("cannot spool the rdb in {}: {error}", dir.display()))
    };
    let mut spool = SpoolFile::create(dir).await.map_err(spool_failed)?;
    let (chunks, received) = mpsc::channel::<Bytes>(TEE_QUEUE);
    let mut check = Some(tokio::task::spawn_blocking(move || {
        let reader = RdbReader::new(Chunks { received, current: Bytes::new() }).map_err(from_rdb)?;
        walk(reader.with_max_payload(max_payload))
    }));
    let mut checked = None;
    let mut spooled = 0;
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
        spool.file().write_all(&chunk).await.map_err(spool_failed)?;
        spooled += read as u64;
        progress(spooled, 0, 0);
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
    spool.file().flush().await.map_err(spool_failed)?;
    let survey = match (checked, check) {
        (Some(survey), _) => survey,
        (None, Some(running)) => finished(running).await?,
        (None, None) => return Err(Error::Unsupported("the rdb check was lost".to_owned())),
    };
    let path = spool.path().to_owned();
    let decoded = tokio::task::spawn_blocking({
        let survey = survey.clone();
        move || decode_big_keys(&path, max_payload, &survey)
    });
    decoded
        .await
        .map_err(|join_error| Error::Unsupported(format!("the rdb check stopped: {join_error}")))??;
    Ok((spool, survey))
}

/// The outcome of the check's thread.
async fn finished(check: tokio::task::JoinHandle<Result<Survey, Error>>) -> Result<Survey, Error> {
    check.await.map_err(|join_error| Error::Unsupported(format!("the rdb check stopped: {join_error}")))?
}

/// The check's side of a spooled stream: the chunks as one `Read`, ending when the
/// spooling side is gone (early, only when it failed: the check then fails truncated).
struct Chunks {
    received: mpsc::Receiver<Bytes>,
    current: Bytes,
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

// Reads the whole file once without loading anything: counts keys and functions, notes
// what only some servers can hold, and fails on anything the load would fail on (damage,
// module types). With a payload limit of 0 every value is decoded as the load will
// decode it.
//
// Values are walked, not kept; keys whose value is too big for one payload are noted
// (for a second read, [`decode_big_keys`]), so that nothing here holds more than a
// batch of elements whatever the sizes.
fn walk<R: Read>(reader: RdbReader<R>) -> Result<Survey, Error> {
    let max_payload = reader.max_payload();
    let mut reader = reader.walk_only();
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
            _ => {}
        }
    }
    survey.big_keys = vec![big_keys];
    Ok(survey)
}

// Decodes the keys of the file at `path` that `survey` found too big for one payload
// (nothing to do when there are none), as the load will, to check that they decode.
fn decode_big_keys(path: &Path, max_payload: usize, survey: &Survey) -> Result<(), Error> {
    let big_keys = survey.big_keys.last().cloned().unwrap_or_default();
    if big_keys.is_empty() {
        return Ok(());
    }
    let mut reader = open(path, max_payload)?.walk_only().with_decoded_keys(big_keys);
    while reader.next().map_err(from_rdb)?.is_some() {}
    Ok(())
}

/// Items with the file offset after each, and their share of the read-ahead budget.
type ReadBatch = (Vec<(Item, u64)>, OwnedSemaphorePermit);

fn read_items(
    path: &Path,
    max_payload: usize,
    big_keys: BTreeSet<u64>,
    sender: &mpsc::Sender<ReadBatch>,
    runtime: &tokio::runtime::Handle,
    budget: &Arc<Semaphore>,
) -> Result<(), Error> {
    let mut reader = open(path, max_payload)?.with_decoded_keys(big_keys);
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
        Item::Elements(elements) => elements.size(),
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
        rdb::Error::ModuleValueTooBig { .. } => Error::ModuleNotSupported(error.to_string()),
        rdb::Error::Io(error) => Error::Unsupported(format!("cannot read the spooled rdb: {error}")),
        other => Error::Corrupt(other.to_string()),
    }
}

fn describe(command: &str, key: &[u8]) -> String {
    format!("{command} of key '{}'", shown(key))
}

/// A key as messages show it: at most 64 bytes, lossily as text.
fn shown(key: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&key[..key.len().min(64)])
}

async fn send_elements(
    loader: &mut Loader,
    header: &KeyHeader,
    elements: Elements,
    dialect: Dialect,
) -> Result<(), Error> {
    for command in elements.into_commands(&header.key, dialect) {
        let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        let what = describe(&String::from_utf8_lossy(&command[0]), &header.key);
        loader.command(header.db, &args, what).await?;
    }
    Ok(())
}

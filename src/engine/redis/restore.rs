//! Replacing a server's data with a verified RDB file: a full dry-run read first
//! (`check.rs`, so that a file that cannot be loaded whole never touches the target),
//! then, for one file and a target that takes it, a load by replication (`master.rs`);
//! a backup's SHA-256-proven stream goes by replication as it is read instead
//! (`streamed.rs`), and falls back here when it cannot; otherwise `FLUSHALL` and
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
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::check::{self, Origin, from_rdb, shown};
use super::connection::{Connection, Reply, describe as describe_reply};
use super::loader::{DEFAULT_WINDOW, Loader};
use super::master::{self, Attempt, FileBody, Transfer};
use super::plan::{Plan, Survey, check_databases, plan};
use super::rdb::{self, Dialect, DumpPayload, Elements, Item, KeyHeader};
use super::source::Source;
use super::streamed::{self, Streamed};
use super::target::Target;
use crate::domain::reason;
use crate::engine::journal::DatabaseJournal;
use crate::engine::{Error, LoadData, Loaded, PhaseSink, ProgressSink, Warning};

/// Batches read ahead of the loader, at most.
const READ_AHEAD: usize = 16;
/// Items are handed to the loader in batches of this many items or bytes, whichever
/// comes first, so that threads meet once a batch rather than once a key.
const BATCH_ITEMS: usize = 256;
const BATCH_BYTES: usize = 1 << 20;
/// Bytes of items read ahead of the loader, at most (one bigger item may pass alone), so
/// that memory stays bounded whatever the values' sizes.
const BYTES_AHEAD: usize = 32 << 20;
/// Strings without an expiry up to this long go in `MSET`s (where the plan allows), not
/// as a `RESTORE` each; a longer one gains little from it and travels smaller as a
/// payload, which keeps LZF's compression.
const PLAIN_STRING_LIMIT: usize = 8 * 1024;

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
/// data: every file is read whole first (a stream: read by the check as it arrives, in
/// the caller's phase, and spooled unless it can be read again and will not go by
/// replication). A single file goes by replication when `method` allows and the target
/// takes it; otherwise the server is flushed once and every key sent as commands. A
/// stream of checked data
/// ([`DataStream::checked_length`](crate::engine::DataStream::checked_length)) goes to the
/// target by replication as it is read (`streamed.rs`), before the whole check.
pub(crate) async fn load(
    target: &Target,
    limits: Limits,
    method: LoadMethod,
    journal: Option<&DatabaseJournal>,
    data: LoadData<'_>,
    phase: PhaseSink<'_>,
    progress: ProgressSink<'_>,
) -> Result<Loaded, Error> {
    let started = Instant::now();
    let mut warnings = Vec::new();
    let mut replication = method != LoadMethod::Restore;
    // A stream's spool file lives as long as the load.
    let (_spool, sources, survey) = match data {
        LoadData::Files(paths) => {
            phase("verifying");
            let sources: Vec<Source> = paths.iter().cloned().map(Source::File).collect();
            let mut survey = Survey::default();
            for source in &sources {
                survey =
                    survey.add(check::survey(source.clone(), limits.max_payload, Origin::Elsewhere).await?);
            }
            (None, sources, survey)
        }
        LoadData::Stream(stream) => match stream.checked_length {
            Some(size) if replication => {
                phase("replicating");
                match streamed::load(target, limits, journal, stream, size, progress).await? {
                    Streamed::Loaded { survey, connection } => {
                        let keys = survey.keys;
                        delete_expired(connection, survey.expired).await?;
                        progress(size, keys, keys);
                        log_done("replication", keys, Duration::ZERO, started.elapsed());
                        return Ok(Loaded {
                            items: keys,
                            functions: survey.functions,
                            method: "replication",
                            warnings,
                        });
                    }
                    Streamed::Fallback { spool, source, declined, survey } => {
                        if let Some(why) = declined {
                            replication = false;
                            warnings.push(declined_warning(method, &why)?);
                        }
                        phase("verifying");
                        let survey = match survey {
                            Some(survey) => {
                                check::decoded_big_keys(source.clone(), limits.max_payload, survey).await?
                            }
                            None => {
                                check::survey(source.clone(), limits.max_payload, Origin::Trusted).await?
                            }
                        };
                        (spool, vec![source], survey)
                    }
                }
            }
            // Sent as commands, the data is read again rather than spooled.
            _ => match stream.reread.clone() {
                Some(data) if !replication => {
                    let source = Source::Again { data, scratch: stream.spool_dir.to_owned() };
                    let survey = check::checked(stream, source.clone(), limits.max_payload, progress).await?;
                    (None, vec![source], survey)
                }
                _ => {
                    let (spool, survey) = check::spool_checked(stream, limits.max_payload, progress).await?;
                    let source = Source::File(spool.path().to_owned());
                    (Some(spool), vec![source], survey)
                }
            },
        },
    };
    let sources = sources.as_slice();
    let keys = survey.keys;
    progress(0, 0, keys);
    let verified = started.elapsed();

    phase("connecting");
    let mut connection = Connection::open(target, limits.connect_timeout, limits.idle_timeout).await?;
    let plan = plan(&mut connection, &survey, limits.max_payload).await?;
    probe_modules(&mut connection, &survey.modules).await?;
    check_databases(&mut connection, survey.max_db).await?;
    let decoded = plan.max_payload == 0 && limits.max_payload != 0;
    warnings.extend(
        plan.warnings
            .iter()
            .map(|message| Warning { reason: reason::TARGET_TOO_OLD, message: message.clone() }),
    );
    if let Some(why) = unprobed_module_aux(&survey).filter(|_| replication) {
        replication = false;
        warnings.push(declined_warning(method, &why)?);
    }
    if let ([Source::File(path)], false, true) = (sources, decoded, replication) {
        phase("replicating");
        let report = |sent: u64| progress(sent, 0, keys);
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|error| Error::Unsupported(format!("cannot open the rdb file: {error}")))?;
        let size = file.metadata().await.map_err(|error| Error::Unsupported(error.to_string()))?.len();
        let mut body = FileBody::new(file);
        let transfer = Transfer { body: &mut body, size: Some(size), rdb_version: survey.version };
        match master::load(&mut connection, target, limits, journal, transfer, &report).await? {
            Attempt::Loaded => {
                delete_expired(connection, survey.expired).await?;
                progress(size, keys, keys);
                log_done("replication", keys, verified, started.elapsed());
                return Ok(Loaded {
                    items: keys,
                    functions: survey.functions,
                    method: "replication",
                    warnings,
                });
            }
            Attempt::Declined(why) => {
                tracing::info!(redis = connection.label(), %why, "loading with RESTORE commands instead of replication");
                warnings.push(declined_warning(method, &why)?);
            }
            // The file was read whole before, so a cut is a failure to read it again.
            Attempt::Cut(error) => return Err(error),
        }
    }
    if decoded {
        // Decoded, the values are read otherwise: check that they decode whole first.
        phase("verifying");
        for source in sources {
            check::survey(source.clone(), 0, Origin::Trusted).await?;
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
    for (index, source) in sources.iter().enumerate() {
        let report = |offset: u64, restored: u64| progress(bytes_before + offset, restored, keys);
        let big_keys = survey.big_keys.get(index).cloned().unwrap_or_default();
        bytes_before += load_source(&mut loader, source, &plan, big_keys, &report).await?;
    }
    let items = loader.finish().await?;
    progress(bytes_before, items, keys);
    log_done("restore", items, verified, started.elapsed());
    Ok(Loaded { items, functions: survey.functions, method: "restore", warnings })
}

/// Why module data not tied to a key keeps the data from going by replication, if it
/// does: of a module type with no value in the data, which the probes could not ask the
/// target about, and a replica that meets aux data of a module it lacks stops its server.
fn unprobed_module_aux(survey: &Survey) -> Option<String> {
    let unprobed: Vec<&str> = survey
        .module_aux
        .iter()
        .filter(|module| !survey.modules.contains_key(*module))
        .map(String::as_str)
        .collect();
    (!unprobed.is_empty()).then(|| {
        format!(
            "the data holds module data not tied to a key ({}) with no value of its type to ask the target \
             whether it loads the module",
            unprobed.join(", ")
        )
    })
}

/// The warning that the target declined replication; with [`LoadMethod::Replication`],
/// the error that it did.
fn declined_warning(method: LoadMethod, why: &str) -> Result<Warning, Error> {
    if method == LoadMethod::Replication {
        return Err(Error::Unsupported(format!("cannot load by replication: {why}")));
    }
    Ok(Warning {
        reason: reason::REPLICATION_DECLINED,
        message: format!("loaded with RESTORE commands, not by replication: {why}"),
    })
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

// Sends the keys of one file (or other source) through the loader; returns the bytes read.
async fn load_source(
    loader: &mut Loader,
    source: &Source,
    plan: &Plan,
    big_keys: BTreeSet<u64>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<u64, Error> {
    let max_payload = plan.max_payload;
    let plain_strings = if plan.plain_strings { PLAIN_STRING_LIMIT } else { 0 };
    let (sender, mut items) = mpsc::channel(READ_AHEAD);
    let budget = Arc::new(Semaphore::new(BYTES_AHEAD));
    let reading = tokio::task::spawn_blocking({
        let source = source.clone();
        let budget = budget.clone();
        let runtime = tokio::runtime::Handle::current();
        move || {
            let reader =
                source.open(max_payload)?.with_decoded_keys(big_keys).with_plain_strings(plain_strings);
            read_items(reader, &sender, &runtime, &budget)
        }
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
        Item::PlainString { header, value } => loader.set(header.db, &header.key, &value).await?,
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

/// Items with the file offset after each, and their share of the read-ahead budget.
type ReadBatch = (Vec<(Item, u64)>, OwnedSemaphorePermit);

fn read_items(
    mut reader: rdb::RdbReader<impl std::io::Read>,
    sender: &mpsc::Sender<ReadBatch>,
    runtime: &tokio::runtime::Handle,
    budget: &Arc<Semaphore>,
) -> Result<(), Error> {
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
        Item::PlainString { header, value } => header.key.len() + value.len(),
        Item::Function { code, payload } => code.len() + payload.as_bytes().len(),
        Item::Elements(elements) => elements.size(),
        _ => 64,
    }
}

fn describe(command: &str, key: &[u8]) -> String {
    format!("{command} of key '{}'", shown(key))
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

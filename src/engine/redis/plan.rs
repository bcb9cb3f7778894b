//! What the check of a file found ([`Survey`]) and how a Redis target is loaded given what
//! it is ([`Plan`]): payloads for a target that reads the data's RDB version; every key
//! as commands in its dialect for an older Redis, with warnings; refused before anything
//! is flushed when the target cannot hold what the data holds.

use std::collections::{BTreeMap, BTreeSet};

use super::connection::{Connection, Reply, refusal, refused};
use super::info::ServerFacts;
use super::rdb::{Dialect, DumpPayload};
use crate::engine::Error;

/// What the dry run found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Survey {
    pub(super) keys: u64,
    pub(super) functions: u64,
    /// The file's RDB version (the newest, over several files).
    pub(super) version: u16,
    /// Whether the data holds streams, and hashes whose fields have their own TTL.
    pub(super) streams: bool,
    pub(super) field_expiry: bool,
    /// Keys whose expiry time had passed when the file was read: `(db, key)`.
    pub(super) expired: Vec<(u64, Vec<u8>)>,
    /// Per file, the keys (by place in the file) too big for one payload.
    pub(super) big_keys: Vec<BTreeSet<u64>>,
    /// The module types whose values the data holds, each with one value small enough
    /// to ask the target whether it loads it (`None` when every one is too big).
    pub(super) modules: BTreeMap<String, Option<DumpPayload>>,
    /// Module types with aux data (not tied to a key), which only replication carries.
    pub(super) module_aux: BTreeSet<String>,
    /// A module value too big for one RESTORE, if any: what to say about it.
    pub(super) module_too_big: Option<String>,
    /// The highest numbered database the data selects (0 when it selects none).
    pub(super) max_db: u64,
}

impl Survey {
    /// The findings of several files together.
    pub(super) fn add(mut self, other: Survey) -> Survey {
        self.expired.extend(other.expired);
        self.big_keys.extend(other.big_keys);
        for (module, probe) in other.modules {
            let kept = self.modules.entry(module).or_default();
            if kept.is_none() {
                *kept = probe;
            }
        }
        self.module_aux.extend(other.module_aux);
        self.module_too_big = self.module_too_big.or(other.module_too_big);
        Survey {
            keys: self.keys + other.keys,
            functions: self.functions + other.functions,
            version: self.version.max(other.version),
            streams: self.streams || other.streams,
            field_expiry: self.field_expiry || other.field_expiry,
            expired: self.expired,
            big_keys: self.big_keys,
            modules: self.modules,
            module_aux: self.module_aux,
            module_too_big: self.module_too_big,
            max_db: self.max_db.max(other.max_db),
        }
    }
}

/// How the keys are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// The reader's payload limit: 0 decodes every key.
    pub(super) max_payload: usize,
    pub(super) dialect: Dialect,
    /// Functions as `FUNCTION LOAD` of their code, not `FUNCTION RESTORE`.
    pub(super) functions_as_code: bool,
    /// Plain strings batched into `MSET`s: only on a server that says it is not a
    /// cluster node (where one `MSET` of keys in several slots is refused) and lets this
    /// user run `MSET` ([`takes_mset`]).
    pub(super) plain_strings: bool,
    /// What the operation should say about how the data was loaded.
    pub(super) warnings: Vec<String>,
}

// Chooses how to load: payloads (RESTORE) when the target reads the data's format, or
// commands when it is a Redis older than the data. Servers that are not Redis (Valkey and
// others) are left to answer RESTORE for themselves.
pub(super) async fn plan(
    connection: &mut Connection,
    survey: &Survey,
    max_payload: usize,
) -> Result<Plan, Error> {
    let mut payloads = Plan {
        max_payload,
        dialect: Dialect::NEWEST,
        functions_as_code: false,
        plain_strings: false,
        warnings: Vec::new(),
    };
    let info = match connection.command(&[b"INFO", b"server"]).await? {
        Reply::Bulk(Some(text)) => ServerFacts::parse(&String::from_utf8_lossy(&text)),
        _ => return Ok(payloads), // a server that hides INFO answers RESTORE for itself
    };
    payloads.plain_strings =
        info.mode.as_deref().is_some_and(|mode| mode != "cluster") && takes_mset(connection).await?;
    let (None, Some(version)) = (info.flavour, info.version) else {
        return Ok(payloads);
    };
    let target = format!("redis at {} is {version}", connection.label());
    // Big keys go through commands even with payloads: in the target's dialect.
    let dialect = redis_release(&version).map_or(Dialect::NEWEST, dialect_of);
    Ok(commands_plan(survey, &version, &target)?.unwrap_or(Plan { dialect, ..payloads }))
}

/// Whether the target runs `MSET` for this user: asked with one key of our own, set and
/// deleted, before anything is flushed, so that a user allowed `RESTORE` but not `MSET`
/// gets every string as a `RESTORE` instead of a load that fails after the flush.
async fn takes_mset(connection: &mut Connection) -> Result<bool, Error> {
    let key = format!("cellar:mset-probe:{}", uuid::Uuid::new_v4().simple());
    match connection.command(&[b"MSET", key.as_bytes(), b""]).await? {
        Reply::Status(_) => {
            connection.command(&[b"DEL", key.as_bytes()]).await?;
            Ok(true)
        }
        reply => {
            tracing::debug!(redis = connection.label(), ?reply, "MSET refused: strings go as RESTORE");
            Ok(false)
        }
    }
}

/// Checks that the target at `connection` has database `max_db` (Redis's `databases`
/// setting; a cluster node has only 0) before anything is changed: a load would fail
/// there after the flush, and a replica that meets it stops the whole server. Asks with
/// `SELECT`, which needs no `CONFIG` permission, then selects 0 again.
pub(super) async fn check_databases(connection: &mut Connection, max_db: u64) -> Result<(), Error> {
    if max_db == 0 {
        return Ok(());
    }
    let db = max_db.to_string();
    match connection.command(&[b"SELECT", db.as_bytes()]).await? {
        Reply::Status(_) => {}
        // "ERR DB index is out of range", or "SELECT is not allowed in cluster mode";
        // anything else (no permission, still loading) says so as other refusals do.
        Reply::Error(message) if message.contains("out of range") || message.contains("cluster") => {
            let remedy = if message.contains("cluster") {
                "a cluster node has only database 0".to_owned()
            } else {
                format!("raise its `databases` setting to at least {}", max_db + 1)
            };
            return Err(Error::TooFewDatabases(format!(
                "the data has keys in database {max_db}, which redis at {} does not have ({}): {remedy}",
                connection.label(),
                message.trim(),
            )));
        }
        Reply::Error(message) => return Err(refusal(connection.label(), "SELECT", &message)),
        other => return Err(refused(connection, "SELECT", &other)),
    }
    match connection.command(&[b"SELECT", b"0"]).await? {
        Reply::Status(_) => Ok(()),
        other => Err(refused(connection, "SELECT", &other)),
    }
}

/// The commands Redis `release` understands.
fn dialect_of(release: (u32, u32)) -> Dialect {
    Dialect { stream_counters: release >= (7, 0), create_consumer: release >= (6, 2) }
}

/// The oldest Redis release the commands of the decoded path all work on (`HSET` of
/// several fields).
const OLDEST_FOR_COMMANDS: (u32, u32) = (4, 0);

/// How Redis `version` (`target` names it in messages) loads the data: `None` when it
/// reads the payloads, else every key through commands, with warnings saying so. Data
/// such a target cannot hold at all is refused, naming what.
fn commands_plan(survey: &Survey, version: &str, target: &str) -> Result<Option<Plan>, Error> {
    let (Some(required), Some(release)) = (oldest_redis_reading(survey.version), redis_release(version))
    else {
        return Ok(None);
    };
    if release >= required {
        return Ok(None);
    }
    let mut missing = Vec::new();
    if release < OLDEST_FOR_COMMANDS {
        missing.push("anything (redis 4.0 or newer loads data through commands)");
    }
    if survey.streams && release < (5, 0) {
        missing.push("streams (redis 5.0 or newer)");
    }
    if survey.functions > 0 && release < (7, 0) {
        missing.push("function libraries (redis 7.0 or newer)");
    }
    if survey.field_expiry && release < (7, 4) {
        missing.push("hash fields with their own ttl (redis 7.4 or newer)");
    }
    if !missing.is_empty() {
        return Err(Error::TargetTooOld(format!(
            "{target}, older than the data (rdb version {}), and cannot hold what it holds: {}",
            survey.version,
            missing.join(", ")
        )));
    }
    let dialect = dialect_of(release);
    let mut warnings = vec![format!(
        "{target}, older than the data (rdb version {}, for redis {}.{} or newer): every key was loaded \
         through commands instead of RESTORE, without its LRU/LFU information{}",
        survey.version,
        required.0,
        required.1,
        if survey.functions > 0 { ", and function libraries through FUNCTION LOAD" } else { "" }
    )];
    if survey.streams {
        warnings.push(
            "streams were rebuilt with XADD, XSETID, XGROUP and XCLAIM: consumers' seen and active \
             times are those of the load, and pending entries deleted from their stream are not kept"
                .to_owned(),
        );
        if !dialect.stream_counters {
            warnings.push(format!(
                "{target}: streams lost their entries-added and max-deleted-id counters and their \
                 groups' entries-read (redis 7.0 or newer keeps them)"
            ));
        }
        if !dialect.create_consumer {
            warnings.push(format!(
                "{target}: stream consumers without pending entries were not created (redis 6.2 or newer \
                 creates them)"
            ));
        }
    }
    Ok(Some(Plan { max_payload: 0, dialect, functions_as_code: true, plain_strings: false, warnings }))
}

/// The oldest Redis release that reads RDB `version`; `None` when any release does or
/// the version is not Redis's (Valkey's 80).
pub(super) fn oldest_redis_reading(version: u16) -> Option<(u32, u32)> {
    match version {
        9 => Some((5, 0)),
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

#[cfg(test)]
pub(super) mod tests_support {
    /// `7.4.1` → `(7, 4)`; `(0, 0)` for what is not a version.
    pub(in crate::engine::redis) fn release(version: &str) -> (u32, u32) {
        super::redis_release(version).unwrap_or((0, 0))
    }
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
        assert!(reads("7.0.15", 10) && reads("7.0.15", 9) && reads("7.4.1", 12) && reads("5.0.14", 9));
        assert!(!reads("6.2.14", 10) && !reads("7.0.15", 11) && !reads("7.2.4", 12) && !reads("7.4.0", 80));
    }

    fn survey(version: u16) -> Survey {
        Survey { keys: 10, version, ..Survey::default() }
    }

    /// The plan for `version`, or the refusal's message.
    fn check(survey: Survey, version: &str) -> Result<Option<Plan>, String> {
        commands_plan(&survey, version, "redis at h:1 is old").map_err(|error| match error {
            Error::TargetTooOld(message) => message,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn a_redis_that_reads_the_data_takes_payloads() {
        assert_eq!(check(survey(10), "7.0.15"), Ok(None));
        assert_eq!(check(Survey { streams: true, functions: 2, ..survey(11) }, "7.2.4"), Ok(None));
        assert_eq!(check(survey(10), "not a version"), Ok(None));
    }

    #[test]
    fn an_older_redis_takes_commands_in_its_dialect_and_is_told_why() {
        let plan = check(survey(80), "7.0.15").unwrap().unwrap();
        assert_eq!((plan.max_payload, plan.dialect, plan.functions_as_code), (0, Dialect::NEWEST, true));
        assert_eq!(plan.warnings.len(), 1);
        assert!(plan.warnings[0].starts_with("redis at h:1 is old, older than the data (rdb version 80"));
        let plan = check(Survey { streams: true, ..survey(10) }, "6.0.20").unwrap().unwrap();
        assert_eq!(plan.dialect, Dialect { stream_counters: false, create_consumer: false });
        let warnings = plan.warnings.join("\n");
        assert!(
            warnings.contains("entries-added") && warnings.contains("consumers without pending"),
            "{warnings}"
        );
        let plan = check(Survey { streams: true, ..survey(10) }, "6.2.14").unwrap().unwrap();
        assert_eq!(plan.dialect, Dialect { stream_counters: false, create_consumer: true });
    }

    #[test]
    fn what_an_older_redis_cannot_hold_is_refused_by_name() {
        let everything = Survey { streams: true, functions: 1, field_expiry: true, ..survey(12) };
        let message = check(everything.clone(), "4.0.14").unwrap_err();
        for what in ["streams (redis 5.0", "function libraries (redis 7.0", "hash fields with their own ttl"]
        {
            assert!(message.contains(what), "{message}");
        }
        assert!(!message.contains("anything"), "{message}");
        assert!(
            check(everything, "7.2.4")
                .unwrap_err()
                .ends_with("hash fields with their own ttl (redis 7.4 or newer)")
        );
        assert!(
            check(survey(9), "3.2.12")
                .unwrap_err()
                .contains("redis 4.0 or newer loads data through commands")
        );
    }
}

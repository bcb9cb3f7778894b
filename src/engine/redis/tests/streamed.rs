//! Loads of a checked stream (`streamed.rs`) into real `redis-server` processes: the
//! target loads the data as our replica while it is read, and data that is not what it
//! claims to be never completes a load (the target keeps its own). Sent as `RESTORE`
//! commands instead, the data is checked whole first and read again, never spooled.

use std::sync::{Arc, Mutex};

use super::{
    Again, DISK, Given, RedisServer, digest, load_as, load_every_type, read_body, run_text, snapshot,
};
use crate::domain::ConnectionUri;
use crate::engine::redis::{LoadMethod, RedisEngine};
use crate::engine::{DataStream, Engine, Error, LoadData, Loaded};

/// An RDB of every type plus 100,000 plain keys (a few MiB, so that the transfer goes
/// in several chunks), with strings stored as they are (no LZF) unless `compressed`
/// (then the filler values compress), and the source's digest.
async fn every_type_rdb(compressed: bool) -> (Vec<u8>, String) {
    let mut args = DISK.to_vec();
    args.extend_from_slice(&["--rdbcompression", if compressed { "yes" } else { "no" }]);
    let source = RedisServer::start(&args).await;
    let mut client = source.client("").await;
    load_every_type(&mut client).await;
    run_text(&mut client, &["DEBUG", "POPULATE", "100000", "filler", "40"]).await;
    let (snapshot, _) = snapshot(&source.uri("")).await;
    let data = read_body(&mut snapshot.unwrap()).await.unwrap();
    (data, digest(&mut client).await)
}

/// What [`load_checked`] saw.
struct Checked {
    loaded: Result<Loaded, Error>,
    phases: Vec<&'static str>,
    /// How many times the data was read again.
    reopened: usize,
}

/// Loads `data` as a backup's checked stream into the server at `uri` with `engine`,
/// checking that nothing is written to the spool directory meanwhile.
async fn load_checked(engine: &RedisEngine, uri: &ConnectionUri, data: &[u8]) -> Checked {
    let spool = tempfile::tempdir().unwrap();
    let phases = Mutex::new(Vec::new());
    let record = |phase: &'static str| phases.lock().unwrap().push(phase);
    let mut body = data;
    let again = Arc::new(Again::new(data));
    let stream = DataStream {
        body: &mut body,
        spool_dir: spool.path(),
        checked_length: Some(data.len() as u64),
        from_catalog: true,
        reread: Some(again.clone()),
    };
    // Data that can be read again is never written out as it goes.
    let spooled = Mutex::new((0, 0));
    let watch_spool = |_, _, _| {
        let mut spooled = spooled.lock().unwrap();
        spooled.0 += 1;
        spooled.1 += std::fs::read_dir(spool.path()).unwrap().count();
    };
    let loaded = engine.load(uri, None, LoadData::Stream(stream), &record, &watch_spool).await;
    let (reports, spooled) = spooled.into_inner().unwrap();
    if loaded.is_ok() {
        assert!(reports > 1, "{reports} progress reports");
    }
    assert_eq!(spooled, 0, "files in the spool directory during the load");
    let left: Vec<_> = std::fs::read_dir(spool.path()).unwrap().collect();
    assert!(left.is_empty(), "the spool file is removed: {left:?}");
    Checked { loaded, phases: phases.into_inner().unwrap(), reopened: again.reopened() }
}

#[tokio::test]
async fn a_checked_stream_loads_by_replication_as_it_is_read() {
    // Stored plain or with LZF strings, which the target gets stored plain.
    for compressed in [false, true] {
        let (data, source_digest) = every_type_rdb(compressed).await;
        assert!(data.len() > 4 << 20, "{} bytes", data.len());
        let target = RedisServer::start(&[]).await;
        let mut target_client = target.client("").await;
        run_text(&mut target_client, &["SET", "stale", "replaced"]).await;

        let checked = load_checked(&RedisEngine::default(), &target.uri(""), &data).await;
        let loaded = checked.loaded.unwrap();
        assert_eq!(loaded.method, "replication");
        assert_eq!(checked.phases, ["replicating"], "no check of the whole data before the load");
        assert_eq!(checked.reopened, 0, "a load that went through never reads the data again");
        assert_eq!(digest(&mut target_client).await, source_digest, "compressed: {compressed}");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let log = target.log();
        assert!(log.contains("MASTER <-> REPLICA sync: Finished with success"), "{log}");
    }
}

#[tokio::test]
async fn a_stream_that_is_not_what_it_claims_never_completes_a_load() {
    let (data, _) = every_type_rdb(false).await;
    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;
    run_text(&mut target_client, &["SET", "precious", "kept"]).await;
    let before = digest(&mut target_client).await;

    // A changed byte inside a value parses: only the checksum at the end, which is
    // never sent, tells. A stream shorter than it claims never reaches its end.
    let changed = {
        let mut changed = data.clone();
        let at = changed.windows(8).rposition(|window| window == b"value:50").expect("a filler value");
        changed[at] = b'V';
        changed
    };
    let short = &data[..data.len() - 1000];
    for (damaged, claimed) in [(&changed[..], data.len()), (short, data.len())] {
        let backup = Given::Backup { claimed: claimed as u64 };
        let result = load_as(&RedisEngine::default(), &target.uri(""), damaged, backup).await;
        assert!(matches!(result, Err(Error::Corrupt(_))), "{result:?}");
        assert_eq!(digest(&mut target_client).await, before, "the target keeps its data");
        let role = run_text(&mut target_client, &["ROLE"]).await;
        assert!(format!("{role:?}").contains("master"), "a master again: {role:?}");
    }
    assert!(!target.log().contains("Finished with success"), "{}", target.log());
}

#[tokio::test]
async fn a_backup_sent_as_commands_is_checked_whole_then_read_again_not_spooled() {
    let (data, source_digest) = every_type_rdb(true).await;
    let restore = RedisEngine::default().with_load_method(LoadMethod::Restore);
    // Asked for; with keys too big for one payload (the check decodes them in a second
    // read, as the load does); and after a target declined replication.
    let ways = [
        ("RESTORE commands", restore.clone(), "", 1),
        ("keys too big for a payload", restore.with_max_payload(4096), "", 2),
        ("replication declined", RedisEngine::default(), "loader:pw@", 1),
    ];
    for (way, engine, user, reads) in ways {
        let target = RedisServer::start(&[]).await;
        let mut target_client = target.client("").await;
        run_text(&mut target_client, &["SET", "stale", "replaced"]).await;
        let acl = ["ACL", "SETUSER", "loader", "on", ">pw", "~*", "&*", "+@all", "-replicaof"];
        run_text(&mut target_client, &acl).await;

        let checked = load_checked(&engine, &target.uri(user), &data).await;
        let loaded = checked.loaded.unwrap();
        assert_eq!(loaded.method, "restore", "{way}");
        assert_eq!(checked.reopened, reads, "{way}: reads after the check");
        assert_eq!(digest(&mut target_client).await, source_digest, "{way}");
        assert!(!target.log().contains("MASTER <-> REPLICA"), "{way}: {}", target.log());
    }
}

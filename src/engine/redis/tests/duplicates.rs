//! Data that holds a key twice: Redis's loader stops the whole server when it meets one
//! (a replica included), so data from elsewhere is refused as damaged before anything
//! reaches the target, whichever way it would have gone. A function library twice only
//! fails a replica's load, and is loaded the other way.

use super::{RedisServer, assert_refused_unchanged, populated_rdb, run_text, sealed};
use crate::domain::reason;
use crate::engine::redis::RedisEngine;
use crate::engine::{Engine, LoadData};

/// A real RDB of 2000 keys (`plain:0` to `plain:1999`) with `plain:5` added again at its
/// end.
async fn rdb_with_a_key_twice() -> Vec<u8> {
    let data = populated_rdb(2000, "plain").await;
    // A string key: its type, the key, the value; then the end of the file.
    let again = b"\x00\x07plain:5\x02hi\xff";
    sealed([&data[..data.len() - 9], &again[..]].concat())
}

#[tokio::test]
async fn a_key_held_twice_is_refused_before_anything_changes() {
    let rdb = rdb_with_a_key_twice().await;
    assert_refused_unchanged(
        &rdb,
        "twice, which Redis refuses to load (its server stops): key 'plain:5' in database 0",
    )
    .await;
}

/// A real RDB with function library `twice` loaded, and its record added again.
async fn rdb_with_a_library_twice() -> Vec<u8> {
    let source = RedisServer::start(&["--rdbcompression", "no"]).await;
    let mut client = source.client("").await;
    let code = "#!lua name=twice\nredis.register_function('once', function() return 1 end)";
    run_text(&mut client, &["FUNCTION", "LOAD", code]).await;
    run_text(&mut client, &["SET", "k", "v"]).await;
    let (snapshot, _) = super::snapshot(&source.uri("")).await;
    let data = super::read_body(&mut snapshot.unwrap()).await.unwrap();
    // The function opcode, the code's length (under 16384: two bytes), the code.
    let mut record = vec![0xf5, 0x40 | (code.len() >> 8) as u8, code.len() as u8];
    record.extend_from_slice(code.as_bytes());
    let at = data.windows(record.len()).position(|window| window == record).expect("the library's record")
        + record.len();
    sealed([&data[..at], &record, &data[at..data.len() - 8]].concat())
}

// Unlike a key, a library held twice does not stop a replica: its load fails ("library
// already exists"), it keeps its data, and the load goes on with RESTORE commands, where
// `FUNCTION RESTORE ... REPLACE` lets the later copy win.
#[tokio::test]
async fn a_function_library_held_twice_loads_with_restore_commands() {
    let rdb = rdb_with_a_library_twice().await;
    let target = RedisServer::start(&[]).await;
    let mut client = target.client("").await;
    run_text(&mut client, &["SET", "precious", "replaced"]).await;
    let spool = tempfile::tempdir().unwrap();
    let path = spool.path().join("dump.rdb");
    std::fs::write(&path, &rdb).unwrap();

    let files = LoadData::Files(std::slice::from_ref(&path));
    let loaded =
        RedisEngine::default().load(&target.uri(""), None, files, &|_| {}, &|_, _, _| {}).await.unwrap();
    assert_eq!((loaded.method, loaded.items), ("restore", 1));
    let reasons: Vec<&str> = loaded.warnings.iter().map(|warning| warning.reason).collect();
    assert_eq!(reasons, [reason::REPLICATION_DECLINED], "{:?}", loaded.warnings);

    assert!(matches!(run_text(&mut client, &["FCALL", "once", "0"]).await, super::Reply::Integer(1)));
    assert!(matches!(run_text(&mut client, &["DBSIZE"]).await, super::Reply::Integer(1)));
    assert!(target.log().contains("already exists"), "{}", target.log());
}

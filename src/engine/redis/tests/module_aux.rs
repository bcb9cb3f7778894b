//! Module data not tied to a key, of a module type with no value in the data: the target
//! cannot be asked whether it has the module (a replica without it stops its whole
//! server), so it never goes by replication; RESTORE commands load the keys and say the
//! module data was left out.

use super::{RedisServer, populated_rdb, run_text};
use crate::domain::reason;
use crate::engine::redis::RedisEngine;
use crate::engine::redis::crc64::CRC64;
use crate::engine::redis::rdb::MODULE_ID;
use crate::engine::{DataStream, Engine, LoadData, Loaded};

/// A real RDB with aux data of module type "MyModType" added after its header.
async fn rdb_with_module_aux() -> Vec<u8> {
    let data = populated_rdb(1000, "plain").await;
    // The module aux opcode, the module id, `when` as a module uint, a string, the end.
    let mut aux = vec![0xf7, 0x81];
    aux.extend_from_slice(&MODULE_ID.to_be_bytes());
    aux.extend_from_slice(b"\x02\x02\x05\x02hi\x00");
    let mut rdb = [&data[..9], &aux, &data[9..data.len() - 8]].concat();
    let checksum = CRC64.checksum(&rdb);
    rdb.extend_from_slice(&checksum.to_le_bytes());
    rdb
}

fn assert_loaded_without_the_module_data(loaded: &Loaded) {
    assert_eq!((loaded.method, loaded.items), ("restore", 1000));
    let reasons: Vec<&str> = loaded.warnings.iter().map(|warning| warning.reason).collect();
    assert_eq!(
        reasons,
        [reason::REPLICATION_DECLINED, reason::MODULE_NOT_SUPPORTED],
        "{:?}",
        loaded.warnings
    );
    assert!(loaded.warnings[0].message.contains("(MyModType)"), "{:?}", loaded.warnings);
}

#[tokio::test]
async fn module_aux_data_of_an_unknown_type_never_goes_by_replication() {
    let rdb = rdb_with_module_aux().await;
    let target = RedisServer::start(&[]).await;
    let mut client = target.client("").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.rdb");
    std::fs::write(&path, &rdb).unwrap();

    let loaded = RedisEngine::default()
        .load(&target.uri(""), None, LoadData::Files(std::slice::from_ref(&path)), &|_| {}, &|_, _, _| {})
        .await
        .unwrap();
    assert_loaded_without_the_module_data(&loaded);

    // Streamed, the walk stops at the module data; the whole file then goes the same way.
    run_text(&mut client, &["FLUSHALL"]).await;
    let mut body = &rdb[..];
    let stream = DataStream {
        body: &mut body,
        spool_dir: dir.path(),
        checked_length: Some(rdb.len() as u64),
        from_catalog: true,
    };
    let loaded = RedisEngine::default()
        .load(&target.uri(""), None, LoadData::Stream(stream), &|_| {}, &|_, _, _| {})
        .await;
    assert_loaded_without_the_module_data(&loaded.unwrap());

    assert!(matches!(run_text(&mut client, &["DBSIZE"]).await, super::Reply::Integer(1000)));
    let log = target.log();
    assert!(!log.contains("AUX module data") && !log.contains("Finished with success"), "{log}");
}

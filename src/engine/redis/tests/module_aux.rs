//! Module data not tied to a key, of a module type with no value in the data: the target
//! cannot be asked whether it has the module (a replica without it stops its whole
//! server), so it never goes by replication; RESTORE commands load the keys and say the
//! module data was left out.

use super::{Given, RedisServer, load_as, populated_rdb, run_text, sealed};
use crate::domain::reason;
use crate::engine::Loaded;
use crate::engine::redis::RedisEngine;
use crate::engine::redis::rdb::MODULE_ID;

/// A real RDB with aux data of module type "MyModType" added after its header.
async fn rdb_with_module_aux() -> Vec<u8> {
    let data = populated_rdb(1000, "plain").await;
    // The module aux opcode, the module id, `when` as a module uint, a string, the end.
    let mut aux = vec![0xf7, 0x81];
    aux.extend_from_slice(&MODULE_ID.to_be_bytes());
    aux.extend_from_slice(b"\x02\x02\x05\x02hi\x00");
    sealed([&data[..9], &aux, &data[9..data.len() - 8]].concat())
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
    let loaded = load_as(&RedisEngine::default(), &target.uri(""), &rdb, Given::File).await;
    assert_loaded_without_the_module_data(&loaded.unwrap());

    // Streamed, the walk stops at the module data; the whole file then goes the same way.
    run_text(&mut client, &["FLUSHALL"]).await;
    let backup = Given::Backup { claimed: rdb.len() as u64 };
    let loaded = load_as(&RedisEngine::default(), &target.uri(""), &rdb, backup).await;
    assert_loaded_without_the_module_data(&loaded.unwrap());

    assert!(matches!(run_text(&mut client, &["DBSIZE"]).await, super::Reply::Integer(1000)));
    let log = target.log();
    assert!(!log.contains("AUX module data") && !log.contains("Finished with success"), "{log}");
}

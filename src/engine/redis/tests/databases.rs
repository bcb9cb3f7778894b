//! Data in a numbered database the target does not have (a source with `databases 32`,
//! a target with the default 16): every way of loading refuses it before anything is
//! changed, where a replica sent it would stop its whole server.

use super::{Connection, DISK, Given, RedisServer, digest, load_as, read_body, run_text, snapshot};
use crate::domain::{Code, reason};
use crate::engine::Error;
use crate::engine::redis::{LoadMethod, RedisEngine};

/// An RDB with keys in databases 0, 5 and 20 of a server with 32, and its digest.
async fn rdb_up_to_database_20() -> (Vec<u8>, String) {
    let mut args = DISK.to_vec();
    args.extend_from_slice(&["--databases", "32"]);
    let source = RedisServer::start(&args).await;
    let mut client = source.client("").await;
    for db in ["0", "5", "20"] {
        run_text(&mut client, &["SELECT", db]).await;
        run_text(&mut client, &["DEBUG", "POPULATE", "20000", &format!("db{db}"), "32"]).await;
    }
    run_text(&mut client, &["SELECT", "0"]).await;
    rdb_of(&source, &mut client).await
}

/// A snapshot of `source`'s data as an RDB, and the digest of that data.
async fn rdb_of(source: &RedisServer, client: &mut Connection) -> (Vec<u8>, String) {
    let (snapshot, _) = snapshot(&source.uri("")).await;
    let data = read_body(&mut snapshot.unwrap()).await.unwrap();
    (data, digest(client).await)
}

#[tokio::test]
async fn a_database_the_target_lacks_is_refused_before_anything_changes() {
    let (data, _) = rdb_up_to_database_20().await;
    let target = RedisServer::start(&[]).await;
    let mut client = target.client("").await;
    run_text(&mut client, &["SET", "precious", "kept"]).await;
    let before = digest(&mut client).await;

    let backup = Given::Backup { claimed: data.len() as u64 };
    let ways = [
        ("streamed, by replication", RedisEngine::default(), backup),
        ("a file, by replication", RedisEngine::default(), Given::File),
        (
            "a file, RESTORE commands",
            RedisEngine::default().with_load_method(LoadMethod::Restore),
            Given::File,
        ),
        ("streamed, RESTORE commands", RedisEngine::default().with_load_method(LoadMethod::Restore), backup),
    ];
    for (way, engine, given) in ways {
        let error = load_as(&engine, &target.uri(""), &data, given).await.unwrap_err();
        let Error::TooFewDatabases(message) = &error else { panic!("{way}: {error:?}") };
        assert_eq!(error.code_and_reason(), (Code::FailedPrecondition, reason::TARGET_TOO_FEW_DATABASES));
        assert!(message.contains("keys in database 20"), "{way}: {message}");
        assert!(message.contains("`databases` setting to at least 21"), "{way}: {message}");
        assert_eq!(digest(&mut client).await, before, "{way}: the target keeps its data");
        let role = run_text(&mut client, &["ROLE"]).await;
        assert!(format!("{role:?}").contains("master"), "{way}: a master again: {role:?}");
    }
    let log = target.log();
    assert!(!log.contains("Finished with success") && !log.contains("FATAL"), "{log}");

    // A user who may not SELECT is told so, not that the database is missing.
    run_text(&mut client, &["ACL", "SETUSER", "noselect", "on", ">pw", "~*", "+@all", "-select"]).await;
    let uri = target.uri("noselect:pw@");
    let error = load_as(&RedisEngine::default(), &uri, &data, Given::File).await.unwrap_err();
    assert!(matches!(&error, Error::AuthFailed(message) if message.contains("run SELECT")), "{error:?}");
    assert_eq!(digest(&mut client).await, before, "the target keeps its data");

    // A cluster node has database 0 only, whatever its setting says.
    let node = RedisServer::start(&["--cluster-enabled", "yes"]).await;
    let error = load_as(&RedisEngine::default(), &node.uri(""), &data, Given::File).await.unwrap_err();
    assert!(error.to_string().ends_with("a cluster node has only database 0"), "{error}");
}

#[tokio::test]
async fn a_target_with_the_databases_loads_them_as_it_reads_them() {
    let (data, source_digest) = rdb_up_to_database_20().await;
    let target = RedisServer::start(&["--databases", "21"]).await;
    let given = Given::Backup { claimed: data.len() as u64 };
    let loaded = load_as(&RedisEngine::default(), &target.uri(""), &data, given).await.unwrap();
    assert_eq!((loaded.method, loaded.items), ("replication", 60_000));
    assert_eq!(digest(&mut target.client("").await).await, source_digest);
    assert!(!target.log().contains("I/O error trying to sync"), "never cut: {}", target.log());
}

/// An RDB of 5,000 plain strings whose keys hash to many slots, and its digest.
async fn strings_rdb() -> (Vec<u8>, String) {
    let source = RedisServer::start(DISK).await;
    let mut client = source.client("").await;
    run_text(&mut client, &["DEBUG", "POPULATE", "5000", "key", "16"]).await;
    rdb_of(&source, &mut client).await
}

#[tokio::test]
async fn a_user_without_mset_gets_its_strings_as_restores() {
    let (data, source_digest) = strings_rdb().await;
    let target = RedisServer::start(&[]).await;
    let mut admin = target.client("").await;
    run_text(&mut admin, &["ACL", "SETUSER", "nomset", "on", ">pw", "~*", "+@all", "-mset"]).await;
    let engine = RedisEngine::default().with_load_method(LoadMethod::Restore);
    let loaded = load_as(&engine, &target.uri("nomset:pw@"), &data, Given::File).await.unwrap();
    assert_eq!((loaded.method, loaded.items), ("restore", 5000));
    assert_eq!(digest(&mut admin).await, source_digest, "no probe key is left either");
}

#[tokio::test]
async fn a_cluster_node_gets_its_strings_one_command_each() {
    // One MSET of keys in several slots is what a cluster node refuses.
    let (data, source_digest) = strings_rdb().await;

    let node = RedisServer::start(&["--cluster-enabled", "yes"]).await;
    let mut node_client = node.client("").await;
    run_text(&mut node_client, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !format!("{:?}", run_text(&mut node_client, &["CLUSTER", "INFO"]).await)
        .contains("cluster_state:ok")
    {
        assert!(std::time::Instant::now() < deadline, "the one-node cluster is not up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let loaded = load_as(&RedisEngine::default(), &node.uri(""), &data, Given::File).await.unwrap();
    assert_eq!((loaded.method, loaded.items), ("restore", 5000));
    assert_eq!(digest(&mut node_client).await, source_digest);

    // A server that is not a cluster node takes them in batches, with the same data.
    let target = RedisServer::start(&[]).await;
    let engine = RedisEngine::default().with_load_method(LoadMethod::Restore);
    let loaded = load_as(&engine, &target.uri(""), &data, Given::File).await.unwrap();
    assert_eq!((loaded.method, loaded.items), ("restore", 5000));
    assert_eq!(digest(&mut target.client("").await).await, source_digest);
}

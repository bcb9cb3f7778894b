//! RestoreBackup against real redis-servers: a backup loads into another server (or its
//! own) with the same DEBUG DIGEST, TTLs and function libraries; a damaged backup fails
//! with SOURCE_CORRUPT and leaves the target exactly as it was; a backup newer than its
//! target (Valkey 9's, which sends RDB 11 to a replica) loads through commands, with a
//! warning on the operation.

use cellar::engine::redis::LoadMethod;

use crate::support::{
    OperationExt, RedisOptions, RedisServer, ServerOptions, TestServer, assert_code, backup_of, blocking, pb,
};

/// A source with every type, a TTL and a function library, and a READY backup of it.
async fn backed_up_source(server: &TestServer, compression: pb::Compression) -> (RedisServer, pb::Backup) {
    let name = format!("restore-source-{}", compression.as_str_name().to_ascii_lowercase().replace('_', "-"));
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_every_type();
        source.call(&[
            "FUNCTION",
            "LOAD",
            "#!lua name=cellarlib\nredis.register_function('answer', function() return 42 end)",
        ]);
        source
    });
    let database = server.register_redis(&name, &source).await;
    let created = server
        .start_backup(pb::CreateBackupRequest { compression: compression as i32, ..backup_of(&database.id) })
        .await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    (source, done.response_backup().expect("the backup").clone())
}

async fn restore(server: &TestServer, backup: &pb::Backup, target_database_id: &str) -> pb::Operation {
    let started = server.start_restore(backup, target_database_id).await;
    assert_eq!(started.meta().kind, pb::OperationKind::Restore as i32);
    server.wait_done(&started.name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_by_replication_with_the_same_digest_ttls_and_functions() {
    restores_faithfully(LoadMethod::Auto, "replication").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_with_restore_commands_with_the_same_digest_ttls_and_functions() {
    restores_faithfully(LoadMethod::Restore, "restore").await;
}

/// Backs up a source with every type in each compression and restores it into another
/// server (holding a key and a function library of its own) with `method`.
async fn restores_faithfully(method: LoadMethod, expected_method: &str) {
    let server =
        TestServer::start_with(ServerOptions { redis_load: method, ..ServerOptions::default() }).await;
    for compression in [pb::Compression::Zstd, pb::Compression::Gzip, pb::Compression::None] {
        let (source, backup) = backed_up_source(&server, compression).await;
        let target = blocking(|| RedisServer::start(RedisOptions::disk()));
        blocking(|| target.call(&["SET", "stale", "replaced by the restore"]));
        blocking(|| {
            target.call(&[
                "FUNCTION",
                "LOAD",
                "#!lua name=stalelib\nredis.register_function('stale', function() return 1 end)",
            ])
        });
        let target_database = server
            .register_redis(
                &format!(
                    "restore-target-{}",
                    compression.as_str_name().to_ascii_lowercase().replace('_', "-")
                ),
                &target,
            )
            .await;

        let done = restore(&server, &backup, &target_database.id).await;
        assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
        assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()), "{compression:?}");
        assert_eq!(blocking(|| target.key_count()), blocking(|| source.key_count()));
        let ttl = blocking(|| target.call(&["TTL", "with-ttl"])).text();
        let ttl: i64 = ttl.parse().unwrap_or_else(|_| panic!("TTL answered {ttl}"));
        assert!((86_398..=86_400).contains(&ttl), "the TTL survives within a second or two: {ttl}");
        assert_eq!(
            blocking(|| target.call(&["FCALL", "answer", "0"])).text(),
            "42",
            "the function library is restored"
        );
        let stale =
            format!("{:?}", blocking(|| target.call(&["FUNCTION", "LIST", "LIBRARYNAME", "stalelib"])));
        assert_eq!(stale, "Array(Some([]))", "the target's own libraries are replaced");

        let Some(pb::operation::Result::Response(pb::OperationResponse {
            result: Some(pb::operation_response::Result::Restore(result)),
        })) = &done.result
        else {
            panic!("a restore answers with a RestoreResult: {done:?}");
        };
        assert_eq!(result.backup_id, backup.id);
        assert_eq!(result.database_id, target_database.id);
        assert_eq!(result.items_loaded as u64, blocking(|| source.key_count()));
        assert_eq!(done.meta().progress.as_ref().unwrap().items_done, result.items_loaded);
        assert_eq!(result.load_method, expected_method, "{done:?}");
        assert!(done.meta().warnings.is_empty(), "{done:?}");
        let replication = blocking(|| target.call(&["INFO", "replication"])).text();
        assert!(replication.contains("role:master"), "the target is a master again: {replication}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_newer_than_its_target_loads_through_commands_with_a_warning() {
    let server = TestServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::valkey());
        source.load_every_type();
        source
    });
    let database = server.register_redis("restore-valkey-source", &source).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("the backup").clone();
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    let target_database = server.register_redis("restore-older-target", &target).await;

    let done = restore(&server, &backup, &target_database.id).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    let warnings = &done.meta().warnings;
    assert!(
        warnings.iter().any(|warning| warning.reason == "TARGET_TOO_OLD"
            && warning.code == 0
            && warning.message.contains("older than the data")),
        "{done:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_its_own_database_by_default() {
    let server = TestServer::start().await;
    let (source, backup) = backed_up_source(&server, pb::Compression::Zstd).await;
    let digest = blocking(|| source.digest());
    blocking(|| source.call(&["FLUSHALL"]));
    blocking(|| source.call(&["SET", "written", "after the backup"]));
    let named = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_name: "db1".into(),
        ..Default::default()
    };
    assert_code(server.backups().restore_backup(named).await, tonic::Code::InvalidArgument);
    let done = restore(&server, &backup, "").await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| source.digest()), digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_backup_fails_as_corrupt_and_the_target_keeps_its_data() {
    let server = TestServer::start().await;
    let (_source, backup) = backed_up_source(&server, pb::Compression::None).await;
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| target.call(&["SET", "precious", "must survive"]));
    let before = blocking(|| target.digest());
    let target_database = server.register_redis("damaged-target", &target).await;

    // One byte changed in the stored object: its SHA-256 no longer matches the catalog.
    let object = server.local_backups_dir().join(&backup.object_key);
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&object, &bytes).unwrap();

    let done = restore(&server, &backup, &target_database.id).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    assert_eq!(done.error().unwrap().reason, "SOURCE_CORRUPT", "{done:?}");
    assert_eq!(blocking(|| target.digest()), before, "the target is untouched");
    let spool = server.data_dir().join("spool");
    let left: Vec<_> =
        std::fs::read_dir(&spool).map(|entries| entries.flatten().collect()).unwrap_or_default();
    assert!(left.is_empty(), "the spool file is removed: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_requests_are_checked() {
    let server = TestServer::start().await;
    let request = pb::RestoreBackupRequest::default();
    assert_code(server.backups().restore_backup(request).await, tonic::Code::InvalidArgument);
    let request = pb::RestoreBackupRequest { backup_id: "not-an-id".into(), ..Default::default() };
    assert_code(server.backups().restore_backup(request).await, tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_lost_mid_load_fails_the_restore_as_unreachable() {
    let restore_commands = ServerOptions { redis_load: LoadMethod::Restore, ..ServerOptions::default() };
    let server = TestServer::start_with(restore_commands).await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.call(&["DEBUG", "POPULATE", "200000", "key", "16"]);
        source
    });
    let database = server.register_redis("lost-target-source", &source).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    let backup = server.wait_done(&created.name).await.response_backup().expect("the backup").clone();
    let mut target = blocking(|| RedisServer::start(RedisOptions::disk()));
    let target_database = server.register_redis("lost-target", &target).await;

    let request = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_id: target_database.id.clone(),
        ..Default::default()
    };
    let started = server.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    server
        .wait_for(&started.name, "the load to start", |operation| operation.meta().phase == "loading")
        .await;
    // Hold the target's writes so the load cannot finish, then lose the server.
    blocking(|| target.call(&["CLIENT", "PAUSE", "20000", "WRITE"]));
    blocking(|| target.kill());

    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    let error = done.error().expect("an error");
    assert_eq!(error.reason, "TARGET_UNREACHABLE", "{error:?}");
    assert!(error.message.contains("127.0.0.1"), "the message names the server: {error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_databases_and_odd_keys_restore_and_keys_expired_since_stay_gone() {
    let server = TestServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        let mut client = source.client();
        for db in 0..16 {
            client.ok(&["SELECT", &db.to_string()]);
            client.ok(&["SET", &format!("in-db-{db}"), &db.to_string()]);
        }
        client.ok(&["SELECT", "0"]);
        let odd: [(&[u8], &[u8]); 3] =
            [(b"key\r\nwith\x00bytes", b"value\r\n\x00"), (b"", b"empty key"), (b"empty value", b"")];
        for (key, value) in odd {
            client.ok_bytes(&[b"SET", key, value]);
        }
        client.ok(&["SET", "expires-soon", "v", "PX", "1500"]);
        source
    });
    let database = server.register_redis("odd-keys-source", &source).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    let backup = server.wait_done(&created.name).await.response_backup().expect("the backup").clone();

    // Let the short-lived key expire after the backup took it.
    crate::support::poll("expires-soon to expire", crate::support::PATIENCE, || async {
        (blocking(|| source.call(&["EXISTS", "expires-soon"])).text() == "0").then_some(())
    })
    .await;
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    let target_database = server.register_redis("odd-keys-target", &target).await;
    let done = restore(&server, &backup, &target_database.id).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.call(&["EXISTS", "expires-soon"])).text(), "0", "expired keys stay gone");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    for db in [1, 7, 15] {
        let value = blocking(|| {
            let mut client = target.client();
            client.ok(&["SELECT", &db.to_string()]);
            client.ok(&["GET", &format!("in-db-{db}")]).text()
        });
        assert_eq!(value, db.to_string());
    }
}

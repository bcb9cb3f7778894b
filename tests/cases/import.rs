//! ImportDatabase against real redis-servers: from a live server over its replication
//! protocol, and from several RDB files (plain, gzip, zstd, recognised by content) loaded
//! in order after one flush; a file newer than the target (Valkey 9's) loads through
//! commands with a warning on the operation; sources outside the allowed roots are
//! refused, and a file that is not an RDB fails with the target untouched.

use std::path::PathBuf;

use crate::support::files::compress;
use crate::support::{OperationExt, RedisOptions, RedisServer, TestServer, assert_code, blocking, pb};

async fn import(server: &TestServer, request: pb::ImportDatabaseRequest) -> pb::Operation {
    let started = server.imports().import_database(request).await.expect("ImportDatabase").into_inner();
    assert_eq!(started.meta().kind, pb::OperationKind::ImportDatabase as i32);
    server.wait_done(&started.name).await
}

/// A saved RDB of a server holding `keys` keys named `prefix:N`.
fn rdb_of(prefix: &str, keys: u32) -> (RedisServer, PathBuf) {
    let source = RedisServer::start(RedisOptions::disk());
    source.call(&["DEBUG", "POPULATE", &keys.to_string(), prefix, "32"]);
    source.call(&["SAVE"]);
    let path = source.dir().join("dump.rdb");
    (source, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_source_is_imported_with_the_same_digest() {
    let server = TestServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_every_type();
        source
    });
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| target.call(&["SET", "stale", "replaced"]));
    let database = server.register_redis("import-live-target", &target).await;
    let request = pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_connection_uri: source.uri(),
        ..Default::default()
    };
    let done = import(&server, request).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    let progress = done.meta().progress.clone().unwrap();
    assert_eq!(progress.items_done as u64, blocking(|| source.key_count()));
    assert!(progress.bytes_done > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rdb_files_load_in_order_after_one_flush_whatever_their_compression() {
    let server = TestServer::start().await;
    let (_a, plain) = blocking(|| rdb_of("alpha", 100));
    let (_b, second) = blocking(|| rdb_of("beta", 200));
    let (_c, third) = blocking(|| rdb_of("gamma", 300));
    // Named without the usual suffixes: the compression is recognised by content.
    let gzipped = compress(&second, "gzip", ".gz");
    let zstded = compress(&third, "zstd", ".zst");
    let disguised = zstded.with_extension("data");
    std::fs::rename(&zstded, &disguised).unwrap();

    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| target.call(&["SET", "stale", "flushed"]));
    let database = server.register_redis("import-files-target", &target).await;
    let uris = [plain, gzipped, disguised].iter().map(|path| format!("file://{}", path.display())).collect();
    let request = pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_uris: uris,
        ..Default::default()
    };
    let done = import(&server, request).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.key_count()), 600);
    for key in ["alpha:0", "beta:199", "gamma:299"] {
        assert_eq!(blocking(|| target.call(&["EXISTS", key])).text(), "1", "{key}");
    }
    assert_eq!(blocking(|| target.call(&["EXISTS", "stale"])).text(), "0", "the target was flushed first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_outside_the_roots_are_refused_and_non_rdb_data_leaves_the_target_untouched() {
    let server = TestServer::start().await;
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| target.call(&["SET", "precious", "kept"]));
    let before = blocking(|| target.digest());
    let database = server.register_redis("import-refused-target", &target).await;

    let outside = pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_uris: vec!["file:///etc/hostname".into()],
        ..Default::default()
    };
    assert_code(server.imports().import_database(outside).await, tonic::Code::PermissionDenied);

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.rdb");
    std::fs::write(&text, "this is not an rdb file at all\n".repeat(100)).unwrap();
    let request = pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_uris: vec![format!("file://{}", text.display())],
        ..Default::default()
    };
    let done = import(&server, request).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    assert_eq!(done.error().unwrap().reason, "SOURCE_CORRUPT", "{done:?}");
    assert_eq!(blocking(|| target.digest()), before, "the target is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_newer_than_the_target_loads_through_commands_with_a_warning() {
    let server = TestServer::start().await;
    let (source, path) = blocking(|| {
        let source = RedisServer::start(RedisOptions::valkey());
        source.load_every_type();
        source.call(&["SAVE"]);
        let path = source.dir().join("dump.rdb");
        (source, path)
    });
    assert!(std::fs::read(&path).unwrap().starts_with(b"VALKEY080"), "not a valkey 9 file");
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    let database = server.register_redis("import-newer-target", &target).await;
    let request = pb::ImportDatabaseRequest {
        database_id: database.id.clone(),
        source_uris: vec![format!("file://{}", path.display())],
        ..Default::default()
    };
    let done = import(&server, request).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    assert_eq!(blocking(|| target.digest()), blocking(|| source.digest()));
    let warnings = &done.meta().warnings;
    assert!(!warnings.is_empty(), "{done:?}");
    for warning in warnings {
        assert_eq!((warning.code, warning.reason.as_str()), (0, "TARGET_TOO_OLD"), "{warning:?}");
    }
    assert!(warnings[0].message.contains("every key was loaded through commands"), "{warnings:?}");
}

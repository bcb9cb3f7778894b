//! Backups end to end against real redis-servers: every compression, both transfer
//! forms of the replication protocol (RDB saved to disk and sent with its length, or
//! streamed diskless with an EOF mark), a password-protected source. Each backup is
//! followed with WatchOperation, checked against its stored object and manifest, and
//! restored into a fresh redis-server whose DEBUG DIGEST must match the source's.

use std::collections::HashMap;

use crate::support::{
    OperationExt, RedisOptions, RedisServer, TestServer, assert_no_secret, backup_of, backup_state, blocking,
    files, logs, pb,
};

const COMPRESSIONS: [pb::Compression; 3] =
    [pb::Compression::Zstd, pb::Compression::Gzip, pb::Compression::None];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_of_a_disk_transfer_restore_to_the_same_digest() {
    let source = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| source.load_every_type());
    let server = TestServer::start().await;
    let database = server.register_redis("disk-source", &source).await;
    for compression in COMPRESSIONS {
        back_up_and_verify(&server, &source, &database, compression).await;
    }
    let (disk, sockets) = source.syncs_started();
    assert_eq!((disk, sockets), (3, 0), "three full syncs through disk; redis log:\n{}", source.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_of_a_diskless_transfer_restore_to_the_same_digest() {
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    blocking(|| source.load_every_type());
    let server = TestServer::start().await;
    let database = server.register_redis("diskless-source", &source).await;
    for compression in COMPRESSIONS {
        back_up_and_verify(&server, &source, &database, compression).await;
    }
    let (disk, sockets) = source.syncs_started();
    assert_eq!((disk, sockets), (0, 3), "three diskless full syncs; redis log:\n{}", source.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_a_password_protected_source_never_shows_the_password() {
    let password = "src-pw-8c41d7e2";
    let source = blocking(|| RedisServer::start(RedisOptions::diskless().with_password(password)));
    blocking(|| source.load_every_type());
    let server = TestServer::start().await;
    let database = server.register_redis("protected", &source).await;
    assert_eq!(database.connection_uri, format!("redis://default:****@127.0.0.1:{}", source.port()));
    assert_no_secret(password, &database);

    let backup = back_up_and_verify(&server, &source, &database, pb::Compression::Zstd).await;
    assert_no_secret(password, &backup);
    let manifest = std::fs::read_to_string(manifest_path(&backup)).unwrap();
    assert!(!manifest.contains(password), "the manifest holds the password: {manifest}");

    // Sending the redacted URI back keeps the stored password: the next backup still
    // authenticates.
    let change = pb::Database {
        id: database.id.clone(),
        connection_uri: database.connection_uri.clone(),
        labels: HashMap::from([("rotated".to_owned(), "no".to_owned())]),
        ..Default::default()
    };
    let request = pb::UpdateDatabaseRequest {
        database: Some(change),
        update_mask: Some(prost_types::FieldMask { paths: vec!["connection_uri".into(), "labels".into()] }),
    };
    let updated = server.databases().update_database(request).await.unwrap().into_inner();
    assert_no_secret(password, &updated);
    back_up_and_verify(&server, &source, &updated, pb::Compression::Gzip).await;

    let everything = server.all_operations("").await;
    assert_no_secret(password, &everything);
    let listed = server.backups().list_backups(pb::ListBackupsRequest::default()).await.unwrap().into_inner();
    assert_no_secret(password, &listed);
    logs::assert_not_logged(password);
}

/// Takes a backup with `compression`, follows it to the end, and checks everything the
/// contract promises about it. Returns the READY backup.
async fn back_up_and_verify(
    server: &TestServer,
    source: &RedisServer,
    database: &pb::Database,
    compression: pb::Compression,
) -> pb::Backup {
    let labels = HashMap::from([("compression".to_owned(), compression.as_str_name().to_lowercase())]);
    let request = pb::CreateBackupRequest {
        compression: compression as i32,
        labels: labels.clone(),
        ..backup_of(&database.id)
    };
    let created = server.start_backup(request).await;
    assert!(created.name.starts_with("operations/"), "{}", created.name);
    assert_eq!(created.meta().kind, pb::OperationKind::Backup as i32);
    assert_eq!(created.meta().database_id, database.id);
    let backup_id = created.meta().backup_id.clone();
    assert!(!backup_id.is_empty(), "the backup id is known at once: {created:?}");
    assert!(!created.done);

    // While it runs, the backup exists and is not READY.
    let early = server.backup(&backup_id).await;
    assert!(matches!(backup_state(&early), pb::BackupState::Creating | pb::BackupState::Ready), "{early:?}");

    let mut states = vec![created.clone()];
    states.extend(server.watch_all(&created.name).await);
    check_progression(&states);
    let finished = states.last().unwrap().clone();
    assert_eq!(finished.state(), pb::OperationState::Succeeded, "{finished:?}");
    assert!(finished.meta().end_time.is_some());
    assert_eq!(finished.meta().queue_position, 0);
    let progress = finished.meta().progress.clone().unwrap();
    assert_eq!(progress.percent, 100.0, "{progress:?}");

    let backup = server.backup(&backup_id).await;
    assert_eq!(finished.response_backup(), Some(&backup), "the response is the READY backup");
    assert_eq!(backup_state(&backup), pb::BackupState::Ready);
    assert_eq!(backup.database_id, database.id);
    assert_eq!(backup.instance_name, database.name);
    assert_eq!(backup.project_id, "default");
    assert_eq!(backup.engine, pb::Engine::Redis as i32);
    assert_eq!(backup.server_version, source.version());
    assert_eq!(backup.compression, compression as i32);
    assert_eq!(backup.format, "rdb");
    assert_eq!(backup.origin, pb::BackupOrigin::OnDemand as i32);
    assert_eq!(backup.labels, labels);
    let created = backup.create_time.as_ref().expect("create_time");
    let day = chrono::DateTime::from_timestamp(created.seconds, 0).unwrap().format("%Y-%m-%d").to_string();
    assert!(backup.name.contains(&day), "the default name comes from the creation time: {}", backup.name);
    assert_eq!(backup.database_name, "");

    // The stored object: its size and checksum are the backup's.
    let object = files::path_of_uri(&backup.uri);
    let local_root = server.local_backups_dir();
    assert!(
        object.starts_with(&local_root),
        "{} is not in the local destination {}",
        object.display(),
        local_root.display()
    );
    assert!(backup.uri.ends_with(&backup.object_key), "uri {} vs key {}", backup.uri, backup.object_key);
    let suffix = match compression {
        pb::Compression::Zstd => ".rdb.zst",
        pb::Compression::Gzip => ".rdb.gz",
        _ => ".rdb",
    };
    assert!(backup.object_key.ends_with(suffix), "{}", backup.object_key);
    let stored_size = std::fs::metadata(&object).unwrap().len();
    assert_eq!(backup.size_bytes as u64, stored_size);
    assert_eq!(backup.sha256, files::sha256_hex(&object));
    assert_eq!(backup.sha256.len(), 64);

    // The manifest beside it.
    let manifest_path = manifest_path(&backup);
    assert_eq!(manifest_path.parent(), object.parent(), "the manifest is beside the data");
    assert_eq!(files::path_of_uri(&backup.manifest_uri), manifest_path);
    let manifest = files::read_json(&manifest_path);
    assert_eq!(manifest["engine"], "redis", "{manifest}");
    assert_eq!(manifest["server_version"], source.version().as_str(), "{manifest}");
    assert_eq!(manifest["sha256"], backup.sha256.as_str(), "{manifest}");
    assert_eq!(manifest["compression"], compression_word(compression), "{manifest}");
    let format_version = manifest["format_version"].as_str().unwrap_or_default();
    assert!(format_version.parse::<u32>().is_ok_and(|version| version >= 9), "RDB version: {manifest}");

    // Decompress, load into a fresh redis-server, compare digests.
    let scratch = tempfile::tempdir().unwrap();
    let rdb = scratch.path().join("dump.rdb");
    blocking(|| files::decompress(&object, compression, &rdb));
    let logical_size = std::fs::metadata(&rdb).unwrap().len();
    assert_eq!(backup.logical_size_bytes as u64, logical_size);
    assert_eq!(progress.bytes_done as u64, logical_size, "bytes_done counts the bytes read from redis");
    let header = std::fs::read(&rdb).unwrap();
    assert!(header.starts_with(b"REDIS"), "not an RDB file");
    let restored = blocking(|| RedisServer::from_rdb(&rdb));
    assert_eq!(blocking(|| restored.key_count()), blocking(|| source.key_count()));
    assert_eq!(blocking(|| restored.digest()), blocking(|| source.digest()), "the restored data differs");
    backup
}

fn manifest_path(backup: &pb::Backup) -> std::path::PathBuf {
    files::path_of_uri(&backup.uri).with_file_name("manifest.json")
}

fn compression_word(compression: pb::Compression) -> &'static str {
    match compression {
        pb::Compression::Zstd => "zstd",
        pb::Compression::Gzip => "gzip",
        pb::Compression::None => "none",
        pb::Compression::Unspecified => "unspecified",
    }
}

/// The states a watcher saw: QUEUED → RUNNING → SUCCEEDED in order (steps may be skipped,
/// never reversed), `bytes_done` never decreasing, `done` only on the last one.
pub(crate) fn check_progression(states: &[pb::Operation]) {
    let rank = |state: pb::OperationState| match state {
        pb::OperationState::Queued => 0,
        pb::OperationState::Running => 1,
        pb::OperationState::Cancelling => 2,
        pb::OperationState::Succeeded | pb::OperationState::Failed | pb::OperationState::Cancelled => 3,
        pb::OperationState::Unspecified => panic!("UNSPECIFIED state in {states:?}"),
    };
    assert!(!states.is_empty());
    for pair in states.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(
            rank(before.state()) <= rank(after.state()),
            "state went back: {:?} -> {:?}",
            before.state(),
            after.state()
        );
        assert!(
            after.bytes_done() >= before.bytes_done(),
            "bytes_done went back: {} -> {}",
            before.bytes_done(),
            after.bytes_done()
        );
        assert_eq!(before.name, after.name);
    }
    let (last, earlier) = states.split_last().unwrap();
    assert!(last.done, "the watch ends with done = true: {last:?}");
    assert!(earlier.iter().all(|operation| !operation.done), "done before the last message: {states:?}");
    match last.state() {
        pb::OperationState::Succeeded => assert!(last.error().is_none() && last.result.is_some(), "{last:?}"),
        _ => assert!(last.error().is_some(), "a failed or cancelled operation carries its error: {last:?}"),
    }
}

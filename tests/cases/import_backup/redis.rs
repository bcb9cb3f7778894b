//! Redis: a live server and RDB archives (gzip over HTTP, zstd over FTP with the
//! request's credentials, gzip on S3 with keys in `credentials`) each become a READY
//! IMPORTED backup that restores into another server with the source's digest, and no
//! secret shows.

use super::*;
use crate::support::files::sha256_hex;
use crate::support::object_stores::Moto;
use crate::support::storage_servers::StorageServer;
use crate::support::{HttpServer, RedisOptions, RedisServer, assert_no_secret, blocking, logs};

/// A saved Redis holding every type; the server stays up.
fn saved_source() -> RedisServer {
    let source = RedisServer::start(RedisOptions::disk());
    source.load_every_type();
    source.call(&["SAVE"]);
    source
}

/// Restores `backup` into a fresh registered Redis (holding a stale key) and answers
/// its digest after.
async fn digest_after_restore(server: &TestServer, backup: &pb::Backup, name: &str) -> String {
    let target = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| target.call(&["SET", "stale", "replaced"]));
    let database = server.register_redis(name, &target).await;
    restore(server, backup, &database.id, "").await;
    blocking(|| target.digest())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_redis_becomes_a_backup_that_restores_with_its_digest() {
    let server = TestServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_every_type();
        source
    });
    let expected = blocking(|| source.digest());

    let done =
        import_backup(&server, pb::ImportBackupRequest { name: "from live".into(), ..live(&source.uri()) })
            .await;
    let (result, backup) = imported(&done);
    assert_eq!((backup.engine, backup.format.as_str()), (pb::Engine::Redis as i32, "rdb"));
    assert_eq!(backup.compression, pb::Compression::Gzip as i32, "gzip unless asked otherwise");
    assert_eq!(backup.name, "from live");
    assert!(backup.database_id.is_empty() && done.meta().database_id.is_empty(), "{backup:?}");
    assert_eq!(result.source_uris, [source.uri()]);
    assert_eq!(sha256_hex(&stored_object(&server, &backup)), backup.sha256);
    assert_eq!(server.backup(&backup.id).await, backup, "the catalog holds what the result says");
    assert_eq!(digest_after_restore(&server, &backup, "live-copy").await, expected);

    // Filed under a registered database: its id, name and project, and the database
    // is not held busy meanwhile (its own backup runs at the same time).
    let filed = server.register_redis("filed-under", &source).await;
    let request = pb::ImportBackupRequest {
        database_id: filed.id.clone(),
        compression: pb::Compression::Zstd as i32,
        ..live(&source.uri())
    };
    let started = server.imports().import_backup(request).await.expect("ImportBackup").into_inner();
    let own = server.start_backup(crate::support::backup_of(&filed.id)).await;
    let done = server.wait_done(&started.name).await;
    assert_eq!(server.wait_done(&own.name).await.state(), pb::OperationState::Succeeded);
    let (_, backup) = imported(&done);
    assert_eq!(
        (backup.database_id.as_str(), backup.instance_name.as_str()),
        (filed.id.as_str(), "filed-under")
    );
    assert_eq!(done.meta().database_id, filed.id);
    assert_eq!(backup.compression, pb::Compression::Zstd as i32);
    // A backup filed under a database restores into it by default.
    let request = pb::RestoreBackupRequest { backup_id: backup.id.clone(), ..Default::default() };
    let started = server.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    assert_eq!(server.wait_done(&started.name).await.state(), pb::OperationState::Succeeded);
    assert_eq!(blocking(|| source.digest()), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdb_archives_over_http_ftp_and_s3_restore_with_the_sources_digest() {
    let source = blocking(saved_source);
    let expected = blocking(|| source.digest());
    let rdb = source.dir().join("dump.rdb");
    let gzipped = blocking(|| compress(&rdb, "gzip", ".gz"));
    let zstd = blocking(|| compress(&rdb, "zstd", ".zst"));
    let server = TestServer::start().await;

    // gzip over HTTP, its name saying nothing of it, into another destination, with
    // labels and an expiry.
    let http = HttpServer::start().await;
    http.put("export.bin", &gzipped);
    let elsewhere = tempfile::tempdir().unwrap();
    let destination = server.create_directory_destination("elsewhere", elsewhere.path()).await;
    let expire_time = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() + 86_400, nanos: 0 };
    let request = pb::ImportBackupRequest {
        destination_id: destination.id.clone(),
        labels: [("from".to_owned(), "old-host".to_owned())].into(),
        expire_time: Some(expire_time),
        ..archive(&http.file_url("export.bin"))
    };
    let done = import_backup(&server, request).await;
    let (result, backup) = imported(&done);
    assert!(backup.name.starts_with("backup-"), "a name made from the date: {}", backup.name);
    assert_eq!(backup.destination_id, destination.id);
    assert_eq!(backup.labels.get("from").map(String::as_str), Some("old-host"));
    assert_eq!(backup.expire_time, Some(expire_time));
    assert_eq!(sha256_hex(&elsewhere.path().join(&backup.object_key)), backup.sha256);
    assert_eq!(result.source_uris, [http.file_url("export.bin")]);
    assert_eq!(result.logical_bytes as u64, std::fs::metadata(&rdb).unwrap().len());
    assert_eq!(result.bytes_read as u64, std::fs::metadata(&gzipped).unwrap().len());
    assert_eq!(result.items_loaded as u64, blocking(|| source.key_count()));
    assert_eq!(backup.logical_size_bytes, result.logical_bytes);
    assert_eq!(digest_after_restore(&server, &backup, "from-http").await, expected);

    // zstd over FTP, the login in the request's credentials.
    let password = "ftp-Import-Secret-2718";
    let ftp = blocking(|| StorageServer::ftp("cellar", password));
    std::fs::create_dir_all(ftp.dir.path().join("dumps")).unwrap();
    std::fs::copy(&zstd, ftp.dir.path().join("dumps/cache.rdb.zst")).unwrap();
    let request = pb::ImportBackupRequest {
        credentials: [("username", "cellar"), ("password", password)]
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .into(),
        compression: pb::Compression::Zstd as i32,
        ..archive(&format!("ftp://127.0.0.1:{}/dumps/cache.rdb.zst", ftp.port))
    };
    let done = import_backup(&server, request).await;
    let (_, backup) = imported(&done);
    assert_eq!(backup.compression, pb::Compression::Zstd as i32);
    assert_no_secret(password, &done);
    assert_eq!(digest_after_restore(&server, &backup, "from-ftp").await, expected);

    // gzip on S3, the keys in the request's credentials.
    let moto = blocking(Moto::start);
    let s3 = cellar::storage::open(&cellar::domain::Destination::unregistered(
        cellar::domain::ResourceName::parse("inspect").unwrap(),
        &format!("s3://{}/dumps", moto.bucket),
        &[("access_key_id", &moto.access_key_id), ("secret_access_key", &moto.secret_access_key)],
        &[("endpoint", &moto.endpoint()), ("allow_http", "true"), ("region", "us-east-1")],
    ))
    .expect("opening the store");
    let mut writer = s3.writer("cache.rdb.gz").await.expect("a write");
    writer.write(bytes::Bytes::from(std::fs::read(&gzipped).unwrap())).await.expect("writing");
    writer.commit().await.expect("committing");
    let request = pb::ImportBackupRequest {
        credentials: [
            ("access_key_id", moto.access_key_id.as_str()),
            ("secret_access_key", moto.secret_access_key.as_str()),
        ]
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .into(),
        ..archive(&format!(
            "s3://{}/dumps/cache.rdb.gz?endpoint={}&allow_http=true&region=us-east-1",
            moto.bucket,
            moto.endpoint()
        ))
    };
    let done = import_backup(&server, request).await;
    let (_, backup) = imported(&done);
    assert_no_secret(&moto.secret_access_key, &done);
    assert_eq!(digest_after_restore(&server, &backup, "from-s3").await, expected);
    let logged = logs::captured();
    assert!(!logged.contains(password) && !logged.contains(&moto.secret_access_key), "a secret was logged");
}

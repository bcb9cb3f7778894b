//! Secrets at rest: connection URIs and destination credentials are sealed in the
//! catalog with a key kept outside the data directory, so that a copy of the catalog
//! (or of the whole data directory) holds none of them; the same key opens them again
//! after a restart, another key stops the start.

use std::collections::HashMap;
use std::path::Path;

use cellar::domain::Secret;
use cellar::metadata::KeySource;

use crate::support::{
    OperationExt, RedisOptions, RedisServer, ServerOptions, TestServer, backup_of, blocking, pb,
    redis_database,
};

const REDIS_PASSWORD: &str = "Redis-at-rest-7f3a9c";
const PG_PASSWORD: &str = "Pg-at-rest-51d0e2";
const FTP_PASSWORD: &str = "Ftp-in-uri-9b2c44";
const DAV_PASSWORD: &str = "Dav-credential-c81f07";
const S3_SECRET: &str = "S3-secret-key-0e6d3a";

/// Every file under `dir`, read whole.
fn every_file(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(every_file(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            files.push((path.display().to_string(), bytes));
        }
    }
    files
}

fn assert_holds_no_secret(files: &[(String, Vec<u8>)]) {
    assert!(!files.is_empty());
    for secret in [REDIS_PASSWORD, PG_PASSWORD, FTP_PASSWORD, DAV_PASSWORD, S3_SECRET] {
        for (path, bytes) in files {
            let found = bytes.windows(secret.len()).any(|window| window == secret.as_bytes());
            assert!(!found, "{path} holds the secret {secret}");
        }
    }
}

async fn create_destination(server: &TestServer, name: &str, uri: &str, credentials: &[(&str, &str)]) {
    let credentials: HashMap<String, String> =
        credentials.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
    let destination =
        pb::Destination { name: name.to_owned(), uri: uri.to_owned(), credentials, ..Default::default() };
    let request = pb::CreateDestinationRequest { destination: Some(destination), request_id: String::new() };
    server.destinations().create_destination(request).await.expect("CreateDestination");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_catalog_holds_no_secret_the_key_opens_it_again_and_another_key_stops_the_start() {
    let key_dir = tempfile::tempdir().expect("temp dir");
    let key_file = key_dir.path().join("catalog.key");
    std::fs::write(&key_file, format!("{}\n", "5a".repeat(32))).expect("write the key file");
    let options = ServerOptions { catalog_key: KeySource::File(key_file), ..ServerOptions::default() };
    let redis = blocking(|| RedisServer::start(RedisOptions::diskless().with_password(REDIS_PASSWORD)));
    let mut server = TestServer::start_with(options.clone()).await;

    let database = server.register_redis("sealed-redis", &redis).await;
    let postgres = format!("postgres://backup:{PG_PASSWORD}@127.0.0.1:5432/orders");
    server
        .register(pb::Database {
            engine: pb::Engine::Postgres as i32,
            ..redis_database("sealed-pg", &postgres)
        })
        .await;
    create_destination(
        &server,
        "sealed-ftp",
        &format!("ftp://backup:{FTP_PASSWORD}@127.0.0.1:2121/dir"),
        &[],
    )
    .await;
    create_destination(
        &server,
        "sealed-dav",
        "https://dav.example.com/dir",
        &[("username", "u"), ("password", DAV_PASSWORD)],
    )
    .await;
    create_destination(
        &server,
        "sealed-s3",
        "s3://bucket/prefix",
        &[("access_key_id", "AKIDEXAMPLE"), ("secret_access_key", S3_SECRET)],
    )
    .await;

    // A copy taken while the server runs (the catalog and its write-ahead log), and the
    // whole data directory after a clean stop.
    let copy = tempfile::tempdir().expect("temp dir");
    for name in ["catalog.sqlite", "catalog.sqlite-wal"] {
        let from = server.data_dir().join(name);
        if from.exists() {
            std::fs::copy(&from, copy.path().join(name)).expect("copy the catalog");
        }
    }
    assert_holds_no_secret(&every_file(copy.path()));
    server.stop().await;
    assert_holds_no_secret(&every_file(server.data_dir()));

    // The same key: the sealed password still reaches the Redis.
    server.restart().await;
    let operation = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&operation.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");

    let wrong = ServerOptions { catalog_key: KeySource::Value(Secret::new("c3".repeat(32))), ..options };
    let error = server.restart_failing(wrong).await;
    assert!(error.contains("wrong catalog key"), "{error}");
    assert!(error.contains("catalog_key_file or CELLAR_CATALOG_KEY"), "{error}");
}

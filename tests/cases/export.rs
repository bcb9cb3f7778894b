//! ExportDatabase against real servers and stores: a live Redis exported to a local
//! directory, to an FTP server (pyftpdlib) and to S3 (moto), each file loaded back by
//! `redis-server` itself with the source's digest; a PostgreSQL database exported and
//! loaded by `pg_restore` with the same content; the manifest beside each file; and the
//! refusals: a directory outside the allowed roots, a suffix that contradicts the
//! compression asked for, a busy database, refused credentials (STORAGE_DENIED, the
//! secret nowhere), a failed export that leaves an earlier file at its name alone, and a
//! cancelled one that leaves nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use tonic::Code;

use crate::support::files::{self, decompress, sha256_hex};
use crate::support::object_stores::Moto;
use crate::support::sql_servers::PostgresServer;
use crate::support::storage_servers::StorageServer;
use crate::support::{
    OperationExt, RedisOptions, RedisServer, TestServer, assert_code, assert_invalid, assert_no_secret,
    backup_of, blocking, error_reason, pb,
};

fn export_request(database_id: &str, export_uri: String) -> pb::ExportDatabaseRequest {
    pb::ExportDatabaseRequest { database_id: database_id.to_owned(), export_uri, ..Default::default() }
}

async fn export(server: &TestServer, request: pb::ExportDatabaseRequest) -> pb::Operation {
    let started = server.exports().export_database(request).await.expect("ExportDatabase").into_inner();
    assert_eq!(started.meta().kind, pb::OperationKind::ExportDatabase as i32);
    server.wait_done(&started.name).await
}

fn export_result(done: &pb::Operation) -> pb::ExportResult {
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    match done.result.as_ref().and_then(|result| match result {
        pb::operation::Result::Response(response) => response.result.clone(),
        pb::operation::Result::Error(_) => None,
    }) {
        Some(pb::operation_response::Result::ExportResult(result)) => result,
        other => panic!("expected an export result, got {other:?}"),
    }
}

/// A Redis holding every type, registered.
async fn redis_source(server: &TestServer, name: &str) -> (RedisServer, pb::Database) {
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_every_type();
        source
    });
    let database = server.register_redis(name, &source).await;
    (source, database)
}

/// Loads an exported RDB (compressed as `compression`) into a fresh redis-server and
/// answers its digest.
fn digest_of_export(object: &Path, compression: pb::Compression) -> String {
    let rdb = object.with_extension("loaded.rdb");
    decompress(object, compression, &rdb);
    let loaded = RedisServer::from_rdb(&rdb);
    loaded.digest()
}

fn read_manifest(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).expect("the manifest is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_exported_into_a_directory_loads_in_redis_server_with_the_same_digest() {
    let server = TestServer::start().await;
    let (source, database) = redis_source(&server, "export-local").await;
    let dir = tempfile::tempdir().unwrap();

    // A directory URI: the file is named after the database, compressed as its policy
    // says (zstd).
    let done = export(&server, export_request(&database.id, files::uri_of_dir(dir.path()))).await;
    let result = export_result(&done);
    let object = files::path_of_uri(&result.export_uri);
    assert_eq!(object.parent(), Some(dir.path()), "{}", result.export_uri);
    let name = object.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("export-local-") && name.ends_with(".rdb.zst"), "{name}");
    assert_eq!(result.compression, pb::Compression::Zstd as i32);
    assert_eq!((result.format.as_str(), result.items_unit.as_str()), ("rdb", "keys"));
    assert_eq!(result.sha256, sha256_hex(&object));
    assert_eq!(result.size_bytes as u64, std::fs::metadata(&object).unwrap().len());
    assert_eq!(result.items_exported as u64, blocking(|| source.key_count()));
    assert_eq!(result.database_id, database.id);

    let manifest = read_manifest(&PathBuf::from(format!("{}.manifest.json", object.display())));
    assert_eq!(manifest["sha256"], result.sha256.as_str());
    assert_eq!(manifest["engine"], "redis");
    assert_eq!(manifest["instance_name"], "export-local");
    assert_eq!(blocking(|| digest_of_export(&object, pb::Compression::Zstd)), blocking(|| source.digest()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_ftp_is_a_gzip_rdb_and_the_password_shows_nowhere() {
    let password = "ftp-export-Secret-3141";
    let ftp = blocking(|| StorageServer::ftp("cellar", password));
    let server = TestServer::start().await;
    let (source, database) = redis_source(&server, "export-ftp").await;

    let uri = format!("ftp://cellar:{password}@127.0.0.1:{}/exports/cache.rdb.gz", ftp.port);
    let done = export(&server, export_request(&database.id, uri)).await;
    let result = export_result(&done);
    assert_eq!(result.compression, pb::Compression::Gzip as i32, "from the .gz suffix");
    assert_eq!(result.export_uri, format!("ftp://cellar:****@127.0.0.1:{}/exports/cache.rdb.gz", ftp.port));
    assert_no_secret(password, &done);

    let object = ftp.dir.path().join("exports/cache.rdb.gz");
    assert_eq!(sha256_hex(&object), result.sha256);
    assert!(ftp.dir.path().join("exports/cache.rdb.gz.manifest.json").is_file());
    assert_eq!(blocking(|| digest_of_export(&object, pb::Compression::Gzip)), blocking(|| source.digest()));

    // Credentials may come in the request instead, never in the URI.
    let mut request =
        export_request(&database.id, format!("ftp://127.0.0.1:{}/exports/again.rdb.zst", ftp.port));
    request.credentials = HashMap::from([
        ("username".to_owned(), "cellar".to_owned()),
        ("password".to_owned(), password.to_owned()),
    ]);
    let done = export(&server, request).await;
    export_result(&done);
    assert_no_secret(password, &done);
    let object = ftp.dir.path().join("exports/again.rdb.zst");
    assert_eq!(blocking(|| digest_of_export(&object, pb::Compression::Zstd)), blocking(|| source.digest()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_s3_reads_back_whole_and_wrong_keys_are_storage_denied() {
    let moto = blocking(Moto::start);
    let server = TestServer::start().await;
    let (source, database) = redis_source(&server, "export-s3").await;
    let query = format!("endpoint={}&allow_http=true&region=us-east-1", moto.endpoint());
    let uri = format!("s3://{}/exports/cache.rdb.zst?{query}", moto.bucket);
    let credentials = |secret: &str| {
        HashMap::from([
            ("access_key_id".to_owned(), moto.access_key_id.clone()),
            ("secret_access_key".to_owned(), secret.to_owned()),
        ])
    };

    let request = pb::ExportDatabaseRequest {
        credentials: credentials(&moto.secret_access_key),
        ..export_request(&database.id, uri.clone())
    };
    let done = export(&server, request).await;
    let result = export_result(&done);
    assert_no_secret(&moto.secret_access_key, &done);

    let store = cellar::storage::open(&cellar::domain::Destination::unregistered(
        cellar::domain::ResourceName::parse("inspect").unwrap(),
        &format!("s3://{}/exports?{query}", moto.bucket),
        &[("access_key_id", &moto.access_key_id), ("secret_access_key", &moto.secret_access_key)],
        &[],
    ))
    .expect("open the bucket");
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("cache.rdb.zst");
    let mut bytes = Vec::new();
    let mut reader = store.reader("cache.rdb.zst", 0).await.expect("the exported object").body;
    reader.read_to_end(&mut bytes).await.unwrap();
    std::fs::write(&object, &bytes).unwrap();
    assert_eq!(sha256_hex(&object), result.sha256);
    assert!(store.stat("cache.rdb.zst.manifest.json").await.unwrap().is_some(), "the manifest is beside it");
    assert_eq!(blocking(|| digest_of_export(&object, pb::Compression::Zstd)), blocking(|| source.digest()));

    let wrong = "not-the-Secret-key-2718";
    let request = pb::ExportDatabaseRequest {
        credentials: credentials(wrong),
        ..export_request(&database.id, uri.replace("cache.rdb.zst", "denied.rdb.zst"))
    };
    let done = export(&server, request).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    assert_eq!(done.error().map(|error| error.reason.as_str()), Some("STORAGE_DENIED"), "{done:?}");
    assert_no_secret(wrong, &done);
    assert!(store.stat("denied.rdb.zst").await.unwrap().is_none(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_export_is_an_archive_pg_restore_loads_with_the_same_content() {
    let postgres = blocking(|| {
        let postgres = PostgresServer::start();
        postgres.create_database("shop");
        postgres.load_fixture("shop");
        postgres
    });
    let server = TestServer::start().await;
    let database = server
        .register(pb::Database {
            name: "export-pg".to_owned(),
            engine: pb::Engine::Postgres as i32,
            connection_uri: postgres.url("shop"),
            ..Default::default()
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.pgdump");
    let done = export(&server, export_request(&database.id, format!("file://{}", file.display()))).await;
    let result = export_result(&done);
    assert_eq!((result.format.as_str(), result.database_name.as_str()), ("pg_custom", "shop"));
    assert_eq!(result.compression, pb::Compression::None as i32, "no suffix, no compression");
    assert_eq!(sha256_hex(&file), result.sha256);
    assert_no_secret(postgres.password(), &done);

    blocking(|| {
        postgres.create_database("shop_copy");
        let pg_restore = files::tool("pg_restore", "pg_restore not found: apt-get install postgresql-client");
        let output = std::process::Command::new(pg_restore)
            .args(["--no-owner", "--no-acl", "--exit-on-error", "-h", "127.0.0.1", "-p"])
            .arg(postgres.port().to_string())
            .args(["-U", postgres.user(), "-d", "shop_copy"])
            .arg(&file)
            .env("PGPASSWORD", postgres.password())
            .output()
            .expect("run pg_restore");
        assert!(output.status.success(), "pg_restore: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(postgres.checksums("shop_copy"), postgres.checksums("shop"));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_are_refused_outside_the_roots_busy_databases_and_contradicting_names() {
    let server = TestServer::start().await;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::disk());
        source.call(&["DEBUG", "POPULATE", "3000", "key", "64"]);
        source
    });
    let database = server.register_redis("export-refusals", &source).await;

    let status = assert_code(
        server.exports().export_database(export_request(&database.id, "file:///etc/".to_owned())).await,
        Code::PermissionDenied,
    );
    assert_eq!(error_reason(&status).as_deref(), Some("URL_NOT_ALLOWED"), "{status:?}");

    let dir = tempfile::tempdir().unwrap();
    let mut request = export_request(&database.id, format!("file://{}/cache.rdb.gz", dir.path().display()));
    request.compression = pb::Compression::Zstd as i32;
    assert_invalid(server.exports().export_database(request).await, "compression");
    let request = pb::ExportDatabaseRequest {
        database_name: "orders".to_owned(),
        ..export_request(&database.id, files::uri_of_dir(dir.path()))
    };
    assert_invalid(server.exports().export_database(request).await, "database_name");
    assert_invalid(
        server.exports().export_database(export_request(&database.id, String::new())).await,
        "export_uri",
    );
    let request = export_request(&crate::support::unknown_id(), files::uri_of_dir(dir.path()));
    assert_code(server.exports().export_database(request).await, Code::NotFound);

    // A database busy with a backup is not exported meanwhile.
    blocking(|| source.slow_down_snapshots(1000));
    let backup = server.start_backup(backup_of(&database.id)).await;
    let status = assert_code(
        server.exports().export_database(export_request(&database.id, files::uri_of_dir(dir.path()))).await,
        Code::Aborted,
    );
    assert_eq!(error_reason(&status).as_deref(), Some("DATABASE_BUSY"), "{status:?}");
    blocking(|| source.speed_up_snapshots());
    server.wait_done(&backup.name).await;
    assert!(files::files_under(dir.path()).is_empty(), "nothing was exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_export_leaves_what_was_at_its_name() {
    let server = TestServer::start().await;
    let mut source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    let database = server.register_redis("export-failure", &source).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.rdb");
    std::fs::write(&file, b"an earlier export").unwrap();
    blocking(|| source.kill());

    let done = export(&server, export_request(&database.id, format!("file://{}", file.display()))).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    assert_eq!(done.error().map(|error| error.reason.as_str()), Some("SOURCE_UNREACHABLE"), "{done:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"an earlier export");
    assert_eq!(files::files_under(dir.path()), vec![file], "no partial file, no manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_export_leaves_nothing_and_the_database_free() {
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    blocking(|| source.load_slow_dataset(3000, 4096, 1000));
    let server = TestServer::start().await;
    let database = server.register_redis("export-cancelled", &source).await;
    let dir = tempfile::tempdir().unwrap();
    let request = export_request(&database.id, format!("file://{}/cache.rdb.gz", dir.path().display()));
    let started = server.exports().export_database(request).await.expect("ExportDatabase").into_inner();
    server.wait_for_bytes(&started.name).await;

    let request = pb::CancelOperationRequest { name: started.name.clone() };
    server.operations().cancel_operation(request).await.expect("CancelOperation");
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");
    assert!(
        files::files_under(dir.path()).is_empty(),
        "nothing was left: {:?}",
        files::files_under(dir.path())
    );

    blocking(|| source.speed_up_snapshots());
    let request = export_request(&database.id, format!("file://{}/cache.rdb.gz", dir.path().display()));
    let done = export(&server, request).await;
    export_result(&done);
    assert!(dir.path().join("cache.rdb.gz").is_file());
}

//! The PostgreSQL engine end to end over gRPC, against throwaway PostgreSQL servers: a
//! database backs up (pg_dump custom format, every compression) and restores under
//! another name, into another server and over itself (in use) with the same content
//! checksums, also for odd names and a role that is not a superuser; a server registered
//! without a database backs up every database as parts of one backup, restored one or
//! all; imports from a live database (or every database of a server) and from dump
//! files (custom, plain SQL, gzip, zstd), SQL never running psql meta-commands on the
//! Cellar host. Failures (a wrong password, a missing database, a stopped or lost
//! server, damaged dumps, missing or old tools, one unreadable database of many) carry
//! their reason, leave the target as it was and no scratch database behind, and show no
//! password; a cancelled backup or restore leaves no tool running, no object stored, no
//! scratch database, and a target that takes connections.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::files::{self, tool};
use crate::support::sql_servers::PostgresServer;
use crate::support::{
    OperationExt, PATIENCE, ServerOptions, TestServer, assert_invalid, assert_no_secret, backup_of,
    backup_state, blocking, logs, pb, poll, poll_blocking,
};

const PG_DUMP_HINT: &str =
    "pg_dump not found: run scripts/test (it installs it) or apt-get install postgresql-client";

// ---------------------------------------------------------------------------------------
// Helpers

/// A PostgreSQL database to register.
fn postgres_database(name: &str, connection_uri: &str) -> pb::Database {
    pb::Database {
        name: name.to_owned(),
        engine: pb::Engine::Postgres as i32,
        connection_uri: connection_uri.to_owned(),
        ..Default::default()
    }
}

/// A started PostgreSQL server holding the fixture in `database`.
fn server_with_fixture(database: &str) -> PostgresServer {
    let postgres = PostgresServer::start();
    postgres.create_database(database);
    postgres.load_fixture(database);
    postgres
}

/// Backs up `database_id` (its logical database `database_name`, or the default) and
/// waits for the end.
async fn run_backup(server: &TestServer, database_id: &str, database_name: &str) -> pb::Operation {
    let request =
        pb::CreateBackupRequest { database_name: database_name.to_owned(), ..backup_of(database_id) };
    let started = server.start_backup(request).await;
    server.wait_done(&started.name).await
}

/// A READY backup of `database_id`; panics when the backup fails.
async fn ready_backup(server: &TestServer, database_id: &str) -> pb::Backup {
    let done = run_backup(server, database_id, "").await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let backup = done.response_backup().expect("the backup").clone();
    assert_eq!(backup_state(&backup), pb::BackupState::Ready, "{backup:?}");
    backup
}

/// Restores `backup` into `target_database_id` (empty: the backup's database) and its
/// logical database `target_database_name` (empty: the default); waits for the end.
async fn restore(
    server: &TestServer,
    backup: &pb::Backup,
    target_database_id: &str,
    target_database_name: &str,
) -> pb::Operation {
    let request = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_id: target_database_id.to_owned(),
        target_database_name: target_database_name.to_owned(),
        ..Default::default()
    };
    let started = server.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    server.wait_done(&started.name).await
}

/// Imports and waits for the end.
async fn import(server: &TestServer, request: pb::ImportDatabaseRequest) -> pb::Operation {
    let started = server.imports().import_database(request).await.expect("ImportDatabase").into_inner();
    server.wait_done(&started.name).await
}

/// Imports the files `paths` into the logical database `database_name` of `database_id`.
async fn import_files(
    server: &TestServer,
    database_id: &str,
    database_name: &str,
    paths: &[&Path],
) -> pb::Operation {
    let request = pb::ImportDatabaseRequest {
        database_id: database_id.to_owned(),
        database_name: database_name.to_owned(),
        source_uris: paths.iter().map(|path| format!("file://{}", path.display())).collect(),
        ..Default::default()
    };
    import(server, request).await
}

/// The result of a succeeded restore.
#[track_caller]
fn restore_result(done: &pb::Operation) -> &pb::RestoreResult {
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    match &done.result {
        Some(pb::operation::Result::Response(pb::OperationResponse {
            result: Some(pb::operation_response::Result::Restore(result)),
        })) => result,
        other => panic!("expected a restore result, got {other:?}"),
    }
}

/// The result of a succeeded import.
#[track_caller]
fn import_result(done: &pb::Operation) -> &pb::ImportResult {
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    match &done.result {
        Some(pb::operation::Result::Response(pb::OperationResponse {
            result: Some(pb::operation_response::Result::ImportResult(result)),
        })) => result,
        other => panic!("expected an import result, got {other:?}"),
    }
}

/// Asserts that the operation failed with `reason`; returns its error message.
#[track_caller]
fn assert_failed(done: &pb::Operation, reason: &str) -> String {
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    let error = done.error().unwrap_or_else(|| panic!("a failed operation without an error: {done:?}"));
    assert_eq!(error.reason, reason, "{done:?}");
    error.message.clone()
}

/// Asserts that two checksum maps are equal, naming the keys that differ.
#[track_caller]
fn assert_same(actual: &BTreeMap<String, String>, expected: &BTreeMap<String, String>, what: &str) {
    let mut keys: Vec<&String> = actual.keys().chain(expected.keys()).collect();
    keys.sort();
    keys.dedup();
    let differing: Vec<&&String> =
        keys.iter().filter(|key| actual.get(**key) != expected.get(**key)).collect();
    assert!(differing.is_empty(), "{what}: these differ: {differing:?}");
    assert!(!expected.is_empty(), "{what}: no checksums at all");
}

/// Asserts that no scratch database (`..._cellar_XXXXXXXX`) is left on `postgres`.
#[track_caller]
fn assert_no_scratch(postgres: &PostgresServer) {
    let databases = postgres.databases();
    let scratch: Vec<&String> = databases.iter().filter(|name| name.contains("_cellar_")).collect();
    assert!(scratch.is_empty(), "scratch databases were left: {scratch:?}");
}

/// Asserts that `secret` is in neither the operation nor the server's log.
#[track_caller]
fn assert_kept_secret(secret: &str, operation: &pb::Operation) {
    assert_no_secret(secret, operation);
    assert_no_secret(secret, &logs::captured());
}

/// Runs `pg_dump ARGS URL` (the machine's own), its output into `output`.
fn pg_dump(url: &str, args: &[&str], output: &Path) -> PathBuf {
    let result = Command::new(tool("pg_dump", PG_DUMP_HINT))
        .args(args)
        .arg("--file")
        .arg(output)
        .arg(url)
        .output()
        .unwrap_or_else(|error| panic!("cannot run pg_dump: {error}"));
    assert!(result.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&result.stderr));
    output.to_owned()
}

/// Compresses `path` with `program` (`gzip`, `zstd`), keeping it; returns the new file.
fn compress(path: &Path, program: &str, suffix: &str) -> PathBuf {
    let output = PathBuf::from(format!("{}{suffix}", path.display()));
    let status = Command::new(program)
        .args(["-q", "-k", "-f"])
        .arg(path)
        .status()
        .unwrap_or_else(|error| panic!("{program} is needed (scripts/test installs it): {error}"));
    assert!(status.success() && output.exists(), "{program} made no {}", output.display());
    output
}

/// A URL with its password replaced by `password`.
fn with_password(url: &str, real: &str, password: &str) -> String {
    assert!(url.contains(real), "the URL has no password");
    url.replace(real, password)
}

/// The objects stored under the local destination for a backup.
fn stored_objects(server: &TestServer, backup_id: &str) -> Vec<PathBuf> {
    files::files_under(&server.local_backups_dir())
        .into_iter()
        .filter(|path| path.to_string_lossy().contains(backup_id))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Backup and restore

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_backs_up_and_restores_under_another_name_into_another_server_and_over_itself() {
    let server = TestServer::start().await;
    let (source, other) = blocking(|| (server_with_fixture("shop"), PostgresServer::start()));
    let original = blocking(|| source.checksums("shop"));
    let database = server.register(postgres_database("pg-shop", &source.url("shop"))).await;

    let done = run_backup(&server, &database.id, "").await;
    assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
    let progress = done.meta().progress.clone().expect("progress");
    assert_eq!(progress.items_unit, "tables", "{progress:?}");
    assert!(progress.items_done >= 5 && progress.bytes_done > 0, "{progress:?}");
    let backup = done.response_backup().expect("the backup").clone();
    assert_eq!(backup_state(&backup), pb::BackupState::Ready, "{backup:?}");
    assert_eq!(backup.format, "pg_custom");
    assert_eq!(backup.database_name, "shop");
    assert_eq!(backup.engine, pb::Engine::Postgres as i32);
    assert!(backup.parts.is_empty(), "{backup:?}");
    assert!(!backup.server_version.is_empty() && backup.size_bytes > 0, "{backup:?}");
    assert_eq!(server.backup(&backup.id).await.database_name, "shop");

    // Under another name on the same server: created, the source untouched.
    let copied = restore(&server, &backup, "", "shop_copy").await;
    let result = restore_result(&copied);
    assert_eq!(result.database_name, "shop_copy");
    assert!(result.items_loaded > 0, "{result:?}");
    assert_eq!(result.items_unit, "tables", "{result:?}");
    assert_same(&blocking(|| source.checksums("shop_copy")), &original, "the copy under another name");
    assert_same(&blocking(|| source.checksums("shop")), &original, "the source after a restore beside it");

    // Every compression restores alike.
    for compression in [pb::Compression::Gzip, pb::Compression::None] {
        let request = pb::CreateBackupRequest { compression: compression as i32, ..backup_of(&database.id) };
        let started = server.start_backup(request).await;
        let done = server.wait_done(&started.name).await;
        let compressed = done.response_backup().unwrap_or_else(|| panic!("no backup: {done:?}")).clone();
        assert_eq!(compressed.compression, compression as i32);
        let into = format!("shop_{}", compression.as_str_name().to_ascii_lowercase());
        restore_result(&restore(&server, &compressed, "", &into).await);
        assert_same(&blocking(|| source.checksums(&into)), &original, &into);
    }

    // Into another server: the database its URI names, created; registered without
    // one, the backup's database name.
    let replica = server.register(postgres_database("pg-replica", &other.url("replica"))).await;
    let moved = restore(&server, &backup, &replica.id, "").await;
    assert_eq!(restore_result(&moved).database_name, "replica");
    assert_same(&blocking(|| other.checksums("replica")), &original, "the copy on another server");
    let whole_server = server.register(postgres_database("pg-other", &other.url(""))).await;
    let moved = restore(&server, &backup, &whole_server.id, "").await;
    assert_eq!(restore_result(&moved).database_name, "shop");
    assert_same(&blocking(|| other.checksums("shop")), &original, "the copy under the backup's name");

    // Over itself: a changed row and large object are put back.
    blocking(|| {
        source.psql("shop", "UPDATE every_type SET words = 'changed' WHERE id = 10");
        source.psql("shop", "SELECT lo_put(424201, 0, 'J')");
        source.psql("shop", "CREATE TABLE added_since (id int)");
    });
    assert_ne!(blocking(|| source.checksums("shop")), original, "the change shows");
    // A session in the database (even one holding a lock) does not stop the swap.
    let session = blocking(|| LockHolder::lock(&source, "shop", "documents"));
    let replaced = restore(&server, &backup, "", "").await;
    drop(session);
    assert_eq!(restore_result(&replaced).database_name, "shop");
    assert_same(&blocking(|| source.checksums("shop")), &original, "the database restored over itself");
    blocking(|| {
        assert_no_scratch(&source);
        assert_no_scratch(&other);
    });
    assert_kept_secret(source.password(), &replaced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_database_backs_up_every_database_and_restores_one_or_all() {
    let server = TestServer::start().await;
    let (source, target) = blocking(|| {
        let source = server_with_fixture("alpha");
        source.create_database("beta");
        source.psql("beta", "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 500) g;");
        let target = PostgresServer::start();
        // The target's own alpha, which restoring only beta must leave alone.
        target.create_database("alpha");
        target.psql("alpha", "CREATE TABLE mine (id int); INSERT INTO mine VALUES (1);");
        (source, target)
    });
    let (alpha, beta) = blocking(|| (source.checksums("alpha"), source.checksums("beta")));
    let targets_alpha = blocking(|| target.checksums("alpha"));
    let whole = source.url("");
    assert!(whole.ends_with(&format!(":{}/", source.port())), "a URL without a database: {whole}");
    let database = server.register(postgres_database("pg-server", &whole)).await;

    let backup = ready_backup(&server, &database.id).await;
    let parts: Vec<&str> = backup.parts.iter().map(|part| part.database_name.as_str()).collect();
    assert_eq!(parts, ["alpha", "beta"], "{backup:?}");
    assert!(backup.parts.iter().all(|part| part.size_bytes > 0 && part.sha256.len() == 64), "{backup:?}");
    assert_eq!(backup.parts[1].items, 1, "{backup:?}");

    let manifest_path = stored_objects(&server, &backup.id)
        .into_iter()
        .find(|path| path.ends_with("manifest.json"))
        .expect("a manifest.json");
    let manifest = files::read_json(&manifest_path);
    let listed: Vec<&str> = manifest["parts"]
        .as_array()
        .unwrap_or_else(|| panic!("no parts in {manifest}"))
        .iter()
        .map(|part| part["database_name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(listed, ["alpha", "beta"], "{manifest}");
    assert_eq!(manifest["format"], "pg_custom", "{manifest}");
    for part in &backup.parts {
        let object = files::path_of_uri(&part.uri);
        assert_eq!(files::sha256_hex(&object), part.sha256, "{part:?}");
    }

    // One database of the server, asked for by name: a backup of its own.
    let named = run_backup(&server, &database.id, "beta").await;
    let single = named.response_backup().unwrap_or_else(|| panic!("no backup: {named:?}")).clone();
    assert_eq!((single.database_name.as_str(), single.parts.len()), ("beta", 0), "{single:?}");

    let elsewhere = server.register(postgres_database("pg-target", &target.url(""))).await;
    let not_held = pb::RestoreBackupRequest {
        backup_id: backup.id.clone(),
        target_database_id: elsewhere.id.clone(),
        target_database_name: "gamma".to_owned(),
        ..Default::default()
    };
    assert_invalid(server.backups().restore_backup(not_held).await, "target_database_name");
    let databases_before = blocking(|| target.databases());
    let only_beta = restore(&server, &backup, &elsewhere.id, "beta").await;
    assert_eq!(restore_result(&only_beta).database_name, "beta");
    let mut expected_databases = databases_before;
    expected_databases.push("beta".to_owned());
    expected_databases.sort();
    assert_eq!(blocking(|| target.databases()), expected_databases, "only beta appeared");
    assert_same(&blocking(|| target.checksums("beta")), &beta, "beta restored alone");
    assert_same(&blocking(|| target.checksums("alpha")), &targets_alpha, "the target's alpha, untouched");

    let all = restore(&server, &backup, &elsewhere.id, "").await;
    restore_result(&all);
    assert_same(&blocking(|| target.checksums("alpha")), &alpha, "alpha restored with every part");
    assert_same(&blocking(|| target.checksums("beta")), &beta, "beta restored with every part");

    // A damaged part fails the whole restore before any database is touched.
    blocking(|| target.psql("alpha", "UPDATE every_type SET words = 'changed on the target' WHERE id = 10"));
    let changed_alpha = blocking(|| target.checksums("alpha"));
    let beta_object = files::path_of_uri(&backup.parts[1].uri);
    let mut stored = std::fs::read(&beta_object).expect("read the part");
    let middle = stored.len() / 2;
    stored[middle] ^= 0xff;
    std::fs::write(&beta_object, stored).expect("damage the part");
    let damaged = restore(&server, &backup, &elsewhere.id, "").await;
    assert_failed(&damaged, "SOURCE_CORRUPT");
    assert_same(&blocking(|| target.checksums("alpha")), &changed_alpha, "alpha, before the damaged beta");
    blocking(|| assert_no_scratch(&target));
}

// ---------------------------------------------------------------------------------------
// Import

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_database_imports_alone_or_with_every_database_of_its_server() {
    let server = TestServer::start().await;
    let (source, target) = blocking(|| {
        let source = server_with_fixture("shop");
        source.create_database("ledger");
        source.psql("ledger", "CREATE TABLE entries (id bigint PRIMARY KEY, amount numeric(12, 2)); INSERT INTO entries SELECT g, g * 1.5 FROM generate_series(1, 300) g;");
        let target = PostgresServer::start();
        target.create_database("landing");
        target.psql("landing", "CREATE TABLE stale (id int); INSERT INTO stale VALUES (1);");
        (source, target)
    });
    let (shop, ledger) = blocking(|| (source.checksums("shop"), source.checksums("ledger")));
    let landing = server.register(postgres_database("pg-landing", &target.url("landing"))).await;

    let request = pb::ImportDatabaseRequest {
        database_id: landing.id.clone(),
        source_connection_uri: source.url("shop"),
        ..Default::default()
    };
    let done = import(&server, request).await;
    let result = import_result(&done);
    assert_eq!(result.database_names, ["landing"], "{result:?}");
    assert!(result.items_loaded > 0, "{result:?}");
    assert_eq!(result.items_unit, "tables", "{result:?}");
    assert_same(&blocking(|| target.checksums("landing")), &shop, "the imported live database");
    assert_kept_secret(source.password(), &done);

    let request = pb::ImportDatabaseRequest {
        database_id: landing.id.clone(),
        source_connection_uri: source.url(""),
        import_all_databases: true,
        ..Default::default()
    };
    let named = pb::ImportDatabaseRequest { database_name: "landing".to_owned(), ..request.clone() };
    assert_invalid(server.imports().import_database(named).await, "database_name");
    let done = import(&server, request).await;
    assert_eq!(import_result(&done).database_names, ["ledger", "shop"], "{done:?}");
    assert_same(&blocking(|| target.checksums("shop")), &shop, "shop, imported with every database");
    assert_same(&blocking(|| target.checksums("ledger")), &ledger, "ledger, imported with every database");
    assert_same(&blocking(|| target.checksums("landing")), &shop, "landing, not a source database");
    blocking(|| assert_no_scratch(&target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_files_import_whether_custom_or_plain_sql_gzip_or_zstd() {
    let server = TestServer::start().await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let dir = tempfile::Builder::new().prefix("cellar-pg-dumps-").tempdir().expect("temp dir");
    let custom = pg_dump(&postgres.url("shop"), &["--format=custom"], &dir.path().join("shop.pgdump"));
    let plain = pg_dump(&postgres.url("shop"), &["--no-owner"], &dir.path().join("shop.sql"));
    let gzipped = compress(&plain, "gzip", ".gz");
    let zstded = compress(&custom, "zstd", ".zst");
    let database = server.register(postgres_database("pg-files", &postgres.url("shop"))).await;

    for (file, into, method) in [
        (&custom, "from_custom", "pg_restore"),
        (&plain, "from_plain", "psql"),
        (&gzipped, "from_gzip", "psql"),
        (&zstded, "from_zstd", "pg_restore"),
    ] {
        let done = import_files(&server, &database.id, into, &[file]).await;
        let result = import_result(&done);
        assert_eq!(result.database_names, [into], "{result:?}");
        assert_eq!(result.load_method, method, "{result:?}");
        assert_same(&blocking(|| postgres.checksums(into)), &original, &format!("{}", file.display()));
    }
    blocking(|| assert_no_scratch(&postgres));
}

// ---------------------------------------------------------------------------------------
// Failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_a_missing_database_fails_with_its_reason_and_no_password_shows() {
    let server = TestServer::start().await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let good = server.register(postgres_database("pg-good", &postgres.url("shop"))).await;
    let backup = ready_backup(&server, &good.id).await;
    let wrong_password = format!("wrong{}", uuid::Uuid::new_v4().simple());
    let wrong_url = with_password(&postgres.url("shop"), postgres.password(), &wrong_password);
    let wrong = server.register(postgres_database("pg-wrong", &wrong_url)).await;

    let backed_up = backup_failure(&server, &wrong.id, "AUTH_FAILED").await;
    let restored = restore(&server, &backup, &wrong.id, "").await;
    let message = assert_failed(&restored, "AUTH_FAILED");
    assert!(message.contains("password authentication failed"), "{message}");
    let request = pb::ImportDatabaseRequest {
        database_id: good.id.clone(),
        source_connection_uri: wrong_url.clone(),
        ..Default::default()
    };
    let imported = import(&server, request).await;
    assert_failed(&imported, "AUTH_FAILED");

    let missing = server.register(postgres_database("pg-missing", &postgres.url("no_such_database"))).await;
    let missing_backup = backup_failure(&server, &missing.id, "DATABASE_NOT_FOUND").await;
    let request = pb::ImportDatabaseRequest {
        database_id: good.id.clone(),
        source_connection_uri: postgres.url("no_such_database"),
        ..Default::default()
    };
    let missing_import = import(&server, request).await;
    let message = assert_failed(&missing_import, "DATABASE_NOT_FOUND");
    assert!(message.contains("no_such_database"), "{message}");

    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after failed loads");
    blocking(|| assert_no_scratch(&postgres));
    for operation in [&backed_up, &restored, &imported, &missing_backup, &missing_import] {
        assert_kept_secret(&wrong_password, operation);
        assert_kept_secret(postgres.password(), operation);
    }
}

/// Backs up `database_id`, which must fail with `reason`, leaving a FAILED backup and
/// nothing stored; returns the operation.
async fn backup_failure(server: &TestServer, database_id: &str, reason: &str) -> pb::Operation {
    let done = run_backup(server, database_id, "").await;
    assert_failed(&done, reason);
    let backup_id = done.meta().backup_id.clone();
    assert_eq!(backup_state(&server.backup(&backup_id).await), pb::BackupState::Failed);
    assert_eq!(stored_objects(server, &backup_id), Vec::<PathBuf>::new(), "objects of a failed backup");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_backups_and_imports_from_it_and_restores_into_it_as_unreachable() {
    let server = TestServer::start().await;
    let (mut source, target) = blocking(|| (server_with_fixture("shop"), server_with_fixture("landing")));
    let landing = blocking(|| target.checksums("landing"));
    let database = server.register(postgres_database("pg-stopped", &source.url("shop"))).await;
    let registered_target = server.register(postgres_database("pg-landing", &target.url("landing"))).await;
    let earlier = ready_backup(&server, &database.id).await;
    blocking(|| source.stop());

    let backed_up = backup_failure(&server, &database.id, "SOURCE_UNREACHABLE").await;
    // The stopped server as the target of a restore is the target that is unreachable.
    let restored = restore(&server, &earlier, "", "").await;
    assert_failed(&restored, "TARGET_UNREACHABLE");
    let request = pb::ImportDatabaseRequest {
        database_id: registered_target.id.clone(),
        source_connection_uri: source.url("shop"),
        ..Default::default()
    };
    let imported = import(&server, request).await;
    let message = assert_failed(&imported, "SOURCE_UNREACHABLE");
    assert!(message.contains("127.0.0.1"), "the message names the server: {message}");

    assert_same(&blocking(|| target.checksums("landing")), &landing, "the target after a failed import");
    blocking(|| assert_no_scratch(&target));
    for operation in [&backed_up, &restored, &imported] {
        assert_kept_secret(source.password(), operation);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_dumps_fail_the_import_and_leave_the_target_as_it_was() {
    let server = TestServer::start().await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-damaged", &postgres.url("shop"))).await;
    let dir = tempfile::Builder::new().prefix("cellar-pg-damaged-").tempdir().expect("temp dir");

    // A custom archive cut in the middle of its data: its table of contents still
    // reads, so the load starts, and pg_restore fails part-way into the scratch database
    // on reading the data: SOURCE_CORRUPT.
    let whole = pg_dump(&postgres.url("shop"), &["--format=custom"], &dir.path().join("whole.pgdump"));
    let bytes = std::fs::read(&whole).expect("read the dump");
    let truncated = dir.path().join("truncated.pgdump");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write the truncated dump");
    let truncated_import = import_files(&server, &database.id, "", &[&truncated]).await;
    let message = assert_failed(&truncated_import, "SOURCE_CORRUPT");
    assert!(message.contains("pg_restore: error"), "{message}");
    assert!(message.contains("left as it was"), "{message}");
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after a truncated archive");
    // Into a database that does not exist yet: it still does not.
    let into_new = import_files(&server, &database.id, "fresh", &[&truncated]).await;
    assert_failed(&into_new, "SOURCE_CORRUPT");
    assert!(
        !blocking(|| postgres.databases()).contains(&"fresh".to_owned()),
        "a failed load created its target"
    );

    // SQL that fails half-way: nothing of it lands, psql's error is in the message.
    let broken = dir.path().join("broken.sql");
    let mut sql = std::fs::File::create(&broken).expect("create the SQL file");
    writeln!(sql, "CREATE TABLE half_way (id int);\nINSERT INTO half_way VALUES (1);").unwrap();
    writeln!(sql, "INSERT INTO no_such_table VALUES (1);\nCREATE TABLE after_the_error (id int);").unwrap();
    drop(sql);
    let sql_import = import_files(&server, &database.id, "", &[&broken]).await;
    let message = assert_failed(&sql_import, "RESTORE_FAILED");
    assert!(message.contains("relation \"no_such_table\" does not exist"), "{message}");
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after failing SQL");

    // Not a dump at all.
    let noise = dir.path().join("noise.bin");
    std::fs::write(&noise, [0u8, 159, 146, 150, 1, 2, 3].repeat(100)).expect("write the noise");
    let noise_import = import_files(&server, &database.id, "", &[&noise]).await;
    assert_failed(&noise_import, "SOURCE_CORRUPT");

    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after every failure");
    blocking(|| assert_no_scratch(&postgres));
    for operation in [&truncated_import, &into_new, &sql_import, &noise_import] {
        assert_kept_secret(postgres.password(), operation);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_tool_path_fails_with_tool_not_found() {
    let tools = tempfile::Builder::new().prefix("cellar-no-tools-").tempdir().expect("temp dir");
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-no-tools", &postgres.url("shop"))).await;

    let done = backup_failure(&server, &database.id, "TOOL_NOT_FOUND").await;
    let message = assert_failed(&done, "TOOL_NOT_FOUND");
    assert!(message.contains(&tools.path().display().to_string()), "names where it looked: {message}");
    assert!(message.contains("postgresql-client"), "says how to install: {message}");

    let dumps = tempfile::Builder::new().prefix("cellar-pg-dumps-").tempdir().expect("temp dir");
    let dump = pg_dump(&postgres.url("shop"), &["--format=custom"], &dumps.path().join("shop.pgdump"));
    let imported = import_files(&server, &database.id, "", &[&dump]).await;
    assert_failed(&imported, "TOOL_NOT_FOUND");
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after TOOL_NOT_FOUND");
    blocking(|| assert_no_scratch(&postgres));
}

/// Writes an executable shell script.
fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write the script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("make it executable");
}

/// The newest `/usr/lib/postgresql/*/bin/NAME`, else NAME on PATH.
fn real_postgres_tool(name: &str) -> PathBuf {
    let versioned = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let path = entry.path().join("bin").join(name);
            path.is_file().then_some((version, path))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, path)| path);
    versioned.unwrap_or_else(|| tool(name, PG_DUMP_HINT))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_older_than_the_server_or_archive_fail_with_tool_too_old() {
    let tools = tempfile::Builder::new().prefix("cellar-old-tools-").tempdir().expect("temp dir");
    script(
        &tools.path().join("pg_dump"),
        "[ \"$1\" = --version ] && { echo 'pg_dump (PostgreSQL) 9.6.24'; exit 0; }\n\
         echo 'pg_dump: this 9.6 stand-in must not be run' >&2; exit 1",
    );
    // What a pg_restore 9.6 says of a newer archive.
    script(
        &tools.path().join("pg_restore"),
        "[ \"$1\" = --version ] && { echo 'pg_restore (PostgreSQL) 9.6.24'; exit 0; }\n\
         echo 'pg_restore: [archiver] unsupported version (1.14) in file header' >&2; exit 1",
    );
    script(&tools.path().join("psql"), &format!("exec '{}' \"$@\"", real_postgres_tool("psql").display()));
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-old-tools", &postgres.url("shop"))).await;

    let done = backup_failure(&server, &database.id, "TOOL_TOO_OLD").await;
    let message = assert_failed(&done, "TOOL_TOO_OLD");
    assert!(
        message.contains("9.6.24") && message.contains("PostgreSQL 15"),
        "names both versions: {message}"
    );

    let dumps = tempfile::Builder::new().prefix("cellar-pg-old-").tempdir().expect("temp dir");
    let dump = pg_dump(&postgres.url("shop"), &["--format=custom"], &dumps.path().join("shop.pgdump"));
    let imported = import_files(&server, &database.id, "", &[&dump]).await;
    let message = assert_failed(&imported, "TOOL_TOO_OLD");
    assert!(message.contains("pg_restore 9.6.24"), "{message}");
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after TOOL_TOO_OLD");
    blocking(|| assert_no_scratch(&postgres));
}

// ---------------------------------------------------------------------------------------
// Cancellation

/// A psql session holding an exclusive lock on a table until it is dropped.
struct LockHolder(Child);

impl LockHolder {
    fn lock(postgres: &PostgresServer, database: &str, table: &str) -> LockHolder {
        let mut child = Command::new(real_postgres_tool("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", postgres.user()])
            .args(["-p", &postgres.port().to_string(), "-d", database])
            .env("PGPASSWORD", postgres.password())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start psql");
        let stdin = child.stdin.as_mut().expect("a piped stdin");
        writeln!(stdin, "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;").expect("send the lock");
        stdin.flush().expect("flush");
        let holder = LockHolder(child);
        let held = format!(
            "SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass \
             AND mode = 'AccessExclusiveLock' AND granted"
        );
        poll_blocking("the lock", PATIENCE, || (postgres.psql(database, &held) == "1").then_some(()));
        holder
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The ids of processes whose environment says `PGDATABASE=database` (the engine's
/// tools get their database that way, not in argv).
fn tools_for_database(database: &str) -> Vec<String> {
    tools_where(|variable| variable == format!("PGDATABASE={database}").as_bytes())
}

/// The ids (and names) of processes with an environment variable that `matches`.
fn tools_where(matches: impl Fn(&[u8]) -> bool) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter(|entry| {
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            environ.split(|byte| *byte == 0).any(&matches)
        })
        .map(|entry| {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            format!("{} ({})", entry.file_name().to_string_lossy(), comm.trim())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_backup_kills_its_pg_dump_and_stores_nothing() {
    let server = TestServer::start().await;
    let name = format!("locked_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let postgres = blocking(|| server_with_fixture(&name));
    let lock = blocking(|| LockHolder::lock(&postgres, &name, "every_type"));
    let database = server.register(postgres_database("pg-locked", &postgres.url(&name))).await;

    let started = server.start_backup(backup_of(&database.id)).await;
    server
        .wait_for(&started.name, "the dumping phase", |operation| operation.meta().phase == "dumping")
        .await;
    // pg_dump is really running, and waits for the lock.
    let (postgres_ref, name_ref) = (&postgres, name.as_str());
    let waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted";
    poll("pg_dump waiting for the lock", PATIENCE, || async move {
        (blocking(|| postgres_ref.psql(name_ref, waiting)) != "0").then_some(())
    })
    .await;
    assert!(!blocking(|| tools_for_database(&name)).is_empty(), "no pg_dump found for {name}");

    let request = pb::CancelOperationRequest { name: started.name.clone() };
    server.operations().cancel_operation(request).await.expect("CancelOperation");
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");
    poll("pg_dump to end", PATIENCE, || async move {
        let left = blocking(|| tools_for_database(name_ref));
        left.is_empty().then_some(())
    })
    .await;

    let backup_id = done.meta().backup_id.clone();
    assert_eq!(backup_state(&server.backup(&backup_id).await), pb::BackupState::Failed);
    assert_eq!(stored_objects(&server, &backup_id), Vec::<PathBuf>::new(), "objects of a cancelled backup");
    drop(lock);
    assert_kept_secret(postgres.password(), &done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_restore_kills_pg_restore_and_drops_its_scratch_database() {
    // pg_restore waits at a gate (a FIFO the shell opens before it becomes the real
    // pg_restore) so that the cancel lands mid-load; the other tools are the real ones.
    let tools = tempfile::Builder::new().prefix("cellar-gated-tools-").tempdir().expect("temp dir");
    let gate = tools.path().join("gate");
    let made = Command::new("mkfifo").arg(&gate).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    for name in ["pg_dump", "psql"] {
        script(&tools.path().join(name), &format!("exec '{}' \"$@\"", real_postgres_tool(name).display()));
    }
    let pg_restore = real_postgres_tool("pg_restore");
    script(
        &tools.path().join("pg_restore"),
        &format!(
            "case \"$1\" in --version|--list) exec '{real}' \"$@\";; esac\nexec 3< '{gate}'\nexec '{real}' \"$@\"",
            real = pg_restore.display(),
            gate = gate.display()
        ),
    );
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let name = format!("gated_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let postgres = blocking(|| server_with_fixture(&name));
    let database = server.register(postgres_database("pg-gated", &postgres.url(&name))).await;
    let backup = ready_backup(&server, &database.id).await;
    blocking(|| {
        postgres.psql(&name, "UPDATE every_type SET words = 'kept through the cancel' WHERE id = 10")
    });
    let before = blocking(|| postgres.checksums(&name));

    let request = pb::RestoreBackupRequest { backup_id: backup.id.clone(), ..Default::default() };
    let started = server.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    server
        .wait_for(&started.name, "the loading phase", |operation| operation.meta().phase == "loading")
        .await;
    let scratch_prefix = format!("PGDATABASE={name}_cellar_");
    let loading = |variable: &[u8]| variable.starts_with(scratch_prefix.as_bytes());
    poll("pg_restore at the gate", PATIENCE, || async { (!tools_where(loading).is_empty()).then_some(()) })
        .await;
    let scratch: Vec<String> =
        blocking(|| postgres.databases()).into_iter().filter(|db| db.contains("_cellar_")).collect();
    assert_eq!(scratch.len(), 1, "one scratch database while loading: {scratch:?}");

    let request = pb::CancelOperationRequest { name: started.name.clone() };
    server.operations().cancel_operation(request).await.expect("CancelOperation");
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");
    poll("pg_restore to end", PATIENCE, || async { tools_where(loading).is_empty().then_some(()) }).await;
    let postgres_ref = &postgres;
    poll("the scratch database to go", PATIENCE, || async move {
        let databases = blocking(|| postgres_ref.databases());
        (!databases.iter().any(|db| db.contains("_cellar_"))).then_some(())
    })
    .await;
    assert_same(&blocking(|| postgres.checksums(&name)), &before, "the target after a cancelled restore");
    assert_kept_secret(postgres.password(), &done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_with_odd_names_back_up_and_restore_whole_or_alone() {
    let server = TestServer::start().await;
    let odd = "Odd \"db\" namé 'x' $1";
    let (source, target) = blocking(|| {
        let source = PostgresServer::start();
        source.create_database(odd);
        source.psql(odd, "CREATE TABLE \"Quoted Table\" (\"Id\" int, note text); INSERT INTO \"Quoted Table\" VALUES (1, 'one'), (2, 'two');");
        (source, PostgresServer::start())
    });
    let original = blocking(|| source.checksums(odd));
    let alone = server.register(postgres_database("pg-odd", &source.url(odd))).await;
    let backup = ready_backup(&server, &alone.id).await;
    assert_eq!(backup.database_name, odd);
    let copy_name = "copy of \"odd\"";
    let copied = restore(&server, &backup, "", copy_name).await;
    assert_eq!(restore_result(&copied).database_name, copy_name);
    assert_same(&blocking(|| source.checksums(copy_name)), &original, "the copy under an odd name");

    let whole = server.register(postgres_database("pg-odd-server", &source.url(""))).await;
    let every = ready_backup(&server, &whole.id).await;
    let parts: Vec<&str> = every.parts.iter().map(|part| part.database_name.as_str()).collect();
    assert_eq!(parts, [odd, copy_name], "{every:?}");
    let elsewhere = server.register(postgres_database("pg-odd-target", &target.url(""))).await;
    restore_result(&restore(&server, &every, &elsewhere.id, odd).await);
    assert_same(&blocking(|| target.checksums(odd)), &original, "the odd database restored alone");
    restore_result(&restore(&server, &every, &elsewhere.id, "").await);
    assert_same(&blocking(|| target.checksums(copy_name)), &original, "the copy restored with every part");
    blocking(|| assert_no_scratch(&target));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_files_cannot_run_psql_meta_commands_on_the_cellar_host() {
    let server = TestServer::start().await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-meta", &postgres.url("shop"))).await;
    let dir = tempfile::Builder::new().prefix("cellar-pg-meta-").tempdir().expect("temp dir");
    let marker = dir.path().join("marker");
    let local_copy = dir.path().join("copied");

    // Shell commands, local files written, and a dump's own restrict key lifted by the
    // file itself: a SQL file is data, not a psql script of the Cellar host.
    let attempts = [
        format!("CREATE TABLE t (id int);\n\\! touch '{}'\n", marker.display()),
        format!("\\o '{}'\nSELECT 1;\n", local_copy.display()),
        format!("\\restrict abc\n\\unrestrict abc\n\\! touch '{}'\n", marker.display()),
        format!("CREATE TABLE t (id int);\n\\copy t to '{}'\n", local_copy.display()),
    ];
    for (index, sql) in attempts.iter().enumerate() {
        let path = dir.path().join(format!("attempt{index}.sql"));
        std::fs::write(&path, sql).expect("write the SQL");
        let done = import_files(&server, &database.id, "", &[&path]).await;
        let message = assert_failed(&done, "RESTORE_FAILED");
        assert!(!marker.exists(), "attempt {index} ran a shell command on the Cellar host: {message}");
        assert!(!local_copy.exists(), "attempt {index} wrote a local file: {message}");
        assert!(message.contains("restricted"), "attempt {index}: {message}");
    }
    assert_same(&blocking(|| postgres.checksums("shop")), &original, "the target after refused SQL");
    blocking(|| assert_no_scratch(&postgres));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_is_not_a_superuser_backs_up_and_restores_its_own_database() {
    let server = TestServer::start().await;
    let password = format!("app{}", uuid::Uuid::new_v4().simple());
    let postgres = blocking(|| {
        let postgres = PostgresServer::start();
        postgres.psql("postgres", &format!("CREATE ROLE app LOGIN CREATEDB PASSWORD '{password}'"));
        postgres.create_database("appdb");
        postgres.psql("postgres", "ALTER DATABASE appdb OWNER TO app");
        postgres.psql(
            "appdb",
            "SET ROLE app; CREATE SCHEMA app AUTHORIZATION app; \
             CREATE TABLE app.orders (id serial PRIMARY KEY, item text, placed timestamptz DEFAULT now()); \
             INSERT INTO app.orders (item) SELECT 'item ' || g FROM generate_series(1, 200) g; \
             CREATE VIEW app.recent AS SELECT * FROM app.orders WHERE id > 100;",
        );
        postgres
    });
    let original = blocking(|| postgres.checksums("appdb"));
    let url =
        with_password(&postgres.url("appdb"), postgres.password(), &password).replace("cellar:", "app:");
    let database = server.register(postgres_database("pg-app", &url)).await;

    let backup = ready_backup(&server, &database.id).await;
    let copied = restore(&server, &backup, "", "appdb_copy").await;
    restore_result(&copied);
    assert_same(&blocking(|| postgres.checksums("appdb_copy")), &original, "a copy made by the role");
    blocking(|| postgres.psql("appdb", "DELETE FROM app.orders WHERE id < 50"));
    let replaced = restore(&server, &backup, "", "").await;
    restore_result(&replaced);
    assert_same(
        &blocking(|| postgres.checksums("appdb")),
        &original,
        "the role's database restored over itself",
    );
    let owner = blocking(|| {
        postgres.psql("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb'")
    });
    assert_eq!(owner, "app", "the restored database belongs to the role");
    blocking(|| assert_no_scratch(&postgres));
    for operation in [&copied, &replaced] {
        assert_kept_secret(&password, operation);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_lost_mid_dump_fails_the_backup_as_unreachable_and_stores_nothing() {
    let server = TestServer::start().await;
    let mut postgres = blocking(|| server_with_fixture("shop"));
    let lock = blocking(|| LockHolder::lock(&postgres, "shop", "every_type"));
    let database = server.register(postgres_database("pg-lost", &postgres.url("shop"))).await;
    let started = server.start_backup(backup_of(&database.id)).await;
    server
        .wait_for(&started.name, "the dumping phase", |operation| operation.meta().phase == "dumping")
        .await;
    let postgres_ref = &postgres;
    poll("pg_dump waiting for the lock", PATIENCE, || async move {
        let waiting =
            blocking(|| postgres_ref.psql("shop", "SELECT count(*) FROM pg_locks WHERE NOT granted"));
        (waiting != "0").then_some(())
    })
    .await;

    blocking(|| postgres.kill());
    let done = server.wait_done(&started.name).await;
    let message = assert_failed(&done, "SOURCE_UNREACHABLE");
    assert!(message.contains("pg_dump"), "{message}");
    let backup_id = done.meta().backup_id.clone();
    assert_eq!(backup_state(&server.backup(&backup_id).await), pb::BackupState::Failed);
    assert_eq!(stored_objects(&server, &backup_id), Vec::<PathBuf>::new(), "objects of a failed backup");
    drop(lock);
    assert_kept_secret(postgres.password(), &done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_cancelled_while_swapping_leaves_the_target_open_and_no_scratch_database() {
    // psql stops at a gate before the renames of the swap (after the target stopped
    // taking connections); the other statements and tools run as usual.
    let tools = tempfile::Builder::new().prefix("cellar-swap-tools-").tempdir().expect("temp dir");
    let gate = tools.path().join("gate");
    let reached = tools.path().join("reached");
    let made = Command::new("mkfifo").arg(&gate).status().expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    for name in ["pg_dump", "pg_restore"] {
        script(&tools.path().join(name), &format!("exec '{}' \"$@\"", real_postgres_tool(name).display()));
    }
    script(
        &tools.path().join("psql"),
        &format!(
            "[ \"$1\" = --version ] && exec '{real}' \"$@\"\nsql=$(cat)\n\
             case \"$sql\" in *'RENAME TO'*) touch '{reached}'; exec 3< '{gate}';; esac\n\
             printf '%s\\n' \"$sql\" | '{real}' \"$@\"",
            real = real_postgres_tool("psql").display(),
            reached = reached.display(),
            gate = gate.display()
        ),
    );
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let database = server.register(postgres_database("pg-swap", &postgres.url("shop"))).await;
    let backup = ready_backup(&server, &database.id).await;
    blocking(|| {
        postgres.psql("shop", "UPDATE every_type SET words = 'kept through the cancel' WHERE id = 10")
    });
    let before = blocking(|| postgres.checksums("shop"));

    let request = pb::RestoreBackupRequest { backup_id: backup.id.clone(), ..Default::default() };
    let started = server.backups().restore_backup(request).await.expect("RestoreBackup").into_inner();
    let reached_ref = &reached;
    poll("the swap at the gate", PATIENCE, || async move { reached_ref.exists().then_some(()) }).await;
    let allowed = "SELECT datallowconn FROM pg_database WHERE datname = 'shop'";
    assert_eq!(blocking(|| postgres.psql("postgres", allowed)), "f", "the target is closed while swapping");

    let request = pb::CancelOperationRequest { name: started.name.clone() };
    server.operations().cancel_operation(request).await.expect("CancelOperation");
    let done = server.wait_done(&started.name).await;
    assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");
    let postgres_ref = &postgres;
    poll("the target to take connections again", PATIENCE, || async move {
        (blocking(|| postgres_ref.psql("postgres", allowed)) == "t").then_some(())
    })
    .await;
    poll("the scratch database to go", PATIENCE, || async move {
        let databases = blocking(|| postgres_ref.databases());
        (!databases.iter().any(|db| db.contains("_cellar_"))).then_some(())
    })
    .await;
    assert_same(&blocking(|| postgres.checksums("shop")), &before, "the target after a cancelled swap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psql_without_restricted_mode_refuses_sql_files_but_loads_archives() {
    let tools = tempfile::Builder::new().prefix("cellar-old-psql-").tempdir().expect("temp dir");
    for name in ["pg_dump", "pg_restore"] {
        script(&tools.path().join(name), &format!("exec '{}' \"$@\"", real_postgres_tool(name).display()));
    }
    // A psql 15.13 (the last before \restrict) in all but name.
    script(
        &tools.path().join("psql"),
        &format!(
            "[ \"$1\" = --version ] && {{ echo 'psql (PostgreSQL) 15.13'; exit 0; }}\nexec '{}' \"$@\"",
            real_postgres_tool("psql").display()
        ),
    );
    let options =
        ServerOptions { tool_path: Some(vec![tools.path().to_owned()]), ..ServerOptions::default() };
    let server = TestServer::start_with(options).await;
    let postgres = blocking(|| server_with_fixture("shop"));
    let original = blocking(|| postgres.checksums("shop"));
    let database = server.register(postgres_database("pg-old-psql", &postgres.url("shop"))).await;
    let dumps = tempfile::Builder::new().prefix("cellar-pg-old-psql-").tempdir().expect("temp dir");
    let plain = pg_dump(&postgres.url("shop"), &["--no-owner"], &dumps.path().join("shop.sql"));
    let custom = pg_dump(&postgres.url("shop"), &["--format=custom"], &dumps.path().join("shop.pgdump"));

    let refused = import_files(&server, &database.id, "from_plain", &[&plain]).await;
    let message = assert_failed(&refused, "TOOL_TOO_OLD");
    assert!(message.contains("psql 15.13") && message.contains("15.14"), "{message}");
    assert!(
        !blocking(|| postgres.databases()).contains(&"from_plain".to_owned()),
        "a refused load created its target"
    );
    let loaded = import_files(&server, &database.id, "from_custom", &[&custom]).await;
    import_result(&loaded);
    assert_same(
        &blocking(|| postgres.checksums("from_custom")),
        &original,
        "an archive loaded by pg_restore",
    );
    blocking(|| assert_no_scratch(&postgres));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_every_database_touches_none_when_one_cannot_be_read() {
    let server = TestServer::start().await;
    let password = format!("reader{}", uuid::Uuid::new_v4().simple());
    let (source, target) = blocking(|| {
        let source = PostgresServer::start();
        source.psql("postgres", &format!("CREATE ROLE reader LOGIN PASSWORD '{password}'"));
        for name in ["aaa_readable", "zzz_secret"] {
            source.create_database(name);
            source.psql(name, "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2);");
        }
        source.psql("aaa_readable", "GRANT SELECT ON t TO reader");
        let target = PostgresServer::start();
        target.create_database("aaa_readable");
        target.psql("aaa_readable", "CREATE TABLE mine (id int); INSERT INTO mine VALUES (42);");
        (source, target)
    });
    let before = blocking(|| target.checksums("aaa_readable"));
    let landing = server.register(postgres_database("pg-every-target", &target.url(""))).await;
    let reader = with_password(&source.url(""), source.password(), &password).replace("cellar:", "reader:");

    let request = pb::ImportDatabaseRequest {
        database_id: landing.id.clone(),
        source_connection_uri: reader,
        import_all_databases: true,
        ..Default::default()
    };
    let done = import(&server, request).await;
    let message = assert_failed(&done, "SOURCE_UNREACHABLE");
    assert!(message.contains("zzz_secret") && message.contains("permission denied"), "{message}");
    assert_same(&blocking(|| target.checksums("aaa_readable")), &before, "the readable database's namesake");
    assert!(!blocking(|| target.databases()).contains(&"zzz_secret".to_owned()));
    blocking(|| assert_no_scratch(&target));
    assert_kept_secret(&password, &done);
}

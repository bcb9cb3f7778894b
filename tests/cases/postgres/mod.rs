//! The PostgreSQL engine end to end over gRPC, against throwaway PostgreSQL servers:
//! `flows` (backups, restores and imports that work), `failures` (each failure with
//! its reason, the target as it was and no password shown) and `processes` (no dump
//! or restore tool outlives its operation or Cellar). This module holds what they
//! share.

mod encrypted;
mod failures;
mod flows;
mod processes;

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
    server.restore_and_wait(backup, target_database_id, target_database_name).await
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
// Shared by the failure and process tests

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

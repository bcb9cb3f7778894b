//! The `cellar` binary as a process: `kill -9` in the middle of a backup, then a start on
//! the same data directory that fails the interrupted operation (reason INTERRUPTED)
//! and its backup; SIGTERM during a backup exits 0 within a deadline.

use std::time::Duration;

use crate::support::{
    OperationExt, PATIENCE, ProcessServer, RedisOptions, RedisServer, backup_of, backup_state, blocking,
    files, pb, poll,
};

/// How long a SIGTERMed server may take to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// A password-protected source whose snapshots stream slowly (about 10 s).
fn slow_source(password: &str) -> RedisServer {
    blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless().with_password(password));
        source.load_slow_dataset(10_000, 4096, 1000);
        source
    })
}

async fn operation(server: &ProcessServer, name: &str) -> pb::Operation {
    let request = pb::GetOperationRequest { name: name.to_owned() };
    server.operations().get_operation(request).await.expect("GetOperation").into_inner()
}

async fn backup(server: &ProcessServer, id: &str) -> pb::Backup {
    let request = pb::GetBackupRequest { id: id.to_owned() };
    server.backups().get_backup(request).await.expect("GetBackup").into_inner()
}

/// Starts a backup and waits until data flows.
async fn start_moving_backup(server: &ProcessServer, database: &pb::Database) -> pb::Operation {
    let created =
        server.backups().create_backup(backup_of(&database.id)).await.expect("CreateBackup").into_inner();
    poll("bytes to flow", PATIENCE, || async {
        let current = operation(server, &created.name).await;
        assert!(!current.done, "the backup ended early: {current:?}");
        (current.state() == pb::OperationState::Running && current.bytes_done() > 0).then_some(current)
    })
    .await
}

/// After a restart: the operation failed with INTERRUPTED, its backup FAILED, nothing
/// visible in the local destination, nothing left RUNNING.
async fn assert_interrupted(server: &ProcessServer, name: &str) {
    let after = operation(server, name).await;
    assert!(after.done, "{after:?}");
    assert_eq!(after.state(), pb::OperationState::Failed, "{after:?}");
    let error = after.error().unwrap_or_else(|| panic!("an interrupted operation has an error: {after:?}"));
    assert_eq!(error.reason, "INTERRUPTED", "{error:?}");
    assert!(after.meta().end_time.is_some());
    let lost = backup(server, &after.meta().backup_id).await;
    assert_eq!(backup_state(&lost), pb::BackupState::Failed, "{lost:?}");
    let visible = files::visible_files_under(&server.data_dir().join("backups"));
    assert!(visible.is_empty(), "an interrupted backup left objects: {visible:?}");
    for state in ["OPERATION_STATE_RUNNING", "OPERATION_STATE_QUEUED", "OPERATION_STATE_CANCELLING"] {
        let request = pb::ListOperationsRequest { filter: format!("state = {state}"), ..Default::default() };
        let listed = server.operations().list_operations(request).await.unwrap().into_inner();
        assert_eq!(listed.total_size, 0, "{state}: {listed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_fails_the_running_backup_at_the_next_start() {
    let password = "proc-pw-41c9a0";
    let source = slow_source(password);
    let data_dir = tempfile::Builder::new().prefix("cellar-process-").tempdir().unwrap();
    let mut first = ProcessServer::start(data_dir.path()).await;
    let database = first.register_redis("process-source", &source.uri()).await;
    let running = start_moving_backup(&first, &database).await;
    first.kill_hard();
    let first_logs = first.logs();
    drop(first);

    let second = ProcessServer::start(data_dir.path()).await;
    assert_interrupted(&second, &running.name).await;
    // The partial object the kill left is swept at start-up.
    let left = files::files_under(&data_dir.path().join("backups"));
    assert!(left.is_empty(), "files left after the restart: {left:?}");

    // The database is not left locked: a new backup runs to the end.
    blocking(|| source.speed_up_snapshots());
    let request = backup_of(&database.id);
    let next = second.backups().create_backup(request).await.expect("CreateBackup").into_inner();
    let request = pb::WaitOperationRequest {
        name: next.name.clone(),
        timeout: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
    };
    let next = second.operations().wait_operation(request).await.unwrap().into_inner();
    assert_eq!(next.state(), pb::OperationState::Succeeded, "{next:?}");

    for logs in [first_logs, second.logs()] {
        assert!(logs.contains("cellar listening"), "{logs}");
        crate::support::logs::remember_secret(password);
        assert!(!logs.contains(password), "the password was logged:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_backup_exits_zero_and_the_backup_is_interrupted() {
    let password = "proc-pw-7b22e5";
    let source = slow_source(password);
    let data_dir = tempfile::Builder::new().prefix("cellar-process-").tempdir().unwrap();
    let mut first = ProcessServer::start(data_dir.path()).await;
    let database = first.register_redis("process-source", &source.uri()).await;
    let running = start_moving_backup(&first, &database).await;

    first.terminate();
    let status = first.wait_exit(EXIT_DEADLINE);
    assert!(status.success(), "cellar exited with {status} after SIGTERM; its logs:\n{}", first.logs());
    let first_logs = first.logs();
    crate::support::logs::remember_secret(password);
    assert!(!first_logs.contains(password), "the password was logged:\n{first_logs}");
    drop(first);

    let mut second = ProcessServer::start(data_dir.path()).await;
    assert_interrupted(&second, &running.name).await;

    // An idle server stops at once on SIGTERM, with code 0.
    second.terminate();
    let status = second.wait_exit(EXIT_DEADLINE);
    assert!(status.success(), "cellar exited with {status}; its logs:\n{}", second.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut server = ProcessServer::start_with(data_dir.path(), &["--log-format", "json"]).await;
    let request = pb::ListDatabasesRequest::default();
    server.databases().list_databases(request).await.expect("ListDatabases");
    server.terminate();
    assert!(server.wait_exit(EXIT_DEADLINE).success());
    let logs = server.logs();
    let lines: Vec<&str> = logs.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "expected start and stop lines: {logs}");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(value.get("level").is_some() && value.get("timestamp").is_some(), "{line}");
    }
    assert!(logs.contains("\"cellar listening\""), "{logs}");
}

#[test]
fn a_bad_configuration_is_reported_all_at_once() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cellar"))
        .args(["serve", "--listen", "nowhere", "--max-concurrent-backups", "0", "--log-format", "xml"])
        .env("CELLAR_SHUTDOWN_TIMEOUT", "soon")
        .env_remove("CELLAR_LISTEN")
        .output()
        .expect("run the cellar binary");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for problem in
        ["--listen: 'nowhere'", "--max-concurrent-backups", "--log-format: 'xml'", "CELLAR_SHUTDOWN_TIMEOUT"]
    {
        assert!(stderr.contains(problem), "'{problem}' missing from: {stderr}");
    }
}

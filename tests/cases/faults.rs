//! Faults during a backup: wrong password, unreachable source, the source killed or the
//! replication connection cut mid-transfer, and a cancel mid-transfer. A failure lands
//! in the operation (never in the CreateBackup RPC), the backup ends FAILED (never
//! READY), and nothing partial stays visible in the destination.

use std::path::Path;

use crate::support::{
    OperationExt, RedisOptions, RedisServer, TestServer, assert_no_secret, backup_of, backup_state, blocking,
    files, logs, pb, redis::free_port, redis_database,
};

/// Checks the end of a failed backup: FAILED with `reason` (when given), the backup
/// FAILED, and no visible object in `destination_dir`.
async fn assert_failed_cleanly(
    server: &TestServer,
    operation: &pb::Operation,
    reason: Option<&str>,
    destination_dir: &Path,
) {
    let done = server.wait_done(&operation.name).await;
    assert_eq!(done.state(), pb::OperationState::Failed, "{done:?}");
    let error = done.error().unwrap_or_else(|| panic!("a failed operation has an error: {done:?}"));
    assert_ne!(error.code, 0, "{error:?}");
    assert!(!error.message.is_empty(), "{error:?}");
    assert!(!error.reason.is_empty(), "{error:?}");
    if let Some(reason) = reason {
        assert_eq!(error.reason, reason, "{error:?}");
    }
    assert!(done.response_backup().is_none());
    let backup = server.backup(&done.meta().backup_id).await;
    assert_eq!(backup_state(&backup), pb::BackupState::Failed, "{backup:?}");
    assert!(backup.sha256.is_empty() && backup.size_bytes == 0, "a failed backup has no data: {backup:?}");
    let visible = files::visible_files_under(destination_dir);
    assert!(visible.is_empty(), "a failed backup left objects: {visible:?}");
}

/// Samples GetBackup until the operation is done, failing if the backup is ever READY.
async fn assert_never_ready(server: &TestServer, operation: &pb::Operation) {
    let backup_id = operation.meta().backup_id.clone();
    crate::support::poll("the operation to end", crate::support::PATIENCE, || async {
        let backup = server.backup(&backup_id).await;
        assert_ne!(backup_state(&backup), pb::BackupState::Ready, "the backup became READY: {backup:?}");
        server.operation(&operation.name).await.done.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_with_auth_failed_and_never_shows_it() {
    let right = "right-pw-0e5d3a";
    let wrong = format!("wrong-pw-{}", uuid::Uuid::new_v4().simple());
    let source = blocking(|| RedisServer::start(RedisOptions::diskless().with_password(right)));
    blocking(|| source.load_every_type());
    let server = TestServer::start().await;
    let database = server.register(redis_database("wrong-password", &source.uri_with_password(&wrong))).await;
    assert_no_secret(&wrong, &database);

    let created = server.start_backup(backup_of(&database.id)).await;
    let mut seen = vec![created.clone()];
    seen.extend(server.watch_all(&created.name).await);
    super::backups::check_progression(&seen);
    assert_failed_cleanly(&server, &created, Some("AUTH_FAILED"), &server.local_backups_dir()).await;

    let done = server.operation(&created.name).await;
    let listed = server.all_operations("").await;
    let backups =
        server.backups().list_backups(pb::ListBackupsRequest::default()).await.unwrap().into_inner();
    for secret in [wrong.as_str(), right] {
        assert_no_secret(secret, &seen);
        assert_no_secret(secret, &done);
        assert_no_secret(secret, &listed);
        assert_no_secret(secret, &backups);
        logs::assert_not_logged(secret);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_source_fails_with_source_unreachable() {
    let server = TestServer::start().await;
    let closed_port = free_port();
    let database =
        server.register(redis_database("nobody-home", &format!("redis://127.0.0.1:{closed_port}"))).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    assert_failed_cleanly(&server, &created, Some("SOURCE_UNREACHABLE"), &server.local_backups_dir()).await;

    // The database is free again: the next attempt is admitted (and fails the same way).
    let again = server.start_backup(backup_of(&database.id)).await;
    assert_failed_cleanly(&server, &again, Some("SOURCE_UNREACHABLE"), &server.local_backups_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_killed_mid_transfer_leaves_no_backup() {
    let mut source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    // About 200 MB of values, streamed slowly enough that the kill lands mid-transfer.
    blocking(|| source.load_slow_dataset(2_000_000, 100, 5));
    let server = TestServer::start().await;
    let destination_dir = tempfile::tempdir().unwrap();
    let destination = server.create_directory_destination("killed", destination_dir.path()).await;
    let database = server.register_redis("killed-source", &source).await;

    let request =
        pb::CreateBackupRequest { destination_id: destination.id.clone(), ..backup_of(&database.id) };
    let created = server.start_backup(request).await;
    let moving = server.wait_for_bytes(&created.name).await;
    assert_eq!(backup_state(&server.backup(&moving.meta().backup_id).await), pb::BackupState::Creating);
    blocking(|| source.kill());

    assert_never_ready(&server, &created).await;
    assert_failed_cleanly(&server, &created, None, destination_dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_mid_transfer_leaves_no_backup() {
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    blocking(|| source.load_slow_dataset(3000, 4096, 1000));
    let server = TestServer::start().await;
    let database = server.register_redis("cut-source", &source).await;

    let created = server.start_backup(backup_of(&database.id)).await;
    server.wait_for_bytes(&created.name).await;
    let killed = blocking(|| source.call(&["CLIENT", "KILL", "TYPE", "replica"]));
    assert_eq!(killed, crate::support::redis::Reply::Integer(1), "one replication connection cut");

    assert_never_ready(&server, &created).await;
    assert_failed_cleanly(&server, &created, None, &server.local_backups_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_transfer_ends_cancelled_and_removes_partial_data() {
    let source = blocking(|| RedisServer::start(RedisOptions::diskless()));
    blocking(|| source.load_slow_dataset(3000, 4096, 1000));
    let server = TestServer::start().await;
    let destination_dir = tempfile::tempdir().unwrap();
    let destination = server.create_directory_destination("cancelled", destination_dir.path()).await;
    let database = server.register_redis("cancel-source", &source).await;

    let request = pb::CreateBackupRequest {
        destination_id: destination.id.clone(),
        compression: pb::Compression::Gzip as i32,
        ..backup_of(&database.id)
    };
    let created = server.start_backup(request).await;
    server.wait_for_bytes(&created.name).await;
    let visible = files::visible_files_under(destination_dir.path());
    assert!(visible.is_empty(), "nothing is visible before the commit: {visible:?}");

    let request = pb::CancelOperationRequest { name: created.name.clone() };
    let cancelling = server.operations().cancel_operation(request).await.unwrap().into_inner();
    assert!(
        matches!(cancelling.state(), pb::OperationState::Cancelling | pb::OperationState::Cancelled),
        "{cancelling:?}"
    );
    assert!(cancelling.meta().cancel_time.is_some(), "{cancelling:?}");

    let done = server.wait_done(&created.name).await;
    assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");
    let error = done.error().unwrap_or_else(|| panic!("a cancelled operation has an error: {done:?}"));
    assert_eq!(error.code, 1, "cancelled operations carry code 1 (CANCELLED): {error:?}");
    assert!(done.meta().cancel_time.is_some() && done.meta().end_time.is_some());
    let backup = server.backup(&done.meta().backup_id).await;
    assert_eq!(backup_state(&backup), pb::BackupState::Failed, "{backup:?}");
    let left = files::files_under(destination_dir.path());
    assert!(left.is_empty(), "partial data was left behind: {left:?}");

    // Cancelling again returns the finished operation unchanged.
    let request = pb::CancelOperationRequest { name: created.name.clone() };
    let again = server.operations().cancel_operation(request).await.unwrap().into_inner();
    assert_eq!(again.state(), pb::OperationState::Cancelled);
    assert_eq!(again.meta().end_time, done.meta().end_time);

    // The database is free again, and the source is fine.
    source.speed_up_snapshots();
    let next = server
        .start_backup(pb::CreateBackupRequest { destination_id: destination.id, ..backup_of(&database.id) })
        .await;
    let next = server.wait_done(&next.name).await;
    assert_eq!(next.state(), pb::OperationState::Succeeded, "{next:?}");
}

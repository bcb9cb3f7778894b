//! Admission: at most `max_concurrent_backups` backups run at once and the rest wait in
//! order with their queue position; one data operation per database (ABORTED with
//! DATABASE_BUSY and RetryInfo otherwise); request_id idempotency of CreateBackup and
//! DeleteBackup; DeleteBackup removing the objects and then the record.

use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{
    OperationExt, RedisOptions, RedisServer, ServerOptions, TestServer, assert_code, backup_of, backup_state,
    blocking, error_reason, files, pb, redis::free_port, redis_database, request_id,
};

/// A source whose every snapshot takes about `keys` milliseconds.
fn slow_source(keys: u32, options: RedisOptions) -> RedisServer {
    blocking(|| {
        let source = RedisServer::start(options);
        source.call(&["DEBUG", "POPULATE", &keys.to_string(), "key", "64"]);
        source.slow_down_snapshots(1000);
        source
    })
}

fn timestamp_key(time: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let time = time.as_ref().expect("timestamp set");
    (time.seconds, time.nanos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_four_backups_run_at_once_and_the_rest_queue_in_order() {
    // Disk transfer: concurrent syncs share one BGSAVE of about 1.5 s.
    let source = slow_source(1500, RedisOptions::disk());
    let server =
        TestServer::start_with(ServerOptions { max_concurrent_backups: 4, ..Default::default() }).await;
    let mut databases = Vec::new();
    for index in 0..6 {
        databases.push(server.register_redis(&format!("admission-{index}"), &source).await);
    }
    let mut submitted = Vec::new();
    for database in &databases {
        submitted.push(server.start_backup(backup_of(&database.id)).await);
    }
    for operation in &submitted[..4] {
        assert_eq!(operation.state(), pb::OperationState::Running, "{operation:?}");
        assert_eq!(operation.meta().queue_position, 0);
        assert!(operation.meta().start_time.is_some());
    }
    for (operation, position) in submitted[4..].iter().zip([1, 2]) {
        assert_eq!(operation.state(), pb::OperationState::Queued, "{operation:?}");
        assert_eq!(operation.meta().queue_position, position, "{operation:?}");
        assert!(operation.meta().start_time.is_none(), "a queued operation has not started: {operation:?}");
    }
    // The first look after submission: 4 running, 2 queued as 1 and 2.
    let now: Vec<pb::Operation> = {
        let mut current = Vec::new();
        for operation in &submitted {
            current.push(server.operation(&operation.name).await);
        }
        current
    };
    let running = now.iter().filter(|operation| operation.state() == pb::OperationState::Running).count();
    assert_eq!(running, 4, "{now:?}");
    assert_eq!(now[4].meta().queue_position, 1, "{:?}", now[4]);
    assert_eq!(now[5].meta().queue_position, 2, "{:?}", now[5]);
    let listed = server.all_operations("state = OPERATION_STATE_QUEUED").await;
    let mut queued: Vec<(i32, String)> =
        listed.iter().map(|operation| (operation.meta().queue_position, operation.name.clone())).collect();
    queued.sort();
    assert_eq!(queued, vec![(1, submitted[4].name.clone()), (2, submitted[5].name.clone())]);

    // Sample until everything is done: never more than 4 running, queue positions 1..n.
    let samples = std::cell::Cell::new(0);
    crate::support::poll("every backup to finish", crate::support::PATIENCE, || async {
        samples.set(samples.get() + 1);
        let operations = server.all_operations("kind = OPERATION_KIND_BACKUP").await;
        assert_eq!(operations.len(), 6);
        let running = operations
            .iter()
            .filter(|operation| {
                matches!(operation.state(), pb::OperationState::Running | pb::OperationState::Cancelling)
            })
            .count();
        assert!(running <= 4, "{running} backups running at once: {operations:?}");
        let mut positions: Vec<i32> = operations
            .iter()
            .filter(|operation| operation.state() == pb::OperationState::Queued)
            .map(|operation| operation.meta().queue_position)
            .collect();
        positions.sort();
        assert_eq!(positions, (1..=positions.len() as i32).collect::<Vec<_>>(), "{operations:?}");
        operations.iter().all(|operation| operation.done).then_some(())
    })
    .await;
    assert!(samples.get() > 2, "the backups were too quick to observe the queue");

    let mut finished = Vec::new();
    for operation in &submitted {
        let done = server.wait_done(&operation.name).await;
        assert_eq!(done.state(), pb::OperationState::Succeeded, "{done:?}");
        assert_eq!(backup_state(&server.backup(&done.meta().backup_id).await), pb::BackupState::Ready);
        finished.push(done);
    }
    // The queued ones started only after one of the first four had finished, in order.
    let first_end =
        finished[..4].iter().map(|operation| timestamp_key(&operation.meta().end_time)).min().unwrap();
    let fifth_start = timestamp_key(&finished[4].meta().start_time);
    let sixth_start = timestamp_key(&finished[5].meta().start_time);
    assert!(fifth_start >= first_end, "the 5th started before a slot was free");
    assert!(sixth_start >= fifth_start, "the queue is first in, first out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_is_aborted_with_retry_info() {
    let source = slow_source(3000, RedisOptions::disk());
    let server = TestServer::start().await;
    let database = server.register_redis("busy", &source).await;
    let first = server.start_backup(backup_of(&database.id)).await;
    assert!(!first.done);

    let refused = assert_code(server.backups().create_backup(backup_of(&database.id)).await, Code::Aborted);
    check_busy(&refused);
    let with_key = pb::CreateBackupRequest { request_id: request_id(), ..backup_of(&database.id) };
    check_busy(&assert_code(server.backups().create_backup(with_key).await, Code::Aborted));
    let deleting =
        server.databases().delete_database(pb::DeleteDatabaseRequest { id: database.id.clone() }).await;
    check_busy(&assert_code(deleting, Code::Aborted));
    // A backup that is still being created cannot be deleted.
    let request = pb::DeleteBackupRequest { id: first.meta().backup_id.clone(), request_id: String::new() };
    assert_code(server.backups().delete_backup(request).await, Code::FailedPrecondition);
    assert_eq!(server.all_operations("").await.len(), 1, "refused requests start nothing");

    // Once the first is done (cancelled here), the database takes a new backup.
    let request = pb::CancelOperationRequest { name: first.name.clone() };
    server.operations().cancel_operation(request).await.unwrap();
    assert_eq!(server.wait_done(&first.name).await.state(), pb::OperationState::Cancelled);
    blocking(|| source.speed_up_snapshots());
    let next = server.start_backup(backup_of(&database.id)).await;
    assert_eq!(server.wait_done(&next.name).await.state(), pb::OperationState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_a_queued_backup_is_busy_too() {
    let source = slow_source(3000, RedisOptions::disk());
    let server =
        TestServer::start_with(ServerOptions { max_concurrent_backups: 1, ..Default::default() }).await;
    let running_db = server.register_redis("runs", &source).await;
    let queued_db = server.register_redis("waits", &source).await;
    let running = server.start_backup(backup_of(&running_db.id)).await;
    let queued = server.start_backup(backup_of(&queued_db.id)).await;
    assert_eq!(running.state(), pb::OperationState::Running);
    assert_eq!(queued.state(), pb::OperationState::Queued);
    assert_eq!(queued.meta().queue_position, 1);

    check_busy(&assert_code(server.backups().create_backup(backup_of(&queued_db.id)).await, Code::Aborted));

    // Cancelling a queued operation ends it at once, and its backup is FAILED.
    let request = pb::CancelOperationRequest { name: queued.name.clone() };
    let cancelled = server.operations().cancel_operation(request).await.unwrap().into_inner();
    assert_eq!(cancelled.state(), pb::OperationState::Cancelled, "{cancelled:?}");
    assert!(cancelled.done);
    assert_eq!(cancelled.error().map(|error| error.code), Some(1), "{cancelled:?}");
    assert!(cancelled.meta().start_time.is_none(), "it never started");
    assert_eq!(backup_state(&server.backup(&queued.meta().backup_id).await), pb::BackupState::Failed);
    // ... and frees its database at once.
    let requeued = server.start_backup(backup_of(&queued_db.id)).await;
    assert_eq!(requeued.state(), pb::OperationState::Queued);
    assert_eq!(requeued.meta().queue_position, 1);

    blocking(|| source.speed_up_snapshots());
    for name in [&running.name, &requeued.name] {
        assert_eq!(server.wait_done(name).await.state(), pb::OperationState::Succeeded);
    }
}

fn check_busy(status: &tonic::Status) {
    assert_eq!(error_reason(status).as_deref(), Some("DATABASE_BUSY"), "{status:?}");
    let details = status.get_error_details();
    let retry =
        details.retry_info().unwrap_or_else(|| panic!("a busy refusal carries RetryInfo: {status:?}"));
    let delay = retry.retry_delay.unwrap_or_else(|| panic!("RetryInfo has a delay: {status:?}"));
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(600), "{delay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_backup_with_a_request_id_is_idempotent() {
    let source = slow_source(1000, RedisOptions::disk());
    let server = TestServer::start().await;
    let database = server.register_redis("idempotent", &source).await;
    let key = request_id();
    let request = pb::CreateBackupRequest { request_id: key.clone(), ..backup_of(&database.id) };
    let first = server.start_backup(request.clone()).await;
    assert_eq!(first.meta().request_id, key);

    // A retry while it runs returns it (and is not refused as busy).
    let retry = server.start_backup(request.clone()).await;
    assert_eq!(retry.name, first.name);
    assert_eq!(retry.meta().backup_id, first.meta().backup_id);

    let done = server.wait_done(&first.name).await;
    assert_eq!(done.state(), pb::OperationState::Succeeded);
    let late_retry = server.start_backup(request).await;
    assert_eq!(late_retry.name, first.name);
    assert!(late_retry.done, "a retry after the end returns the finished operation");
    assert_eq!(late_retry.state(), pb::OperationState::Succeeded);

    let filter = format!("database_id = \"{}\"", database.id);
    let request = pb::ListBackupsRequest { filter, ..Default::default() };
    let backups = server.backups().list_backups(request).await.unwrap().into_inner();
    assert_eq!(backups.total_size, 1, "one backup for three calls: {backups:?}");
    assert_eq!(server.all_operations("").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_backup_removes_the_objects_then_the_record() {
    let source = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| source.load_every_type());
    let server = TestServer::start().await;
    let database = server.register_redis("deleted", &source).await;
    let created = server.start_backup(backup_of(&database.id)).await;
    let done = server.wait_done(&created.name).await;
    let backup = server.backup(&done.meta().backup_id).await;
    assert_eq!(backup_state(&backup), pb::BackupState::Ready);
    let object = files::path_of_uri(&backup.uri);
    let manifest = object.with_file_name("manifest.json");
    assert!(object.is_file() && manifest.is_file());

    let key = request_id();
    let request = pb::DeleteBackupRequest { id: backup.id.clone(), request_id: key.clone() };
    let deleting = server.backups().delete_backup(request.clone()).await.unwrap().into_inner();
    assert_eq!(deleting.meta().kind, pb::OperationKind::DeleteBackup as i32);
    assert_eq!(deleting.meta().backup_id, backup.id);
    let deleted = server.wait_done(&deleting.name).await;
    assert_eq!(deleted.state(), pb::OperationState::Succeeded, "{deleted:?}");
    assert_eq!(deleted.response_backup().map(|last| last.id.as_str()), Some(backup.id.as_str()));
    assert!(!object.exists() && !manifest.exists(), "the objects are removed");
    let left = files::visible_files_under(&server.local_backups_dir());
    assert!(left.is_empty(), "{left:?}");
    assert_code(
        server.backups().get_backup(pb::GetBackupRequest { id: backup.id.clone() }).await,
        Code::NotFound,
    );

    // A retry with the same request_id returns the same operation.
    let retry = server.backups().delete_backup(request).await.unwrap().into_inner();
    assert_eq!(retry.name, deleting.name);
    assert!(retry.done);
    // Without it, the backup is simply gone.
    let request = pb::DeleteBackupRequest { id: backup.id.clone(), request_id: String::new() };
    assert_code(server.backups().delete_backup(request).await, Code::NotFound);

    // A FAILED backup (no objects) can be deleted too.
    let nowhere =
        server.register(redis_database("nowhere", &format!("redis://127.0.0.1:{}", free_port()))).await;
    let failed = server.start_backup(backup_of(&nowhere.id)).await;
    let failed = server.wait_done(&failed.name).await;
    assert_eq!(failed.state(), pb::OperationState::Failed);
    let request = pb::DeleteBackupRequest { id: failed.meta().backup_id.clone(), request_id: String::new() };
    let deleting = server.backups().delete_backup(request).await.unwrap().into_inner();
    assert_eq!(server.wait_done(&deleting.name).await.state(), pb::OperationState::Succeeded);
    let request = pb::GetBackupRequest { id: failed.meta().backup_id.clone() };
    assert_code(server.backups().get_backup(request).await, Code::NotFound);
}

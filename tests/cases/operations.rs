//! OperationService: Get (with and without the `operations/` prefix), List with filters,
//! order and pages, Wait with a timeout, Watch (at once, progress, the end), Delete of a
//! running and of a done operation; and UNIMPLEMENTED for the RPCs whose features have
//! not landed.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::support::{
    OperationExt, RedisOptions, RedisServer, TestServer, assert_code, assert_invalid, backup_of, blocking,
    pb, redis::free_port, redis_database, unknown_id,
};

fn names(operations: &[pb::Operation]) -> Vec<String> {
    operations.iter().map(|operation| operation.name.clone()).collect()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_are_listed_filtered_and_paged() {
    let source = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| source.load_every_type());
    let server = TestServer::start().await;
    let good = server.register_redis("listed-good", &source).await;
    let bad =
        server.register(redis_database("listed-bad", &format!("redis://127.0.0.1:{}", free_port()))).await;

    let succeeded = server.start_backup(backup_of(&good.id)).await;
    let succeeded = server.wait_done(&succeeded.name).await;
    let failed = server.start_backup(backup_of(&bad.id)).await;
    let failed = server.wait_done(&failed.name).await;
    let request =
        pb::DeleteBackupRequest { id: succeeded.meta().backup_id.clone(), request_id: String::new() };
    let deleted = server.backups().delete_backup(request).await.unwrap().into_inner();
    let deleted = server.wait_done(&deleted.name).await;
    assert_eq!(succeeded.state(), pb::OperationState::Succeeded);
    assert_eq!(failed.state(), pb::OperationState::Failed);
    assert_eq!(deleted.state(), pb::OperationState::Succeeded);

    // Names work with and without the prefix.
    let bare = succeeded.name.strip_prefix("operations/").expect("operations/<uuid>");
    assert!(uuid::Uuid::parse_str(bare).is_ok(), "{}", succeeded.name);
    assert_eq!(server.operation(bare).await, server.operation(&succeeded.name).await);

    let all =
        server.operations().list_operations(pb::ListOperationsRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.total_size, 3);
    assert_eq!(
        names(&all.operations),
        vec![deleted.name.clone(), failed.name.clone(), succeeded.name.clone()],
        "newest first"
    );
    assert_eq!(all.next_page_token, "");

    let list = |filter: String, order_by: &str| {
        let request =
            pb::ListOperationsRequest { filter, order_by: order_by.to_owned(), ..Default::default() };
        let mut client = server.operations();
        async move { client.list_operations(request).await.unwrap().into_inner() }
    };
    let backups = list("kind = OPERATION_KIND_BACKUP".into(), "").await;
    assert_eq!(sorted(names(&backups.operations)), sorted(vec![succeeded.name.clone(), failed.name.clone()]));
    assert_eq!(backups.total_size, 2);
    let short = list("kind = BACKUP".into(), "").await;
    assert_eq!(short.total_size, 2, "short enum names are accepted");
    let deletes = list("kind = OPERATION_KIND_DELETE_BACKUP".into(), "").await;
    assert_eq!(names(&deletes.operations), vec![deleted.name.clone()]);
    let failures = list("state = OPERATION_STATE_FAILED".into(), "").await;
    assert_eq!(names(&failures.operations), vec![failed.name.clone()]);
    let successes = list("state = OPERATION_STATE_SUCCEEDED".into(), "").await;
    assert_eq!(
        sorted(names(&successes.operations)),
        sorted(vec![succeeded.name.clone(), deleted.name.clone()])
    );
    let not_failed = list("state != OPERATION_STATE_FAILED".into(), "").await;
    assert_eq!(not_failed.total_size, 2);
    let of_bad = list(format!("database_id = \"{}\"", bad.id), "").await;
    assert_eq!(names(&of_bad.operations), vec![failed.name.clone()]);
    let good_backups =
        list(format!("database_id = \"{}\" AND kind = OPERATION_KIND_BACKUP", good.id), "").await;
    assert_eq!(names(&good_backups.operations), vec![succeeded.name.clone()]);
    let of_backup = list(format!("backup_id = \"{}\"", succeeded.meta().backup_id), "").await;
    assert_eq!(
        sorted(names(&of_backup.operations)),
        sorted(vec![succeeded.name.clone(), deleted.name.clone()])
    );
    let none = list(format!("database_id = \"{}\"", unknown_id()), "").await;
    assert_eq!((none.total_size, none.operations.len()), (0, 0));

    let oldest_first = list(String::new(), "create_time asc").await;
    assert_eq!(
        names(&oldest_first.operations),
        vec![succeeded.name.clone(), failed.name.clone(), deleted.name.clone()]
    );

    // Pages of 2: 2 + 1, each with the total; a token is tied to its filter.
    let request = pb::ListOperationsRequest { page_size: 2, ..Default::default() };
    let first = server.operations().list_operations(request).await.unwrap().into_inner();
    assert_eq!((first.operations.len(), first.total_size), (2, 3));
    assert!(!first.next_page_token.is_empty());
    let request = pb::ListOperationsRequest {
        page_size: 2,
        page_token: first.next_page_token.clone(),
        ..Default::default()
    };
    let second = server.operations().list_operations(request).await.unwrap().into_inner();
    assert_eq!((second.operations.len(), second.total_size), (1, 3));
    assert_eq!(second.next_page_token, "");
    assert_eq!([names(&first.operations), names(&second.operations)].concat(), names(&all.operations));
    let request = pb::ListOperationsRequest {
        page_size: 2,
        page_token: first.next_page_token,
        filter: "kind = OPERATION_KIND_BACKUP".into(),
        ..Default::default()
    };
    assert_invalid(server.operations().list_operations(request).await, "page_token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_watch_and_delete_follow_the_operation() {
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::diskless());
        source.load_slow_dataset(4000, 4096, 1000);
        source
    });
    let server = TestServer::start().await;
    let database = server.register_redis("followed", &source).await;
    let created = server.start_backup(backup_of(&database.id)).await;

    // Wait with a short timeout returns the running operation at the timeout.
    let started = Instant::now();
    let request = pb::WaitOperationRequest {
        name: created.name.clone(),
        timeout: Some(prost_types::Duration { seconds: 0, nanos: 300_000_000 }),
    };
    let waited = server.operations().wait_operation(request).await.unwrap().into_inner();
    let elapsed = started.elapsed();
    assert!(!waited.done, "{waited:?}");
    assert_eq!(waited.state(), pb::OperationState::Running);
    assert!(elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3), "waited {elapsed:?}");

    // A running operation cannot be forgotten.
    let request = pb::DeleteOperationRequest { name: created.name.clone() };
    assert_code(server.operations().delete_operation(request).await, Code::FailedPrecondition);

    // Watch sends the current state at once, then progress at most every 250 ms.
    let started = Instant::now();
    let request = pb::WatchOperationRequest { name: created.name.clone() };
    let mut stream = server.operations().watch_operation(request).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().expect("a first message");
    assert!(started.elapsed() < Duration::from_secs(1), "the first message took {:?}", started.elapsed());
    assert_eq!(first.state(), pb::OperationState::Running);
    let mut seen = vec![first];
    while seen.iter().filter(|operation| operation.bytes_done() > 0).count() < 3 {
        let next = stream.message().await.unwrap().expect("the stream goes on while running");
        assert!(!next.done, "the backup ended before three progress messages: {next:?}");
        seen.push(next);
    }
    for pair in seen.windows(2) {
        let (before, after) = (pair[0].meta(), pair[1].meta());
        let progress_only = before.state == after.state
            && before.phase == after.phase
            && after.progress.as_ref().unwrap().bytes_done > before.progress.as_ref().unwrap().bytes_done;
        if progress_only {
            let gap = millis(&after.update_time) - millis(&before.update_time);
            assert!(gap >= 200, "progress messages {gap} ms apart: {before:?} -> {after:?}");
        }
    }

    // Cancel; the same stream ends with the final state.
    let request = pb::CancelOperationRequest { name: created.name.clone() };
    server.operations().cancel_operation(request).await.unwrap();
    let mut last = seen.last().unwrap().clone();
    while let Some(next) =
        tokio::time::timeout(crate::support::PATIENCE, stream.message()).await.unwrap().unwrap()
    {
        assert!(!last.done, "a message after done: {next:?}");
        last = next;
    }
    assert!(last.done);
    assert_eq!(last.state(), pb::OperationState::Cancelled);

    // Once done, Wait returns at once, and Watch sends exactly one message.
    let started = Instant::now();
    let request = pb::WaitOperationRequest {
        name: created.name.clone(),
        timeout: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
    };
    let waited = server.operations().wait_operation(request).await.unwrap().into_inner();
    assert!(waited.done && started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let watched = server.watch_all(&created.name).await;
    assert_eq!(watched.len(), 1, "{watched:?}");
    assert!(watched[0].done);
    assert_eq!(watched[0], waited);

    // Delete forgets it; the backup record it made stays.
    let bare = created.name.strip_prefix("operations/").unwrap().to_owned();
    server.operations().delete_operation(pb::DeleteOperationRequest { name: bare.clone() }).await.unwrap();
    let request = pb::GetOperationRequest { name: created.name.clone() };
    assert_code(server.operations().get_operation(request).await, Code::NotFound);
    let request = pb::DeleteOperationRequest { name: created.name.clone() };
    assert_code(server.operations().delete_operation(request).await, Code::NotFound);
    let request = pb::WatchOperationRequest { name: created.name.clone() };
    assert_code(server.operations().watch_operation(request).await.map(|_| ()), Code::NotFound);
    server.backup(&created.meta().backup_id).await;
    assert!(server.all_operations("").await.is_empty());
}

fn millis(time: &Option<prost_types::Timestamp>) -> i64 {
    let time = time.as_ref().expect("update_time set");
    time.seconds * 1000 + i64::from(time.nanos) / 1_000_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_and_bad_requests_start_nothing() {
    let server = TestServer::start().await;
    let database = server.register(redis_database("later", "redis://127.0.0.1:1")).await;
    let id = unknown_id();

    // RestoreBackup has landed: an unknown backup is NOT_FOUND, not UNIMPLEMENTED.
    let request = pb::RestoreBackupRequest { backup_id: id.clone(), ..Default::default() };
    assert_code(server.backups().restore_backup(request).await, Code::NotFound);
    // ImportDatabase has landed: a request without a source is INVALID_ARGUMENT.
    let request = pb::ImportDatabaseRequest { database_id: database.id.clone(), ..Default::default() };
    assert_code(server.imports().import_database(request).await, Code::InvalidArgument);
    // ImportBackup has landed: a request without a source is INVALID_ARGUMENT.
    let request = pb::ImportBackupRequest::default();
    assert_code(server.imports().import_backup(request).await, Code::InvalidArgument);
    // ExportDatabase has landed: a request without a location is INVALID_ARGUMENT.
    let request = pb::ExportDatabaseRequest { database_id: database.id.clone(), ..Default::default() };
    assert_code(server.exports().export_database(request).await, Code::InvalidArgument);
    // ExportBackup and DownloadBackup have landed: an unknown backup is NOT_FOUND.
    let request = pb::ExportBackupRequest { backup_id: id.clone(), ..Default::default() };
    assert_code(server.exports().export_backup(request).await, Code::NotFound);
    let request = pb::DownloadBackupRequest { backup_id: id, ..Default::default() };
    assert_code(server.exports().download_backup(request).await.map(|_| ()), Code::NotFound);
    assert!(server.all_operations("").await.is_empty(), "nothing was started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_operations_stay_cancelled() {
    // Many cancels at once race the jobs' own clean-up: whatever the interleaving, every
    // operation must end CANCELLED, and stay so in the catalog once the cancels return.
    const COUNT: usize = 12;
    let source = blocking(|| {
        let source = RedisServer::start(RedisOptions::disk());
        source.call(&["DEBUG", "POPULATE", "3000", "key", "16"]);
        source.slow_down_snapshots(1000);
        source
    });
    let options = crate::support::ServerOptions { max_concurrent_backups: COUNT, ..Default::default() };
    let server = TestServer::start_with(options).await;
    let mut running = Vec::new();
    for index in 0..COUNT {
        let database = server.register_redis(&format!("cancelled-{index}"), &source).await;
        running.push(server.start_backup(backup_of(&database.id)).await);
    }
    assert!(running.iter().all(|operation| operation.state() == pb::OperationState::Running), "{running:?}");

    let cancels: Vec<_> = running
        .iter()
        .map(|operation| {
            let mut client = server.operations();
            let request = pb::CancelOperationRequest { name: operation.name.clone() };
            tokio::spawn(async move { client.cancel_operation(request).await })
        })
        .collect();
    for cancel in cancels {
        cancel.await.unwrap().expect("CancelOperation");
    }
    for operation in &running {
        let done = server
            .wait_for_within(&operation.name, "end after the cancel", Duration::from_secs(20), |current| {
                current.done
            })
            .await;
        assert_eq!(done.state(), pb::OperationState::Cancelled, "{done:?}");
    }
    // Read again once nothing runs: the catalog holds the final states.
    let listed = server.all_operations("").await;
    let stuck: Vec<_> =
        listed.iter().filter(|operation| operation.state() != pb::OperationState::Cancelled).collect();
    assert!(stuck.is_empty(), "operations not CANCELLED after their cancel returned: {stuck:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_catalog_and_interrupts_running_work() {
    let source = blocking(|| RedisServer::start(RedisOptions::disk()));
    blocking(|| source.load_every_type());
    let mut server = TestServer::start().await;
    let database = server.register_redis("survivor", &source).await;
    let finished = server.start_backup(backup_of(&database.id)).await;
    let finished = server.wait_done(&finished.name).await;
    let ready_id = finished.meta().backup_id.clone();
    let ready = server.backup(&ready_id).await;

    blocking(|| {
        source.call(&["DEBUG", "POPULATE", "3000", "slow", "16"]);
        source.slow_down_snapshots(1000);
    });
    let running = server.start_backup(backup_of(&database.id)).await;
    assert_eq!(running.state(), pb::OperationState::Running);

    // A graceful stop fails the running operation; the next start finds it so.
    server.restart().await;
    let interrupted = server.operation(&running.name).await;
    assert!(interrupted.done, "{interrupted:?}");
    assert_eq!(interrupted.state(), pb::OperationState::Failed, "{interrupted:?}");
    assert_eq!(
        interrupted.error().map(|error| error.reason.as_str()),
        Some("INTERRUPTED"),
        "{interrupted:?}"
    );
    let lost = server.backup(&interrupted.meta().backup_id).await;
    assert_eq!(crate::support::backup_state(&lost), pb::BackupState::Failed);

    // The catalog is intact: the database (password and all), the READY backup, one `local`.
    let request = pb::GetDatabaseRequest { id: database.id.clone() };
    assert_eq!(server.databases().get_database(request).await.unwrap().into_inner(), database);
    assert_eq!(server.backup(&ready_id).await, ready);
    assert!(crate::support::files::path_of_uri(&ready.uri).is_file());
    let destinations =
        server.destinations().list_destinations(pb::ListDestinationsRequest::default()).await.unwrap();
    assert_eq!(destinations.into_inner().total_size, 1, "the local destination is created once");
    assert_eq!(server.operation(&finished.name).await, finished);
    assert_eq!(server.all_operations("").await.len(), 2);

    // And it works: the database takes a new backup.
    blocking(|| source.speed_up_snapshots());
    let next = server.start_backup(backup_of(&database.id)).await;
    assert_eq!(server.wait_done(&next.name).await.state(), pb::OperationState::Succeeded);
}

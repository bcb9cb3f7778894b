//! Deterministic tests of the manager with a scripted job: admission, queue positions,
//! busy databases, idempotency, cancel, watch, wait, shutdown and recovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::Notify;

use super::{Error, Job, JobContext, Manager, Submission};
use crate::domain::{
    Code, DatabaseId, Failure, Operation, OperationKind, OperationResult, OperationState, RestoreResult,
    reason,
};
use crate::metadata::{SqliteStore, Store};

/// Runs until released or cancelled.
#[derive(Default)]
struct ScriptedJob {
    release: Notify,
    abandoned: AtomicUsize,
}

#[async_trait]
impl Job for ScriptedJob {
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure> {
        ctx.set_phase("working");
        ctx.set_totals(100, 0);
        ctx.set_done(10, 0);
        tokio::select! {
            () = self.release.notified() => Ok(OperationResult::Restore(RestoreResult::default())),
            () = ctx.token().cancelled() => Err(Failure::cancelled()),
        }
    }

    async fn abandon(&self, _failure: &Failure) {
        self.abandoned.fetch_add(1, Ordering::SeqCst);
    }
}

async fn manager(slots: usize) -> (Manager, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    (Manager::new(store.clone(), slots), store)
}

fn backup_of(database: DatabaseId, job: &Arc<ScriptedJob>, request_id: Option<&str>) -> Submission {
    Submission {
        kind: OperationKind::Backup,
        database_id: Some(database),
        backup: None,
        insert_backup: false,
        request_id: request_id.map(str::to_owned),
        job: job.clone(),
    }
}

async fn state_of(manager: &Manager, operation: &Operation) -> Operation {
    manager.get(operation.id).await.unwrap()
}

async fn until(manager: &Manager, operation: &Operation, wanted: OperationState) -> Operation {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let current = state_of(manager, operation).await;
        if current.state == wanted {
            return current;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?} never reached {wanted:?}", current.state);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn slots_bound_running_jobs_and_the_queue_reports_positions() {
    let (manager, _store) = manager(2).await;
    let jobs: Vec<Arc<ScriptedJob>> = (0..4).map(|_| Arc::new(ScriptedJob::default())).collect();
    let mut operations = Vec::new();
    for job in &jobs {
        operations.push(manager.submit(backup_of(DatabaseId::new(), job, None)).await.unwrap());
    }
    let states: Vec<_> =
        operations.iter().map(|operation| (operation.state, operation.queue_position)).collect();
    assert_eq!(states[..2], [(OperationState::Running, 0), (OperationState::Running, 0)]);
    let queued: Vec<_> =
        futures::future::join_all(operations[2..].iter().map(|op| state_of(&manager, op))).await;
    assert_eq!(
        queued.iter().map(|op| (op.state, op.queue_position)).collect::<Vec<_>>(),
        [(OperationState::Queued, 1), (OperationState::Queued, 2)]
    );

    jobs[0].release.notify_one();
    until(&manager, &operations[0], OperationState::Succeeded).await;
    until(&manager, &operations[2], OperationState::Running).await;
    assert_eq!(state_of(&manager, &operations[3]).await.queue_position, 1);
    for job in &jobs[1..] {
        job.release.notify_one();
    }
    for operation in &operations {
        let done = until(&manager, operation, OperationState::Succeeded).await;
        assert!(done.end_time.is_some() && done.result.is_some());
    }
}

#[tokio::test]
async fn a_second_job_on_a_database_is_refused_as_busy_and_request_ids_are_idempotent() {
    let (manager, _store) = manager(4).await;
    let database = DatabaseId::new();
    let job = Arc::new(ScriptedJob::default());
    let first = manager.submit(backup_of(database, &job, Some("req-1"))).await.unwrap();
    let again = manager.submit(backup_of(database, &job, Some("req-1"))).await.unwrap();
    assert_eq!(first.id, again.id);
    match manager.submit(backup_of(database, &job, Some("req-2"))).await {
        Err(Error::DatabaseBusy { database_id, operation_id }) => {
            assert_eq!((database_id, operation_id), (database, first.id));
        }
        other => panic!("expected busy, got {other:?}"),
    }
    assert_eq!(manager.busy_with(database), Some(first.id));
    job.release.notify_one();
    until(&manager, &first, OperationState::Succeeded).await;
    assert_eq!(manager.busy_with(database), None);
}

#[tokio::test]
async fn cancel_ends_queued_jobs_at_once_and_running_jobs_after_cleanup() {
    let (manager, store) = manager(1).await;
    let running_job = Arc::new(ScriptedJob::default());
    let queued_job = Arc::new(ScriptedJob::default());
    let running = manager.submit(backup_of(DatabaseId::new(), &running_job, None)).await.unwrap();
    let queued = manager.submit(backup_of(DatabaseId::new(), &queued_job, None)).await.unwrap();

    let cancelled = manager.cancel(queued.id).await.unwrap();
    assert_eq!(cancelled.state, OperationState::Cancelled);
    assert_eq!(cancelled.error.as_ref().map(|error| error.code), Some(Code::Cancelled));
    assert_eq!(queued_job.abandoned.load(Ordering::SeqCst), 1);
    assert_eq!(store.get_operation(queued.id).await.unwrap().state, OperationState::Cancelled);

    let cancelling = manager.cancel(running.id).await.unwrap();
    assert!(matches!(cancelling.state, OperationState::Cancelling | OperationState::Cancelled));
    let done = until(&manager, &running, OperationState::Cancelled).await;
    assert!(done.cancel_time.is_some());
    assert_eq!(running_job.abandoned.load(Ordering::SeqCst), 0, "a job that ran cleans up itself");
    assert_eq!(manager.cancel(running.id).await.unwrap().state, OperationState::Cancelled, "done stays done");
}

#[tokio::test]
async fn watch_sends_the_current_state_then_changes_and_ends_when_done() {
    let (manager, _store) = manager(1).await;
    let job = Arc::new(ScriptedJob::default());
    let operation = manager.submit(backup_of(DatabaseId::new(), &job, None)).await.unwrap();
    let mut stream = manager.watch(operation.id).await.unwrap();
    let first = stream.next().await.unwrap();
    assert_eq!(first.state, OperationState::Running);
    job.release.notify_one();
    let rest: Vec<Operation> = stream.collect().await;
    let last = rest.last().unwrap_or(&first);
    assert!(last.is_done() && last.state == OperationState::Succeeded);
    assert!(rest.iter().all(|op| op.progress.bytes_done >= first.progress.bytes_done));

    let mut finished = manager.watch(operation.id).await.unwrap();
    assert!(finished.next().await.unwrap().is_done());
    assert!(finished.next().await.is_none(), "a done operation streams exactly one message");
}

#[tokio::test]
async fn wait_returns_at_the_timeout_and_delete_refuses_live_operations() {
    let (manager, _store) = manager(1).await;
    let job = Arc::new(ScriptedJob::default());
    let operation = manager.submit(backup_of(DatabaseId::new(), &job, None)).await.unwrap();
    let waited = manager.wait(operation.id, Duration::from_millis(50)).await.unwrap();
    assert!(!waited.is_done());
    assert!(matches!(manager.delete(operation.id).await, Err(Error::NotDone(_))));
    job.release.notify_one();
    assert!(manager.wait(operation.id, Duration::from_secs(10)).await.unwrap().is_done());
    manager.delete(operation.id).await.unwrap();
    assert!(matches!(
        manager.get(operation.id).await,
        Err(Error::Metadata(crate::metadata::Error::NotFound { .. }))
    ));
}

#[tokio::test]
async fn shutdown_interrupts_running_and_queued_jobs() {
    let (manager, store) = manager(1).await;
    let running_job = Arc::new(ScriptedJob::default());
    let queued_job = Arc::new(ScriptedJob::default());
    let running = manager.submit(backup_of(DatabaseId::new(), &running_job, None)).await.unwrap();
    let queued = manager.submit(backup_of(DatabaseId::new(), &queued_job, None)).await.unwrap();
    assert!(manager.shutdown(Duration::from_secs(5)).await);
    for operation in [&running, &queued] {
        let stored = store.get_operation(operation.id).await.unwrap();
        assert_eq!(stored.state, OperationState::Failed);
        assert_eq!(stored.error.unwrap().reason, reason::INTERRUPTED);
    }
    assert_eq!(queued_job.abandoned.load(Ordering::SeqCst), 1);
    assert!(matches!(
        manager.submit(backup_of(DatabaseId::new(), &running_job, None)).await,
        Err(Error::ShuttingDown)
    ));
}

#[tokio::test]
async fn recover_fails_operations_a_crash_left_unfinished() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let mut running = Operation::queued(OperationKind::Backup, Some(DatabaseId::new()), None, None);
    running.state = OperationState::Running;
    store.create_operation(&running, None).await.unwrap();
    let manager = Manager::new(store.clone(), 4);
    assert_eq!(manager.recover().await.unwrap(), 1);
    let recovered = store.get_operation(running.id).await.unwrap();
    assert_eq!(recovered.state, OperationState::Failed);
    assert_eq!(recovered.error.unwrap().reason, reason::INTERRUPTED);
    assert!(recovered.end_time.is_some());
    assert_eq!(manager.recover().await.unwrap(), 0);
}

#[tokio::test]
async fn many_idle_watchers_never_hold_up_the_job() {
    let (manager, _store) = manager(1).await;
    let job = Arc::new(ScriptedJob::default());
    let operation = manager.submit(backup_of(DatabaseId::new(), &job, None)).await.unwrap();
    // A thousand watchers that read nothing after their first message.
    let mut watchers = Vec::new();
    for _ in 0..1000 {
        let mut stream = manager.watch(operation.id).await.unwrap();
        stream.next().await.unwrap();
        watchers.push(stream);
    }
    job.release.notify_one();
    let done = manager.wait(operation.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.state, OperationState::Succeeded);
    // A slow watcher skips what it missed and gets the final state next.
    let latest = watchers[0].next().await.unwrap();
    assert!(latest.is_done(), "{latest:?}");
    assert!(watchers[0].next().await.is_none());
}

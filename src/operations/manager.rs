//! Admission, queueing, cancellation and the life cycle of every operation.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::watch::{OperationStream, finished, live};
use super::{Job, JobContext};
use crate::domain::list::{Clause, ListQuery, Op, Page, Value};
use crate::domain::{
    Backup, BackupState, Code, DatabaseId, Failure, Operation, OperationId, OperationKind, OperationResult,
    OperationState, reason,
};
use crate::metadata::{self, Store};
use crate::metrics::Metrics;
use crate::notify::Notifier;

/// Progress is written to the catalog at most this often while a job runs; state
/// changes are written at once.
const PERSIST_INTERVAL: Duration = Duration::from_secs(2);

/// Why a submission or a request about an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database already has a data operation queued or running.
    #[error("database {database_id} is busy with operation {operation_id}")]
    DatabaseBusy {
        /// The busy database.
        database_id: DatabaseId,
        /// The operation holding it.
        operation_id: OperationId,
    },
    /// The operation is still queued or running.
    #[error("operation {0} is not done")]
    NotDone(OperationId),
    /// The server is shutting down and takes no new work.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The catalog failed or the operation is unknown.
    #[error(transparent)]
    Metadata(#[from] metadata::Error),
}

/// What a cancel request found.
enum Cancel {
    NotLive,
    Dequeued(Live),
    Signalled(watch::Sender<Operation>),
}

/// A job to run, with what the catalog must record when it is admitted.
pub struct Submission {
    /// What the job does.
    pub kind: OperationKind,
    /// The database it works on; locked while the job is queued or running when
    /// `kind.locks_database()`.
    pub database_id: Option<DatabaseId>,
    /// A backup record to insert together with the operation (CREATING), or the backup
    /// the job works on (`insert_backup = false`).
    pub backup: Option<Backup>,
    /// Whether `backup` is inserted with the operation.
    pub insert_backup: bool,
    /// The idempotency key: a second submission with the same key and kind returns the
    /// first operation.
    pub request_id: Option<String>,
    /// The work.
    pub job: Arc<dyn Job>,
}

/// Runs every operation of the deployment.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    max_slots: usize,
    root: CancellationToken,
    tasks: TaskTracker,
    state: Mutex<State>,
    // Serializes submissions across their catalog writes, so that the busy check, the
    // request-id check and the insert happen as one step.
    submit_lock: tokio::sync::Mutex<()>,
    // Serializes writes of live operations to the catalog. Each write reads the latest
    // state under this lock, so a slow write of an old state (a cancel racing the job's
    // end) can never land after the final one.
    persist_lock: tokio::sync::Mutex<()>,
    // Told of every operation that ends, once its final state is recorded.
    notifier: OnceLock<Notifier>,
}

#[derive(Default)]
struct State {
    used_slots: usize,
    queue: VecDeque<OperationId>,
    busy: HashMap<DatabaseId, OperationId>,
    live: HashMap<OperationId, Live>,
    shutting_down: bool,
}

struct Live {
    sender: watch::Sender<Operation>,
    token: CancellationToken,
    job: Arc<dyn Job>,
    uses_slot: bool,
}

impl Manager {
    /// A manager over `store` allowing `max_concurrent_backups` snapshotting jobs at once.
    pub fn new(store: Arc<dyn Store>, max_concurrent_backups: usize) -> Self {
        let inner = Inner {
            store,
            metrics: Arc::new(Metrics::new()),
            max_slots: max_concurrent_backups.max(1),
            root: CancellationToken::new(),
            tasks: TaskTracker::new(),
            state: Mutex::new(State::default()),
            submit_lock: tokio::sync::Mutex::new(()),
            persist_lock: tokio::sync::Mutex::new(()),
            notifier: OnceLock::new(),
        };
        Manager { inner: Arc::new(inner) }
    }

    /// Tells `notifier` of every operation that ends from now on (recovered ones
    /// included), once its final state is in the catalog. Set once; a second call is
    /// ignored.
    pub fn notify_with(&self, notifier: Notifier) {
        if self.inner.notifier.set(notifier).is_err() {
            tracing::warn!("the operations manager already has a notifier");
        }
    }

    // Hands an ended operation to the notifier, which never waits.
    fn notify(&self, operation: &Operation) {
        if let Some(notifier) = self.inner.notifier.get() {
            notifier.operation_ended(operation);
        }
    }

    /// Fails every operation a previous process left queued or running (reason
    /// `INTERRUPTED`), and the backups they were creating. Call once, before serving.
    pub async fn recover(&self) -> Result<usize, metadata::Error> {
        let store = &self.inner.store;
        let mut recovered = 0;
        for state in [OperationState::Queued, OperationState::Running, OperationState::Cancelling] {
            let filter = vec![Clause {
                field: "state",
                label_key: None,
                op: Op::Eq,
                value: Value::Text(state.as_str().to_owned()),
            }];
            for mut operation in store.list_operations(&ListQuery::all(filter)).await?.items {
                let failure = Failure::new(
                    Code::Aborted,
                    reason::INTERRUPTED,
                    "the server stopped while the operation was queued or running",
                );
                tracing::warn!(operation = %operation.id, kind = %operation.kind, "failing interrupted operation");
                finish(&mut operation, Err(failure));
                store.update_operation(&operation).await?;
                fail_created_backup(store.as_ref(), &operation).await?;
                self.notify(&operation);
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// Admits a job: returns its operation, QUEUED or already RUNNING. A request id seen
    /// before returns the earlier operation and runs nothing.
    pub async fn submit(&self, submission: Submission) -> Result<Operation, Error> {
        let _serial = self.inner.submit_lock.lock().await;
        if let Some(request_id) = &submission.request_id
            && let Some(existing) =
                self.inner.store.find_operation_by_request_id(submission.kind, request_id).await?
        {
            return Ok(self.current(existing));
        }
        self.check_admissible(&submission)?;

        let backup_id = submission.backup.as_ref().map(|backup| backup.id);
        let operation = Operation::queued(
            submission.kind,
            submission.database_id,
            backup_id,
            submission.request_id.clone(),
        );
        let inserted_backup = submission.backup.as_ref().filter(|_| submission.insert_backup);
        self.inner.store.create_operation(&operation, inserted_backup).await?;
        tracing::info!(operation = %operation.id, kind = %operation.kind, "operation submitted");

        let id = operation.id;
        let uses_slot = submission.kind.uses_backup_slot();
        let (sender, _) = watch::channel(operation);
        let token = self.inner.root.child_token();
        let live = Live { sender, token, job: submission.job, uses_slot };
        {
            let mut state = self.inner.lock();
            if submission.kind.locks_database()
                && let Some(database_id) = submission.database_id
            {
                state.busy.insert(database_id, id);
            }
            state.live.insert(id, live);
            state.queue.push_back(id);
        }
        self.pump();
        let current = self.inner.lock().live.get(&id).map(|live| live.sender.borrow().clone());
        match current {
            Some(operation) => Ok(operation),
            None => Ok(self.inner.store.get_operation(id).await?),
        }
    }

    fn check_admissible(&self, submission: &Submission) -> Result<(), Error> {
        let state = self.inner.lock();
        if state.shutting_down {
            return Err(Error::ShuttingDown);
        }
        if !submission.kind.locks_database() {
            return Ok(());
        }
        match submission.database_id.and_then(|id| state.busy.get(&id).map(|operation| (id, *operation))) {
            Some((database_id, operation_id)) => Err(Error::DatabaseBusy { database_id, operation_id }),
            None => Ok(()),
        }
    }

    /// The metrics operations feed.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    /// How many operations are queued, and how many run.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.inner.lock();
        (state.queue.len(), state.live.len() - state.queue.len())
    }

    /// The operation holding `database_id`, if a data operation is queued or running on it.
    pub fn busy_with(&self, database_id: DatabaseId) -> Option<OperationId> {
        self.inner.lock().busy.get(&database_id).copied()
    }

    /// A queued or running restore reading `backup_id`, if any.
    pub fn reading_backup(&self, backup_id: crate::domain::BackupId) -> Option<OperationId> {
        let state = self.inner.lock();
        state.live.iter().find_map(|(id, live)| {
            let operation = live.sender.borrow();
            let reads = operation.kind == OperationKind::Restore && operation.backup_id == Some(backup_id);
            (reads && !operation.is_done()).then_some(*id)
        })
    }

    /// The operation's latest state (live progress for a running one).
    pub async fn get(&self, id: OperationId) -> Result<Operation, Error> {
        if let Some(operation) = self.live_state(id) {
            return Ok(operation);
        }
        Ok(self.inner.store.get_operation(id).await?)
    }

    /// Lists operations; running ones show their live progress.
    pub async fn list(&self, query: &ListQuery) -> Result<Page<Operation>, Error> {
        let mut page = self.inner.store.list_operations(query).await?;
        for operation in &mut page.items {
            if let Some(current) = self.live_state(operation.id) {
                *operation = current;
            } else if !operation.is_done() {
                // It finished between the read of the page and now: its final state is
                // in the catalog (written before it left the live set).
                match self.inner.store.get_operation(operation.id).await {
                    Ok(current) => *operation = current,
                    Err(metadata::Error::NotFound { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(page)
    }

    /// Asks an operation to stop. A queued one is cancelled at once; a running one goes
    /// CANCELLING and ends CANCELLED when its job has cleaned up. A done one is returned
    /// unchanged.
    pub async fn cancel(&self, id: OperationId) -> Result<Operation, Error> {
        match self.request_cancel(id) {
            Cancel::NotLive => Ok(self.inner.store.get_operation(id).await?),
            Cancel::Dequeued(live) => {
                self.pump();
                Ok(self.end_unstarted(id, live, Failure::cancelled()).await)
            }
            Cancel::Signalled(sender) => Ok(self.persist_current(&sender).await),
        }
    }

    // The synchronous half of a cancel: dequeue a queued job, or signal a running one.
    fn request_cancel(&self, id: OperationId) -> Cancel {
        let mut state = self.inner.lock();
        let Some(live) = state.live.get(&id) else { return Cancel::NotLive };
        if live.sender.borrow().state == OperationState::Queued {
            state.queue.retain(|queued| *queued != id);
            return state.remove(id).map_or(Cancel::NotLive, Cancel::Dequeued);
        }
        live.sender.send_modify(|operation| {
            if !operation.is_done() {
                let now = crate::domain::now();
                operation.state = OperationState::Cancelling;
                operation.cancel_time.get_or_insert(now);
                operation.update_time = now;
            }
        });
        live.token.cancel();
        Cancel::Signalled(live.sender.clone())
    }

    /// Forgets a finished operation.
    pub async fn delete(&self, id: OperationId) -> Result<(), Error> {
        // A live operation that is done is already final in the catalog; it only waits
        // to be dropped from the live set.
        if self.live_state(id).is_some_and(|operation| !operation.is_done()) {
            return Err(Error::NotDone(id));
        }
        Ok(self.inner.store.delete_operation(id).await?)
    }

    /// The stream WatchOperation serves.
    pub async fn watch(&self, id: OperationId) -> Result<OperationStream, Error> {
        let receiver = self.inner.lock().live.get(&id).map(|live| live.sender.subscribe());
        match receiver {
            Some(receiver) => Ok(live(receiver)),
            None => Ok(finished(self.inner.store.get_operation(id).await?)),
        }
    }

    /// Waits until the operation is done or `timeout` passes; returns its latest state.
    pub async fn wait(&self, id: OperationId, timeout: Duration) -> Result<Operation, Error> {
        let mut stream = self.watch(id).await?;
        let mut latest = None;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = futures::StreamExt::next(&mut stream) => match next {
                    Some(operation) if operation.is_done() => return Ok(operation),
                    Some(operation) => latest = Some(operation),
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        match latest {
            Some(operation) => Ok(operation),
            None => self.get(id).await,
        }
    }

    /// Stops taking work, cancels queued and running operations (they end FAILED with
    /// reason `INTERRUPTED`), and waits for running jobs to clean up, at most `deadline`.
    /// Returns whether every job finished in time.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        let queued: Vec<(OperationId, Live)> = {
            let mut state = self.inner.lock();
            state.shutting_down = true;
            let queued: Vec<OperationId> = state.queue.drain(..).collect();
            queued.into_iter().filter_map(|id| state.remove(id).map(|live| (id, live))).collect()
        };
        for (id, live) in queued {
            self.end_unstarted(id, live, shutdown_failure()).await;
        }
        self.inner.root.cancel();
        self.inner.tasks.close();
        tokio::time::timeout(deadline, self.inner.tasks.wait()).await.is_ok()
    }

    fn current(&self, operation: Operation) -> Operation {
        self.live_state(operation.id).unwrap_or(operation)
    }

    fn live_state(&self, id: OperationId) -> Option<Operation> {
        self.inner.lock().live.get(&id).map(|live| live.sender.borrow().clone())
    }

    // Starts queued jobs while slots allow, then refreshes the queue positions.
    fn pump(&self) {
        let mut state = self.inner.lock();
        let mut index = 0;
        while index < state.queue.len() {
            let id = state.queue[index];
            let Some(live) = state.live.get(&id) else {
                state.queue.remove(index);
                continue;
            };
            if live.uses_slot && state.used_slots >= self.inner.max_slots {
                index += 1;
                continue;
            }
            let (uses_slot, sender, token, job) =
                (live.uses_slot, live.sender.clone(), live.token.clone(), live.job.clone());
            state.queue.remove(index);
            state.used_slots += usize::from(uses_slot);
            sender.send_modify(|operation| {
                let now = crate::domain::now();
                operation.state = OperationState::Running;
                operation.phase = "starting".to_owned();
                operation.queue_position = 0;
                operation.start_time = Some(now);
                operation.update_time = now;
            });
            let manager = self.clone();
            self.inner.tasks.spawn(async move { manager.run(id, sender, token, job).await });
        }
        for (position, id) in state.queue.iter().enumerate() {
            if let Some(live) = state.live.get(id) {
                let position = position as u32 + 1;
                live.sender.send_if_modified(|operation| {
                    let changed = operation.queue_position != position;
                    operation.queue_position = position;
                    changed
                });
            }
        }
    }

    async fn run(
        self,
        id: OperationId,
        sender: watch::Sender<Operation>,
        token: CancellationToken,
        job: Arc<dyn Job>,
    ) {
        self.persist_current(&sender).await;
        let context = JobContext::new(token.clone(), sender.clone());
        let outcome = {
            let work = job.run(&context);
            tokio::pin!(work);
            let mut ticker = tokio::time::interval(PERSIST_INTERVAL);
            ticker.tick().await;
            loop {
                tokio::select! {
                    outcome = &mut work => break outcome,
                    _ = ticker.tick() => {
                        self.persist_current(&sender).await;
                    }
                }
            }
        };
        // Progress is published at a throttled rate: the job's last figures go out now.
        context.flush();
        let shutting_down = self.inner.lock().shutting_down;
        let outcome = match outcome {
            Err(failure) if failure.code == Code::Cancelled && shutting_down => Err(shutdown_failure()),
            other => other,
        };
        if let Err(failure) = &outcome {
            tracing::warn!(operation = %id, reason = %failure.reason, message = %failure.message, "operation did not succeed");
        }
        self.conclude(&sender, outcome).await;
        let released = self.inner.lock().remove(id);
        drop(released);
        self.pump();
        tracing::info!(operation = %id, "operation finished");
    }

    // Ends an operation that never ran: persist the final state, tell watchers, let the
    // job undo its preparation.
    async fn end_unstarted(&self, id: OperationId, live: Live, failure: Failure) -> Operation {
        let operation = self.conclude(&live.sender, Err(failure.clone())).await;
        live.job.abandon(&failure).await;
        tracing::info!(operation = %id, reason = %failure.reason, "operation ended before it ran");
        operation
    }

    // Moves the operation to its final state: written to the catalog first, then shown
    // to watchers, so that a client told "done" finds it done everywhere.
    async fn conclude(
        &self,
        sender: &watch::Sender<Operation>,
        outcome: Result<OperationResult, Failure>,
    ) -> Operation {
        let _serial = self.inner.persist_lock.lock().await;
        let mut operation = sender.borrow().clone();
        finish(&mut operation, outcome);
        self.persist(&operation).await;
        self.inner.metrics.operation_finished(&operation);
        sender.send_replace(operation.clone());
        self.notify(&operation);
        operation
    }

    // Writes the operation's latest state; returns what was written.
    async fn persist_current(&self, sender: &watch::Sender<Operation>) -> Operation {
        let _serial = self.inner.persist_lock.lock().await;
        let current = sender.borrow().clone();
        self.persist(&current).await;
        current
    }

    async fn persist(&self, operation: &Operation) {
        match self.inner.store.update_operation(operation).await {
            Ok(()) => {}
            // Deleted by DeleteOperation right after it finished: nothing left to record.
            Err(metadata::Error::NotFound { .. }) if operation.is_done() => {}
            Err(error) => tracing::error!(operation = %operation.id, %error, "cannot record operation state"),
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    // Forgets a live operation, releasing its slot and database lock.
    fn remove(&mut self, id: OperationId) -> Option<Live> {
        let live = self.live.remove(&id)?;
        let started = live.sender.borrow().state != OperationState::Queued;
        if live.uses_slot && started {
            self.used_slots -= 1;
        }
        self.busy.retain(|_, holder| *holder != id);
        Some(live)
    }
}

fn shutdown_failure() -> Failure {
    Failure::new(Code::Aborted, reason::INTERRUPTED, "the server shut down before the operation finished")
}

// Moves an operation to its final state.
fn finish(operation: &mut Operation, outcome: Result<OperationResult, Failure>) {
    let now = crate::domain::now();
    operation.queue_position = 0;
    operation.update_time = now;
    operation.end_time = Some(now);
    match outcome {
        Ok(result) => {
            operation.state = OperationState::Succeeded;
            operation.phase = "done".to_owned();
            operation.result = Some(result);
            // Totals may have been estimates; at the end the counts are the truth.
            let progress = &mut operation.progress;
            progress.bytes_total = progress.bytes_done;
            progress.items_done = progress.items_done.max(progress.items_total);
            progress.items_total = progress.items_done;
        }
        Err(failure) => {
            operation.state = if failure.code == Code::Cancelled {
                OperationState::Cancelled
            } else {
                OperationState::Failed
            };
            operation.phase = operation.state.as_str().to_owned();
            operation.error = Some(failure);
        }
    }
}

// A backup whose creating operation will never finish is marked failed, never left
// CREATING (and never READY).
async fn fail_created_backup(store: &dyn Store, operation: &Operation) -> Result<(), metadata::Error> {
    let creates_backup = matches!(operation.kind, OperationKind::Backup | OperationKind::ImportBackup);
    let Some(backup_id) = operation.backup_id.filter(|_| creates_backup) else {
        return Ok(());
    };
    match store.get_backup(backup_id).await {
        Ok(mut backup) if backup.state == BackupState::Creating => {
            backup.state = BackupState::Failed;
            backup.update_time = crate::domain::now();
            store.update_backup(&backup).await
        }
        Ok(_) | Err(metadata::Error::NotFound { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

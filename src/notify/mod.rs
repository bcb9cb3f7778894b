//! Completion notifications: when an operation on a database that has a webhook ends,
//! a signed JSON body is posted to the webhook's URL.
//!
//! The operations manager hands every ended operation to [`Notifier::operation_ended`],
//! which never waits: it queues the operation (or drops it, logged, when the queue is
//! full). A dispatcher task reads the queue, looks the database up in the catalog, and
//! starts a delivery for each database with a webhook, at most [`MAX_CONCURRENT`] at
//! once. A delivery ([`delivery`]) signs each attempt ([`signature`]) and retries with
//! backoff; its outcome is logged (the URL without its query, never the secret) and
//! counted in `cellar_webhook_deliveries_total`. Nothing here can delay or fail an
//! operation. At shutdown, deliveries still pending after a short grace are dropped,
//! and a log line says how many.

pub mod delivery;
pub mod event;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use delivery::{Outcome, RetryPolicy};
pub use event::Event;

use crate::domain::{Database, Operation, Webhook};
use crate::metadata::{self, Store};
use crate::metrics::Metrics;
use crate::storage::http::HttpClient;

/// Ended operations waiting for the dispatcher; more are dropped (and logged).
const QUEUE_CAPACITY: usize = 1024;
/// Deliveries in flight at once.
pub const MAX_CONCURRENT: usize = 16;

/// The handle operations end through; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    queue: mpsc::Sender<Operation>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

struct Shared {
    store: Arc<dyn Store>,
    client: HttpClient,
    metrics: Arc<Metrics>,
    policy: RetryPolicy,
    /// Cancelled when shutdown begins: the dispatcher drains the queue and stops.
    closing: CancellationToken,
    /// Cancelled when the grace is over: pending deliveries stop.
    stop: CancellationToken,
    /// The dispatcher and every delivery.
    tasks: TaskTracker,
}

impl Notifier {
    /// Starts the dispatcher on the current runtime. `client` carries the URL policy
    /// that every attempt, redirect and resolved address is checked against.
    pub fn start(
        store: Arc<dyn Store>,
        client: HttpClient,
        metrics: Arc<Metrics>,
        policy: RetryPolicy,
    ) -> Notifier {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared {
            store,
            client,
            metrics,
            policy,
            closing: CancellationToken::new(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.tasks.spawn(dispatch(receiver, shared.clone()));
        Notifier { queue, shared }
    }

    /// Takes note that `operation` ended; never waits. Operations without a database
    /// are ignored.
    pub fn operation_ended(&self, operation: &Operation) {
        if operation.database_id.is_none() || !operation.is_done() {
            return;
        }
        if self.shared.closing.is_cancelled() {
            self.shared.metrics.webhook_delivery("dropped");
            tracing::warn!(operation = %operation.id, "not notifying the end of an operation: the server is stopping");
            return;
        }
        if let Err(error) = self.queue.try_send(operation.clone()) {
            self.shared.metrics.webhook_delivery("dropped");
            let why = match error {
                mpsc::error::TrySendError::Full(_) => "the notification queue is full",
                mpsc::error::TrySendError::Closed(_) => "the notifier has stopped",
            };
            tracing::warn!(operation = %operation.id, why, "not notifying the end of an operation");
        }
    }

    /// Stops: queued notifications are looked at, deliveries get `grace` to finish, and
    /// what is still pending then is dropped, with a log line saying how many.
    pub async fn shutdown(&self, grace: Duration) {
        let shared = &self.shared;
        shared.closing.cancel();
        shared.tasks.close();
        if tokio::time::timeout(grace, shared.tasks.wait()).await.is_ok() {
            return;
        }
        // The dispatcher has drained the queue by now unless the catalog is stuck; every
        // task left is a delivery (or that dispatcher).
        let pending = shared.tasks.len();
        tracing::warn!(pending, ?grace, "dropping webhook deliveries still pending at shutdown");
        shared.stop.cancel();
        shared.tasks.wait().await;
    }
}

// Reads ended operations until shutdown, starting a delivery for each whose database
// has a webhook; at shutdown, what is queued is still looked at.
async fn dispatch(mut receiver: mpsc::Receiver<Operation>, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT));
    loop {
        let operation = tokio::select! {
            biased;
            next = receiver.recv() => match next {
                Some(operation) => operation,
                None => return,
            },
            () = shared.closing.cancelled() => match receiver.try_recv() {
                Ok(operation) => operation,
                Err(_) => return,
            },
        };
        let Some((webhook, database)) = webhook_of(&shared, &operation).await else { continue };
        let event = Event::operation_completed(&operation, &database);
        let permit = tokio::select! {
            biased;
            () = shared.stop.cancelled() => {
                shared.metrics.webhook_delivery("dropped");
                continue;
            }
            permit = permits.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else { return };
        let shared_for_task = shared.clone();
        shared.tasks.spawn(async move {
            let _permit = permit;
            send(&shared_for_task, webhook, event).await;
        });
    }
}

// The webhook of the operation's database, with the database, if it has one.
async fn webhook_of(shared: &Shared, operation: &Operation) -> Option<(Webhook, Database)> {
    let database_id = operation.database_id?;
    match shared.store.get_database(database_id).await {
        Ok(mut database) => {
            let webhook = database.webhook.take()?;
            Some((webhook, database))
        }
        // Unregistered since: nobody to tell.
        Err(metadata::Error::NotFound { .. }) => None,
        Err(error) => {
            shared.metrics.webhook_delivery("dropped");
            tracing::error!(operation = %operation.id, database = %database_id, %error, "cannot read the database to notify");
            None
        }
    }
}

// One delivery, logged and counted; stops early (counted as dropped) at shutdown.
async fn send(shared: &Shared, webhook: Webhook, event: Event) {
    let url = webhook.shown_url();
    let operation = event.operation.name.as_str();
    let outcome = tokio::select! {
        outcome = delivery::deliver(&shared.client, &webhook, &event, &shared.policy) => outcome,
        () = shared.stop.cancelled() => {
            shared.metrics.webhook_delivery("dropped");
            tracing::warn!(delivery = %event.id, operation, %url, "webhook delivery dropped at shutdown");
            return;
        }
    };
    shared.metrics.webhook_delivery(outcome.label());
    match &outcome {
        Outcome::Delivered { attempts } => {
            tracing::info!(delivery = %event.id, operation, %url, attempts, "webhook delivered");
        }
        Outcome::Rejected { attempts, status } => {
            tracing::warn!(delivery = %event.id, operation, %url, attempts, status, "webhook rejected by the receiver; not retried");
        }
        Outcome::Failed { attempts, last } => {
            tracing::warn!(delivery = %event.id, operation, %url, attempts, error = %last, "webhook delivery failed; giving up");
        }
        Outcome::Refused { why } => {
            tracing::warn!(delivery = %event.id, operation, %url, why = %why, "webhook refused by the URL policy");
        }
    }
}

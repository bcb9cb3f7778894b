//! The stream of an operation's states that WatchOperation serves.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::watch;

use crate::domain::Operation;

/// Yields the current state at once, then each change, and ends after the first state
/// with `done`. A slow consumer sees only the latest state (intermediate ones are
/// skipped), so it never holds up the job.
pub type OperationStream = Pin<Box<dyn Stream<Item = Operation> + Send>>;

/// The stream of a live operation.
pub(super) fn live(receiver: watch::Receiver<Operation>) -> OperationStream {
    Box::pin(futures::stream::unfold(Some((receiver, true)), |state| async move {
        let (mut receiver, first) = state?;
        // `changed` reports a value not yet seen even when the sender is already gone, so
        // the final state is never lost; it fails only once nothing new can come.
        if !first && receiver.changed().await.is_err() {
            return None;
        }
        let operation = receiver.borrow_and_update().clone();
        let next = if operation.is_done() { None } else { Some((receiver, false)) };
        Some((operation, next))
    }))
}

/// The stream of a finished (or no longer live) operation: one message.
pub(super) fn finished(operation: Operation) -> OperationStream {
    Box::pin(futures::stream::once(async move { operation }))
}

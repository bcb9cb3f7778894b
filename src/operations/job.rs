//! The unit of work the manager runs.

use async_trait::async_trait;

use super::JobContext;
use crate::domain::{Failure, OperationResult};

/// What an operation does once admitted.
///
/// The manager calls exactly one of [`Job::run`] (once admitted) or [`Job::abandon`]
/// (when the job will never run: cancelled while queued, or the server stopped first).
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// Does the work. Must return promptly (with [`Failure::cancelled`]) once
    /// `ctx.token()` is cancelled, after undoing anything half-done: no detached task and no
    /// half-committed object may remain.
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure>;

    /// Undoes what was prepared at submission (e.g. marks the backup record failed) for a
    /// job that will never run. Best effort: failures are logged by the implementation.
    async fn abandon(&self, failure: &Failure);
}

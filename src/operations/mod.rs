//! Long-running operations: every job that moves data goes through the [`Manager`].
//!
//! The manager admits jobs (at most `max_concurrent_backups` snapshotting jobs at once,
//! one data job per database), persists every state change in the catalog, publishes
//! progress through a `watch` channel per operation (a slow watcher skips states and never
//! slows the job), cancels on request or shutdown, and fails operations a crash left
//! unfinished at the next start.

mod context;
mod job;
mod manager;
mod watch;

pub use context::JobContext;
pub use job::Job;
pub use manager::{Error, Manager, Submission};
pub use watch::OperationStream;

#[cfg(test)]
mod tests;

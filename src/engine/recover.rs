//! Giving targets back after a crash: a record a load left in the journal (it stopped
//! before putting back what it borrowed) is undone at the next start, in the background,
//! retried with backoff while the target cannot be reached, and removed once done.

use std::time::Duration;

use crate::domain::ConnectionUri;
use crate::engine::Error;
use crate::engine::journal::Entry;
use crate::engine::redis;

/// The first wait before trying an unreachable target again; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What giving a target back did; names settings, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GivenBack {
    /// Whether it was still following the stopped load and was told to stop.
    pub replication_ended: bool,
    /// Settings set back to their values before.
    pub put_back: Vec<String>,
    /// Settings that held something else than what the load set (an operator changed
    /// them since, or the server restarted): left as they are.
    pub left: Vec<String>,
    /// Which data the target keeps, for people.
    pub data: &'static str,
}

/// Gives back what the load that wrote `entry` borrowed from the database at `uri` (the
/// catalog's URI for `entry.database`). Does not remove the record.
pub async fn give_back(entry: &Entry, uri: &ConnectionUri) -> Result<GivenBack, Error> {
    match entry.kind.as_str() {
        redis::BORROWED_KIND => redis::give_back_left(uri, entry.record.clone()).await,
        other => Err(Error::Unsupported(format!("a journal record of an unknown kind ({other})"))),
    }
}

/// Gives back in a background task what `entry` records, trying again with backoff while
/// it fails (a record this version cannot read is kept for an operator and not retried),
/// then removes the record. Logs each step; never a value.
pub fn spawn_give_back(entry: Entry, uri: ConnectionUri) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let database = entry.database;
        let record = entry.file.path().display().to_string();
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1u32;
        loop {
            match give_back(&entry, &uri).await {
                Ok(done) => {
                    tracing::warn!(
                        %database,
                        target = %uri.redacted(),
                        replication_ended = done.replication_ended,
                        put_back = ?done.put_back,
                        left = ?done.left,
                        data = done.data,
                        "gave back a target that a load interrupted by the previous stop had borrowed"
                    );
                    if let Err(error) = entry.file.remove().await {
                        tracing::warn!(%database, %error, "cannot remove a journal record");
                    }
                    return;
                }
                Err(error @ Error::Unsupported(_)) => {
                    tracing::error!(%database, %record, %error, "cannot give back what a load interrupted by the previous stop borrowed; the record is kept");
                    return;
                }
                Err(error) => {
                    tracing::warn!(
                        %database,
                        target = %uri.redacted(),
                        attempt,
                        retry_in_s = backoff.as_secs(),
                        %error,
                        "cannot yet give back a target that a load interrupted by the previous stop had borrowed (it may still be a replica of that load)"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
            }
        }
    })
}

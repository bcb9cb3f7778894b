//! Giving targets back after a crash: a record a load left in the journal (it stopped
//! before putting back what it borrowed) is undone at the next start, in the background,
//! retried with backoff while the target cannot be reached, and removed once done.

use std::time::Duration;

use crate::domain::ConnectionUri;
use crate::engine::Error;
use crate::engine::journal::Entry;
use crate::engine::redis;

/// How long to wait between tries: from `first`, doubling, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
}

impl Backoff {
    /// One second first, at most five minutes.
    pub(crate) const DEFAULT: Backoff =
        Backoff { first: Duration::from_secs(1), max: Duration::from_secs(300) };
}

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
        let retrying = |attempt: u32, wait: Duration, error: &Error| {
            tracing::warn!(
                %database,
                target = %uri.redacted(),
                attempt,
                retry_in_s = wait.as_secs(),
                %error,
                "cannot yet give back a target that a load interrupted by the previous stop had borrowed (it may still be a replica of that load)"
            );
        };
        match with_backoff(Backoff::DEFAULT, || give_back(&entry, &uri), retrying).await {
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
            }
            Err(error) => tracing::error!(
                %database,
                %record,
                %error,
                "cannot give back what a load interrupted by the previous stop borrowed; the record is kept"
            ),
        }
    })
}

/// Runs `attempt` until it succeeds, or fails with [`Error::Unsupported`] (which trying
/// again cannot mend), waiting between tries as `backoff` says; `retrying` hears of each
/// failure before its wait.
pub(crate) async fn with_backoff<T, F, Fut>(
    backoff: Backoff,
    mut attempt: F,
    retrying: impl Fn(u32, Duration, &Error),
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut wait = backoff.first;
    let mut tries = 1u32;
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(error @ Error::Unsupported(_)) => return Err(error),
            Err(error) => {
                retrying(tries, wait, &error);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(backoff.max);
                tries += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[tokio::test]
    async fn tries_again_with_growing_waits_until_it_succeeds_or_cannot() {
        let waits = Mutex::new(Vec::new());
        let mut left = 7;
        let backoff = Backoff { first: Duration::from_millis(1), max: Duration::from_millis(8) };
        let done = with_backoff(
            backoff,
            || {
                left -= 1;
                let result = if left == 0 { Ok("done") } else { Err(Error::Unreachable("down".into())) };
                async move { result }
            },
            |_, wait, _| waits.lock().unwrap().push(wait.as_millis()),
        )
        .await;
        assert_eq!(done.unwrap(), "done");
        assert_eq!(*waits.lock().unwrap(), [1, 2, 4, 8, 8, 8]);

        let mut tries = 0;
        let failed: Result<(), Error> = with_backoff(
            backoff,
            || {
                tries += 1;
                async { Err(Error::Unsupported("a bad record".into())) }
            },
            |_, _, _| {},
        )
        .await;
        assert!(matches!(failed, Err(Error::Unsupported(_))));
        assert_eq!(tries, 1, "what trying again cannot mend is not tried again");
    }
}

//! What a running job sees: its cancellation token and a progress reporter.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::domain::{Failure, Operation, Progress};

/// Progress is published to watchers at most this often; phase changes go out at once.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

/// The handle a job reports through. Cheap to call on every chunk: updates are
/// coalesced and published at most every [`PUBLISH_INTERVAL`].
#[derive(Debug)]
pub struct JobContext {
    token: CancellationToken,
    sender: watch::Sender<Operation>,
    meter: Mutex<Meter>,
}

#[derive(Debug)]
struct Meter {
    progress: Progress,
    last_publish: Instant,
    rate_since: Instant,
    bytes_at_rate_since: u64,
}

impl JobContext {
    pub(super) fn new(token: CancellationToken, sender: watch::Sender<Operation>) -> Self {
        let progress = sender.borrow().progress;
        let now = Instant::now();
        let meter = Meter { progress, last_publish: now, rate_since: now, bytes_at_rate_since: 0 };
        JobContext { token, sender, meter: Mutex::new(meter) }
    }

    /// The job's cancellation token (cancelled on CancelOperation and on shutdown).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Sets the phase (`connecting`, `snapshotting`, ...) and publishes at once.
    pub fn set_phase(&self, phase: &str) {
        let progress = self.lock().progress;
        self.publish(|operation| {
            operation.phase = phase.to_owned();
            operation.progress = progress;
        });
    }

    /// Says what the items counted are.
    pub fn set_items_unit(&self, unit: crate::domain::ItemsUnit) {
        let progress = {
            let mut meter = self.lock();
            meter.progress.items_unit = unit;
            meter.progress
        };
        self.publish(|operation| operation.progress = progress);
    }

    /// Sets the expected totals (0 for unknown) and publishes at once.
    pub fn set_totals(&self, bytes_total: u64, items_total: u64) {
        let progress = {
            let mut meter = self.lock();
            meter.progress.bytes_total = bytes_total;
            meter.progress.items_total = items_total;
            meter.progress
        };
        self.publish(|operation| operation.progress = progress);
    }

    /// Records bytes and items done so far; publishes when the interval has passed.
    pub fn set_done(&self, bytes_done: u64, items_done: u64) {
        let mut meter = self.lock();
        meter.progress.bytes_done = bytes_done;
        meter.progress.items_done = items_done;
        let now = Instant::now();
        if now.duration_since(meter.last_publish) < PUBLISH_INTERVAL {
            return;
        }
        let window = now.duration_since(meter.rate_since).as_secs_f64();
        if window > 0.0 {
            let moved = bytes_done.saturating_sub(meter.bytes_at_rate_since);
            meter.progress.bytes_per_second = (moved as f64 / window) as u64;
        }
        meter.rate_since = now;
        meter.bytes_at_rate_since = bytes_done;
        meter.last_publish = now;
        let progress = meter.progress;
        drop(meter);
        self.publish(|operation| operation.progress = progress);
    }

    /// Publishes the latest progress now (e.g. at the end of a phase).
    pub fn flush(&self) {
        let progress = self.lock().progress;
        self.publish(|operation| operation.progress = progress);
    }

    /// Attaches a warning: a problem that did not stop the job.
    pub fn warn(&self, warning: Failure) {
        self.publish(|operation| operation.warnings.push(warning));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Meter> {
        // A panic while holding this lock leaves plain numbers behind; keep going.
        self.meter.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, change: impl FnOnce(&mut Operation)) {
        self.sender.send_modify(|operation| {
            change(operation);
            operation.update_time = crate::domain::now();
        });
    }
}

//! What Cellar measures, kept in a Prometheus recorder of its own (no global recorder:
//! several servers may share a process, as the tests do).
//!
//! Per database: `cellar_last_backup_success_timestamp_seconds`,
//! `cellar_last_backup_age_seconds` (computed at each scrape),
//! `cellar_last_backup_size_bytes`, `cellar_last_backup_duration_seconds`, labelled
//! `database_id` and `database`. Globally: `cellar_operations_total` (`kind`,
//! `outcome`), `cellar_operation_duration_seconds` (a histogram by `kind`),
//! `cellar_bytes_moved_total` (`kind`), `cellar_webhook_deliveries_total` (`outcome`),
//! and the gauges `cellar_operations_queued` and `cellar_operations_running`.

use std::collections::HashMap;
use std::sync::Mutex;

use ::metrics::{Key, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::domain::{Backup, DatabaseId, Operation, OperationResult, OperationState, Timestamp};

/// Buckets of the operation duration histogram, in seconds.
const DURATION_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0];

/// The server's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Each database's last successful backup, for the age gauge: labels and time.
    last_success: Mutex<HashMap<DatabaseId, (Vec<Label>, Timestamp)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// An empty set of metrics, described.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets(DURATION_BUCKETS)
            .expect("the duration buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics { recorder, handle, last_success: Mutex::new(HashMap::new()) };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let gauges = [
            (
                "cellar_last_backup_success_timestamp_seconds",
                Unit::Seconds,
                "When the database's last successful backup finished (Unix time).",
            ),
            (
                "cellar_last_backup_age_seconds",
                Unit::Seconds,
                "Seconds since the database's last successful backup finished.",
            ),
            (
                "cellar_last_backup_size_bytes",
                Unit::Bytes,
                "Stored size of the database's last successful backup.",
            ),
            (
                "cellar_last_backup_duration_seconds",
                Unit::Seconds,
                "How long the database's last successful backup took.",
            ),
            ("cellar_operations_queued", Unit::Count, "Operations waiting for a backup slot."),
            ("cellar_operations_running", Unit::Count, "Operations running."),
        ];
        for (name, unit, help) in gauges {
            self.recorder.describe_gauge(name.into(), Some(unit), help.into());
        }
        let counters = [
            ("cellar_operations_total", Unit::Count, "Operations ended, by kind and outcome."),
            (
                "cellar_bytes_moved_total",
                Unit::Bytes,
                "Bytes read from databases or stored objects by operations, by kind.",
            ),
            (
                "cellar_webhook_deliveries_total",
                Unit::Count,
                "Completion webhook deliveries, by outcome: delivered, rejected (a final 4xx), failed \
                 (retries exhausted), refused (URL policy) or dropped.",
            ),
        ];
        for (name, unit, help) in counters {
            self.recorder.describe_counter(name.into(), Some(unit), help.into());
        }
        self.recorder.describe_histogram(
            "cellar_operation_duration_seconds".into(),
            Some(Unit::Seconds),
            "How long operations ran, by kind.".into(),
        );
    }

    /// Counts an operation that ended; a successful backup also updates its database's
    /// gauges.
    pub fn operation_finished(&self, operation: &Operation) {
        let kind = operation.kind.as_str();
        let outcome = operation.state.as_str();
        let by_kind = [Label::new("kind", kind)];
        self.counter(
            "cellar_operations_total",
            vec![Label::new("kind", kind), Label::new("outcome", outcome)],
        )
        .increment(1);
        self.counter("cellar_bytes_moved_total", by_kind.to_vec()).increment(operation.progress.bytes_done);
        if let (Some(start), Some(end)) = (operation.start_time, operation.end_time) {
            let seconds = (end - start).num_milliseconds().max(0) as f64 / 1000.0;
            self.histogram("cellar_operation_duration_seconds", by_kind.to_vec()).record(seconds);
        }
        if let (OperationState::Succeeded, Some(OperationResult::Backup(backup))) =
            (operation.state, &operation.result)
        {
            self.backup_ready(backup);
        }
    }

    /// Counts a completion webhook delivery that ended with `outcome` (`delivered`,
    /// `rejected`, `failed`, `refused` or `dropped`).
    pub fn webhook_delivery(&self, outcome: &'static str) {
        self.counter("cellar_webhook_deliveries_total", vec![Label::new("outcome", outcome)]).increment(1);
    }

    /// Records a READY backup as its database's latest success, if it is newer than the
    /// one known (at start, the catalog's newest READY backups are fed here).
    pub fn backup_ready(&self, backup: &Backup) {
        let Some(database_id) = backup.database_id else { return };
        let finished = backup.update_time;
        let labels = vec![
            Label::new("database_id", database_id.to_string()),
            Label::new("database", backup.instance_name.clone()),
        ];
        {
            let mut last = self.last_success.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if last.get(&database_id).is_some_and(|(_, known)| *known >= finished) {
                return;
            }
            last.insert(database_id, (labels.clone(), finished));
        }
        let seconds = |from: Timestamp, to: Timestamp| (to - from).num_milliseconds().max(0) as f64 / 1000.0;
        self.gauge("cellar_last_backup_success_timestamp_seconds", labels.clone())
            .set(finished.timestamp_millis() as f64 / 1000.0);
        self.gauge("cellar_last_backup_size_bytes", labels.clone()).set(backup.size_bytes as f64);
        self.gauge("cellar_last_backup_duration_seconds", labels).set(seconds(backup.create_time, finished));
    }

    /// The Prometheus text, with the gauges that depend on the time of the scrape (and the
    /// queue, read by the caller) brought up to date first.
    pub fn render(&self, queued: usize, running: usize) -> String {
        self.gauge("cellar_operations_queued", Vec::new()).set(queued as f64);
        self.gauge("cellar_operations_running", Vec::new()).set(running as f64);
        let now = crate::domain::now();
        let last = self.last_success.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        for (labels, finished) in last.into_values() {
            let age = (now - finished).num_milliseconds().max(0) as f64 / 1000.0;
            self.gauge("cellar_last_backup_age_seconds", labels).set(age);
        }
        self.handle.render()
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> ::metrics::Counter {
        self.recorder.register_counter(&Key::from_parts(name, labels), &metadata())
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> ::metrics::Gauge {
        self.recorder.register_gauge(&Key::from_parts(name, labels), &metadata())
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> ::metrics::Histogram {
        self.recorder.register_histogram(&Key::from_parts(name, labels), &metadata())
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), ::metrics::Level::INFO, Some(module_path!()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_deliveries_are_counted_by_outcome() {
        let metrics = Metrics::new();
        metrics.webhook_delivery("delivered");
        metrics.webhook_delivery("delivered");
        metrics.webhook_delivery("failed");
        let text = metrics.render(0, 0);
        assert!(text.contains(r#"cellar_webhook_deliveries_total{outcome="delivered"} 2"#), "{text}");
        assert!(text.contains(r#"cellar_webhook_deliveries_total{outcome="failed"} 1"#), "{text}");
    }
}

//! The scheduler: takes each database's scheduled backups through the same core and
//! operations manager as the API, applies retention after each one that succeeds, and
//! sweeps backups past their expiry.
//!
//! - A run is due at the schedule's next time after the database's last scheduled
//!   backup; one missed while the server was down is taken once, at start (not once per
//!   missed slot).
//! - A run that finds the database busy waits its turn: it is tried again shortly, not
//!   dropped. Full backup slots queue it in the manager like any backup.
//! - A changed or cleared schedule takes effect at once: the core signals every policy
//!   change, and the plan is rebuilt.
//! - Retention and expiry delete through the normal DeleteBackup operation, never the
//!   database's newest READY backup, and never a backup being restored (the core refuses
//!   that one; it is tried again at the next sweep).

use std::collections::HashMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Schedule;
use super::retention::{self, Candidate};
use crate::domain::{BackupOrigin, BackupState, DatabaseId, OperationState, Timestamp, now};
use crate::service::{Cellar, CreateBackup, Error};

/// How the scheduler paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How often backups past their expiry are looked for.
    pub sweep_every: Duration,
    /// How long a run that found its database busy waits before trying again.
    pub busy_retry: Duration,
    /// The longest sleep between two looks at the plan.
    pub max_sleep: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sweep_every: Duration::from_secs(60),
            busy_retry: Duration::from_secs(5),
            max_sleep: Duration::from_secs(60),
        }
    }
}

/// One database's schedule and its next run.
struct Plan {
    text: String,
    schedule: Schedule,
    due: Timestamp,
}

/// Runs until `stop` is cancelled.
pub async fn run(cellar: Cellar, settings: Settings, stop: CancellationToken) {
    let mut plans: HashMap<DatabaseId, Plan> = HashMap::new();
    let mut next_sweep = now();
    loop {
        if let Err(error) = refresh(&cellar, &mut plans).await {
            tracing::warn!(%error, "cannot read the schedules");
        }
        let started = now();
        let due: Vec<DatabaseId> =
            plans.iter().filter(|(_, plan)| plan.due <= started).map(|(id, _)| *id).collect();
        for database_id in due {
            if let Some(plan) = plans.get_mut(&database_id) {
                take(&cellar, database_id, plan, settings, &stop).await;
            }
        }
        if next_sweep <= now() {
            sweep(&cellar).await;
            next_sweep = now() + chrono_duration(settings.sweep_every);
        }

        let wake = plans.values().map(|plan| plan.due).chain([next_sweep]).min().unwrap_or(next_sweep);
        let sleep = (wake - now()).to_std().unwrap_or(Duration::ZERO).min(settings.max_sleep);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = cellar.schedule_change() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Brings the plans in line with the databases' schedules: new or changed schedules get
/// their next run, removed ones are dropped.
async fn refresh(cellar: &Cellar, plans: &mut HashMap<DatabaseId, Plan>) -> Result<(), Error> {
    let databases = cellar.scheduled_databases().await?;
    plans.retain(|id, plan| {
        databases.iter().any(|database| database.id == *id && database.backup_policy.schedule == plan.text)
    });
    for database in databases {
        if plans.contains_key(&database.id) {
            continue;
        }
        let text = database.backup_policy.schedule.clone();
        let schedule = match Schedule::parse(&text) {
            Ok(schedule) => schedule,
            Err(problem) => {
                tracing::warn!(database = %database.id, %problem, "schedule ignored");
                continue;
            }
        };
        let last = cellar.last_scheduled_backup(database.id).await?;
        let Some(due) = first_due(&schedule, last, now()) else { continue };
        tracing::info!(database = %database.id, schedule = %text, next = %due, "backup scheduled");
        plans.insert(database.id, Plan { text, schedule, due });
    }
    Ok(())
}

/// When a schedule next runs, given its last run: the next time after it, or now if that
/// time has passed (runs missed meanwhile are taken once).
pub fn first_due(schedule: &Schedule, last: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
    match last {
        Some(last) => schedule.next_after(last, last).map(|slot| slot.max(now)),
        None => schedule.next_after(now, now),
    }
}

/// Starts the scheduled backup that is due, or puts it off if the database is busy.
async fn take(
    cellar: &Cellar,
    database_id: DatabaseId,
    plan: &mut Plan,
    settings: Settings,
    stop: &CancellationToken,
) {
    let slot = plan.due;
    let request = CreateBackup {
        database_id,
        name: None,
        database_name: String::new(),
        expire_time: None,
        destination_id: None,
        compression: None,
        labels: Default::default(),
        // One slot, one backup, however often this is retried.
        request_id: Some(format!("schedule-{database_id}-{}", slot.timestamp_millis())),
        origin: BackupOrigin::Scheduled,
    };
    match cellar.create_backup(request).await {
        Ok(operation) => {
            let started = now();
            plan.due = plan.schedule.next_after(started, started).unwrap_or(Timestamp::MAX_UTC);
            tracing::info!(database = %database_id, operation = %operation.id, next = %plan.due, "scheduled backup started");
            let cellar = cellar.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = retain_after(&cellar, database_id, operation.id) => {}
                    () = stop.cancelled() => {}
                }
            });
        }
        Err(Error::DatabaseBusy { operation_id, .. }) => {
            tracing::info!(database = %database_id, busy_with = %operation_id, "scheduled backup waits for the database");
            plan.due = now() + chrono_duration(settings.busy_retry);
        }
        Err(error) => {
            let started = now();
            plan.due = plan.schedule.next_after(started, started).unwrap_or(Timestamp::MAX_UTC);
            tracing::warn!(database = %database_id, %error, next = %plan.due, "scheduled backup not started");
        }
    }
}

/// Waits for a scheduled backup to end, then applies the database's retention if it
/// succeeded.
async fn retain_after(cellar: &Cellar, database_id: DatabaseId, operation: crate::domain::OperationId) {
    let finished = loop {
        match cellar.operations().wait(operation, Duration::from_secs(3600)).await {
            Ok(operation) if operation.is_done() => break operation,
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%operation, %error, "cannot follow a scheduled backup");
                return;
            }
        }
    };
    if finished.state != OperationState::Succeeded {
        return;
    }
    if let Err(error) = apply_retention(cellar, database_id).await {
        tracing::warn!(database = %database_id, %error, "retention not applied");
    }
}

/// Deletes what the database's retention policy does not keep.
pub async fn apply_retention(cellar: &Cellar, database_id: DatabaseId) -> Result<usize, Error> {
    let database = cellar.get_database(database_id).await?;
    let zone =
        Schedule::parse(&database.backup_policy.schedule).map(|schedule| schedule.zone()).unwrap_or_default();
    let candidates: Vec<Candidate> = cellar
        .backups_of(database_id)
        .await?
        .into_iter()
        .filter(|backup| backup.state == BackupState::Ready)
        .map(|backup| Candidate {
            id: backup.id,
            create_time: backup.create_time,
            scheduled: backup.origin == BackupOrigin::Scheduled,
        })
        .collect();
    let doomed = retention::to_delete(&candidates, &database.backup_policy.retention, zone);
    let mut deleted = 0;
    for id in doomed {
        match cellar.delete_backup(id, None).await {
            Ok(_) => deleted += 1,
            Err(error) => tracing::info!(backup = %id, %error, "retention leaves a backup for now"),
        }
    }
    if deleted > 0 {
        tracing::info!(database = %database_id, deleted, "retention applied");
    }
    Ok(deleted)
}

/// Deletes READY backups past their expiry, except each database's newest READY one.
async fn sweep(cellar: &Cellar) {
    let expired = match cellar.expired_backups(now()).await {
        Ok(expired) => expired,
        Err(error) => {
            tracing::warn!(%error, "cannot look for expired backups");
            return;
        }
    };
    for backup in expired {
        if let Some(database_id) = backup.database_id {
            match newest_ready(cellar, database_id).await {
                Ok(Some(newest)) if newest == backup.id => continue,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(database = %database_id, %error, "expiry skipped");
                    continue;
                }
            }
        }
        match cellar.delete_backup(backup.id, None).await {
            Ok(_) => tracing::info!(backup = %backup.id, "expired backup deleted"),
            Err(error) => tracing::info!(backup = %backup.id, %error, "expired backup left for now"),
        }
    }
}

async fn newest_ready(
    cellar: &Cellar,
    database_id: DatabaseId,
) -> Result<Option<crate::domain::BackupId>, Error> {
    let backups = cellar.backups_of(database_id).await?;
    Ok(backups
        .iter()
        .filter(|backup| backup.state == BackupState::Ready)
        .max_by_key(|backup| backup.create_time)
        .map(|backup| backup.id))
}

fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        chrono::DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&chrono::Utc)
    }

    #[test]
    fn a_run_missed_while_down_is_taken_once_at_start() {
        let daily = Schedule::parse("0 3 * * *").unwrap();
        let now = utc("2027-06-10T12:00:00Z");
        // Last run three days ago: due now, once.
        assert_eq!(first_due(&daily, Some(utc("2027-06-07T03:00:00Z")), now), Some(now));
        // Last run this morning: tomorrow at 03:00.
        assert_eq!(
            first_due(&daily, Some(utc("2027-06-10T03:00:00Z")), now),
            Some(utc("2027-06-11T03:00:00Z"))
        );
        // Never run: the next slot, not now.
        assert_eq!(first_due(&daily, None, now), Some(utc("2027-06-11T03:00:00Z")));
        let every = Schedule::parse("@every 2h").unwrap();
        assert_eq!(
            first_due(&every, Some(utc("2027-06-10T11:00:00Z")), now),
            Some(utc("2027-06-10T13:00:00Z"))
        );
        assert_eq!(first_due(&every, Some(utc("2027-06-09T11:00:00Z")), now), Some(now));
    }
}

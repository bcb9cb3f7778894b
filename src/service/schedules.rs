//! What the scheduler and the metrics ask of the core: the databases with a schedule,
//! their backups, the backups past their expiry, a signal when a policy changes, and
//! each database's last good backup.

use super::{Cellar, Error};
use crate::domain::list::{Clause, ListQuery, Op, Value};
use crate::domain::{Backup, BackupOrigin, BackupState, Database, DatabaseId, Timestamp};

impl Cellar {
    /// Every registered database whose policy has a schedule.
    pub async fn scheduled_databases(&self) -> Result<Vec<Database>, Error> {
        let databases = self.store.list_databases(&ListQuery::all(Vec::new())).await?;
        Ok(databases
            .items
            .into_iter()
            .filter(|database| !database.backup_policy.schedule.is_empty())
            .collect())
    }

    /// Every backup of a database, whatever its state.
    pub async fn backups_of(&self, database_id: DatabaseId) -> Result<Vec<Backup>, Error> {
        let clause = clause("database_id", Op::Eq, Value::Text(database_id.to_string()));
        Ok(self.store.list_backups(&ListQuery::all(vec![clause])).await?.items)
    }

    /// When the schedule last took a backup of the database (any state), if ever: one
    /// row read, the newest (a list's default order), not every backup of the database.
    pub async fn last_scheduled_backup(&self, database_id: DatabaseId) -> Result<Option<Timestamp>, Error> {
        let mut query = ListQuery::all(vec![
            clause("database_id", Op::Eq, Value::Text(database_id.to_string())),
            clause("origin", Op::Eq, Value::Text(BackupOrigin::Scheduled.as_str().to_owned())),
        ]);
        query.page_size = 1;
        let newest = self.store.list_backups(&query).await?.items;
        Ok(newest.first().map(|backup| backup.create_time))
    }

    /// When the schedule next backs the database up, as the scheduler reckons it; `None`
    /// without a (valid) schedule.
    pub async fn next_backup_time(&self, database: &Database) -> Result<Option<Timestamp>, Error> {
        if database.backup_policy.schedule.is_empty() {
            return Ok(None);
        }
        let Ok(schedule) = crate::schedule::Schedule::parse(&database.backup_policy.schedule) else {
            return Ok(None);
        };
        let last = self.last_scheduled_backup(database.id).await?;
        Ok(crate::schedule::runner::first_due(&schedule, last, crate::domain::now()))
    }

    /// READY backups whose `expire_time` is at or before `now`.
    pub async fn expired_backups(&self, now: Timestamp) -> Result<Vec<Backup>, Error> {
        let expired = clause("expire_time", Op::Le, Value::Time(now));
        let ready = clause("state", Op::Eq, Value::Text(BackupState::Ready.as_str().to_owned()));
        Ok(self.store.list_backups(&ListQuery::all(vec![expired, ready])).await?.items)
    }

    /// Feeds the metrics each database's newest READY backup from the catalog, so that
    /// freshness is known from the start, not only after the next backup.
    pub async fn seed_backup_metrics(&self) -> Result<(), Error> {
        let metrics = self.manager.metrics();
        let ready = clause("state", Op::Eq, Value::Text(BackupState::Ready.as_str().to_owned()));
        for backup in self.store.list_backups(&ListQuery::all(vec![ready])).await?.items {
            metrics.backup_ready(&backup);
        }
        Ok(())
    }

    /// Wakes the scheduler: a database's policy changed (or a database came or went).
    pub(super) fn schedules_changed(&self) {
        self.schedules.notify_one();
    }

    /// Resolves when a policy changes after the last call (or changed before it).
    pub async fn schedule_change(&self) {
        self.schedules.notified().await;
    }
}

fn clause(field: &'static str, op: Op, value: Value) -> Clause {
    Clause { field, label_key: None, op, value }
}

//! Creating, reading, changing and deleting backups.

use std::sync::Arc;

use super::{BackupPatch, Cellar, CreateBackup, Error, RestoreBackup};
use crate::domain::list::{ListQuery, Page};
use crate::domain::{
    Backup, BackupId, BackupName, BackupState, Destination, DestinationId, EngineKind, Operation,
    OperationKind, reason,
};
use crate::jobs::{BackupJob, BackupSource, DeleteBackupJob, RestoreJob};
use crate::operations::Submission;
use crate::storage::{self, Storage};

impl Cellar {
    /// Starts a backup (on demand, or for the schedule); returns its operation (QUEUED or
    /// RUNNING).
    pub async fn create_backup(&self, request: CreateBackup) -> Result<Operation, Error> {
        if let Some(existing) = self.existing_operation(OperationKind::Backup, &request.request_id).await? {
            return Ok(existing);
        }
        let database = self.store.get_database(request.database_id).await?;
        check_logical_name("database_name", database.engine, &request.database_name)?;
        let engine = self.engine(database.engine)?;
        let destination_id = request.destination_id.or(database.backup_policy.destination_id);
        let destination = self.resolve_destination(destination_id).await?;
        let storage = self.open_storage(&destination)?;

        let now = crate::domain::now();
        let expire_time = request
            .expire_time
            .or_else(|| database.backup_policy.backup_ttl.map(|ttl| now + ttl_duration(ttl)));
        let backup = Backup {
            id: BackupId::new(),
            name: request.name.unwrap_or_else(|| BackupName::from_time(now)),
            database_id: Some(database.id),
            instance_name: database.name.to_string(),
            database_name: request.database_name,
            project_id: database.project_id.clone(),
            engine: database.engine,
            server_version: String::new(),
            state: BackupState::Creating,
            size_bytes: 0,
            logical_size_bytes: 0,
            sha256: String::new(),
            compression: request.compression.unwrap_or(database.backup_policy.compression),
            format: format_of(database.engine).to_owned(),
            destination_id: destination.id,
            object_key: String::new(),
            uri: String::new(),
            origin: request.origin,
            create_time: now,
            update_time: now,
            expire_time,
            labels: request.labels,
            parts: Vec::new(),
            age_recipients: database.backup_policy.age_recipients.clone(),
        };
        let source = BackupSource::registered(&database);
        let job = BackupJob::new(self.store.clone(), engine, storage, source, backup.clone());
        let submission = Submission {
            kind: OperationKind::Backup,
            database_id: Some(database.id),
            backup: Some(backup),
            insert_backup: true,
            request_id: request.request_id,
            job: Arc::new(job),
        };
        Ok(self.manager.submit(submission).await?)
    }

    /// Reads a backup.
    pub async fn get_backup(&self, id: BackupId) -> Result<Backup, Error> {
        Ok(self.store.get_backup(id).await?)
    }

    /// Lists backups.
    pub async fn list_backups(&self, query: &ListQuery) -> Result<Page<Backup>, Error> {
        Ok(self.store.list_backups(query).await?)
    }

    /// Changes a backup's name, expiry or labels.
    pub async fn update_backup(&self, id: BackupId, patch: BackupPatch) -> Result<Backup, Error> {
        let mut backup = self.store.get_backup(id).await?;
        if backup.state == BackupState::Deleting {
            return Err(Error::FailedPrecondition {
                reason: "BACKUP_DELETING",
                message: format!("backup {id} is being deleted"),
            });
        }
        if let Some(name) = patch.name {
            backup.name = name;
        }
        if let Some(expire_time) = patch.expire_time {
            backup.expire_time = expire_time;
        }
        if let Some(labels) = patch.labels {
            backup.labels = labels;
        }
        backup.update_time = crate::domain::now();
        self.store.update_backup(&backup).await?;
        Ok(backup)
    }

    /// Starts deleting a backup (objects, then record); returns the operation.
    pub async fn delete_backup(&self, id: BackupId, request_id: Option<String>) -> Result<Operation, Error> {
        if let Some(existing) = self.existing_operation(OperationKind::DeleteBackup, &request_id).await? {
            return Ok(existing);
        }
        let mut backup = self.store.get_backup(id).await?;
        if backup.state == BackupState::Creating {
            return Err(Error::FailedPrecondition {
                reason: "BACKUP_CREATING",
                message: format!("backup {id} is still being created; cancel its operation first"),
            });
        }
        if let Some(operation) = self.manager.reading_backup(id) {
            return Err(Error::FailedPrecondition {
                reason: "BACKUP_IN_USE",
                message: format!("backup {id} is being restored by {}", operation.resource_name()),
            });
        }
        let destination = self.store.get_destination(backup.destination_id).await?;
        let storage = self.open_storage(&destination)?;
        let previous_state = backup.state;
        backup.state = BackupState::Deleting;
        backup.update_time = crate::domain::now();
        self.store.update_backup(&backup).await?;
        let job = DeleteBackupJob::new(self.store.clone(), storage, backup.clone(), previous_state);
        let submission = Submission {
            kind: OperationKind::DeleteBackup,
            database_id: backup.database_id,
            backup: Some(backup.clone()),
            insert_backup: false,
            request_id,
            job: Arc::new(job),
        };
        match self.manager.submit(submission).await {
            Ok(operation) => Ok(operation),
            Err(error) => {
                backup.state = previous_state;
                self.store.update_backup(&backup).await?;
                Err(error.into())
            }
        }
    }

    /// Starts loading a backup into a database (its own, or another of the same
    /// engine), replacing that database's data; returns the operation.
    pub async fn restore_backup(&self, request: RestoreBackup) -> Result<Operation, Error> {
        if let Some(existing) = self.existing_operation(OperationKind::Restore, &request.request_id).await? {
            return Ok(existing);
        }
        let backup = self.store.get_backup(request.backup_id).await?;
        if backup.state != BackupState::Ready {
            return Err(Error::FailedPrecondition {
                reason: "BACKUP_NOT_READY",
                message: format!("backup {} is {}, not ready", backup.id, backup.state),
            });
        }
        let Some(target_id) = request.target_database_id.or(backup.database_id) else {
            return Err(crate::domain::Invalid::field(
                "target_database_id",
                "is required: the backup is not filed under a database",
            )
            .into());
        };
        let target = self.store.get_database(target_id).await?;
        check_logical_name("target_database_name", target.engine, &request.target_database_name)?;
        let name = &request.target_database_name;
        if !name.is_empty()
            && !backup.parts.is_empty()
            && !backup.parts.iter().any(|part| &part.database_name == name)
        {
            let held: Vec<&str> = backup.parts.iter().map(|part| part.database_name.as_str()).collect();
            return Err(crate::domain::Invalid::field(
                "target_database_name",
                format!("backup {} holds the databases {}, not '{name}'", backup.id, held.join(", ")),
            )
            .into());
        }
        if target.engine != backup.engine {
            return Err(Error::FailedPrecondition {
                reason: "ENGINE_MISMATCH",
                message: format!(
                    "backup {} holds {} data and database {} is {}",
                    backup.id, backup.engine, target.id, target.engine
                ),
            });
        }
        if backup.encrypted() && !self.identities.opens_any(&backup.age_recipients) {
            return Err(Error::FailedPrecondition {
                reason: crate::domain::reason::DECRYPTION_KEY_MISSING,
                message: format!(
                    "backup {} is encrypted to {} and the server holds no identity for any of them (age_identity_file)",
                    backup.id,
                    backup.age_recipients.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        let engine = self.loading_engine(&target)?;
        let destination = self.store.get_destination(backup.destination_id).await?;
        let storage = self.open_storage(&destination)?;
        let job = RestoreJob::new(
            storage,
            engine,
            backup.clone(),
            target.clone(),
            request.target_database_name,
            self.places.spool_dir.clone(),
            self.identities.clone(),
        );
        let submission = Submission {
            kind: OperationKind::Restore,
            database_id: Some(target.id),
            backup: Some(backup),
            insert_backup: false,
            request_id: request.request_id,
            job: Arc::new(job),
        };
        Ok(self.manager.submit(submission).await?)
    }

    pub(super) async fn existing_operation(
        &self,
        kind: OperationKind,
        request_id: &Option<String>,
    ) -> Result<Option<Operation>, Error> {
        let Some(request_id) = request_id else { return Ok(None) };
        match self.store.find_operation_by_request_id(kind, request_id).await? {
            Some(operation) => Ok(Some(self.manager.get(operation.id).await?)),
            None => Ok(None),
        }
    }

    pub(super) async fn resolve_destination(&self, id: Option<DestinationId>) -> Result<Destination, Error> {
        let Some(id) = id else { return self.local_destination().await };
        Ok(self.store.get_destination(id).await?)
    }

    pub(super) fn open_storage(&self, destination: &Destination) -> Result<Arc<dyn Storage>, Error> {
        storage::open_with(destination, &self.http).map_err(|error| match error {
            storage::Error::Unsupported(_) => Error::FailedPrecondition {
                reason: reason::DESTINATION_NOT_SUPPORTED,
                message: format!("destination {} cannot be used yet: {error}", destination.name),
            },
            // A URI the destination check let through but its backend cannot use (an ftp
            // URI with a query, say): the destination needs fixing, not the server.
            storage::Error::InvalidDestination(_) => Error::FailedPrecondition {
                reason: reason::DESTINATION_INVALID,
                message: format!("destination {} cannot be used: {error}", destination.name),
            },
            other => Error::Internal(other.to_string()),
        })
    }
}

/// Checks a logical database name given in a request: none for Redis (one snapshot
/// holds every numbered database), a valid name for the SQL engines.
fn check_logical_name(field: &str, engine: EngineKind, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Ok(());
    }
    let problem = match engine {
        EngineKind::Redis => {
            Err("must be empty for Redis: a Redis backup holds every numbered database".to_owned())
        }
        EngineKind::Postgres | EngineKind::Mysql => crate::engine::sql::check_database_name(name),
    };
    problem.map_err(|problem| crate::domain::Invalid::field(field, problem).into())
}

pub(super) fn format_of(engine: EngineKind) -> &'static str {
    match engine {
        EngineKind::Redis => "rdb",
        EngineKind::Postgres => "pg_custom",
        EngineKind::Mysql => "mysql_sql",
    }
}

fn ttl_duration(ttl: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

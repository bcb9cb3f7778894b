//! Deleting a backup: its objects first, then its record.

use std::sync::Arc;

use async_trait::async_trait;

use super::{failure, stored_keys};
use crate::domain::{Backup, BackupState, Failure, OperationResult};
use crate::metadata::Store;
use crate::operations::{Job, JobContext};
use crate::storage::Storage;

/// Removes a backup for good. The record is in state DELETING while this runs.
pub struct DeleteBackupJob {
    store: Arc<dyn Store>,
    storage: Arc<dyn Storage>,
    backup: Backup,
    previous_state: BackupState,
}

impl DeleteBackupJob {
    /// A job deleting `backup`, whose state before the delete was `previous_state`.
    pub fn new(
        store: Arc<dyn Store>,
        storage: Arc<dyn Storage>,
        backup: Backup,
        previous_state: BackupState,
    ) -> Self {
        DeleteBackupJob { store, storage, backup, previous_state }
    }

    async fn delete(&self, ctx: &JobContext) -> Result<(), Failure> {
        ctx.set_phase("deleting");
        // The data goes first: a crash in between leaves a manifest without data, which
        // restore refuses, never data without a record that lists it.
        for key in stored_keys(&self.backup) {
            self.storage.delete(&key).await.map_err(|error| failure::from_storage(&error))?;
        }
        match self.store.delete_backup(self.backup.id).await {
            Ok(()) | Err(crate::metadata::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(failure::from_metadata(&error)),
        }
    }
}

#[async_trait]
impl Job for DeleteBackupJob {
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure> {
        // Deletion is not interrupted half-way on cancel: deleting objects is idempotent
        // and quick, and a half-deleted backup is worse than a finished delete.
        self.delete(ctx).await?;
        Ok(OperationResult::Backup(Box::new(self.backup.clone())))
    }

    async fn abandon(&self, _failure: &Failure) {
        let mut backup = self.backup.clone();
        backup.state = self.previous_state;
        backup.update_time = crate::domain::now();
        if let Err(error) = self.store.update_backup(&backup).await {
            tracing::error!(backup = %backup.id, %error, "cannot restore the state of a backup whose delete never ran");
        }
    }
}

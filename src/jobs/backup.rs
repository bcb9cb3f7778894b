//! Backing up a database: snapshot -> pipeline -> storage, then the manifest, then READY.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Manifest, data_key, failure, manifest_key};
use crate::domain::{Backup, BackupState, Database, Failure, OperationResult};
use crate::engine::{Engine, Snapshot};
use crate::metadata::Store;
use crate::operations::{Job, JobContext};
use crate::pipeline;
use crate::storage::{ObjectWriter, Storage};

/// Takes one backup of a database into a destination.
pub struct BackupJob {
    store: Arc<dyn Store>,
    engine: Arc<dyn Engine>,
    storage: Arc<dyn Storage>,
    database: Database,
    backup: Backup,
}

impl BackupJob {
    /// A job filling the CREATING record `backup` with a snapshot of `database`.
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<dyn Engine>,
        storage: Arc<dyn Storage>,
        database: Database,
        backup: Backup,
    ) -> Self {
        BackupJob { store, engine, storage, database, backup }
    }

    async fn snapshot_and_store(&self, ctx: &JobContext) -> Result<Backup, Failure> {
        let start_time = crate::domain::now();
        let phase = |phase: &'static str| ctx.set_phase(phase);
        let snapshot = self
            .engine
            .snapshot(&self.database.connection_uri, &phase)
            .await
            .map_err(|error| failure::from_engine(&error))?;
        tracing::info!(backup = %self.backup.id, ?snapshot, "snapshot started");
        let Snapshot {
            server_version, format, format_version, bytes_total, items_total, details, body, ..
        } = snapshot;
        let items = items_total.unwrap_or(0);
        ctx.set_totals(bytes_total.unwrap_or(0), items);
        ctx.set_phase("uploading");

        let mut backup = self.backup.clone();
        backup.server_version = server_version;
        backup.format = format.to_owned();
        let key = data_key(&backup);
        let mut writer = self.storage.writer(&key).await.map_err(|error| failure::from_storage(&error))?;
        let mut on_progress = |bytes: u64| ctx.set_done(bytes, 0);
        let stored = match pipeline::store(body, backup.compression, writer.as_mut(), &mut on_progress).await
        {
            Ok(stored) => stored,
            Err(error) => {
                abort(writer).await;
                return Err(failure::from_pipeline(&error));
            }
        };
        ctx.set_done(stored.logical_bytes, items);
        ctx.set_phase("committing");
        writer.commit().await.map_err(|error| failure::from_storage(&error))?;

        backup.size_bytes = stored.stored_bytes;
        backup.logical_size_bytes = stored.logical_bytes;
        backup.sha256 = stored.sha256;
        backup.uri = self.storage.uri(&key);
        backup.object_key = key.clone();
        let manifest = Manifest::of(&backup, key, format_version, items, start_time, details);
        self.write_manifest(&backup, &manifest).await?;

        backup.state = BackupState::Ready;
        backup.update_time = crate::domain::now();
        self.store.update_backup(&backup).await.map_err(|error| failure::from_metadata(&error))?;
        Ok(backup)
    }

    async fn write_manifest(&self, backup: &Backup, manifest: &Manifest) -> Result<(), Failure> {
        let json = serde_json::to_vec_pretty(manifest).map_err(|error| failure::internal(&error))?;
        let mut writer = self
            .storage
            .writer(&manifest_key(backup))
            .await
            .map_err(|error| failure::from_storage(&error))?;
        if let Err(error) = writer.write(Bytes::from(json)).await {
            abort(writer).await;
            return Err(failure::from_storage(&error));
        }
        writer.commit().await.map_err(|error| failure::from_storage(&error))?;
        Ok(())
    }

    // Leaves no trace of a failed or cancelled attempt but a FAILED record.
    async fn clean_up(&self, outcome: &Failure) {
        let mut backup = self.backup.clone();
        for key in [data_key(&backup), manifest_key(&backup)] {
            if let Err(error) = self.storage.delete(&key).await {
                tracing::error!(backup = %backup.id, %error, "cannot remove the objects of a failed backup");
            }
        }
        backup.state = BackupState::Failed;
        backup.update_time = crate::domain::now();
        if let Err(error) = self.store.update_backup(&backup).await {
            tracing::error!(backup = %backup.id, %error, reason = %outcome.reason, "cannot mark backup failed");
        }
    }
}

async fn abort(writer: Box<dyn ObjectWriter>) {
    if let Err(error) = writer.abort().await {
        tracing::warn!(%error, "cannot discard a partial object");
    }
}

#[async_trait]
impl Job for BackupJob {
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure> {
        // Dropping the work future at the cancel drops the snapshot connection and the
        // uncommitted writer (which discards its partial object); clean_up then removes
        // anything committed and marks the record failed.
        let outcome = tokio::select! {
            outcome = self.snapshot_and_store(ctx) => outcome,
            () = ctx.token().cancelled() => Err(Failure::cancelled()),
        };
        match outcome {
            Ok(backup) => Ok(OperationResult::Backup(Box::new(backup))),
            Err(failure) => {
                ctx.set_phase("cleaning up");
                self.clean_up(&failure).await;
                Err(failure)
            }
        }
    }

    async fn abandon(&self, failure: &Failure) {
        self.clean_up(failure).await;
    }
}

//! Restoring a backup: fetch and check the stored bytes (SHA-256), decompress them into a
//! spool file, then let the engine load it (which reads it whole before touching the
//! target).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::failure;
use crate::domain::{Backup, Database, Failure, OperationResult, RestoreResult};
use crate::engine::Engine;
use crate::operations::{Job, JobContext};
use crate::pipeline::unpack::{SpoolFile, unpack};
use crate::storage::Storage;

/// Loads one backup into one database, replacing its data.
pub struct RestoreJob {
    storage: Arc<dyn Storage>,
    engine: Arc<dyn Engine>,
    backup: Backup,
    target: Database,
    database_name: String,
    spool_dir: PathBuf,
}

impl RestoreJob {
    /// A job loading `backup` (from `storage`) into `target`; `spool_dir` holds the
    /// decompressed data while it is checked and loaded.
    pub fn new(
        storage: Arc<dyn Storage>,
        engine: Arc<dyn Engine>,
        backup: Backup,
        target: Database,
        database_name: String,
        spool_dir: PathBuf,
    ) -> Self {
        RestoreJob { storage, engine, backup, target, database_name, spool_dir }
    }

    async fn restore(&self, ctx: &JobContext) -> Result<RestoreResult, Failure> {
        ctx.set_phase("downloading");
        ctx.set_totals(self.backup.logical_size_bytes, 0);
        let object = self
            .storage
            .reader(&self.backup.object_key, 0)
            .await
            .map_err(|error| failure::from_storage(&error))?;
        let mut spool =
            SpoolFile::create(&self.spool_dir).await.map_err(|error| failure::internal(&error))?;
        let mut on_progress = |bytes: u64| ctx.set_done(bytes, 0);
        let unpacked = unpack(object.body, Some(&self.backup.sha256), &mut spool, &mut on_progress)
            .await
            .map_err(|error| failure::from_unpack(&error))?;
        ctx.set_done(unpacked.logical_bytes, 0);

        let items_total = AtomicU64::new(0);
        let phase = |phase: &'static str| ctx.set_phase(phase);
        let progress = |bytes: u64, items: u64, total: u64| {
            if items_total.swap(total, Ordering::Relaxed) != total {
                ctx.set_totals(unpacked.logical_bytes, total);
            }
            ctx.set_done(bytes, items);
        };
        let loaded = self
            .engine
            .load(&self.target.connection_uri, &[spool.path().to_owned()], &phase, &progress)
            .await
            .map_err(|error| failure::from_load(&error))?;
        for warning in failure::load_warnings(&loaded) {
            ctx.warn(warning);
        }
        ctx.set_done(unpacked.logical_bytes, loaded.items);
        Ok(RestoreResult {
            backup_id: Some(self.backup.id),
            database_id: Some(self.target.id),
            database_name: self.database_name.clone(),
            bytes: unpacked.logical_bytes,
            items: loaded.items,
        })
    }
}

#[async_trait]
impl Job for RestoreJob {
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure> {
        // Dropping the work at a cancel drops the spool file (removed) and the
        // connection; a cancel while loading leaves the keys loaded so far.
        tokio::select! {
            outcome = self.restore(ctx) => outcome.map(OperationResult::Restore),
            () = ctx.token().cancelled() => Err(Failure::cancelled()),
        }
    }

    async fn abandon(&self, _failure: &Failure) {
        // Nothing was prepared: the target is untouched until the job runs.
    }
}

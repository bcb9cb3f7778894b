//! Exporting a database: a fresh snapshot written to a location outside the catalog
//! (snapshot -> pipeline -> storage, committed whole), then a manifest beside it
//! (`<object>.manifest.json`). A failed or cancelled export leaves neither behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use super::snapshot::{Target, abort, store_snapshot};
use super::{Manifest, failure};
use crate::domain::{Compression, Database, ExportResult, Failure, OperationResult};
use crate::engine::Engine;
use crate::operations::{Job, JobContext};
use crate::storage::Storage;

/// Writes one snapshot of a database to a location.
pub struct ExportJob {
    engine: Arc<dyn Engine>,
    database: Database,
    storage: Arc<dyn Storage>,
    key: String,
    compression: Compression,
    database_name: Option<String>,
    /// The object's URI, secrets redacted, for the result.
    shown_uri: String,
    /// Whether this run committed the data object (so that a failure after it removes
    /// it, and a failure before it leaves whatever was at the key alone).
    committed: AtomicBool,
}

impl ExportJob {
    /// A job writing a snapshot of `database` (its logical `database_name`, where the
    /// engine has them) to `key` on `storage`, compressed with `compression`;
    /// `shown_uri` is where that is, redacted.
    pub fn new(
        engine: Arc<dyn Engine>,
        database: Database,
        storage: Arc<dyn Storage>,
        key: String,
        compression: Compression,
        database_name: Option<String>,
        shown_uri: String,
    ) -> Self {
        ExportJob {
            engine,
            database,
            storage,
            key,
            compression,
            database_name,
            shown_uri,
            committed: AtomicBool::new(false),
        }
    }

    fn manifest_key(&self) -> String {
        format!("{}.manifest.json", self.key)
    }

    async fn export(&self, ctx: &JobContext) -> Result<ExportResult, Failure> {
        ctx.set_items_unit(crate::domain::ItemsUnit::of(self.database.engine));
        let start_time = crate::domain::now();
        let target = Target {
            uri: &self.database.connection_uri,
            database: self.database_name.as_deref(),
            storage: self.storage.as_ref(),
            key: &self.key,
            compression: self.compression,
            // Exports are written in the clear: the policy's recipients are for backups.
            recipients: &[],
        };
        let object = store_snapshot(ctx, &self.engine, target, (0, 0)).await?;
        self.committed.store(true, Ordering::SeqCst);
        ctx.set_phase("committing");
        let result = ExportResult {
            database_id: Some(self.database.id),
            export_uri: self.shown_uri.clone(),
            size_bytes: object.stored.stored_bytes,
            logical_size_bytes: object.stored.logical_bytes,
            sha256: object.stored.sha256.clone(),
            database_name: self.database_name.clone().unwrap_or_default(),
            compression: Some(self.compression),
            format: object.format.to_owned(),
            items: object.items,
            server_version: object.server_version.clone(),
        };
        let manifest = Manifest {
            manifest_version: 1,
            backup_id: String::new(),
            name: self.key.rsplit('/').next().unwrap_or(&self.key).to_owned(),
            database_id: self.database.id.to_string(),
            instance_name: self.database.name.to_string(),
            engine: self.database.engine.as_str().to_owned(),
            server_version: object.server_version,
            format: object.format.to_owned(),
            format_version: object.format_version,
            compression: self.compression.as_str().to_owned(),
            data_key: self.key.clone(),
            size_bytes: result.size_bytes,
            logical_size_bytes: result.logical_size_bytes,
            sha256: result.sha256.clone(),
            items: object.items,
            create_time: start_time,
            start_time,
            end_time: crate::domain::now(),
            details: object.details,
            parts: Vec::new(),
            encryption: None,
            cellar_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        self.write_manifest(&manifest).await?;
        Ok(result)
    }

    async fn write_manifest(&self, manifest: &Manifest) -> Result<(), Failure> {
        let json = serde_json::to_vec_pretty(manifest).map_err(|error| failure::internal(&error))?;
        let mut writer =
            self.storage.writer(&self.manifest_key()).await.map_err(|error| failure::from_storage(&error))?;
        if let Err(error) = writer.write(Bytes::from(json)).await {
            abort(writer).await;
            return Err(failure::from_storage(&error));
        }
        writer.commit().await.map(drop).map_err(|error| failure::from_storage(&error))
    }

    // Removes what a failed or cancelled export committed: the data object, when the
    // manifest could not follow it. Before that nothing was written at the key, and
    // what may have been there (an earlier export) is left alone.
    async fn clean_up(&self) {
        if !self.committed.swap(false, Ordering::SeqCst) {
            return;
        }
        for key in [self.key.clone(), self.manifest_key()] {
            if let Err(error) = self.storage.delete(&key).await {
                tracing::warn!(%error, "cannot remove the objects of a failed export");
            }
        }
    }
}

#[async_trait]
impl Job for ExportJob {
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure> {
        // Dropping the work at a cancel drops the snapshot and the uncommitted writer
        // (its partial object discarded); clean_up removes anything committed.
        let outcome = tokio::select! {
            outcome = self.export(ctx) => outcome,
            () = ctx.token().cancelled() => Err(Failure::cancelled()),
        };
        match outcome {
            Ok(result) => Ok(OperationResult::Export(result)),
            Err(failure) => {
                ctx.set_phase("cleaning up");
                self.clean_up().await;
                Err(failure)
            }
        }
    }

    async fn abandon(&self, _failure: &Failure) {
        // Nothing was written before the job ran; a crash mid-way leaves at most a hidden
        // partial object, which the store's own clean-up removes.
    }
}

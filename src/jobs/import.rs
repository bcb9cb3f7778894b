//! Importing into a registered database: every source is spooled to local disk first
//! (files decompressed as their content says, a live server snapshotted over its
//! replication protocol), then the engine checks them all and loads them in order after
//! one flush.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::failure;
use crate::domain::{Code, ConnectionUri, Database, Failure, ImportResult, OperationResult, reason};
use crate::engine::Engine;
use crate::operations::{Job, JobContext};
use crate::pipeline::unpack::{SpoolFile, unpack};

/// Where imported data comes from.
#[derive(Debug, Clone)]
pub enum ImportSource {
    /// Files on this machine (already checked against the allowed roots), in load order.
    Files(Vec<PathBuf>),
    /// A live server of the target's engine.
    Live(ConnectionUri),
}

/// Replaces a database's data with imported data.
pub struct ImportJob {
    engine: Arc<dyn Engine>,
    target: Database,
    source: ImportSource,
    spool_dir: PathBuf,
}

impl ImportJob {
    /// A job loading `source` into `target`; `spool_dir` holds the data meanwhile.
    pub fn new(engine: Arc<dyn Engine>, target: Database, source: ImportSource, spool_dir: PathBuf) -> Self {
        ImportJob { engine, target, source, spool_dir }
    }

    async fn import(&self, ctx: &JobContext) -> Result<ImportResult, Failure> {
        let mut spools = Vec::new();
        let mut bytes = 0;
        let source_uris = match &self.source {
            ImportSource::Files(paths) => {
                ctx.set_phase("reading");
                for path in paths {
                    let file = tokio::fs::File::open(path).await.map_err(|error| {
                        Failure::new(
                            Code::NotFound,
                            reason::SOURCE_UNREACHABLE,
                            format!("cannot open {}: {error}", path.display()),
                        )
                    })?;
                    let (spool, read) = self.spool(file, ctx, bytes).await?;
                    bytes += read;
                    spools.push(spool);
                }
                paths.iter().map(|path| format!("file://{}", path.display())).collect()
            }
            ImportSource::Live(uri) => {
                let phase = |phase: &'static str| ctx.set_phase(phase);
                let snapshot =
                    self.engine.snapshot(uri, &phase).await.map_err(|error| failure::from_engine(&error))?;
                ctx.set_totals(snapshot.bytes_total.unwrap_or(0), snapshot.items_total.unwrap_or(0));
                let (spool, read) = self.spool(snapshot.body, ctx, 0).await?;
                bytes = read;
                spools.push(spool);
                vec![uri.redacted()]
            }
        };

        let items_total = AtomicU64::new(0);
        let phase = |phase: &'static str| ctx.set_phase(phase);
        let progress = |done: u64, items: u64, total: u64| {
            if items_total.swap(total, Ordering::Relaxed) != total {
                ctx.set_totals(bytes, total);
            }
            ctx.set_done(done, items);
        };
        let paths: Vec<PathBuf> = spools.iter().map(|spool| spool.path().to_owned()).collect();
        let loaded = self
            .engine
            .load(&self.target.connection_uri, &paths, &phase, &progress)
            .await
            .map_err(|error| failure::from_load(&error))?;
        for warning in failure::load_warnings(&loaded) {
            ctx.warn(warning);
        }
        ctx.set_done(bytes, loaded.items);
        Ok(ImportResult {
            database_id: Some(self.target.id),
            backup_id: None,
            source_uris,
            bytes,
            items: loaded.items,
        })
    }

    // Decompresses one source into a new spool file; returns it and the bytes written.
    async fn spool(
        &self,
        source: impl tokio::io::AsyncRead + Unpin + Send,
        ctx: &JobContext,
        bytes_before: u64,
    ) -> Result<(SpoolFile, u64), Failure> {
        let mut spool =
            SpoolFile::create(&self.spool_dir).await.map_err(|error| failure::internal(&error))?;
        let mut on_progress = |bytes: u64| ctx.set_done(bytes_before + bytes, 0);
        let unpacked = unpack(source, None, &mut spool, &mut on_progress)
            .await
            .map_err(|error| failure::from_unpack(&error))?;
        Ok((spool, unpacked.logical_bytes))
    }
}

#[async_trait]
impl Job for ImportJob {
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure> {
        tokio::select! {
            outcome = self.import(ctx) => outcome.map(OperationResult::Import),
            () = ctx.token().cancelled() => Err(Failure::cancelled()),
        }
    }

    async fn abandon(&self, _failure: &Failure) {
        // Nothing was prepared: the target is untouched until the job runs.
    }
}

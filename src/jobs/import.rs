//! Importing into a registered database: every source is spooled to local disk first
//! (files, local or over http(s), decompressed as their content says; a live server
//! snapshotted over its replication protocol), then the engine checks them all and loads
//! them in order after one flush.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::failure;
use crate::domain::{Code, ConnectionUri, Database, Failure, ImportResult, OperationResult, reason};
use crate::engine::Engine;
use crate::operations::{Job, JobContext};
use crate::pipeline::unpack::{SpoolFile, Unpacked, unpack};
use crate::storage::ftp::FtpStorage;
use crate::storage::http::HttpClient;
use crate::storage::{ObjectReader, Storage};

/// Where imported data comes from.
#[derive(Debug, Clone)]
pub enum ImportSource {
    /// Files, in load order.
    Files(Vec<SourceFile>),
    /// A live server of the target's engine.
    Live(ConnectionUri),
}

/// One file to import.
#[derive(Debug, Clone)]
pub enum SourceFile {
    /// A file on this machine, already checked against the allowed roots.
    Local(PathBuf),
    /// An http(s) URL, already checked against the URL policy (and checked again when
    /// it resolves and on every redirect). Its password shows redacted.
    Http(ConnectionUri),
    /// An object in an object store (`s3://`, `gs://`, `abs://`, `az://`).
    Object {
        /// The store, at the object's directory.
        storage: Arc<dyn Storage>,
        /// The object's key in it.
        key: String,
    },
    /// An ftp URL, its host already checked against the URL policy (and checked again
    /// when it connects). Its password shows redacted.
    Ftp(ConnectionUri),
}

impl SourceFile {
    /// The source as results show it: a password redacted.
    pub fn shown(&self) -> String {
        match self {
            SourceFile::Local(path) => format!("file://{}", path.display()),
            SourceFile::Http(url) | SourceFile::Ftp(url) => url.redacted(),
            SourceFile::Object { storage, key } => storage.uri(key),
        }
    }
}

/// Replaces a database's data with imported data.
pub struct ImportJob {
    engine: Arc<dyn Engine>,
    target: Database,
    source: ImportSource,
    spool_dir: PathBuf,
    http: Arc<HttpClient>,
}

impl ImportJob {
    /// A job loading `source` into `target`; `spool_dir` holds the data meanwhile, and
    /// `http` fetches http(s) sources.
    pub fn new(
        engine: Arc<dyn Engine>,
        target: Database,
        source: ImportSource,
        spool_dir: PathBuf,
        http: Arc<HttpClient>,
    ) -> Self {
        ImportJob { engine, target, source, spool_dir, http }
    }

    async fn import(&self, ctx: &JobContext) -> Result<ImportResult, Failure> {
        let mut spools = Vec::new();
        let mut bytes = 0;
        let source_uris = match &self.source {
            ImportSource::Files(files) => {
                ctx.set_phase("reading");
                let mut stored = 0;
                for file in files {
                    let reader = self.open(file).await?;
                    if let Some(size) = reader.size {
                        ctx.set_totals(stored + size, 0);
                    }
                    let (spool, unpacked) = self.spool(reader.body, ctx, stored).await?;
                    stored += unpacked.stored_bytes;
                    bytes += unpacked.logical_bytes;
                    spools.push(spool);
                }
                files.iter().map(SourceFile::shown).collect()
            }
            ImportSource::Live(uri) => {
                let phase = |phase: &'static str| ctx.set_phase(phase);
                let snapshot =
                    self.engine.snapshot(uri, &phase).await.map_err(|error| failure::from_engine(&error))?;
                ctx.set_totals(snapshot.bytes_total.unwrap_or(0), snapshot.items_total.unwrap_or(0));
                let (spool, unpacked) = self.spool(snapshot.body, ctx, 0).await?;
                bytes = unpacked.logical_bytes;
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
        ctx.set_done(bytes, loaded.items);
        failure::warn_all(ctx, &loaded.warnings);
        Ok(ImportResult {
            database_id: Some(self.target.id),
            backup_id: None,
            source_uris,
            bytes,
            items: loaded.items,
            load_method: loaded.method.to_owned(),
        })
    }

    // Opens one file source; its size when known.
    async fn open(&self, file: &SourceFile) -> Result<ObjectReader, Failure> {
        match file {
            SourceFile::Local(path) => {
                let cannot_open = |error: std::io::Error| {
                    let reason = match error.kind() {
                        std::io::ErrorKind::NotFound => reason::SOURCE_NOT_FOUND,
                        _ => reason::SOURCE_UNREACHABLE,
                    };
                    Failure::new(Code::NotFound, reason, format!("cannot open {}: {error}", path.display()))
                };
                let opened = tokio::fs::File::open(path).await.map_err(cannot_open)?;
                let size = opened.metadata().await.ok().map(|metadata| metadata.len());
                Ok(ObjectReader { size, body: Box::pin(opened) })
            }
            SourceFile::Http(url) => {
                self.http.open(url.expose(), 0).await.map_err(|error| failure::from_source(&error))
            }
            SourceFile::Object { storage, key } => {
                storage.reader(key, 0).await.map_err(|error| failure::from_source(&error))
            }
            SourceFile::Ftp(url) => {
                let policy = self.http.policy().clone();
                let (storage, key) = FtpStorage::for_file(url.expose(), policy)
                    .map_err(|error| failure::from_source(&error))?;
                storage.reader(&key, 0).await.map_err(|error| failure::from_source(&error))
            }
        }
    }

    // Decompresses one source into a new spool file; returns it and what was read and
    // written. Progress counts stored bytes, after `bytes_before` of earlier sources.
    async fn spool(
        &self,
        source: impl tokio::io::AsyncRead + Unpin + Send,
        ctx: &JobContext,
        bytes_before: u64,
    ) -> Result<(SpoolFile, Unpacked), Failure> {
        let mut spool =
            SpoolFile::create(&self.spool_dir).await.map_err(|error| failure::internal(&error))?;
        let mut on_progress = |bytes: u64| ctx.set_done(bytes_before + bytes, 0);
        let unpacked = unpack(source, None, &mut spool, &mut on_progress)
            .await
            .map_err(|error| failure::from_unpack(&error))?;
        Ok((spool, unpacked))
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

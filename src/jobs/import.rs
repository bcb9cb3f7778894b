//! Importing into a registered database: one file (local, over http(s) or ftp, or in
//! an object store) is streamed into the engine, decompressed as its content says; with
//! several, every one is spooled to local disk first, as is a live server's snapshot,
//! then the engine checks them all and loads them in order after one flush.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use super::failure;
use crate::domain::{Code, ConnectionUri, Database, Failure, ImportResult, OperationResult, reason};
use crate::engine::{DataStream, Engine, LoadData, Loaded};
use crate::operations::{Job, JobContext};
use crate::pipeline::identities::Identities;
use crate::pipeline::unpack::{SpoolFile, Unpacked, Unpacking, unpack};
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
    /// Every logical database of a live PostgreSQL or MySQL server, each into the
    /// target's database of the same name.
    EveryDatabase(ConnectionUri),
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

/// What imports work with besides their source and target.
#[derive(Clone)]
pub struct ImportPlaces {
    /// Where decompressed data waits while it is checked.
    pub spool_dir: PathBuf,
    /// Fetches http(s) sources.
    pub http: Arc<HttpClient>,
    /// The engines' settings (where their tools are).
    pub engines: crate::engine::Settings,
    /// The age identities that open encrypted sources (an encrypted backup's object).
    pub identities: Arc<Identities>,
}

/// What an import (or one database of it) loaded.
struct Outcome {
    bytes: u64,
    items: u64,
    method: &'static str,
    databases: Vec<String>,
}

impl Outcome {
    fn of(bytes: u64, loaded: Loaded, database: Option<&str>) -> Outcome {
        let databases = database.map(|name| vec![name.to_owned()]).unwrap_or_default();
        Outcome { bytes, items: loaded.items, method: loaded.method, databases }
    }
}

/// Replaces a database's data with imported data.
pub struct ImportJob {
    engine: Arc<dyn Engine>,
    target: Database,
    database_name: Option<String>,
    source: ImportSource,
    places: ImportPlaces,
}

impl ImportJob {
    /// A job loading `source` into `target` (into its logical database `database_name`,
    /// default the one its URI names), with `places` to stage and fetch the data.
    pub fn new(
        engine: Arc<dyn Engine>,
        target: Database,
        database_name: Option<String>,
        source: ImportSource,
        places: ImportPlaces,
    ) -> Self {
        ImportJob { engine, target, database_name, source, places }
    }

    async fn import(&self, ctx: &JobContext) -> Result<ImportResult, Failure> {
        ctx.set_items_unit(crate::domain::ItemsUnit::of(self.target.engine));
        let (source_uris, outcome) = match &self.source {
            ImportSource::Files(files) => {
                let shown = files.iter().map(SourceFile::shown).collect();
                (shown, self.import_files(ctx, files).await?)
            }
            ImportSource::Live(uri) => {
                let source_database = self.live_source_database(uri);
                let target_database = self.target_database();
                (vec![uri.redacted()], self.import_live(ctx, uri, source_database, target_database).await?)
            }
            ImportSource::EveryDatabase(uri) => (vec![uri.redacted()], self.import_every(ctx, uri).await?),
        };
        ctx.set_done(outcome.bytes, outcome.items);
        Ok(ImportResult {
            database_id: Some(self.target.id),
            backup_id: None,
            source_uris,
            bytes: outcome.bytes,
            items: outcome.items,
            load_method: outcome.method.to_owned(),
            database_names: outcome.databases,
            logical_bytes: outcome.bytes,
            backup: None,
        })
    }

    // Streams one file into the engine; spools several, then loads them all in one go.
    async fn import_files(&self, ctx: &JobContext, files: &[SourceFile]) -> Result<Outcome, Failure> {
        ctx.set_phase("reading");
        if let [file] = files {
            return self.import_stream(ctx, file).await;
        }
        let (mut stored, mut bytes) = (0, 0);
        let mut spools = Vec::new();
        for file in files {
            let reader = open_source(file, &self.places.http).await?;
            if let Some(size) = reader.size {
                ctx.set_totals(stored + size, 0);
            }
            let (spool, unpacked) = self.spool(reader.body, ctx, stored).await?;
            stored += unpacked.stored_bytes;
            bytes += unpacked.logical_bytes;
            spools.push(spool);
        }
        let paths: Vec<PathBuf> = spools.iter().map(|spool| spool.path().to_owned()).collect();
        let database = self.target_database();
        let loaded = self.load(ctx, database.as_deref(), LoadData::Files(&paths), bytes, (0, 0)).await;
        let loaded = self.loaded(ctx, loaded)?;
        Ok(Outcome::of(bytes, loaded, database.as_deref()))
    }

    // Reads one file, decompressed, straight into the engine.
    async fn import_stream(&self, ctx: &JobContext, file: &SourceFile) -> Result<Outcome, Failure> {
        let reader = open_source(file, &self.places.http).await?;
        let size = reader.size.unwrap_or(0);
        ctx.set_totals(size, 0);
        let mut unpacking = Unpacking::open(reader.body, None, &self.places.identities)
            .await
            .map_err(|error| failure::from_unpack(&error))?;
        let database = self.target_database();
        let stream = DataStream {
            body: &mut unpacking,
            spool_dir: &self.places.spool_dir,
            checked_length: None,
            from_catalog: false,
            reread: None,
        };
        let loaded = self.load(ctx, database.as_deref(), LoadData::Stream(stream), size, (0, 0)).await;
        let loaded = match loaded {
            Ok(loaded) => self.loaded(ctx, Ok(loaded))?,
            Err(error) => return Err(failure::of_streamed_load(&mut unpacking, &error).await),
        };
        Ok(Outcome::of(unpacking.logical_bytes(), loaded, database.as_deref()))
    }

    // Snapshots one database of a live server into a spool file, then loads it.
    async fn import_live(
        &self,
        ctx: &JobContext,
        uri: &ConnectionUri,
        source_database: Option<String>,
        target_database: Option<String>,
    ) -> Result<Outcome, Failure> {
        let (spool, bytes) = self.snapshot_to_spool(ctx, uri, source_database.as_deref(), 0).await?;
        let paths = [spool.path().to_owned()];
        let loaded = self.load(ctx, target_database.as_deref(), LoadData::Files(&paths), bytes, (0, 0)).await;
        let loaded = self.loaded(ctx, loaded)?;
        Ok(Outcome::of(bytes, loaded, target_database.as_deref()))
    }

    // Snapshots one database of a live server into a spool file; returns it and its
    // size. Progress counts on from `bytes_before` of earlier snapshots.
    async fn snapshot_to_spool(
        &self,
        ctx: &JobContext,
        uri: &ConnectionUri,
        source_database: Option<&str>,
        bytes_before: u64,
    ) -> Result<(SpoolFile, u64), Failure> {
        let phase = |phase: &'static str| ctx.set_phase(phase);
        let snapshot = self
            .engine
            .snapshot(uri, source_database, &phase)
            .await
            .map_err(|error| failure::from_engine(&error))?;
        ctx.set_totals(bytes_before + snapshot.bytes_total.unwrap_or(0), 0);
        let (spool, unpacked) = self.spool(snapshot.body, ctx, bytes_before).await?;
        Ok((spool, unpacked.logical_bytes))
    }

    // Imports every database of a live server, each into its namesake: every one is
    // snapshotted before any is loaded, so that a source failing part-way touches no
    // database of the target.
    async fn import_every(&self, ctx: &JobContext, uri: &ConnectionUri) -> Result<Outcome, Failure> {
        ctx.set_phase("listing databases");
        let databases = self.engine.databases(uri).await.map_err(|error| failure::from_engine(&error))?;
        if databases.is_empty() {
            return Err(Failure::new(
                Code::FailedPrecondition,
                reason::DATABASE_NOT_FOUND,
                format!(
                    "{} has no databases to import (templates and system databases are left out)",
                    uri.redacted()
                ),
            ));
        }
        let mut spooled = Vec::with_capacity(databases.len());
        let mut read = 0;
        for database in &databases {
            let (spool, bytes) = self.snapshot_to_spool(ctx, uri, Some(database), read).await?;
            read += bytes;
            spooled.push((spool, bytes));
        }
        let mut all = Outcome { bytes: 0, items: 0, method: "", databases: Vec::new() };
        for (database, (spool, bytes)) in databases.iter().zip(&spooled) {
            let paths = [spool.path().to_owned()];
            let data = LoadData::Files(&paths);
            let loaded = self.load(ctx, Some(database), data, *bytes, (all.bytes, all.items)).await;
            let loaded = self.loaded(ctx, loaded)?;
            all.bytes += bytes;
            all.items += loaded.items;
            all.method = loaded.method;
            all.databases.push(database.clone());
        }
        Ok(all)
    }

    // The database of a live source to read: the one its URI names, else the one the
    // target loads into (Redis: none, a snapshot holds every numbered database).
    fn live_source_database(&self, uri: &ConnectionUri) -> Option<String> {
        if !uri.expose().path().trim_start_matches('/').is_empty() {
            return None;
        }
        self.target_database()
    }

    // The target's logical database to load into: the one asked for, else the one its
    // URI names (Redis: none). Named here rather than left to the engine so that the
    // result says where the data went.
    fn target_database(&self) -> Option<String> {
        self.database_name.clone().or_else(|| {
            let path = self.target.connection_uri.expose().path().trim_start_matches('/').to_owned();
            (!path.is_empty() && self.target.engine != crate::domain::EngineKind::Redis)
                .then(|| percent_encoding::percent_decode_str(&path).decode_utf8_lossy().into_owned())
        })
    }

    // Loads `data` into the target's `database`; progress counts on from `before`
    // (bytes, items), towards `bytes` more.
    async fn load(
        &self,
        ctx: &JobContext,
        database: Option<&str>,
        data: LoadData<'_>,
        bytes: u64,
        before: (u64, u64),
    ) -> Result<Loaded, crate::engine::Error> {
        let (bytes_before, items_before) = before;
        let items_total = AtomicU64::new(0);
        let phase = |phase: &'static str| ctx.set_phase(phase);
        let progress = |done: u64, items: u64, total: u64| {
            if items_total.swap(total, Ordering::Relaxed) != total {
                ctx.set_totals(bytes_before + bytes, items_before + total);
            }
            ctx.set_done(bytes_before + done, items_before + items);
        };
        self.engine.load(&self.target.connection_uri, database, data, &phase, &progress).await
    }

    // A load's outcome: its warnings on the operation, or its failure.
    fn loaded(
        &self,
        ctx: &JobContext,
        loaded: Result<Loaded, crate::engine::Error>,
    ) -> Result<Loaded, Failure> {
        let loaded = loaded.map_err(|error| failure::from_load(&error))?;
        failure::warn_all(ctx, &loaded.warnings);
        Ok(loaded)
    }

    // Decompresses one source into a new spool file; returns it and what was read and
    // written. Progress counts stored bytes, after `bytes_before` of earlier sources.
    async fn spool(
        &self,
        source: impl tokio::io::AsyncRead + Unpin + Send,
        ctx: &JobContext,
        bytes_before: u64,
    ) -> Result<(SpoolFile, Unpacked), Failure> {
        let mut on_progress = |bytes: u64| ctx.set_done(bytes_before + bytes, 0);
        spool_source(source, &self.places.spool_dir, &self.places.identities, &mut on_progress).await
    }
}

/// Opens one file source (`http` fetches http(s) sources); its size when known.
pub(super) async fn open_source(file: &SourceFile, http: &HttpClient) -> Result<ObjectReader, Failure> {
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
            http.open(url.expose(), 0).await.map_err(|error| failure::from_source(&error))
        }
        SourceFile::Object { storage, key } => {
            storage.reader(key, 0).await.map_err(|error| failure::from_source(&error))
        }
        SourceFile::Ftp(url) => {
            let policy = http.policy().clone();
            let (storage, key) =
                FtpStorage::for_file(url.expose(), policy).map_err(|error| failure::from_source(&error))?;
            storage.reader(&key, 0).await.map_err(|error| failure::from_source(&error))
        }
    }
}

/// Decompresses (and with `identities` decrypts) one source into a new spool file in
/// `spool_dir`; returns it and what was read and written. `on_progress` gets the stored
/// bytes read so far.
pub(super) async fn spool_source(
    source: impl tokio::io::AsyncRead + Unpin + Send,
    spool_dir: &Path,
    identities: &Identities,
    on_progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(SpoolFile, Unpacked), Failure> {
    let mut spool = SpoolFile::create(spool_dir).await.map_err(|error| failure::internal(&error))?;
    let unpacked = unpack(source, None, identities, &mut spool, on_progress)
        .await
        .map_err(|error| failure::from_unpack(&error))?;
    Ok((spool, unpacked))
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

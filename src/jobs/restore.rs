//! Restoring a backup: the stored bytes are read, checked (SHA-256) and decompressed as
//! one stream that the engine loads as it comes (it replaces the target only once the
//! stream ended whole and checked, and leaves the target as it was otherwise). A
//! whole-server backup's parts are all fetched and checked into spool files first, then
//! restored into their databases one by one; or only the one asked for, streamed.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use tokio::io::AsyncRead;

use super::failure;
use crate::domain::{Backup, Database, Failure, OperationResult, RestoreResult};
use crate::engine::{DataStream, Engine, LoadData, Reread};
use crate::operations::{Job, JobContext};
use crate::pipeline::identities::Identities;
use crate::pipeline::unpack::{SpoolFile, Unpacking, copy_checked, unpack};
use crate::storage::Storage;

/// Loads one backup into one database, replacing its data.
pub struct RestoreJob {
    storage: Arc<dyn Storage>,
    engine: Arc<dyn Engine>,
    backup: Backup,
    target: Database,
    database_name: String,
    spool_dir: PathBuf,
    identities: Arc<Identities>,
}

impl RestoreJob {
    /// A job loading `backup` (from `storage`) into `target`; `spool_dir` holds the
    /// decompressed data while it is checked and loaded; `identities` decrypt an
    /// encrypted backup.
    pub fn new(
        storage: Arc<dyn Storage>,
        engine: Arc<dyn Engine>,
        backup: Backup,
        target: Database,
        database_name: String,
        spool_dir: PathBuf,
        identities: Arc<Identities>,
    ) -> Self {
        RestoreJob { storage, engine, backup, target, database_name, spool_dir, identities }
    }

    async fn restore(&self, ctx: &JobContext) -> Result<RestoreResult, Failure> {
        ctx.set_items_unit(crate::domain::ItemsUnit::of(self.target.engine));
        let objects = self.objects();
        let total: u64 = objects.iter().map(|object| object.logical_size_bytes).sum();
        ctx.set_totals(total, 0);
        let (bytes, items, method) = match objects.as_slice() {
            [only] => {
                let loaded = self.stream_object(ctx, only, total).await?;
                failure::warn_all(ctx, &loaded.warnings);
                (only.logical_size_bytes, loaded.items, loaded.method)
            }
            several => self.spool_and_load(ctx, several, total).await?,
        };
        ctx.set_done(bytes, items);
        let database_name = match objects.as_slice() {
            [only] => only.database.clone().unwrap_or_default(),
            _ => String::new(),
        };
        Ok(RestoreResult {
            backup_id: Some(self.backup.id),
            database_id: Some(self.target.id),
            database_name,
            bytes,
            items,
            load_method: method.to_owned(),
        })
    }

    // Streams one object into the engine: read, checked, decompressed and loaded at once,
    // with no spool file (the engine may keep one of its own: Redis checks the whole
    // file before touching the target).
    async fn stream_object(
        &self,
        ctx: &JobContext,
        object: &StoredObject,
        total: u64,
    ) -> Result<crate::engine::Loaded, Failure> {
        ctx.set_phase("downloading");
        let reader =
            self.storage.reader(&object.key, 0).await.map_err(|error| failure::from_storage(&error))?;
        // The stored bytes are proven first when the engine gains from knowing them good
        // before it reads them; they then stream from a local copy.
        let (copy, mut unpacking) = if self.engine.prefers_checked_stream() && !object.sha256.is_empty() {
            let copy = self.copy_checked(ctx, reader.body, object).await?;
            let file = tokio::fs::File::open(copy.path())
                .await
                .map_err(|error| failure::from_unpack(&crate::pipeline::unpack::Error::Spool(error)))?;
            let source: Pin<Box<dyn AsyncRead + Send>> = Box::pin(file);
            (Some(copy), self.open_unpacking(source, None).await?)
        } else {
            (None, self.open_unpacking(reader.body, Some(&object.sha256)).await?)
        };
        // The copy lives as long as the load reads from it, and can be read again.
        let checked_length = copy.as_ref().map(|_| object.logical_size_bytes);
        let reread = copy.as_ref().map(|copy| {
            Arc::new(CopyReread { path: copy.path().to_owned(), identities: self.identities.clone() })
                as Arc<dyn Reread>
        });
        let stream = DataStream {
            body: &mut unpacking,
            spool_dir: &self.spool_dir,
            checked_length,
            from_catalog: true,
            reread,
        };
        match self.load_object(ctx, object, LoadData::Stream(stream), total, (0, 0)).await {
            Ok(loaded) => {
                if unpacking.is_reading() {
                    tracing::error!(key = %object.key, "an engine loaded a stream without reading it to its end");
                }
                Ok(loaded)
            }
            Err(error) => Err(failure::of_streamed_load(&mut unpacking, &error).await),
        }
    }

    // Copies the stored bytes of `object` into a spool file as they are, checking their
    // SHA-256.
    async fn copy_checked(
        &self,
        ctx: &JobContext,
        source: impl AsyncRead + Send + Unpin,
        object: &StoredObject,
    ) -> Result<SpoolFile, Failure> {
        let spool_failed = |error| failure::from_unpack(&crate::pipeline::unpack::Error::Spool(error));
        let mut copy = SpoolFile::create(&self.spool_dir).await.map_err(spool_failed)?;
        // Shown as the share of the data fetched.
        let share = |copied: u64| {
            let whole = u128::from(object.logical_size_bytes);
            (u128::from(copied) * whole / u128::from(object.size_bytes.max(1))).min(whole) as u64
        };
        let mut on_progress = |copied: u64| ctx.set_done(share(copied), 0);
        copy_checked(source, &object.sha256, &mut copy, &mut on_progress)
            .await
            .map_err(|error| failure::from_unpack(&error))?;
        Ok(copy)
    }

    async fn open_unpacking<R: AsyncRead + Send + Unpin>(
        &self,
        source: R,
        expected_sha256: Option<&str>,
    ) -> Result<Unpacking<R>, Failure> {
        Unpacking::open(source, expected_sha256, &self.identities)
            .await
            .map_err(|error| failure::from_unpack(&error))
    }

    // Fetches and checks every object into a spool file before any is loaded (a damaged
    // part of a whole-server backup fails the restore with no database touched), then
    // loads them one by one; returns the bytes, items and load method.
    async fn spool_and_load(
        &self,
        ctx: &JobContext,
        objects: &[StoredObject],
        total: u64,
    ) -> Result<(u64, u64, &'static str), Failure> {
        let mut spools = Vec::with_capacity(objects.len());
        let mut fetched = 0;
        for object in objects {
            spools.push(self.fetch(ctx, object, fetched).await?);
            fetched += object.logical_size_bytes;
        }
        let (mut bytes, mut items) = (0, 0);
        let mut method = "";
        for (object, spool) in objects.iter().zip(&spools) {
            let data = LoadData::Files(std::slice::from_ref(spool.path_buf()));
            let loaded = self
                .load_object(ctx, object, data, total, (bytes, items))
                .await
                .map_err(|error| failure::from_load(&error))?;
            bytes += object.logical_size_bytes;
            items += loaded.items;
            method = loaded.method;
            failure::warn_all(ctx, &loaded.warnings);
        }
        Ok((bytes, items, method))
    }

    // The objects to load: the backup's one object into the database asked for (else
    // the one another registered target's URI names, else the one it was taken from),
    // or the parts of a whole-server backup (the one named, or all), each into the
    // database of its name.
    fn objects(&self) -> Vec<StoredObject> {
        if self.backup.parts.is_empty() {
            let database = [&self.database_name, &self.other_targets_database(), &self.backup.database_name]
                .into_iter()
                .find(|name| !name.is_empty())
                .cloned();
            return vec![StoredObject {
                key: self.backup.object_key.clone(),
                sha256: self.backup.sha256.clone(),
                size_bytes: self.backup.size_bytes,
                logical_size_bytes: self.backup.logical_size_bytes,
                database,
            }];
        }
        self.backup
            .parts
            .iter()
            .filter(|part| self.database_name.is_empty() || part.database_name == self.database_name)
            .map(|part| StoredObject {
                key: part.object_key.clone(),
                sha256: part.sha256.clone(),
                size_bytes: part.size_bytes,
                logical_size_bytes: part.logical_size_bytes,
                database: Some(part.database_name.clone()),
            })
            .collect()
    }

    // The logical database a target other than the backup's own database names in its
    // URI (empty if none, or for Redis): registering `postgres://host/staging` and
    // restoring into it means `staging`, not the backup's database name.
    fn other_targets_database(&self) -> String {
        let own = self.backup.database_id == Some(self.target.id);
        if own || self.target.engine == crate::domain::EngineKind::Redis {
            return String::new();
        }
        let path = self.target.connection_uri.expose().path().trim_start_matches('/').to_owned();
        percent_encoding::percent_decode_str(&path).decode_utf8_lossy().into_owned()
    }

    // Downloads, checks and decompresses one object into a spool file; progress counts
    // on from `bytes_before` of the objects fetched earlier.
    async fn fetch(
        &self,
        ctx: &JobContext,
        object: &StoredObject,
        bytes_before: u64,
    ) -> Result<SpoolFile, Failure> {
        ctx.set_phase("downloading");
        let reader =
            self.storage.reader(&object.key, 0).await.map_err(|error| failure::from_storage(&error))?;
        let mut spool =
            SpoolFile::create(&self.spool_dir).await.map_err(|error| failure::internal(&error))?;
        let mut on_progress = |bytes: u64| ctx.set_done(bytes_before + bytes, 0);
        let unpacked =
            unpack(reader.body, Some(&object.sha256), &self.identities, &mut spool, &mut on_progress)
                .await
                .map_err(|error| failure::from_unpack(&error))?;
        ctx.set_done(bytes_before + unpacked.logical_bytes, 0);
        Ok(spool)
    }

    // Loads one object's data; progress counts on from `before` (bytes, items) of
    // earlier objects, towards `total` bytes.
    async fn load_object(
        &self,
        ctx: &JobContext,
        object: &StoredObject,
        data: LoadData<'_>,
        total: u64,
        before: (u64, u64),
    ) -> Result<crate::engine::Loaded, crate::engine::Error> {
        let (bytes_before, items_before) = before;
        let items_total = AtomicU64::new(0);
        let phase = |phase: &'static str| ctx.set_phase(phase);
        let progress = |bytes: u64, items: u64, items_in_object: u64| {
            if items_total.swap(items_in_object, Ordering::Relaxed) != items_in_object {
                ctx.set_totals(total, items_before + items_in_object);
            }
            ctx.set_done(bytes_before + bytes, items_before + items);
        };
        self.engine
            .load(&self.target.connection_uri, object.database.as_deref(), data, &phase, &progress)
            .await
    }
}

/// One stored object to load.
struct StoredObject {
    key: String,
    sha256: String,
    /// Its stored (compressed, encrypted) and decompressed sizes.
    size_bytes: u64,
    logical_size_bytes: u64,
    /// The logical database to load it into; `None` for Redis.
    database: Option<String>,
}

#[async_trait]
impl Job for RestoreJob {
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure> {
        // Dropping the work at a cancel drops the stream, the spool files (removed), the
        // tool (killed) and the connection; a scratch database is dropped in the
        // background; a Redis target keeps the keys loaded so far.
        tokio::select! {
            outcome = self.restore(ctx) => outcome.map(OperationResult::Restore),
            () = ctx.token().cancelled() => Err(Failure::cancelled()),
        }
    }

    async fn abandon(&self, _failure: &Failure) {
        // Nothing was prepared: the target is untouched until the job runs.
    }
}

/// The data of a backup again, decompressed anew from its proven local copy.
struct CopyReread {
    path: PathBuf,
    identities: Arc<Identities>,
}

#[async_trait]
impl Reread for CopyReread {
    async fn reopen(&self) -> Result<Box<dyn AsyncRead + Send + Unpin>, crate::engine::Error> {
        let again = |error: String| {
            crate::engine::Error::Unsupported(format!("cannot read the backup's copy again: {error}"))
        };
        let file = tokio::fs::File::open(&self.path).await.map_err(|error| again(error.to_string()))?;
        let unpacking =
            Unpacking::open(file, None, &self.identities).await.map_err(|error| again(error.to_string()))?;
        Ok(Box::new(unpacking))
    }
}

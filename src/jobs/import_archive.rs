//! Bringing an archive into the catalog (ImportBackup from `import_url`), touching no
//! database:
//!
//! 1. `reading`: the source is read once into a spool file, decompressed as its
//!    content says (gzip, zstd or none);
//! 2. `verifying`: its first bytes tell the engine (which must agree with the one the
//!    request names), and that engine checks the file whole, without a server, as a
//!    load would;
//! 3. `uploading`: the file is compressed into the destination, then its manifest;
//! 4. the record is written READY.
//!
//! The record exists from step 3 on, CREATING (so that a crash leaves it FAILED, with
//! its objects findable); a source that fails any step leaves nothing behind: no
//! record, no object.

use std::sync::Arc;

use async_trait::async_trait;

use super::import::{ImportPlaces, SourceFile, open_source, spool_source};
use super::manifest::write_manifest;
use super::snapshot::abort;
use super::{Manifest, data_key, failure, manifest_key};
use crate::domain::{
    Backup, BackupState, Code, EngineKind, Failure, ImportResult, ItemsUnit, OperationResult, reason,
};
use crate::engine::detect::{Content, HEAD_LEN, content_of};
use crate::engine::{self, CheckedFile};
use crate::metadata::Store;
use crate::operations::{Job, JobContext};
use crate::pipeline;
use crate::pipeline::unpack::SpoolFile;
use crate::storage::Storage;

/// Brings one archive into the catalog as a READY backup.
pub struct ImportArchiveJob {
    store: Arc<dyn Store>,
    storage: Arc<dyn Storage>,
    source: SourceFile,
    /// The engine the request names (or that of the database the backup is filed
    /// under); `None`: the content tells.
    claimed: Option<EngineKind>,
    /// The record to create: everything but what the data tells (engine, format,
    /// sizes, checksum).
    backup: Backup,
    places: ImportPlaces,
}

/// What the spooled data turned out to be.
struct Checked {
    engine: EngineKind,
    file: CheckedFile,
}

impl ImportArchiveJob {
    /// A job storing `source` on `storage` as the new backup `backup` (whose engine
    /// and format it fills in from the data, checked against `claimed`).
    pub fn new(
        store: Arc<dyn Store>,
        storage: Arc<dyn Storage>,
        source: SourceFile,
        claimed: Option<EngineKind>,
        backup: Backup,
        places: ImportPlaces,
    ) -> Self {
        ImportArchiveJob { store, storage, source, claimed, backup, places }
    }

    async fn import(&self, ctx: &JobContext, created: &mut bool) -> Result<ImportResult, Failure> {
        let start_time = crate::domain::now();
        ctx.set_phase("reading");
        let reader = open_source(&self.source, &self.places.http).await?;
        let size = reader.size.unwrap_or(0);
        ctx.set_totals(size, 0);
        let mut on_progress = |bytes: u64| ctx.set_done(bytes, 0);
        let (spool, unpacked) =
            spool_source(reader.body, &self.places.spool_dir, &self.places.identities, &mut on_progress)
                .await?;

        ctx.set_phase("verifying");
        let checked = self.check(&spool).await?;
        ctx.set_items_unit(ItemsUnit::of(checked.engine));
        let mut backup = self.backup.clone();
        backup.engine = checked.engine;
        backup.format = checked.file.format.to_owned();
        backup.server_version = checked.file.server_version.clone();
        backup.object_key = data_key(&backup);
        backup.uri = self.storage.uri(&backup.object_key);
        self.store.create_backup(&backup).await.map_err(|error| failure::from_metadata(&error))?;
        *created = true;

        ctx.set_phase("uploading");
        let logical_bytes = unpacked.logical_bytes;
        ctx.set_totals(logical_bytes, checked.file.items);
        let stored = self.upload(ctx, &spool, &backup).await?;
        drop(spool);
        backup.size_bytes = stored.stored_bytes;
        backup.logical_size_bytes = stored.logical_bytes;
        backup.sha256 = stored.sha256;

        ctx.set_phase("committing");
        let mut details = std::collections::BTreeMap::new();
        details.insert("imported_from".to_owned(), self.source.shown());
        let manifest = Manifest::of(
            &backup,
            backup.object_key.clone(),
            checked.file.format_version.clone(),
            checked.file.items,
            start_time,
            details,
        );
        write_manifest(self.storage.as_ref(), &mut backup, &manifest).await?;
        backup.state = BackupState::Ready;
        backup.update_time = crate::domain::now();
        self.store.update_backup(&backup).await.map_err(|error| failure::from_metadata(&error))?;
        ctx.set_done(logical_bytes, checked.file.items);
        Ok(ImportResult {
            database_id: backup.database_id,
            backup_id: Some(backup.id),
            source_uris: vec![self.source.shown()],
            bytes: unpacked.stored_bytes,
            items: checked.file.items,
            load_method: String::new(),
            database_names: Vec::new(),
            logical_bytes,
            backup: Some(Box::new(backup)),
        })
    }

    // Tells the engine from the data's first bytes, then has it check the file whole.
    async fn check(&self, spool: &SpoolFile) -> Result<Checked, Failure> {
        let head =
            engine::sql::head(spool.path(), HEAD_LEN).await.map_err(|error| failure::from_engine(&error))?;
        let content = content_of(&head);
        let engine = engine_of(content, self.claimed)?;
        let checker =
            engine::for_kind(engine, &self.places.engines).map_err(|error| failure::from_engine(&error))?;
        let file = checker.check_file(spool.path()).await.map_err(|error| failure::from_engine(&error))?;
        Ok(Checked { engine, file })
    }

    // Compresses the spooled data into the backup's data object, committed.
    async fn upload(
        &self,
        ctx: &JobContext,
        spool: &SpoolFile,
        backup: &Backup,
    ) -> Result<pipeline::Stored, Failure> {
        let data = tokio::fs::File::open(spool.path()).await.map_err(|error| failure::internal(&error))?;
        let mut writer =
            self.storage.writer(&backup.object_key).await.map_err(|error| failure::from_storage(&error))?;
        let mut on_progress = |bytes: u64| ctx.set_done(bytes, 0);
        let recipients = &backup.age_recipients;
        let stored = pipeline::store_with(
            data,
            backup.compression,
            pipeline::Threads::PerCore,
            recipients,
            writer.as_mut(),
            &mut on_progress,
        )
        .await;
        match stored {
            Ok(stored) => {
                writer.commit().await.map_err(|error| failure::from_storage(&error))?;
                Ok(stored)
            }
            Err(error) => {
                abort(writer).await;
                Err(failure::from_pipeline(&error))
            }
        }
    }

    // Leaves nothing of a failed or cancelled import: its objects, then its record.
    async fn clean_up(&self, created: bool) {
        if !created {
            return;
        }
        let mut backup = self.backup.clone();
        backup.object_key = data_key(&backup);
        for key in [backup.object_key.clone(), manifest_key(&backup)] {
            if let Err(error) = self.storage.delete(&key).await {
                tracing::error!(backup = %backup.id, %error, "cannot remove the objects of a failed import");
            }
        }
        if let Err(error) = self.store.delete_backup(backup.id).await {
            tracing::error!(backup = %backup.id, %error, "cannot remove the record of a failed import");
        }
    }
}

/// The engine of data whose content is `content`, given the engine the request
/// `claimed`; FORMAT_UNKNOWN when the content is none of ours, or not the claimed
/// engine's, or SQL text whose engine nobody says.
fn engine_of(content: Content, claimed: Option<EngineKind>) -> Result<EngineKind, Failure> {
    let unknown = |message: String| Failure::new(Code::InvalidArgument, reason::FORMAT_UNKNOWN, message);
    match (content.engine(), claimed) {
        (_, _) if content == Content::Unknown => Err(unknown(format!(
            "the data (after decompression) is {}: import a Redis RDB file, a pg_dump custom-format archive or \
             an SQL dump, plain or compressed with gzip or zstd",
            content.describe()
        ))),
        (_, Some(claimed)) if !content.readable_by(claimed) => {
            Err(unknown(format!("the data is {}, not {claimed} data", content.describe())))
        }
        (_, Some(claimed)) => Ok(claimed),
        (Some(told), None) => Ok(told),
        (None, None) => Err(unknown(
            "the data is SQL text that does not say which engine wrote it: set engine to ENGINE_POSTGRES or \
             ENGINE_MYSQL"
                .to_owned(),
        )),
    }
}

#[async_trait]
impl Job for ImportArchiveJob {
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure> {
        let mut created = false;
        // Dropping the work future at the cancel drops the spool file and the
        // uncommitted writer (which discards its partial object).
        let outcome = tokio::select! {
            outcome = self.import(ctx, &mut created) => outcome,
            () = ctx.token().cancelled() => Err(Failure::cancelled()),
        };
        match outcome {
            Ok(result) => Ok(OperationResult::Import(result)),
            Err(failure) => {
                ctx.set_phase("cleaning up");
                self.clean_up(created).await;
                Err(failure)
            }
        }
    }

    async fn abandon(&self, _failure: &Failure) {
        // Nothing exists before the job runs.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_content_and_the_claim_must_agree() {
        assert_eq!(engine_of(Content::Rdb, None).unwrap(), EngineKind::Redis);
        assert_eq!(engine_of(Content::Rdb, Some(EngineKind::Redis)).unwrap(), EngineKind::Redis);
        assert_eq!(engine_of(Content::Sql(None), Some(EngineKind::Mysql)).unwrap(), EngineKind::Mysql);
        assert_eq!(engine_of(Content::Sql(Some(EngineKind::Postgres)), None).unwrap(), EngineKind::Postgres);
        for (content, claimed) in [
            (Content::Unknown, None),
            (Content::Unknown, Some(EngineKind::Redis)),
            (Content::Rdb, Some(EngineKind::Postgres)),
            (Content::PgArchive, Some(EngineKind::Mysql)),
            (Content::Sql(None), None),
            (Content::Sql(None), Some(EngineKind::Redis)),
            (Content::Sql(Some(EngineKind::Mysql)), Some(EngineKind::Postgres)),
        ] {
            let failure = engine_of(content, claimed).unwrap_err();
            assert_eq!(
                (failure.code, failure.reason.as_str()),
                (Code::InvalidArgument, reason::FORMAT_UNKNOWN)
            );
        }
    }
}

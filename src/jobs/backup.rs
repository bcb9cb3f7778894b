//! Backing up a database: snapshot -> pipeline -> storage, then the manifest, then READY.
//!
//! A server with logical databases (PostgreSQL, MySQL) is backed up one database at a
//! time: the one asked for, the one its connection URI names, or (when neither names
//! one) every database, each its own object listed in the manifest.
//!
//! The same job brings a live database that is not registered into the catalog
//! (ImportBackup); a failed import then leaves no record behind.

use std::sync::Arc;

use async_trait::async_trait;

use super::manifest::write_manifest;
use super::snapshot::{StoredSnapshot, Target, store_snapshot};
use super::{Manifest, backup_dir, data_key, failure, manifest_key, part_key};
use crate::domain::{
    Backup, BackupPart, BackupState, Code, ConnectionUri, Database, EngineKind, Failure, ImportResult,
    OperationResult, Timestamp, reason,
};
use crate::engine::Engine;
use crate::metadata::Store;
use crate::operations::{Job, JobContext};
use crate::storage::Storage;

/// Takes one backup of a database into a destination.
pub struct BackupJob {
    store: Arc<dyn Store>,
    engine: Arc<dyn Engine>,
    storage: Arc<dyn Storage>,
    source: BackupSource,
    backup: Backup,
}

/// The server a backup snapshots.
#[derive(Debug, Clone)]
pub struct BackupSource {
    /// Its engine.
    pub engine: EngineKind,
    /// How to reach it.
    pub uri: ConnectionUri,
    /// How messages name it: the registered database's name, or the URI redacted.
    pub shown: String,
    /// Every logical database of the server, whatever the URI names (which is then only
    /// where to connect).
    pub every_database: bool,
    /// Whether it is a server outside the catalog (ImportBackup): a failed attempt then
    /// removes the backup's record too, not only its objects.
    pub imported: bool,
}

impl BackupSource {
    /// A registered database.
    pub fn registered(database: &Database) -> Self {
        BackupSource {
            engine: database.engine,
            uri: database.connection_uri.clone(),
            shown: database.name.to_string(),
            every_database: false,
            imported: false,
        }
    }
}

/// What a backup covers.
enum Scope {
    /// One snapshot: a Redis server, or one logical database.
    One(Option<String>),
    /// Every logical database of the server, each its own object.
    Every(Vec<String>),
}

impl BackupJob {
    /// A job filling the CREATING record `backup` with a snapshot of `source`.
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<dyn Engine>,
        storage: Arc<dyn Storage>,
        source: BackupSource,
        backup: Backup,
    ) -> Self {
        BackupJob { store, engine, storage, source, backup }
    }

    async fn snapshot_and_store(&self, ctx: &JobContext) -> Result<Backup, Failure> {
        let start_time = crate::domain::now();
        ctx.set_items_unit(crate::domain::ItemsUnit::of(self.source.engine));
        let mut backup = self.backup.clone();
        let manifest = match self.scope(ctx).await? {
            Scope::One(database) => {
                backup.database_name = database.clone().unwrap_or_default();
                let key = data_key(&backup);
                let object = self.store_object(ctx, database.as_deref(), &key, (0, 0)).await?;
                backup.server_version = object.server_version;
                backup.size_bytes = object.stored.stored_bytes;
                backup.logical_size_bytes = object.stored.logical_bytes;
                backup.sha256 = object.stored.sha256;
                backup.uri = self.storage.uri(&key);
                backup.object_key = key.clone();
                Manifest::of(&backup, key, object.format_version, object.items, start_time, object.details)
            }
            Scope::Every(databases) => self.store_every(ctx, &mut backup, &databases, start_time).await?,
        };
        ctx.set_phase("committing");
        write_manifest(self.storage.as_ref(), &mut backup, &manifest).await?;

        backup.state = BackupState::Ready;
        backup.update_time = crate::domain::now();
        self.store.update_backup(&backup).await.map_err(|error| failure::from_metadata(&error))?;
        Ok(backup)
    }

    // The databases to dump: Redis has one snapshot; a SQL server the database asked
    // for, else the one its URI names, else every one it has.
    async fn scope(&self, ctx: &JobContext) -> Result<Scope, Failure> {
        if self.source.engine == EngineKind::Redis {
            return Ok(Scope::One(None));
        }
        if !self.backup.database_name.is_empty() {
            return Ok(Scope::One(Some(self.backup.database_name.clone())));
        }
        let path = self.source.uri.expose().path().trim_start_matches('/').to_owned();
        if !path.is_empty() && !self.source.every_database {
            let name = percent_encoding::percent_decode_str(&path).decode_utf8_lossy().into_owned();
            return Ok(Scope::One(Some(name)));
        }
        ctx.set_phase("listing databases");
        let databases =
            self.engine.databases(&self.source.uri).await.map_err(|error| failure::from_engine(&error))?;
        if databases.is_empty() {
            return Err(Failure::new(
                Code::FailedPrecondition,
                reason::DATABASE_NOT_FOUND,
                format!(
                    "{} has no databases to back up (templates and system databases are left out)",
                    self.source.shown
                ),
            ));
        }
        Ok(Scope::Every(databases))
    }

    // Dumps every database into its own object; returns the manifest listing them.
    async fn store_every(
        &self,
        ctx: &JobContext,
        backup: &mut Backup,
        databases: &[String],
        start_time: Timestamp,
    ) -> Result<Manifest, Failure> {
        let mut details = std::collections::BTreeMap::new();
        let mut format_version = String::new();
        let (mut bytes, mut items) = (0, 0);
        for database in databases {
            let key = part_key(backup, database);
            let object = self.store_object(ctx, Some(database), &key, (bytes, items)).await?;
            bytes += object.stored.logical_bytes;
            items += object.items;
            backup.server_version = object.server_version;
            format_version = object.format_version;
            details.extend(object.details.into_iter().filter(|(key, _)| key != "database"));
            backup.parts.push(BackupPart {
                database_name: database.clone(),
                uri: self.storage.uri(&key),
                object_key: key,
                size_bytes: object.stored.stored_bytes,
                logical_size_bytes: object.stored.logical_bytes,
                sha256: object.stored.sha256,
                items: object.items,
            });
        }
        backup.size_bytes = backup.parts.iter().map(|part| part.size_bytes).sum();
        backup.logical_size_bytes = bytes;
        let key = manifest_key(backup);
        backup.object_key = key.clone();
        backup.uri = self.storage.uri(&key);
        details.insert("databases".to_owned(), databases.join(","));
        Ok(Manifest::of(backup, String::new(), format_version, items, start_time, details))
    }

    // Snapshots one database (or the whole server) into the object `key`; progress
    // counts on from `before` (bytes, items) of earlier objects.
    async fn store_object(
        &self,
        ctx: &JobContext,
        database: Option<&str>,
        key: &str,
        before: (u64, u64),
    ) -> Result<StoredSnapshot, Failure> {
        let target = Target {
            uri: &self.source.uri,
            database,
            storage: self.storage.as_ref(),
            key,
            compression: self.backup.compression,
            recipients: &self.backup.age_recipients,
        };
        store_snapshot(ctx, &self.engine, target, before).await
    }

    // What an import of a live server did, for its operation.
    fn imported(&self, backup: Backup) -> ImportResult {
        let database_names = match backup.parts.is_empty() {
            true => Some(backup.database_name.clone()).filter(|name| !name.is_empty()).into_iter().collect(),
            false => backup.parts.iter().map(|part| part.database_name.clone()).collect(),
        };
        ImportResult {
            database_id: backup.database_id,
            backup_id: Some(backup.id),
            source_uris: vec![self.source.uri.redacted()],
            bytes: backup.logical_size_bytes,
            items: 0,
            load_method: String::new(),
            database_names,
            logical_bytes: backup.logical_size_bytes,
            backup: Some(Box::new(backup)),
        }
    }

    // Leaves no trace of a failed or cancelled attempt but a FAILED record (an import:
    // no record at all): every object
    // under the backup's own directory goes (the parts written so far are not known
    // after a crash, but they are all there).
    async fn clean_up(&self, outcome: &Failure) {
        let mut backup = self.backup.clone();
        let mut keys = vec![data_key(&backup), manifest_key(&backup)];
        match self.storage.list(&backup_dir(&backup)).await {
            Ok(objects) => keys.extend(objects.into_iter().map(|meta| meta.key)),
            Err(error) => {
                tracing::warn!(backup = %backup.id, %error, "cannot list the objects of a failed backup")
            }
        }
        keys.sort();
        keys.dedup();
        for key in keys {
            if let Err(error) = self.storage.delete(&key).await {
                tracing::error!(backup = %backup.id, %error, "cannot remove the objects of a failed backup");
            }
        }
        if self.source.imported {
            if let Err(error) = self.store.delete_backup(backup.id).await {
                tracing::error!(backup = %backup.id, %error, "cannot remove the record of a failed import");
            }
            return;
        }
        backup.state = BackupState::Failed;
        backup.update_time = crate::domain::now();
        if let Err(error) = self.store.update_backup(&backup).await {
            tracing::error!(backup = %backup.id, %error, reason = %outcome.reason, "cannot mark backup failed");
        }
    }
}

#[async_trait]
impl Job for BackupJob {
    async fn run(&self, ctx: &JobContext) -> Result<OperationResult, Failure> {
        // Dropping the work future at the cancel drops the snapshot (its connection, or
        // its dump tool, killed) and the uncommitted writer (which discards its partial
        // object); clean_up then removes anything committed and marks the record failed.
        let outcome = tokio::select! {
            outcome = self.snapshot_and_store(ctx) => outcome,
            () = ctx.token().cancelled() => Err(Failure::cancelled()),
        };
        match outcome {
            Ok(backup) if self.source.imported => Ok(OperationResult::Import(self.imported(backup))),
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

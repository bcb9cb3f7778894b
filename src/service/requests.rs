//! The validated requests the core takes (built by the transports).

use crate::domain::{
    BackupId, BackupName, BackupOrigin, BackupPolicy, Compression, ConnectionUri, DatabaseId, DestinationId,
    EngineKind, Labels, ResourceName, RetentionPolicy, Secret, Timestamp, Webhook,
};
use std::collections::BTreeMap;

/// A database to register.
#[derive(Debug, Clone)]
pub struct NewDatabase {
    /// Unique display name.
    pub name: ResourceName,
    /// Tenant id (`default` when the request gave none).
    pub project_id: String,
    /// The engine.
    pub engine: EngineKind,
    /// How to reach it; scheme already checked against the engine.
    pub connection_uri: ConnectionUri,
    /// How it is backed up.
    pub backup_policy: BackupPolicy,
    /// Labels.
    pub labels: Labels,
    /// Completion notifications (the URL policy is checked by the core).
    pub webhook: Option<Webhook>,
}

/// Changes to a database; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DatabasePatch {
    /// New name.
    pub name: Option<ResourceName>,
    /// New project id.
    pub project_id: Option<String>,
    /// New connection URI (checked against the engine by the core).
    pub connection_uri: Option<ConnectionUri>,
    /// Changes to the backup policy.
    pub backup_policy: PolicyPatch,
    /// New labels (replacing all).
    pub labels: Option<Labels>,
    /// Changes to the webhook.
    pub webhook: WebhookPatch,
}

/// Changes to a database's webhook; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    /// New endpoint (`Some(None)`: remove the webhook). A new endpoint keeps the stored
    /// secret unless `secret` replaces it; a database without a webhook needs both.
    pub url: Option<Option<url::Url>>,
    /// New secret, for the stored endpoint or the new one.
    pub secret: Option<Secret>,
}

/// Changes to a backup policy; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct PolicyPatch {
    /// New destination (`Some(None)`: the built-in `local`).
    pub destination_id: Option<Option<DestinationId>>,
    /// New schedule (empty: none).
    pub schedule: Option<String>,
    /// New compression.
    pub compression: Option<Compression>,
    /// New retention.
    pub retention: Option<RetentionPolicy>,
    /// New backup time-to-live (`Some(None)`: backups do not expire).
    pub backup_ttl: Option<Option<std::time::Duration>>,
    /// New age recipients (empty: backups are not encrypted).
    pub age_recipients: Option<Vec<crate::domain::AgeRecipient>>,
}

impl PolicyPatch {
    /// The policy after the patch.
    pub fn apply(self, mut policy: BackupPolicy) -> BackupPolicy {
        if let Some(destination_id) = self.destination_id {
            policy.destination_id = destination_id;
        }
        if let Some(schedule) = self.schedule {
            policy.schedule = schedule;
        }
        if let Some(compression) = self.compression {
            policy.compression = compression;
        }
        if let Some(retention) = self.retention {
            policy.retention = retention;
        }
        if let Some(backup_ttl) = self.backup_ttl {
            policy.backup_ttl = backup_ttl;
        }
        if let Some(age_recipients) = self.age_recipients {
            policy.age_recipients = age_recipients;
        }
        policy
    }
}

/// A destination to create.
#[derive(Debug, Clone)]
pub struct NewDestination {
    /// Unique display name.
    pub name: ResourceName,
    /// Checked location URI.
    pub uri: String,
    /// Write-only credentials.
    pub credentials: BTreeMap<String, Secret>,
    /// Backend options.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: Labels,
}

/// Changes to a destination; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct DestinationPatch {
    /// New name.
    pub name: Option<ResourceName>,
    /// New checked URI.
    pub uri: Option<String>,
    /// New credentials (replacing all).
    pub credentials: Option<BTreeMap<String, Secret>>,
    /// New options (replacing all).
    pub options: Option<BTreeMap<String, String>>,
    /// New labels (replacing all).
    pub labels: Option<Labels>,
}

/// An on-demand backup.
#[derive(Debug, Clone)]
pub struct CreateBackup {
    /// The database to back up.
    pub database_id: DatabaseId,
    /// The name; default made from the creation time.
    pub name: Option<BackupName>,
    /// The logical database, where the engine has them.
    pub database_name: String,
    /// When it expires; default from the policy's TTL.
    pub expire_time: Option<Timestamp>,
    /// Overrides the policy's destination.
    pub destination_id: Option<DestinationId>,
    /// Overrides the policy's compression.
    pub compression: Option<Compression>,
    /// Labels.
    pub labels: Labels,
    /// Idempotency key.
    pub request_id: Option<String>,
    /// Who asked: on demand (the API) or the schedule.
    pub origin: BackupOrigin,
}

/// Changes to a backup; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct BackupPatch {
    /// New name.
    pub name: Option<BackupName>,
    /// New expiry: `Some(None)` clears it.
    pub expire_time: Option<Option<Timestamp>>,
    /// New labels (replacing all).
    pub labels: Option<Labels>,
}

/// A restore of a backup into a database.
#[derive(Debug, Clone)]
pub struct RestoreBackup {
    /// The backup to load.
    pub backup_id: BackupId,
    /// The database whose data it replaces; default: the backup's own.
    pub target_database_id: Option<DatabaseId>,
    /// The logical database to load into, where the engine has them.
    pub target_database_name: String,
    /// Idempotency key.
    pub request_id: Option<String>,
}

/// An import into a registered database, replacing its data.
#[derive(Debug, Clone)]
pub struct ImportDatabase {
    /// The database whose data is replaced.
    pub database_id: DatabaseId,
    /// Source locations, loaded in order.
    pub source_uris: Vec<url::Url>,
    /// Or a live server to snapshot.
    pub source_connection_uri: Option<ConnectionUri>,
    /// The target's logical database to load into (PostgreSQL, MySQL); empty for the
    /// one its URI names.
    pub database_name: String,
    /// Import every database of the live source, each into its namesake.
    pub import_all_databases: bool,
    /// Idempotency key.
    pub request_id: Option<String>,
}

/// Where an imported backup's data comes from.
#[derive(Debug, Clone)]
pub enum BackupImportSource {
    /// A live database (its engine told by the scheme).
    Live(ConnectionUri),
    /// An archive at a location, with the credentials to read it.
    Archive {
        /// The archive's URI (`file://`, `http(s)://`, `ftp://`, `s3://`, `gs://`,
        /// `abs://`, `az://`); its password shows redacted.
        url: ConnectionUri,
        /// Credentials for reading it, keys as in a destination's credentials.
        credentials: BTreeMap<String, Secret>,
    },
}

/// A backup brought into the catalog from outside (ImportBackup).
#[derive(Debug, Clone)]
pub struct ImportBackup {
    /// The name; default made from the creation time.
    pub name: Option<BackupName>,
    /// The engine the request names; `None`: the source tells.
    pub engine: Option<EngineKind>,
    /// Where the data comes from.
    pub source: BackupImportSource,
    /// For a live PostgreSQL or MySQL server: every logical database.
    pub import_all_databases: bool,
    /// The stored compression (gzip or zstd).
    pub compression: Compression,
    /// Where to store it; default the `local` destination.
    pub destination_id: Option<DestinationId>,
    /// The registered database to file it under, if any.
    pub database_id: Option<DatabaseId>,
    /// When it expires; `None` for never.
    pub expire_time: Option<Timestamp>,
    /// Labels.
    pub labels: Labels,
    /// Idempotency key.
    pub request_id: Option<String>,
}

/// A download link for a READY backup.
#[derive(Debug, Clone)]
pub struct ExportBackup {
    /// The backup.
    pub backup_id: BackupId,
    /// For a whole-server backup, the logical database whose object to link; empty for
    /// the backup's own object (the manifest of a whole-server backup).
    pub database_name: String,
    /// How long the link works (1 s to 7 days).
    pub url_ttl: std::time::Duration,
}

/// The stored bytes of a READY backup, from an offset.
#[derive(Debug, Clone)]
pub struct DownloadBackup {
    /// The backup.
    pub backup_id: BackupId,
    /// As in [`ExportBackup::database_name`].
    pub database_name: String,
    /// Where to start in the object.
    pub offset: u64,
}

/// A fresh snapshot of a registered database written to a location outside the
/// catalog.
#[derive(Debug, Clone)]
pub struct ExportDatabase {
    /// The database to snapshot.
    pub database_id: DatabaseId,
    /// Where to write: a directory (ending in `/`) or an object's full URI; may hold a
    /// password (redacted when shown).
    pub export_uri: ConnectionUri,
    /// Write-only credentials for the location.
    pub credentials: BTreeMap<String, Secret>,
    /// The logical database (PostgreSQL, MySQL); empty for the one the URI names.
    pub database_name: String,
    /// The compression asked for; `None` means from the URI's suffix (or, for a
    /// directory, the database's policy).
    pub compression: Option<Compression>,
    /// Idempotency key.
    pub request_id: Option<String>,
}

//! The `manifest.json` stored beside every backup's data.

use std::collections::BTreeMap;

use bytes::Bytes;
use sha2::Digest;

use super::snapshot::abort;
use super::{failure, manifest_key};
use crate::domain::{Backup, BackupPart, Failure, Timestamp};
use crate::storage::Storage;

/// What a backup holds, stored next to its data so that the bytes can be understood
/// (and verified) without the catalog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Manifest layout version.
    pub manifest_version: u32,
    /// The backup id.
    pub backup_id: String,
    /// The backup's name.
    pub name: String,
    /// The database id, empty for an unfiled import.
    pub database_id: String,
    /// The database's display name.
    pub instance_name: String,
    /// The engine (`redis`, `postgres`, `mysql`).
    pub engine: String,
    /// The server version that produced the data.
    pub server_version: String,
    /// The data format (`rdb`, ...).
    pub format: String,
    /// The format's own version (the RDB version).
    pub format_version: String,
    /// The compression of the data object (`zstd`, `gzip`, `none`).
    pub compression: String,
    /// The data object's key, relative to the destination.
    pub data_key: String,
    /// Size of the data object in bytes.
    pub size_bytes: u64,
    /// Size of the data before compression.
    pub logical_size_bytes: u64,
    /// Hex SHA-256 of the data object.
    pub sha256: String,
    /// Items (keys) in the snapshot, when known.
    pub items: u64,
    /// When the backup was asked for.
    pub create_time: Timestamp,
    /// When the snapshot started.
    pub start_time: Timestamp,
    /// When the data was committed.
    pub end_time: Timestamp,
    /// Engine-specific facts (e.g. how the data was transferred).
    pub details: BTreeMap<String, String>,
    /// For a whole-server backup: each logical database's object, size and checksum
    /// (then `data_key` and `sha256` are empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<BackupPart>,
    /// How the data objects are encrypted (after compression); absent when they are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// The Cellar version that wrote it.
    pub cellar_version: String,
}

/// A manifest's word on encryption: the scheme and whom to, never a key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Encryption {
    /// `age` (the standard format: `age -d -i <identity file>` decrypts an object).
    pub format: String,
    /// The age recipients (X25519 public keys) the objects are encrypted to.
    pub recipients: Vec<String>,
}

impl Manifest {
    /// The manifest of a finished backup.
    pub(super) fn of(
        backup: &Backup,
        data_key: String,
        format_version: String,
        items: u64,
        start_time: Timestamp,
        details: BTreeMap<String, String>,
    ) -> Self {
        Manifest {
            manifest_version: 1,
            backup_id: backup.id.to_string(),
            name: backup.name.to_string(),
            database_id: backup.database_id.map(|id| id.to_string()).unwrap_or_default(),
            instance_name: backup.instance_name.clone(),
            engine: backup.engine.as_str().to_owned(),
            server_version: backup.server_version.clone(),
            format: backup.format.clone(),
            format_version,
            compression: backup.compression.as_str().to_owned(),
            data_key,
            size_bytes: backup.size_bytes,
            logical_size_bytes: backup.logical_size_bytes,
            sha256: backup.sha256.clone(),
            items,
            create_time: backup.create_time,
            start_time,
            end_time: crate::domain::now(),
            details,
            parts: backup.parts.clone(),
            encryption: backup.encrypted().then(|| Encryption {
                format: "age".to_owned(),
                recipients: backup.age_recipients.iter().map(ToString::to_string).collect(),
            }),
            cellar_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Writes `manifest` beside the backup's data on `storage`; for a whole-server backup
/// its checksum becomes the backup's.
pub(super) async fn write_manifest(
    storage: &dyn Storage,
    backup: &mut Backup,
    manifest: &Manifest,
) -> Result<(), Failure> {
    let json = serde_json::to_vec_pretty(manifest).map_err(|error| failure::internal(&error))?;
    if !backup.parts.is_empty() {
        backup.sha256 = hex::encode(sha2::Sha256::digest(&json));
    }
    let mut writer =
        storage.writer(&manifest_key(backup)).await.map_err(|error| failure::from_storage(&error))?;
    if let Err(error) = writer.write(Bytes::from(json)).await {
        abort(writer).await;
        return Err(failure::from_storage(&error));
    }
    writer.commit().await.map_err(|error| failure::from_storage(&error))?;
    Ok(())
}

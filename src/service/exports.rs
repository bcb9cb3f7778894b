//! Taking a stored backup out: download links (ExportBackup), its bytes over gRPC
//! (DownloadBackup), and the objects the download listener's links name.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Cellar, DownloadBackup, Error, ExportBackup};
use crate::domain::{Backup, BackupId, BackupState, Invalid, Timestamp, reason};
use crate::download::chunks::{self, Chunk};
use crate::download::token::Claims;
use crate::storage::{self, Storage};

/// A download URL and what it downloads.
#[derive(Debug, Clone)]
pub struct ExportedBackup {
    /// The URL: presigned by the store, or a link of the download listener.
    pub download_url: url::Url,
    /// When it stops working.
    pub expire_time: Timestamp,
    /// The backup.
    pub backup: Backup,
}

/// A backup's bytes on their way, for DownloadBackup.
pub struct BackupDownload {
    /// The backup.
    pub backup: Backup,
    /// The object's chunks from the offset asked for, read ahead into a bounded channel.
    pub chunks: mpsc::Receiver<Result<Chunk, chunks::Error>>,
}

/// The one object a valid download link opens.
#[derive(Debug)]
pub struct LinkedObject {
    /// The backup it belongs to.
    pub backup_id: BackupId,
    /// Its key in the backup's destination.
    pub key: String,
    /// Its stored size.
    pub size: u64,
    /// The name a browser saves it under: the key's last segment.
    pub filename: String,
    /// The destination's store.
    pub storage: Arc<dyn Storage>,
}

/// One object of a backup, with what the catalog recorded about it.
struct Selected {
    key: String,
    /// `None` for the manifest of a whole-server backup (its size is not recorded).
    size: Option<u64>,
    sha256: String,
}

impl Cellar {
    /// A URL from which the backup's object (or one part's) can be fetched with a plain
    /// GET until the returned expiry: presigned by the store where it can, otherwise a
    /// signed link of the download listener.
    pub async fn export_backup(&self, request: ExportBackup) -> Result<ExportedBackup, Error> {
        let backup = self.ready_backup(request.backup_id).await?;
        let object = select(&backup, &request.database_name)?;
        let destination = self.store.get_destination(backup.destination_id).await?;
        let storage = self.open_storage(&destination)?;
        let ttl = Duration::from_secs(request.url_ttl.as_secs().max(1));
        let now = crate::domain::now();
        let expires = now.timestamp().saturating_add(ttl.as_secs() as i64);
        let expire_time = chrono::DateTime::from_timestamp(expires, 0).unwrap_or(now);

        match storage.presign_get(&object.key, ttl).await {
            Ok(Some(download_url)) => return Ok(ExportedBackup { download_url, expire_time, backup }),
            Ok(None) => {}
            // A store that has no way to sign (a GCS token without a signing key, say):
            // the listener's link serves as well.
            Err(error) => tracing::warn!(backup = %backup.id, %error, "cannot presign a download URL"),
        }
        let Some(links) = &self.links else {
            return Err(Error::FailedPrecondition {
                reason: reason::DOWNLOAD_UNAVAILABLE,
                message: format!(
                    "destination {} cannot presign download URLs and the download listener is off \
                     (see download_listen)",
                    destination.name
                ),
            });
        };
        let claims = Claims { backup_id: backup.id, object_key: object.key, expires };
        Ok(ExportedBackup { download_url: links.url(&claims), expire_time, backup })
    }

    /// The backup's stored bytes (or one part's) from `offset` on, streamed in chunks
    /// of at most 1 MiB; a read from the start is checked against the recorded SHA-256.
    pub async fn download_backup(&self, request: DownloadBackup) -> Result<BackupDownload, Error> {
        let backup = self.ready_backup(request.backup_id).await?;
        let object = select(&backup, &request.database_name)?;
        let destination = self.store.get_destination(backup.destination_id).await?;
        let storage = self.open_storage(&destination)?;
        let size = stored_size(storage.as_ref(), &backup, &object).await?;
        if request.offset > size {
            return Err(Error::OutOfRange(format!(
                "offset {} is past the end of the stored object ({size} bytes)",
                request.offset
            )));
        }
        let reader = storage
            .reader(&object.key, request.offset)
            .await
            .map_err(|error| storage_error(&backup, &error))?;
        let source = chunks::Source {
            body: reader.body,
            offset: request.offset,
            size,
            sha256: (request.offset == 0).then_some(object.sha256),
        };
        Ok(BackupDownload { backup, chunks: chunks::spawn(source) })
    }

    /// The object a download link's token names, if the token is genuine and unexpired
    /// and the backup still READY. Refusals: PermissionDenied for a bad token (or one
    /// naming an object that is not the backup's), NotFound or FailedPrecondition for a
    /// backup gone or no longer READY.
    pub async fn open_link(&self, token: &str) -> Result<LinkedObject, Error> {
        let Some(links) = &self.links else {
            return Err(Error::FailedPrecondition {
                reason: reason::DOWNLOAD_UNAVAILABLE,
                message: "the download listener is off".to_owned(),
            });
        };
        let now = crate::domain::now().timestamp();
        let claims = links.verify(token, now).map_err(|error| Error::PermissionDenied {
            reason: reason::DOWNLOAD_LINK_INVALID,
            message: error.to_string(),
        })?;
        let backup = self.ready_backup(claims.backup_id).await?;
        let Some(object) = select_key(&backup, &claims.object_key) else {
            return Err(Error::PermissionDenied {
                reason: reason::DOWNLOAD_LINK_INVALID,
                message: format!("the download link names no object of backup {}", backup.id),
            });
        };
        let destination = self.store.get_destination(backup.destination_id).await?;
        let storage = self.open_storage(&destination)?;
        let size = stored_size(storage.as_ref(), &backup, &object).await?;
        let filename = object.key.rsplit('/').next().unwrap_or(&object.key).to_owned();
        Ok(LinkedObject { backup_id: backup.id, key: object.key, size, filename, storage })
    }

    async fn ready_backup(&self, id: BackupId) -> Result<Backup, Error> {
        let backup = self.store.get_backup(id).await?;
        if backup.state != BackupState::Ready {
            return Err(Error::FailedPrecondition {
                reason: reason::BACKUP_NOT_READY,
                message: format!("backup {} is {}, not ready", backup.id, backup.state),
            });
        }
        Ok(backup)
    }
}

/// The object a request names: the backup's own (for a whole-server backup, its
/// manifest), or with `database_name` one part of a whole-server backup.
fn select(backup: &Backup, database_name: &str) -> Result<Selected, Error> {
    if database_name.is_empty() {
        let size = backup.parts.is_empty().then_some(backup.size_bytes);
        return Ok(Selected { key: backup.object_key.clone(), size, sha256: backup.sha256.clone() });
    }
    if backup.parts.is_empty() {
        let problem = format!("must be empty: backup {} is one object, not one per database", backup.id);
        return Err(Invalid::field("database_name", problem).into());
    }
    match backup.parts.iter().find(|part| part.database_name == database_name) {
        Some(part) => Ok(Selected {
            key: part.object_key.clone(),
            size: Some(part.size_bytes),
            sha256: part.sha256.clone(),
        }),
        None => {
            let held: Vec<&str> = backup.parts.iter().map(|part| part.database_name.as_str()).collect();
            let problem = format!(
                "backup {} holds the databases {}, not '{database_name}'",
                backup.id,
                held.join(", ")
            );
            Err(Invalid::field("database_name", problem).into())
        }
    }
}

/// The object of `backup` at `key`, if it is one of the backup's.
fn select_key(backup: &Backup, key: &str) -> Option<Selected> {
    if key == backup.object_key {
        return select(backup, "").ok();
    }
    let part = backup.parts.iter().find(|part| part.object_key == key)?;
    select(backup, &part.database_name).ok()
}

/// The object's size in the store, checked against the catalog's.
async fn stored_size(storage: &dyn Storage, backup: &Backup, object: &Selected) -> Result<u64, Error> {
    let meta = storage.stat(&object.key).await.map_err(|error| storage_error(backup, &error))?;
    let Some(meta) = meta else {
        return Err(Error::DataLoss(format!(
            "the stored object {} of backup {} is missing",
            object.key, backup.id
        )));
    };
    match object.size {
        Some(recorded) if recorded != meta.size => Err(Error::DataLoss(format!(
            "the stored object {} of backup {} is {} bytes, not the recorded {recorded}",
            object.key, backup.id, meta.size
        ))),
        _ => Ok(meta.size),
    }
}

fn storage_error(backup: &Backup, error: &storage::Error) -> Error {
    match error {
        storage::Error::NotFound { key } => {
            Error::DataLoss(format!("the stored object {key} of backup {} is missing", backup.id))
        }
        storage::Error::Denied { .. } => Error::FailedPrecondition {
            reason: reason::STORAGE_DENIED,
            message: format!("cannot read backup {}: {error}", backup.id),
        },
        _ => Error::StorageUnavailable {
            reason: reason::STORAGE_FAILED,
            message: format!("cannot read backup {}: {error}", backup.id),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BackupPart;

    fn part(name: &str) -> BackupPart {
        BackupPart {
            database_name: name.to_owned(),
            object_key: format!("srv/b/{name}.pgdump.zst"),
            uri: String::new(),
            size_bytes: 10,
            logical_size_bytes: 20,
            sha256: format!("sha-of-{name}"),
            items: 1,
        }
    }

    fn backup(parts: Vec<BackupPart>) -> Backup {
        let now = crate::domain::now();
        Backup {
            id: BackupId::new(),
            name: crate::domain::BackupName::parse("nightly").unwrap(),
            database_id: None,
            instance_name: "srv".to_owned(),
            database_name: String::new(),
            project_id: "default".to_owned(),
            engine: crate::domain::EngineKind::Postgres,
            server_version: "16".to_owned(),
            state: BackupState::Ready,
            size_bytes: 30,
            logical_size_bytes: 60,
            sha256: "sha-of-backup".to_owned(),
            compression: crate::domain::Compression::Zstd,
            format: "pg_custom".to_owned(),
            destination_id: crate::domain::DestinationId::new(),
            object_key: "srv/b/object".to_owned(),
            uri: String::new(),
            origin: crate::domain::BackupOrigin::OnDemand,
            create_time: now,
            update_time: now,
            expire_time: None,
            labels: crate::domain::Labels::new(),
            parts,
            age_recipients: Vec::new(),
        }
    }

    fn check(backup: &Backup, database_name: &str, expected: Result<(&str, Option<u64>, &str), &str>) {
        match (select(backup, database_name), expected) {
            (Ok(selected), Ok((key, size, sha256))) => {
                assert_eq!(
                    (selected.key.as_str(), selected.size, selected.sha256.as_str()),
                    (key, size, sha256)
                )
            }
            (Err(Error::Invalid(invalid)), Err(fragment)) => {
                assert_eq!(invalid.violations[0].field, "database_name");
                assert!(invalid.to_string().contains(fragment), "{invalid}");
            }
            (other, expected) => {
                panic!("{database_name:?}: got {:?}, expected {expected:?}", other.map(|s| s.key))
            }
        }
    }

    #[test]
    fn objects_of_a_backup() {
        let single = backup(Vec::new());
        check(&single, "", Ok(("srv/b/object", Some(30), "sha-of-backup")));
        check(&single, "orders", Err("must be empty"));
        let whole = backup(vec![part("orders"), part("users")]);
        check(&whole, "", Ok(("srv/b/object", None, "sha-of-backup")));
        check(&whole, "users", Ok(("srv/b/users.pgdump.zst", Some(10), "sha-of-users")));
        check(&whole, "billing", Err("holds the databases orders, users, not 'billing'"));

        assert_eq!(
            select_key(&whole, "srv/b/orders.pgdump.zst").map(|s| s.sha256),
            Some("sha-of-orders".into())
        );
        assert_eq!(select_key(&whole, "srv/b/object").map(|s| s.size), Some(None));
        assert!(select_key(&whole, "srv/other/object").is_none());
        assert!(select_key(&single, "srv/b/orders.pgdump.zst").is_none());
    }
}

//! The jobs the operations manager runs: one file per kind of work.
//!
//! A job owns its side effects: it writes objects only through a `Storage` writer that
//! it commits last, records the outcome in the catalog, and undoes half-done work when
//! it fails or is cancelled.

mod backup;
mod delete;
mod failure;
mod import;
mod manifest;
mod restore;

pub use backup::BackupJob;
pub use delete::DeleteBackupJob;
pub use import::{ImportJob, ImportSource, SourceFile};
pub use manifest::Manifest;
pub use restore::RestoreJob;

/// The object key of a backup's data: `<database>/<backup>/dump.<format><ext>`.
pub fn data_key(backup: &crate::domain::Backup) -> String {
    format!("{}/dump.{}{}", backup_prefix(backup), backup.format, backup.compression.extension())
}

/// The object key of a backup's manifest, beside its data.
pub fn manifest_key(backup: &crate::domain::Backup) -> String {
    format!("{}/manifest.json", backup_prefix(backup))
}

fn backup_prefix(backup: &crate::domain::Backup) -> String {
    let owner = backup.database_id.map_or_else(|| "imported".to_owned(), |id| id.to_string());
    format!("{owner}/{}", backup.id)
}

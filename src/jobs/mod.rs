//! The jobs the operations manager runs: one file per kind of work.
//!
//! A job owns its side effects: it writes objects only through a `Storage` writer that
//! it commits last, records the outcome in the catalog, and undoes half-done work when
//! it fails or is cancelled.

mod backup;
mod delete;
mod export;
mod failure;
mod import;
mod import_archive;
mod manifest;
mod restore;
mod snapshot;

pub use backup::{BackupJob, BackupSource};
pub use delete::DeleteBackupJob;
pub use export::ExportJob;
pub use import::{ImportJob, ImportPlaces, ImportSource, SourceFile};
pub use import_archive::ImportArchiveJob;
pub use manifest::Manifest;
pub use restore::RestoreJob;

/// The object key of a backup's data on its store:
/// `<database name>/<backup id>/<backup name>.<format><ext>`, the name's separators
/// written `-` (`orders/6f1c…/backup-2026-11-21T05-50-12Z.rdb.zst`), so that a store
/// can be browsed by database and backup without the catalog.
pub fn data_key(backup: &crate::domain::Backup) -> String {
    format!(
        "{}/{}.{}{}",
        backup_prefix(backup),
        file_stem(backup.name.as_str()),
        format_extension(&backup.format),
        backup.compression.extension()
    )
}

/// The object key of one logical database's data in a whole-server backup:
/// `<database name>/<backup id>/<logical database>.<format><ext>`, the logical name
/// percent-encoded where it holds anything but letters, digits, `-`, `_` and `.`.
pub fn part_key(backup: &crate::domain::Backup, database_name: &str) -> String {
    const KEPT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');
    format!(
        "{}/{}.{}{}",
        backup_prefix(backup),
        percent_encoding::utf8_percent_encode(database_name, KEPT),
        format_extension(&backup.format),
        backup.compression.extension()
    )
}

/// The name of an export written into a directory: `<database name>-<time>.<format><ext>`
/// (`orders-2026-11-21T05-50-12Z.pgdump.zst`), separators written `-`.
pub fn export_file_name(
    instance_name: &str,
    time: crate::domain::Timestamp,
    format: &str,
    compression: crate::domain::Compression,
) -> String {
    format!(
        "{}-{}.{}{}",
        file_stem(instance_name),
        time.format("%Y-%m-%dT%H-%M-%SZ"),
        format_extension(format),
        compression.extension()
    )
}

/// The directory (key prefix) holding every object of a backup.
pub fn backup_dir(backup: &crate::domain::Backup) -> String {
    match backup.object_key.rsplit_once('/') {
        Some((dir, _)) => dir.to_owned(),
        None if backup.object_key.is_empty() => backup_prefix(backup),
        None => String::new(),
    }
}

/// The file extension of a data format (`rdb`, `pgdump`, `sql`).
fn format_extension(format: &str) -> &str {
    match format {
        "pg_custom" => "pgdump",
        "mysql_sql" | "pg_sql" => "sql",
        other => other,
    }
}

/// The object key of a backup's manifest, beside its data.
pub fn manifest_key(backup: &crate::domain::Backup) -> String {
    format!("{}/manifest.json", backup_prefix(backup))
}

/// The keys of a stored backup's objects, data first and the manifest last: from its
/// recorded keys (whatever layout they were written with), or the current layout if
/// none was recorded.
pub fn stored_keys(backup: &crate::domain::Backup) -> Vec<String> {
    if backup.object_key.is_empty() {
        return vec![data_key(backup), manifest_key(backup)];
    }
    let manifest = match backup.object_key.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/manifest.json"),
        None => "manifest.json".to_owned(),
    };
    let mut keys: Vec<String> = backup.parts.iter().map(|part| part.object_key.clone()).collect();
    if backup.object_key != manifest {
        keys.push(backup.object_key.clone());
    }
    keys.push(manifest);
    keys
}

fn backup_prefix(backup: &crate::domain::Backup) -> String {
    let owner = if backup.instance_name.is_empty() { "imported" } else { backup.instance_name.as_str() };
    format!("{owner}/{}", backup.id)
}

/// A backup name as one key segment: letters and digits kept, each separator (`-`,
/// space, `/`, `:`) written `-`.
fn file_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_database_and_the_backup() {
        assert_eq!(file_stem("backup-2026-11-21T05:50:12Z"), "backup-2026-11-21T05-50-12Z");
        assert_eq!(file_stem("nightly run/1"), "nightly-run-1");
        assert_eq!(format_extension("pg_custom"), "pgdump");
        assert_eq!(format_extension("rdb"), "rdb");
        let time = chrono::DateTime::parse_from_rfc3339("2026-11-21T05:50:12Z").unwrap().to_utc();
        assert_eq!(
            export_file_name("orders db", time, "pg_custom", crate::domain::Compression::Zstd),
            "orders-db-2026-11-21T05-50-12Z.pgdump.zst"
        );
    }
}

//! The closed sets of the domain: engines, compressions, states, origins and kinds.
//!
//! Each enum has a stable lowercase text form (`as_str`), used by the catalog and by
//! manifests, and parses both that form and the API's prefixed name
//! (`BACKUP_STATE_READY`), so that list filters accept either.

macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $api_prefix:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable lowercase text form.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the text form or the API's prefixed enum name, case-insensitively.
            pub fn parse(text: &str) -> Option<Self> {
                let upper = text.trim().to_ascii_uppercase();
                let bare = upper.strip_prefix($api_prefix).unwrap_or(&upper);
                Self::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str().eq_ignore_ascii_case(bare))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// A database engine Cellar can back up.
    EngineKind, "ENGINE_", {
        /// Redis (and compatible servers speaking the replication protocol).
        Redis => "redis",
        /// PostgreSQL.
        Postgres => "postgres",
        /// MySQL or MariaDB.
        Mysql => "mysql",
    }
);

impl EngineKind {
    /// The connection URI schemes this engine accepts.
    pub fn uri_schemes(&self) -> &'static [&'static str] {
        match self {
            EngineKind::Redis => &["redis", "rediss"],
            EngineKind::Postgres => &["postgres", "postgresql"],
            EngineKind::Mysql => &["mysql", "mariadb"],
        }
    }
}

text_enum!(
    /// How stored backup bytes are compressed.
    Compression, "COMPRESSION_", {
        /// Zstandard (the default).
        Zstd => "zstd",
        /// gzip.
        Gzip => "gzip",
        /// Stored as the engine produced it.
        None => "none",
    }
);

impl Compression {
    /// The file-name suffix of a stored object with this compression (`.zst`, `.gz`, ``).
    pub fn extension(&self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::None => "",
        }
    }
}

text_enum!(
    /// Where a backup is in its life.
    BackupState, "BACKUP_STATE_", {
        /// Being written; not restorable.
        Creating => "creating",
        /// Complete, verified and restorable.
        Ready => "ready",
        /// The backup did not complete; no restorable data exists.
        Failed => "failed",
        /// Its objects are being removed.
        Deleting => "deleting",
    }
);

text_enum!(
    /// Why a backup exists.
    BackupOrigin, "BACKUP_ORIGIN_", {
        /// Asked for with CreateBackup.
        OnDemand => "on_demand",
        /// Taken by the scheduler.
        Scheduled => "scheduled",
        /// Brought in with ImportBackup.
        Imported => "imported",
    }
);

text_enum!(
    /// What a long-running operation does.
    OperationKind, "OPERATION_KIND_", {
        /// Snapshot a database into a backup.
        Backup => "backup",
        /// Load a backup into a database.
        Restore => "restore",
        /// Load external data into a registered database.
        ImportDatabase => "import_database",
        /// Bring external data into the catalog as a backup.
        ImportBackup => "import_backup",
        /// Snapshot a database to an arbitrary location.
        ExportDatabase => "export_database",
        /// Remove a backup's objects and record.
        DeleteBackup => "delete_backup",
    }
);

impl OperationKind {
    /// Whether operations of this kind take one of the deployment's snapshot slots
    /// (`max_concurrent_backups`).
    pub fn uses_backup_slot(&self) -> bool {
        matches!(self, OperationKind::Backup | OperationKind::ExportDatabase | OperationKind::ImportBackup)
    }

    /// Whether operations of this kind hold their database exclusively while queued or
    /// running (a second one on the same database is refused as busy).
    pub fn locks_database(&self) -> bool {
        !matches!(self, OperationKind::DeleteBackup | OperationKind::ImportBackup)
    }
}

text_enum!(
    /// The life cycle of an operation. `Succeeded`, `Failed` and `Cancelled` are final.
    OperationState, "OPERATION_STATE_", {
        /// Waiting for a slot.
        Queued => "queued",
        /// Working.
        Running => "running",
        /// Cancel asked for; stopping.
        Cancelling => "cancelling",
        /// Finished; the response is set.
        Succeeded => "succeeded",
        /// Finished; the error is set.
        Failed => "failed",
        /// Stopped by a cancel; the error has code CANCELLED.
        Cancelled => "cancelled",
    }
);

impl OperationState {
    /// Whether the state is final.
    pub fn is_done(&self) -> bool {
        matches!(self, OperationState::Succeeded | OperationState::Failed | OperationState::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_text_and_api_names() {
        assert_eq!(BackupState::parse("ready"), Some(BackupState::Ready));
        assert_eq!(BackupState::parse("BACKUP_STATE_READY"), Some(BackupState::Ready));
        assert_eq!(BackupState::parse("READY"), Some(BackupState::Ready));
        assert_eq!(BackupState::parse("BACKUP_STATE_UNSPECIFIED"), None);
        assert_eq!(BackupOrigin::parse("BACKUP_ORIGIN_ON_DEMAND"), Some(BackupOrigin::OnDemand));
        assert_eq!(OperationKind::parse("OPERATION_KIND_DELETE_BACKUP"), Some(OperationKind::DeleteBackup));
        assert_eq!(EngineKind::parse("ENGINE_REDIS"), Some(EngineKind::Redis));
        assert_eq!(Compression::parse("none"), Some(Compression::None));
    }
}

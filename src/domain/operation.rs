//! Long-running operations: state, progress and result.

use std::time::Duration;

use super::{
    Backup, BackupId, Compression, DatabaseId, Failure, OperationId, OperationKind, OperationState, Timestamp,
};

/// Progress of an operation, one shape for every kind. Zero totals mean "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// Bytes moved so far.
    pub bytes_done: u64,
    /// Bytes expected in all; 0 when unknown.
    pub bytes_total: u64,
    /// Items (keys, rows, tables) done.
    pub items_done: u64,
    /// Items expected in all; 0 when unknown.
    pub items_total: u64,
    /// Recent throughput.
    pub bytes_per_second: u64,
    /// What the items are.
    #[serde(default)]
    pub items_unit: ItemsUnit,
}

/// What an operation's items count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemsUnit {
    /// Redis keys.
    #[default]
    Keys,
    /// PostgreSQL or MySQL tables.
    Tables,
}

impl ItemsUnit {
    /// The unit as the API names it (`keys`, `tables`).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemsUnit::Keys => "keys",
            ItemsUnit::Tables => "tables",
        }
    }

    /// The unit of an engine's items.
    pub fn of(engine: super::EngineKind) -> ItemsUnit {
        match engine {
            super::EngineKind::Redis => ItemsUnit::Keys,
            super::EngineKind::Postgres | super::EngineKind::Mysql => ItemsUnit::Tables,
        }
    }
}

impl Progress {
    /// Completion in percent (0-100), from bytes when their total is known, else items.
    pub fn percent(&self) -> f64 {
        let ratio = |done: u64, total: u64| (done as f64 / total as f64).min(1.0) * 100.0;
        match (self.bytes_total, self.items_total) {
            (0, 0) => 0.0,
            (0, items_total) => ratio(self.items_done, items_total),
            (bytes_total, _) => ratio(self.bytes_done, bytes_total),
        }
    }

    /// Estimated time left, when the total and the rate are known.
    pub fn eta(&self) -> Option<Duration> {
        if self.bytes_total == 0 || self.bytes_per_second == 0 {
            return None;
        }
        let left = self.bytes_total.saturating_sub(self.bytes_done);
        Some(Duration::from_secs_f64(left as f64 / self.bytes_per_second as f64))
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RestoreResult {
    /// The backup restored.
    pub backup_id: Option<BackupId>,
    /// The database loaded.
    pub database_id: Option<DatabaseId>,
    /// Logical database loaded, where the engine has them.
    pub database_name: String,
    /// Bytes read from the backup.
    pub bytes: u64,
    /// Items (keys, rows) loaded.
    pub items: u64,
    /// How the data went in, where the engine has several ways (Redis: `replication`
    /// or `restore`).
    #[serde(default)]
    pub load_method: String,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ImportResult {
    /// The database loaded, for ImportDatabase.
    pub database_id: Option<DatabaseId>,
    /// The backup created, for ImportBackup.
    pub backup_id: Option<BackupId>,
    /// The sources read (redacted).
    pub source_uris: Vec<String>,
    /// Bytes read.
    pub bytes: u64,
    /// Items (keys, rows) loaded.
    pub items: u64,
    /// How the data went in, where the engine has several ways (Redis: `replication`
    /// or `restore`).
    #[serde(default)]
    pub load_method: String,
    /// The logical databases loaded, where the engine has them.
    #[serde(default)]
    pub database_names: Vec<String>,
    /// Bytes after decompression: loaded, or stored in the new backup before its
    /// compression.
    #[serde(default)]
    pub logical_bytes: u64,
    /// The new backup, READY, for ImportBackup.
    #[serde(default)]
    pub backup: Option<Box<super::Backup>>,
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ExportResult {
    /// The database exported.
    pub database_id: Option<DatabaseId>,
    /// Where the data went (redacted).
    pub export_uri: String,
    /// Bytes written (as stored).
    pub size_bytes: u64,
    /// Bytes before compression.
    pub logical_size_bytes: u64,
    /// Hex SHA-256 of the written bytes.
    pub sha256: String,
    /// The logical database exported, where the engine has them.
    #[serde(default)]
    pub database_name: String,
    /// The compression of the written object.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// The data format before compression (`rdb`, `pg_custom`, `mysql_sql`).
    #[serde(default)]
    pub format: String,
    /// Items (keys, tables) written.
    #[serde(default)]
    pub items: u64,
    /// The version of the server the snapshot came from.
    #[serde(default)]
    pub server_version: String,
}

/// The result of a successful operation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationResult {
    /// A backup created (or, for a delete, the backup as it was).
    Backup(Box<Backup>),
    /// A restore finished.
    Restore(RestoreResult),
    /// An import finished.
    Import(ImportResult),
    /// An export finished.
    Export(ExportResult),
}

/// A long-running operation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Operation {
    /// Server-assigned id.
    pub id: OperationId,
    /// What it does.
    pub kind: OperationKind,
    /// Where it is in its life.
    pub state: OperationState,
    /// Free-text phase (`queued`, `connecting`, `snapshotting`, ...).
    pub phase: String,
    /// The database it works on, if any.
    pub database_id: Option<DatabaseId>,
    /// The backup it creates, reads or deletes, if any.
    pub backup_id: Option<BackupId>,
    /// How far it got.
    pub progress: Progress,
    /// Position in the admission queue while queued (1 is next); 0 otherwise.
    pub queue_position: u32,
    /// When it was submitted.
    pub create_time: Timestamp,
    /// When it started running.
    pub start_time: Option<Timestamp>,
    /// When anything about it last changed.
    pub update_time: Timestamp,
    /// When it finished.
    pub end_time: Option<Timestamp>,
    /// When a cancel was asked for.
    pub cancel_time: Option<Timestamp>,
    /// Problems that did not stop it.
    pub warnings: Vec<Failure>,
    /// The idempotency key it was created with.
    pub request_id: Option<String>,
    /// Why it failed or was cancelled.
    pub error: Option<Failure>,
    /// What it produced.
    pub result: Option<OperationResult>,
}

impl Operation {
    /// A new queued operation.
    pub fn queued(
        kind: OperationKind,
        database_id: Option<DatabaseId>,
        backup_id: Option<BackupId>,
        request_id: Option<String>,
    ) -> Self {
        let now = super::now();
        Operation {
            id: OperationId::new(),
            kind,
            state: OperationState::Queued,
            phase: "queued".to_owned(),
            database_id,
            backup_id,
            progress: Progress::default(),
            queue_position: 0,
            create_time: now,
            start_time: None,
            update_time: now,
            end_time: None,
            cancel_time: None,
            warnings: Vec::new(),
            request_id,
            error: None,
            result: None,
        }
    }

    /// Whether the operation has finished.
    pub fn is_done(&self) -> bool {
        self.state.is_done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_prefers_bytes() {
        let progress = Progress {
            bytes_done: 50,
            bytes_total: 200,
            items_done: 9,
            items_total: 10,
            bytes_per_second: 25,
            items_unit: ItemsUnit::Keys,
        };
        assert_eq!(progress.percent(), 25.0);
        assert_eq!(progress.eta(), Some(Duration::from_secs(6)));
        let items_only = Progress { items_done: 1, items_total: 4, ..Progress::default() };
        assert_eq!(items_only.percent(), 25.0);
        assert_eq!(Progress::default().percent(), 0.0);
    }
}

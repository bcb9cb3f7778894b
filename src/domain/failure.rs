//! Why an operation failed: a gRPC-compatible code, a message and a stable reason.

use std::collections::BTreeMap;

/// The canonical status codes (the numbers of `google.rpc.Code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[allow(missing_docs)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The code with this number; unknown numbers become `Unknown`.
    pub fn from_i32(number: i32) -> Code {
        use Code::*;
        const ALL: [Code; 17] = [
            Ok,
            Cancelled,
            Unknown,
            InvalidArgument,
            DeadlineExceeded,
            NotFound,
            AlreadyExists,
            PermissionDenied,
            ResourceExhausted,
            FailedPrecondition,
            Aborted,
            OutOfRange,
            Unimplemented,
            Internal,
            Unavailable,
            DataLoss,
            Unauthenticated,
        ];
        ALL.into_iter().find(|code| *code as i32 == number).unwrap_or(Unknown)
    }
}

/// Stable machine-readable reasons carried by failures and RPC errors.
pub mod reason {
    /// The database already runs a data operation.
    pub const DATABASE_BUSY: &str = "DATABASE_BUSY";
    /// The database server could not be reached or the connection broke.
    pub const SOURCE_UNREACHABLE: &str = "SOURCE_UNREACHABLE";
    /// The database a restore or import loads into could not be reached, or its
    /// connection broke.
    pub const TARGET_UNREACHABLE: &str = "TARGET_UNREACHABLE";
    /// The database server refused the credentials.
    pub const AUTH_FAILED: &str = "AUTH_FAILED";
    /// An import source (a file or URL) does not exist.
    pub const SOURCE_NOT_FOUND: &str = "SOURCE_NOT_FOUND";
    /// The storage or server holding the data refused the credentials (HTTP 401, 403).
    pub const STORAGE_DENIED: &str = "STORAGE_DENIED";
    /// The URL's host is, or resolves to, an internal address not on the allow-list.
    pub const URL_NOT_ALLOWED: &str = "URL_NOT_ALLOWED";
    /// The data read is not what it claims to be (bad magic, checksum mismatch, truncated).
    pub const SOURCE_CORRUPT: &str = "SOURCE_CORRUPT";
    /// The data holds values of a module type the target does not load (or that cannot
    /// be sent the way the load goes).
    pub const MODULE_NOT_SUPPORTED: &str = "MODULE_NOT_SUPPORTED";
    /// The target server is too old for the data.
    pub const TARGET_TOO_OLD: &str = "TARGET_TOO_OLD";
    /// The data has keys in a numbered database the target does not have (Redis: a
    /// `databases` setting lower than the source's, or a cluster node, which has only 0).
    pub const TARGET_TOO_FEW_DATABASES: &str = "TARGET_TOO_FEW_DATABASES";
    /// The operation was cancelled.
    pub const CANCELLED: &str = "CANCELLED";
    /// The server stopped while the operation ran.
    pub const INTERRUPTED: &str = "INTERRUPTED";
    /// Writing to or reading from the destination failed.
    pub const STORAGE_FAILED: &str = "STORAGE_FAILED";
    /// The engine is not supported yet for this kind of operation.
    pub const ENGINE_NOT_SUPPORTED: &str = "ENGINE_NOT_SUPPORTED";
    /// The destination's scheme has no storage backend yet.
    pub const DESTINATION_NOT_SUPPORTED: &str = "DESTINATION_NOT_SUPPORTED";
    /// The destination's settings cannot be used (an option or credential the store
    /// refuses, an account missing from the environment).
    pub const DESTINATION_INVALID: &str = "DESTINATION_INVALID";
    /// A resource the operation needs no longer exists.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The server shut down before a queued operation started.
    pub const SHUTTING_DOWN: &str = "SHUTTING_DOWN";
    /// An unexpected internal error; the server log has the details.
    pub const INTERNAL: &str = "INTERNAL";
    /// A warning: a Redis target was not loaded by replication (it could not take it),
    /// but with `RESTORE` commands.
    pub const REPLICATION_DECLINED: &str = "REPLICATION_DECLINED";
    /// A tool the engine drives (`pg_dump`, `mariadb-dump`, ...) is not installed.
    pub const TOOL_NOT_FOUND: &str = "TOOL_NOT_FOUND";
    /// The installed tools are older than the database server or the data (an archive
    /// from a newer pg_dump; a psql without restricted mode for SQL files).
    pub const TOOL_TOO_OLD: &str = "TOOL_TOO_OLD";
    /// The logical database named does not exist on the server (or in the backup).
    pub const DATABASE_NOT_FOUND: &str = "DATABASE_NOT_FOUND";
    /// The target refused the data part-way through the load; the target was left as
    /// it was.
    pub const RESTORE_FAILED: &str = "RESTORE_FAILED";
    /// The backup is not READY (being created, deleted, or failed).
    pub const BACKUP_NOT_READY: &str = "BACKUP_NOT_READY";
    /// The backup's store cannot presign a URL and the download listener is off.
    pub const DOWNLOAD_UNAVAILABLE: &str = "DOWNLOAD_UNAVAILABLE";
    /// A download link that is malformed, tampered with, signed under another key or
    /// expired.
    pub const DOWNLOAD_LINK_INVALID: &str = "DOWNLOAD_LINK_INVALID";
    /// A READY backup's stored object is missing, or no longer matches its recorded
    /// size or checksum.
    pub const BACKUP_OBJECT_DAMAGED: &str = "BACKUP_OBJECT_DAMAGED";
    /// An archive is in no format Cellar reads, or not in the one its request names
    /// (`engine`, or the engine of the database it is filed under).
    pub const FORMAT_UNKNOWN: &str = "FORMAT_UNKNOWN";
    /// The data is age-encrypted and the server holds no identity that decrypts it
    /// (`age_identity_file`).
    pub const DECRYPTION_KEY_MISSING: &str = "DECRYPTION_KEY_MISSING";
}

/// A failure of an operation (or a warning attached to one).
///
/// Messages never contain secrets: builders of failures pass redacted text only.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// The status code.
    pub code: Code,
    /// A lowercase human-readable message naming what failed.
    pub message: String,
    /// A stable UPPER_SNAKE_CASE reason from [`reason`].
    pub reason: String,
    /// Extra machine-readable facts (e.g. `database_id`).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Failure {
    /// A failure with no metadata.
    pub fn new(code: Code, reason: &str, message: impl Into<String>) -> Self {
        Failure { code, message: message.into(), reason: reason.to_owned(), metadata: BTreeMap::new() }
    }

    /// The failure of a cancelled operation.
    pub fn cancelled() -> Self {
        Failure::new(Code::Cancelled, reason::CANCELLED, "operation cancelled")
    }

    /// Adds one metadata entry.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.reason)
    }
}

impl std::error::Error for Failure {}

//! Database engines: they move bytes between a live database and a stream, and never
//! touch storage or the catalog.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use tokio::io::AsyncRead;

use crate::domain::{Code, ConnectionUri, EngineKind, reason};

pub mod detect;
pub mod journal;
pub mod lines;
pub mod mysql;
pub mod postgres;
pub mod recover;
pub mod redis;
pub mod sql;
/// Throwaway PostgreSQL and MariaDB servers; shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/support/sql_servers/mod.rs"]
pub(crate) mod sql_servers;
pub mod tool;
pub mod tool_buffer;
pub mod tool_versions;

/// An engine failure; the message never contains a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached, or the connection broke mid-way.
    #[error("{0}")]
    Unreachable(String),
    /// The server refused the credentials.
    #[error("{0}")]
    AuthFailed(String),
    /// The data is not what it claims to be (bad magic, checksum mismatch, truncated).
    #[error("{0}")]
    Corrupt(String),
    /// The server answered something the protocol does not allow.
    #[error("{0}")]
    Protocol(String),
    /// The data holds values of a module the target does not have.
    #[error("{0}")]
    ModuleNotSupported(String),
    /// The target server cannot read data this new.
    #[error("{0}")]
    TargetTooOld(String),
    /// The data uses numbered databases the target does not have.
    #[error("{0}")]
    TooFewDatabases(String),
    /// The engine cannot do this (e.g. not implemented for this engine yet).
    #[error("{0}")]
    Unsupported(String),
    /// A tool the engine drives (`pg_dump`, `mariadb-dump`, ...) is not installed; the
    /// message says how to install it.
    #[error("{0}")]
    ToolNotFound(String),
    /// The tools installed are older than the server; the message names the versions
    /// found and needed.
    #[error("{0}")]
    ToolTooOld(String),
    /// The logical database asked for does not exist on the server.
    #[error("{0}")]
    DatabaseNotFound(String),
    /// Loading failed part-way (a statement the target refused); the message is the
    /// tool's own, secrets removed.
    #[error("{0}")]
    RestoreFailed(String),
}

impl Error {
    /// The gRPC code and stable reason operations report for this error.
    pub fn code_and_reason(&self) -> (Code, &'static str) {
        match self {
            Error::Unreachable(_) => (Code::Unavailable, reason::SOURCE_UNREACHABLE),
            Error::AuthFailed(_) => (Code::PermissionDenied, reason::AUTH_FAILED),
            Error::Corrupt(_) => (Code::DataLoss, reason::SOURCE_CORRUPT),
            Error::Protocol(_) => (Code::Internal, reason::SOURCE_CORRUPT),
            Error::ModuleNotSupported(_) => (Code::FailedPrecondition, reason::MODULE_NOT_SUPPORTED),
            Error::TargetTooOld(_) => (Code::FailedPrecondition, reason::TARGET_TOO_OLD),
            Error::TooFewDatabases(_) => (Code::FailedPrecondition, reason::TARGET_TOO_FEW_DATABASES),
            Error::Unsupported(_) => (Code::FailedPrecondition, reason::ENGINE_NOT_SUPPORTED),
            Error::ToolNotFound(_) => (Code::FailedPrecondition, reason::TOOL_NOT_FOUND),
            Error::ToolTooOld(_) => (Code::FailedPrecondition, reason::TOOL_TOO_OLD),
            Error::DatabaseNotFound(_) => (Code::NotFound, reason::DATABASE_NOT_FOUND),
            Error::RestoreFailed(_) => (Code::FailedPrecondition, reason::RESTORE_FAILED),
        }
    }
}

/// A snapshot being taken: facts known up front, and the byte stream.
///
/// The body yields the engine's native backup format, byte for byte. A body read fails
/// with an `std::io::Error` whose inner error (`get_ref`) is an [`Error`] when the data is
/// corrupt or the connection breaks; it ends (`Ok(0)`) only after the data was verified
/// complete (e.g. the RDB's CRC64 trailer matched).
pub struct Snapshot {
    /// The server's version (`7.2.4`).
    pub server_version: String,
    /// The data format: `rdb`, `pg_custom`, `mysql_sql`.
    pub format: &'static str,
    /// The format's own version (the RDB version, `11`), when known.
    pub format_version: String,
    /// Bytes the body will yield, exact or estimated; `None` when unknown.
    pub bytes_total: Option<u64>,
    /// Whether `bytes_total` is exact.
    pub bytes_total_exact: bool,
    /// Items (keys, rows) in the snapshot, when known.
    pub items_total: Option<u64>,
    /// Extra facts for the manifest (e.g. `transfer: diskless`).
    pub details: BTreeMap<String, String>,
    /// Items (tables, ...) dumped so far, for engines that can tell while the data
    /// flows.
    pub items_done: Option<Arc<AtomicU64>>,
    /// Whether a tool on this host produces the data (`pg_dump`, `mariadb-dump`): it
    /// then needs this host's cores itself, and the data is compressed on one thread.
    pub produced_here: bool,
    /// The data.
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("server_version", &self.server_version)
            .field("format", &self.format)
            .field("format_version", &self.format_version)
            .field("bytes_total", &self.bytes_total)
            .field("items_total", &self.items_total)
            .finish_non_exhaustive()
    }
}

/// Reports the phase of a snapshot as it advances (`connecting`, `snapshotting`, ...).
pub type PhaseSink<'a> = &'a (dyn Fn(&'static str) + Send + Sync);

/// Reports a load's progress: bytes of the data file read, items loaded, items in all.
pub type ProgressSink<'a> = &'a (dyn Fn(u64, u64, u64) + Send + Sync);

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Keys (rows, ...) loaded.
    pub items: u64,
    /// Function libraries loaded.
    pub functions: u64,
    /// How the data went in: for Redis, `replication` or `restore`.
    pub method: &'static str,
    /// Problems that did not stop the load, or choices the caller should know of.
    pub warnings: Vec<Warning>,
}

/// Something a load reports without failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// A stable reason (`crate::domain::reason`).
    pub reason: &'static str,
    /// What happened, for people; never holds a secret.
    pub message: String,
}

/// The data a load reads: spooled files, or one stream read once.
pub enum LoadData<'a> {
    /// Files on local disk, loaded in order (the engine's native format,
    /// decompressed), each already read whole and checked (its SHA-256) by the caller:
    /// the way for several parts that must all be checked before any is loaded.
    Files(&'a [std::path::PathBuf]),
    /// One stream of the data, read once; see [`DataStream`].
    Stream(DataStream<'a>),
}

/// The data of one object as a stream, checked as it flows (SHA-256 of the stored
/// bytes, decompression).
///
/// Contract:
/// - The body ends (`Ok(0)`) only once the whole source was read and checked. An engine
///   replaces its target's data only after it read the body to that end, and after its
///   own checks of the data passed.
/// - A read error means the source failed (damage, a checksum mismatch, the source
///   lost). The caller owns the stream and knows why, so the engine only has to stop:
///   kill its tool, drop what it prepared (a scratch database), and return an error,
///   leaving the target as it was.
/// - The engine may stop reading early (its own check refused the data, the target
///   failed); the caller then reads the rest to tell damaged data from a refusal.
pub struct DataStream<'a> {
    /// The decompressed data.
    pub body: &'a mut (dyn AsyncRead + Send + Unpin),
    /// Where an engine that needs the data whole on local disk (Redis: the check before
    /// the flush, a replication transfer) may write it, in `spool-*` files it removes
    /// when the load ends.
    pub spool_dir: &'a std::path::Path,
    /// Set when the data is known good before it is read: the stored bytes were proven
    /// by their SHA-256, before the first of them was given, to be a backup whose data
    /// was checked whole when it was made. Its decompressed length, which the stream
    /// must have. (An engine still reads it as hostile; this only lets it start loading
    /// before it has read the end.) Set only with `from_catalog`.
    pub checked_length: Option<u64>,
    /// Whether the data is a backup from the catalog: checked whole when it entered it
    /// (Redis: written by a server, or searched for a key held twice when it was
    /// imported), and the stream ends only once the stored bytes matched their SHA-256.
    /// An engine need not repeat the searches made then.
    pub from_catalog: bool,
    /// Set when the data can be read again from its start, decompressed anew from the
    /// same proven stored bytes (a backup's local copy, kept for the whole load): an
    /// engine that may need the data again (Redis: a streamed load that falls back to
    /// the usual way) reads it again rather than keeping it decompressed on disk as it
    /// goes. Set only with `checked_length`.
    pub reread: Option<Arc<dyn Reread>>,
}

/// Reads a stream's data again: see [`DataStream::reread`].
#[async_trait]
pub trait Reread: Send + Sync {
    /// The decompressed data from its first byte.
    async fn reopen(&self) -> Result<Box<dyn AsyncRead + Send + Unpin>, Error>;
}

/// What [`Engine::check_file`] found in a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedFile {
    /// The data format: `rdb`, `pg_custom`, `pg_sql`, `mysql_sql`.
    pub format: &'static str,
    /// The format's own version (the RDB version, the archive version), when known.
    pub format_version: String,
    /// The version of the server that wrote it, when the file says.
    pub server_version: String,
    /// Items (keys, tables) in it, when known.
    pub items: u64,
}

/// A database engine.
#[async_trait]
pub trait Engine: Send + Sync {
    /// The engine this is.
    fn kind(&self) -> EngineKind;

    /// Finds what the engine needs before its first operation (its tools and their
    /// versions, which are remembered), so that the first backup does not wait for it;
    /// returns the tools found, for the start-up log. Never fails: a tool that is
    /// missing fails the operation that needs it, with how to install it.
    async fn prepare(&self) -> Vec<tool::Tool> {
        Vec::new()
    }

    /// The logical databases of the server at `uri` that a whole-server backup holds
    /// (templates and system schemas left out), sorted; empty for engines without
    /// separate logical databases (Redis: one snapshot holds them all).
    async fn databases(&self, _uri: &ConnectionUri) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    /// Starts a snapshot of the server at `uri` (of its logical `database`, default the
    /// one the URI names, for engines that have them), returning once the data starts
    /// flowing. Cancel-safe: dropping the future or the returned body stops the
    /// transfer (a dump tool is killed).
    async fn snapshot(
        &self,
        uri: &ConnectionUri,
        database: Option<&str>,
        phase: PhaseSink<'_>,
    ) -> Result<Snapshot, Error>;

    /// Checks a data file (this engine's native format, decompressed) whole, as a load
    /// checks its data before it touches a target, without any server: read to its end,
    /// its checksums and structure verified. What an archive goes through before it
    /// enters the catalog.
    async fn check_file(&self, path: &std::path::Path) -> Result<CheckedFile, Error>;

    /// Whether this engine's loads gain from a [`DataStream::checked_length`] stream, which
    /// can be read again ([`DataStream::reread`]): the caller then proves the stored bytes
    /// first, at the cost of a pass over them, and keeps them for the load.
    fn prefers_checked_stream(&self) -> bool {
        false
    }

    /// Replaces the data of the server at `uri` (of its logical `database`, default the
    /// one the URI names, created if missing) with `data` (the engine's native format,
    /// decompressed). Data that cannot be loaded, or a stream that fails, fails the load
    /// with the target unchanged: Redis checks the data whole before touching the target
    /// (a stream is spooled and checked in one pass), the SQL engines load into a
    /// scratch database (a stream straight from the source into their tool) and swap it
    /// in only once it loaded whole. Cancel-safe: dropping the future kills the tool and
    /// drops the scratch database in the background (a Redis target mid-load keeps the
    /// keys loaded so far).
    async fn load(
        &self,
        uri: &ConnectionUri,
        database: Option<&str>,
        data: LoadData<'_>,
        phase: PhaseSink<'_>,
        progress: ProgressSink<'_>,
    ) -> Result<Loaded, Error>;
}

/// Server-wide engine settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// How Redis targets are loaded.
    pub redis_load: redis::LoadMethod,
    /// Where the PostgreSQL and MySQL tools are looked for.
    pub tool_path: tool::ToolPath,
}

/// The engine for loads into a database, recording in `journal` (bound to that
/// database) what a load borrows from the target before it changes it.
pub fn for_load(
    kind: EngineKind,
    settings: &Settings,
    journal: journal::DatabaseJournal,
) -> Result<std::sync::Arc<dyn Engine>, Error> {
    match kind {
        EngineKind::Redis => Ok(std::sync::Arc::new(
            redis::RedisEngine::default().with_load_method(settings.redis_load).with_journal(journal),
        )),
        other => for_kind(other, settings),
    }
}

/// The engine for a kind.
pub fn for_kind(kind: EngineKind, settings: &Settings) -> Result<std::sync::Arc<dyn Engine>, Error> {
    match kind {
        EngineKind::Redis => {
            Ok(std::sync::Arc::new(redis::RedisEngine::default().with_load_method(settings.redis_load)))
        }
        EngineKind::Postgres => {
            Ok(std::sync::Arc::new(postgres::PostgresEngine::new(settings.tool_path.clone())))
        }
        EngineKind::Mysql => Ok(std::sync::Arc::new(mysql::MysqlEngine::new(settings.tool_path.clone()))),
    }
}

//! Where backup bytes live: one object-safe trait over local disk, S3, GCS, Azure Blob,
//! FTP and HTTP.
//!
//! Keys are `/`-separated relative paths (`<database>/<backup>/dump.rdb.zst`). A written
//! object becomes visible at its key only when [`ObjectWriter::commit`] returns; an
//! aborted or dropped writer leaves nothing visible. Every implementation must pass the
//! shared suite in `suite.rs`.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncRead;

/// A storage failure. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No object at this key.
    #[error("object {key} not found")]
    NotFound {
        /// The key asked for.
        key: String,
    },
    /// The key is not a clean relative path.
    #[error("invalid object key '{key}': {reason}")]
    InvalidKey {
        /// The key given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The destination's scheme has no backend yet.
    #[error("destinations with scheme '{0}' are not supported yet")]
    Unsupported(String),
    /// Reading or writing failed.
    #[error("storage i/o failed on {key}: {source}")]
    Io {
        /// The key involved.
        key: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Facts about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// An object opened for reading.
pub struct ObjectReader {
    /// The object's full size (not counting the offset).
    pub size: u64,
    /// The bytes from the requested offset on.
    pub body: Pin<Box<dyn AsyncRead + Send>>,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader").field("size", &self.size).finish_non_exhaustive()
    }
}

/// A storage location.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Starts writing an object at `key`. Nothing is visible at `key` (an existing object
    /// stays as it was) until the writer is committed.
    async fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>, Error>;
    /// Opens the object at `key` from byte `offset`. [`Error::NotFound`] when absent.
    async fn reader(&self, key: &str, offset: u64) -> Result<ObjectReader, Error>;
    /// Facts about the object at `key`, `None` when absent.
    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>, Error>;
    /// Removes the object at `key`. Idempotent: an absent object is not an error.
    async fn delete(&self, key: &str) -> Result<(), Error>;
    /// The URI of the object at `key`, without credentials.
    fn uri(&self, key: &str) -> String;
}

/// An object being written. Dropping it without `commit` aborts it (best effort, no
/// visible object either way).
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes. Cancel-safe: dropping the future mid-way leaves the object unwritten.
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error>;
    /// Makes the object visible at its key, durably; returns its size.
    async fn commit(self: Box<Self>) -> Result<u64, Error>;
    /// Discards everything written.
    async fn abort(self: Box<Self>) -> Result<(), Error>;
}

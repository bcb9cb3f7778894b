//! Where backup bytes live: one object-safe trait over local disk, S3, GCS, Azure Blob,
//! FTP and HTTP.
//!
//! Keys are `/`-separated relative paths (`<database>/<backup>/<name>.rdb.zst`). A written
//! object becomes visible at its key only when [`ObjectWriter::commit`] returns; an
//! aborted or dropped writer leaves nothing visible. Every implementation must pass the
//! shared suite in `suite.rs`.

pub mod ftp;
pub mod http;
pub mod local;
pub mod location;
pub mod object;
#[cfg(test)]
pub(crate) mod suite;
#[cfg(test)]
pub(crate) mod test_servers;
#[cfg(test)]
#[path = "../../tests/support/object_stores.rs"]
pub(crate) mod test_stores;
pub mod webdav;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncRead;

use crate::domain::{Destination, check_destination_uri};

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
    /// The destination URI is malformed; the message never repeats the URI.
    #[error("invalid destination uri: {0}")]
    InvalidDestination(String),
    /// The server refused the credentials, or gave none access (HTTP 401, 403; FTP 530).
    #[error("access to {key} was denied: {detail}")]
    Denied {
        /// The key or URL (redacted) asked for.
        key: String,
        /// What the server said.
        detail: String,
    },
    /// The server could not be reached, kept failing, or broke off.
    #[error("{key} is unreachable: {detail}")]
    Unreachable {
        /// The key or URL (redacted) asked for.
        key: String,
        /// What went wrong.
        detail: String,
    },
    /// A backend could not be set up (an HTTP client whose TLS cannot start).
    #[error("cannot set up {0}")]
    Setup(String),
    /// The URL policy refuses the URL, or a redirect from it.
    #[error(transparent)]
    Refused(#[from] crate::net::Error),
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
    /// The object's full size (not counting the offset); `None` when the backend cannot
    /// tell (an HTTP server that sends no length).
    pub size: Option<u64>,
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
    /// Every object below `prefix`, sorted by key: `"db"` lists `db/b1/dump` but neither
    /// `db` itself nor `dbx/y`; `""` lists everything. Unfinished writes are never listed;
    /// a prefix with nothing below it lists nothing.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error>;
    /// The URI of the object at `key`, without credentials.
    fn uri(&self, key: &str) -> String;
    /// A URL that lets anyone holding it `GET` the object at `key` without credentials
    /// for `expires_in`, or `None` when the backend cannot sign URLs. Makes no request:
    /// the object need not exist.
    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<Option<url::Url>, Error> {
        check_key(key)?;
        let _ = expires_in;
        Ok(None)
    }
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

/// The longest key accepted, in bytes (the S3 limit, so that a key valid here is valid
/// on every backend).
pub const MAX_KEY_LEN: usize = 1024;

/// Checks that `key` is a clean relative `/`-separated path: not empty, at most
/// [`MAX_KEY_LEN`] bytes, no leading `/`, no empty, `.` or `..` segment, no backslash and
/// no NUL. Every backend calls this before touching anything.
pub fn check_key(key: &str) -> Result<(), Error> {
    let invalid = |reason| Err(Error::InvalidKey { key: key.to_owned(), reason });
    if key.is_empty() {
        return invalid("the key is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("the key is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return invalid("the key must be relative");
    }
    if key.contains('\\') {
        return invalid("the key must not contain a backslash");
    }
    if key.contains('\0') {
        return invalid("the key must not contain a nul byte");
    }
    for segment in key.split('/') {
        match segment {
            "" => return invalid("the key has an empty segment"),
            "." | ".." => return invalid("the key must not contain '.' or '..' segments"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a [`Storage::list`] prefix: empty, or a valid key (one trailing `/` is
/// ignored). Returns it without the trailing `/`.
pub fn check_prefix(prefix: &str) -> Result<&str, Error> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if !trimmed.is_empty() {
        check_key(trimmed)?;
    }
    Ok(trimmed)
}

/// Opens the storage a destination points at, with `http` (and its URL policy) for the
/// destinations reached over the network: `ftp://` and `http(s)://`. Other schemes go
/// to [`open`]. Nothing is contacted yet: connections are made by each operation.
pub fn open_with(destination: &Destination, http: &http::HttpClient) -> Result<Arc<dyn Storage>, Error> {
    check_destination_uri(&destination.uri).map_err(Error::InvalidDestination)?;
    let url = url::Url::parse(destination.uri.trim())
        .map_err(|error| Error::InvalidDestination(format!("not a valid URI: {error}")))?;
    match url.scheme() {
        "ftp" => Ok(Arc::new(ftp::FtpStorage::new(&url, destination, http.policy().clone())?)),
        "http" | "https" => Ok(Arc::new(webdav::WebDavStorage::new(&url, destination, http.clone())?)),
        _ => open(destination),
    }
}

/// Opens the storage a destination points at, except those reached through the HTTP
/// client's URL policy (see [`open_with`]): `file:///dir` is local disk; `s3://`,
/// `gs://`, `abs://` and `az://` are object stores (see [`location`] for their forms);
/// other schemes answer [`Error::Unsupported`].
pub fn open(destination: &Destination) -> Result<Arc<dyn Storage>, Error> {
    check_destination_uri(&destination.uri).map_err(Error::InvalidDestination)?;
    if let Some(location) = location::ObjectLocation::parse(destination)? {
        return Ok(Arc::new(object::ObjectStorage::open(location)?));
    }
    // check_destination_uri parsed the same text, so this cannot fail; map it anyway.
    let url = url::Url::parse(destination.uri.trim())
        .map_err(|error| Error::InvalidDestination(format!("not a valid URI: {error}")))?;
    match url.scheme() {
        "file" => {
            let root = url.to_file_path().map_err(|()| {
                Error::InvalidDestination("file URIs need an absolute local directory".to_owned())
            })?;
            Ok(Arc::new(local::LocalStorage::new(root)))
        }
        other => Err(Error::Unsupported(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::domain::ResourceName;

    fn check_key_result(key: &str, valid: bool) {
        match check_key(key) {
            Ok(()) => assert!(valid, "{key:?} was accepted"),
            Err(Error::InvalidKey { key: reported, .. }) => {
                assert!(!valid, "{key:?} was rejected");
                assert_eq!(reported, key);
            }
            Err(other) => panic!("{key:?}: unexpected error {other}"),
        }
    }

    #[test]
    fn keys() {
        for good in ["a", "a/b/c.rdb.zst", "db/2024-01-01 backup/dump", "é/ü", "a..b/.hidden", "..."] {
            check_key_result(good, true);
        }
        let too_long = "k".repeat(MAX_KEY_LEN + 1);
        for bad in ["", "/a", "a/", "a//b", "./a", "a/./b", "a/..", "../a", "a\\b", "a\0b", too_long.as_str()]
        {
            check_key_result(bad, false);
        }
    }

    fn destination(uri: &str) -> Destination {
        Destination::unregistered(ResourceName::parse("test").unwrap(), uri, &[], &[])
    }

    #[test]
    fn open_with_reaches_ftp_and_webdav_too() {
        let http = http::HttpClient::new(crate::net::UrlPolicy::default()).unwrap();
        for (uri, shown) in [
            ("ftp://u:hunter2@files.example.com/dir", "ftp://u:****@files.example.com/dir/a/b"),
            ("https://u:hunter2@dav.example.com/dir/", "https://u:****@dav.example.com/dir/a/b"),
            ("file:///var/backups", "file:///var/backups/a/b"),
        ] {
            let storage = open_with(&destination(uri), &http).unwrap();
            assert_eq!(storage.uri("a/b"), shown);
            assert!(!format!("{storage:?}").contains("hunter2"), "{storage:?}");
        }
        let storage = open_with(&destination("s3://bucket/prefix"), &http).unwrap();
        assert_eq!(storage.uri("a/b"), "s3://bucket/prefix/a/b", "other schemes go to open");
    }

    #[test]
    fn open_dispatches_on_scheme() {
        let storage = open(&destination("file:///var/backups/cellar")).unwrap();
        assert_eq!(storage.uri("a/b"), "file:///var/backups/cellar/a/b");
        let storage = open(&destination("s3://bucket/prefix")).unwrap();
        assert_eq!(storage.uri("a/b"), "s3://bucket/prefix/a/b");
        for (uri, scheme) in [("ftp://u:hunter2@host/dir", "ftp")] {
            match open(&destination(uri)) {
                Err(Error::Unsupported(reported)) => assert_eq!(reported, scheme),
                other => panic!("{uri}: expected unsupported, got {other:?}"),
            }
        }
        for bad in ["file://host/dir", "not a uri", "gopher://u:hunter2@h/x"] {
            match open(&destination(bad)) {
                Err(error @ Error::InvalidDestination(_)) => {
                    assert!(!error.to_string().contains("hunter2"), "{error}")
                }
                other => panic!("{bad}: expected invalid destination, got {other:?}"),
            }
        }
    }
}

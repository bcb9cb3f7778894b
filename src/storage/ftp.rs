//! FTP destinations (`ftp://[user:pass@]host[:port]/dir`) and import sources, with
//! `suppaftp` over tokio. Hosts go through the same [`UrlPolicy`] as http(s) URLs: the
//! host and port, then every address the name resolves to, which is what is dialled.
//!
//! Every operation opens its own control connection, logs in and switches to the
//! binary transfer type (the default ASCII type rewrites line endings), so concurrent
//! reads and writes never share a connection. Data connections are passive and always
//! go to the address of the control connection, whatever address the server's `PASV`
//! answer names, so that a server cannot point us elsewhere.
//!
//! A write streams (`STOR`) into `.<name>.partial-<uuid>` beside the final name and
//! renames it (`RNFR`/`RNTO`) on commit, so that nothing is visible at the key before;
//! an aborted or dropped writer deletes the temporary file (a drop from a spawned
//! task). Missing directories are made level by level (`MKD`). Reads use `SIZE`, then
//! `REST` and `RETR`; a transfer that ends short of the size fails the read, and so does
//! a data connection silent for two minutes (either way).
//!
//! Failures: `530` (not logged in) is [`Error::Denied`] at once; connect errors and
//! `4xx` replies are retried with backoff before any byte of data moves; `550` is
//! "absent". The password never appears in a message: errors name the URI redacted and
//! repeat server replies with the password masked.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use suppaftp::tokio::{AsyncFtpStream, AsyncNoTlsStream, TransferStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError, Status};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use url::{Host, Url};

use super::{Error, ObjectMeta, ObjectReader, ObjectWriter, Storage, check_key, check_prefix};
use crate::domain::{Destination, redact_uri};
use crate::net::{self, Reach, UrlPolicy};

/// How many times an operation is tried before a transient failure is final.
const ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How long connecting and logging in may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a data connection may stay silent (or refuse data) before the transfer fails.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Marks temporary files: `.<file name>.partial-<uuid>`.
const PARTIAL_MARKER: &str = ".partial-";
/// The default FTP port.
const FTP_PORT: u16 = 21;

type Transfer = TransferStream<AsyncNoTlsStream>;

/// Objects on an FTP server, under the directory of the destination's URI.
#[derive(Clone)]
pub struct FtpStorage {
    inner: Arc<Settings>,
}

struct Settings {
    host: String,
    port: u16,
    /// The directory objects live under, decoded, with a leading and no trailing `/`
    /// (`""` for the server's root).
    root: String,
    user: String,
    password: String,
    /// The URI without its password, for messages (`ftp://user:****@host:21/dir`).
    shown: String,
    policy: UrlPolicy,
}

impl std::fmt::Debug for FtpStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FtpStorage").field("uri", &self.inner.shown).finish_non_exhaustive()
    }
}

impl FtpStorage {
    /// Storage at `url` (an `ftp://` URL, the destination's URI parsed). The user and
    /// password come from the destination's `credentials` (`username`, `password`) when
    /// set there, else from the URI, else `anonymous`. Nothing is contacted yet; every
    /// connection is checked against `policy` (the host, and the addresses it resolves
    /// to) like http(s) URLs.
    pub fn new(url: &Url, destination: &Destination, policy: UrlPolicy) -> Result<FtpStorage, Error> {
        let credential =
            |name: &str| destination.credentials.get(name).map(|secret| secret.expose().to_owned());
        FtpStorage::with_credentials(url, credential("username"), credential("password"), policy)
    }

    /// The storage holding the file an `ftp://` URL names (an import source), and the
    /// file's key in it. Credentials come from the URL.
    pub fn for_file(url: &Url, policy: UrlPolicy) -> Result<(FtpStorage, String), Error> {
        let (parent, name) = url.path().rsplit_once('/').unwrap_or(("", url.path()));
        if name.is_empty() {
            return Err(Error::InvalidDestination("the ftp URL names a directory, not a file".to_owned()));
        }
        let key = percent_decode_str(name).decode_utf8_lossy().into_owned();
        let mut dir = url.clone();
        dir.set_path(parent);
        Ok((FtpStorage::with_credentials(&dir, None, None, policy)?, key))
    }

    fn with_credentials(
        url: &Url,
        user: Option<String>,
        password: Option<String>,
        policy: UrlPolicy,
    ) -> Result<FtpStorage, Error> {
        if url.scheme() != "ftp" {
            return Err(Error::InvalidDestination("an ftp destination needs an ftp:// URI".to_owned()));
        }
        let host = match url.host() {
            Some(Host::Domain(name)) if !name.is_empty() => name.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(Error::InvalidDestination("ftp URIs need a host".to_owned())),
        };
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::InvalidDestination(
                "ftp URIs take no query or fragment: ftp://user:pass@host:port/dir".to_owned(),
            ));
        }
        let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
        let from_uri_user = Some(decode(url.username())).filter(|user| !user.is_empty());
        let user = user.or(from_uri_user).unwrap_or_else(|| "anonymous".to_owned());
        let password =
            password.or_else(|| url.password().map(decode)).unwrap_or_else(|| "anonymous@".to_owned());
        let root = decode(url.path().trim_end_matches('/'));
        if root.split('/').any(|segment| segment == "..") || root.contains(['\r', '\n', '\0']) {
            return Err(Error::InvalidDestination("the ftp directory must be a clean path".to_owned()));
        }
        let shown = redact_uri(url.as_str()).trim_end_matches('/').to_owned();
        Ok(FtpStorage {
            inner: Arc::new(Settings {
                host,
                port: url.port().unwrap_or(FTP_PORT),
                root,
                user,
                password,
                shown,
                policy,
            }),
        })
    }

    /// The server path of a valid key.
    fn path_of(&self, key: &str) -> Result<String, Error> {
        check_key(key)?;
        let invalid = |reason| Err(Error::InvalidKey { key: key.to_owned(), reason });
        if key.contains(['\r', '\n']) {
            return invalid("the key must not contain line breaks");
        }
        if key.split('/').any(is_partial_name) {
            return invalid("names of the form .<name>.partial-<id> are reserved for unfinished writes");
        }
        Ok(self.join(key))
    }

    fn join(&self, key: &str) -> String {
        format!("{}/{key}", self.inner.root)
    }

    /// The key of a server path under the root.
    fn key_of<'a>(&self, path: &'a str) -> &'a str {
        path.strip_prefix(&self.inner.root).unwrap_or(path).trim_start_matches('/')
    }

    /// Connects, logs in and selects the binary type: one try.
    async fn connect_once(&self) -> Result<AsyncFtpStream, Failure> {
        let settings = &self.inner;
        let addresses = self.checked_addresses().await?;
        let login = async {
            let mut last = None;
            for address in &addresses {
                match tokio::net::TcpStream::connect(address).await {
                    Ok(stream) => {
                        let mut ftp = AsyncFtpStream::connect_with_stream(stream).await?;
                        ftp.set_passive_nat_workaround(true);
                        ftp.login(settings.user.as_str(), settings.password.as_str()).await?;
                        ftp.transfer_type(FileType::Binary).await?;
                        return Ok(ftp);
                    }
                    Err(error) => last = Some(error),
                }
            }
            let error = last.unwrap_or_else(|| std::io::Error::other("the host has no address"));
            Err(FtpError::ConnectionError(error))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, login).await {
            Ok(result) => result.map_err(|error| self.failure(error)),
            Err(_) => Err(Failure::Transient("connecting and logging in timed out".to_owned())),
        }
    }

    /// The addresses of the host that the URL policy lets us reach.
    async fn checked_addresses(&self) -> Result<Vec<SocketAddr>, Failure> {
        let settings = &self.inner;
        let host = match settings.host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{}]", settings.host),
            Err(_) => settings.host.clone(),
        };
        // The policy judges http(s) URLs: ask it about the same host and port.
        let probe = Url::parse(&format!("http://{host}:{}/", settings.port))
            .map_err(|error| Failure::Final(format!("invalid host: {error}")))?;
        let reach = settings.policy.check_url(&probe).map_err(Failure::Refused)?;
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((settings.host.as_str(), settings.port))
            .await
            .map_err(|error| Failure::Transient(format!("cannot resolve {}: {error}", settings.host)))?
            .collect();
        if reach == Reach::PublicOnly {
            settings.policy.check_resolved(&settings.host, &addresses).map_err(Failure::Refused)?;
        }
        Ok(addresses)
    }

    /// Runs `operation` on a fresh connection, retrying transient failures with backoff;
    /// the connection is closed afterwards.
    async fn with_connection<T, F>(&self, key: &str, operation: F) -> Result<T, Error>
    where
        F: for<'c> Fn(
            &'c mut AsyncFtpStream,
        ) -> Pin<Box<dyn Future<Output = Result<T, Failure>> + Send + 'c>>,
    {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let result = match self.connect_once().await {
                Ok(mut ftp) => {
                    let result = operation(&mut ftp).await;
                    // Closing politely is best effort; the socket closes on drop anyway.
                    let _ = tokio::time::timeout(Duration::from_secs(2), ftp.quit()).await;
                    result
                }
                Err(failure) => Err(failure),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(Failure::Transient(detail)) if attempt < ATTEMPTS => {
                    tracing::debug!(uri = %self.inner.shown, key, attempt, detail, "retrying an ftp operation");
                }
                Err(failure) => return Err(failure.into_error(&self.inner.shown, key)),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    /// Sorts an FTP error, with the password masked in whatever the server said.
    fn failure(&self, error: FtpError) -> Failure {
        let mask = |text: String| {
            let password = &self.inner.password;
            if password.is_empty() { text } else { text.replace(password.as_str(), "****") }
        };
        match error {
            FtpError::ConnectionError(error) => {
                Failure::Transient(mask(format!("connection failed: {error}")))
            }
            FtpError::UnexpectedResponse(response) => {
                let text = String::from_utf8_lossy(&response.body).trim().to_owned();
                let detail = mask(format!("the server answered {text}"));
                match response.status {
                    Status::NotLoggedIn | Status::InvalidCredentials => Failure::Denied(detail),
                    Status::FileUnavailable => Failure::Absent,
                    status if (400..500).contains(&status.code()) => Failure::Transient(detail),
                    _ => Failure::Final(detail),
                }
            }
            other => Failure::Final(mask(other.to_string())),
        }
    }

    /// Makes every directory on the way to the key's parent, `MKD` level by level (one
    /// that exists answers an error, which is ignored: the `STOR` that follows says
    /// whether a directory is really missing).
    async fn make_parents(&self, ftp: &mut AsyncFtpStream, key: &str) {
        let parent = key.rsplit_once('/').map_or("", |(parent, _)| parent);
        let mut dir = String::new();
        for part in self.inner.root.split('/').chain(parent.split('/')).filter(|part| !part.is_empty()) {
            dir.push('/');
            dir.push_str(part);
            let _ = ftp.mkdir(&dir).await;
        }
    }

    /// Removes the directories between the key and the root that are empty, deepest
    /// first (`RMD` refuses one that is not). Best effort: a directory left behind is
    /// harmless, and a writer that loses its new directory to this makes it again.
    async fn prune_parents(&self, ftp: &mut AsyncFtpStream, key: &str) {
        let mut parent = key;
        while let Some((above, _)) = parent.rsplit_once('/') {
            if ftp.rmdir(self.join(above)).await.is_err() {
                return;
            }
            parent = above;
        }
    }

    /// Starts `STOR` of `partial`, making the directories when they are missing.
    async fn start_upload(&self, key: &str, partial: &str) -> Result<(AsyncFtpStream, Transfer), Failure> {
        let mut ftp = self.connect_once().await?;
        let upload = match ftp.put_with_stream(partial).await.map_err(|error| self.failure(error)) {
            Ok(upload) => upload,
            // 550 (pyftpdlib), 553 (others): most likely a missing directory.
            Err(Failure::Absent | Failure::Final(_)) => {
                self.make_parents(&mut ftp, key).await;
                match ftp.put_with_stream(partial).await.map_err(|error| self.failure(error)) {
                    Ok(upload) => upload,
                    // Absent means "not found" to callers; for a write it is a refusal.
                    Err(Failure::Absent) => {
                        let detail = "the server refused to store the file (550)".to_owned();
                        return Err(Failure::Final(detail));
                    }
                    Err(failure) => return Err(failure),
                }
            }
            Err(failure) => return Err(failure),
        };
        Ok((ftp, upload))
    }

    /// Deletes a temporary file on a fresh connection; absent is fine.
    async fn remove_partial(&self, key: &str, partial: &str) -> Result<(), Error> {
        let partial = partial.to_owned();
        let storage = self.clone();
        self.with_connection(key, move |ftp| {
            let partial = partial.clone();
            let storage = storage.clone();
            Box::pin(async move { storage.remove(ftp, &partial).await })
        })
        .await
    }

    async fn remove(&self, ftp: &mut AsyncFtpStream, path: &str) -> Result<(), Failure> {
        match ftp.rm(path).await.map_err(|error| self.failure(error)) {
            Ok(()) | Err(Failure::Absent) => Ok(()),
            Err(failure) => Err(failure),
        }
    }
}

/// Why an FTP exchange failed, before it is named after a key.
#[derive(Debug)]
enum Failure {
    /// `550`: no such file (or not one we may see).
    Absent,
    /// `530`: the credentials were refused.
    Denied(String),
    /// Worth another try: connecting failed, a `4xx` reply.
    Transient(String),
    /// Anything else.
    Final(String),
    /// The URL policy refuses the host.
    Refused(net::Error),
}

impl Failure {
    fn into_error(self, shown: &str, key: &str) -> Error {
        let key = if key.is_empty() { shown.to_owned() } else { key.to_owned() };
        match self {
            Failure::Absent => Error::NotFound { key },
            Failure::Denied(detail) => Error::Denied { key: format!("{shown} ({key})"), detail },
            Failure::Transient(detail) | Failure::Final(detail) => {
                Error::Unreachable { key: format!("{shown} ({key})"), detail }
            }
            Failure::Refused(error) => Error::Refused(error),
        }
    }
}

/// Whether a file name is one of our temporary files.
fn is_partial_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(PARTIAL_MARKER)
}

#[async_trait]
impl Storage for FtpStorage {
    async fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>, Error> {
        let path = self.path_of(key)?;
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        let partial = format!("{parent}/.{name}{PARTIAL_MARKER}{}", uuid::Uuid::new_v4().simple());
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        // Retried until the upload starts; after that a failure fails the write.
        let (connection, upload) = loop {
            match self.start_upload(key, &partial).await {
                Ok(started) => break started,
                Err(Failure::Transient(detail)) if attempt < ATTEMPTS => {
                    tracing::debug!(uri = %self.inner.shown, key, attempt, detail, "retrying an ftp upload");
                }
                Err(failure) => return Err(failure.into_error(&self.inner.shown, key)),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        };
        Ok(Box::new(FtpWriter {
            storage: self.clone(),
            key: key.to_owned(),
            path,
            partial: Some(partial),
            connection: Some(connection),
            upload: Some(upload),
            written: 0,
        }))
    }

    async fn reader(&self, key: &str, offset: u64) -> Result<ObjectReader, Error> {
        let path = self.path_of(key)?;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let opened = async {
                let mut ftp = self.connect_once().await?;
                let size = ftp.size(&path).await.map_err(|error| self.failure(error))? as u64;
                if offset >= size {
                    let _ = ftp.quit().await;
                    return Ok(ObjectReader { size: Some(size), body: Box::pin(tokio::io::empty()) });
                }
                let offset_usize =
                    usize::try_from(offset).map_err(|_| Failure::Final("offset too large".to_owned()))?;
                ftp.resume_transfer(offset_usize).await.map_err(|error| self.failure(error))?;
                let transfer = ftp.retr_as_stream(&path).await.map_err(|error| self.failure(error))?;
                let body = FtpBody {
                    transfer,
                    _connection: ftp,
                    remaining: size - offset,
                    key: key.to_owned(),
                    idle: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
                    waiting: false,
                };
                Ok::<_, Failure>(ObjectReader { size: Some(size), body: Box::pin(body) })
            };
            match opened.await {
                Ok(reader) => return Ok(reader),
                Err(Failure::Transient(detail)) if attempt < ATTEMPTS => {
                    tracing::debug!(uri = %self.inner.shown, key, attempt, detail, "retrying an ftp download");
                }
                Err(failure) => return Err(failure.into_error(&self.inner.shown, key)),
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>, Error> {
        let path = self.path_of(key)?;
        let storage = self.clone();
        let owned_key = key.to_owned();
        self.with_connection(key, move |ftp| {
            let (storage, path, key) = (storage.clone(), path.clone(), owned_key.clone());
            Box::pin(async move {
                match ftp.size(&path).await.map_err(|error| storage.failure(error)) {
                    Ok(size) => Ok(Some(ObjectMeta { key, size: size as u64 })),
                    Err(Failure::Absent) => Ok(None),
                    Err(failure) => Err(failure),
                }
            })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path_of(key)?;
        let storage = self.clone();
        let owned_key = key.to_owned();
        self.with_connection(key, move |ftp| {
            let (storage, path, key) = (storage.clone(), path.clone(), owned_key.clone());
            Box::pin(async move {
                storage.remove(ftp, &path).await?;
                storage.prune_parents(ftp, &key).await;
                Ok(())
            })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let prefix = check_prefix(prefix)?;
        let start = if prefix.is_empty() { self.inner.root.clone() } else { self.join(prefix) };
        let storage = self.clone();
        let mut objects = self
            .with_connection(prefix, move |ftp| {
                let (storage, start) = (storage.clone(), start.clone());
                Box::pin(async move { storage.walk(ftp, start).await })
            })
            .await?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    fn uri(&self, key: &str) -> String {
        format!("{}/{key}", self.inner.shown)
    }
}

impl FtpStorage {
    /// Every file below `start`, by `MLSD` directory after directory.
    async fn walk(&self, ftp: &mut AsyncFtpStream, start: String) -> Result<Vec<ObjectMeta>, Failure> {
        let mut objects = Vec::new();
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let listing = match ftp.mlsd(Some(if dir.is_empty() { "/" } else { &dir })).await {
                Ok(lines) => lines,
                // 550: no such directory; 501 (pyftpdlib): a file, not a directory.
                Err(FtpError::UnexpectedResponse(response))
                    if matches!(response.status, Status::FileUnavailable | Status::BadArguments) =>
                {
                    continue;
                }
                Err(error) => return Err(self.failure(error)),
            };
            for line in listing {
                let Ok(file) = suppaftp::list::ListParser::parse_mlsd(&line) else { continue };
                let name = file.name();
                if name == "." || name == ".." || name.contains('/') {
                    continue;
                }
                let path = format!("{dir}/{name}");
                if file.is_directory() {
                    pending.push(path);
                } else if file.is_file() && !is_partial_name(name) {
                    objects.push(ObjectMeta { key: self.key_of(&path).to_owned(), size: file.size() as u64 });
                }
            }
        }
        Ok(objects)
    }
}

/// An object being uploaded to its temporary name.
struct FtpWriter {
    storage: FtpStorage,
    key: String,
    /// The final path.
    path: String,
    /// The temporary path; `None` once renamed into place or removed.
    partial: Option<String>,
    connection: Option<AsyncFtpStream>,
    /// `None` after a cancelled or failed write left the upload in an unknown state.
    upload: Option<Transfer>,
    written: u64,
}

impl FtpWriter {
    fn error(&self, failure: Failure) -> Error {
        failure.into_error(&self.storage.inner.shown, &self.key)
    }

    fn poisoned(&self) -> Error {
        self.error(Failure::Final("an earlier write was cancelled or failed".to_owned()))
    }
}

#[async_trait]
impl ObjectWriter for FtpWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        // Taken while writing: a dropped future or a failure leaves the writer poisoned.
        let Some(mut upload) = self.upload.take() else { return Err(self.poisoned()) };
        match tokio::time::timeout(IDLE_TIMEOUT, upload.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return Err(self.error(Failure::Final(format!("the upload broke off: {error}"))));
            }
            Err(_) => {
                let detail = format!("the server took no data for {} s", IDLE_TIMEOUT.as_secs());
                return Err(self.error(Failure::Final(detail)));
            }
        }
        self.written += chunk.len() as u64;
        self.upload = Some(upload);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, Error> {
        let Some(upload) = self.upload.take() else { return Err(self.poisoned()) };
        let Some(mut ftp) = self.connection.take() else { return Err(self.poisoned()) };
        let Some(partial) = self.partial.clone() else { return Err(self.poisoned()) };
        if let Err(error) = upload.finish().await {
            self.connection = Some(ftp);
            return Err(self.error(self.storage.failure(error)));
        }
        let renamed = match ftp.rename(&partial, &self.path).await {
            Ok(()) => Ok(()),
            // Some servers refuse to rename onto an existing file: remove it, try again.
            Err(_) => {
                let _ = ftp.rm(&self.path).await;
                ftp.rename(&partial, &self.path).await
            }
        };
        if let Err(error) = renamed {
            let failure = self.storage.failure(error);
            self.connection = Some(ftp);
            return Err(self.error(failure));
        }
        self.partial = None;
        let _ = tokio::time::timeout(Duration::from_secs(2), ftp.quit()).await;
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        // Closing the data connection ends the upload; the next command reads its reply.
        drop(self.upload.take());
        let Some(partial) = self.partial.take() else { return Ok(()) };
        let on_this_connection = match self.connection.take() {
            Some(mut ftp) => {
                let removed = self.storage.remove(&mut ftp, &partial).await;
                let _ = tokio::time::timeout(Duration::from_secs(2), ftp.quit()).await;
                removed.is_ok()
            }
            None => false,
        };
        if on_this_connection {
            return Ok(());
        }
        self.storage.remove_partial(&self.key, &partial).await
    }
}

impl Drop for FtpWriter {
    fn drop(&mut self) {
        // Neither committed nor aborted: remove the temporary file from a task, as Drop
        // cannot wait. Without a runtime (or if that fails) a hidden partial file stays.
        let Some(partial) = self.partial.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let upload = self.upload.take();
        let connection = self.connection.take();
        let storage = self.storage.clone();
        let key = self.key.clone();
        runtime.spawn(async move {
            drop(upload);
            if let Some(mut ftp) = connection
                && storage.remove(&mut ftp, &partial).await.is_ok()
            {
                let _ = tokio::time::timeout(Duration::from_secs(2), ftp.quit()).await;
                return;
            }
            if let Err(error) = storage.remove_partial(&key, &partial).await {
                tracing::warn!(%error, "cannot remove the temporary file of an abandoned ftp upload");
            }
        });
    }
}

/// The data connection of a download, with the control connection it belongs to; a
/// transfer that ends before `remaining` bytes came fails.
struct FtpBody {
    transfer: Transfer,
    _connection: AsyncFtpStream,
    remaining: u64,
    key: String,
    /// Fails the read when the server sends nothing for [`IDLE_TIMEOUT`] while we wait.
    idle: Pin<Box<tokio::time::Sleep>>,
    /// Whether the last poll found nothing to read (the idle clock runs only then, so
    /// that a slow reader is never taken for a silent server).
    waiting: bool,
}

impl AsyncRead for FtpBody {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.transfer).poll_read(cx, buf) {
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    this.idle.as_mut().reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
                }
                if this.idle.as_mut().poll(cx).is_ready() {
                    let message =
                        format!("the server sent nothing of {} for {} s", this.key, IDLE_TIMEOUT.as_secs());
                    return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, message)));
                }
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                this.waiting = false;
                let count = (buf.filled().len() - before) as u64;
                if count == 0 && this.remaining > 0 {
                    let message =
                        format!("the download of {} broke off {} bytes short", this.key, this.remaining);
                    return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, message)));
                }
                this.remaining = this.remaining.saturating_sub(count);
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ResourceName;

    fn destination(uri: &str, credentials: &[(&str, &str)]) -> Destination {
        Destination::unregistered(ResourceName::parse("ftp").unwrap(), uri, credentials, &[])
    }

    fn storage(uri: &str, credentials: &[(&str, &str)]) -> FtpStorage {
        let url = Url::parse(uri).unwrap();
        FtpStorage::new(&url, &destination(uri, credentials), UrlPolicy::default()).unwrap()
    }

    #[test]
    fn uris_and_credentials() {
        let from_uri = storage("ftp://back%40up:hun%3Ater2@files.example.com:2121/backups/cellar/", &[]);
        let settings = &from_uri.inner;
        assert_eq!((settings.host.as_str(), settings.port), ("files.example.com", 2121));
        assert_eq!((settings.user.as_str(), settings.password.as_str()), ("back@up", "hun:ter2"));
        assert_eq!(settings.root, "/backups/cellar");
        assert_eq!(
            from_uri.uri("db/b/dump"),
            "ftp://back%40up:****@files.example.com:2121/backups/cellar/db/b/dump"
        );
        assert!(!format!("{from_uri:?}").contains("hun"), "{from_uri:?}");

        let from_map = storage("ftp://files.example.com", &[("username", "u"), ("password", "hunter2")]);
        assert_eq!((from_map.inner.user.as_str(), from_map.inner.password.as_str()), ("u", "hunter2"));
        assert_eq!((from_map.inner.port, from_map.inner.root.as_str()), (21, ""));
        assert_eq!(from_map.path_of("a/b").unwrap(), "/a/b");
        assert!(!from_map.uri("k").contains("hunter2"), "{}", from_map.uri("k"));

        let anonymous = storage("ftp://[::1]/pub", &[]);
        assert_eq!((anonymous.inner.host.as_str(), anonymous.inner.user.as_str()), ("::1", "anonymous"));
        assert_eq!(anonymous.uri("k"), "ftp://[::1]/pub/k");

        for key in ["a/.b.partial-1", "line\nbreak"] {
            assert!(matches!(from_map.path_of(key), Err(Error::InvalidKey { .. })), "{key:?}");
        }
    }

    #[tokio::test]
    async fn refused_hosts_and_closed_ports_never_show_the_password() {
        let refused = storage("ftp://u:hunter2@127.0.0.1:9/dir", &[]);
        let error = refused.stat("k").await.unwrap_err();
        assert!(matches!(error, Error::Refused(_)), "{error:?}");

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let uri = format!("ftp://u:hunter2@127.0.0.1:{port}/dir");
        let url = Url::parse(&uri).unwrap();
        let policy = UrlPolicy::new(vec![net::AllowedHost::parse("127.0.0.1").unwrap()]);
        let closed = FtpStorage::new(&url, &destination(&uri, &[]), policy).unwrap();
        let error = closed.writer("k").await.map(|_| ()).unwrap_err();
        assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("hunter2") && text.contains("u:****@127.0.0.1"), "{text}");
    }
}

#[cfg(test)]
mod server_tests {
    use std::time::Instant;

    use super::*;
    use crate::domain::ResourceName;
    use crate::storage::suite;
    use crate::storage::test_servers::StorageServer;

    const USER: &str = "cellar";
    const PASSWORD: &str = "pw-hunter2";

    fn storage_at(server: &StorageServer, password: &str, dir: &str) -> FtpStorage {
        let uri = format!("ftp://{USER}:{password}@127.0.0.1:{}{dir}", server.port);
        let destination = Destination::unregistered(ResourceName::parse("ftp").unwrap(), &uri, &[], &[]);
        let policy = UrlPolicy::new(vec![net::AllowedHost::parse("127.0.0.1").unwrap()]);
        FtpStorage::new(&Url::parse(&uri).unwrap(), &destination, policy).unwrap()
    }

    /// Waits for the clean-ups that dropped writers spawned.
    async fn wait_for_files(server: &StorageServer, expected: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.files() != expected {
            assert!(Instant::now() < deadline, "files left on the server: {:?}", server.files());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn passes_the_shared_suite() {
        let server = StorageServer::ftp(USER, PASSWORD);
        let storage = storage_at(&server, PASSWORD, "/backups/cellar");
        suite::run_all(&storage).await;
        // 64 MiB, generated and checked one 64 KiB chunk at a time.
        suite::large_object(&storage, "big", 1024).await;
        wait_for_files(&server, &[]).await;
    }

    #[tokio::test]
    async fn temporaries_are_hidden_beside_the_object_until_commit() {
        let server = StorageServer::ftp(USER, PASSWORD);
        let storage = storage_at(&server, PASSWORD, "");
        let mut writer = storage.writer("db/backup/dump.rdb").await.unwrap();
        writer.write(Bytes::from_static(b"hello\r\n\n\0")).await.unwrap();
        assert_eq!(writer.commit().await.unwrap(), 9);
        assert_eq!(server.files(), ["db/backup/dump.rdb"]);
        assert_eq!(std::fs::read(server.dir.path().join("db/backup/dump.rdb")).unwrap(), b"hello\r\n\n\0");

        let mut pending = storage.writer("db/backup/manifest.json").await.unwrap();
        pending.write(Bytes::from_static(b"{}")).await.unwrap();
        let during = server.files();
        assert_eq!(during.len(), 2, "{during:?}");
        assert!(during[0].starts_with("db/backup/.manifest.json.partial-"), "{during:?}");
        drop(pending);
        wait_for_files(&server, &["db/backup/dump.rdb"]).await;

        storage.delete("db/backup/dump.rdb").await.unwrap();
        assert!(!server.dir.path().join("db").exists(), "emptied directories are removed");
    }

    #[tokio::test]
    async fn concurrent_writes_and_reads_use_their_own_connections() {
        let server = StorageServer::ftp(USER, PASSWORD);
        let storage = storage_at(&server, PASSWORD, "/c");
        let writes = (0..6).map(|index| {
            let storage = storage.clone();
            async move {
                let mut writer = storage.writer(&format!("k{index}")).await.unwrap();
                for _ in 0..50 {
                    writer.write(Bytes::from(vec![index as u8; 10_000])).await.unwrap();
                }
                writer.commit().await.unwrap()
            }
        });
        assert_eq!(futures::future::join_all(writes).await, vec![500_000; 6]);
        let reads = (0..6).map(|index| {
            let storage = storage.clone();
            async move {
                let mut body = storage.reader(&format!("k{index}"), 0).await.unwrap().body;
                let mut bytes = Vec::new();
                tokio::io::AsyncReadExt::read_to_end(&mut body, &mut bytes).await.unwrap();
                bytes.iter().all(|byte| *byte == index as u8) && bytes.len() == 500_000
            }
        });
        assert!(futures::future::join_all(reads).await.into_iter().all(|ok| ok));
        let listed = storage.list("").await.unwrap();
        assert_eq!(listed.len(), 6);
    }

    #[tokio::test]
    async fn a_wrong_password_is_denied_at_once_and_never_shown() {
        let server = StorageServer::ftp(USER, PASSWORD);
        let storage = storage_at(&server, "wrong-hunter2", "/d");
        let started = Instant::now();
        let first = storage.writer("k").await.map(|_| ()).unwrap_err();
        // pyftpdlib answers a failed login after 3 s; retries would take four times that.
        assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
        let errors = [
            first,
            storage.reader("k", 0).await.map(|_| ()).unwrap_err(),
            storage.stat("k").await.map(|_| ()).unwrap_err(),
            storage.delete("k").await.unwrap_err(),
            storage.list("").await.map(|_| ()).unwrap_err(),
        ];
        for error in errors {
            assert!(matches!(error, Error::Denied { .. }), "{error:?}");
            let text = format!("{error} {error:?}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_server_stopped_mid_upload_fails_the_write() {
        let mut server = StorageServer::ftp(USER, PASSWORD);
        let storage = storage_at(&server, PASSWORD, "/s");
        let mut writer = storage.writer("k").await.unwrap();
        writer.write(Bytes::from(vec![1u8; 1 << 20])).await.unwrap();
        server.stop();
        let mut failed = false;
        for _ in 0..64 {
            if writer.write(Bytes::from(vec![1u8; 1 << 20])).await.is_err() {
                failed = true;
                break;
            }
        }
        let committed = if failed { None } else { Some(writer.commit().await) };
        assert!(failed || committed.as_ref().is_some_and(Result::is_err), "{committed:?}");
        assert!(!server.files().contains(&"s/k".to_owned()));
    }
}

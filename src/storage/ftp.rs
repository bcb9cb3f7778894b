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

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use suppaftp::tokio::{AsyncFtpStream, AsyncNoTlsStream, TransferStream};
use suppaftp::types::FileType;
use suppaftp::{FtpError, Status};
use tokio::io::AsyncWriteExt;
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

mod body;
use body::FtpBody;

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
                let body = FtpBody::new(transfer, ftp, size - offset, key);
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod server_tests;

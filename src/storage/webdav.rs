//! http(s) destinations on a WebDAV server, through the shared [`HttpClient`] (and so its
//! URL policy).
//!
//! A write is a streamed `PUT` into the hidden collection `.cellar.partial-uploads/`
//! under the destination, then a `MOVE` (`Overwrite: T`) onto the key on commit, so that
//! nothing is visible at the key before; `MKCOL` makes the collections on the way. Reads
//! are `GET`s, after a `PROPFIND Depth: 0` that tells an object from a collection (so
//! that a key naming a collection is never read, or deleted whole); listings are
//! `PROPFIND Depth: 1`, collection by collection. A server without `MOVE` cannot be a
//! destination: writing at the final name would show a partial object.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use url::Url;

use super::http::{FIRST_BACKOFF, HttpClient, describe, refusal, split_credentials};
use super::{Error, ObjectMeta, ObjectReader, ObjectWriter, Storage, check_key, check_prefix};
use crate::domain::Destination;
use crate::domain::redact_uri;

/// What is percent-encoded in a path segment (the `url` crate's own set).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%');
/// Marks temporary objects: `.<name>.partial-<uuid>`.
const PARTIAL_MARKER: &str = ".partial-";
/// The hidden collection, under the destination's, that uploads are written to before
/// their `MOVE`: beside the object would do, but a server may fail to list a collection
/// holding a file being written (rclone 1.60 tries to open it, then fails the whole
/// `PROPFIND`), and listings never descend into this one.
const UPLOADS: &str = ".cellar.partial-uploads";
/// How many times a `DELETE` answered `423 Locked` is sent (about 10 s in all).
const LOCKED_ATTEMPTS: u32 = 8;
/// How long an aborted upload may take to end before it is cut off.
const ABORT_WAIT: Duration = Duration::from_secs(5);
/// How many chunks a `PUT` body may have queued before `write` waits.
const PUT_QUEUE: usize = 4;

/// Objects on a WebDAV server (`http(s)://[user:pass@]host[:port]/path`), under the
/// collection the URL names.
#[derive(Clone)]
pub struct WebDavStorage {
    client: HttpClient,
    /// The collection, with credentials (from the destination's `credentials` when set
    /// there, else from the URL) and without a trailing `/`.
    base: Url,
    /// The collection's URL redacted, for messages and [`Storage::uri`].
    shown: String,
}

impl std::fmt::Debug for WebDavStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebDavStorage").field("uri", &self.shown).finish_non_exhaustive()
    }
}

impl WebDavStorage {
    /// Storage at `url` (the destination's http(s) URI parsed), reached through `client`
    /// and its URL policy. `username` and `password` in the destination's credentials
    /// replace those of the URL. Nothing is contacted yet.
    pub fn new(url: &Url, destination: &Destination, client: HttpClient) -> Result<WebDavStorage, Error> {
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(Error::InvalidDestination(
                "http destinations need an http(s)://host/path URI".to_owned(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::InvalidDestination("http destinations take no query or fragment".to_owned()));
        }
        let mut base = url.clone();
        let credential =
            |name: &str| destination.credentials.get(name).map(|secret| secret.expose().to_owned());
        let invalid = |()| Error::InvalidDestination("the URL cannot carry credentials".to_owned());
        if let Some(user) = credential("username") {
            base.set_username(&user).map_err(invalid)?;
        }
        if let Some(password) = credential("password") {
            base.set_password(Some(&password)).map_err(invalid)?;
        }
        let trimmed = base.path().trim_end_matches('/').to_owned();
        base.set_path(&trimmed);
        let shown = redact_uri(base.as_str()).trim_end_matches('/').to_owned();
        Ok(WebDavStorage { client, base, shown })
    }

    /// The URL of a valid key (or of the collection for `""`), with credentials.
    fn url_of(&self, key: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            if !key.is_empty() {
                segments.extend(key.split('/'));
            }
        }
        url
    }

    /// The URL of a collection: the same with a trailing `/`.
    fn collection_url(&self, prefix: &str) -> Url {
        let mut url = self.url_of(prefix);
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push("");
        }
        url
    }

    fn checked_key(&self, key: &str) -> Result<(), Error> {
        check_key(key)?;
        if key.split('/').any(is_partial_name) {
            return Err(Error::InvalidKey {
                key: key.to_owned(),
                reason: "names of the form .<name>.partial-<id> are reserved for unfinished writes",
            });
        }
        Ok(())
    }

    /// Names errors after `key` rather than the URL, as the trait's callers expect.
    fn for_key(key: &str, error: Error) -> Error {
        match error {
            Error::NotFound { .. } => Error::NotFound { key: key.to_owned() },
            other => other,
        }
    }

    /// A failure for an unexpected answer to `what`.
    fn unexpected(&self, key: &str, what: &str, status: StatusCode) -> Error {
        let key = format!("{} ({key})", self.shown);
        let detail = format!("the server answered {what} with {status}");
        match status.as_u16() {
            401 | 403 => Error::Denied { key, detail },
            405 | 501 if what == "MOVE" => Error::Unreachable {
                key,
                detail: format!("{detail}: http destinations need a WebDAV server (MOVE)"),
            },
            _ => Error::Unreachable { key, detail },
        }
    }

    /// Makes the collection `parent` (relative to the destination's) and those on the way
    /// to it, the destination's own included, for writing `key`: `MKCOL` of `parent` (`201` made, `405` there already); when that answers `409` (a
    /// level above is missing), `MKCOL` level by level from the top. Other answers are
    /// left for the `PUT` to report.
    async fn make_collections(&self, key: &str, parent: &str) -> Result<(), Error> {
        let mut levels = Vec::new();
        let mut url = self.base.clone();
        let mut path = String::new();
        let base_segments = self.base.path_segments().into_iter().flatten();
        let encoded: Vec<String> = parent
            .split('/')
            .filter(|part| !part.is_empty())
            .map(|part| percent_encoding::utf8_percent_encode(part, SEGMENT).to_string())
            .collect();
        for segment in base_segments.map(str::to_owned).chain(encoded).filter(|part| !part.is_empty()) {
            path.push('/');
            path.push_str(&segment);
            url.set_path(&format!("{path}/"));
            levels.push(url.clone());
        }
        let Some(deepest) = levels.last() else { return Ok(()) };
        let mkcol = || Method::from_bytes(b"MKCOL").expect("a valid method");
        let status = self.client.exchange(mkcol(), deepest, &|request| request).await?.status();
        match status.as_u16() {
            200..=299 | 405 => return Ok(()),
            401 | 403 => return Err(self.unexpected(key, "MKCOL", status)),
            _ => {}
        }
        for level in &levels {
            // A level above the destination may refuse (403, 405): the PUT says if it matters.
            self.client.exchange(mkcol(), level, &|request| request).await?;
        }
        Ok(())
    }

    /// Deletes the resource at `url`; absent is fine.
    ///
    /// `423 Locked` is waited out (a few seconds at most): a server may still hold the
    /// file of an upload just broken off, which is what aborts delete.
    async fn delete_url(&self, key: &str, url: &Url) -> Result<(), Error> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let response = self.client.exchange(Method::DELETE, url, &|request| request).await?;
            match response.status().as_u16() {
                200..=299 | 404 | 410 => return Ok(()),
                423 if attempt < LOCKED_ATTEMPTS => {}
                _ => return Err(self.unexpected(key, "DELETE", response.status())),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
            attempt += 1;
        }
    }

    /// `PROPFIND Depth: 1` of one collection: its members, as (URL path, size or `None`
    /// for a collection). An absent collection has none.
    async fn members(&self, prefix: &str) -> Result<Vec<(String, Option<u64>)>, Error> {
        let url = self.collection_url(prefix);
        let Some(found) = self.propfind(prefix, &url, "1").await? else { return Ok(Vec::new()) };
        let own_path = url.path().trim_end_matches('/').to_owned();
        Ok(found.into_iter().filter(|(path, _)| path.trim_end_matches('/') != own_path).collect())
    }

    /// What is at `key` (`PROPFIND Depth: 0`): `None` when nothing, `Some(None)` for a
    /// collection, `Some(Some(size))` for an object.
    async fn resource(&self, key: &str) -> Result<Option<Option<u64>>, Error> {
        let found = self.propfind(key, &self.url_of(key), "0").await?;
        Ok(found.and_then(|members| members.into_iter().next()).map(|(_, size)| size))
    }

    /// `PROPFIND` of `url` with `depth`, for `key` (in messages): the multistatus
    /// entries, `None` when absent.
    async fn propfind(
        &self,
        key: &str,
        url: &Url,
        depth: &'static str,
    ) -> Result<Option<Vec<(String, Option<u64>)>>, Error> {
        let body = r#"<?xml version="1.0" encoding="utf-8"?><propfind xmlns="DAV:"><prop><resourcetype/><getcontentlength/></prop></propfind>"#;
        let propfind = Method::from_bytes(b"PROPFIND").expect("a valid method");
        let configure = |request: RequestBuilder| {
            request.header("Depth", depth).header(reqwest::header::CONTENT_TYPE, "application/xml").body(body)
        };
        let response = self.client.exchange(propfind, url, &configure).await?;
        match response.status().as_u16() {
            207 => {}
            404 | 410 => return Ok(None),
            _ => return Err(self.unexpected(key, "PROPFIND", response.status())),
        }
        let text = response.text().await.map_err(|error| Error::Unreachable {
            key: self.shown.clone(),
            detail: format!("the listing broke off: {}", describe(&error)),
        })?;
        let found = parse_multistatus(&text)
            .map_err(|detail| Error::Unreachable { key: self.shown.clone(), detail })?;
        Ok(Some(found))
    }

    /// The key of a URL path below the base collection, if it is one.
    fn key_of_path(&self, path: &str) -> Option<String> {
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned();
        let base = percent_encoding::percent_decode_str(self.base.path()).decode_utf8_lossy().into_owned();
        let relative = decoded.strip_prefix(base.trim_end_matches('/'))?.strip_prefix('/')?;
        let relative = relative.trim_end_matches('/');
        (!relative.is_empty()).then(|| relative.to_owned())
    }
}

/// Whether a name is one of our temporary objects.
fn is_partial_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(PARTIAL_MARKER)
}

/// The `(href path, getcontentlength or None for a collection)` of each `response` in
/// a WebDAV multistatus document; namespace prefixes are ignored.
fn parse_multistatus(xml: &str) -> Result<Vec<(String, Option<u64>)>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut members = Vec::new();
    let mut href = String::new();
    let mut size: Option<u64> = None;
    let mut collection = false;
    let mut current = String::new();
    let mut depth = 0usize;
    let mut ended = false;
    loop {
        let event = reader.read_event().map_err(|error| format!("the listing is not valid XML: {error}"))?;
        match event {
            Event::Start(element) => {
                depth += 1;
                let name = element.local_name().as_ref().to_owned();
                if name == "response" {
                    (href, size, collection) = (String::new(), None, false);
                }
                current = name;
            }
            Event::Empty(element) if element.local_name().as_ref() == "collection" => {
                collection = true;
            }
            Event::Text(text) if ended && !text.xml10_content().trim().is_empty() => {
                // rclone appends its error message when a listing fails half-way.
                return Err("the listing broke off with an error".to_owned());
            }
            Event::Text(text) => {
                let text = text.xml10_content();
                match current.as_str() {
                    "href" => href.push_str(text.trim()),
                    "getcontentlength" => size = text.trim().parse().ok(),
                    _ => {}
                }
            }
            Event::GeneralRef(entity) if current == "href" => {
                let character = match entity.as_ref() {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => entity.resolve_char_ref().ok().flatten(),
                };
                href.extend(character);
            }
            Event::End(element) => {
                depth = depth.saturating_sub(1);
                ended = depth == 0;
                if element.local_name().as_ref() == "response" && !href.is_empty() {
                    // An href may be a full URL or an absolute path.
                    let path = match Url::parse(&href) {
                        Ok(url) => url.path().to_owned(),
                        Err(_) => href.clone(),
                    };
                    members.push((path, if collection { None } else { Some(size.unwrap_or(0)) }));
                }
                current.clear();
            }
            Event::Eof if ended => break,
            Event::Eof => return Err("the listing ended early".to_owned()),
            _ => {}
        }
    }
    Ok(members)
}

#[async_trait]
impl Storage for WebDavStorage {
    async fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>, Error> {
        self.checked_key(key)?;
        let (parent, name) = key.rsplit_once('/').unwrap_or(("", key));
        let partial =
            self.url_of(&format!("{UPLOADS}/.{name}{PARTIAL_MARKER}{}", uuid::Uuid::new_v4().simple()));
        // MOVE needs the target's collection; uploads go to their own (see UPLOADS).
        self.make_collections(key, parent).await?;
        self.make_collections(key, UPLOADS).await?;
        self.client.policy.check_url(&partial)?;

        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(PUT_QUEUE);
        let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let (bare, credentials) = split_credentials(&partial);
        let mut request = self.client.client.put(bare);
        if let Some((user, password)) = &credentials {
            request = request.basic_auth(user, Some(password));
        }
        let upload = tokio::spawn(request.body(body).send());
        Ok(Box::new(WebDavWriter {
            storage: self.clone(),
            key: key.to_owned(),
            partial: Some(partial),
            sender: Some(sender),
            upload: Some(upload),
            written: 0,
        }))
    }

    async fn reader(&self, key: &str, offset: u64) -> Result<ObjectReader, Error> {
        self.checked_key(key)?;
        // A GET of a collection answers a page about it, not an object.
        if !matches!(self.resource(key).await?, Some(Some(_))) {
            return Err(Error::NotFound { key: key.to_owned() });
        }
        self.client.open(&self.url_of(key), offset).await.map_err(|error| Self::for_key(key, error))
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>, Error> {
        self.checked_key(key)?;
        let size = self.resource(key).await?.flatten();
        Ok(size.map(|size| ObjectMeta { key: key.to_owned(), size }))
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.checked_key(key)?;
        // DELETE of a collection removes everything in it: a key naming one is no object.
        match self.resource(key).await? {
            Some(Some(_)) => self.delete_url(key, &self.url_of(key)).await,
            Some(None) | None => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let prefix = check_prefix(prefix)?;
        let mut objects = Vec::new();
        let mut pending = vec![prefix.to_owned()];
        while let Some(collection) = pending.pop() {
            for (path, size) in self.members(&collection).await? {
                let Some(key) = self.key_of_path(&path) else { continue };
                let name = key.rsplit('/').next().unwrap_or_default();
                match size {
                    _ if is_partial_name(name) => {}
                    None => pending.push(key),
                    Some(size) => objects.push(ObjectMeta { key, size }),
                }
            }
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    fn uri(&self, key: &str) -> String {
        format!("{}/{key}", self.shown)
    }
}

type Upload = tokio::task::JoinHandle<reqwest::Result<Response>>;

/// An object being uploaded (a `PUT` fed from a channel) to its temporary name.
struct WebDavWriter {
    storage: WebDavStorage,
    key: String,
    /// The temporary URL; `None` once moved into place or deleted.
    partial: Option<Url>,
    /// The body's feed; `None` after a cancelled or failed write.
    sender: Option<tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>>,
    upload: Option<Upload>,
    written: u64,
}

impl WebDavWriter {
    fn broken(&self, detail: String) -> Error {
        Error::Unreachable { key: format!("{} ({})", self.storage.shown, self.key), detail }
    }

    /// Waits for the `PUT` to be answered; a success status only.
    async fn finish_upload(&mut self) -> Result<(), Error> {
        let Some(upload) = self.upload.take() else {
            return Err(self.broken("an earlier write was cancelled or failed".to_owned()));
        };
        let response = match upload.await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                if let Some(refused) = refusal(&error) {
                    return Err(Error::Refused(refused));
                }
                return Err(self.broken(format!("the upload failed: {}", describe(&error))));
            }
            Err(error) => return Err(self.broken(format!("the upload task failed: {error}"))),
        };
        match response.status().as_u16() {
            200..=299 => Ok(()),
            _ => Err(self.storage.unexpected(&self.key, "PUT", response.status())),
        }
    }
}

#[async_trait]
impl ObjectWriter for WebDavWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        // Taken while sending: a dropped future leaves the writer poisoned.
        let Some(sender) = self.sender.take() else {
            return Err(self.broken("an earlier write was cancelled or failed".to_owned()));
        };
        let size = chunk.len() as u64;
        if chunk.is_empty() {
            self.sender = Some(sender);
            return Ok(());
        }
        if sender.send(Ok(chunk)).await.is_err() {
            // The request ended before its body: its answer says why.
            drop(sender);
            self.finish_upload().await?;
            return Err(self.broken("the server ended the upload early".to_owned()));
        }
        self.written += size;
        self.sender = Some(sender);
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, Error> {
        let Some(sender) = self.sender.take() else {
            return Err(self.broken("an earlier write was cancelled or failed".to_owned()));
        };
        drop(sender); // ends the body
        self.finish_upload().await?;
        let Some(partial) = self.partial.clone() else {
            return Err(self.broken("the upload was already finished".to_owned()));
        };
        let target = self.storage.url_of(&self.key);
        let (destination, _) = split_credentials(&target);
        let destination = destination.to_string();
        let configure = move |request: RequestBuilder| {
            request.header("Destination", destination.as_str()).header("Overwrite", "T")
        };
        let moved = Method::from_bytes(b"MOVE").expect("a valid method");
        let response = self.storage.client.exchange(moved, &partial, &configure).await?;
        if !response.status().is_success() {
            return Err(self.storage.unexpected(&self.key, "MOVE", response.status()));
        }
        self.partial = None;
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        if let Some(sender) = self.sender.take() {
            // Fail the body so that the server does not take it as complete.
            let _ = sender.try_send(Err(std::io::Error::other("the upload was aborted")));
        }
        if let Some(mut upload) = self.upload.take() {
            // Let the request end (the failed body breaks it off) before deleting what
            // the server kept; a server that does not answer is cut off.
            if tokio::time::timeout(ABORT_WAIT, &mut upload).await.is_err() {
                upload.abort();
            }
        }
        let Some(partial) = self.partial.take() else { return Ok(()) };
        self.storage.delete_url(&self.key, &partial).await
    }
}

impl Drop for WebDavWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort();
        }
        // Neither committed nor aborted: delete whatever the server kept, from a task.
        let Some(partial) = self.partial.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let storage = self.storage.clone();
        let key = self.key.clone();
        runtime.spawn(async move {
            if let Err(error) = storage.delete_url(&key, &partial).await {
                tracing::warn!(%error, "cannot delete the temporary object of an abandoned upload");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::domain::ResourceName;
    use crate::net::{self, UrlPolicy};
    use crate::storage::suite;
    use crate::storage::test_servers::StorageServer;

    fn storage_at(uri: &str, credentials: &[(&str, &str)]) -> WebDavStorage {
        let destination =
            Destination::unregistered(ResourceName::parse("dav").unwrap(), uri, credentials, &[]);
        let client =
            HttpClient::new(UrlPolicy::new(vec![net::AllowedHost::parse("127.0.0.1").unwrap()])).unwrap();
        WebDavStorage::new(&Url::parse(uri).unwrap(), &destination, client).unwrap()
    }

    async fn wait_for_files(server: &StorageServer, expected: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.files() != expected {
            assert!(Instant::now() < deadline, "files left on the server: {:?}", server.files());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn passes_the_shared_suite() {
        let server = StorageServer::webdav(Some(("cellar", "pw-hunter2")));
        let uri = format!("http://cellar:pw-hunter2@127.0.0.1:{}/backups/cellar", server.port);
        let storage = storage_at(&uri, &[]);
        assert_eq!(
            storage.uri("k"),
            format!("http://cellar:****@127.0.0.1:{}/backups/cellar/k", server.port)
        );
        suite::run_all(&storage).await;
        // 64 MiB, generated and checked one 64 KiB chunk at a time.
        suite::large_object(&storage, "big", 1024).await;
        wait_for_files(&server, &[]).await;
    }

    #[tokio::test]
    async fn temporaries_are_hidden_until_the_move() {
        let server = StorageServer::webdav(None);
        let storage = storage_at(&format!("http://127.0.0.1:{}/", server.port), &[]);
        let mut writer = storage.writer("db/b/dump").await.unwrap();
        writer.write(Bytes::from(vec![7u8; 1 << 20])).await.unwrap();
        assert!(storage.list("").await.unwrap().is_empty(), "nothing is listed before commit");
        assert_eq!(writer.commit().await.unwrap(), 1 << 20);
        assert_eq!(server.files(), ["db/b/dump"]);
        assert_eq!(
            storage.list("db").await.unwrap(),
            [ObjectMeta { key: "db/b/dump".to_owned(), size: 1 << 20 }]
        );
    }

    #[tokio::test]
    async fn wrong_credentials_are_denied_and_never_shown() {
        let server = StorageServer::webdav(Some(("cellar", "pw-hunter2")));
        let uri = format!("http://127.0.0.1:{}/d", server.port);
        let storage = storage_at(&uri, &[("username", "cellar"), ("password", "wrong-hunter2")]);
        let errors = [
            storage.reader("k", 0).await.map(|_| ()).unwrap_err(),
            storage.stat("k").await.map(|_| ()).unwrap_err(),
            storage.delete("k").await.unwrap_err(),
            storage.list("").await.map(|_| ()).unwrap_err(),
        ];
        for error in errors {
            assert!(matches!(error, Error::Denied { .. }), "{error:?}");
            assert!(!format!("{error} {error:?}").contains("hunter2"), "{error:?}");
        }
        let error = match storage.writer("k").await {
            Ok(mut writer) => {
                let _ = writer.write(Bytes::from_static(b"x")).await;
                writer.commit().await.unwrap_err()
            }
            Err(error) => error,
        };
        assert!(matches!(error, Error::Denied { .. }), "{error:?}");
        assert!(!format!("{error} {error:?}").contains("hunter2"), "{error:?}");
    }

    #[tokio::test]
    async fn a_key_naming_a_collection_is_no_object_and_is_never_deleted() {
        let server = StorageServer::webdav(None);
        let storage = storage_at(&format!("http://127.0.0.1:{}/", server.port), &[]);
        let mut writer = storage.writer("d/e").await.unwrap();
        writer.write(Bytes::from_static(b"x")).await.unwrap();
        writer.commit().await.unwrap();
        assert_eq!(storage.stat("d").await.unwrap(), None);
        assert!(matches!(storage.reader("d", 0).await, Err(Error::NotFound { .. })));
        storage.delete("d").await.unwrap();
        assert_eq!(storage.stat("d/e").await.unwrap().map(|meta| meta.size), Some(1));
    }

    #[test]
    fn multistatus_listings() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
            <D:multistatus xmlns:D="DAV:">
              <D:response><D:href>/dav/db/</D:href><D:propstat><D:prop>
                <D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
              <D:response><D:href>http://h/dav/db/a%20b&amp;c</D:href><D:propstat><D:prop>
                <D:resourcetype/><D:getcontentlength>42</D:getcontentlength></D:prop></D:propstat></D:response>
              <response xmlns="DAV:"><href>/dav/db/sub/</href><propstat><prop>
                <resourcetype><collection/></resourcetype></prop></propstat></response>
            </D:multistatus>"#;
        assert_eq!(
            parse_multistatus(xml).unwrap(),
            vec![
                ("/dav/db/".to_owned(), None),
                ("/dav/db/a%20b&c".to_owned(), Some(42)),
                ("/dav/db/sub/".to_owned(), None),
            ]
        );
        assert!(parse_multistatus("<a><b></a>").is_err());
        assert!(parse_multistatus("<multistatus><response>").is_err(), "cut short");
        assert!(parse_multistatus("<multistatus></multistatus>Internal Server Error").is_err());
    }
}

//! Object-store backends (S3 and S3-compatible stores, Google Cloud Storage, Azure Blob)
//! over the `object_store` crate.
//!
//! A write buffers up to one part in memory; an object that fits in one part is sent
//! with a single `PUT` at commit, a larger one goes as a multipart upload (S3 and GCS
//! multipart uploads, Azure block lists) with at most [`PARTS_IN_FLIGHT`] parts
//! uploading at once, so a writer holds at most `(PARTS_IN_FLIGHT + 1) * part size`
//! bytes whatever the object's size. The object appears only when the upload completes
//! at commit; abort, or a drop without commit, aborts the multipart upload so that no
//! parts are left behind. Transient failures are retried with backoff by
//! `object_store`'s client; permission and not-found errors fail at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::azure::{AzureAccessKey, AzureCredential, MicrosoftAzureBuilder};
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, PutPayload, RetryConfig,
    StaticCredentialProvider, WriteMultipart,
};
use url::Url;

use super::location::{ObjectLocation, StoreSettings};
use super::{Error, ObjectMeta, ObjectReader, ObjectWriter, Storage, check_key};

/// The default size of one uploaded part. S3 wants at least 5 MiB for every part but
/// the last, and at most 10,000 parts: 16 MiB parts allow objects of 156 GiB.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;

/// How many parts of one object upload at once.
pub const PARTS_IN_FLIGHT: usize = 2;

/// An S3, GCS or Azure bucket (or container) under a prefix.
#[derive(Clone)]
pub struct ObjectStorage {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    /// `None` for a store that cannot sign URLs.
    signer: Option<Arc<dyn Signer>>,
    location: ObjectLocation,
    /// Credential values scrubbed from every error message, in case a store repeats one
    /// (a SAS token is part of every request URL).
    secrets: Vec<String>,
    part_size: usize,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("uri", &self.inner.location.display_uri())
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// Sets up the client for `location`. No request is made: a wrong bucket or
    /// credentials show on first use.
    pub fn open(location: ObjectLocation) -> Result<ObjectStorage, Error> {
        let secrets = location.secrets();
        let setup_error = |error: object_store::Error| {
            Error::InvalidDestination(scrub(&format!("cannot set up the client: {error}"), &secrets))
        };
        let (store, signer): (Arc<dyn ObjectStore>, Arc<dyn Signer>) = match &location.store {
            StoreSettings::S3 { .. } => {
                let store = Arc::new(s3_builder(&location).build().map_err(setup_error)?);
                (store.clone(), store)
            }
            StoreSettings::Gcs { .. } => {
                let store = Arc::new(gcs_builder(&location).build().map_err(setup_error)?);
                (store.clone(), store)
            }
            StoreSettings::Azure { .. } => {
                let store =
                    Arc::new(azure_builder(&location).map_err(setup_error)?.build().map_err(setup_error)?);
                (store.clone(), store)
            }
        };
        // A shared access signature cannot sign another one.
        let signs =
            !matches!(location.store, StoreSettings::Azure { access_key: None, sas_token: Some(_), .. });
        let signer = signs.then_some(signer);
        Ok(ObjectStorage {
            inner: Arc::new(Inner { store, signer, location, secrets, part_size: DEFAULT_PART_SIZE }),
        })
    }

    /// Storage over any `object_store` client, without URL signing (tests wrap clients
    /// to watch what reaches them).
    pub fn from_store(store: Arc<dyn ObjectStore>, location: ObjectLocation) -> ObjectStorage {
        let secrets = location.secrets();
        let inner = Inner { store, signer: None, location, secrets, part_size: DEFAULT_PART_SIZE };
        ObjectStorage { inner: Arc::new(inner) }
    }

    /// The same storage with another part size (tests use small parts to exercise
    /// multipart uploads with little data).
    pub fn with_part_size(self, part_size: usize) -> ObjectStorage {
        let inner = &self.inner;
        let location = inner.location.clone();
        let (store, signer, secrets) = (inner.store.clone(), inner.signer.clone(), inner.secrets.clone());
        ObjectStorage { inner: Arc::new(Inner { store, signer, location, secrets, part_size }) }
    }

    fn path_of(&self, key: &str) -> Result<Path, Error> {
        check_key(key)?;
        Ok(self.inner.path_of(key))
    }
}

impl Inner {
    fn path_of(&self, key: &str) -> Path {
        match self.location.prefix.as_str() {
            "" => Path::from(key),
            prefix => Path::from(format!("{prefix}/{key}")),
        }
    }

    /// The key of a listed path, `None` for one outside the prefix.
    fn key_of(&self, path: &Path) -> Option<String> {
        let path = path.as_ref();
        match self.location.prefix.as_str() {
            "" => Some(path.to_owned()),
            prefix => path.strip_prefix(prefix)?.strip_prefix('/').map(str::to_owned),
        }
    }

    fn uri(&self, key: &str) -> String {
        format!("{}/{key}", self.location.display_uri())
    }

    /// Maps an `object_store` error on `key` to ours, scrubbing secrets from the text.
    fn error(&self, key: &str, error: object_store::Error) -> Error {
        let detail = || scrub(&error.to_string(), &self.secrets);
        let status = match &error {
            object_store::Error::NotFound { .. } => Some(404),
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                Some(403)
            }
            other => http_status_in(other),
        };
        match status {
            Some(404) => Error::NotFound { key: key.to_owned() },
            Some(401 | 403) => Error::Denied { key: self.uri(key), detail: detail() },
            _ => Error::Unreachable { key: self.uri(key), detail: detail() },
        }
    }
}

/// The HTTP status an error was caused by. Some operations (S3 listing, multipart
/// steps) wrap the status error in a `Generic` error whose source type is private, so
/// the status is read from the text the source chain shows.
fn http_status_in(error: &(dyn std::error::Error + 'static)) -> Option<u16> {
    const MARK: &str = "Server returned non-2xx status code: ";
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if let Some(status) = text.strip_prefix(MARK).and_then(|rest| rest.get(..3)) {
            return status.parse().ok();
        }
        current = error.source();
    }
    None
}

/// Replaces every secret in `text` with `****`, and the query of every URL in it (a
/// SAS token or a presigned request travels there, encoded anew by the client, so it
/// may not match the secret as given).
fn scrub(text: &str, secrets: &[String]) -> String {
    let without_queries: Vec<String> = text
        .split(' ')
        .map(|word| match (word.contains("://"), word.split_once('?')) {
            (true, Some((url, _query))) => format!("{url}?****"),
            _ => word.to_owned(),
        })
        .collect();
    secrets.iter().fold(without_queries.join(" "), |text, secret| text.replace(secret.as_str(), "****"))
}

fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(60),
    }
}

fn client_options(allow_http: bool) -> ClientOptions {
    // The timeout covers a whole request, body included: a part of 16 MiB, or a GET
    // streaming a large object to a slow consumer, needs far more than the default 30 s.
    // A dead peer is still caught by the connect timeout and the retries.
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(6 * 60 * 60))
        .with_allow_http(allow_http)
}

fn s3_builder(location: &ObjectLocation) -> AmazonS3Builder {
    let StoreSettings::S3 {
        endpoint,
        region,
        allow_http,
        virtual_hosted_style,
        access_key_id,
        secret_access_key,
        session_token,
    } = &location.store
    else {
        unreachable!("s3_builder is called for s3 locations")
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&location.bucket)
        .with_client_options(client_options(*allow_http))
        .with_allow_http(*allow_http)
        .with_retry(retry_config());
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = region {
        builder = builder.with_region(region);
    }
    if let Some(virtual_hosted_style) = virtual_hosted_style {
        builder = builder.with_virtual_hosted_style_request(*virtual_hosted_style);
    }
    if let (Some(key_id), Some(secret_key)) = (access_key_id, secret_access_key) {
        // A static provider, so that no session token from the environment is mixed with
        // keys given here.
        let credential = AwsCredential {
            key_id: key_id.expose().to_owned(),
            secret_key: secret_key.expose().to_owned(),
            token: session_token.as_ref().map(|token| token.expose().to_owned()),
        };
        builder = builder.with_credentials(Arc::new(StaticCredentialProvider::new(credential)));
    }
    builder
}

fn gcs_builder(location: &ObjectLocation) -> GoogleCloudStorageBuilder {
    let StoreSettings::Gcs { service_account_key, access_token, allow_http } = &location.store else {
        unreachable!("gcs_builder is called for gs locations")
    };
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&location.bucket)
        .with_client_options(client_options(*allow_http))
        .with_retry(retry_config());
    if let Some(key) = service_account_key {
        builder = builder.with_service_account_key(key.expose());
    }
    if let Some(token) = access_token {
        let credential = GcpCredential { bearer: token.expose().trim().to_owned() };
        builder = builder.with_credentials(Arc::new(StaticCredentialProvider::new(credential)));
    }
    builder
}

fn azure_builder(location: &ObjectLocation) -> Result<MicrosoftAzureBuilder, object_store::Error> {
    let StoreSettings::Azure { account, access_key, sas_token, endpoint, allow_http, use_emulator } =
        &location.store
    else {
        unreachable!("azure_builder is called for abs and az locations")
    };
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_container_name(&location.bucket)
        .with_client_options(client_options(*allow_http))
        .with_allow_http(*allow_http)
        .with_retry(retry_config());
    if let Some(account) = account {
        builder = builder.with_account(account);
    }
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    if *use_emulator {
        builder = builder.with_use_emulator(true);
        if let Some(key) = access_key {
            builder = builder.with_access_key(key.expose());
        }
    }
    let credential = match (access_key, sas_token) {
        (Some(key), _) => Some(AzureCredential::AccessKey(AzureAccessKey::try_new(key.expose().trim())?)),
        (None, Some(token)) => {
            let token = token.expose().trim().trim_start_matches('?');
            let pairs = url::form_urlencoded::parse(token.as_bytes()).into_owned().collect();
            Some(AzureCredential::SASToken(pairs))
        }
        (None, None) => None,
    };
    if let Some(credential) = credential {
        builder = builder.with_credentials(Arc::new(StaticCredentialProvider::new(credential)));
    }
    Ok(builder)
}

#[async_trait]
impl Storage for ObjectStorage {
    async fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>, Error> {
        let path = self.path_of(key)?;
        Ok(Box::new(ObjectStoreWriter {
            inner: self.inner.clone(),
            key: key.to_owned(),
            path,
            state: WriteState::Buffering { chunks: Vec::new(), buffered: 0 },
            size: 0,
            poisoned: false,
        }))
    }

    async fn reader(&self, key: &str, offset: u64) -> Result<ObjectReader, Error> {
        let path = self.path_of(key)?;
        let inner = &self.inner;
        if offset > 0 {
            // A range starting at the end is refused by some stores: answer it here.
            let meta = inner.store.head(&path).await.map_err(|error| inner.error(key, error))?;
            if offset >= meta.size {
                return Ok(ObjectReader { size: Some(meta.size), body: Box::pin(tokio::io::empty()) });
            }
        }
        let options =
            GetOptions { range: (offset > 0).then_some(GetRange::Offset(offset)), ..GetOptions::default() };
        let result = inner.store.get_opts(&path, options).await.map_err(|error| inner.error(key, error))?;
        let size = result.meta.size;
        let reader_inner = inner.clone();
        let reader_key = key.to_owned();
        let stream = result
            .into_stream()
            .map_err(move |error| std::io::Error::other(reader_inner.error(&reader_key, error)));
        Ok(ObjectReader { size: Some(size), body: Box::pin(tokio_util::io::StreamReader::new(stream)) })
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>, Error> {
        let path = self.path_of(key)?;
        match self.inner.store.head(&path).await.map_err(|error| self.inner.error(key, error)) {
            Ok(meta) => Ok(Some(ObjectMeta { key: key.to_owned(), size: meta.size })),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = self.path_of(key)?;
        match self.inner.store.delete(&path).await.map_err(|error| self.inner.error(key, error)) {
            Ok(()) | Err(Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let inner = &self.inner;
        let prefix = super::check_prefix(prefix)?;
        let path = match prefix {
            "" => match inner.location.prefix.as_str() {
                "" => None,
                root => Some(Path::from(root)),
            },
            prefix => Some(self.path_of(prefix)?),
        };
        let listed: Vec<object_store::ObjectMeta> = inner
            .store
            .list(path.as_ref())
            .try_collect()
            .await
            .map_err(|error| inner.error(prefix, error))?;
        let mut objects: Vec<ObjectMeta> = listed
            .into_iter()
            .filter_map(|meta| Some(ObjectMeta { key: inner.key_of(&meta.location)?, size: meta.size }))
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    fn uri(&self, key: &str) -> String {
        self.inner.uri(key)
    }

    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<Option<Url>, Error> {
        let path = self.path_of(key)?;
        let Some(signer) = &self.inner.signer else { return Ok(None) };
        let url = signer
            .signed_url(http::Method::GET, &path, expires_in)
            .await
            .map_err(|error| self.inner.error(key, error))?;
        Ok(Some(url))
    }
}

/// A write in progress: parts buffered, then (for an object larger than one part) a
/// multipart upload.
struct ObjectStoreWriter {
    inner: Arc<Inner>,
    key: String,
    path: Path,
    state: WriteState,
    size: u64,
    /// Set while a future of `write` is at an await point: if it is dropped there, the
    /// chunk may be half-taken and the writer must not commit.
    poisoned: bool,
}

enum WriteState {
    /// Less than one part written: nothing sent yet.
    Buffering { chunks: Vec<Bytes>, buffered: usize },
    /// A multipart upload under way.
    Uploading(Box<WriteMultipart>),
    /// Committed or aborted.
    Finished,
}

impl ObjectStoreWriter {
    fn error(&self, error: object_store::Error) -> Error {
        self.inner.error(&self.key, error)
    }

    fn unusable(&self) -> Error {
        Error::Io {
            key: self.key.clone(),
            source: std::io::Error::other("the writer was interrupted mid-write and cannot commit"),
        }
    }

    /// Starts the multipart upload and hands it the buffered chunks.
    async fn start_upload(&mut self, chunks: Vec<Bytes>) -> Result<(), Error> {
        let upload = self.inner.store.put_multipart(&self.path).await.map_err(|error| self.error(error))?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, self.inner.part_size);
        for chunk in chunks {
            upload.put(chunk);
        }
        self.state = WriteState::Uploading(Box::new(upload));
        Ok(())
    }
}

#[async_trait]
impl ObjectWriter for ObjectStoreWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<(), Error> {
        if self.poisoned {
            return Err(self.unusable());
        }
        self.size += chunk.len() as u64;
        match &mut self.state {
            WriteState::Buffering { chunks, buffered } => {
                *buffered += chunk.len();
                chunks.push(chunk);
                if *buffered < self.inner.part_size {
                    return Ok(());
                }
                let chunks = std::mem::take(chunks);
                self.poisoned = true;
                self.start_upload(chunks).await?;
                self.poisoned = false;
                Ok(())
            }
            WriteState::Uploading(upload) => {
                self.poisoned = true;
                let waited = upload.wait_for_capacity(PARTS_IN_FLIGHT).await;
                if let Err(error) = waited {
                    return Err(self.error(error));
                }
                upload.put(chunk);
                self.poisoned = false;
                Ok(())
            }
            WriteState::Finished => Err(self.unusable()),
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, Error> {
        if self.poisoned {
            return Err(self.unusable());
        }
        match std::mem::replace(&mut self.state, WriteState::Finished) {
            WriteState::Buffering { chunks, .. } => {
                let payload: PutPayload = chunks.into_iter().collect();
                self.inner.store.put(&self.path, payload).await.map_err(|error| self.error(error))?;
            }
            WriteState::Uploading(mut upload) => {
                // Every part first: a failed part leaves the upload to abort here (finish
                // would return without aborting); a failed completion is aborted by finish.
                if let Err(error) = upload.wait_for_capacity(0).await {
                    let _ = upload.abort().await;
                    return Err(self.error(error));
                }
                upload.finish().await.map_err(|error| self.error(error))?;
            }
            WriteState::Finished => return Err(self.unusable()),
        }
        Ok(self.size)
    }

    async fn abort(mut self: Box<Self>) -> Result<(), Error> {
        match std::mem::replace(&mut self.state, WriteState::Finished) {
            WriteState::Uploading(upload) => upload.abort().await.map_err(|error| self.error(error)),
            WriteState::Buffering { .. } | WriteState::Finished => Ok(()),
        }
    }
}

impl Drop for ObjectStoreWriter {
    fn drop(&mut self) {
        let WriteState::Uploading(upload) = std::mem::replace(&mut self.state, WriteState::Finished) else {
            return;
        };
        // Dropped without commit or abort (a cancelled job): abort the multipart upload
        // in the background so that its parts do not linger (and cost) on the store.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(key = %self.key, "a multipart upload was left behind: no runtime to abort it");
            return;
        };
        let (inner, key) = (self.inner.clone(), self.key.clone());
        runtime.spawn(async move {
            if let Err(error) = upload.abort().await {
                let error = inner.error(&key, error);
                tracing::warn!(%key, %error, "aborting a dropped multipart upload failed");
            }
        });
    }
}

#[cfg(test)]
mod tests;

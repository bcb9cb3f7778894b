//! Tests of the object-store backends.

use super::*;
use crate::domain::{Destination, ResourceName};
use crate::storage::suite;
use crate::storage::test_stores::{AZURITE_ACCOUNT, AZURITE_KEY, Azurite, Moto};

fn destination(uri: &str, credentials: &[(&str, &str)], options: &[(&str, &str)]) -> Destination {
    Destination::unregistered(ResourceName::parse("test").unwrap(), uri, credentials, options)
}

fn open(destination: &Destination) -> ObjectStorage {
    let location = ObjectLocation::parse(destination).expect("a valid destination").expect("an object store");
    ObjectStorage::open(location).expect("opening the store")
}

fn s3(moto: &Moto, secret_access_key: &str) -> ObjectStorage {
    let uri = format!("s3://{}/backups", moto.bucket);
    let credentials =
        [("access_key_id", moto.access_key_id.as_str()), ("secret_access_key", secret_access_key)];
    let endpoint = moto.endpoint();
    let options = [("endpoint", endpoint.as_str()), ("allow_http", "true"), ("region", "us-east-1")];
    open(&destination(&uri, &credentials, &options))
}

fn azure(azurite: &Azurite, uri: &str, credentials: &[(&str, &str)]) -> ObjectStorage {
    let endpoint = azurite.endpoint();
    open(&destination(uri, credentials, &[("endpoint", endpoint.as_str()), ("allow_http", "true")]))
}

/// Polls until the multipart uploads in progress are `expected` (a dropped writer
/// aborts its upload from a background task).
async fn wait_for_uploads(moto: &Moto, expected: &[String]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let uploads = tokio::task::block_in_place(|| moto.multipart_uploads());
        if uploads == expected {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "multipart uploads in progress: {uploads:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn write_parts(storage: &ObjectStorage, key: &str, bytes: usize) -> Box<dyn ObjectWriter> {
    let mut writer = storage.writer(key).await.expect("starting a write");
    for _ in 0..bytes / (1024 * 1024) {
        writer.write(Bytes::from(vec![7u8; 1024 * 1024])).await.expect("writing");
    }
    writer
}

fn assert_denied<T: std::fmt::Debug>(result: Result<T, Error>, secret: &str) {
    match result {
        Err(error @ Error::Denied { .. }) => {
            let message = error.to_string();
            assert!(!message.contains(secret), "the message shows the secret: {message}");
        }
        other => panic!("expected access denied, got {other:?}"),
    }
}

#[test]
fn scrubbing_hides_secrets_and_url_queries() {
    let text = "Error performing GET https://a.blob.core.windows.net/c/k?sv=2022&sig=abc%2Bd in 1s - \
                key s3cr3t refused";
    assert_eq!(
        scrub(text, &["s3cr3t".to_owned()]),
        "Error performing GET https://a.blob.core.windows.net/c/k?**** in 1s - key **** refused"
    );
    assert_eq!(scrub("what? no url", &[]), "what? no url");
}

/// An in-memory store that counts the bytes of the parts being uploaded, each part
/// taking a moment as over a network.
#[derive(Debug, Default)]
struct CountingStore {
    inner: object_store::memory::InMemory,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    peak_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Display for CountingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountingStore")
    }
}

#[derive(Debug)]
struct CountingUpload {
    inner: Box<dyn object_store::MultipartUpload>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    peak_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait]
impl object_store::MultipartUpload for CountingUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        use std::sync::atomic::Ordering::SeqCst;
        let size = data.content_length();
        let now = self.in_flight.fetch_add(size, SeqCst) + size;
        self.peak_in_flight.fetch_max(now, SeqCst);
        let part = self.inner.put_part(data);
        let in_flight = self.in_flight.clone();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let result = part.await;
            in_flight.fetch_sub(size, SeqCst);
            result
        })
    }

    async fn complete(&mut self) -> object_store::Result<object_store::PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        options: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, options).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        options: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, options).await?;
        let (in_flight, peak_in_flight) = (self.in_flight.clone(), self.peak_in_flight.clone());
        Ok(Box::new(CountingUpload { inner, in_flight, peak_in_flight }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_write_holds_at_most_the_parts_in_flight() {
    const PART: usize = 1024 * 1024;
    let counting = Arc::new(CountingStore::default());
    let location = ObjectLocation::parse(&destination("s3://bucket/p", &[], &[])).unwrap().unwrap();
    let storage = ObjectStorage::from_store(counting.clone(), location).with_part_size(PART);
    assert_eq!(storage.presign_get("a", Duration::from_secs(1)).await.expect("presign"), None);

    // 64 MiB in 64 KiB chunks, far faster than the parts can be uploaded.
    let mut writer = storage.writer("large").await.expect("starting a write");
    let chunk = Bytes::from(vec![1u8; 64 * 1024]);
    for _ in 0..1024 {
        writer.write(chunk.clone()).await.expect("writing");
    }
    assert_eq!(writer.commit().await.expect("committing"), 64 * 1024 * 1024);
    assert_eq!(storage.stat("large").await.expect("stat").map(|meta| meta.size), Some(64 * 1024 * 1024));

    let peak = counting.peak_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert!(peak >= PART, "the object went up in parts (peak {peak})");
    assert!(peak <= PARTS_IN_FLIGHT * PART, "at most {PARTS_IN_FLIGHT} parts in flight, saw {peak} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_passes_the_shared_suite() {
    let moto = tokio::task::block_in_place(Moto::start);
    let storage = s3(&moto, &moto.secret_access_key);
    suite::run_all_with(&storage, suite::Abilities { fetch_presigned: false }).await;
    wait_for_uploads(&moto, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_presigned_get_fetches_the_object() {
    let moto = tokio::task::block_in_place(Moto::start_unchecked);
    let storage = s3(&moto, &moto.secret_access_key);
    let url = storage.presign_get("a/b", Duration::from_secs(60)).await.expect("presign").expect("a URL");
    let query = url.query().unwrap_or_default();
    assert!(query.contains("X-Amz-Signature=") && query.contains("X-Amz-Expires=60"), "{url}");
    assert!(!url.as_str().contains(&moto.secret_access_key), "{url}");
    suite::presigned_urls_fetch_the_object(&storage, "presign").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_abort_and_drop_leave_no_multipart_upload() {
    let moto = tokio::task::block_in_place(Moto::start);
    let storage = s3(&moto, &moto.secret_access_key).with_part_size(5 * 1024 * 1024);
    let key = "parts/object";

    let writer = write_parts(&storage, key, 6 * 1024 * 1024).await;
    wait_for_uploads(&moto, &["backups/parts/object".to_owned()]).await;
    writer.abort().await.expect("aborting");
    wait_for_uploads(&moto, &[]).await;
    assert_eq!(storage.stat(key).await.expect("stat"), None);

    let writer = write_parts(&storage, key, 6 * 1024 * 1024).await;
    wait_for_uploads(&moto, &["backups/parts/object".to_owned()]).await;
    drop(writer);
    wait_for_uploads(&moto, &[]).await;
    assert_eq!(storage.stat(key).await.expect("stat"), None);

    // Several parts, committed: one object of the whole size, nothing left over.
    let writer = write_parts(&storage, key, 12 * 1024 * 1024).await;
    assert_eq!(writer.commit().await.expect("committing"), 12 * 1024 * 1024);
    assert_eq!(storage.stat(key).await.expect("stat").map(|meta| meta.size), Some(12 * 1024 * 1024));
    wait_for_uploads(&moto, &[]).await;
    storage.delete(key).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_credentials_are_denied_without_showing_them() {
    let moto = tokio::task::block_in_place(Moto::start);
    let wrong = "wrong-secret-5e1f0c";
    let storage = s3(&moto, wrong);
    let mut writer = storage.writer("denied/object").await.expect("starting a write");
    writer.write(Bytes::from_static(b"data")).await.expect("buffering");
    assert_denied(writer.commit().await, wrong);
    assert_denied(storage.reader("denied/object", 0).await, wrong);
    assert_denied(storage.stat("denied/object").await, wrong);
    assert_denied(storage.list("denied").await, wrong);
    assert_denied(storage.delete("denied/object").await, wrong);
}

/// GCS through its XML API, which speaks S3's protocol, against moto: the
/// `gcs_base_url` field of a service account key points `object_store`'s GCS client
/// at it, and a static `access_token` shaped like an AWS credential scope makes moto
/// route the bearer-authenticated requests to its S3 service (it checks no
/// signature). See the README for what this does and does not prove.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_passes_the_shared_suite_against_an_xml_api_stand_in() {
    let moto = tokio::task::block_in_place(Moto::start_unchecked);
    let key = serde_json::json!({
        "type": "service_account",
        "client_email": "cellar@example.iam.gserviceaccount.com",
        "private_key": "",
        "private_key_id": "",
        "gcs_base_url": moto.endpoint(),
        "disable_oauth": true,
    });
    let uri = format!("gs://{}/backups", moto.bucket);
    let key = key.to_string();
    let credentials = [
        ("service_account_key", key.as_str()),
        ("access_token", "cellar/20250101/us-east-1/s3/aws4_request"),
    ];
    let storage = open(&destination(&uri, &credentials, &[("allow_http", "true")]));
    assert_eq!(storage.uri("a/b"), format!("gs://{}/backups/a/b", moto.bucket));
    suite::run_all_with(&storage, suite::Abilities { fetch_presigned: false }).await;

    // Multipart (GCS's XML multipart uploads) with small parts, then nothing left.
    let storage = storage.with_part_size(5 * 1024 * 1024);
    let writer = write_parts(&storage, "parts/object", 12 * 1024 * 1024).await;
    assert_eq!(writer.commit().await.expect("committing"), 12 * 1024 * 1024);
    let writer = write_parts(&storage, "parts/dropped", 6 * 1024 * 1024).await;
    drop(writer);
    wait_for_uploads(&moto, &[]).await;
    storage.delete("parts/object").await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_passes_the_shared_suite() {
    let azurite = tokio::task::block_in_place(Azurite::start);
    let uri = format!("az://{}/backups", azurite.container);
    let storage = azure(&azurite, &uri, &[("account", AZURITE_ACCOUNT), ("access_key", AZURITE_KEY)]);
    assert_eq!(storage.uri("a/b"), format!("abs://{AZURITE_ACCOUNT}/{}/backups/a/b", azurite.container));
    suite::run_all(&storage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_with_a_sas_token_passes_the_shared_suite_and_signs_no_urls() {
    let azurite = tokio::task::block_in_place(Azurite::start);
    let sas = tokio::task::block_in_place(|| azurite.container_sas());
    let uri = format!("az://{}/sas", azurite.container);
    let storage = azure(&azurite, &uri, &[("account_name", AZURITE_ACCOUNT), ("sas_token", &sas)]);
    suite::run_all_with(&storage, suite::Abilities { fetch_presigned: false }).await;
    let presigned = storage.presign_get("a", Duration::from_secs(60)).await.expect("presign");
    assert_eq!(presigned, None, "a SAS cannot sign another");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_key_in_the_uri_works_and_a_wrong_one_is_denied_without_showing_it() {
    let azurite = tokio::task::block_in_place(Azurite::start);
    let encoded_key = percent_encoding::utf8_percent_encode(AZURITE_KEY, percent_encoding::NON_ALPHANUMERIC);
    let uri = format!("abs://{encoded_key}@{AZURITE_ACCOUNT}/{}/redis-cloud-form", azurite.container);
    let storage = azure(&azurite, &uri, &[]);
    let mut writer = storage.writer("object").await.expect("starting a write");
    writer.write(Bytes::from_static(b"through the abs form")).await.expect("writing");
    assert_eq!(writer.commit().await.expect("committing"), 20);
    assert_eq!(storage.list("").await.expect("list").len(), 1);

    let wrong = "d3Jvbmcta2V5LTVlMWYwYw==";
    let uri = format!(
        "abs://{}@{AZURITE_ACCOUNT}/{}/redis-cloud-form",
        wrong.replace('=', "%3D"),
        azurite.container
    );
    let denied = azure(&azurite, &uri, &[]);
    assert_denied(denied.stat("object").await, wrong);
    assert_denied(denied.reader("object", 0).await, wrong);
    let mut writer = denied.writer("other").await.expect("starting a write");
    writer.write(Bytes::from_static(b"data")).await.expect("buffering");
    assert_denied(writer.commit().await, wrong);
    storage.delete("object").await.expect("delete");
}

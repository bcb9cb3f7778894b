//! The contract every [`Storage`] implementation must meet, as one test suite.
//!
//! Each backend's tests call [`run_all`] on a fresh, empty location. Every check works
//! under its own random prefix and deletes what it wrote, so the suite can also run
//! against a shared bucket.

use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Error, ObjectMeta, ObjectWriter, Storage};

/// What a backend's test server can show.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Abilities {
    /// Presigned URLs can be fetched (moto refuses query-string signatures when it
    /// checks signatures; its presigned GETs are checked against a moto that does not).
    pub(crate) fetch_presigned: bool,
}

/// Runs every check against `storage`, panicking with the first failure.
pub(crate) async fn run_all(storage: &dyn Storage) {
    run_all_with(storage, Abilities { fetch_presigned: true }).await;
}

/// [`run_all`] within what the test server can show.
pub(crate) async fn run_all_with(storage: &dyn Storage, abilities: Abilities) {
    let prefix = format!("suite-{}", uuid::Uuid::new_v4().simple());
    write_commit_and_read_back(storage, &prefix).await;
    bytes_are_kept_exactly(storage, &prefix).await;
    invisible_until_commit(storage, &prefix).await;
    abort_and_drop_leave_nothing(storage, &prefix).await;
    overwrite_replaces_only_on_commit(storage, &prefix).await;
    delete_is_idempotent(storage, &prefix).await;
    list_under_a_prefix(storage, &prefix).await;
    invalid_keys_are_rejected(storage).await;
    lists_under_a_prefix(storage, &prefix).await;
    if abilities.fetch_presigned {
        presigned_urls_fetch_the_object(storage, &prefix).await;
    }
    large_object_in_many_chunks(storage, &prefix).await;
    assert_eq!(storage.list(&prefix).await.expect("list"), Vec::new(), "the suite cleans up after itself");
}

async fn read_all(body: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut body = body;
    let mut bytes = Vec::new();
    body.read_to_end(&mut bytes).await.expect("reading the object");
    bytes
}

async fn read_key(storage: &dyn Storage, key: &str) -> Vec<u8> {
    let reader = storage.reader(key, 0).await.expect("opening the object");
    read_all(reader.body).await
}

async fn put(storage: &dyn Storage, key: &str, chunks: &[&'static [u8]]) -> u64 {
    let mut writer = storage.writer(key).await.expect("starting a write");
    for chunk in chunks {
        writer.write(Bytes::from_static(chunk)).await.expect("writing");
    }
    writer.commit().await.expect("committing")
}

fn assert_absent_error<T: std::fmt::Debug>(result: Result<T, Error>, key: &str) {
    match result {
        Err(Error::NotFound { key: reported }) => assert_eq!(reported, key),
        other => panic!("{key}: expected not found, got {other:?}"),
    }
}

async fn assert_absent(storage: &dyn Storage, key: &str) {
    assert_eq!(storage.stat(key).await.expect("stat"), None, "{key} should be absent");
    assert_absent_error(storage.reader(key, 0).await, key);
}

async fn write_commit_and_read_back(storage: &dyn Storage, prefix: &str) {
    let key = format!("{prefix}/roundtrip/dump.rdb.zst");
    let size = put(storage, &key, &[b"hello ", b"", b"world"]).await;
    assert_eq!(size, 11, "commit returns the object's size");

    let meta = storage.stat(&key).await.expect("stat").expect("the object exists after commit");
    assert_eq!((meta.key.as_str(), meta.size), (key.as_str(), 11));
    assert_eq!(read_key(storage, &key).await, b"hello world");

    let from_offset = storage.reader(&key, 6).await.expect("reading from an offset");
    assert_eq!(from_offset.size, Some(11), "size is the whole object's, whatever the offset");
    assert_eq!(read_all(from_offset.body).await, b"world");
    let at_end = storage.reader(&key, 11).await.expect("reading from the end");
    assert_eq!(read_all(at_end.body).await, b"");

    let empty = format!("{prefix}/roundtrip/empty");
    assert_eq!(put(storage, &empty, &[]).await, 0, "an empty object can be written");
    assert_eq!(storage.stat(&empty).await.expect("stat").map(|meta| meta.size), Some(0));
    assert!(storage.uri(&key).contains("roundtrip/dump.rdb.zst"), "{}", storage.uri(&key));

    storage.delete(&key).await.expect("delete");
    storage.delete(&empty).await.expect("delete");
}

/// Line endings and NULs come back as written (an FTP transfer in ASCII mode would turn
/// `\n` into `\r\n`).
async fn bytes_are_kept_exactly(storage: &dyn Storage, prefix: &str) {
    let key = format!("{prefix}/binary/object");
    let mut bytes = b"crlf\r\nlf\nnul\0cr\r\r\n".to_vec();
    bytes.extend(0..=255u8);
    bytes.extend(b"\n\r\n\0");
    let mut writer = storage.writer(&key).await.expect("starting a write");
    writer.write(Bytes::from(bytes.clone())).await.expect("writing");
    assert_eq!(writer.commit().await.expect("committing"), bytes.len() as u64);
    assert_eq!(read_key(storage, &key).await, bytes);
    let tail = read_all(storage.reader(&key, 5).await.expect("reading from an offset").body).await;
    assert_eq!(tail, bytes[5..]);
    storage.delete(&key).await.expect("delete");
}

async fn invisible_until_commit(storage: &dyn Storage, prefix: &str) {
    let key = format!("{prefix}/pending/object");
    let mut writer = storage.writer(&key).await.expect("starting a write");
    assert_absent(storage, &key).await;
    writer.write(Bytes::from_static(b"not yet")).await.expect("writing");
    assert_absent(storage, &key).await;
    writer.commit().await.expect("committing");
    assert_eq!(read_key(storage, &key).await, b"not yet");
    storage.delete(&key).await.expect("delete");
}

async fn abort_and_drop_leave_nothing(storage: &dyn Storage, prefix: &str) {
    let aborted = format!("{prefix}/aborted/object");
    let mut writer = storage.writer(&aborted).await.expect("starting a write");
    writer.write(Bytes::from_static(b"discarded")).await.expect("writing");
    writer.abort().await.expect("aborting");
    assert_absent(storage, &aborted).await;

    let dropped = format!("{prefix}/dropped/object");
    let mut writer = storage.writer(&dropped).await.expect("starting a write");
    writer.write(Bytes::from_static(b"discarded")).await.expect("writing");
    drop(writer);
    assert_absent(storage, &dropped).await;

    let untouched = format!("{prefix}/untouched/object");
    let writer = storage.writer(&untouched).await.expect("starting a write");
    writer.abort().await.expect("aborting a writer that wrote nothing");
    assert_absent(storage, &untouched).await;
}

async fn overwrite_replaces_only_on_commit(storage: &dyn Storage, prefix: &str) {
    let key = format!("{prefix}/overwrite/object");
    put(storage, &key, &[b"first"]).await;

    let mut replacing = storage.writer(&key).await.expect("starting an overwrite");
    replacing.write(Bytes::from_static(b"second, longer")).await.expect("writing");
    assert_eq!(read_key(storage, &key).await, b"first", "the old object stays until commit");
    assert_eq!(storage.stat(&key).await.expect("stat").map(|meta| meta.size), Some(5));
    replacing.commit().await.expect("committing");
    assert_eq!(read_key(storage, &key).await, b"second, longer");

    let mut aborted: Box<dyn ObjectWriter> = storage.writer(&key).await.expect("starting an overwrite");
    aborted.write(Bytes::from_static(b"third")).await.expect("writing");
    aborted.abort().await.expect("aborting");
    let dropped = storage.writer(&key).await.expect("starting an overwrite");
    drop(dropped);
    assert_eq!(read_key(storage, &key).await, b"second, longer", "an aborted overwrite changes nothing");

    // Two writers racing on one key: each commit replaces the object whole.
    let mut first = storage.writer(&key).await.expect("starting a write");
    let mut second = storage.writer(&key).await.expect("starting a write");
    first.write(Bytes::from_static(b"from the first writer")).await.expect("writing");
    second.write(Bytes::from_static(b"from the second")).await.expect("writing");
    second.commit().await.expect("committing");
    first.commit().await.expect("committing");
    assert_eq!(read_key(storage, &key).await, b"from the first writer", "the last commit wins");

    storage.delete(&key).await.expect("delete");
}

async fn delete_is_idempotent(storage: &dyn Storage, prefix: &str) {
    let key = format!("{prefix}/delete/object");
    put(storage, &key, &[b"doomed"]).await;
    storage.delete(&key).await.expect("deleting");
    assert_absent(storage, &key).await;
    storage.delete(&key).await.expect("deleting again");
    storage.delete(&format!("{prefix}/never/written")).await.expect("deleting what never existed");
}

async fn list_under_a_prefix(storage: &dyn Storage, prefix: &str) {
    let base = format!("{prefix}/list");
    let keys = [format!("{base}/a/one"), format!("{base}/a/b/two"), format!("{base}/ab/three")];
    put(storage, &keys[0], &[b"1"]).await;
    put(storage, &keys[1], &[b"22"]).await;
    put(storage, &keys[2], &[b"333"]).await;
    let mut pending = storage.writer(&format!("{base}/a/pending")).await.expect("starting a write");
    pending.write(Bytes::from_static(b"unfinished")).await.expect("writing");

    // A key naming a "directory" of other keys is no object, and deleting it is a no-op.
    let parent = format!("{base}/a");
    assert_eq!(storage.stat(&parent).await.expect("stat"), None, "{parent}");
    assert_absent_error(storage.reader(&parent, 0).await, &parent);
    storage.delete(&parent).await.expect("deleting a prefix");
    assert_eq!(read_key(storage, &keys[0]).await, b"1", "deleting a prefix deletes nothing under it");

    let listed = |objects: Vec<super::ObjectMeta>| -> Vec<(String, u64)> {
        objects.into_iter().map(|meta| (meta.key, meta.size)).collect()
    };
    let under_a = vec![(keys[1].clone(), 2), (keys[0].clone(), 1)];
    assert_eq!(listed(storage.list(&format!("{base}/a")).await.expect("list")), under_a, "segment-wise");
    assert_eq!(listed(storage.list(&format!("{base}/a/")).await.expect("list")), under_a);
    let everything = vec![(keys[1].clone(), 2), (keys[0].clone(), 1), (keys[2].clone(), 3)];
    assert_eq!(listed(storage.list(&base).await.expect("list")), everything, "sorted, recursive");
    assert_eq!(storage.list(&keys[0]).await.expect("list of an object"), Vec::new());
    assert_eq!(storage.list(&format!("{base}/none")).await.expect("list of nothing"), Vec::new());
    for bad in ["/absolute", "a//b", "../x"] {
        assert!(matches!(storage.list(bad).await, Err(Error::InvalidKey { .. })), "{bad}");
    }

    pending.abort().await.expect("aborting");
    for key in &keys {
        storage.delete(key).await.expect("delete");
    }
    assert_eq!(storage.list(&base).await.expect("list"), Vec::new());
}

async fn invalid_keys_are_rejected(storage: &dyn Storage) {
    fn assert_invalid<T>(result: Result<T, Error>, key: &str, operation: &str) {
        match result {
            Err(Error::InvalidKey { key: reported, .. }) => assert_eq!(reported, key, "{operation}"),
            Err(other) => panic!("{operation} {key:?}: expected invalid key, got {other}"),
            Ok(_) => panic!("{operation} {key:?}: expected invalid key, got success"),
        }
    }
    for key in ["", "/absolute", "a/../b", "..", "./a", "a//b", "a/", "back\\slash", "nul\0byte"] {
        assert_invalid(storage.writer(key).await, key, "writer");
        assert_invalid(storage.reader(key, 0).await, key, "reader");
        assert_invalid(storage.stat(key).await, key, "stat");
        assert_invalid(storage.delete(key).await, key, "delete");
    }
}

async fn lists_under_a_prefix(storage: &dyn Storage, prefix: &str) {
    let under = format!("{prefix}/list");
    let keys = [format!("{under}/a"), format!("{under}/b/c"), format!("{under}/b/d/e")];
    for (index, key) in keys.iter().enumerate() {
        let chunk: &'static [u8] = &b"0123"[..=index];
        put(storage, key, &[chunk]).await;
    }
    // A write in progress and a neighbour sharing the prefix's text are not listed.
    let mut pending = storage.writer(&format!("{under}/pending")).await.expect("starting a write");
    pending.write(Bytes::from_static(b"pending")).await.expect("writing");
    put(storage, &format!("{prefix}/listing"), &[b"beside"]).await;

    let expected: Vec<ObjectMeta> = keys
        .iter()
        .enumerate()
        .map(|(index, key)| ObjectMeta { key: key.clone(), size: index as u64 + 1 })
        .collect();
    assert_eq!(storage.list(&under).await.expect("list"), expected);
    assert_eq!(storage.list(&format!("{under}/b")).await.expect("list"), expected[1..]);
    assert_eq!(storage.list(&format!("{prefix}/absent")).await.expect("list"), Vec::new());
    let everything = storage.list("").await.expect("listing everything");
    for meta in &expected {
        assert!(everything.contains(meta), "listing everything misses {meta:?}");
    }
    match storage.list("a/../b").await {
        Err(Error::InvalidKey { .. }) => {}
        other => panic!("listing an unclean prefix: expected invalid key, got {other:?}"),
    }

    pending.abort().await.expect("aborting");
    for key in keys.iter().cloned().chain([format!("{prefix}/listing")]) {
        storage.delete(&key).await.expect("delete");
    }
    assert_eq!(storage.list(&under).await.expect("list"), Vec::new());
}

pub(crate) async fn presigned_urls_fetch_the_object(storage: &dyn Storage, prefix: &str) {
    let key = format!("{prefix}/presign/object");
    put(storage, &key, &[b"signed ", b"bytes"]).await;
    let presigned = storage.presign_get(&key, Duration::from_secs(300)).await.expect("presigning");
    if let Some(url) = presigned {
        let response = reqwest::get(url.clone()).await.expect("fetching the presigned URL");
        assert!(response.status().is_success(), "GET of the presigned URL: {}", response.status());
        assert_eq!(response.bytes().await.expect("reading the body").as_ref(), b"signed bytes");
        let unsigned = storage.uri(&key);
        assert!(!url.as_str().contains("secret"), "{url}");
        assert!(unsigned.contains("presign/object"), "{unsigned}");
    }
    storage.delete(&key).await.expect("delete");
}

/// The size of the large object check: `CELLAR_TEST_LARGE_OBJECT_MB` MiB (CI runs it with
/// 200), 64 MiB by default.
fn large_object_size() -> usize {
    let megabytes = std::env::var("CELLAR_TEST_LARGE_OBJECT_MB").ok().and_then(|text| text.parse().ok());
    megabytes.unwrap_or(64usize) * 1024 * 1024
}

/// Deterministic pseudo-random bytes (xorshift), so the large check needs no data file
/// and never holds the whole object in memory.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buffer: &mut [u8]) {
        for chunk in buffer.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

async fn large_object_in_many_chunks(storage: &dyn Storage, prefix: &str) {
    large_object(storage, prefix, large_object_size() / LARGE_CHUNK).await;
}

/// The large object check writes chunks of this size.
const LARGE_CHUNK: usize = 64 * 1024;

/// Writes `chunks` chunks of 64 KiB of generated bytes, reads them back and checks their
/// SHA-256 and tail, holding one chunk at a time: memory stays bounded whatever the size.
pub(crate) async fn large_object(storage: &dyn Storage, prefix: &str, chunks: usize) {
    const CHUNK: usize = LARGE_CHUNK;
    let key = format!("{prefix}/large/object");
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut written = Sha256::new();
    let mut writer = storage.writer(&key).await.expect("starting a write");
    let mut buffer = vec![0u8; CHUNK];
    for _ in 0..chunks {
        noise.fill(&mut buffer);
        written.update(&buffer);
        writer.write(Bytes::copy_from_slice(&buffer)).await.expect("writing");
    }
    let last_chunk = buffer.clone();
    let size = writer.commit().await.expect("committing");
    assert_eq!(size, (CHUNK * chunks) as u64);

    let mut reader = storage.reader(&key, 0).await.expect("opening").body;
    let mut read = Sha256::new();
    let mut total = 0u64;
    loop {
        let count = reader.read(&mut buffer).await.expect("reading");
        if count == 0 {
            break;
        }
        read.update(&buffer[..count]);
        total += count as u64;
    }
    assert_eq!(total, size);
    assert_eq!(read.finalize(), written.finalize(), "the object reads back byte for byte");

    let offset = (CHUNK * chunks - 100) as u64;
    let tail = read_all(storage.reader(&key, offset).await.expect("opening at an offset").body).await;
    assert_eq!(tail.len(), 100);
    assert_eq!(tail, last_chunk[CHUNK - 100..], "the tail is the end of the last chunk");

    storage.delete(&key).await.expect("delete");
}

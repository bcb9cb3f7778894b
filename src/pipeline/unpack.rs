//! The way back: stored bytes are hashed (and checked against the catalog's SHA-256),
//! decrypted when they are age-encrypted (with the server's identities), and
//! decompressed (the compression recognised by its magic bytes), as a stream
//! ([`Unpacking`]) that a load reads straight into its tool, or into a spool file on
//! local disk ([`unpack`]) for loads that must check every part before any is loaded;
//! memory is bounded whatever the size.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, ReadBuf};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _, TokioAsyncReadCompatExt as _};

use super::identities::Identities;
use crate::domain::Compression;

/// What every age file starts with.
const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Read buffer of the stored bytes.
const READ_BUFFER: usize = 256 * 1024;

/// What [`unpack`] (or an [`Unpacking`] read to its end) read and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Stored (compressed) bytes read.
    pub stored_bytes: u64,
    /// Decompressed bytes.
    pub logical_bytes: u64,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    /// The compression found in the data.
    pub compression: Compression,
    /// Whether the stored bytes were age-encrypted.
    pub encrypted: bool,
}

/// Why [`unpack`] or an [`Unpacking`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the stored bytes failed.
    #[error("reading the source failed: {0}")]
    Source(#[source] std::io::Error),
    /// The stored bytes are not what the catalog says, or do not decompress.
    #[error("{0}")]
    Corrupt(String),
    /// Writing the spool file failed.
    #[error("writing the spool file failed: {0}")]
    Spool(#[source] std::io::Error),
    /// The data is age-encrypted and no identity the server holds opens it.
    #[error("{0}")]
    KeyMissing(String),
}

/// The compression whose magic bytes start `head`; plain data otherwise.
pub fn sniff(head: &[u8]) -> Compression {
    match head {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [0x1f, 0x8b, ..] => Compression::Gzip,
        _ => Compression::None,
    }
}

/// The stored bytes read back as the data they hold: hashed, decompressed as their magic
/// bytes say. Reading it yields the decompressed data and ends (`Ok(0)`) only once the
/// whole source was read and its SHA-256 matched the expected one (when given).
/// Damage, a mismatch or a failing source is a read error, and stays readable as
/// [`Unpacking::failure`] for the owner to report: whoever reads the stream only has to
/// stop. Dropping it mid-way is safe (nothing is left behind).
pub struct Unpacking<R> {
    decoded: Decoded<R>,
    hashed: Arc<Mutex<Hashed>>,
    encrypted: bool,
    compression: Compression,
    expected_sha256: Option<String>,
    logical_bytes: u64,
    state: State,
}

/// The stored bytes, buffered and hashed as they are read.
type Raw<R> = BufReader<Hashing<R>>;

/// The stored bytes as they are, or decrypted.
enum Clear<R> {
    Plain(Raw<R>),
    Age(Compat<age::stream::StreamReader<Compat<Raw<R>>>>),
}

impl<R: AsyncRead + Unpin> AsyncRead for Clear<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Clear::Plain(raw) => Pin::new(raw).poll_read(cx, buf),
            Clear::Age(decrypted) => Pin::new(decrypted).poll_read(cx, buf),
        }
    }
}

/// The clear bytes, buffered for the decompressor.
type Stored<R> = BufReader<Clear<R>>;

enum Decoded<R> {
    Zstd(ZstdDecoder<Stored<R>>),
    Gzip(GzipDecoder<Stored<R>>),
    Plain(Stored<R>),
}

enum State {
    Reading,
    Done(Unpacked),
    Failed(Error),
}

impl<R: AsyncRead + Unpin + Send> Unpacking<R> {
    /// Starts reading `source` (its first bytes say whether it is age-encrypted and how
    /// it is compressed); its SHA-256 is checked against `expected_sha256` at the end
    /// when given and not empty. Encrypted data is decrypted with one of `identities`:
    /// none that opens it is [`Error::KeyMissing`], before any data comes out.
    pub async fn open(
        source: R,
        expected_sha256: Option<&str>,
        identities: &Identities,
    ) -> Result<Unpacking<R>, Error> {
        let hashed = Arc::new(Mutex::new(Hashed { hasher: Sha256::new(), bytes: 0 }));
        let hashing = Hashing { inner: source, hashed: hashed.clone() };
        let mut raw = BufReader::with_capacity(READ_BUFFER, hashing);
        let encrypted = raw.fill_buf().await.map_err(Error::Source)?.starts_with(AGE_MAGIC);
        let clear =
            if encrypted { Clear::Age(decrypt(raw, identities).await?.compat()) } else { Clear::Plain(raw) };
        let mut stored = BufReader::with_capacity(READ_BUFFER, clear);
        let compression = match stored.fill_buf().await {
            Ok(head) => sniff(head),
            Err(error) if encrypted => {
                return Err(Error::Corrupt(format!("the age-encrypted data does not decrypt: {error}")));
            }
            Err(error) => return Err(Error::Source(error)),
        };
        let decoded = match compression {
            Compression::Zstd => {
                let mut decoder = ZstdDecoder::new(stored);
                decoder.multiple_members(true);
                Decoded::Zstd(decoder)
            }
            Compression::Gzip => {
                let mut decoder = GzipDecoder::new(stored);
                decoder.multiple_members(true);
                Decoded::Gzip(decoder)
            }
            Compression::None => Decoded::Plain(stored),
        };
        let expected_sha256 = expected_sha256.filter(|expected| !expected.is_empty()).map(str::to_owned);
        Ok(Unpacking {
            decoded,
            hashed,
            encrypted,
            compression,
            expected_sha256,
            logical_bytes: 0,
            state: State::Reading,
        })
    }
}

/// Opens an age file with one of `identities`.
async fn decrypt<R: AsyncRead + Unpin + Send>(
    raw: Raw<R>,
    identities: &Identities,
) -> Result<age::stream::StreamReader<Compat<Raw<R>>>, Error> {
    if identities.is_empty() {
        return Err(Error::KeyMissing(
            "the data is age-encrypted and the server has no identity to decrypt it (set age_identity_file)"
                .to_owned(),
        ));
    }
    let decryptor = age::Decryptor::new_async_buffered(raw.compat())
        .await
        .map_err(|error| Error::Corrupt(format!("the age header does not read: {error}")))?;
    decryptor.decrypt_async(identities.as_age()).map_err(|error| match error {
        age::DecryptError::NoMatchingKeys => Error::KeyMissing(format!(
            "the data is age-encrypted and none of the server's identities ({}) is one of its recipients",
            identities.recipients().join(", ")
        )),
        other => Error::Corrupt(format!("the age-encrypted data does not decrypt: {other}")),
    })
}

impl<R: AsyncRead + Unpin> Unpacking<R> {
    /// Decompressed bytes read so far.
    pub fn logical_bytes(&self) -> u64 {
        self.logical_bytes
    }

    /// What was read, once the stream ended whole and checked.
    pub fn unpacked(&self) -> Option<&Unpacked> {
        match &self.state {
            State::Done(unpacked) => Some(unpacked),
            _ => None,
        }
    }

    /// Why the stream failed, once it did.
    pub fn failure(&self) -> Option<&Error> {
        match &self.state {
            State::Failed(error) => Some(error),
            _ => None,
        }
    }

    /// Takes out why the stream failed, once it did.
    pub fn take_failure(&mut self) -> Option<Error> {
        match std::mem::replace(&mut self.state, State::Reading) {
            State::Failed(error) => Some(error),
            other => {
                self.state = other;
                None
            }
        }
    }

    /// Whether the stream neither ended nor failed yet.
    pub fn is_reading(&self) -> bool {
        matches!(self.state, State::Reading)
    }

    /// The end of the decompressed data: the whole source was read; it is good when its
    /// SHA-256 is the expected one.
    fn finish(&mut self) -> State {
        let (sha256, stored_bytes) = match self.hashed.lock() {
            Ok(hashed) => (hex::encode(hashed.hasher.clone().finalize()), hashed.bytes),
            Err(_) => return State::Failed(Error::Corrupt("the checksum was lost".to_owned())),
        };
        if let Some(expected) = &self.expected_sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return State::Failed(mismatch(&sha256, expected));
        }
        State::Done(Unpacked {
            stored_bytes,
            logical_bytes: self.logical_bytes,
            sha256,
            compression: self.compression,
            encrypted: self.encrypted,
        })
    }

    /// What a failed read of the compressed data means.
    fn classify(&self, error: std::io::Error) -> Error {
        // age fails a chunk that does not authenticate with InvalidData.
        if self.encrypted
            && error.kind() == std::io::ErrorKind::InvalidData
            && self.compression == Compression::None
        {
            return Error::Corrupt(format!("the age-encrypted data does not decrypt: {error}"));
        }
        match error.kind() {
            std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::Other
                if self.compression != Compression::None =>
            {
                Error::Corrupt(format!("the {} data does not decompress: {error}", self.compression))
            }
            _ => Error::Source(error),
        }
    }
}

/// The read error a reader of a failed [`Unpacking`] sees (its owner has the cause).
fn failed(error: &Error) -> std::io::Error {
    let kind = match error {
        Error::Corrupt(_) => std::io::ErrorKind::InvalidData,
        Error::Source(_) | Error::Spool(_) | Error::KeyMissing(_) => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, error.to_string())
}

impl<R: AsyncRead + Unpin> AsyncRead for Unpacking<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match &this.state {
            State::Reading => {}
            State::Done(_) => return Poll::Ready(Ok(())),
            State::Failed(error) => return Poll::Ready(Err(failed(error))),
        }
        let before = buf.filled().len();
        let polled = match &mut this.decoded {
            Decoded::Zstd(decoder) => Pin::new(decoder).poll_read(cx, buf),
            Decoded::Gzip(decoder) => Pin::new(decoder).poll_read(cx, buf),
            Decoded::Plain(stored) => Pin::new(stored).poll_read(cx, buf),
        };
        let read = buf.filled().len() - before;
        this.state = match ready!(polled) {
            Ok(()) if read > 0 => {
                this.logical_bytes += read as u64;
                return Poll::Ready(Ok(()));
            }
            Ok(()) => this.finish(),
            Err(error) => State::Failed(this.classify(error)),
        };
        match &this.state {
            State::Failed(error) => Poll::Ready(Err(failed(error))),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// Reads `source` to its end, checks its SHA-256 against `expected_sha256` (when given),
/// decompresses it as its magic bytes say, and writes the result to `spool`.
/// `on_progress(logical_bytes_written)` is called after each read. Cancel-safe: dropping
/// the future leaves a partial spool file that its owner removes.
pub async fn unpack(
    source: impl AsyncRead + Unpin + Send,
    expected_sha256: Option<&str>,
    identities: &Identities,
    spool: &mut SpoolFile,
    on_progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Unpacked, Error> {
    let mut unpacking = Unpacking::open(source, expected_sha256, identities).await?;
    let mut chunk = vec![0u8; READ_BUFFER];
    loop {
        let count = match unpacking.read(&mut chunk).await {
            Ok(count) => count,
            Err(error) => return Err(unpacking.take_failure().unwrap_or(Error::Source(error))),
        };
        if count == 0 {
            break;
        }
        spool.file.write_all(&chunk[..count]).await.map_err(Error::Spool)?;
        on_progress(unpacking.logical_bytes());
    }
    spool.file.flush().await.map_err(Error::Spool)?;
    // A read of 0 bytes comes only once the stream is done (checked).
    unpacking.unpacked().cloned().ok_or_else(|| Error::Corrupt("the data ended unchecked".to_owned()))
}

/// Copies `source` to its end into `spool` as it is (compressed, encrypted), checking
/// that its SHA-256 is `expected_sha256`: the stored bytes proven whole before any of
/// them is used. `on_progress(bytes_copied)` is called after each read. Returns the
/// bytes copied.
pub async fn copy_checked(
    mut source: impl AsyncRead + Unpin + Send,
    expected_sha256: &str,
    spool: &mut SpoolFile,
    on_progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, Error> {
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; READ_BUFFER];
    let mut copied = 0;
    loop {
        let count = source.read(&mut chunk).await.map_err(Error::Source)?;
        if count == 0 {
            break;
        }
        hasher.update(&chunk[..count]);
        spool.file.write_all(&chunk[..count]).await.map_err(Error::Spool)?;
        copied += count as u64;
        on_progress(copied);
    }
    spool.file.flush().await.map_err(Error::Spool)?;
    let sha256 = hex::encode(hasher.finalize());
    if !expected_sha256.eq_ignore_ascii_case(&sha256) {
        return Err(mismatch(&sha256, expected_sha256));
    }
    Ok(copied)
}

/// The stored bytes' SHA-256 is `actual`, not the catalog's `expected`.
fn mismatch(actual: &str, expected: &str) -> Error {
    Error::Corrupt(format!(
        "the stored data's sha-256 is {actual}, the catalog says {expected}: the object changed or is damaged"
    ))
}

/// Hashes and counts what passes through, into a state its owner reads at the end (the
/// reader itself ends up deep inside the decryptor and decompressor).
struct Hashing<R> {
    inner: R,
    hashed: Arc<Mutex<Hashed>>,
}

/// The stored bytes' hash and count so far.
struct Hashed {
    hasher: Sha256,
    bytes: u64,
}

impl<R: AsyncRead + Unpin> AsyncRead for Hashing<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && let Ok(mut hashed) = self.hashed.lock()
        {
            let new = &buf.filled()[before..];
            hashed.hasher.update(new);
            hashed.bytes += new.len() as u64;
        }
        polled
    }
}

/// A file in the spool directory, removed when dropped.
#[derive(Debug)]
pub struct SpoolFile {
    path: PathBuf,
    file: tokio::fs::File,
}

impl SpoolFile {
    /// Creates an empty spool file in `dir` (created if missing).
    pub async fn create(dir: &Path) -> std::io::Result<SpoolFile> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(format!("spool-{}", uuid::Uuid::new_v4()));
        let file = tokio::fs::File::create(&path).await?;
        Ok(SpoolFile { path, file })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where it is, as an owned path (for a slice of paths).
    pub fn path_buf(&self) -> &PathBuf {
        &self.path
    }

    /// The open file, for writing.
    pub fn file(&mut self) -> &mut tokio::fs::File {
        &mut self.file
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        // Synchronous and best effort: a spool file left by a crash is swept at start.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;
    use crate::storage::local::LocalStorage;

    fn data() -> Vec<u8> {
        (0..3_000_000u32).map(|index| (index % 251) as u8 ^ (index / 4099) as u8).collect()
    }

    async fn stored(compression: Compression, storage: &LocalStorage, key: &str) -> String {
        let mut writer = storage.writer(key).await.unwrap();
        let mut ignore = |_| {};
        let stored =
            crate::pipeline::store(&data()[..], compression, writer.as_mut(), &mut ignore).await.unwrap();
        writer.commit().await.unwrap();
        stored.sha256
    }

    #[tokio::test]
    async fn every_compression_round_trips_and_is_recognised_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("store"));
        for compression in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let sha256 = stored(compression, &storage, compression.as_str()).await;
            let reader = storage.reader(compression.as_str(), 0).await.unwrap();
            let mut spool = SpoolFile::create(&dir.path().join("spool")).await.unwrap();
            let mut progress = 0;
            let mut on_progress = |done| progress = done;
            let unpacked =
                unpack(reader.body, Some(&sha256), &Identities::default(), &mut spool, &mut on_progress)
                    .await
                    .unwrap();
            assert_eq!(unpacked.compression, compression);
            assert_eq!(unpacked.logical_bytes, data().len() as u64);
            assert_eq!(progress, unpacked.logical_bytes);
            assert_eq!(std::fs::read(spool.path()).unwrap(), data());
            let path = spool.path().to_owned();
            drop(spool);
            assert!(!path.exists(), "the spool file is removed");
        }
    }

    #[tokio::test]
    async fn a_wrong_checksum_or_damaged_data_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("store"));
        stored(Compression::Zstd, &storage, "object").await;
        let spool_dir = dir.path().join("spool");
        let none = Identities::default();

        let reader = storage.reader("object", 0).await.unwrap();
        let mut spool = SpoolFile::create(&spool_dir).await.unwrap();
        let error =
            unpack(reader.body, Some(&"0".repeat(64)), &none, &mut spool, &mut |_| {}).await.unwrap_err();
        assert!(matches!(&error, Error::Corrupt(message) if message.contains("sha-256")), "{error:?}");

        let mut bytes = std::fs::read(dir.path().join("store/object")).unwrap();
        bytes.truncate(bytes.len() / 2);
        let mut spool = SpoolFile::create(&spool_dir).await.unwrap();
        let error = unpack(&bytes[..], None, &none, &mut spool, &mut |_| {}).await.unwrap_err();
        assert!(matches!(&error, Error::Corrupt(message) if message.contains("zstd")), "{error:?}");

        let mut bytes = std::fs::read(dir.path().join("store/object")).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        let mut spool = SpoolFile::create(&spool_dir).await.unwrap();
        let error = unpack(&bytes[..], None, &none, &mut spool, &mut |_| {}).await.unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
    }

    #[tokio::test]
    async fn a_stream_ends_only_after_its_checksum_matched() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("store"));
        let sha256 = stored(Compression::Zstd, &storage, "object").await;

        let reader = storage.reader("object", 0).await.unwrap();
        let mut unpacking =
            Unpacking::open(reader.body, Some(&sha256), &Identities::default()).await.unwrap();
        let mut read = Vec::new();
        unpacking.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, data());
        let unpacked = unpacking.unpacked().expect("done");
        assert_eq!((unpacked.logical_bytes, unpacked.compression), (data().len() as u64, Compression::Zstd));
        assert_eq!(unpacking.read(&mut [0u8; 16]).await.unwrap(), 0, "it stays at its end");

        // Every byte comes out, but the end is an error: the checksum is not the catalog's.
        let reader = storage.reader("object", 0).await.unwrap();
        let mut unpacking =
            Unpacking::open(reader.body, Some(&"0".repeat(64)), &Identities::default()).await.unwrap();
        let mut read = Vec::new();
        let error = unpacking.read_to_end(&mut read).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(read, data());
        assert!(matches!(unpacking.failure(), Some(Error::Corrupt(message)) if message.contains("sha-256")));
        assert!(!unpacking.is_reading());
        assert!(unpacking.read(&mut [0u8; 16]).await.is_err(), "it stays failed");
    }

    #[tokio::test]
    async fn encrypted_objects_open_only_with_an_identity_of_their_recipients() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("store"));
        let identity = age::x25519::Identity::generate();
        let recipient = crate::domain::AgeRecipient::parse(&identity.to_public().to_string()).unwrap();
        let mut writer = storage.writer("object").await.unwrap();
        let threads = crate::pipeline::Threads::One;
        let stored = crate::pipeline::store_with(
            &data()[..],
            Compression::Zstd,
            threads,
            &[recipient],
            writer.as_mut(),
            &mut |_| {},
        )
        .await
        .unwrap();
        writer.commit().await.unwrap();
        let bytes = std::fs::read(dir.path().join("store/object")).unwrap();
        assert!(bytes.starts_with(AGE_MAGIC));
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&bytes)), "the checksum is of the stored bytes");
        assert_eq!(stored.stored_bytes, bytes.len() as u64);
        assert_eq!(stored.logical_bytes, data().len() as u64);
        // Compressed, then encrypted: age's own reader gives the zstd frame.
        let decryptor = age::Decryptor::new(&bytes[..]).unwrap();
        let mut compressed = Vec::new();
        std::io::Read::read_to_end(
            &mut decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).unwrap(),
            &mut compressed,
        )
        .unwrap();
        assert_eq!(sniff(&compressed), Compression::Zstd);

        let identities = Identities::from_keys(&[identity]);
        let mut unpacking = Unpacking::open(&bytes[..], Some(&stored.sha256), &identities).await.unwrap();
        let mut read = Vec::new();
        unpacking.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, data());
        let unpacked = unpacking.unpacked().expect("done");
        assert!(unpacked.encrypted && unpacked.compression == Compression::Zstd, "{unpacked:?}");

        let other = Identities::from_keys(&[age::x25519::Identity::generate()]);
        for identities in [Identities::default(), other] {
            let error = Unpacking::open(&bytes[..], None, &identities).await.err().expect("refused");
            assert!(matches!(error, Error::KeyMissing(_)), "{error:?}");
        }
        let mut damaged = bytes.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x01;
        let mut spool = SpoolFile::create(&dir.path().join("spool")).await.unwrap();
        let error = unpack(&damaged[..], None, &identities, &mut spool, &mut |_| {}).await.unwrap_err();
        assert!(matches!(&error, Error::Corrupt(message) if message.contains("decrypt")), "{error:?}");
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff(b"REDIS0011"), Compression::None);
        assert_eq!(sniff(b""), Compression::None);
    }
}

//! The way back: stored bytes are hashed (and checked against the catalog's SHA-256),
//! decompressed (the compression recognised by its magic bytes), and written to a spool
//! file on local disk, so that a restore can verify the whole source before it touches
//! the target, with memory bounded whatever the size.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, ReadBuf};

use crate::domain::Compression;

/// Read buffer of the stored bytes.
const READ_BUFFER: usize = 256 * 1024;

/// What [`unpack`] read and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Stored (compressed) bytes read.
    pub stored_bytes: u64,
    /// Decompressed bytes written to the spool.
    pub logical_bytes: u64,
    /// Hex SHA-256 of the stored bytes.
    pub sha256: String,
    /// The compression found in the data.
    pub compression: Compression,
}

/// Why [`unpack`] failed.
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
}

/// The compression whose magic bytes start `head`; plain data otherwise.
pub fn sniff(head: &[u8]) -> Compression {
    match head {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [0x1f, 0x8b, ..] => Compression::Gzip,
        _ => Compression::None,
    }
}

/// Reads `source` to its end, checks its SHA-256 against `expected_sha256` (when given),
/// decompresses it as its magic bytes say, and writes the result to `spool`.
/// `on_progress(stored_bytes_read)` is called after each read. Cancel-safe: dropping the
/// future leaves a partial spool file that its owner removes.
pub async fn unpack(
    source: impl AsyncRead + Unpin + Send,
    expected_sha256: Option<&str>,
    spool: &mut SpoolFile,
    on_progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Unpacked, Error> {
    let hashing = Hashing { inner: source, hasher: Sha256::new(), bytes: 0 };
    let mut buffered = BufReader::with_capacity(READ_BUFFER, hashing);
    let compression = sniff(buffered.fill_buf().await.map_err(Error::Source)?);
    let mut decoded: Pin<Box<dyn AsyncRead + Send + '_>> = match compression {
        Compression::Zstd => {
            let mut decoder = ZstdDecoder::new(&mut buffered);
            decoder.multiple_members(true);
            Box::pin(decoder)
        }
        Compression::Gzip => {
            let mut decoder = GzipDecoder::new(&mut buffered);
            decoder.multiple_members(true);
            Box::pin(decoder)
        }
        Compression::None => Box::pin(&mut buffered),
    };
    let mut chunk = vec![0u8; READ_BUFFER];
    let mut logical_bytes = 0u64;
    loop {
        let count =
            tokio::io::AsyncReadExt::read(&mut decoded, &mut chunk).await.map_err(|error| {
                match error.kind() {
                    std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::Other
                        if compression != Compression::None =>
                    {
                        Error::Corrupt(format!("the {compression} data does not decompress: {error}"))
                    }
                    _ => Error::Source(error),
                }
            })?;
        if count == 0 {
            break;
        }
        spool.file.write_all(&chunk[..count]).await.map_err(Error::Spool)?;
        logical_bytes += count as u64;
        on_progress(logical_bytes);
    }
    drop(decoded);
    spool.file.flush().await.map_err(Error::Spool)?;
    let hashing = buffered.into_inner();
    let sha256 = hex::encode(hashing.hasher.finalize());
    if let Some(expected) = expected_sha256.filter(|expected| !expected.is_empty())
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        return Err(Error::Corrupt(format!(
            "the stored data's sha-256 is {sha256}, the catalog says {expected}: the object changed or is damaged"
        )));
    }
    Ok(Unpacked { stored_bytes: hashing.bytes, logical_bytes, sha256, compression })
}

/// Hashes and counts what passes through.
struct Hashing<R> {
    inner: R,
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
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            self.hasher.update(new);
            self.bytes += new.len() as u64;
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
            let unpacked = unpack(reader.body, Some(&sha256), &mut spool, &mut on_progress).await.unwrap();
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

        let reader = storage.reader("object", 0).await.unwrap();
        let mut spool = SpoolFile::create(&spool_dir).await.unwrap();
        let error = unpack(reader.body, Some(&"0".repeat(64)), &mut spool, &mut |_| {}).await.unwrap_err();
        assert!(matches!(&error, Error::Corrupt(message) if message.contains("sha-256")), "{error:?}");

        let mut bytes = std::fs::read(dir.path().join("store/object")).unwrap();
        bytes.truncate(bytes.len() / 2);
        let mut spool = SpoolFile::create(&spool_dir).await.unwrap();
        let error = unpack(&bytes[..], None, &mut spool, &mut |_| {}).await.unwrap_err();
        assert!(matches!(&error, Error::Corrupt(message) if message.contains("zstd")), "{error:?}");

        let mut bytes = std::fs::read(dir.path().join("store/object")).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        let mut spool = SpoolFile::create(&spool_dir).await.unwrap();
        let error = unpack(&bytes[..], None, &mut spool, &mut |_| {}).await.unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff(b"REDIS0011"), Compression::None);
        assert_eq!(sniff(b""), Compression::None);
    }
}

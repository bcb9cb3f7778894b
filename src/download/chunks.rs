//! A stored object read ahead into a bounded channel of chunks, for DownloadBackup.
//!
//! One task reads the object in chunks of at most [`CHUNK_SIZE`] and sends them into a
//! channel of [`CHANNEL_CAPACITY`] chunks: when the consumer (a gRPC stream to a slow
//! client) falls behind, the task waits, so at most `CHANNEL_CAPACITY + 1` chunks are
//! held whatever the object's size. The task ends when the object ends, when a read
//! fails, or as soon as the receiver is dropped.

use bytes::{Bytes, BytesMut};
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::mpsc;

/// The most bytes in one chunk: 1 MiB.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// Chunks read ahead of the consumer.
pub const CHANNEL_CAPACITY: usize = 2;

/// One piece of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Where `data` starts in the object.
    pub offset: u64,
    /// The bytes; empty only in the one chunk of an empty rest.
    pub data: Bytes,
}

/// Why the stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed mid-read.
    #[error("reading the stored object failed: {0}")]
    Read(#[source] std::io::Error),
    /// The object ended before its recorded size.
    #[error("the stored object ended at byte {ended}, before its size {size}")]
    Truncated {
        /// Where it ended.
        ended: u64,
        /// Its recorded size.
        size: u64,
    },
    /// The bytes read do not hash to the recorded SHA-256.
    #[error("the stored object's SHA-256 is {actual}, not the recorded {expected}")]
    Checksum {
        /// The recorded digest.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
}

/// What to stream: `body` holds the object's bytes from `offset` on, of an object of
/// `size` bytes; with `sha256`, the whole object (then `offset` is 0) is checked against
/// it and a mismatch ends the stream with [`Error::Checksum`] instead of its last chunk.
pub struct Source {
    /// The bytes from `offset` on.
    pub body: std::pin::Pin<Box<dyn AsyncRead + Send>>,
    /// Where `body` starts.
    pub offset: u64,
    /// The object's size.
    pub size: u64,
    /// The hex SHA-256 to check the whole object against, if it is read whole.
    pub sha256: Option<String>,
}

/// Starts the reading task; always yields at least one chunk (maybe empty) or an error.
pub fn spawn(source: Source) -> mpsc::Receiver<Result<Chunk, Error>> {
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(async move {
        let closed = sender.clone();
        tokio::select! {
            () = pump(source, &sender) => {}
            // A consumer gone while a read is pending: stop at once.
            () = closed.closed() => {}
        }
    });
    receiver
}

async fn pump(source: Source, sender: &mpsc::Sender<Result<Chunk, Error>>) {
    let Source { body, offset, size, sha256 } = source;
    let mut body = body.take(size.saturating_sub(offset));
    let mut hasher = sha256.as_ref().map(|_| sha2::Sha256::new());
    let mut position = offset;
    // Held back until the next read says whether it is the last: a checksum mismatch
    // must replace the last chunk, so that a bad object never arrives whole.
    let mut pending: Option<Chunk> = None;
    loop {
        let data = match read_chunk(&mut body).await {
            Ok(data) => data,
            Err(error) => {
                let _ = sender.send(Err(Error::Read(error))).await;
                return;
            }
        };
        if data.is_empty() {
            break;
        }
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&data);
        }
        let chunk = Chunk { offset: position, data };
        position += chunk.data.len() as u64;
        if let Some(previous) = pending.replace(chunk)
            && sender.send(Ok(previous)).await.is_err()
        {
            return;
        }
    }
    if position < size {
        let _ = sender.send(Err(Error::Truncated { ended: position, size })).await;
        return;
    }
    if let (Some(hasher), Some(expected)) = (hasher, sha256) {
        let actual = hex::encode(hasher.finalize());
        if !actual.eq_ignore_ascii_case(&expected) {
            let _ = sender.send(Err(Error::Checksum { expected, actual })).await;
            return;
        }
    }
    let last = pending.unwrap_or(Chunk { offset: position, data: Bytes::new() });
    let _ = sender.send(Ok(last)).await;
}

// Reads until a chunk is full or the body ends; empty at the end.
async fn read_chunk(body: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Bytes> {
    let mut buffer = BytesMut::with_capacity(CHUNK_SIZE);
    while buffer.len() < CHUNK_SIZE {
        if body.read_buf(&mut buffer).await? == 0 {
            break;
        }
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll};

    use super::*;

    /// Pseudo-random bytes, counted as they are read.
    struct Counted {
        remaining: u64,
        read: Arc<AtomicU64>,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let n = (buf.remaining() as u64).min(self.remaining).min(64 * 1024) as usize;
            let start = self.read.load(Ordering::SeqCst);
            let bytes: Vec<u8> = (start..start + n as u64).map(|i| (i * 31 % 251) as u8).collect();
            buf.put_slice(&bytes);
            self.remaining -= n as u64;
            self.read.fetch_add(n as u64, Ordering::SeqCst);
            Poll::Ready(Ok(()))
        }
    }

    fn bytes_of(range: std::ops::Range<u64>) -> Vec<u8> {
        range.map(|i| (i * 31 % 251) as u8).collect()
    }

    async fn collect(source: Source) -> (Vec<Chunk>, Option<Error>) {
        let mut receiver = spawn(source);
        let mut chunks = Vec::new();
        while let Some(item) = receiver.recv().await {
            match item {
                Ok(chunk) => chunks.push(chunk),
                Err(error) => return (chunks, Some(error)),
            }
        }
        (chunks, None)
    }

    fn source(data: &[u8], offset: u64, size: u64, sha256: Option<String>) -> Source {
        let body = data[offset as usize..].to_vec();
        Source { body: Box::pin(std::io::Cursor::new(body)), offset, size, sha256 }
    }

    fn digest(data: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(data))
    }

    #[tokio::test]
    async fn chunks_cover_the_object_from_the_offset() {
        let data = bytes_of(0..(2 * CHUNK_SIZE as u64 + 10));
        let size = data.len() as u64;
        let (chunks, error) = collect(source(&data, 0, size, Some(digest(&data)))).await;
        assert!(error.is_none(), "{error:?}");
        let offsets: Vec<u64> = chunks.iter().map(|chunk| chunk.offset).collect();
        assert_eq!(offsets, [0, CHUNK_SIZE as u64, 2 * CHUNK_SIZE as u64]);
        assert!(chunks.iter().all(|chunk| chunk.data.len() <= CHUNK_SIZE));
        assert_eq!(chunks.concat_data(), data);

        let (chunks, error) = collect(source(&data, 5, size, None)).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(chunks[0].offset, 5);
        assert_eq!(chunks.concat_data(), data[5..]);

        let (chunks, error) = collect(source(&data, size, size, None)).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(chunks, [Chunk { offset: size, data: Bytes::new() }], "one empty chunk at the end");
    }

    #[tokio::test]
    async fn a_wrong_checksum_or_short_object_ends_in_an_error_without_the_last_chunk() {
        let data = bytes_of(0..(CHUNK_SIZE as u64 + 10));
        let size = data.len() as u64;
        let (chunks, error) = collect(source(&data, 0, size, Some(digest(b"other")))).await;
        assert!(matches!(error, Some(Error::Checksum { .. })), "{error:?}");
        assert_eq!(chunks.len(), 1, "the last chunk is withheld");

        let (_, error) = collect(source(&data, 0, size + 1, None)).await;
        assert!(matches!(error, Some(Error::Truncated { ended, .. }) if ended == size), "{error:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_consumer_that_does_not_read_holds_the_reader_back() {
        let read = Arc::new(AtomicU64::new(0));
        let size = 64 * CHUNK_SIZE as u64;
        let body = Counted { remaining: size, read: read.clone() };
        let mut receiver = spawn(Source { body: Box::pin(body), offset: 0, size, sha256: None });
        // Wait for the channel to fill, then give the reader every chance to run on.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while receiver.len() < CHANNEL_CAPACITY {
            assert!(std::time::Instant::now() < deadline, "the channel never filled");
            tokio::task::yield_now().await;
        }
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        // The channel's chunks, the one held back, and the one being read.
        let bound = (CHANNEL_CAPACITY as u64 + 2) * CHUNK_SIZE as u64;
        assert!(read.load(Ordering::SeqCst) <= bound, "read {} bytes ahead", read.load(Ordering::SeqCst));
        let first = receiver.recv().await.unwrap().unwrap();
        assert_eq!((first.offset, first.data.len()), (0, CHUNK_SIZE));
        drop(receiver);
    }

    trait ConcatData {
        fn concat_data(&self) -> Vec<u8>;
    }

    impl ConcatData for Vec<Chunk> {
        fn concat_data(&self) -> Vec<u8> {
            self.iter().flat_map(|chunk| chunk.data.iter().copied()).collect()
        }
    }
}

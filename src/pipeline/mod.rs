//! The bytes between engines and storage. [`store`] takes an engine's stream into an
//! object: counted, compressed, encrypted with age when asked (compressed first:
//! encrypted bytes do not compress), hashed, written. [`unpack`] brings an object back:
//! hashed and checked, decrypted, decompressed, spooled to local disk for verification.

pub mod frames;
pub mod identities;
pub mod unpack;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use async_compression::codecs::flate::params::FlateEncoderParams;
use async_compression::codecs::zstd::params::CParameter;
use async_compression::codecs::{Encode, GzipEncoder, ZstdEncoder};
use async_compression::core::util::PartialBuffer;

use crate::domain::{AgeRecipient, Compression};
use crate::pipeline::frames::FramedZstd;
use crate::storage::{self, ObjectWriter};

/// The size of the chunks read from the source and handed to the writer.
pub const CHUNK_SIZE: usize = 1 << 20;

/// The zstd level used for [`Compression::Zstd`] (the `zstd` command's default).
pub const ZSTD_LEVEL: i32 = 3;

/// How many chunks each channel between stages holds: the pipeline holds at most
/// `2 * QUEUE_DEPTH + 4` chunks at once (12 MiB), plus the compressor's own buffers.
const QUEUE_DEPTH: usize = 4;

/// The most worker threads one zstd compression uses.
const MAX_ZSTD_WORKERS: usize = 4;

/// The input each zstd worker compresses at a time. zstd's default at level 3 is 8 MiB,
/// which costs ~57 MiB of buffers with two workers; 4 MiB saves ~28 MiB for the same
/// speed and a ratio within 0.02% (measured on 1 GiB of mixed text and binary data).
const ZSTD_JOB_SIZE: u32 = 4 << 20;

/// What [`store`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Bytes read from the source (the uncompressed dump).
    pub logical_bytes: u64,
    /// Bytes handed to the writer (the compressed object).
    pub stored_bytes: u64,
    /// SHA-256 of the stored bytes, lowercase hex.
    pub sha256: String,
}

/// Why [`store`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the source failed. The error is the source's own: for an engine's body,
    /// `get_ref()` holds the `engine::Error` that says why.
    #[error("reading the source failed: {0}")]
    Source(#[source] std::io::Error),
    /// Writing the object failed.
    #[error("writing the object failed: {0}")]
    Storage(#[source] storage::Error),
    /// The age encryptor could not start.
    #[error("age encryption failed: {0}")]
    Encryption(String),
    /// The compressor failed.
    #[error("{compression} compression failed: {source}")]
    Compression {
        /// The compression in use.
        compression: Compression,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How many threads the compressor may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Threads {
    /// One zstd worker per core, up to [`MAX_ZSTD_WORKERS`]: for sources that cost this
    /// host little CPU (a Redis server's replication stream), so that zstd keeps up.
    #[default]
    PerCore,
    /// zstd on the pipeline's own thread, in independent frames ([`frames`]): for data
    /// a tool on this host produces (`pg_dump`, `mariadb-dump`), which needs the other
    /// cores itself. It also keeps zstd's per-job buffers (about 30 MiB with two
    /// workers) out of memory.
    One,
}

/// [`store_with`] compressing with [`Threads::PerCore`].
pub async fn store(
    source: impl AsyncRead + Unpin + Send,
    compression: Compression,
    writer: &mut dyn ObjectWriter,
    on_progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Stored, Error> {
    store_with(source, compression, Threads::PerCore, &[], writer, on_progress).await
}

/// Reads `source` to its end, compresses it with `compression` on `threads`, encrypts
/// that to `recipients` in the standard age format (none: not encrypted), and writes the
/// result to `writer` in chunks of at most [`CHUNK_SIZE`] bytes (plus one age chunk).
/// The sizes and the SHA-256 returned are of the bytes written.
///
/// `on_progress` is called after each read from the source with the number of bytes read so
/// far; the last call reports the total (an empty source reports nothing). It runs on the
/// caller's task between reads, so it must be cheap: throttle there.
///
/// The writer is neither committed nor aborted: on `Ok` the caller commits it (after
/// recording the checksum, say); on `Err` it aborts or drops it. Cancel-safe: dropping the
/// future stops every stage promptly (the compression thread ends at its next chunk) and
/// leaves the writer uncommitted.
pub async fn store_with(
    source: impl AsyncRead + Unpin + Send,
    compression: Compression,
    threads: Threads,
    recipients: &[AgeRecipient],
    writer: &mut dyn ObjectWriter,
    on_progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Stored, Error> {
    let (input_sender, input_receiver) = mpsc::channel(QUEUE_DEPTH);
    let (output_sender, output_receiver) = mpsc::channel(QUEUE_DEPTH);
    let recipients: Vec<age::x25519::Recipient> = recipients.iter().map(AgeRecipient::to_age).collect();
    let compressor = tokio::task::spawn_blocking(move || {
        compress_stage(compression, threads, &recipients, input_receiver, output_sender)
    });

    let stages = async {
        tokio::try_join!(read_stage(source, input_sender, on_progress), write_stage(output_receiver, writer))
    };
    // A stage that fails returns at once; the others stop as their channels close.
    let logical_bytes = match stages.await {
        Ok((logical_bytes, ())) => Some(logical_bytes),
        Err(Stop::Failed(error)) => return Err(error),
        // A neighbour went away: the compressor, whose result says why.
        Err(Stop::Abandoned) => None,
    };
    let compressed = match compressor.await {
        Ok(result) => result,
        Err(join_error) if join_error.is_panic() => std::panic::resume_unwind(join_error.into_panic()),
        Err(join_error) => Err(Stop::Failed(compression_error(compression, join_error))),
    };
    match (logical_bytes, compressed) {
        (Some(logical_bytes), Ok(compressed)) => Ok(Stored {
            logical_bytes,
            stored_bytes: compressed.stored_bytes,
            sha256: hex::encode(compressed.sha256),
        }),
        (_, Err(Stop::Failed(error))) => Err(error),
        // Only reachable through a bug: a stage ended early without saying why.
        _ => Err(compression_error(compression, "the pipeline stopped before the end of the source")),
    }
}

fn compression_error(
    compression: Compression,
    cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Compression { compression, source: std::io::Error::other(cause) }
}

/// Why a stage stopped before the end.
enum Stop {
    /// This stage failed.
    Failed(Error),
    /// A neighbouring stage went away (it failed, or the pipeline was dropped).
    Abandoned,
}

/// What goes from the reader to the compressor. `End` marks a complete source, so that a
/// channel closed without it means the reader was dropped or failed.
enum Input {
    Chunk(Bytes),
    End,
}

/// Reads the source in chunks of [`CHUNK_SIZE`]; returns the number of bytes read.
async fn read_stage(
    mut source: impl AsyncRead + Unpin + Send,
    input: mpsc::Sender<Input>,
    on_progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, Stop> {
    let mut logical_bytes = 0u64;
    let mut buffer = BytesMut::with_capacity(CHUNK_SIZE);
    loop {
        // `read_buf` reads at most the spare capacity, so a chunk never exceeds CHUNK_SIZE.
        let count = source.read_buf(&mut buffer).await.map_err(|error| Stop::Failed(Error::Source(error)))?;
        let at_end = count == 0;
        if count > 0 {
            // Every read counts, so a slow source shows progress before a chunk fills.
            on_progress(logical_bytes + buffer.len() as u64);
        }
        if buffer.len() >= CHUNK_SIZE || (at_end && !buffer.is_empty()) {
            logical_bytes += buffer.len() as u64;
            let chunk = buffer.split().freeze();
            input.send(Input::Chunk(chunk)).await.map_err(|_| Stop::Abandoned)?;
            buffer.reserve(CHUNK_SIZE);
        }
        if at_end {
            input.send(Input::End).await.map_err(|_| Stop::Abandoned)?;
            return Ok(logical_bytes);
        }
    }
}

/// Hands the compressed chunks to the writer until the compressor closes the channel.
async fn write_stage(mut output: mpsc::Receiver<Bytes>, writer: &mut dyn ObjectWriter) -> Result<(), Stop> {
    while let Some(chunk) = output.recv().await {
        writer.write(chunk).await.map_err(|error| Stop::Failed(Error::Storage(error)))?;
    }
    Ok(())
}

/// What the compressor produced.
struct Compressed {
    stored_bytes: u64,
    sha256: [u8; 32],
}

/// The compression (and encryption) stage, on a blocking thread.
fn compress_stage(
    compression: Compression,
    threads: Threads,
    recipients: &[age::x25519::Recipient],
    input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Bytes>,
) -> Result<Compressed, Stop> {
    let sink = Sink::new(recipients, HashingSink { output, hasher: Sha256::new(), stored_bytes: 0 })?;
    match compression {
        Compression::None => pass_through(input, sink),
        Compression::Zstd => match threads {
            Threads::PerCore => compress_with(zstd_workers(), compression, input, sink),
            Threads::One => {
                let encoder = FramedZstd::new(ZSTD_LEVEL)
                    .map_err(|source| Stop::Failed(Error::Compression { compression, source }))?;
                compress_with(encoder, compression, input, sink)
            }
        },
        Compression::Gzip => {
            let encoder = GzipEncoder::new(FlateEncoderParams::from(async_compression::Level::Default));
            compress_with(encoder, compression, input, sink)
        }
    }
}

/// A zstd encoder at [`ZSTD_LEVEL`] with one worker thread per core, up to
/// [`MAX_ZSTD_WORKERS`], writing the content checksum the `zstd` command writes (so
/// that `zstd -t` verifies a stored object). The workers make zstd keep up with the
/// source.
fn zstd_workers() -> ZstdEncoder {
    let cores = std::thread::available_parallelism().map_or(1, |count| count.get());
    let workers = cores.clamp(1, MAX_ZSTD_WORKERS) as u32;
    let params = [
        CParameter::nb_workers(workers),
        CParameter::job_size(ZSTD_JOB_SIZE),
        CParameter::checksum_flag(true),
    ];
    ZstdEncoder::new_with_params(ZSTD_LEVEL, &params)
}

/// Counts and hashes the stored bytes on their way to the writer.
struct HashingSink {
    output: mpsc::Sender<Bytes>,
    hasher: Sha256,
    stored_bytes: u64,
}

impl HashingSink {
    fn send(&mut self, chunk: Bytes) -> Result<(), Stop> {
        self.hasher.update(&chunk);
        self.stored_bytes += chunk.len() as u64;
        self.output.blocking_send(chunk).map_err(|_| Stop::Abandoned)
    }

    fn finish(self) -> Compressed {
        Compressed { stored_bytes: self.stored_bytes, sha256: self.hasher.finalize().into() }
    }
}

/// Where the compressed bytes go: to the hashing sink, or through age to it.
enum Sink {
    Plain(HashingSink),
    Age(Box<age::stream::StreamWriter<AgeOutput>>),
}

impl Sink {
    fn new(recipients: &[age::x25519::Recipient], hashing: HashingSink) -> Result<Sink, Stop> {
        if recipients.is_empty() {
            return Ok(Sink::Plain(hashing));
        }
        let recipients = recipients.iter().map(|recipient| recipient as &dyn age::Recipient);
        let failed = |error: &dyn std::fmt::Display| Stop::Failed(Error::Encryption(error.to_string()));
        let encryptor = age::Encryptor::with_recipients(recipients).map_err(|error| failed(&error))?;
        let output = AgeOutput { sink: hashing, buffer: Vec::with_capacity(CHUNK_SIZE + AGE_CHUNK) };
        let writer = encryptor.wrap_output(output).map_err(|error| failed(&error))?;
        Ok(Sink::Age(Box::new(writer)))
    }

    fn send(&mut self, chunk: Bytes) -> Result<(), Stop> {
        match self {
            Sink::Plain(sink) => sink.send(chunk),
            // The only write error is the hashing sink's: its receiver went away.
            Sink::Age(writer) => std::io::Write::write_all(writer, &chunk).map_err(|_| Stop::Abandoned),
        }
    }

    fn finish(self) -> Result<Compressed, Stop> {
        match self {
            Sink::Plain(sink) => Ok(sink.finish()),
            Sink::Age(writer) => {
                let mut output = writer.finish().map_err(|_| Stop::Abandoned)?;
                output.send_buffer()?;
                Ok(output.sink.finish())
            }
        }
    }
}

/// The size of age's STREAM chunks (the ciphertext adds 16 bytes to each).
const AGE_CHUNK: usize = 64 * 1024 + 16;

/// What age writes: gathered into chunks of about [`CHUNK_SIZE`] for the hashing sink.
struct AgeOutput {
    sink: HashingSink,
    buffer: Vec<u8>,
}

impl AgeOutput {
    fn send_buffer(&mut self) -> Result<(), Stop> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::copy_from_slice(&self.buffer);
        self.buffer.clear();
        self.sink.send(chunk)
    }
}

impl std::io::Write for AgeOutput {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_SIZE {
            self.send_buffer().map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn pass_through(mut input: mpsc::Receiver<Input>, mut sink: Sink) -> Result<Compressed, Stop> {
    loop {
        match input.blocking_recv() {
            Some(Input::Chunk(chunk)) => sink.send(chunk)?,
            Some(Input::End) => return sink.finish(),
            None => return Err(Stop::Abandoned),
        }
    }
}

fn compress_with(
    mut encoder: impl Encode,
    compression: Compression,
    mut input: mpsc::Receiver<Input>,
    mut sink: Sink,
) -> Result<Compressed, Stop> {
    let failed = |error| Stop::Failed(Error::Compression { compression, source: error });
    let mut output = PartialBuffer::new(vec![0u8; CHUNK_SIZE]);
    let emit = |output: &mut PartialBuffer<Vec<u8>>, sink: &mut Sink| {
        let chunk = Bytes::copy_from_slice(output.written());
        output.reset();
        sink.send(chunk)
    };
    loop {
        match input.blocking_recv() {
            Some(Input::Chunk(chunk)) => {
                let mut chunk = PartialBuffer::new(chunk.as_ref());
                while !chunk.unwritten().is_empty() {
                    encoder.encode(&mut chunk, &mut output).map_err(failed)?;
                    if output.unwritten().is_empty() {
                        emit(&mut output, &mut sink)?;
                    }
                }
            }
            Some(Input::End) => {
                // `finish` returns false while it has more to write than `output` holds.
                while !encoder.finish(&mut output).map_err(failed)? {
                    emit(&mut output, &mut sink)?;
                }
                if !output.written().is_empty() {
                    emit(&mut output, &mut sink)?;
                }
                return sink.finish();
            }
            None => return Err(Stop::Abandoned),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::pin::Pin;
    use std::process::Stdio;
    use std::task::{Context, Poll};

    use async_trait::async_trait;
    use tokio::io::ReadBuf;

    use super::*;

    /// Reads `data` at most `step` bytes at a time.
    struct SteppedReader {
        data: Bytes,
        step: usize,
        /// After the data, fail with this instead of ending.
        failure: Option<std::io::Error>,
    }

    impl AsyncRead for SteppedReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _context: &mut Context<'_>,
            buffer: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.data.is_empty() {
                return Poll::Ready(self.failure.take().map_or(Ok(()), Err));
            }
            let count = self.step.min(self.data.len()).min(buffer.remaining());
            let chunk = self.data.split_to(count);
            buffer.put_slice(&chunk);
            Poll::Ready(Ok(()))
        }
    }

    fn reader(data: &[u8], step: usize) -> SteppedReader {
        SteppedReader { data: Bytes::copy_from_slice(data), step, failure: None }
    }

    /// Keeps what is written in memory; fails the write numbered `fail_at`, if set.
    #[derive(Default)]
    struct MemoryWriter {
        bytes: Vec<u8>,
        chunk_sizes: Vec<usize>,
        fail_at: Option<usize>,
    }

    #[async_trait]
    impl ObjectWriter for MemoryWriter {
        async fn write(&mut self, chunk: Bytes) -> Result<(), storage::Error> {
            if self.fail_at == Some(self.chunk_sizes.len()) {
                return Err(storage::Error::Io {
                    key: "memory".into(),
                    source: std::io::Error::other("disk full"),
                });
            }
            self.chunk_sizes.push(chunk.len());
            self.bytes.extend_from_slice(&chunk);
            Ok(())
        }

        async fn commit(self: Box<Self>) -> Result<u64, storage::Error> {
            Ok(self.bytes.len() as u64)
        }

        async fn abort(self: Box<Self>) -> Result<(), storage::Error> {
            Ok(())
        }
    }

    /// Pseudo-random bytes that do not compress.
    fn random(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// Text-like bytes that compress well, with some variety.
    fn compressible(len: usize) -> Vec<u8> {
        let mut text = Vec::with_capacity(len + 64);
        let mut line = 0u64;
        while text.len() < len {
            let _ = writeln!(
                text,
                "key:{line} value-{} {}",
                line * 7919 % 1000,
                "x".repeat((line % 13) as usize)
            );
            line += 1;
        }
        text.truncate(len);
        text
    }

    /// Reads `stored` back the way restores do ([`unpack::Unpacking`]).
    async fn decompress(compression: Compression, stored: &[u8]) -> Vec<u8> {
        let identities = identities::Identities::default();
        let mut unpacking = unpack::Unpacking::open(stored, None, &identities).await.unwrap();
        let mut plain = Vec::new();
        unpacking.read_to_end(&mut plain).await.unwrap();
        let unpacked = unpacking.unpacked().expect("read to its end");
        assert_eq!(unpacked.compression, compression, "recognised by its content");
        plain
    }

    /// Decompresses with the `zstd` or `gzip` command, as an operator would.
    fn decompress_with_command(compression: Compression, stored: &[u8]) -> Vec<u8> {
        let program = match compression {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => return stored.to_vec(),
        };
        let mut child = std::process::Command::new(program)
            .args(["-d", "-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("{program} is needed for this test (apt-get install {program}): {error}")
            });
        let mut stdin = child.stdin.take().unwrap();
        let input = stored.to_vec();
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(output.status.success(), "{program} -d failed");
        output.stdout
    }

    async fn store_all(
        data: &[u8],
        step: usize,
        compression: Compression,
    ) -> (Stored, MemoryWriter, Vec<u64>) {
        let mut writer = MemoryWriter::default();
        let mut progress = Vec::new();
        let stored = store(reader(data, step), compression, &mut writer, &mut |done| progress.push(done))
            .await
            .unwrap();
        (stored, writer, progress)
    }

    fn check_invariants(data: &[u8], stored: &Stored, writer: &MemoryWriter, progress: &[u64]) {
        assert_eq!(stored.logical_bytes, data.len() as u64);
        assert_eq!(stored.stored_bytes, writer.bytes.len() as u64);
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&writer.bytes)));
        assert!(
            writer.chunk_sizes.iter().all(|&size| size > 0 && size <= CHUNK_SIZE),
            "{:?}",
            writer.chunk_sizes
        );
        assert!(progress.windows(2).all(|pair| pair[0] < pair[1]), "progress is monotonic: {progress:?}");
        assert!(progress.windows(2).all(|pair| pair[1] - pair[0] <= CHUNK_SIZE as u64));
        assert_eq!(progress.last().copied().unwrap_or(0), data.len() as u64, "progress ends at the total");
    }

    #[tokio::test]
    async fn round_trips_for_every_compression_and_read_size() {
        let random_data = random(2 * CHUNK_SIZE + 12345, 7);
        let text_data = compressible(3 * CHUNK_SIZE + 777);
        let cases: [(&str, &[u8], &[usize]); 4] = [
            ("empty", b"", &[1]),
            ("tiny", b"hello", &[1, 4096]),
            ("random", &random_data, &[1000, 64 * 1024, 3 * CHUNK_SIZE]),
            ("text", &text_data, &[4096, CHUNK_SIZE + 1]),
        ];
        for compression in Compression::ALL.iter().copied() {
            for (name, data, steps) in cases {
                for &step in steps {
                    let (stored, writer, progress) = store_all(data, step, compression).await;
                    let context = format!("{compression} {name} in reads of {step}");
                    check_invariants(data, &stored, &writer, &progress);
                    assert!(decompress(compression, &writer.bytes).await == data, "{context}: round trip");
                    if compression == Compression::None {
                        assert_eq!(writer.bytes, data, "{context}: stored as is");
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn the_standard_commands_read_what_is_stored() {
        let data = compressible(3 * CHUNK_SIZE);
        for compression in [Compression::Zstd, Compression::Gzip] {
            let (stored, writer, _) = store_all(&data, 64 * 1024, compression).await;
            assert!(stored.stored_bytes < stored.logical_bytes / 2, "{compression} compresses text");
            assert!(decompress_with_command(compression, &writer.bytes) == data, "{compression}");
            // On one thread too (for data a tool on this host produces).
            let mut one = MemoryWriter::default();
            let stored_on_one =
                store_with(reader(&data, 64 * 1024), compression, Threads::One, &[], &mut one, &mut |_| {})
                    .await
                    .unwrap();
            assert_eq!(stored_on_one.sha256, hex::encode(Sha256::digest(&one.bytes)), "{compression}");
            assert!(decompress_with_command(compression, &one.bytes) == data, "{compression} on one thread");
        }
        // On one thread zstd writes a frame per `FRAME_INPUT` bytes; both the command and
        // Cellar's own reading take them as one stream.
        let data = compressible(2 * frames::FRAME_INPUT + CHUNK_SIZE + 17);
        let (mut one, mut progress) = (MemoryWriter::default(), Vec::new());
        let stored = store_with(
            reader(&data, CHUNK_SIZE),
            Compression::Zstd,
            Threads::One,
            &[],
            &mut one,
            &mut |bytes| progress.push(bytes),
        )
        .await
        .unwrap();
        check_invariants(&data, &stored, &one, &progress);
        assert!(decompress_with_command(Compression::Zstd, &one.bytes) == data, "zstd -d reads every frame");
        assert!(decompress(Compression::Zstd, &one.bytes).await == data, "unpack reads every frame");
        let (_, zstd, _) = store_all(&data, CHUNK_SIZE, Compression::Zstd).await;
        assert_eq!(zstd.bytes[..4], [0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
        assert_ne!(zstd.bytes[4] & 0x04, 0, "the frame carries a content checksum");
        let (_, empty, _) = store_all(b"", 1, Compression::Zstd).await;
        assert_eq!(decompress_with_command(Compression::Zstd, &empty.bytes), b"");
    }

    #[tokio::test]
    async fn a_failing_source_keeps_its_error() {
        for compression in Compression::ALL.iter().copied() {
            let corrupt = crate::engine::Error::Corrupt("rdb checksum mismatch".into());
            let mut source = reader(&random(2 * CHUNK_SIZE + 10, 3), 64 * 1024);
            source.failure = Some(std::io::Error::other(corrupt));
            let mut writer = MemoryWriter::default();
            let result = store(source, compression, &mut writer, &mut |_| {}).await;
            let Err(Error::Source(error)) = result else { panic!("{compression}: expected a source error") };
            let inner = error.get_ref().and_then(|inner| inner.downcast_ref::<crate::engine::Error>());
            assert!(matches!(inner, Some(crate::engine::Error::Corrupt(_))), "{compression}: {error}");
            // The writer was neither committed nor finished: the caller aborts it.
        }
    }

    #[tokio::test]
    async fn a_failing_writer_is_a_storage_error() {
        let data = random(4 * CHUNK_SIZE, 11);
        for compression in Compression::ALL.iter().copied() {
            let mut writer = MemoryWriter { fail_at: Some(1), ..MemoryWriter::default() };
            let result = store(reader(&data, CHUNK_SIZE), compression, &mut writer, &mut |_| {}).await;
            match result {
                Err(error @ Error::Storage(_)) => assert!(error.to_string().contains("disk full"), "{error}"),
                other => panic!("{compression}: expected a storage error, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_dropped_store_stops_the_compressor() {
        // A source that never ends: dropping the future must not hang or leak the stage.
        let (mut feeder, source) = tokio::io::duplex(64 * 1024);
        let mut writer = MemoryWriter::default();
        let mut progress = 0;
        {
            let mut on_progress = |done| progress = done;
            let store = store(source, Compression::Zstd, &mut writer, &mut on_progress);
            tokio::pin!(store);
            let feed = async {
                for _ in 0..4 {
                    tokio::io::AsyncWriteExt::write_all(&mut feeder, &random(CHUNK_SIZE, 5)).await.unwrap();
                }
            };
            tokio::select! {
                _ = &mut store => panic!("the source never ends"),
                () = feed => {}
            }
        }
        assert!(progress >= 3 * CHUNK_SIZE as u64, "{progress}");
        // The duplex's reading half was dropped with the store.
        let closed = tokio::io::AsyncWriteExt::write_all(&mut feeder, b"more").await;
        assert!(closed.is_err());
    }
}

//! The snapshot body: the RDB as the master sends it, delimited by its length or its end
//! mark, with the CRC64 trailer checked before the stream reports its end.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use super::crc64::{CRC64, Digest};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::replication::{Framing, MARK_LEN};
use crate::engine::Error;

/// `REDIS` and four version digits.
pub(crate) const MAGIC_LEN: usize = 9;
/// The little-endian CRC64 that ends an RDB since version 5.
const TRAILER_LEN: usize = 8;
/// The first RDB version with a checksum trailer (Redis 2.6).
const FIRST_CHECKSUMMED_VERSION: u32 = 5;
/// The opcode that ends an RDB's data, just before the trailer.
const OPCODE_EOF: u8 = 0xff;
/// Bytes a diskless transfer holds back: they may turn out to be the trailer and mark.
const HOLD_BACK: usize = TRAILER_LEN + MARK_LEN;
/// How much one read from the server may bring.
const BUFFER_SIZE: usize = 512 * 1024;

/// Reads the RDB version from the first [`MAGIC_LEN`] bytes (`REDIS0011` is 11).
pub(crate) fn parse_magic(head: &[u8]) -> Result<u32, String> {
    let shown = || format!("{:?}", String::from_utf8_lossy(&head[..head.len().min(MAGIC_LEN)]));
    let digits = match head.get(..MAGIC_LEN).and_then(|magic| magic.strip_prefix(b"REDIS")) {
        Some(digits) if digits.iter().all(u8::is_ascii_digit) => digits,
        _ => return Err(format!("the data starts with {}, not an rdb header", shown())),
    };
    Ok(digits.iter().fold(0, |version, digit| version * 10 + u32::from(digit - b'0')))
}

/// An `AsyncRead` that yields exactly the RDB bytes read from `source` and ends (`Ok(0)`)
/// only once they are complete and, for RDB 5 and later, match their checksum (a zero
/// trailer means the server has checksums off). A failure is an `io::Error` wrapping an
/// [`Error`]: `Corrupt` (`InvalidData`) for bad data, `Unreachable` for a connection that
/// breaks, closes early (`UnexpectedEof`) or goes silent (`TimedOut`). Memory is one
/// fixed buffer; dropping the stream drops (closes) the source.
pub(crate) struct RdbStream<R> {
    source: R,
    framing: Framing,
    /// `host:port`, for messages.
    label: String,
    /// 8 when the RDB ends with a checksum, 0 before RDB 5.
    trailer_len: usize,
    buffer: Box<[u8]>,
    /// `buffer[start..released]`: checked so far as it can be, waiting for the reader.
    start: usize,
    released: usize,
    /// `buffer[released..filled]`: received but held back; with an end mark, the last
    /// [`HOLD_BACK`] bytes may be the trailer and the mark.
    filled: usize,
    /// Bytes received from the source so far (for a mark transfer, the mark included).
    received: u64,
    /// The CRC64 of all bytes released, which are never the trailer.
    digest: Digest,
    /// The last byte summed: the RDB end opcode once everything is in.
    last_summed: Option<u8>,
    /// The trailer, gathered as it arrives (length framing) or at the mark.
    trailer: [u8; TRAILER_LEN],
    state: State,
    idle_timeout: Duration,
    /// Fires when the source has been silent for `idle_timeout`.
    idle: Option<Pin<Box<Sleep>>>,
    /// Whether `idle` is armed for the current wait.
    waiting: bool,
}

enum State {
    Streaming,
    /// Everything is in and checked: once the buffer drains, the stream ends.
    Verified,
    /// The stream failed; every later read fails the same way.
    Failed(Failure),
}

struct Failure {
    kind: io::ErrorKind,
    corrupt: bool,
    message: String,
}

impl Failure {
    fn corrupt(message: String) -> Failure {
        Failure { kind: io::ErrorKind::InvalidData, corrupt: true, message }
    }

    fn unreachable(kind: io::ErrorKind, message: String) -> Failure {
        Failure { kind, corrupt: false, message }
    }

    fn to_io_error(&self) -> io::Error {
        let message = self.message.clone();
        let error = if self.corrupt { Error::Corrupt(message) } else { Error::Unreachable(message) };
        io::Error::new(self.kind, error)
    }
}

impl<R: AsyncRead + Unpin> RdbStream<R> {
    /// Streams an RDB of format `version` from `source`, which starts with the RDB's
    /// first byte and is delimited by `framing`. A source silent for `idle_timeout`
    /// while the stream waits on it fails the stream.
    pub(crate) fn new(
        source: R,
        framing: Framing,
        version: u32,
        label: String,
        idle_timeout: Duration,
    ) -> Self {
        let trailer_len = if version >= FIRST_CHECKSUMMED_VERSION { TRAILER_LEN } else { 0 };
        let mut stream = RdbStream {
            source,
            framing,
            label,
            trailer_len,
            buffer: vec![0; BUFFER_SIZE].into_boxed_slice(),
            start: 0,
            released: 0,
            filled: 0,
            received: 0,
            digest: CRC64.digest(),
            last_summed: None,
            trailer: [0; TRAILER_LEN],
            state: State::Streaming,
            idle_timeout,
            idle: None,
            waiting: false,
        };
        if let Framing::Length(length) = framing
            && let Err(failure) = stream.check_length(length)
        {
            stream.state = State::Failed(failure);
        }
        stream
    }

    /// The smallest RDB: the magic, the end opcode and the trailer.
    fn minimum_length(&self) -> u64 {
        (MAGIC_LEN + 1 + self.trailer_len) as u64
    }

    fn check_length(&self, length: u64) -> Result<(), Failure> {
        if length < self.minimum_length() {
            return Err(Failure::corrupt(format!(
                "redis at {} sent an rdb of {length} bytes, too short",
                self.label
            )));
        }
        Ok(())
    }

    /// Reads once from the source and takes in what came; a failure lands in `state`.
    /// Called only when every released byte has been read.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // Move the held-back bytes (at most `HOLD_BACK`) to the front.
        self.buffer.copy_within(self.released..self.filled, 0);
        self.filled -= self.released;
        self.start = 0;
        self.released = 0;

        let room = self.buffer.len() - self.filled;
        let wanted = match self.framing {
            // Never read past the RDB: the replication stream may follow it.
            Framing::Length(length) => {
                room.min(usize::try_from(length - self.received).unwrap_or(usize::MAX))
            }
            Framing::Mark(_) => room,
        };
        let mut target = ReadBuf::new(&mut self.buffer[self.filled..self.filled + wanted]);
        let polled = Pin::new(&mut self.source).poll_read(cx, &mut target);
        let count = target.filled().len();
        match polled {
            Poll::Pending => return self.poll_idle(cx),
            Poll::Ready(Err(error)) => {
                let message = format!(
                    "connection to redis at {} failed after {} bytes: {error}",
                    self.label, self.received
                );
                self.fail(Failure::unreachable(error.kind(), message));
            }
            Poll::Ready(Ok(())) if count == 0 => {
                let message = match self.framing {
                    Framing::Length(length) => format!(
                        "redis at {} closed the connection after {} of {length} bytes",
                        self.label, self.received
                    ),
                    Framing::Mark(_) => format!(
                        "redis at {} closed the connection after {} bytes, before the end of the rdb",
                        self.label, self.received
                    ),
                };
                self.fail(Failure::unreachable(io::ErrorKind::UnexpectedEof, message));
            }
            Poll::Ready(Ok(())) => {
                self.waiting = false;
                match self.framing {
                    Framing::Length(length) => self.take_in_with_length(count, length),
                    Framing::Mark(mark) => self.take_in_with_mark(count, &mark),
                }
            }
        }
        Poll::Ready(())
    }

    /// Takes in `count` bytes just read into `buffer[filled..]` of an RDB `length`
    /// long: everything is released; the bytes in the last eight are the trailer.
    fn take_in_with_length(&mut self, count: usize, length: u64) {
        let from = self.received;
        let summed_end = length - self.trailer_len as u64;
        let new = self.filled..self.filled + count;
        // Both differences are at most `count`, so they fit in usize.
        let summed = (summed_end.saturating_sub(from) as usize).min(count);
        self.sum(new.start, new.start + summed);
        let trailer_offset = from.saturating_sub(summed_end) as usize;
        let trailer_part = &self.buffer[new.start + summed..new.end];
        self.trailer[trailer_offset..trailer_offset + trailer_part.len()].copy_from_slice(trailer_part);

        self.received += count as u64;
        self.filled = new.end;
        self.released = new.end;
        if self.received == length {
            self.verify();
        }
    }

    /// Takes in `count` bytes just read into `buffer[filled..]` of a transfer that ends
    /// with `mark`. The master sends nothing after the mark until we acknowledge it
    /// (which we never do), so the transfer is over when the bytes so far end with it.
    /// Since the last [`HOLD_BACK`] bytes are always kept, the buffer holds the last 40.
    fn take_in_with_mark(&mut self, count: usize, mark: &[u8; MARK_LEN]) {
        self.filled += count;
        self.received += count as u64;
        if !self.buffer[..self.filled].ends_with(mark) {
            let releasable = self.filled.saturating_sub(HOLD_BACK).max(self.released);
            self.sum(self.released, releasable);
            self.released = releasable;
            return;
        }
        let rdb_length = self.received - MARK_LEN as u64;
        if let Err(failure) = self.check_length(rdb_length) {
            return self.fail(failure);
        }
        // The RDB is at least as long as a trailer, and if it is longer than what the
        // buffer holds, the buffer holds `HOLD_BACK` bytes before the new ones.
        let rdb_end = self.filled - MARK_LEN;
        let summed_end = rdb_end - self.trailer_len;
        self.sum(self.released, summed_end);
        if self.trailer_len > 0 {
            self.trailer.copy_from_slice(&self.buffer[summed_end..rdb_end]);
        }
        self.released = rdb_end;
        self.filled = rdb_end;
        self.verify();
    }

    /// Adds `buffer[from..to]` to the checksum.
    fn sum(&mut self, from: usize, to: usize) {
        if from < to {
            self.digest.update(&self.buffer[from..to]);
            self.last_summed = Some(self.buffer[to - 1]);
        }
    }

    /// Everything is in: checks the end opcode and the checksum.
    fn verify(&mut self) {
        if self.last_summed != Some(OPCODE_EOF) {
            let message =
                format!("the rdb from redis at {} does not end with the end-of-file opcode", self.label);
            return self.fail(Failure::corrupt(message));
        }
        let expected = u64::from_le_bytes(self.trailer);
        let actual = std::mem::replace(&mut self.digest, CRC64.digest()).finalize();
        // A zero trailer: the server runs with `rdbchecksum no`.
        if self.trailer_len > 0 && expected != 0 && expected != actual {
            let message = format!(
                "the rdb from redis at {} fails its checksum: the trailer says {expected:016x}, the data sums to {actual:016x}",
                self.label
            );
            return self.fail(Failure::corrupt(message));
        }
        self.state = State::Verified;
    }

    /// Fails the stream; bytes not yet read are dropped with it.
    fn fail(&mut self, failure: Failure) {
        self.released = self.start;
        self.state = State::Failed(failure);
    }

    /// The source has nothing yet: arms the idle timer for this wait, or fails the
    /// stream when it has fired.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.waiting {
            self.waiting = true;
            let deadline = Instant::now() + self.idle_timeout;
            match self.idle.as_mut() {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.idle = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let fired = match self.idle.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if !fired {
            return Poll::Pending;
        }
        let message = format!(
            "redis at {} sent nothing for {} s after {} bytes",
            self.label,
            self.idle_timeout.as_secs_f64(),
            self.received
        );
        self.fail(Failure::unreachable(io::ErrorKind::TimedOut, message));
        Poll::Ready(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for RdbStream<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.start < this.released {
                let count = (this.released - this.start).min(out.remaining());
                out.put_slice(&this.buffer[this.start..this.start + count]);
                this.start += count;
                return Poll::Ready(Ok(()));
            }
            match &this.state {
                State::Streaming => ready!(this.poll_fill(cx)),
                State::Verified => return Poll::Ready(Ok(())),
                State::Failed(failure) => return Poll::Ready(Err(failure.to_io_error())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::io::AsyncReadExt;

    use super::*;

    const MARK: [u8; MARK_LEN] = *b"0123456789abcdef0123456789abcdef01234567";

    /// A small RDB: magic, `payload`, the end opcode and the checksum trailer.
    fn rdb(payload: &[u8]) -> Vec<u8> {
        let mut data = [b"REDIS0011", payload, &[OPCODE_EOF]].concat();
        data.extend_from_slice(&CRC64.checksum(&data).to_le_bytes());
        data
    }

    /// A source that hands out its bytes in the given pieces, then ends.
    struct Pieces(VecDeque<Vec<u8>>);

    impl Pieces {
        fn split(data: &[u8], cuts: &[usize]) -> Pieces {
            let mut pieces = VecDeque::new();
            let mut from = 0;
            for &cut in cuts.iter().chain([data.len()].iter()) {
                pieces.push_back(data[from..cut].to_vec());
                from = cut;
            }
            Pieces(pieces)
        }
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            // Empty pieces are skipped: a read of nothing means the end.
            while let Some(mut piece) = self.0.pop_front() {
                if piece.is_empty() {
                    continue;
                }
                let count = piece.len().min(out.remaining());
                out.put_slice(&piece[..count]);
                if count < piece.len() {
                    self.0.push_front(piece.split_off(count));
                }
                break;
            }
            Poll::Ready(Ok(()))
        }
    }

    fn stream<R: AsyncRead + Unpin>(source: R, framing: Framing) -> RdbStream<R> {
        RdbStream::new(source, framing, 11, "h:6379".into(), Duration::from_secs(60))
    }

    /// Reads the stream to its end, `chunk` bytes at a time.
    async fn read_all(mut body: impl AsyncRead + Unpin, chunk: usize) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        let mut piece = vec![0; chunk];
        loop {
            match body.read(&mut piece).await? {
                0 => return Ok(data),
                count => data.extend_from_slice(&piece[..count]),
            }
        }
    }

    /// The engine error inside a failed read, as `Kind: message`.
    fn failure(error: io::Error) -> (io::ErrorKind, String) {
        let kind = error.kind();
        let inner = error.into_inner().expect("an engine error inside");
        let engine = inner.downcast::<Error>().expect("an engine error inside");
        let variant = format!("{engine:?}").split('(').next().unwrap().to_owned();
        (kind, format!("{variant}: {engine}"))
    }

    #[test]
    fn crc_is_redis_crc64() {
        // The check value in Redis's own crc64 test.
        assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn reads_the_version_from_the_magic() {
        assert_eq!(parse_magic(b"REDIS0011"), Ok(11));
        assert_eq!(parse_magic(b"REDIS0006\xfa"), Ok(6));
        assert_eq!(
            parse_magic(b"RDB000011").unwrap_err(),
            "the data starts with \"RDB000011\", not an rdb header"
        );
        assert!(parse_magic(b"REDIS00a1").is_err());
        assert!(parse_magic(b"REDIS").is_err());
    }

    #[tokio::test]
    async fn a_mark_transfer_yields_the_rdb_whatever_the_piece_boundaries() {
        let data = rdb(b"\xfe\x00\x00\x01k\x01v");
        let sent = [&data[..], &MARK].concat();
        for cut in 0..=sent.len() {
            let body = stream(Pieces::split(&sent, &[cut]), Framing::Mark(MARK));
            assert_eq!(read_all(body, 4096).await.unwrap(), data, "cut at {cut}");
        }
        for first in 0..=sent.len() {
            for second in first..=sent.len() {
                let body = stream(Pieces::split(&sent, &[first, second]), Framing::Mark(MARK));
                assert_eq!(read_all(body, 3).await.unwrap(), data, "cuts at {first} and {second}");
            }
        }
        let byte_by_byte: Vec<usize> = (1..sent.len()).collect();
        let body = stream(Pieces::split(&sent, &byte_by_byte), Framing::Mark(MARK));
        assert_eq!(read_all(body, 1).await.unwrap(), data);
    }

    #[tokio::test]
    async fn a_long_mark_transfer_spans_many_buffers() {
        let payload: Vec<u8> = (0..3 * BUFFER_SIZE + 12345).map(|index| (index * 7 % 251) as u8).collect();
        let data = rdb(&payload);
        let sent = [&data[..], &MARK].concat();
        let cuts = [BUFFER_SIZE - 20, BUFFER_SIZE + 5, 2 * BUFFER_SIZE, sent.len() - 45, sent.len() - 3];
        let body = stream(Pieces::split(&sent, &cuts), Framing::Mark(MARK));
        assert!(read_all(body, 100_000).await.unwrap() == data);
    }

    #[tokio::test]
    async fn a_length_transfer_stops_at_the_length() {
        let data = rdb(b"\xfe\x00\x00\x01k\x01v");
        let sent = [&data[..], b"*1\r\n$4\r\nPING\r\n"].concat();
        for cut in 0..=sent.len() {
            let body = stream(Pieces::split(&sent, &[cut]), Framing::Length(data.len() as u64));
            assert_eq!(read_all(body, 5).await.unwrap(), data, "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn a_checksum_mismatch_is_corrupt() {
        let mut data = rdb(b"\x00\x01k\x01v");
        data[10] ^= 1;
        let body = stream(Pieces::split(&data, &[]), Framing::Length(data.len() as u64));
        let (kind, message) = failure(read_all(body, 4096).await.unwrap_err());
        assert_eq!(kind, io::ErrorKind::InvalidData);
        assert!(message.starts_with("Corrupt: the rdb from redis at h:6379 fails its checksum"), "{message}");

        let sent = [&data[..], &MARK].concat();
        let body = stream(Pieces::split(&sent, &[30]), Framing::Mark(MARK));
        let (kind, _) = failure(read_all(body, 4096).await.unwrap_err());
        assert_eq!(kind, io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_zero_trailer_means_no_checksum() {
        let mut data = rdb(b"\x00\x01k\x01v");
        let trailer_start = data.len() - TRAILER_LEN;
        data[trailer_start..].fill(0);
        let body = stream(Pieces::split(&data, &[]), Framing::Length(data.len() as u64));
        assert_eq!(read_all(body, 4096).await.unwrap(), data);
    }

    #[tokio::test]
    async fn old_rdbs_have_no_trailer() {
        let data = b"REDIS0004\x00\x01k\x01v\xff".to_vec();
        let body = RdbStream::new(
            Pieces::split(&data, &[3]),
            Framing::Length(data.len() as u64),
            4,
            "h:6379".into(),
            Duration::from_secs(60),
        );
        assert_eq!(read_all(body, 4096).await.unwrap(), data);
    }

    #[tokio::test]
    async fn data_without_the_end_opcode_is_corrupt() {
        let mut data = b"REDIS0011\x00\x01k\x01v".to_vec();
        data.extend_from_slice(&CRC64.checksum(&data).to_le_bytes());
        let body = stream(Pieces::split(&data, &[]), Framing::Length(data.len() as u64));
        let (_, message) = failure(read_all(body, 4096).await.unwrap_err());
        assert_eq!(message, "Corrupt: the rdb from redis at h:6379 does not end with the end-of-file opcode");
    }

    #[tokio::test]
    async fn too_short_an_rdb_is_corrupt() {
        let body = stream(Pieces::split(b"REDIS0011", &[]), Framing::Length(9));
        let (_, message) = failure(read_all(body, 4096).await.unwrap_err());
        assert_eq!(message, "Corrupt: redis at h:6379 sent an rdb of 9 bytes, too short");

        let sent = [&b"REDIS0011\xff"[..], &MARK].concat();
        let body = stream(Pieces::split(&sent, &[]), Framing::Mark(MARK));
        let (_, message) = failure(read_all(body, 4096).await.unwrap_err());
        assert_eq!(message, "Corrupt: redis at h:6379 sent an rdb of 10 bytes, too short");
    }

    #[tokio::test]
    async fn a_connection_closed_early_never_ends_cleanly() {
        let data = rdb(b"\x00\x01k\x01v");
        for end in 0..data.len() {
            let body = stream(Pieces::split(&data[..end], &[end / 2]), Framing::Length(data.len() as u64));
            let (kind, message) = failure(read_all(body, 4096).await.unwrap_err());
            assert_eq!(kind, io::ErrorKind::UnexpectedEof);
            let expected = format!(
                "Unreachable: redis at h:6379 closed the connection after {end} of {} bytes",
                data.len()
            );
            assert_eq!(message, expected);
        }
        let sent = [&data[..], &MARK].concat();
        for end in 0..sent.len() {
            let body = stream(Pieces::split(&sent[..end], &[end / 3]), Framing::Mark(MARK));
            let (kind, message) = failure(read_all(body, 4096).await.unwrap_err());
            assert_eq!(kind, io::ErrorKind::UnexpectedEof, "{message}");
            assert!(message.ends_with(&format!("after {end} bytes, before the end of the rdb")), "{message}");
        }
    }

    #[tokio::test]
    async fn failures_repeat_and_withhold_unchecked_bytes() {
        let mut data = rdb(b"\x00\x01k\x01v");
        data[12] ^= 1;
        let mut body = stream(Pieces::split(&data, &[]), Framing::Length(data.len() as u64));
        let mut piece = vec![0; 4096];
        assert!(body.read(&mut piece).await.is_err());
        assert!(body.read(&mut piece).await.is_err());
    }

    /// A source whose connection was reset.
    struct Reset;

    impl AsyncRead for Reset {
        fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
    }

    #[tokio::test]
    async fn read_errors_keep_their_kind() {
        let source = Pieces::split(b"REDIS0011\x00", &[]).chain(Reset);
        let (kind, message) = failure(read_all(stream(source, Framing::Mark(MARK)), 4096).await.unwrap_err());
        assert_eq!(kind, io::ErrorKind::ConnectionReset);
        assert!(
            message.starts_with("Unreachable: connection to redis at h:6379 failed after 10 bytes: "),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_silent_source_times_out() {
        let (client, _server) = tokio::io::duplex(64);
        let body =
            RdbStream::new(client, Framing::Length(100), 11, "h:6379".into(), Duration::from_millis(50));
        let (kind, message) = failure(read_all(body, 4096).await.unwrap_err());
        assert_eq!(kind, io::ErrorKind::TimedOut);
        assert_eq!(message, "Unreachable: redis at h:6379 sent nothing for 0.05 s after 0 bytes");
    }
}

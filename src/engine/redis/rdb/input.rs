//! The byte source under the RDB reader: counts the offset, keeps the running CRC-64 of
//! everything read, and copies the bytes of the value being walked into its DUMP payload.

use std::io::{self, Read};

pub(super) use crate::engine::redis::crc64::CRC64;
use crate::engine::redis::crc64::Digest;

use super::Error;
use super::expand::Expander;
use super::lzf;

/// The most bytes read from the underlying reader at a time, and the most allocated up
/// front for anything whose length the stream claims.
const CHUNK: usize = 64 * 1024;

/// Where the bytes of the value being walked go.
#[derive(Debug)]
pub(super) struct Capture {
    /// The payload so far.
    pub(super) bytes: Vec<u8>,
    limit: usize,
    /// Past the limit, stop capturing (and say so with `abandoned`) instead of failing.
    lenient: bool,
    /// A lenient capture passed its limit: `bytes` is empty and stays so.
    pub(super) abandoned: bool,
}

/// A capture starts with room for this much, which most values fit in.
const CAPTURE_START: usize = 512;

impl Capture {
    pub(super) fn new(limit: usize) -> Capture {
        Capture {
            bytes: Vec::with_capacity(limit.saturating_add(1).min(CAPTURE_START)),
            limit,
            lenient: false,
            abandoned: false,
        }
    }

    /// A capture that, past its limit, gives up instead of failing the read.
    pub(super) fn lenient(limit: usize) -> Capture {
        Capture { lenient: true, ..Capture::new(limit) }
    }

    /// Appends bytes just read; past the limit, fails with [`Error::TooBig`] (the bytes
    /// kept, so that they can be replayed), or for a lenient capture drops everything.
    fn take(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.abandoned {
            return Ok(());
        }
        self.bytes.extend_from_slice(bytes);
        if self.overflowed() {
            if !self.lenient {
                return Err(Error::TooBig { limit: self.limit });
            }
            self.abandoned = true;
            self.bytes = Vec::new();
        }
        Ok(())
    }

    /// Whether the value is longer than the limit: reading stops with
    /// [`Error::TooBig`] at the read that passed it (kept, so it can be replayed).
    pub(super) fn overflowed(&self) -> bool {
        self.bytes.len() > self.limit
    }

    /// Starts the payload with the type byte, which was read before the capture began.
    pub(super) fn push_type(&mut self, value_type: u8) {
        self.bytes.push(value_type);
    }
}

/// `count` as a `usize`, or the largest one when it does not fit.
fn to_usize(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

/// A length, or one of the special string encodings that share its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Length {
    Plain(u64),
    /// `0xC0 | n`: an integer or LZF-compressed string follows.
    Encoded(u8),
}

/// Special string encodings (the low 6 bits of a `0b11xxxxxx` length byte).
pub(super) const ENCODED_INT8: u8 = 0;
pub(super) const ENCODED_INT16: u8 = 1;
pub(super) const ENCODED_INT32: u8 = 2;
pub(super) const ENCODED_LZF: u8 = 3;

pub(super) struct Input<R> {
    reader: R,
    /// Bytes read from `reader`: most reads are a byte or a few, and a reader fed from
    /// async code pays for every call. `buffer[position..end]` is not consumed yet.
    buffer: Box<[u8]>,
    position: usize,
    end: usize,
    /// `buffer[..hashed]` is in the digest: bytes are checksummed a buffer at a time
    /// when consumed, not a few at a time as the reads take them.
    hashed: usize,
    digest: Digest,
    offset: u64,
    /// Set while a value is walked: every byte read also goes into the payload.
    pub(super) capture: Option<Capture>,
    /// Bytes already read (counted and checksummed) to be read again before the stream.
    replay: Vec<u8>,
    replayed: usize,
    /// Set to rewrite the stream as it is read: every byte read from the stream (not
    /// replayed) goes to it too, a buffer at a time as for the checksum, and up to the
    /// byte read last whenever it asks ([`Input::expander`]).
    expand: Option<Expander>,
    /// `buffer[..expanded]` went to `expand`.
    expanded: usize,
}

impl<R: Read> Input<R> {
    pub(super) fn new(reader: R) -> Input<R> {
        Input {
            reader,
            buffer: vec![0; CHUNK].into_boxed_slice(),
            position: 0,
            end: 0,
            hashed: 0,
            digest: CRC64.digest(),
            offset: 0,
            capture: None,
            replay: Vec::new(),
            replayed: 0,
            expand: None,
            expanded: 0,
        }
    }

    /// Bytes read so far.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// The CRC-64 of every byte read so far.
    pub(super) fn checksum(&self) -> u64 {
        let mut digest = self.digest.clone();
        digest.update(&self.buffer[self.hashed..self.position]);
        digest.finalize()
    }

    pub(super) fn corrupt(&self, problem: impl std::fmt::Display) -> Error {
        Error::Corrupt(format!("{problem} at offset {}", self.offset))
    }

    /// Rewrites the rest of the stream as it is read into `expand` (see its module),
    /// which was given what was read before.
    pub(super) fn expanding(&mut self, expand: Expander) {
        self.expand = Some(expand);
        self.expanded = self.position;
    }

    /// The expander, if any, once it has every byte read so far.
    pub(super) fn expander(&mut self) -> Result<Option<&mut Expander>, Error> {
        let Some(expand) = &mut self.expand else { return Ok(None) };
        if let Err(problem) = expand.take(&self.buffer[self.expanded..self.position]) {
            return Err(Error::Corrupt(format!("{problem} at offset {}", self.offset)));
        }
        self.expanded = self.position;
        Ok(Some(expand))
    }

    /// Makes the next reads give `bytes` again before going on with the stream.
    pub(super) fn replay(&mut self, bytes: Vec<u8>) {
        self.replay = bytes;
        self.replayed = 0;
    }

    /// Fills `buffer` exactly; the end of the stream here is truncation.
    pub(super) fn fill(&mut self, buffer: &mut [u8]) -> Result<(), Error> {
        let replayed = (self.replay.len() - self.replayed).min(buffer.len());
        if replayed > 0 {
            buffer[..replayed].copy_from_slice(&self.replay[self.replayed..self.replayed + replayed]);
            self.replayed += replayed;
            if self.replayed == self.replay.len() {
                self.replay = Vec::new();
                self.replayed = 0;
            }
        }
        let buffer = &mut buffer[replayed..];
        let mut filled = 0;
        while filled < buffer.len() {
            if self.position == self.end && !self.refill()? {
                return Err(Error::Truncated { offset: self.offset + filled as u64 });
            }
            let piece = (self.end - self.position).min(buffer.len() - filled);
            buffer[filled..filled + piece]
                .copy_from_slice(&self.buffer[self.position..self.position + piece]);
            self.position += piece;
            filled += piece;
        }
        self.offset += buffer.len() as u64;
        if let Some(capture) = &mut self.capture {
            capture.take(buffer)?;
        }
        Ok(())
    }

    /// Checksums the consumed buffer and reads the next bytes into it (at least one, up
    /// to a buffer's worth); `false` at the end of the stream.
    fn refill(&mut self) -> Result<bool, Error> {
        self.digest.update(&self.buffer[self.hashed..self.position]);
        self.expander()?;
        self.expanded = 0;
        self.position = 0;
        self.end = 0;
        self.hashed = 0;
        loop {
            match self.reader.read(&mut self.buffer) {
                Ok(0) => return Ok(false),
                Ok(read) => {
                    self.end = read;
                    return Ok(true);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(Error::Io(error)),
            }
        }
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut buffer = [0; N];
        self.fill(&mut buffer)?;
        Ok(buffer)
    }

    pub(super) fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    /// Reads and drops `count` bytes (they still reach the checksum and the capture),
    /// a chunk at a time: a claimed length only costs memory as its bytes arrive.
    pub(super) fn skip(&mut self, count: u64) -> Result<(), Error> {
        let mut left = count;
        // Bytes to replay go through `fill`, a small piece at a time.
        while left > 0 && self.replayed < self.replay.len() {
            let mut piece = [0; 512];
            let size = (self.replay.len() - self.replayed).min(piece.len()).min(to_usize(left));
            self.fill(&mut piece[..size])?;
            left -= size as u64;
        }
        // The rest straight from the buffer: nothing allocated, nothing copied but into
        // the capture.
        while left > 0 {
            if self.position == self.end && !self.refill()? {
                return Err(Error::Truncated { offset: self.offset });
            }
            let size = (self.end - self.position).min(to_usize(left));
            let piece = &self.buffer[self.position..self.position + size];
            self.position += size;
            self.offset += size as u64;
            left -= size as u64;
            if let Some(capture) = &mut self.capture {
                capture.take(piece)?;
            }
        }
        Ok(())
    }

    /// Reads `count` bytes into a new vector that grows as they arrive; more than
    /// `limit` is refused before anything is read.
    pub(super) fn bytes(&mut self, count: u64, limit: usize, what: &str) -> Result<Vec<u8>, Error> {
        let count = match usize::try_from(count) {
            Ok(count) if count <= limit => count,
            _ => return Err(self.corrupt(format!("{what} of {count} bytes is over the limit of {limit}"))),
        };
        let mut bytes = Vec::with_capacity(count.min(CHUNK));
        while bytes.len() < count {
            let start = bytes.len();
            bytes.resize(start + (count - start).min(CHUNK), 0);
            self.fill(&mut bytes[start..])?;
        }
        Ok(bytes)
    }

    /// Reads a length: 6, 14, 32 or 64 bits, or the mark of a specially encoded string.
    pub(super) fn length_or_encoding(&mut self) -> Result<Length, Error> {
        let fresh = self.replay.is_empty();
        let first = self.byte()?;
        let length = match first >> 6 {
            0b00 => u64::from(first & 0x3f),
            0b01 => u64::from(first & 0x3f) << 8 | u64::from(self.byte()?),
            0b11 => {
                if fresh
                    && first & 0x3f == ENCODED_LZF
                    && let Some(expand) = self.expander()?
                    && let Err(problem) = expand.lzf_mark()
                {
                    return Err(self.corrupt(problem));
                }
                return Ok(Length::Encoded(first & 0x3f));
            }
            _ => match first {
                0x80 => u64::from(u32::from_be_bytes(self.array()?)),
                0x81 => u64::from_be_bytes(self.array()?),
                _ => return Err(self.corrupt(format!("unknown length encoding {first:#04x}"))),
            },
        };
        Ok(Length::Plain(length))
    }

    /// Reads a length where a specially encoded string cannot appear.
    pub(super) fn length(&mut self) -> Result<u64, Error> {
        match self.length_or_encoding()? {
            Length::Plain(length) => Ok(length),
            Length::Encoded(kind) => {
                Err(self.corrupt(format!("string encoding {kind} where a length belongs")))
            }
        }
    }

    /// Walks past a string in any of its encodings.
    pub(super) fn skip_string(&mut self) -> Result<(), Error> {
        match self.length_or_encoding()? {
            Length::Plain(length) => self.skip(length),
            Length::Encoded(kind) => self.skip_encoded(kind),
        }
    }

    /// Walks past the rest of a specially encoded string, its mark already read.
    pub(super) fn skip_encoded(&mut self, kind: u8) -> Result<(), Error> {
        match kind {
            ENCODED_INT8 => self.skip(1),
            ENCODED_INT16 => self.skip(2),
            ENCODED_INT32 => self.skip(4),
            ENCODED_LZF => {
                let compressed = self.length()?;
                let _uncompressed = self.length()?;
                self.skip(compressed)
            }
            kind => Err(self.corrupt(format!("unknown string encoding {kind}"))),
        }
    }

    /// The decimal text of an integer stored as a string, its mark (`kind`, one of the
    /// `ENCODED_INT*`) already read.
    pub(super) fn encoded_integer(&mut self, kind: u8) -> Result<Vec<u8>, Error> {
        let value = match kind {
            ENCODED_INT8 => i64::from(i8::from_le_bytes(self.array()?)),
            ENCODED_INT16 => i64::from(i16::from_le_bytes(self.array()?)),
            ENCODED_INT32 => i64::from(i32::from_le_bytes(self.array()?)),
            kind => return Err(self.corrupt(format!("string encoding {kind} is not an integer"))),
        };
        Ok(value.to_string().into_bytes())
    }

    /// Reads a string (a key name, an aux field) and decodes it: integers become their
    /// decimal text, LZF is decompressed. Longer than `limit` is an error.
    pub(super) fn string(&mut self, limit: usize, what: &str) -> Result<Vec<u8>, Error> {
        match self.length_or_encoding()? {
            Length::Plain(length) => self.bytes(length, limit, what),
            Length::Encoded(kind @ (ENCODED_INT8 | ENCODED_INT16 | ENCODED_INT32)) => {
                self.encoded_integer(kind)
            }
            Length::Encoded(ENCODED_LZF) => {
                let compressed = self.length()?;
                let uncompressed = self.length()?;
                if uncompressed > limit as u64 {
                    return Err(
                        self.corrupt(format!("{what} of {uncompressed} bytes is over the limit of {limit}"))
                    );
                }
                let input = self.bytes(compressed, limit, what)?;
                lzf::decompress(&input, uncompressed as usize).map_err(|problem| self.corrupt(problem))
            }
            Length::Encoded(kind) => Err(self.corrupt(format!("unknown string encoding {kind}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(bytes: &[u8]) -> Input<&[u8]> {
        Input::new(bytes)
    }

    fn check_length(bytes: &[u8], expected: Length) {
        let mut input = input(bytes);
        assert_eq!(input.length_or_encoding().unwrap(), expected, "{bytes:02x?}");
        assert_eq!(input.offset(), bytes.len() as u64, "{bytes:02x?} not read to the end");
    }

    fn check_string(bytes: &[u8], expected: &[u8]) {
        assert_eq!(input(bytes).string(1024, "string").unwrap(), expected, "{bytes:02x?}");
        let mut skipped = input(bytes);
        skipped.skip_string().unwrap();
        assert_eq!(skipped.offset(), bytes.len() as u64, "{bytes:02x?} not skipped to the end");
    }

    #[test]
    fn reads_every_length_form() {
        check_length(&[0x00], Length::Plain(0));
        check_length(&[0x3f], Length::Plain(63));
        check_length(&[0x41, 0x02], Length::Plain(0x102));
        check_length(&[0x80, 0, 1, 0, 0], Length::Plain(65536));
        check_length(&[0x81, 0, 0, 1, 0, 0, 0, 0, 0], Length::Plain(1 << 40));
        check_length(&[0xc3], Length::Encoded(3));
    }

    #[test]
    fn decodes_every_string_encoding() {
        check_string(&[0x00], b"");
        check_string(b"\x05a\r\n\x00b", b"a\r\n\x00b");
        check_string(&[0xc0, 0xfe], b"-2");
        check_string(&[0xc1, 0x39, 0x30], b"12345");
        check_string(&[0xc2, 0x00, 0x00, 0x00, 0x80], b"-2147483648");
        // "aaaaaaaaaa": a literal 'a' then a back reference of length 9 at distance 1.
        check_string(&[0xc3, 0x05, 0x0a, 0x00, b'a', 0xe0, 0x00, 0x00], b"aaaaaaaaaa");
    }

    #[test]
    fn refuses_unknown_encodings() {
        assert!(matches!(input(&[0x82]).length_or_encoding(), Err(Error::Corrupt(_))));
        assert!(matches!(input(&[0xc4]).skip_string(), Err(Error::Corrupt(_))));
        assert!(matches!(input(&[0xc0]).length(), Err(Error::Corrupt(_))));
    }

    #[test]
    fn a_claimed_length_beyond_the_stream_is_truncation() {
        let huge = [0x81, 0, 0, 1, 0, 0, 0, 0, 0, b'x'];
        assert!(matches!(input(&huge).skip_string(), Err(Error::Truncated { offset: 10 })));
        assert!(matches!(input(&huge).string(usize::MAX, "key"), Err(Error::Truncated { offset: 10 })));
        assert!(matches!(input(&huge).string(1024, "key"), Err(Error::Corrupt(_))));
    }

    /// Counts the calls made to it.
    struct Counting<'a> {
        bytes: &'a [u8],
        calls: usize,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            self.bytes.read(buffer)
        }
    }

    #[test]
    fn small_reads_are_buffered() {
        let bytes = vec![0x01; 10_000];
        let mut input = Input::new(Counting { bytes: &bytes, calls: 0 });
        for _ in 0..10_000 {
            assert_eq!(input.length().unwrap(), 1);
        }
        assert!(input.reader.calls <= 2, "{} reads", input.reader.calls);
    }

    #[test]
    fn the_capture_stops_at_its_limit_and_can_be_replayed() {
        let mut input = input(b"\x03abc\x03def\x01g");
        input.capture = Some(Capture::new(5));
        input.skip_string().unwrap();
        assert!(matches!(input.skip_string(), Err(Error::TooBig { limit: 5 })));
        let capture = input.capture.take().unwrap();
        assert!(capture.overflowed());
        assert_eq!(capture.bytes, b"\x03abc\x03def", "the read that passed the limit is kept");
        input.replay(capture.bytes);
        let checksum = input.checksum();
        assert_eq!(input.string(10, "string").unwrap(), b"abc");
        assert_eq!(input.string(10, "string").unwrap(), b"def");
        assert_eq!(input.offset(), 8, "replayed bytes are counted once");
        assert_eq!(input.checksum(), checksum, "replayed bytes are checksummed once");
        assert_eq!(input.string(10, "string").unwrap(), b"g");
        assert_eq!(input.checksum(), CRC64.checksum(b"\x03abc\x03def\x01g"));
    }
}

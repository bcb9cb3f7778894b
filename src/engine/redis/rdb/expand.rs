//! Rewriting an RDB stream as it is walked, with its LZF-compressed strings stored plain
//! and a checksum of its own: the same data, which a server loads with less work (it
//! decompresses nothing), for a load by replication.
//!
//! The [`Expander`] sits in the reader's input and sees every byte the reader consumes,
//! in order; the reader tells it when the byte just consumed was the mark of an LZF
//! string, and the expander parses the two lengths and the compressed bytes that follow
//! by itself, so that it works whatever the reader does with them (walks past or
//! decodes). A string larger than [`EXPAND_LIMIT`] either way passes as it is, so that
//! memory stays bounded.
//!
//! What is rewritten goes out of the expander only at points the reader allows: after an
//! item, when the reader asks for the next one (the caller accepted the item), or in the
//! middle of an item that may go before its end: any but module data (which a target
//! may not be able to load) and a database selection (which it may not have), the items
//! a walk may stop at. The trailing checksum is replaced by the rewritten stream's
//! own, and goes only when the caller says the data is whole ([`Expander::release_end`]).

use crate::engine::redis::crc64::{CRC64, Digest};

use super::input::ENCODED_LZF;
use super::lzf;

/// An LZF string whose compressed or uncompressed length is larger passes as it is.
pub(super) const EXPAND_LIMIT: u64 = 1 << 20;
/// Rewritten bytes go out about this many at a time: a value's that may go before its
/// end once this many wait, and accepted items' once as many wait.
const DRAIN: usize = 256 << 10;
/// Room for a chunk: it takes bytes a read buffer at a time (64 KiB) until it holds
/// [`DRAIN`], and is allocated once at that size.
const CHUNK_ROOM: usize = DRAIN + (128 << 10);
/// Bytes of an item held to its end (module data) kept at most; past that they are
/// dropped, and the stream can no longer go on (the caller stops at such an item).
const HOLD_LIMIT: usize = 8 << 20;

/// Where rewritten bytes go, with the offset in the original stream they reach; `false`
/// once nobody takes them.
pub type Sink = Box<dyn FnMut(Vec<u8>, u64) -> bool + Send>;

/// See the module's documentation.
pub(super) struct Expander {
    sink: Sink,
    /// Rewritten bytes not yet out.
    pending: Vec<u8>,
    /// The checksum of the bytes already out.
    digest: Digest,
    state: State,
    /// Inside an item whose bytes may go before its end.
    open: bool,
    /// Bytes of a held item were dropped: nothing may go out any more.
    lost: bool,
    /// Bytes of the original stream consumed.
    consumed: u64,
    /// LZF strings stored plain so far.
    expanded: u64,
    /// The checksum was replaced: the end waits for [`Expander::release_end`].
    sealed: bool,
    /// Nobody takes the bytes any more: nothing is rewritten.
    gone: bool,
}

/// Where the expander is in the bytes after an LZF mark.
enum State {
    /// Bytes pass as they are.
    Pass,
    /// After an LZF mark: `raw` holds the mark and what followed it so far.
    Lzf { raw: Vec<u8> },
    /// An LZF string too large to expand: `left` bytes of its data pass as they are.
    Through { left: u64 },
}

impl Expander {
    /// An expander whose output starts with the stream's 9-byte `header`.
    pub(super) fn new(header: &[u8], sink: Sink) -> Expander {
        Expander {
            sink,
            pending: {
                let mut pending = Vec::with_capacity(CHUNK_ROOM);
                pending.extend_from_slice(header);
                pending
            },
            digest: CRC64.digest(),
            state: State::Pass,
            open: false,
            lost: false,
            consumed: header.len() as u64,
            expanded: 0,
            sealed: false,
            gone: false,
        }
    }

    /// LZF strings stored plain so far.
    pub(super) fn expanded(&self) -> u64 {
        self.expanded
    }

    /// Takes bytes the reader just consumed.
    pub(super) fn take(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        if self.gone {
            return Ok(());
        }
        // Before the new bytes, so that the last byte taken (an LZF mark, maybe) stays.
        if self.open && self.pending.len() >= DRAIN {
            self.send()?;
        }
        self.consumed += bytes.len() as u64;
        while !bytes.is_empty() {
            match &mut self.state {
                State::Pass => {
                    self.pending.extend_from_slice(bytes);
                    bytes = &[];
                }
                State::Through { left } => {
                    let count = bytes.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    self.pending.extend_from_slice(&bytes[..count]);
                    *left -= count as u64;
                    if *left == 0 {
                        self.state = State::Pass;
                    }
                    bytes = &bytes[count..];
                }
                State::Lzf { raw } => {
                    let taken = lzf_bytes_wanted(raw)?.min(bytes.len());
                    raw.extend_from_slice(&bytes[..taken]);
                    bytes = &bytes[taken..];
                    self.advance_lzf()?;
                }
            }
        }
        if !self.open && self.pending.len() > HOLD_LIMIT {
            self.pending = Vec::new();
            self.lost = true;
        }
        Ok(())
    }

    /// The byte just taken was the mark of an LZF string.
    pub(super) fn lzf_mark(&mut self) -> Result<(), String> {
        if self.gone {
            return Ok(());
        }
        let mark = 0xC0 | ENCODED_LZF;
        if !matches!(self.state, State::Pass) || self.pending.last() != Some(&mark) {
            return Err("an lzf mark the rewrite did not see".to_owned());
        }
        self.pending.pop();
        self.state = State::Lzf { raw: vec![mark] };
        Ok(())
    }

    /// Once both lengths and the data are in `raw`: the string stored plain (or as it is,
    /// when too large).
    fn advance_lzf(&mut self) -> Result<(), String> {
        let State::Lzf { raw } = &mut self.state else { return Ok(()) };
        let Some((compressed, at)) = length(&raw[1..])? else { return Ok(()) };
        let Some((uncompressed, data)) = length(&raw[1 + at..])? else { return Ok(()) };
        let data = 1 + at + data;
        if compressed > EXPAND_LIMIT || uncompressed > EXPAND_LIMIT {
            let left = compressed - (raw.len() - data) as u64;
            self.pending.append(raw);
            self.state = if left == 0 { State::Pass } else { State::Through { left } };
            return Ok(());
        }
        if ((raw.len() - data) as u64) < compressed {
            return Ok(());
        }
        let plain = lzf::decompress(&raw[data..], uncompressed as usize)?;
        push_length(&mut self.pending, plain.len() as u64);
        self.pending.extend_from_slice(&plain);
        self.expanded += 1;
        self.state = State::Pass;
        Ok(())
    }

    /// An item starts; `may_go` when its bytes may go out before its end.
    pub(super) fn open_item(&mut self, may_go: bool) {
        self.open = may_go;
    }

    /// The caller accepted the item read last: its bytes may go out (they do once
    /// [`DRAIN`] bytes wait, so that small items go together).
    pub(super) fn item_done(&mut self) -> Result<(), String> {
        self.open = false;
        if self.pending.len() >= DRAIN { self.send() } else { Ok(()) }
    }

    /// The reader read the stream's checksum, the last 8 bytes taken: they are replaced
    /// by the checksum of the rewritten stream, which waits for [`Expander::release_end`].
    pub(super) fn seal(&mut self) -> Result<(), String> {
        if self.gone {
            return Ok(());
        }
        if !matches!(self.state, State::Pass) || self.pending.len() < 8 {
            return Err("the rewritten stream ended inside a string".to_owned());
        }
        self.pending.truncate(self.pending.len() - 8);
        let mut digest = self.digest.clone();
        digest.update(&self.pending);
        let checksum = digest.finalize();
        self.pending.extend_from_slice(&checksum.to_le_bytes());
        self.sealed = true;
        Ok(())
    }

    /// Sends the end of a sealed stream: the caller knows the data whole and good.
    pub(super) fn release_end(&mut self) -> Result<(), String> {
        if !self.sealed && !self.gone {
            return Err("the rewritten stream has no end yet".to_owned());
        }
        self.send()
    }

    fn send(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.lost {
            return Err("the rewrite dropped bytes of an item held to its end".to_owned());
        }
        let bytes = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK_ROOM));
        self.digest.update(&bytes);
        // Nobody taking the bytes is the taker's to report; the rest is not rewritten.
        if !(self.sink)(bytes, self.consumed) {
            self.gone = true;
        }
        Ok(())
    }
}

/// How many more bytes an LZF string whose bytes so far are `raw` (its mark first) needs
/// before it can be handled: a length's first byte says its size; the data's length is
/// known once both lengths are.
fn lzf_bytes_wanted(raw: &[u8]) -> Result<usize, String> {
    let Some((compressed, at)) = length(&raw[1..])? else {
        return Ok(raw.get(1).map_or(1, |first| length_size(*first) - (raw.len() - 1)));
    };
    let rest = &raw[1 + at..];
    let Some((uncompressed, data)) = length(rest)? else {
        return Ok(rest.first().map_or(1, |first| length_size(*first) - rest.len()));
    };
    if compressed > EXPAND_LIMIT || uncompressed > EXPAND_LIMIT {
        return Ok(0);
    }
    Ok(usize::try_from(compressed).unwrap_or(usize::MAX) - (rest.len() - data))
}

/// The size of a length whose first byte is `first` (1 for what is not a length: the
/// parse then says so).
fn length_size(first: u8) -> usize {
    match (first >> 6, first) {
        (0b00, _) => 1,
        (0b01, _) => 2,
        (_, 0x80) => 5,
        (_, 0x81) => 9,
        _ => 1,
    }
}

/// A length at the start of `bytes` and its size, `None` while incomplete.
fn length(bytes: &[u8]) -> Result<Option<(u64, usize)>, String> {
    let Some(&first) = bytes.first() else { return Ok(None) };
    let size = length_size(first);
    if bytes.len() < size {
        return Ok(None);
    }
    let value = match (first >> 6, first) {
        (0b00, _) => u64::from(first & 0x3f),
        (0b01, _) => u64::from(first & 0x3f) << 8 | u64::from(bytes[1]),
        (_, 0x80) => u64::from(u32::from_be_bytes(bytes[1..5].try_into().unwrap_or_default())),
        (_, 0x81) => u64::from_be_bytes(bytes[1..9].try_into().unwrap_or_default()),
        _ => return Err(format!("an lzf string with a length encoded {first:#04x}")),
    };
    Ok(Some((value, size)))
}

/// Appends `length` in the RDB's shortest length encoding.
fn push_length(out: &mut Vec<u8>, length: u64) {
    match length {
        0..0x40 => out.push(length as u8),
        0x40..0x4000 => out.extend_from_slice(&[0x40 | (length >> 8) as u8, length as u8]),
        0x4000..=0xFFFF_FFFF => {
            out.push(0x80);
            out.extend_from_slice(&(length as u32).to_be_bytes());
        }
        _ => {
            out.push(0x81);
            out.extend_from_slice(&length.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_every_length_form() {
        for value in [0, 1, 0x3f, 0x40, 0x3fff, 0x4000, 0xFFFF_FFFF, 0x1_0000_0000] {
            let mut bytes = Vec::new();
            push_length(&mut bytes, value);
            assert_eq!(length(&bytes).unwrap(), Some((value, bytes.len())), "{value:#x}");
            assert_eq!(length_size(bytes[0]), bytes.len());
            assert_eq!(length(&bytes[..bytes.len() - 1]).unwrap(), None, "{value:#x} cut short");
        }
        assert!(length(&[0xC3]).is_err());
    }
}

//! A reader of RDB files that walks them key by key without building values: for each
//! key it yields what `RESTORE key ttl payload REPLACE ABSTTL` takes, the value's DUMP
//! payload, made of the value's bytes exactly as the file holds them.
//!
//! A DUMP payload is the value's type byte and encoding, then the RDB version (2 bytes,
//! little-endian) and the CRC-64 of all that (8 bytes, little-endian). Function libraries
//! come out the way `FUNCTION DUMP` gives them, for `FUNCTION RESTORE`, with their code
//! for `FUNCTION LOAD`.
//!
//! A value longer than [`RdbReader::max_payload`] is not kept whole: it comes out
//! decoded, as batches of elements or pieces ([`Item::BigKey`], [`Item::Elements`]...,
//! [`Item::BigKeyEnd`]) that commands can rebuild. Every type and encoding the reader
//! knows decodes (see `elements.rs`), so [`RdbReader::decode_all`] can make every key come
//! out that way, for a target that cannot read the file's payloads.
//!
//! The reader is synchronous (it runs on a blocking thread) and treats its input as
//! hostile: lengths in the stream never size an allocation beyond a small chunk, memory
//! grows only as bytes arrive, and truncation or garbage end in an [`Error`], never a
//! panic. After an error the reader only repeats that it failed.

mod elements;
mod expand;
mod input;
mod lzf;
mod packed;
mod plain;
mod stream;
mod value;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(super) mod tests;
/// The id of a module type named "MyModType", for data no server here loads.
#[cfg(test)]
pub(super) use self::value::tests_support::MODULE_ID;

use std::collections::BTreeSet;
use std::io::Read;

use self::elements::Decoder;
pub use self::elements::{Command, Dialect, Elements, ExpiringField};
pub use self::expand::Sink as ExpandedSink;
use self::input::{CRC64, Capture, Input};
pub use self::stream::{PendingEntry, StreamEntry, StreamGroup, StreamId, StreamState};
use self::value::Format;
pub use self::value::value_type;

/// Why a stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("corrupt rdb: {0}")]
    Corrupt(String),
    /// The stream ended inside an item (for a transfer, it broke off).
    #[error("rdb ends early, at offset {offset}")]
    Truncated { offset: u64 },
    #[error("unsupported rdb version {version} (magic {magic})")]
    UnsupportedVersion { magic: String, version: u16 },
    #[error("rdb holds a value of module {module}, which cannot be restored without it")]
    ModuleNotSupported { module: String },
    /// A module's value too big for one payload: it cannot be sent in parts.
    #[error("the value of key '{key}' (module {module}) is over the {limit}-byte limit of one payload")]
    ModuleValueTooBig { module: String, key: String, limit: usize },
    /// A function library longer than the longest string Redis allows. (Keys over
    /// [`RdbReader::max_payload`] are items, not errors.)
    #[error("a value is longer than the payload limit of {limit} bytes")]
    TooBig { limit: usize },
    #[error("rdb checksum mismatch: the file says {expected:#018x}, its bytes give {actual:#018x}")]
    Checksum { expected: u64, actual: u64 },
    /// `next` was called again after an error.
    #[error("the rdb reader failed earlier")]
    Failed,
    #[error("cannot read the rdb: {0}")]
    Io(#[from] std::io::Error),
}

/// The default of [`RdbReader::max_payload`].
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// The longest key name or aux field accepted: Redis's own limit on strings.
const MAX_NAME: usize = 512 * 1024 * 1024;

/// Opcodes (`RDB_OPCODE_*` in Redis's `rdb.h`).
mod opcode {
    pub(super) const SLOT_INFO: u8 = 0xF4;
    pub(super) const FUNCTION2: u8 = 0xF5;
    pub(super) const FUNCTION_PRE_GA: u8 = 0xF6;
    pub(super) const MODULE_AUX: u8 = 0xF7;
    pub(super) const IDLE: u8 = 0xF8;
    pub(super) const FREQ: u8 = 0xF9;
    pub(super) const AUX: u8 = 0xFA;
    pub(super) const RESIZEDB: u8 = 0xFB;
    pub(super) const EXPIRETIME_MS: u8 = 0xFC;
    pub(super) const EXPIRETIME: u8 = 0xFD;
    pub(super) const SELECTDB: u8 = 0xFE;
    pub(super) const EOF: u8 = 0xFF;
}

/// In a walk ([`RdbReader::walk_only`]), module values up to this size still come out
/// as payloads.
pub const MODULE_WALK_PAYLOAD: usize = 4 << 20;

/// A DUMP-format payload: what `DUMP` returns and `RESTORE` (or, for functions,
/// `FUNCTION RESTORE`) takes.
#[derive(Clone, PartialEq, Eq)]
pub struct DumpPayload(Vec<u8>);

impl DumpPayload {
    /// Ends `body` (a value's type byte and encoding) with the version and checksum.
    fn seal(mut body: Vec<u8>, version: u16) -> DumpPayload {
        body.extend_from_slice(&version.to_le_bytes());
        let checksum = CRC64.checksum(&body);
        body.extend_from_slice(&checksum.to_le_bytes());
        DumpPayload(body)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl std::fmt::Debug for DumpPayload {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "DumpPayload({} bytes)", self.0.len())
    }
}

/// What the file says about a key besides its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHeader {
    /// The logical database (from the last `SELECTDB`, 0 before any).
    pub db: u64,
    pub key: Vec<u8>,
    /// Absolute expiration in Unix milliseconds (for `RESTORE ... ABSTTL`).
    pub expire_at_ms: Option<i64>,
    /// LRU idle time in seconds, when the server saved it (`RESTORE ... IDLETIME`).
    pub idle_seconds: Option<u64>,
    /// LFU frequency, when the server saved it (`RESTORE ... FREQ`).
    pub frequency: Option<u8>,
    /// The RDB value type: see [`value_type`].
    pub value_type: u8,
    /// For a module's value ([`value_type::MODULE_2`]): the module type's name, set once
    /// the value has been read.
    pub module: Option<String>,
}

/// One step through the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Information about the server and the save, such as `redis-ver`.
    Aux {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// The keys that follow belong to this database.
    SelectDb(u64),
    /// A hint: how many keys (and keys with an expiration) the database has.
    ResizeDb {
        keys: u64,
        expires: u64,
    },
    /// A hint of cluster nodes: how many keys a slot has.
    SlotInfo {
        slot: u64,
        keys: u64,
        expires: u64,
    },
    /// A key and its value as a DUMP payload.
    Key {
        header: KeyHeader,
        payload: DumpPayload,
    },
    /// A string key without an expiry and its value, decoded
    /// ([`RdbReader::with_plain_strings`]).
    PlainString {
        header: KeyHeader,
        value: Vec<u8>,
    },
    /// A key whose value is longer than [`RdbReader::max_payload`] (or any key, with
    /// [`RdbReader::decode_all`]): batches of [`Item::Elements`] follow, then
    /// [`Item::BigKeyEnd`].
    BigKey {
        header: KeyHeader,
    },
    Elements(Elements),
    BigKeyEnd,
    /// A key walked past without keeping its value ([`RdbReader::walk_only`]); its
    /// value's encoding took `value_len` bytes.
    Walked {
        header: KeyHeader,
        value_len: u64,
    },
    /// A function library: its code, and the payload `FUNCTION RESTORE` takes.
    Function {
        code: Vec<u8>,
        payload: DumpPayload,
    },
    /// Module data not tied to a key, walked past.
    ModuleAux {
        module: String,
    },
    /// The end of the file, its checksum verified (unless the file says it has none).
    End,
}

#[derive(Debug)]
enum State {
    Reading,
    /// In the middle of a big key's elements.
    Decoding(Decoder),
    Ended,
    Failed,
}

/// Walks an RDB stream item by item.
pub struct RdbReader<R> {
    input: Input<R>,
    /// The stream's first 9 bytes: its magic and version.
    header: [u8; 9],
    format: Format,
    db: u64,
    max_payload: usize,
    /// Keys not decoded are walked past, not captured.
    walk_only: bool,
    /// In a walk, compact blobs are read and checked as Redis's loader checks them.
    checking_blobs: bool,
    /// Keys (by their place in the file, from 0) decoded whatever their size.
    decoded: BTreeSet<u64>,
    /// Plain strings without an expiry up to this long come out as
    /// [`Item::PlainString`]; 0 for none.
    plain_strings: usize,
    /// Keys met so far.
    keys_seen: u64,
    state: State,
}

impl<R: Read> RdbReader<R> {
    /// Reads the header: `REDIS` and a 4-digit version 9 to 12, or `VALKEY` and a 3-digit
    /// version 80 (Valkey 9; earlier Valkey writes `REDIS` and its version 11).
    pub fn new(reader: R) -> Result<RdbReader<R>, Error> {
        let mut input = Input::new(reader);
        let header: [u8; 9] = input.array()?;
        let (magic, digits) = match &header {
            [b'R', b'E', b'D', b'I', b'S', digits @ ..] => ("REDIS", &digits[..]),
            [b'V', b'A', b'L', b'K', b'E', b'Y', digits @ ..] => ("VALKEY", &digits[..]),
            _ => return Err(Error::Corrupt(format!("not an rdb file: it starts {:02x?}", &header[..]))),
        };
        let version = std::str::from_utf8(digits)
            .ok()
            .filter(|digits| digits.bytes().all(|digit| digit.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u16>().ok())
            .ok_or_else(|| Error::Corrupt(format!("the rdb version is not a number: {digits:02x?}")))?;
        let valkey = magic == "VALKEY";
        let supported = if valkey { version == 80 } else { (9..=12).contains(&version) };
        if !supported {
            return Err(Error::UnsupportedVersion { magic: magic.to_owned(), version });
        }
        Ok(RdbReader {
            input,
            header,
            format: Format { version, valkey },
            db: 0,
            max_payload: DEFAULT_MAX_PAYLOAD,
            walk_only: false,
            checking_blobs: false,
            decoded: BTreeSet::new(),
            plain_strings: 0,
            keys_seen: 0,
            state: State::Reading,
        })
    }

    /// Makes every key not decoded come out as [`Item::Walked`]: its value is checked
    /// and walked past without being kept, so that a survey of the file holds nothing.
    pub fn walk_only(mut self) -> RdbReader<R> {
        self.walk_only = true;
        self
    }

    /// Makes a walk ([`RdbReader::walk_only`]) read every compact blob (a small hash,
    /// set, sorted set or list node; at most the payload limit, a bigger one being
    /// decoded as a big key) and check it as Redis's loader does before it takes it,
    /// duplicates included: a replica that finds a blob broken stops its whole server.
    pub fn checking_blobs(mut self) -> RdbReader<R> {
        self.checking_blobs = true;
        self
    }

    /// Rewrites the stream as it is read, with its LZF-compressed strings stored plain
    /// and its own checksum (`expand.rs`), into `sink`: each item's bytes once the next
    /// item is asked for, an item's bytes before its end unless it is module data or a
    /// database selection (what a walk may stop at), and the end only through
    /// [`RdbReader::release_expanded_end`]. For a walk ([`RdbReader::walk_only`]), not for
    /// a reader that captures payloads.
    pub fn expanding(mut self, sink: ExpandedSink) -> RdbReader<R> {
        self.input.expanding(expand::Expander::new(&self.header, sink));
        self
    }

    /// LZF strings the rewrite stored plain so far (see [`RdbReader::expanding`]).
    pub fn expanded_strings(&mut self) -> u64 {
        self.input.expander().ok().flatten().map_or(0, |expand| expand.expanded())
    }

    /// Sends the rewritten stream's end (its checksum) once the caller knows the data
    /// whole and good; after [`Item::End`].
    pub fn release_expanded_end(&mut self) -> Result<(), Error> {
        match self.input.expander()? {
            Some(expand) => expand.release_end().map_err(Error::Corrupt),
            None => Ok(()),
        }
    }

    /// Makes the keys at these places in the file (counting keys from 0) come out
    /// decoded whatever their size: keys a first read found too big for one payload,
    /// decoded at once rather than first captured up to the limit.
    pub fn with_decoded_keys(mut self, keys: BTreeSet<u64>) -> RdbReader<R> {
        self.decoded = keys;
        self
    }

    /// Makes string keys without an expiry whose value is at most `limit` bytes come out
    /// as their value ([`Item::PlainString`]), not as a payload: a load can send many in
    /// one `MSET`, which costs the server much less than a `RESTORE` each.
    pub fn with_plain_strings(mut self, limit: usize) -> RdbReader<R> {
        self.plain_strings = limit;
        self
    }

    /// Sets the longest payload kept in memory; a longer value gives [`Item::BigKey`]
    /// and its elements. Up to 64 KiB more may be held while a value is found too long.
    /// 0 is [`RdbReader::decode_all`].
    pub fn with_max_payload(mut self, max_payload: usize) -> RdbReader<R> {
        self.max_payload = max_payload;
        self
    }

    /// Makes every key come out decoded ([`Item::BigKey`], its elements, then
    /// [`Item::BigKeyEnd`]), never as a payload.
    pub fn decode_all(self) -> RdbReader<R> {
        self.with_max_payload(0)
    }

    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The RDB version from the header, which payloads carry.
    pub fn version(&self) -> u16 {
        self.format.version
    }

    /// Whether the header said `VALKEY`.
    pub fn is_valkey(&self) -> bool {
        self.format.valkey
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.input.offset()
    }

    /// The next item; `None` after [`Item::End`]. An error is final: later calls return
    /// [`Error::Failed`].
    #[allow(clippy::should_implement_trait)] // fallible, and the reader is not a plain iterator
    pub fn next(&mut self) -> Result<Option<Item>, Error> {
        let read = match &mut self.state {
            State::Ended => return Ok(None),
            State::Failed => return Err(Error::Failed),
            State::Reading => self.item_accepted().and_then(|()| self.read_item()),
            State::Decoding(decoder) => match decoder.next_batch(&mut self.input) {
                Ok(Some(elements)) => Ok(Item::Elements(elements)),
                Ok(None) => {
                    self.state = State::Reading;
                    Ok(Item::BigKeyEnd)
                }
                Err(error) => Err(error),
            },
        };
        match read {
            Ok(item) => {
                if item == Item::End {
                    self.state = State::Ended;
                }
                Ok(Some(item))
            }
            Err(error) => {
                self.state = State::Failed;
                Err(error)
            }
        }
    }

    /// The caller asks for the next item: the rewrite of the last one may go.
    fn item_accepted(&mut self) -> Result<(), Error> {
        match self.input.expander()? {
            Some(expand) => expand.item_done().map_err(Error::Corrupt),
            None => Ok(()),
        }
    }

    /// The rewrite, if any, may send the item being read before its end (`may_go`), or
    /// holds it until the caller accepted it (what a walk may stop at: module data, a
    /// database selection). Key names, AUX fields and function libraries may be as large
    /// as values.
    fn rewrite_may_go(&mut self, may_go: bool) -> Result<(), Error> {
        if let Some(expand) = self.input.expander()? {
            expand.open_item(may_go);
        }
        Ok(())
    }

    fn read_item(&mut self) -> Result<Item, Error> {
        let mut expire_at_ms = None;
        let mut idle_seconds = None;
        let mut frequency = None;
        // Expiration, idle time and frequency come before the key they describe.
        loop {
            let kind = self.input.byte()?;
            match kind {
                opcode::EXPIRETIME_MS => expire_at_ms = Some(i64::from_le_bytes(self.input.array()?)),
                opcode::EXPIRETIME => {
                    let seconds = i32::from_le_bytes(self.input.array()?);
                    expire_at_ms = Some(i64::from(seconds) * 1000);
                }
                opcode::IDLE => idle_seconds = Some(self.input.length()?),
                opcode::FREQ => frequency = Some(self.input.byte()?),
                opcode::EOF => return self.end(),
                opcode::SELECTDB => {
                    self.db = self.input.length()?;
                    return Ok(Item::SelectDb(self.db));
                }
                opcode::RESIZEDB => {
                    let keys = self.input.length()?;
                    let expires = self.input.length()?;
                    return Ok(Item::ResizeDb { keys, expires });
                }
                opcode::SLOT_INFO => {
                    let slot = self.input.length()?;
                    let keys = self.input.length()?;
                    let expires = self.input.length()?;
                    return Ok(Item::SlotInfo { slot, keys, expires });
                }
                opcode::AUX => {
                    self.rewrite_may_go(true)?;
                    let key = self.input.string(MAX_NAME, "aux field name")?;
                    let value = self.input.string(MAX_NAME, "aux field value")?;
                    return Ok(Item::Aux { key, value });
                }
                opcode::MODULE_AUX => return self.module_aux(),
                opcode::FUNCTION2 => {
                    self.rewrite_may_go(true)?;
                    return self.function();
                }
                opcode::FUNCTION_PRE_GA => {
                    return Err(self
                        .input
                        .corrupt("functions of the redis 7.0 release candidates are not supported"));
                }
                value_type::MODULE_PRE_GA => return Err(self.module_value()),
                value_type if self.format.knows(value_type) => {
                    // A module's value goes only once the caller accepted it whole.
                    self.rewrite_may_go(value_type != value_type::MODULE_2)?;
                    let header = KeyHeader {
                        db: self.db,
                        key: self.input.string(MAX_NAME, "key name")?,
                        expire_at_ms,
                        idle_seconds,
                        frequency,
                        value_type,
                        module: None,
                    };
                    return self.key(header);
                }
                other => {
                    return Err(self.input.corrupt(format!("unknown value type or opcode {other:#04x}")));
                }
            }
        }
    }

    /// Walks the value after `header`, capturing it as a payload.
    fn key(&mut self, header: KeyHeader) -> Result<Item, Error> {
        let place = self.keys_seen;
        self.keys_seen += 1;
        if header.value_type == value_type::MODULE_2 {
            return self.module_key(header);
        }
        if self.max_payload == 0 || self.decoded.contains(&place) {
            self.state = State::Decoding(Decoder::start(&mut self.input, self.format, header.value_type)?);
            return Ok(Item::BigKey { header });
        }
        if self.walk_only {
            let start = self.input.offset();
            let blobs = self.checking_blobs.then_some(self.max_payload);
            value::walk(&mut self.input, self.format, header.value_type, blobs)?;
            return Ok(Item::Walked { header, value_len: self.input.offset() - start });
        }
        let mut capture = Capture::new(self.max_payload);
        capture.push_type(header.value_type);
        self.input.capture = Some(capture);
        let walked = value::walk(&mut self.input, self.format, header.value_type, None);
        let capture = self.input.capture.take().unwrap_or_else(|| Capture::new(0));
        match walked {
            Ok(()) => {
                if let Some(value) = self.plain_string(&header, &capture.bytes) {
                    return Ok(Item::PlainString { header, value });
                }
                Ok(Item::Key { payload: DumpPayload::seal(capture.bytes, self.format.version), header })
            }
            Err(Error::TooBig { .. }) => self.big_key(header, capture.bytes),
            Err(error) => Err(error),
        }
    }

    /// The value of a plain string key, when [`RdbReader::with_plain_strings`] asks for
    /// it; `captured` is its type byte and encoding.
    fn plain_string(&self, header: &KeyHeader, captured: &[u8]) -> Option<Vec<u8>> {
        let wanted = self.plain_strings > 0
            && header.value_type == value_type::STRING
            && header.expire_at_ms.is_none();
        wanted.then(|| plain::decode(captured.get(1..)?, self.plain_strings)).flatten()
    }

    /// Goes back to the start of a value found too big (`read`, its bytes so far, are
    /// read again) and decodes its elements.
    fn big_key(&mut self, header: KeyHeader, mut read: Vec<u8>) -> Result<Item, Error> {
        read.remove(0); // the type byte
        self.input.replay(read);
        self.state = State::Decoding(Decoder::start(&mut self.input, self.format, header.value_type)?);
        Ok(Item::BigKey { header })
    }

    /// A function library: its code as a string, which `FUNCTION DUMP` gives behind the
    /// same opcode.
    fn function(&mut self) -> Result<Item, Error> {
        let mut capture = Capture::new(MAX_NAME);
        capture.push_type(opcode::FUNCTION2);
        self.input.capture = Some(capture);
        let code = self.input.string(MAX_NAME, "function library");
        let capture = self.input.capture.take().unwrap_or_else(|| Capture::new(0));
        let code = code?;
        Ok(Item::Function { code, payload: DumpPayload::seal(capture.bytes, self.format.version) })
    }

    /// A module's value: its module type id, then the module's fields (walkable without
    /// the module). It is never decoded (only the module can make sense of it): it comes
    /// out as a payload, for a target that has the module; a value over the payload limit
    /// is refused. In a walk, it comes out as a payload when it is small (so that a
    /// target can be asked whether it loads it), else walked past.
    fn module_key(&mut self, mut header: KeyHeader) -> Result<Item, Error> {
        let start = self.input.offset();
        let mut capture = if self.walk_only {
            Capture::lenient(MODULE_WALK_PAYLOAD)
        } else if self.max_payload == 0 {
            Capture::new(DEFAULT_MAX_PAYLOAD)
        } else {
            Capture::new(self.max_payload)
        };
        capture.push_type(header.value_type);
        self.input.capture = Some(capture);
        let read = self.input.length().and_then(|id| {
            header.module = Some(value::module_name(id));
            value::module_fields(&mut self.input)
        });
        let capture = self.input.capture.take().unwrap_or_else(|| Capture::new(0));
        match read {
            Ok(()) if capture.abandoned => {
                Ok(Item::Walked { value_len: self.input.offset() - start, header })
            }
            Ok(()) => {
                Ok(Item::Key { payload: DumpPayload::seal(capture.bytes, self.format.version), header })
            }
            Err(Error::TooBig { limit }) => Err(Error::ModuleValueTooBig {
                module: header.module.unwrap_or_default(),
                key: String::from_utf8_lossy(&header.key[..header.key.len().min(64)]).into_owned(),
                limit,
            }),
            Err(error) => Err(error),
        }
    }

    /// A module value of the pre-release encoding cannot be read without the module:
    /// the error names it. The module's id follows the key name.
    fn module_value(&mut self) -> Error {
        if let Err(error) = self.input.string(MAX_NAME, "key name") {
            return error;
        }
        match self.input.length() {
            Ok(id) => Error::ModuleNotSupported { module: value::module_name(id) },
            Err(error) => error,
        }
    }

    /// Module aux data: the module id, the `when` (behind a UINT opcode), then module
    /// opcodes until their EOF.
    fn module_aux(&mut self) -> Result<Item, Error> {
        let module = value::module_name(self.input.length()?);
        if self.input.length()? != value::module_opcode::UINT {
            return Err(self.input.corrupt(format!("module {module} aux data without its 'when'")));
        }
        self.input.length()?;
        value::module_fields(&mut self.input)?;
        Ok(Item::ModuleAux { module })
    }

    /// After the EOF opcode: the CRC-64 of everything before it, or zero when the server
    /// saved without one (`rdbchecksum no`).
    fn end(&mut self) -> Result<Item, Error> {
        let actual = self.input.checksum();
        let expected = u64::from_le_bytes(self.input.array()?);
        if expected != 0 && expected != actual {
            return Err(Error::Checksum { expected, actual });
        }
        if let Some(expand) = self.input.expander()? {
            expand.seal().map_err(Error::Corrupt)?;
        }
        Ok(Item::End)
    }
}

#[cfg(test)]
mod unit_tests;

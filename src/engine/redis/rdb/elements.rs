//! Element decoding: a value comes out in batches a later step sends as commands
//! (`RPUSH`, `SADD`, `ZADD`, `HSET` then `HPEXPIREAT` for fields with a TTL, `APPEND`
//! for the pieces of a string, `XADD` and the stream's group commands), for keys too big
//! for one payload or for targets that cannot read the file's format. Every type and
//! encoding the reader knows decodes: plain values, quicklists, the compact blobs
//! (`packed.rs`), hashes with field expiration, LZF-compressed strings (streamed,
//! keeping only the 8 KiB window references reach) and streams (`stream.rs`).
//!
//! Batches are bounded: 1024 elements or 1 MiB, whichever comes first (a blob or a
//! stream node is decoded whole, as the file holds it in one string).

use std::io::Read;

use super::Error;
use super::input::{ENCODED_INT8, ENCODED_INT16, ENCODED_INT32, ENCODED_LZF, Input, Length};
use super::lzf::{self, Decompressor};
use super::packed::{intset, listpack, ziplist, zipmap};
use super::stream::{PendingEntry, StreamDecoder, StreamEntry, StreamGroup, StreamState};
use super::value::Format;
use super::value::value_type::*;

/// The longest single element accepted: Redis's own limit on strings.
pub(super) const MAX_ELEMENT: usize = 512 * 1024 * 1024;

/// A batch ends when it holds this many elements or bytes, whichever comes first.
pub(super) const BATCH_ELEMENTS: usize = 1024;
pub(super) const BATCH_BYTES: usize = 1024 * 1024;

/// A string is read (or decompressed) this much at a time.
const PIECE: usize = 64 * 1024;

/// A decoder of a compact encoding into its elements (`packed.rs`).
type BlobDecoder = fn(&[u8]) -> Result<Vec<Vec<u8>>, String>;

/// A field and its value.
type Pair = (Vec<u8>, Vec<u8>);

/// A hash field and its value, with the field's expiration (Unix ms) when it has one.
pub type ExpiringField = (Vec<u8>, Vec<u8>, Option<i64>);

/// A batch of a value's parts, in the order the file holds them.
#[derive(Debug, Clone, PartialEq)]
pub enum Elements {
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    SortedSet(Vec<(Vec<u8>, f64)>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// Fields of a hash whose fields may expire (Redis 7.4, Valkey 9).
    HashWithExpiry(Vec<ExpiringField>),
    /// The next piece of a string.
    String(Vec<u8>),
    /// Entries of a stream, deleted ones left out.
    StreamEntries(Vec<StreamEntry>),
    /// A stream's counters, once, after its entries.
    StreamState(StreamState),
    /// A consumer group, after the stream's state.
    StreamGroup(StreamGroup),
    /// A consumer of `group`, before its pending entries.
    StreamConsumer {
        group: Vec<u8>,
        name: Vec<u8>,
    },
    /// Pending entries of a consumer.
    StreamClaims {
        group: Vec<u8>,
        consumer: Vec<u8>,
        pending: Vec<PendingEntry>,
    },
}

/// What the target server understands, where the commands differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// `XSETID ... ENTRIESADDED n MAXDELETEDID id` and `XGROUP CREATE ... ENTRIESREAD n`
    /// (Redis 7.0).
    pub stream_counters: bool,
    /// `XGROUP CREATECONSUMER` (Redis 6.2); without it a consumer with no pending
    /// entries cannot be created.
    pub create_consumer: bool,
}

impl Dialect {
    /// Redis 7.0 and later.
    pub const NEWEST: Dialect = Dialect { stream_counters: true, create_consumer: true };
}

/// A command: its name, the key, the other arguments.
pub type Command = Vec<Vec<u8>>;

impl Elements {
    /// The commands that add this batch to `key` on a server that speaks `dialect`, in
    /// order.
    pub fn into_commands(self, key: &[u8], dialect: Dialect) -> Vec<Command> {
        let command = |name: &[u8], args: Vec<Vec<u8>>| {
            let mut command = vec![name.to_vec(), key.to_vec()];
            command.extend(args);
            command
        };
        let text = |value: &dyn std::fmt::Display| value.to_string().into_bytes();
        match self {
            Elements::List(values) => vec![command(b"RPUSH", values)],
            Elements::Set(members) => vec![command(b"SADD", members)],
            Elements::SortedSet(members) => {
                let args = members.into_iter().flat_map(|(member, score)| [text(&score), member]).collect();
                vec![command(b"ZADD", args)]
            }
            Elements::Hash(pairs) => {
                vec![command(b"HSET", pairs.into_iter().flat_map(|(field, value)| [field, value]).collect())]
            }
            Elements::HashWithExpiry(fields) => {
                let mut expiring = Vec::new();
                let mut args = Vec::with_capacity(fields.len() * 2);
                for (field, value, expire_at_ms) in fields {
                    if let Some(at) = expire_at_ms {
                        expiring.push((field.clone(), at));
                    }
                    args.extend([field, value]);
                }
                let mut commands = vec![command(b"HSET", args)];
                for (field, at) in expiring {
                    commands.push(command(
                        b"HPEXPIREAT",
                        vec![text(&at), b"FIELDS".to_vec(), b"1".to_vec(), field],
                    ));
                }
                commands
            }
            Elements::String(piece) => vec![command(b"APPEND", vec![piece])],
            Elements::StreamEntries(entries) => entries
                .into_iter()
                .map(|entry| {
                    let mut args = vec![text(&entry.id)];
                    args.extend(entry.fields.into_iter().flat_map(|(field, value)| [field, value]));
                    command(b"XADD", args)
                })
                .collect(),
            Elements::StreamState(state) => {
                let mut commands = Vec::new();
                if state.length == 0 {
                    // An empty stream exists only as what an XADD left when trimmed to
                    // nothing (as Redis's own AOF rewrite does it); XSETID then sets its ids.
                    let args = [&b"MAXLEN"[..], b"0", b"0-1", b"x", b"y"].map(<[u8]>::to_vec).to_vec();
                    commands.push(command(b"XADD", args));
                }
                let mut args = vec![text(&state.last_id)];
                if dialect.stream_counters
                    && let (Some(added), Some(deleted)) = (state.entries_added, state.max_deleted_id)
                {
                    args.extend([
                        b"ENTRIESADDED".to_vec(),
                        text(&added),
                        b"MAXDELETEDID".to_vec(),
                        text(&deleted),
                    ]);
                }
                commands.push(command(b"XSETID", args));
                commands
            }
            Elements::StreamGroup(group) => {
                let mut args =
                    vec![b"CREATE".to_vec(), key.to_vec(), group.name, text(&group.last_delivered)];
                if dialect.stream_counters
                    && let Some(read) = group.entries_read
                {
                    args.extend([b"ENTRIESREAD".to_vec(), text(&read)]);
                }
                vec![[vec![b"XGROUP".to_vec()], args].concat()]
            }
            Elements::StreamConsumer { group, name } if dialect.create_consumer => {
                vec![vec![b"XGROUP".to_vec(), b"CREATECONSUMER".to_vec(), key.to_vec(), group, name]]
            }
            // XCLAIM creates a consumer that has pending entries; one without is lost.
            Elements::StreamConsumer { .. } => Vec::new(),
            Elements::StreamClaims { group, consumer, pending } => pending
                .into_iter()
                .map(|entry| {
                    // FORCE creates the entry in the group's pending list, JUSTID keeps
                    // the delivery count as RETRYCOUNT sets it; an entry no longer in the
                    // stream is dropped by the server (as when Redis loads its own AOF).
                    let args = vec![
                        group.clone(),
                        consumer.clone(),
                        b"0".to_vec(),
                        text(&entry.id),
                        b"TIME".to_vec(),
                        text(&entry.delivery_time_ms),
                        b"RETRYCOUNT".to_vec(),
                        text(&entry.delivery_count),
                        b"FORCE".to_vec(),
                        b"JUSTID".to_vec(),
                    ];
                    command(b"XCLAIM", args)
                })
                .collect(),
        }
    }

    /// Roughly the memory the batch holds.
    pub fn size(&self) -> usize {
        match self {
            Elements::List(values) | Elements::Set(values) => values.iter().map(Vec::len).sum(),
            Elements::SortedSet(members) => members.iter().map(|(member, _)| member.len() + 8).sum(),
            Elements::Hash(pairs) => pairs.iter().map(|(field, value)| field.len() + value.len()).sum(),
            Elements::HashWithExpiry(fields) => {
                fields.iter().map(|(field, value, _)| field.len() + value.len() + 8).sum()
            }
            Elements::String(piece) => piece.len(),
            Elements::StreamEntries(entries) => entries.iter().map(StreamEntry::size).sum(),
            Elements::StreamClaims { pending, .. } => pending.len() * 32,
            Elements::StreamState(_) | Elements::StreamGroup(_) | Elements::StreamConsumer { .. } => 64,
        }
    }
}

/// One decoded part of a value.
#[derive(Debug)]
pub(super) enum Element {
    List(Vec<u8>),
    Set(Vec<u8>),
    Scored(Vec<u8>, f64),
    Pair(Vec<u8>, Vec<u8>),
    Field(ExpiringField),
    Piece(Vec<u8>),
}

impl Element {
    fn size(&self) -> usize {
        match self {
            Element::List(value) | Element::Set(value) | Element::Piece(value) => value.len(),
            Element::Scored(member, _) => member.len() + 8,
            Element::Pair(field, value) | Element::Field((field, value, _)) => field.len() + value.len(),
        }
    }

    /// Adds the element to `batch` (started with it when `None`); an element of another
    /// kind than the batch's is refused (one value gives one kind).
    fn add_to(self, batch: &mut Option<Elements>) -> Result<(), &'static str> {
        match (batch, self) {
            (batch @ None, element) => {
                *batch = Some(match element {
                    Element::List(value) => Elements::List(vec![value]),
                    Element::Set(value) => Elements::Set(vec![value]),
                    Element::Scored(member, score) => Elements::SortedSet(vec![(member, score)]),
                    Element::Pair(field, value) => Elements::Hash(vec![(field, value)]),
                    Element::Field(field) => Elements::HashWithExpiry(vec![field]),
                    Element::Piece(piece) => Elements::String(piece),
                })
            }
            (Some(Elements::List(values)), Element::List(value)) => values.push(value),
            (Some(Elements::Set(members)), Element::Set(member)) => members.push(member),
            (Some(Elements::SortedSet(members)), Element::Scored(member, score)) => {
                members.push((member, score))
            }
            (Some(Elements::Hash(pairs)), Element::Pair(field, value)) => pairs.push((field, value)),
            (Some(Elements::HashWithExpiry(fields)), Element::Field(field)) => fields.push(field),
            (Some(Elements::String(bytes)), Element::Piece(piece)) => bytes.extend_from_slice(&piece),
            _ => return Err("mismatched element batch"),
        }
        Ok(())
    }
}

/// How the elements of a plain encoding are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    List,
    Set,
    /// Member, then the score as text (the oldest sorted sets).
    TextScores,
    /// Member, then the score as a binary double.
    BinaryScores,
    Hash,
    /// Redis 7.4: the field's TTL as a length (0 for none, else the expiration minus
    /// `min_expire` plus one), field, value.
    FieldsAfterDeltas {
        min_expire: i64,
    },
    /// Redis 7.4's release candidates: the expiration itself as a length (0 for none).
    FieldsAfterExpirations,
    /// Valkey 9: field, value, expiration as 8 bytes (-1 for none).
    FieldsBeforeExpirations,
}

/// Where a value's decoding stands between batches.
#[derive(Debug)]
pub(super) enum Decoder {
    /// A count, then that many elements.
    Plain {
        layout: Layout,
        left: u64,
    },
    /// Quicklist nodes (listpacks or single plain elements, or, when `ziplists`, ziplists
    /// without a container mark); `pending` holds what the current node has not given yet.
    Quicklist {
        nodes_left: u64,
        ziplists: bool,
        pending: std::vec::IntoIter<Vec<u8>>,
    },
    /// The elements of one blob (or of an integer string), decoded whole.
    Packed {
        pending: std::vec::IntoIter<Element>,
    },
    /// The bytes of an uncompressed string; `started` once a piece (even empty) went out.
    String {
        left: u64,
        started: bool,
    },
    /// An LZF-compressed string.
    Lzf(Box<LzfString>),
    Stream(Box<StreamDecoder>),
}

/// A compressed string being decompressed: its compressed bytes not read yet, those
/// read and not used yet, and the decompressor with its window.
#[derive(Debug)]
pub(super) struct LzfString {
    compressed_left: u64,
    unused: Vec<u8>,
    decompressor: Decompressor,
    started: bool,
}

impl Decoder {
    /// Starts decoding a value of `value_type` (its type byte already read; modules are
    /// refused earlier).
    pub(super) fn start<R: Read>(
        input: &mut Input<R>,
        format: Format,
        value_type: u8,
    ) -> Result<Decoder, Error> {
        let plain = |layout, input: &mut Input<R>| Ok(Decoder::Plain { layout, left: input.length()? });
        let packed = |elements: Vec<Element>| Decoder::Packed { pending: elements.into_iter() };
        match value_type {
            VALKEY_HASH_2 if format.valkey => plain(Layout::FieldsBeforeExpirations, input),
            LIST => plain(Layout::List, input),
            SET => plain(Layout::Set, input),
            ZSET => plain(Layout::TextScores, input),
            ZSET_2 => plain(Layout::BinaryScores, input),
            HASH => plain(Layout::Hash, input),
            HASH_METADATA => {
                let min_expire = i64::from_le_bytes(input.array()?);
                plain(Layout::FieldsAfterDeltas { min_expire }, input)
            }
            HASH_METADATA_PRE_GA => plain(Layout::FieldsAfterExpirations, input),
            LIST_QUICKLIST_2 | LIST_QUICKLIST => Ok(Decoder::Quicklist {
                nodes_left: input.length()?,
                ziplists: value_type == LIST_QUICKLIST,
                pending: Vec::new().into_iter(),
            }),
            // One ziplist: a quicklist of one node.
            LIST_ZIPLIST => {
                Ok(Decoder::Quicklist { nodes_left: 1, ziplists: true, pending: Vec::new().into_iter() })
            }
            SET_INTSET => Ok(packed(blob(input, "intset", intset)?.into_iter().map(Element::Set).collect())),
            SET_LISTPACK => {
                Ok(packed(blob(input, "listpack", listpack)?.into_iter().map(Element::Set).collect()))
            }
            ZSET_ZIPLIST | ZSET_LISTPACK => {
                let elements = if value_type == ZSET_ZIPLIST {
                    blob(input, "ziplist", ziplist)?
                } else {
                    blob(input, "listpack", listpack)?
                };
                let scored = pairs(elements).map_err(|problem| input.corrupt(problem))?;
                let scored: Result<Vec<Element>, String> = scored
                    .into_iter()
                    .map(|(member, score)| Ok(Element::Scored(member, parse_score(&score)?)))
                    .collect();
                Ok(packed(scored.map_err(|problem| input.corrupt(problem))?))
            }
            HASH_ZIPLIST | HASH_LISTPACK | HASH_ZIPMAP => {
                let elements = match value_type {
                    HASH_ZIPLIST => blob(input, "ziplist", ziplist)?,
                    HASH_LISTPACK => blob(input, "listpack", listpack)?,
                    _ => blob(input, "zipmap", zipmap)?,
                };
                let pairs = pairs(elements).map_err(|problem| input.corrupt(problem))?;
                Ok(packed(pairs.into_iter().map(|(field, value)| Element::Pair(field, value)).collect()))
            }
            HASH_LISTPACK_EX | HASH_LISTPACK_EX_PRE_GA => {
                if value_type == HASH_LISTPACK_EX {
                    input.skip(8)?; // the earliest field expiration, in ms
                }
                let elements = blob(input, "listpack", listpack)?;
                let fields = expiring_triples(elements).map_err(|problem| input.corrupt(problem))?;
                Ok(packed(fields.into_iter().map(Element::Field).collect()))
            }
            STRING => match input.length_or_encoding()? {
                Length::Plain(left) => Ok(Decoder::String { left, started: false }),
                Length::Encoded(kind @ (ENCODED_INT8 | ENCODED_INT16 | ENCODED_INT32)) => {
                    Ok(packed(vec![Element::Piece(input.encoded_integer(kind)?)]))
                }
                Length::Encoded(ENCODED_LZF) => {
                    let compressed_left = input.length()?;
                    let expected = input.length()?;
                    if expected > MAX_ELEMENT as u64 {
                        return Err(input.corrupt(format!("a string of {expected} bytes is over the limit")));
                    }
                    Ok(Decoder::Lzf(Box::new(LzfString {
                        compressed_left,
                        unused: Vec::new(),
                        decompressor: Decompressor::new(expected),
                        started: false,
                    })))
                }
                Length::Encoded(kind) => Err(input.corrupt(format!("unknown string encoding {kind}"))),
            },
            STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => {
                Ok(Decoder::Stream(Box::new(StreamDecoder::start(input, value_type)?)))
            }
            other => Err(input.corrupt(format!("no decoder for value type {other}"))),
        }
    }

    /// The next batch, or `None` once the value has been read to its end.
    pub(super) fn next_batch<R: Read>(&mut self, input: &mut Input<R>) -> Result<Option<Elements>, Error> {
        if let Decoder::Stream(stream) = self {
            return stream.next_batch(input);
        }
        let mut batch = None;
        let (mut count, mut bytes) = (0, 0);
        while count < BATCH_ELEMENTS && bytes < BATCH_BYTES {
            let Some(element) = self.one(input)? else { break };
            count += 1;
            bytes += element.size();
            element.add_to(&mut batch).map_err(|problem| input.corrupt(problem))?;
        }
        Ok(batch)
    }

    /// The next element, or `None` at the end of the value.
    fn one<R: Read>(&mut self, input: &mut Input<R>) -> Result<Option<Element>, Error> {
        match self {
            Decoder::Plain { left: 0, .. } => Ok(None),
            Decoder::Plain { layout, left } => {
                *left -= 1;
                plain_element(input, *layout).map(Some)
            }
            Decoder::Packed { pending } => Ok(pending.next()),
            Decoder::String { left: 0, started: true } => Ok(None),
            Decoder::String { left, started } => {
                // An empty string still gives one (empty) piece, so that its key exists.
                *started = true;
                let size = (*left).min(PIECE as u64);
                *left -= size;
                Ok(Some(Element::Piece(input.bytes(size, PIECE, "string piece")?)))
            }
            Decoder::Lzf(string) => string.next_piece(input).map(|piece| piece.map(Element::Piece)),
            Decoder::Quicklist { nodes_left, ziplists, pending } => loop {
                if let Some(element) = pending.next() {
                    return Ok(Some(Element::List(element)));
                }
                if *nodes_left == 0 {
                    return Ok(None);
                }
                *nodes_left -= 1;
                *pending = quicklist_node(input, *ziplists)?.into_iter();
            },
            Decoder::Stream(_) => Err(input.corrupt("a stream decoded element by element")),
        }
    }
}

impl LzfString {
    /// The next piece of the decompressed string, or `None` after the last.
    fn next_piece<R: Read>(&mut self, input: &mut Input<R>) -> Result<Option<Vec<u8>>, Error> {
        loop {
            let used =
                self.decompressor.decode(&self.unused, PIECE).map_err(|problem| input.corrupt(problem))?;
            self.unused.drain(..used);
            let read_whole = self.compressed_left == 0;
            if self.decompressor.pending() >= PIECE || (read_whole && self.decompressor.pending() > 0) {
                self.started = true;
                return Ok(Some(self.decompressor.take()));
            }
            if read_whole {
                if !self.unused.is_empty() {
                    return Err(input.corrupt("lzf instruction runs past the compressed string"));
                }
                self.decompressor.finish().map_err(|problem| input.corrupt(problem))?;
                // An empty string still gives one (empty) piece, so that its key exists.
                let first = !self.started;
                self.started = true;
                return Ok(first.then(Vec::new));
            }
            // Enough for the longest instruction, or the rest.
            let more = self.compressed_left.min((PIECE.max(lzf::LONGEST_INSTRUCTION)) as u64);
            let bytes = input.bytes(more, PIECE, "compressed string")?;
            self.compressed_left -= more;
            self.unused.extend_from_slice(&bytes);
        }
    }
}

/// Reads a blob (a string holding a compact encoding) and decodes it with `decode`.
fn blob<R: Read>(input: &mut Input<R>, what: &str, decode: BlobDecoder) -> Result<Vec<Vec<u8>>, Error> {
    let bytes = input.string(MAX_ELEMENT, what)?;
    decode(&bytes).map_err(|problem| input.corrupt(problem))
}

/// Elements taken two by two.
fn pairs(elements: Vec<Vec<u8>>) -> Result<Vec<Pair>, String> {
    if !elements.len().is_multiple_of(2) {
        return Err(format!("{} elements do not make pairs", elements.len()));
    }
    let mut elements = elements.into_iter();
    let mut pairs = Vec::new();
    while let (Some(first), Some(second)) = (elements.next(), elements.next()) {
        pairs.push((first, second));
    }
    Ok(pairs)
}

/// Field, value and expiration (0 for none), three by three.
fn expiring_triples(elements: Vec<Vec<u8>>) -> Result<Vec<ExpiringField>, String> {
    if !elements.len().is_multiple_of(3) {
        return Err(format!("{} elements do not make fields, values and expirations", elements.len()));
    }
    let mut elements = elements.into_iter();
    let mut fields = Vec::new();
    while let (Some(field), Some(value), Some(expiration)) =
        (elements.next(), elements.next(), elements.next())
    {
        let at = parse_integer(&expiration)?;
        fields.push((field, value, (at != 0).then_some(at)));
    }
    Ok(fields)
}

pub(super) fn parse_integer(text: &[u8]) -> Result<i64, String> {
    let parsed = std::str::from_utf8(text).ok().and_then(|text| text.parse().ok());
    parsed.ok_or_else(|| {
        format!("{:?} is not an integer", String::from_utf8_lossy(&text[..text.len().min(32)]))
    })
}

/// A score stored as text (in ziplists and listpacks, or the oldest sorted sets).
fn parse_score(text: &[u8]) -> Result<f64, String> {
    let parsed = std::str::from_utf8(text).ok().and_then(|text| match text {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        text => text.parse().ok(),
    });
    parsed.ok_or_else(|| {
        format!("score {:?} is not a number", String::from_utf8_lossy(&text[..text.len().min(32)]))
    })
}

/// One element of a plain encoding.
fn plain_element<R: Read>(input: &mut Input<R>, layout: Layout) -> Result<Element, Error> {
    let element = match layout {
        Layout::List => Element::List(input.string(MAX_ELEMENT, "element")?),
        Layout::Set => Element::Set(input.string(MAX_ELEMENT, "member")?),
        Layout::TextScores => {
            let member = input.string(MAX_ELEMENT, "member")?;
            Element::Scored(member, text_score(input)?)
        }
        Layout::BinaryScores => {
            let member = input.string(MAX_ELEMENT, "member")?;
            Element::Scored(member, f64::from_le_bytes(input.array()?))
        }
        Layout::Hash => {
            let field = input.string(MAX_ELEMENT, "field")?;
            Element::Pair(field, input.string(MAX_ELEMENT, "hash value")?)
        }
        Layout::FieldsAfterDeltas { min_expire } => {
            let ttl = input.length()?;
            let field = input.string(MAX_ELEMENT, "field")?;
            let value = input.string(MAX_ELEMENT, "hash value")?;
            let at = (ttl != 0).then(|| min_expire.wrapping_add(ttl as i64).wrapping_sub(1));
            Element::Field((field, value, at))
        }
        Layout::FieldsAfterExpirations => {
            let at = input.length()?;
            let field = input.string(MAX_ELEMENT, "field")?;
            let value = input.string(MAX_ELEMENT, "hash value")?;
            Element::Field((field, value, (at != 0).then_some(at as i64)))
        }
        Layout::FieldsBeforeExpirations => {
            let field = input.string(MAX_ELEMENT, "field")?;
            let value = input.string(MAX_ELEMENT, "hash value")?;
            let at = i64::from_le_bytes(input.array()?);
            Element::Field((field, value, (at != -1).then_some(at)))
        }
    };
    Ok(element)
}

/// A quicklist node's elements: one plain element, or a listpack of them; or a ziplist.
fn quicklist_node<R: Read>(input: &mut Input<R>, ziplists: bool) -> Result<Vec<Vec<u8>>, Error> {
    const PLAIN: u64 = 1;
    const PACKED: u64 = 2;
    if ziplists {
        return blob(input, "ziplist", ziplist);
    }
    let container = input.length()?;
    match container {
        PLAIN => Ok(vec![input.string(MAX_ELEMENT, "quicklist node")?]),
        PACKED => blob(input, "quicklist node", listpack),
        other => Err(input.corrupt(format!("unknown quicklist container {other}"))),
    }
}

/// A score of the oldest sorted sets, as text.
fn text_score<R: Read>(input: &mut Input<R>) -> Result<f64, Error> {
    match input.byte()? {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        length => {
            let text = input.bytes(u64::from(length), 255, "score")?;
            parse_score(&text).map_err(|problem| input.corrupt(problem))
        }
    }
}

#[cfg(test)]
mod tests;

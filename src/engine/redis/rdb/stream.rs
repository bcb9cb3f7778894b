//! Stream decoding: the entries of each listpack node (their ids as deltas from the
//! node's master id, their fields given once in the master entry when they repeat),
//! deleted entries left out; then the stream's ids and counters; then each consumer
//! group, its consumers, and their pending entries.
//!
//! A group's pending entries (id, delivery time, delivery count) come before the
//! consumers that own them, so they are held until their consumers are read: memory grows
//! with them as their bytes arrive (33 bytes in the file or more each), like Redis's own.

use std::collections::BTreeMap;
use std::io::Read;

use super::Error;
use super::elements::{BATCH_BYTES, BATCH_ELEMENTS, Elements, MAX_ELEMENT, parse_integer};
use super::input::Input;
use super::packed::listpack;
use super::value::value_type::{STREAM_LISTPACKS_2, STREAM_LISTPACKS_3};

/// A stream entry id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// From its 16 bytes in the file: both halves big-endian.
    fn from_raw(raw: [u8; 16]) -> StreamId {
        let (ms, seq) = raw.split_at(8);
        StreamId {
            ms: u64::from_be_bytes(ms.try_into().unwrap_or_default()),
            seq: u64::from_be_bytes(seq.try_into().unwrap_or_default()),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}-{}", self.ms, self.seq)
    }
}

/// An entry: its id, and its fields and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: StreamId,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StreamEntry {
    pub(super) fn size(&self) -> usize {
        16 + self.fields.iter().map(|(field, value)| field.len() + value.len()).sum::<usize>()
    }
}

/// A stream's ids and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Entries in the stream (not deleted).
    pub length: u64,
    pub last_id: StreamId,
    /// The greatest id deleted, and the entries ever added (stream types 2 and 3).
    pub max_deleted_id: Option<StreamId>,
    pub entries_added: Option<u64>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamGroup {
    pub name: Vec<u8>,
    pub last_delivered: StreamId,
    /// Entries the group has read, -1 when unknown (stream types 2 and 3).
    pub entries_read: Option<i64>,
}

/// An entry delivered to a consumer and not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub id: StreamId,
    /// When it was last delivered, Unix ms.
    pub delivery_time_ms: i64,
    pub delivery_count: u64,
}

/// Where a stream's decoding stands between batches.
#[derive(Debug)]
pub(super) struct StreamDecoder {
    since_2: bool,
    since_3: bool,
    phase: Phase,
}

/// A group's pending entries not claimed by a consumer yet: delivery time and count.
type GroupPending = BTreeMap<StreamId, (i64, u64)>;

#[derive(Debug)]
enum Phase {
    Entries {
        nodes_left: u64,
        pending: std::vec::IntoIter<StreamEntry>,
    },
    Groups {
        left: u64,
    },
    Consumers {
        group: Vec<u8>,
        pel: GroupPending,
        consumers_left: u64,
        groups_left: u64,
    },
    Claims {
        group: Vec<u8>,
        consumer: Vec<u8>,
        pel: GroupPending,
        ids_left: u64,
        consumers_left: u64,
        groups_left: u64,
    },
    Done,
}

impl StreamDecoder {
    /// Starts decoding a stream of `value_type` (15, 19 or 21), its type byte read.
    pub(super) fn start<R: Read>(input: &mut Input<R>, value_type: u8) -> Result<StreamDecoder, Error> {
        Ok(StreamDecoder {
            since_2: value_type >= STREAM_LISTPACKS_2,
            since_3: value_type >= STREAM_LISTPACKS_3,
            phase: Phase::Entries { nodes_left: input.length()?, pending: Vec::new().into_iter() },
        })
    }

    /// The next batch, or `None` once the stream has been read to its end.
    pub(super) fn next_batch<R: Read>(&mut self, input: &mut Input<R>) -> Result<Option<Elements>, Error> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Entries { mut nodes_left, mut pending } => {
                    let mut entries = Vec::new();
                    let mut bytes = 0;
                    while entries.len() < BATCH_ELEMENTS && bytes < BATCH_BYTES {
                        if let Some(entry) = pending.next() {
                            bytes += entry.size();
                            entries.push(entry);
                        } else if nodes_left > 0 {
                            nodes_left -= 1;
                            pending = node(input)?.into_iter();
                        } else {
                            break;
                        }
                    }
                    if !entries.is_empty() {
                        self.phase = Phase::Entries { nodes_left, pending };
                        return Ok(Some(Elements::StreamEntries(entries)));
                    }
                    let state = self.state(input)?;
                    self.phase = Phase::Groups { left: input.length()? };
                    return Ok(Some(Elements::StreamState(state)));
                }
                Phase::Groups { left: 0 } => return Ok(None),
                Phase::Groups { left } => {
                    let (group, pel) = self.group(input)?;
                    let consumers_left = input.length()?;
                    self.phase = Phase::Consumers {
                        group: group.name.clone(),
                        pel,
                        consumers_left,
                        groups_left: left - 1,
                    };
                    return Ok(Some(Elements::StreamGroup(group)));
                }
                Phase::Consumers { consumers_left: 0, groups_left, .. } => {
                    self.phase = Phase::Groups { left: groups_left };
                }
                Phase::Consumers { group, pel, consumers_left, groups_left } => {
                    let name = input.string(MAX_ELEMENT, "consumer name")?;
                    input.skip(8)?; // seen time, ms
                    if self.since_3 {
                        input.skip(8)?; // active time, ms
                    }
                    let ids_left = input.length()?;
                    let consumer = Elements::StreamConsumer { group: group.clone(), name: name.clone() };
                    self.phase = Phase::Claims {
                        group,
                        consumer: name,
                        pel,
                        ids_left,
                        consumers_left: consumers_left - 1,
                        groups_left,
                    };
                    return Ok(Some(consumer));
                }
                Phase::Claims { group, pel, ids_left: 0, consumers_left, groups_left, .. } => {
                    self.phase = Phase::Consumers { group, pel, consumers_left, groups_left };
                }
                Phase::Claims { group, consumer, mut pel, mut ids_left, consumers_left, groups_left } => {
                    let mut pending = Vec::new();
                    while ids_left > 0 && pending.len() < BATCH_ELEMENTS {
                        ids_left -= 1;
                        let id = StreamId::from_raw(input.array()?);
                        let Some((delivery_time_ms, delivery_count)) = pel.remove(&id) else {
                            return Err(
                                input.corrupt(format!("pending entry {id} of a consumer is not its group's"))
                            );
                        };
                        pending.push(PendingEntry { id, delivery_time_ms, delivery_count });
                    }
                    let claims =
                        Elements::StreamClaims { group: group.clone(), consumer: consumer.clone(), pending };
                    self.phase =
                        Phase::Claims { group, consumer, pel, ids_left, consumers_left, groups_left };
                    return Ok(Some(claims));
                }
                Phase::Done => return Ok(None),
            }
        }
    }

    /// The length and ids after the nodes.
    fn state<R: Read>(&self, input: &mut Input<R>) -> Result<StreamState, Error> {
        let length = input.length()?;
        let last_id = id_of_lengths(input)?;
        if !self.since_2 {
            return Ok(StreamState { length, last_id, max_deleted_id: None, entries_added: None });
        }
        let _first_id = id_of_lengths(input)?;
        let max_deleted_id = Some(id_of_lengths(input)?);
        let entries_added = Some(input.length()?);
        Ok(StreamState { length, last_id, max_deleted_id, entries_added })
    }

    /// A group's name, ids and counters, and its pending entries.
    fn group<R: Read>(&self, input: &mut Input<R>) -> Result<(StreamGroup, GroupPending), Error> {
        let name = input.string(MAX_ELEMENT, "group name")?;
        let last_delivered = id_of_lengths(input)?;
        // Saved as an unsigned length: -1 (unknown) comes back as its two's complement.
        let entries_read = if self.since_2 { Some(input.length()? as i64) } else { None };
        let mut pel = GroupPending::new();
        for _ in 0..input.length()? {
            let id = StreamId::from_raw(input.array()?);
            let delivery_time_ms = i64::from_le_bytes(input.array()?);
            let delivery_count = input.length()?;
            if pel.insert(id, (delivery_time_ms, delivery_count)).is_some() {
                return Err(input.corrupt(format!("pending entry {id} twice in a group")));
            }
        }
        Ok((StreamGroup { name, last_delivered, entries_read }, pel))
    }
}

/// An id saved as two lengths.
fn id_of_lengths<R: Read>(input: &mut Input<R>) -> Result<StreamId, Error> {
    Ok(StreamId { ms: input.length()?, seq: input.length()? })
}

/// A node: its master id (16 bytes) and its listpack of entries.
fn node<R: Read>(input: &mut Input<R>) -> Result<Vec<StreamEntry>, Error> {
    let master = input.string(16, "stream node id")?;
    let master: [u8; 16] = master
        .try_into()
        .map_err(|master: Vec<u8>| input.corrupt(format!("a stream node id of {} bytes", master.len())))?;
    let elements = input.string(MAX_ELEMENT, "stream node")?;
    let elements = listpack(&elements).map_err(|problem| input.corrupt(problem))?;
    node_entries(StreamId::from_raw(master), elements).map_err(|problem| input.corrupt(problem))
}

/// An entry's flags.
const DELETED: i64 = 1;
const SAME_FIELDS: i64 = 2;

/// The live entries of a node's listpack: the master entry (live and deleted counts, the
/// master fields, a 0), then each entry: flags, id deltas, its fields and values (or
/// values only, for the master fields), and a count that lets the listpack be walked
/// backwards.
fn node_entries(master: StreamId, elements: Vec<Vec<u8>>) -> Result<Vec<StreamEntry>, String> {
    let mut elements = elements.into_iter();
    let elements = &mut elements;
    let _live = integer(elements)?;
    let _deleted = integer(elements)?;
    let master_fields_count = integer(elements)?;
    let mut master_fields = Vec::new();
    for _ in 0..master_fields_count {
        master_fields.push(next(elements)?);
    }
    if integer(elements)? != 0 {
        return Err("a stream node's master entry does not end with 0".to_owned());
    }
    let mut entries = Vec::new();
    while let Some(flags) = elements.next() {
        let flags = parse_integer(&flags)?;
        let ms = master.ms.wrapping_add(integer(elements)? as u64);
        let seq = master.seq.wrapping_add(integer(elements)? as u64);
        let mut fields = Vec::new();
        if flags & SAME_FIELDS != 0 {
            for field in &master_fields {
                fields.push((field.clone(), next(elements)?));
            }
        } else {
            for _ in 0..integer(elements)? {
                let field = next(elements)?;
                fields.push((field, next(elements)?));
            }
        }
        let _count = next(elements)?;
        if fields.is_empty() {
            // XADD could not rebuild it, and no server writes one.
            return Err(format!("stream entry {ms}-{seq} has no fields"));
        }
        if flags & DELETED == 0 {
            entries.push(StreamEntry { id: StreamId { ms, seq }, fields });
        }
    }
    Ok(entries)
}

fn next(elements: &mut impl Iterator<Item = Vec<u8>>) -> Result<Vec<u8>, String> {
    elements.next().ok_or_else(|| "a stream node ends inside an entry".to_owned())
}

fn integer(elements: &mut impl Iterator<Item = Vec<u8>>) -> Result<i64, String> {
    parse_integer(&next(elements)?)
}

#[cfg(test)]
mod tests {
    use super::super::packed::tests::listpack_of;
    use super::*;

    fn text(value: &str) -> Vec<u8> {
        let mut entry = vec![0x80 | value.len() as u8];
        entry.extend_from_slice(value.as_bytes());
        entry
    }

    /// A node at `master` (1000-5) with two fields in its master entry: a same-fields
    /// entry, a deleted one, and one with its own fields.
    fn node_listpack() -> Vec<u8> {
        let entries: Vec<Vec<u8>> = vec![
            vec![0x02], // live
            vec![0x01], // deleted
            vec![0x02], // master fields
            text("f"),
            text("g"),
            vec![0x00],
            // same fields: 1000-5
            vec![SAME_FIELDS as u8],
            vec![0x00],
            vec![0x00],
            text("1"),
            text("2"),
            vec![0x04],
            // deleted: 1001-0
            vec![(SAME_FIELDS | DELETED) as u8],
            vec![0x01],
            vec![0xdf, 0xfb], // -5, 13-bit
            text("x"),
            text("y"),
            vec![0x04],
            // own fields: 1002-0
            vec![0x00],
            vec![0x02],
            vec![0xdf, 0xfb],
            vec![0x01],
            text("h"),
            text("3"),
            vec![0x05],
        ];
        let entries: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
        listpack_of(&entries)
    }

    fn raw(id: StreamId) -> Vec<u8> {
        [id.ms.to_be_bytes(), id.seq.to_be_bytes()].concat()
    }

    fn decode(value_type: u8, bytes: &[u8]) -> Vec<Elements> {
        let mut input = Input::new(bytes);
        let mut decoder = StreamDecoder::start(&mut input, value_type).unwrap();
        let mut batches = Vec::new();
        while let Some(batch) = decoder.next_batch(&mut input).unwrap() {
            batches.push(batch);
        }
        assert_eq!(input.offset(), bytes.len() as u64, "the stream did not end at the end");
        batches
    }

    #[test]
    fn decodes_entries_state_groups_consumers_and_pending_entries() {
        let id = |ms, seq| StreamId { ms, seq };
        let listpack = node_listpack();
        let mut bytes = vec![0x01, 0x10];
        bytes.extend(raw(id(1000, 5)));
        bytes.extend_from_slice(&[0x40, listpack.len() as u8]);
        bytes.extend(&listpack);
        // length 2, last 1002-0, first 1000-5, max deleted 1001-0, 3 added
        bytes.extend_from_slice(&[0x02, 0x43, 0xea, 0x00, 0x43, 0xe8, 0x05, 0x43, 0xe9, 0x00, 0x03]);
        // one group "g": last delivered 1002-0, 2 read, two pending entries
        bytes.extend_from_slice(&[0x01, 0x01, b'g', 0x43, 0xea, 0x00, 0x02, 0x02]);
        for (pending, count) in [(id(1000, 5), 1u8), (id(1002, 0), 4)] {
            bytes.extend(raw(pending));
            bytes.extend_from_slice(&77i64.to_le_bytes());
            bytes.push(count);
        }
        // two consumers: "a" owns both, "b" none; seen and active times
        bytes.extend_from_slice(&[0x02, 0x01, b'a']);
        bytes.extend_from_slice(&[0; 16]);
        bytes.push(0x02);
        bytes.extend(raw(id(1000, 5)));
        bytes.extend(raw(id(1002, 0)));
        bytes.extend_from_slice(&[0x01, b'b']);
        bytes.extend_from_slice(&[0; 16]);
        bytes.push(0x00);

        let entry = |id, fields: &[(&str, &str)]| StreamEntry {
            id,
            fields: fields
                .iter()
                .map(|(field, value)| (field.as_bytes().to_vec(), value.as_bytes().to_vec()))
                .collect(),
        };
        let group = b"g".to_vec();
        assert_eq!(
            decode(STREAM_LISTPACKS_3, &bytes),
            [
                Elements::StreamEntries(vec![
                    entry(id(1000, 5), &[("f", "1"), ("g", "2")]),
                    entry(id(1002, 0), &[("h", "3")])
                ]),
                Elements::StreamState(StreamState {
                    length: 2,
                    last_id: id(1002, 0),
                    max_deleted_id: Some(id(1001, 0)),
                    entries_added: Some(3),
                }),
                Elements::StreamGroup(StreamGroup {
                    name: group.clone(),
                    last_delivered: id(1002, 0),
                    entries_read: Some(2)
                }),
                Elements::StreamConsumer { group: group.clone(), name: b"a".to_vec() },
                Elements::StreamClaims {
                    group: group.clone(),
                    consumer: b"a".to_vec(),
                    pending: vec![
                        PendingEntry { id: id(1000, 5), delivery_time_ms: 77, delivery_count: 1 },
                        PendingEntry { id: id(1002, 0), delivery_time_ms: 77, delivery_count: 4 },
                    ]
                },
                Elements::StreamConsumer { group, name: b"b".to_vec() },
            ]
        );
        // A consumer's entry missing from its group's pending list is refused.
        let position = bytes.len() - 16 - 3 - 16 - 1;
        bytes[position] ^= 0x01;
        let mut input = Input::new(&bytes[..]);
        let mut decoder = StreamDecoder::start(&mut input, STREAM_LISTPACKS_3).unwrap();
        let error = loop {
            match decoder.next_batch(&mut input) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("no error"),
                Err(error) => break error,
            }
        };
        assert!(matches!(error, Error::Corrupt(ref message) if message.contains("pending")), "{error}");
    }

    #[test]
    fn an_empty_stream_of_the_first_type_has_its_last_id_only() {
        // no nodes, length 0, last id 5-1, no groups
        assert_eq!(
            decode(super::super::value::value_type::STREAM_LISTPACKS, &[0x00, 0x00, 0x05, 0x01, 0x00]),
            [Elements::StreamState(StreamState {
                length: 0,
                last_id: StreamId { ms: 5, seq: 1 },
                max_deleted_id: None,
                entries_added: None
            })]
        );
    }

    #[test]
    fn broken_nodes_are_refused() {
        let master = StreamId { ms: 1, seq: 0 };
        for elements in [
            vec![],
            vec![b"1".to_vec(), b"0".to_vec(), b"1".to_vec()],
            vec![b"1".to_vec(), b"0".to_vec(), b"0".to_vec(), b"1".to_vec()],
            vec![b"1".to_vec(), b"0".to_vec(), b"0".to_vec(), b"0".to_vec(), b"0".to_vec(), b"0".to_vec()],
            // An entry without fields: flags, deltas, no fields, count.
            [b"1", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"3"].map(|text| text.to_vec()).to_vec(),
            vec![b"x".to_vec()],
        ] {
            assert!(node_entries(master, elements.clone()).is_err(), "{elements:?}");
        }
    }
}

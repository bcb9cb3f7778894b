//! Element decoding for keys too big for one payload: plain lists, sets, sorted sets and
//! hashes, and lists as quicklists (of listpacks, or of the ziplists before Redis 7) or
//! as one ziplist, come out in batches a later step can send as `RPUSH`, `SADD`, `ZADD`
//! and `HSET`; uncompressed strings come out in pieces for `APPEND`. Other types (and
//! LZF-compressed strings) are only walked past.

use std::io::Read;

use super::Error;
use super::input::{Input, Length};
use super::value::value_type::*;

/// The longest single element accepted: Redis's own limit on strings.
const MAX_ELEMENT: usize = 512 * 1024 * 1024;

/// A batch ends when it holds this many elements or bytes, whichever comes first.
const BATCH_ELEMENTS: usize = 1024;
const BATCH_BYTES: usize = 1024 * 1024;

/// A string is read this much at a time.
const PIECE: u64 = 64 * 1024;

/// A batch of a big key's elements, in the order the file holds them.
#[derive(Debug, Clone, PartialEq)]
pub enum Elements {
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    SortedSet(Vec<(Vec<u8>, f64)>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    /// The next piece of a string.
    String(Vec<u8>),
}

impl Elements {
    /// The command that adds this batch to its key, and the arguments after the key:
    /// `RPUSH`, `SADD`, `ZADD` (score, member), `HSET` (field, value) or `APPEND`.
    pub fn into_command(self) -> (&'static [u8], Vec<Vec<u8>>) {
        match self {
            Elements::List(values) => (b"RPUSH", values),
            Elements::Set(members) => (b"SADD", members),
            Elements::SortedSet(members) => {
                let args = members
                    .into_iter()
                    .flat_map(|(member, score)| [score.to_string().into_bytes(), member])
                    .collect();
                (b"ZADD", args)
            }
            Elements::Hash(pairs) => {
                (b"HSET", pairs.into_iter().flat_map(|(field, value)| [field, value]).collect())
            }
            Elements::String(piece) => (b"APPEND", vec![piece]),
        }
    }

    fn len(&self) -> usize {
        match self {
            Elements::List(elements) | Elements::Set(elements) => elements.len(),
            Elements::SortedSet(elements) => elements.len(),
            Elements::Hash(elements) => elements.len(),
            // A piece ends by its size alone.
            Elements::String(piece) => usize::from(!piece.is_empty()),
        }
    }
}

/// Where a big key's decoding stands between batches.
#[derive(Debug)]
pub(super) enum Decoder {
    /// A count, then that many elements of `value_type`.
    Plain { value_type: u8, left: u64 },
    /// Quicklist nodes (listpacks or single plain elements, or, when `ziplists`, ziplists
    /// without a container mark); `pending` holds what the current node has not given yet.
    Quicklist { nodes_left: u64, ziplists: bool, pending: std::vec::IntoIter<Vec<u8>> },
    /// The bytes of an uncompressed string.
    String { left: u64 },
}

/// How decoding a big value starts.
#[derive(Debug)]
pub(super) enum Start {
    Decoding(Decoder),
    /// Not decoded, and nothing read yet.
    NotDecoded,
    /// Not decoded, and read to its end: an integer or a compressed string.
    WalkedPast,
}

impl Decoder {
    /// Starts decoding a value of `value_type` (its type byte already read).
    pub(super) fn start<R: Read>(input: &mut Input<R>, value_type: u8) -> Result<Start, Error> {
        let decoder = match value_type {
            LIST | SET | ZSET | ZSET_2 | HASH => Decoder::Plain { value_type, left: input.length()? },
            LIST_QUICKLIST_2 | LIST_QUICKLIST => Decoder::Quicklist {
                nodes_left: input.length()?,
                ziplists: value_type == LIST_QUICKLIST,
                pending: Vec::new().into_iter(),
            },
            // One ziplist: a quicklist of one node.
            LIST_ZIPLIST => {
                Decoder::Quicklist { nodes_left: 1, ziplists: true, pending: Vec::new().into_iter() }
            }
            STRING => match input.length_or_encoding()? {
                Length::Plain(left) => Decoder::String { left },
                Length::Encoded(kind) => {
                    input.skip_encoded(kind)?;
                    return Ok(Start::WalkedPast);
                }
            },
            _ => return Ok(Start::NotDecoded),
        };
        Ok(Start::Decoding(decoder))
    }

    /// The next batch, or `None` once the value has been read to its end.
    pub(super) fn next_batch<R: Read>(&mut self, input: &mut Input<R>) -> Result<Option<Elements>, Error> {
        let mut bytes = 0;
        let mut batch = match self {
            Decoder::Plain { value_type: SET, .. } => Elements::Set(Vec::new()),
            Decoder::Plain { value_type: ZSET | ZSET_2, .. } => Elements::SortedSet(Vec::new()),
            Decoder::Plain { value_type: HASH, .. } => Elements::Hash(Vec::new()),
            Decoder::String { .. } => Elements::String(Vec::new()),
            _ => Elements::List(Vec::new()),
        };
        while batch.len() < BATCH_ELEMENTS && bytes < BATCH_BYTES {
            let Some(size) = self.one(input, &mut batch)? else { break };
            bytes += size;
        }
        Ok((batch.len() > 0).then_some(batch))
    }

    /// Adds one element to `batch`: its size, or `None` at the end of the value.
    fn one<R: Read>(&mut self, input: &mut Input<R>, batch: &mut Elements) -> Result<Option<usize>, Error> {
        match self {
            Decoder::Plain { left: 0, .. } => Ok(None),
            Decoder::Plain { value_type, left } => {
                *left -= 1;
                let element = input.string(MAX_ELEMENT, "element")?;
                let size = element.len();
                match (*value_type, batch) {
                    (ZSET, Elements::SortedSet(elements)) => elements.push((element, text_score(input)?)),
                    (ZSET_2, Elements::SortedSet(elements)) => {
                        elements.push((element, f64::from_le_bytes(input.array()?)))
                    }
                    (HASH, Elements::Hash(elements)) => {
                        let value = input.string(MAX_ELEMENT, "hash value")?;
                        let size = size + value.len();
                        elements.push((element, value));
                        return Ok(Some(size));
                    }
                    (_, Elements::List(elements) | Elements::Set(elements)) => elements.push(element),
                    _ => return Err(input.corrupt("mismatched element batch")),
                }
                Ok(Some(size))
            }
            Decoder::String { left: 0 } => Ok(None),
            Decoder::String { left } => {
                let size = (*left).min(PIECE) as usize;
                *left -= size as u64;
                let piece = input.bytes(size as u64, PIECE as usize, "string piece")?;
                match batch {
                    Elements::String(bytes) => bytes.extend_from_slice(&piece),
                    _ => return Err(input.corrupt("mismatched element batch")),
                }
                Ok(Some(size))
            }
            Decoder::Quicklist { nodes_left, ziplists, pending } => {
                let element = loop {
                    if let Some(element) = pending.next() {
                        break element;
                    }
                    if *nodes_left == 0 {
                        return Ok(None);
                    }
                    *nodes_left -= 1;
                    *pending = quicklist_node(input, *ziplists)?.into_iter();
                };
                let size = element.len();
                match batch {
                    Elements::List(elements) => elements.push(element),
                    _ => return Err(input.corrupt("mismatched element batch")),
                }
                Ok(Some(size))
            }
        }
    }
}

/// A quicklist node's elements: one plain element, or a listpack of them; or a ziplist.
fn quicklist_node<R: Read>(input: &mut Input<R>, ziplists: bool) -> Result<Vec<Vec<u8>>, Error> {
    const PLAIN: u64 = 1;
    const PACKED: u64 = 2;
    if ziplists {
        let node = input.string(MAX_ELEMENT, "ziplist")?;
        return ziplist(&node).map_err(|problem| input.corrupt(problem));
    }
    let container = input.length()?;
    let node = input.string(MAX_ELEMENT, "quicklist node")?;
    match container {
        PLAIN => Ok(vec![node]),
        PACKED => listpack(&node).map_err(|problem| input.corrupt(problem)),
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
            let score = std::str::from_utf8(&text).ok().and_then(|text| text.parse().ok());
            score.ok_or_else(|| {
                input.corrupt(format!("score {:?} is not a number", String::from_utf8_lossy(&text)))
            })
        }
    }
}

/// The elements of a listpack, integers as their decimal text.
pub(super) fn listpack(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let header = bytes.get(..6).ok_or("listpack shorter than its header")?;
    let total = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if total != bytes.len() {
        return Err(format!("listpack says {total} bytes, has {}", bytes.len()));
    }
    let mut elements = Vec::new();
    let mut at = 6;
    loop {
        let encoding = *bytes.get(at).ok_or("listpack without its end mark")?;
        if encoding == 0xff {
            return if at + 1 == bytes.len() {
                Ok(elements)
            } else {
                Err("bytes after the listpack end".into())
            };
        }
        let take = |from: usize, count: usize| {
            bytes.get(from..from + count).ok_or("listpack entry runs past its end")
        };
        let signed = |raw: &[u8], bits: u32| {
            let value = raw.iter().rev().fold(0i64, |value, &byte| value << 8 | i64::from(byte));
            value << (64 - bits) >> (64 - bits)
        };
        let (element, size) = match encoding {
            0x00..=0x7f => (i64::from(encoding).to_string().into_bytes(), 1),
            0x80..=0xbf => {
                let length = usize::from(encoding & 0x3f);
                (take(at + 1, length)?.to_vec(), 1 + length)
            }
            0xc0..=0xdf => {
                let raw = [take(at + 1, 1)?[0], encoding & 0x1f];
                (signed(&raw, 13).to_string().into_bytes(), 2)
            }
            0xe0..=0xef => {
                let length = usize::from(encoding & 0x0f) << 8 | usize::from(take(at + 1, 1)?[0]);
                (take(at + 2, length)?.to_vec(), 2 + length)
            }
            0xf0 => {
                let raw = take(at + 1, 4)?;
                let length = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
                (take(at + 5, length)?.to_vec(), 5 + length)
            }
            0xf1..=0xf4 => {
                let width = match encoding {
                    0xf1 => 2,
                    0xf2 => 3,
                    0xf3 => 4,
                    _ => 8,
                };
                (signed(take(at + 1, width)?, 8 * width as u32).to_string().into_bytes(), 1 + width)
            }
            other => return Err(format!("unknown listpack encoding {other:#04x}")),
        };
        let backlen = match size {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2097150 => 3,
            2097151..=268435454 => 4,
            _ => 5,
        };
        elements.push(element);
        at += size + backlen;
    }
}

/// The elements of a ziplist, integers as their decimal text.
pub(super) fn ziplist(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let header = bytes.get(..10).ok_or("ziplist shorter than its header")?;
    let total = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if total != bytes.len() {
        return Err(format!("ziplist says {total} bytes, has {}", bytes.len()));
    }
    let take =
        |from: usize, count: usize| bytes.get(from..from + count).ok_or("ziplist entry runs past its end");
    let mut elements = Vec::new();
    let mut at = 10;
    loop {
        // The previous entry's length: one byte, or 0xfe and four.
        match *bytes.get(at).ok_or("ziplist without its end mark")? {
            0xff => {
                return if at + 1 == bytes.len() {
                    Ok(elements)
                } else {
                    Err("bytes after the ziplist end".into())
                };
            }
            0xfe => at += 5,
            _ => at += 1,
        }
        let encoding = take(at, 1)?[0];
        let (element, size) = match encoding >> 6 {
            0b00 => {
                let length = usize::from(encoding & 0x3f);
                (take(at + 1, length)?.to_vec(), 1 + length)
            }
            0b01 => {
                let length = usize::from(encoding & 0x3f) << 8 | usize::from(take(at + 1, 1)?[0]);
                (take(at + 2, length)?.to_vec(), 2 + length)
            }
            0b10 if encoding == 0x80 => {
                let raw = take(at + 1, 4)?;
                let length = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
                (take(at + 5, length)?.to_vec(), 5 + length)
            }
            0b10 => return Err(format!("unknown ziplist encoding {encoding:#04x}")),
            _ => {
                let width = match encoding {
                    0xfe => 1,
                    0xc0 => 2,
                    0xf0 => 3,
                    0xd0 => 4,
                    0xe0 => 8,
                    0xf1..=0xfd => {
                        elements.push((i64::from(encoding & 0x0f) - 1).to_string().into_bytes());
                        at += 1;
                        continue;
                    }
                    other => return Err(format!("unknown ziplist encoding {other:#04x}")),
                };
                let raw = take(at + 1, width)?;
                let value = raw.iter().rev().fold(0i64, |value, &byte| value << 8 | i64::from(byte));
                let bits = 64 - 8 * width as u32;
                (((value << bits) >> bits).to_string().into_bytes(), 1 + width)
            }
        };
        elements.push(element);
        at += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listpack of `entries`, each an encoding and its data, with right backlens.
    fn listpack_of(entries: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        for entry in entries {
            body.extend_from_slice(entry);
            assert!(entry.len() < 128, "one-byte backlens only");
            body.push(entry.len() as u8);
        }
        let total = (6 + body.len() + 1) as u32;
        [&total.to_le_bytes()[..], &(entries.len() as u16).to_le_bytes(), &body, &[0xff]].concat()
    }

    #[test]
    fn decodes_every_listpack_encoding() {
        let entries: [&[u8]; 9] = [
            b"\x05",
            b"\x83abc",
            b"\xdf\xff",
            b"\xc0\x10",
            b"\xe0\x02hi",
            b"\xf0\x01\x00\x00\x00z",
            b"\xf1\x00\x80",
            b"\xf2\xff\xff\x7f",
            b"\xf4\xff\xff\xff\xff\xff\xff\xff\xff",
        ];
        let elements = listpack(&listpack_of(&entries)).unwrap();
        let expected: [&[u8]; 9] = [b"5", b"abc", b"-1", b"16", b"hi", b"z", b"-32768", b"8388607", b"-1"];
        assert_eq!(elements, expected);
    }

    /// A ziplist of `entries`, each an encoding and its data, with one-byte prevlens.
    fn ziplist_of(entries: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut previous = 0;
        for entry in entries {
            body.push(previous);
            body.extend_from_slice(entry);
            previous = entry.len() as u8 + 1;
        }
        let total = (10 + body.len() + 1) as u32;
        [&total.to_le_bytes()[..], &[0; 4], &(entries.len() as u16).to_le_bytes(), &body, &[0xff]].concat()
    }

    #[test]
    fn decodes_every_ziplist_encoding() {
        let entries: [&[u8]; 9] = [
            b"\x03abc",
            b"\x40\x02hi",
            b"\x80\x00\x00\x00\x01z",
            b"\xfe\xff",
            b"\xc0\x00\x80",
            b"\xf0\xff\xff\x7f",
            b"\xd0\x01\x00\x00\x00",
            b"\xe0\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\xfd",
        ];
        let elements = ziplist(&ziplist_of(&entries)).unwrap();
        let expected: [&[u8]; 9] = [b"abc", b"hi", b"z", b"-1", b"-32768", b"8388607", b"1", b"-1", b"12"];
        assert_eq!(elements, expected);
        let mut wide_prevlen = ziplist_of(&[b"\x01a"]);
        wide_prevlen.splice(10..11, [0xfe, 0, 0, 0, 0]);
        wide_prevlen[0] += 4;
        assert_eq!(ziplist(&wide_prevlen).unwrap(), [b"a"]);
        for broken in
            [&b""[..], &ziplist_of(&[b"\x85ab"]), &ziplist_of(&[b"\x05ab"]), &ziplist_of(&[b"\xc5"])]
        {
            assert!(ziplist(broken).is_err(), "{broken:02x?}");
        }
    }

    #[test]
    fn refuses_broken_listpacks() {
        let good = listpack_of(&[b"\x83abc"]);
        let mut wrong_total = good.clone();
        wrong_total[0] += 1;
        let mut no_end = good.clone();
        no_end.pop();
        no_end[0] -= 1;
        let mut long_string = good.clone();
        long_string[6] = 0x8f;
        for broken in [&b""[..], &wrong_total, &no_end, &long_string, &listpack_of(&[b"\xf5"])] {
            assert!(listpack(broken).is_err(), "{broken:02x?}");
        }
    }

    fn decode_all(value_type: u8, bytes: &[u8]) -> Vec<Elements> {
        let mut input = Input::new(bytes);
        let Start::Decoding(mut decoder) = Decoder::start(&mut input, value_type).unwrap() else {
            panic!("type {value_type} is not decoded")
        };
        let mut batches = Vec::new();
        while let Some(batch) = decoder.next_batch(&mut input).unwrap() {
            batches.push(batch);
        }
        assert_eq!(input.offset(), bytes.len() as u64);
        batches
    }

    #[test]
    fn decodes_plain_values_in_batches() {
        let mut list = vec![0x41, 0x2c]; // 300 elements
        for _ in 0..300 {
            list.extend_from_slice(b"\x01x");
        }
        assert_eq!(decode_all(LIST, &list), [Elements::List(vec![b"x".to_vec(); 300])]);
        assert_eq!(
            decode_all(ZSET, b"\x02\x01a\x031.5\x01b\xff"),
            [Elements::SortedSet(vec![(b"a".to_vec(), 1.5), (b"b".to_vec(), f64::NEG_INFINITY)])]
        );
        assert_eq!(
            decode_all(HASH, b"\x01\x01f\xc0\x07"),
            [Elements::Hash(vec![(b"f".to_vec(), b"7".to_vec())])]
        );
        let mut many = vec![0x80, 0, 0, 0x0b, 0xb8]; // 3000 elements: three batches
        for _ in 0..3000 {
            many.extend_from_slice(b"\x00");
        }
        let sizes: Vec<_> = decode_all(SET, &many).iter().map(Elements::len).collect();
        assert_eq!(sizes, [1024, 1024, 952]);
    }

    #[test]
    fn decodes_uncompressed_strings_in_pieces() {
        let mut string = vec![0x80, 0x00, 0x20, 0x00, 0x00]; // 2 MiB
        string.extend((0..2 * 1024 * 1024).map(|index| index as u8));
        let pieces: Vec<Vec<u8>> = decode_all(STRING, &string)
            .into_iter()
            .map(|batch| match batch {
                Elements::String(piece) => piece,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(pieces.iter().map(Vec::len).collect::<Vec<_>>(), [1024 * 1024, 1024 * 1024]);
        assert_eq!(pieces.concat(), string[5..]);
        for compressed in [&b"\xc3\x05\x0a\x00a\xe0\x00\x00"[..], b"\xc0\x07"] {
            let mut input = Input::new(compressed);
            assert!(matches!(Decoder::start(&mut input, STRING), Ok(Start::WalkedPast)));
            assert_eq!(input.offset(), compressed.len() as u64);
        }
    }

    #[test]
    fn decodes_quicklist_nodes() {
        let packed = listpack_of(&[b"\x81a", b"\x07"]);
        let mut quicklist = vec![0x02, 0x01, 0x05];
        quicklist.extend_from_slice(b"plain");
        quicklist.extend_from_slice(&[0x02, packed.len() as u8]);
        quicklist.extend_from_slice(&packed);
        let expected = Elements::List(vec![b"plain".to_vec(), b"a".to_vec(), b"7".to_vec()]);
        assert_eq!(decode_all(LIST_QUICKLIST_2, &quicklist), [expected]);
        let node = ziplist_of(&[b"\x01a", b"\xf2"]);
        let quicklist = [&[0x01, node.len() as u8][..], &node].concat();
        let expected = Elements::List(vec![b"a".to_vec(), b"1".to_vec()]);
        assert_eq!(decode_all(LIST_QUICKLIST, &quicklist), std::slice::from_ref(&expected));
        assert_eq!(decode_all(LIST_ZIPLIST, &quicklist[1..]), [expected]);
        assert!(matches!(Decoder::start(&mut Input::new(&b""[..]), SET_LISTPACK), Ok(Start::NotDecoded)));
    }
}

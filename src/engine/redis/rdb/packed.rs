//! The compact encodings Redis stores a small value in, as one string: listpacks,
//! ziplists, intsets and zipmaps. Each decodes whole into its elements, integers as
//! their decimal text; a blob that does not hold together is an error, never a panic.
//! [`check`] holds a blob to what Redis's loader requires of it.

use std::collections::HashSet;

use super::value::value_type::*;

/// Checks a compact blob of a value of `value_type` as Redis's loader does before it takes
/// it, at its strictest (`sanitize-dump-payload yes`): the blob decodes whole (the sizes
/// its header claims, its end mark), a hash's or sorted set's entries come in pairs (in
/// threes with field TTLs), and no field or member appears twice (an intset's integers
/// are in order too). A list's elements may repeat; a stream's node may not be empty.
/// Types that are not one blob pass.
pub(super) fn check(value_type: u8, blob: &[u8]) -> Result<(), String> {
    let (what, group): (&str, usize) = match value_type {
        LIST_ZIPLIST => return ziplist_each(blob, &mut |_| {}),
        LIST_QUICKLIST_2 => return listpack_each(blob, &mut |_| {}),
        // A stream's node: Redis stops on an empty one.
        STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => {
            let mut entries = 0;
            listpack_each(blob, &mut |_| entries += 1)?;
            return if entries == 0 { Err("an empty listpack inside a stream".to_owned()) } else { Ok(()) };
        }
        SET_INTSET => return ordered(&intset(blob)?),
        HASH_ZIPMAP => {
            return distinct("hash", zipmap(blob)?.iter().map(|entry| Element::Text(entry.as_slice())), 2);
        }
        SET_LISTPACK => ("set", 1),
        HASH_ZIPLIST | HASH_LISTPACK => ("hash", 2),
        HASH_LISTPACK_EX | HASH_LISTPACK_EX_PRE_GA => ("hash", 3),
        ZSET_ZIPLIST | ZSET_LISTPACK => ("sorted set", 2),
        _ => return Ok(()),
    };
    let mut entries = Vec::new();
    match value_type {
        HASH_ZIPLIST | ZSET_ZIPLIST => ziplist_each(blob, &mut |element| entries.push(element))?,
        _ => listpack_each(blob, &mut |element| entries.push(element))?,
    }
    distinct(what, entries.into_iter(), group)
}

/// Whether `entries` come in groups of `group` (a field and its value, and its TTL),
/// each group's first (its field or member) unlike every other's.
fn distinct<'a>(
    what: &str,
    entries: impl ExactSizeIterator<Item = Element<'a>>,
    group: usize,
) -> Result<(), String> {
    let count = entries.len();
    if !count.is_multiple_of(group) {
        return Err(format!("a compact {what} of {count} entries, not in groups of {group}"));
    }
    let mut seen = HashSet::with_capacity(count / group);
    for entry in entries.step_by(group) {
        let name = entry.name();
        if seen.contains(&name) {
            let shown = String::from_utf8_lossy(&name[..name.len().min(64)]).into_owned();
            return Err(format!("a compact {what} holding '{shown}' twice"));
        }
        seen.insert(name);
    }
    Ok(())
}

/// Whether an intset's integers (as decimal text) rise strictly, as Redis keeps them.
fn ordered(members: &[Vec<u8>]) -> Result<(), String> {
    let value = |text: &[u8]| std::str::from_utf8(text).ok().and_then(|text| text.parse::<i64>().ok());
    let mut last = None;
    for member in members {
        let value = value(member);
        if last.is_some() && value <= last {
            return Err("an intset out of order or holding an integer twice".to_owned());
        }
        last = value;
    }
    Ok(())
}

/// One element of a blob, as stored: text, or an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Element<'a> {
    Text(&'a [u8]),
    Integer(i64),
}

impl<'a> Element<'a> {
    /// The element as Redis gives it: an integer as its decimal text.
    fn text(self) -> Vec<u8> {
        self.name().into_owned()
    }

    /// The element as a field or member name, compared as Redis compares them.
    fn name(self) -> std::borrow::Cow<'a, [u8]> {
        match self {
            Element::Text(text) => std::borrow::Cow::Borrowed(text),
            Element::Integer(value) => std::borrow::Cow::Owned(value.to_string().into_bytes()),
        }
    }
}

/// The elements of a listpack, integers as their decimal text.
pub(super) fn listpack(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut elements = Vec::new();
    listpack_each(bytes, &mut |element| elements.push(element.text()))?;
    Ok(elements)
}

/// Hands each element of a listpack to `each`, in order, without copying it.
fn listpack_each<'a>(bytes: &'a [u8], each: &mut dyn FnMut(Element<'a>)) -> Result<(), String> {
    let header = bytes.get(..6).ok_or("listpack shorter than its header")?;
    let total = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if total != bytes.len() {
        return Err(format!("listpack says {total} bytes, has {}", bytes.len()));
    }
    let mut at = 6;
    loop {
        let encoding = *bytes.get(at).ok_or("listpack without its end mark")?;
        if encoding == 0xff {
            return if at + 1 == bytes.len() { Ok(()) } else { Err("bytes after the listpack end".into()) };
        }
        let take = |from: usize, count: usize| {
            bytes.get(from..from + count).ok_or("listpack entry runs past its end")
        };
        let signed = |raw: &[u8], bits: u32| {
            let value = raw.iter().rev().fold(0i64, |value, &byte| value << 8 | i64::from(byte));
            value << (64 - bits) >> (64 - bits)
        };
        let (element, size) = match encoding {
            0x00..=0x7f => (Element::Integer(i64::from(encoding)), 1),
            0x80..=0xbf => {
                let length = usize::from(encoding & 0x3f);
                (Element::Text(take(at + 1, length)?), 1 + length)
            }
            0xc0..=0xdf => {
                let raw = [take(at + 1, 1)?[0], encoding & 0x1f];
                (Element::Integer(signed(&raw, 13)), 2)
            }
            0xe0..=0xef => {
                let length = usize::from(encoding & 0x0f) << 8 | usize::from(take(at + 1, 1)?[0]);
                (Element::Text(take(at + 2, length)?), 2 + length)
            }
            0xf0 => {
                let raw = take(at + 1, 4)?;
                let length = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
                (Element::Text(take(at + 5, length)?), 5 + length)
            }
            0xf1..=0xf4 => {
                let width = match encoding {
                    0xf1 => 2,
                    0xf2 => 3,
                    0xf3 => 4,
                    _ => 8,
                };
                (Element::Integer(signed(take(at + 1, width)?, 8 * width as u32)), 1 + width)
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
        each(element);
        at += size + backlen;
    }
}

/// The elements of a ziplist, integers as their decimal text.
pub(super) fn ziplist(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut elements = Vec::new();
    ziplist_each(bytes, &mut |element| elements.push(element.text()))?;
    Ok(elements)
}

/// Hands each element of a ziplist to `each`, in order, without copying it.
fn ziplist_each<'a>(bytes: &'a [u8], each: &mut dyn FnMut(Element<'a>)) -> Result<(), String> {
    let header = bytes.get(..10).ok_or("ziplist shorter than its header")?;
    let total = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if total != bytes.len() {
        return Err(format!("ziplist says {total} bytes, has {}", bytes.len()));
    }
    let take =
        |from: usize, count: usize| bytes.get(from..from + count).ok_or("ziplist entry runs past its end");
    let mut at = 10;
    loop {
        // The previous entry's length: one byte, or 0xfe and four.
        match *bytes.get(at).ok_or("ziplist without its end mark")? {
            0xff => {
                return if at + 1 == bytes.len() {
                    Ok(())
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
                (Element::Text(take(at + 1, length)?), 1 + length)
            }
            0b01 => {
                let length = usize::from(encoding & 0x3f) << 8 | usize::from(take(at + 1, 1)?[0]);
                (Element::Text(take(at + 2, length)?), 2 + length)
            }
            0b10 if encoding == 0x80 => {
                let raw = take(at + 1, 4)?;
                let length = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
                (Element::Text(take(at + 5, length)?), 5 + length)
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
                        each(Element::Integer(i64::from(encoding & 0x0f) - 1));
                        at += 1;
                        continue;
                    }
                    other => return Err(format!("unknown ziplist encoding {other:#04x}")),
                };
                let raw = take(at + 1, width)?;
                let value = raw.iter().rev().fold(0i64, |value, &byte| value << 8 | i64::from(byte));
                let bits = 64 - 8 * width as u32;
                (Element::Integer((value << bits) >> bits), 1 + width)
            }
        };
        each(element);
        at += size;
    }
}

/// The members of an intset: a width (2, 4 or 8 bytes), a count, then the integers,
/// little-endian.
pub(super) fn intset(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let header = bytes.get(..8).ok_or("intset shorter than its header")?;
    let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("intset of {width}-byte integers"));
    }
    let body = &bytes[8..];
    if body.len() != count.saturating_mul(width) {
        return Err(format!("intset says {count} integers of {width} bytes, has {} bytes", body.len()));
    }
    let members = body.chunks(width).map(|raw| {
        let value = raw.iter().rev().fold(0i64, |value, &byte| value << 8 | i64::from(byte));
        let bits = 64 - 8 * width as u32;
        ((value << bits) >> bits).to_string().into_bytes()
    });
    Ok(members.collect())
}

/// The fields and values of a zipmap (the hashes of Redis before 2.6): a count byte,
/// then each field and value behind its length (one byte, or 254 and four), the value
/// with a byte of free space to skip after it, then 255.
pub(super) fn zipmap(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut at = 1;
    let mut elements = Vec::new();
    let length = |at: &mut usize| -> Result<Option<usize>, String> {
        match *bytes.get(*at).ok_or("zipmap without its end mark")? {
            255 => Ok(None),
            254 => {
                let raw = bytes.get(*at + 1..*at + 5).ok_or("zipmap length runs past its end")?;
                *at += 5;
                Ok(Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize))
            }
            short => {
                *at += 1;
                Ok(Some(usize::from(short)))
            }
        }
    };
    while let Some(field_length) = length(&mut at)? {
        let field = bytes.get(at..at.saturating_add(field_length)).ok_or("zipmap field runs past its end")?;
        at += field_length;
        let value_length = length(&mut at)?.ok_or("zipmap field without its value")?;
        let free = usize::from(*bytes.get(at).ok_or("zipmap value runs past its end")?);
        at += 1;
        let value = bytes.get(at..at.saturating_add(value_length)).ok_or("zipmap value runs past its end")?;
        at += value_length.saturating_add(free);
        elements.push(field.to_vec());
        elements.push(value.to_vec());
    }
    if at + 1 != bytes.len() {
        return Err("bytes after the zipmap end".to_owned());
    }
    Ok(elements)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A listpack of `entries`, each an encoding and its data, with right backlens.
    pub(in super::super) fn listpack_of(entries: &[&[u8]]) -> Vec<u8> {
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
    pub(in super::super) fn ziplist_of(entries: &[&[u8]]) -> Vec<u8> {
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
    fn checks_blobs_as_redis_loads_them() {
        // Listpack and ziplist entries of short strings: the encoding byte, the text.
        let lp = |texts: &[&str]| {
            let entries: Vec<Vec<u8>> =
                texts.iter().map(|text| [&[0x80 | text.len() as u8][..], text.as_bytes()].concat()).collect();
            listpack_of(&entries.iter().map(Vec::as_slice).collect::<Vec<_>>())
        };
        let zl = |texts: &[&str]| {
            let entries: Vec<Vec<u8>> =
                texts.iter().map(|text| [&[text.len() as u8][..], text.as_bytes()].concat()).collect();
            ziplist_of(&entries.iter().map(Vec::as_slice).collect::<Vec<_>>())
        };
        let pairs = lp(&["f1", "v1", "f2", "v2"]);
        assert_eq!(check(HASH_LISTPACK, &pairs), Ok(()));
        assert_eq!(check(ZSET_LISTPACK, &pairs), Ok(()));
        let twice = lp(&["f1", "v1", "f1", "v2"]);
        assert_eq!(check(HASH_LISTPACK, &twice), Err("a compact hash holding 'f1' twice".to_owned()));
        // The same values under different fields, and a list's repeats, are fine.
        assert_eq!(check(HASH_LISTPACK, &lp(&["f1", "v", "f2", "v"])), Ok(()));
        assert_eq!(check(LIST_QUICKLIST_2, &twice), Ok(()));
        assert_eq!(check(LIST_ZIPLIST, &zl(&["a", "a"])), Ok(()));
        let odd = lp(&["f1", "v1", "f2"]);
        assert!(check(HASH_LISTPACK, &odd).unwrap_err().contains("not in groups of 2"));
        assert!(check(HASH_LISTPACK_EX, &pairs).unwrap_err().contains("not in groups of 3"));
        assert!(check(SET_LISTPACK, &twice).unwrap_err().contains("'f1' twice"));
        assert!(check(ZSET_ZIPLIST, &zl(&["m", "1", "m", "2"])).unwrap_err().contains("'m' twice"));
        assert_eq!(check(HASH_ZIPLIST, &zl(&["f", "1", "g", "1"])), Ok(()));
        let mut broken = pairs.clone();
        *broken.last_mut().unwrap() = 0;
        assert!(check(HASH_LISTPACK, &broken).is_err());
        assert!(check(LIST_QUICKLIST_2, &broken).is_err());
        // A stream's node may not be empty.
        assert_eq!(check(STREAM_LISTPACKS_3, &pairs), Ok(()));
        assert_eq!(check(STREAM_LISTPACKS, &lp(&[])), Err("an empty listpack inside a stream".to_owned()));
        // Values that are not one blob are not this check's.
        assert_eq!(check(STRING, b"anything"), Ok(()));
    }

    #[test]
    fn an_intset_must_rise() {
        let intset = |values: &[i16]| {
            let mut bytes = vec![2, 0, 0, 0, values.len() as u8, 0, 0, 0];
            values.iter().for_each(|value| bytes.extend_from_slice(&value.to_le_bytes()));
            bytes
        };
        assert_eq!(check(SET_INTSET, &intset(&[-5, 1, 300])), Ok(()));
        assert!(check(SET_INTSET, &intset(&[1, 1])).is_err());
        assert!(check(SET_INTSET, &intset(&[2, 1])).is_err());
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

    #[test]
    fn decodes_intsets_of_every_width() {
        let ints = |width: u32, values: &[i64]| {
            let mut bytes = [width.to_le_bytes(), (values.len() as u32).to_le_bytes()].concat();
            for value in values {
                bytes.extend_from_slice(&value.to_le_bytes()[..width as usize]);
            }
            bytes
        };
        assert_eq!(intset(&ints(2, &[-2, 300])).unwrap(), [b"-2".to_vec(), b"300".to_vec()]);
        assert_eq!(intset(&ints(4, &[-100_000])).unwrap(), [b"-100000".to_vec()]);
        assert_eq!(intset(&ints(8, &[9_999_999_999])).unwrap(), [b"9999999999".to_vec()]);
        let mut short = ints(2, &[1, 2]);
        short.pop();
        for broken in [&b""[..], &ints(3, &[]), &short] {
            assert!(intset(broken).is_err(), "{broken:02x?}");
        }
    }

    #[test]
    fn decodes_zipmaps() {
        let zipmap_bytes = b"\x02\x01f\x02\x01vv\x00\x03big\xfe\x01\x00\x00\x00\x00x\xff";
        let expected: [&[u8]; 4] = [b"f", b"vv", b"big", b"x"];
        assert_eq!(zipmap(zipmap_bytes).unwrap(), expected);
        for broken in [&b"\x01\x01f"[..], b"\x01\x01f\x01\x00v", b"\x01\xff\x00", b""] {
            assert!(zipmap(broken).is_err(), "{broken:02x?}");
        }
    }
}

//! Tests of the element decoder.

use super::super::packed::tests::{listpack_of, ziplist_of};
use super::super::stream::StreamId;
use super::*;

const REDIS: Format = Format { version: 12, valkey: false };
const VALKEY: Format = Format { version: 80, valkey: true };

fn decode_in(format: Format, value_type: u8, bytes: &[u8]) -> Vec<Elements> {
    let mut input = Input::new(bytes);
    let mut decoder = Decoder::start(&mut input, format, value_type).unwrap();
    let mut batches = Vec::new();
    while let Some(batch) = decoder.next_batch(&mut input).unwrap() {
        batches.push(batch);
    }
    assert_eq!(input.offset(), bytes.len() as u64, "type {value_type} did not end at the end");
    batches
}

fn decode_all(value_type: u8, bytes: &[u8]) -> Vec<Elements> {
    decode_in(REDIS, value_type, bytes)
}

/// `bytes` as an RDB string (6-bit or 32-bit length).
fn string(bytes: &[u8]) -> Vec<u8> {
    let mut encoded = if bytes.len() < 64 {
        vec![bytes.len() as u8]
    } else {
        [&[0x80][..], &(bytes.len() as u32).to_be_bytes()].concat()
    };
    encoded.extend_from_slice(bytes);
    encoded
}

fn strings(values: &[&[u8]]) -> Vec<Vec<u8>> {
    values.iter().map(|value| value.to_vec()).collect()
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
    let sizes: Vec<_> = decode_all(SET, &many)
        .iter()
        .map(|batch| match batch {
            Elements::Set(members) => members.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [1024, 1024, 952]);
}

fn pieces(batches: Vec<Elements>) -> Vec<Vec<u8>> {
    batches
        .into_iter()
        .map(|batch| match batch {
            Elements::String(piece) => piece,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn decodes_strings_in_pieces_whatever_their_encoding() {
    let mut string = vec![0x80, 0x00, 0x20, 0x00, 0x00]; // 2 MiB
    string.extend((0..2 * 1024 * 1024).map(|index| index as u8));
    let pieces = pieces(decode_all(STRING, &string));
    assert_eq!(pieces.iter().map(Vec::len).collect::<Vec<_>>(), [1024 * 1024, 1024 * 1024]);
    assert_eq!(pieces.concat(), string[5..]);
    assert_eq!(self::pieces(decode_all(STRING, b"\x00")), [b"".to_vec()], "an empty string is one piece");
    assert_eq!(self::pieces(decode_all(STRING, b"\xc0\x07")), [b"7".to_vec()]);
    assert_eq!(self::pieces(decode_all(STRING, b"\xc2\x00\x00\x00\x80")), [b"-2147483648".to_vec()]);
    assert_eq!(self::pieces(decode_all(STRING, b"\xc3\x05\x0a\x00a\xe0\x00\x00")), [b"a".repeat(10)]);
    assert_eq!(self::pieces(decode_all(STRING, b"\xc3\x00\x00")), [b"".to_vec()]);
}

#[test]
fn decodes_a_big_compressed_string_in_bounded_pieces() {
    // 3 MiB of one byte: a literal, then references of 264 bytes at distance 1.
    let length = 3 * 1024 * 1024;
    let mut compressed = vec![0x00, b'z'];
    let mut left = length - 1;
    while left > 0 {
        let run = left.min(264);
        if run < 9 {
            compressed.extend_from_slice(&[((run - 2) << 5) as u8, 0x00]);
        } else {
            compressed.extend_from_slice(&[0xe0, (run - 9) as u8, 0x00]);
        }
        left -= run;
    }
    let length_of = |value: usize| [&[0x80][..], &(value as u32).to_be_bytes()].concat();
    let value = [&[0xc3][..], &length_of(compressed.len()), &length_of(length), &compressed].concat();
    let batches = decode_all(STRING, &value);
    assert_eq!(batches.len(), 3, "batches of 1 MiB");
    assert!(batches.iter().all(|batch| batch.size() <= BATCH_BYTES + PIECE + 264));
    assert!(pieces(batches).concat() == vec![b'z'; length]);
    // A stream that gives less or more than it announced is refused.
    for announced in [length - 1, length + 1] {
        let value = [&[0xc3][..], &length_of(compressed.len()), &length_of(announced), &compressed].concat();
        let mut input = Input::new(&value[..]);
        let mut decoder = Decoder::start(&mut input, REDIS, STRING).unwrap();
        let error = loop {
            match decoder.next_batch(&mut input) {
                Ok(Some(_)) => {}
                Ok(None) => panic!("announced {announced}: no error"),
                Err(error) => break error,
            }
        };
        assert!(matches!(error, Error::Corrupt(_)), "{error}");
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
}

#[test]
fn decodes_the_compact_encodings() {
    let intset =
        [&2u32.to_le_bytes()[..], &2u32.to_le_bytes(), &(-5i16).to_le_bytes(), &7i16.to_le_bytes()].concat();
    assert_eq!(decode_all(SET_INTSET, &string(&intset)), [Elements::Set(strings(&[b"-5", b"7"]))]);
    let members = listpack_of(&[b"\x81a", b"\x05"]);
    assert_eq!(decode_all(SET_LISTPACK, &string(&members)), [Elements::Set(strings(&[b"a", b"5"]))]);
    let scored = [(b"a".to_vec(), 1.5), (b"b".to_vec(), 2.0), (b"c".to_vec(), f64::NEG_INFINITY)];
    let zset = listpack_of(&[b"\x81a", b"\x831.5", b"\x81b", b"\x02", b"\x81c", b"\x84-inf"]);
    assert_eq!(decode_all(ZSET_LISTPACK, &string(&zset)), [Elements::SortedSet(scored.to_vec())]);
    let zset = ziplist_of(&[b"\x01a", b"\x031.5", b"\x01b", b"\xf3", b"\x01c", b"\x04-inf"]);
    assert_eq!(decode_all(ZSET_ZIPLIST, &string(&zset)), [Elements::SortedSet(scored.to_vec())]);
    let pairs = vec![(b"f".to_vec(), b"v".to_vec()), (b"n".to_vec(), b"1".to_vec())];
    let hash = listpack_of(&[b"\x81f", b"\x81v", b"\x81n", b"\x01"]);
    assert_eq!(decode_all(HASH_LISTPACK, &string(&hash)), [Elements::Hash(pairs.clone())]);
    let hash = ziplist_of(&[b"\x01f", b"\x01v", b"\x01n", b"\xf2"]);
    assert_eq!(decode_all(HASH_ZIPLIST, &string(&hash)), [Elements::Hash(pairs.clone())]);
    let zipmap = b"\x02\x01f\x01\x00v\x01n\x01\x021xx\xff";
    assert_eq!(decode_all(HASH_ZIPMAP, &string(zipmap)), [Elements::Hash(pairs)]);
    // Odd element counts and scores that are not numbers are refused.
    for (value_type, blob) in [
        (HASH_LISTPACK, listpack_of(&[b"\x81f"])),
        (ZSET_LISTPACK, listpack_of(&[b"\x81a", b"\x81x"])),
        (SET_INTSET, vec![3, 0, 0, 0, 0, 0, 0, 0]),
    ] {
        let error = Decoder::start(&mut Input::new(&string(&blob)[..]), REDIS, value_type).unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "type {value_type}: {error}");
    }
}

#[test]
fn decodes_hash_fields_with_their_expirations() {
    let at = 1_900_000_000_000i64;
    let expected = Elements::HashWithExpiry(vec![
        (b"lasting".to_vec(), b"1".to_vec(), None),
        (b"fleeting".to_vec(), b"2".to_vec(), Some(at)),
    ]);
    let ttl = [&[0x8d][..], at.to_string().as_bytes()].concat(); // a 13-byte string entry
    let triples = listpack_of(&[b"\x87lasting", b"\x01", b"\x00", b"\x88fleeting", b"\x02", &ttl]);
    let with_minimum = [&at.to_le_bytes()[..], &string(&triples)].concat();
    assert_eq!(decode_all(HASH_LISTPACK_EX, &with_minimum), std::slice::from_ref(&expected));
    assert_eq!(decode_all(HASH_LISTPACK_EX_PRE_GA, &string(&triples)), std::slice::from_ref(&expected));
    // Redis 7.4's hash table: each TTL as its distance from the minimum, plus one.
    let metadata = [&at.to_le_bytes()[..], b"\x02\x00\x07lasting\x011\x01\x08fleeting\x012"].concat();
    assert_eq!(decode_all(HASH_METADATA, &metadata), std::slice::from_ref(&expected));
    let mut pre_ga = b"\x02\x00\x07lasting\x011\x81".to_vec();
    pre_ga.extend_from_slice(&(at as u64).to_be_bytes());
    pre_ga.extend_from_slice(b"\x08fleeting\x012");
    assert_eq!(decode_all(HASH_METADATA_PRE_GA, &pre_ga), std::slice::from_ref(&expected));
    // Valkey 9: field, value, then the expiration in 8 bytes, -1 for none.
    let mut valkey = b"\x02\x07lasting\x011".to_vec();
    valkey.extend_from_slice(&(-1i64).to_le_bytes());
    valkey.extend_from_slice(b"\x08fleeting\x012");
    valkey.extend_from_slice(&at.to_le_bytes());
    assert_eq!(decode_in(VALKEY, VALKEY_HASH_2, &valkey), std::slice::from_ref(&expected));

    let Elements::HashWithExpiry(fields) = expected.clone() else { unreachable!() };
    let commands = Elements::HashWithExpiry(fields).into_commands(b"k", Dialect::NEWEST);
    let shown: Vec<String> =
        commands.iter().map(|command| String::from_utf8_lossy(&command.join(&b' ')).into_owned()).collect();
    assert_eq!(shown, ["HSET k lasting 1 fleeting 2", &format!("HPEXPIREAT k {at} FIELDS 1 fleeting")]);
}

#[test]
fn commands_follow_the_dialect() {
    let shown = |elements: Elements, dialect| -> Vec<String> {
        elements
            .into_commands(b"k", dialect)
            .iter()
            .map(|command| String::from_utf8_lossy(&command.join(&b' ')).into_owned())
            .collect()
    };
    let old = Dialect { stream_counters: false, create_consumer: false };
    let id = |ms, seq| StreamId { ms, seq };
    let state =
        StreamState { length: 0, last_id: id(5, 1), max_deleted_id: Some(id(5, 1)), entries_added: Some(3) };
    assert_eq!(
        shown(Elements::StreamState(state.clone()), Dialect::NEWEST),
        ["XADD k MAXLEN 0 0-1 x y", "XSETID k 5-1 ENTRIESADDED 3 MAXDELETEDID 5-1"]
    );
    assert_eq!(shown(Elements::StreamState(StreamState { length: 2, ..state }), old), ["XSETID k 5-1"]);
    let group = StreamGroup { name: b"g".to_vec(), last_delivered: id(5, 0), entries_read: Some(2) };
    assert_eq!(
        shown(Elements::StreamGroup(group.clone()), Dialect::NEWEST),
        ["XGROUP CREATE k g 5-0 ENTRIESREAD 2"]
    );
    assert_eq!(shown(Elements::StreamGroup(group), old), ["XGROUP CREATE k g 5-0"]);
    let consumer = || Elements::StreamConsumer { group: b"g".to_vec(), name: b"c".to_vec() };
    assert_eq!(shown(consumer(), Dialect::NEWEST), ["XGROUP CREATECONSUMER k g c"]);
    assert!(shown(consumer(), old).is_empty());
    let pending = vec![PendingEntry { id: id(4, 2), delivery_time_ms: 1000, delivery_count: 3 }];
    assert_eq!(
        shown(Elements::StreamClaims { group: b"g".to_vec(), consumer: b"c".to_vec(), pending }, old),
        ["XCLAIM k g c 0 4-2 TIME 1000 RETRYCOUNT 3 FORCE JUSTID"]
    );
    let scored = Elements::SortedSet(vec![(b"a".to_vec(), 0.1), (b"b".to_vec(), f64::INFINITY)]);
    assert_eq!(shown(scored, old), ["ZADD k 0.1 a inf b"]);
}

//! Tests of the RDB reader.

use std::time::{Duration, Instant};

use super::*;

/// A file of `header` and `body`, ended with EOF and the right checksum.
fn file(header: &[u8], body: &[u8]) -> Vec<u8> {
    let mut file = [header, body, &[opcode::EOF]].concat();
    let checksum = CRC64.checksum(&file);
    file.extend_from_slice(&checksum.to_le_bytes());
    file
}

/// Every item of `rdb`, or the first error.
fn items(rdb: &[u8], max_payload: usize) -> Result<Vec<Item>, Error> {
    let mut reader = RdbReader::new(rdb)?.with_max_payload(max_payload);
    let mut items = Vec::new();
    while let Some(item) = reader.next()? {
        items.push(item);
    }
    Ok(items)
}

fn header(key: &[u8], value_type: u8) -> KeyHeader {
    KeyHeader {
        db: 0,
        key: key.to_vec(),
        expire_at_ms: None,
        idle_seconds: None,
        frequency: None,
        value_type,
        module: None,
    }
}

#[test]
fn reads_the_header_versions_it_knows() {
    for header in [&b"REDIS0009"[..], b"REDIS0010", b"REDIS0011", b"REDIS0012", b"VALKEY080"] {
        assert_eq!(items(&file(header, b""), DEFAULT_MAX_PAYLOAD).unwrap(), [Item::End], "{header:?}");
    }
    for (header, version) in [(&b"REDIS0008"[..], 8), (b"REDIS0013", 13), (b"VALKEY081", 81)] {
        let error = items(&file(header, b""), DEFAULT_MAX_PAYLOAD).unwrap_err();
        assert!(
            matches!(error, Error::UnsupportedVersion { version: found, .. } if found == version),
            "{error}"
        );
    }
    for header in [&b"REDIS001x"[..], b"REDIS-010", b"MEMCACHED", b"\0\0\0\0\0\0\0\0\0"] {
        let error = items(&file(header, b""), DEFAULT_MAX_PAYLOAD).unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{header:?}: {error}");
    }
    assert!(matches!(RdbReader::new(&b"REDIS"[..]), Err(Error::Truncated { offset: 5 })));
}

#[test]
fn builds_payloads_with_version_and_checksum() {
    // A key with an expiration in seconds, an idle time and a frequency, in db 3.
    let body = b"\xfe\x03\xfb\x01\x01\xfd\x10\x00\x00\x00\xf8\x05\xf9\x07\x00\x01k\x02hi";
    let items = items(&file(b"REDIS0011", body), DEFAULT_MAX_PAYLOAD).unwrap();
    let header = KeyHeader {
        db: 3,
        expire_at_ms: Some(16_000),
        idle_seconds: Some(5),
        frequency: Some(7),
        ..header(b"k", value_type::STRING)
    };
    // The type byte, the value, RDB version 11, and the checksum of all that.
    let mut payload = b"\x00\x02hi\x0b\x00".to_vec();
    payload.extend_from_slice(&CRC64.checksum(&payload).to_le_bytes());
    assert_eq!(
        items,
        [
            Item::SelectDb(3),
            Item::ResizeDb { keys: 1, expires: 1 },
            Item::Key { header, payload: DumpPayload(payload) },
            Item::End
        ]
    );
}

#[test]
fn plain_strings_come_out_as_values_when_asked() {
    // "a": "hi"; "n": the integer 300; "t": "hi" expiring; "long": 10 bytes; an intset.
    let body = b"\x00\x01a\x02hi\x00\x01n\xc1\x2c\x01\xfc\x10\x27\x00\x00\x00\x00\x00\x00\x00\x01t\x02hi\
        \x00\x04long\x0a0123456789\x0b\x01s\x0a\x02\x00\x00\x00\x01\x00\x00\x00\x05\x00";
    let rdb = file(b"REDIS0011", body);
    let mut reader = RdbReader::new(&rdb[..]).unwrap().with_plain_strings(8);
    let mut seen = Vec::new();
    while let Some(item) = reader.next().unwrap() {
        seen.push(match item {
            Item::PlainString { header, value } => (header.key, Some(value)),
            Item::Key { header, .. } => (header.key, None),
            _ => continue,
        });
    }
    let expected: [(&[u8], Option<&[u8]>); 5] = [
        (b"a", Some(b"hi")),
        (b"n", Some(b"300")),
        (b"t", None),    // an expiry goes with the payload
        (b"long", None), // over the limit
        (b"s", None),    // not a string
    ];
    let expected: Vec<_> =
        expected.iter().map(|(key, value)| (key.to_vec(), value.map(<[u8]>::to_vec))).collect();
    assert_eq!(seen, expected);
    // Without being asked, every key is a payload.
    let keys = items(&rdb, DEFAULT_MAX_PAYLOAD).unwrap();
    assert_eq!(keys.iter().filter(|item| matches!(item, Item::Key { .. })).count(), 5);
}

#[test]
fn reads_aux_fields_slot_info_and_module_aux() {
    let module_id = value::tests_support::MODULE_ID;
    let mut body = b"\xfa\x09redis-ver\x057.4.0\xfa\x05ctime\xc2\x00\x00\x00\x40\xf4\x05\x02\x01".to_vec();
    body.push(opcode::MODULE_AUX);
    body.extend_from_slice(&[0x81]);
    body.extend_from_slice(&module_id.to_be_bytes());
    // when, then a uint, a float, a double, a string, EOF
    body.extend_from_slice(b"\x02\x02\x02\x09\x03abcd\x0412345678\x05\x02hi\x00");
    let items = items(&file(b"REDIS0012", &body), DEFAULT_MAX_PAYLOAD).unwrap();
    assert_eq!(
        items,
        [
            Item::Aux { key: b"redis-ver".to_vec(), value: b"7.4.0".to_vec() },
            Item::Aux { key: b"ctime".to_vec(), value: b"1073741824".to_vec() },
            Item::SlotInfo { slot: 5, keys: 2, expires: 1 },
            Item::ModuleAux { module: "MyModType".to_owned() },
            Item::End
        ]
    );
}

#[test]
fn module_values_come_out_as_payloads_naming_the_module() {
    // The module type id, a string field, an unsigned field, the end opcode.
    let mut value = b"\x81".to_vec();
    value.extend_from_slice(&value::tests_support::MODULE_ID.to_be_bytes());
    value.extend_from_slice(b"\x05\x03abc\x02\x2a\x00");
    let body = [&b"\x07\x01k"[..], &value].concat();
    let rdb = file(b"REDIS0010", &body);
    let module_header =
        KeyHeader { module: Some("MyModType".to_owned()), ..header(b"k", value_type::MODULE_2) };
    let payload = DumpPayload::seal([&[value_type::MODULE_2][..], &value].concat(), 10);
    assert_eq!(
        items(&rdb, DEFAULT_MAX_PAYLOAD).unwrap()[0],
        Item::Key { header: module_header.clone(), payload }
    );
    // Never decoded into elements, and refused when over the payload limit.
    assert!(matches!(&items(&rdb, 0).unwrap()[0], Item::Key { header, .. } if *header == module_header));
    let error = items(&rdb, 16).unwrap_err();
    assert!(
        matches!(&error, Error::ModuleValueTooBig { module, key, .. } if module == "MyModType" && key == "k"),
        "{error}"
    );
    // Walked, a small one still comes out as a payload (a target can be asked whether
    // it loads it).
    let mut reader = RdbReader::new(rdb.as_slice()).unwrap().walk_only();
    assert!(matches!(reader.next().unwrap().unwrap(), Item::Key { .. }));
}

#[test]
fn refuses_module_values_of_the_pre_release_encoding_naming_the_module() {
    let mut body = b"\x06\x01k\x81".to_vec();
    body.extend_from_slice(&value::tests_support::MODULE_ID.to_be_bytes());
    let error = items(&file(b"REDIS0010", &body), DEFAULT_MAX_PAYLOAD).unwrap_err();
    assert!(matches!(&error, Error::ModuleNotSupported { module } if module == "MyModType"), "{error}");
}

#[test]
fn refuses_unknown_types_and_old_functions() {
    for body in [&b"\x08\x01k\x00"[..], b"\x1a\x01k\x00", b"\x18\x01k\x00", b"\xf6\x00", b"\xf3\x00"] {
        let error = items(&file(b"REDIS0011", body), DEFAULT_MAX_PAYLOAD).unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{body:02x?}: {error}");
    }
}

#[test]
fn a_bad_checksum_fails_and_a_zero_one_is_not_checked() {
    let mut rdb = file(b"REDIS0010", b"\x00\x01k\x01v");
    let length = rdb.len();
    rdb[length - 1] ^= 1;
    assert!(matches!(items(&rdb, DEFAULT_MAX_PAYLOAD), Err(Error::Checksum { .. })));
    rdb[length - 8..].fill(0);
    assert_eq!(items(&rdb, DEFAULT_MAX_PAYLOAD).unwrap().len(), 2);
}

#[test]
fn a_value_over_the_limit_is_decoded_and_reading_goes_on() {
    let body = b"\x00\x03lzf\xc3\x0d\x14\x08abcdefghi\xe0\x02\x08\x00\x03big\x0a0123456789\
        \x01\x04list\x02\x05first\x06second\x00\x05small\x02ok";
    let items = items(&file(b"REDIS0010", body), 11).unwrap();
    let list = vec![b"first".to_vec(), b"second".to_vec()];
    assert_eq!(
        items[..10],
        [
            Item::BigKey { header: header(b"lzf", value_type::STRING) },
            Item::Elements(Elements::String(b"abcdefghiabcdefghiab".to_vec())),
            Item::BigKeyEnd,
            Item::BigKey { header: header(b"big", value_type::STRING) },
            Item::Elements(Elements::String(b"0123456789".to_vec())),
            Item::BigKeyEnd,
            Item::BigKey { header: header(b"list", value_type::LIST) },
            Item::Elements(Elements::List(list)),
            Item::BigKeyEnd,
            Item::Key {
                header: header(b"small", value_type::STRING),
                payload: DumpPayload::seal(b"\x00\x02ok".to_vec(), 10)
            },
        ]
    );
    assert_eq!(items[10..], [Item::End]);
    // A limit of 0 decodes every value, and so does a limit below the type byte.
    for limit in [0, 1] {
        let items = self::items(&file(b"REDIS0010", body), limit).unwrap();
        let small = [
            Item::BigKey { header: header(b"small", value_type::STRING) },
            Item::Elements(Elements::String(b"ok".to_vec())),
            Item::BigKeyEnd,
        ];
        assert_eq!(items[items.len() - 4..items.len() - 1], small);
        assert!(!items.iter().any(|item| matches!(item, Item::Key { .. })));
    }
}

#[test]
fn hostile_lengths_fail_fast_without_allocating() {
    let started = Instant::now();
    // A string value claiming 2^40 bytes, a key name claiming 2^40 and one claiming
    // 100 MiB, each followed by a few bytes only.
    let huge_value = b"REDIS0010\x00\x01k\x81\x00\x00\x01\x00\x00\x00\x00\x00abc";
    let huge_key = b"REDIS0010\x00\x81\x00\x00\x01\x00\x00\x00\x00\x00abc";
    let large_key = b"REDIS0010\x00\x80\x06\x40\x00\x00abc";
    let huge_list = b"REDIS0010\x01\x01k\x81\x00\x00\x01\x00\x00\x00\x00\x00\x01a";
    assert!(matches!(items(huge_value, usize::MAX), Err(Error::Truncated { offset: 24 })));
    assert!(matches!(items(huge_key, DEFAULT_MAX_PAYLOAD), Err(Error::Corrupt(_))));
    assert!(matches!(items(large_key, DEFAULT_MAX_PAYLOAD), Err(Error::Truncated { offset: 18 })));
    assert!(matches!(items(huge_list, DEFAULT_MAX_PAYLOAD), Err(Error::Truncated { offset: 23 })));
    // A key name claiming to decompress to 500 MiB from three bytes.
    let lzf_bomb = b"REDIS0010\x00\xc3\x03\x80\x1f\x40\x00\x00\x00\x00a\xe0";
    assert!(matches!(items(lzf_bomb, DEFAULT_MAX_PAYLOAD), Err(Error::Corrupt(_))));
    // Decoded: a compressed string claiming 500 MiB, a stream claiming 2^40 nodes, a
    // group claiming 2^40 pending entries, an intset claiming 2^40 bytes.
    let decoded: [&[u8]; 4] = [
        b"REDIS0010\x00\x01k\xc3\x81\x00\x00\x01\x00\x00\x00\x00\x00\x80\x1f\x40\x00\x00\x00\x00a",
        b"REDIS0010\x0f\x01k\x81\x00\x00\x01\x00\x00\x00\x00\x00",
        b"REDIS0010\x0f\x01k\x00\x00\x00\x00\x01\x01g\x00\x00\x81\x00\x00\x01\x00\x00\x00\x00\x00",
        b"REDIS0010\x0b\x01k\x81\x00\x00\x01\x00\x00\x00\x00\x00\x02\x00",
    ];
    for rdb in decoded {
        assert!(matches!(items(rdb, 0), Err(Error::Truncated { .. } | Error::Corrupt(_))), "{rdb:02x?}");
    }
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}

#[test]
fn an_error_is_final() {
    let mut reader = RdbReader::new(&b"REDIS0010\x00\x01k"[..]).unwrap();
    assert!(matches!(reader.next(), Err(Error::Truncated { .. })));
    assert!(matches!(reader.next(), Err(Error::Failed)));
}

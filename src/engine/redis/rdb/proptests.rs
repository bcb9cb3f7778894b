//! Property tests of the reader against hostile input: whatever the bytes, reading ends
//! (in an item stream or an error) without a panic, with progress on every step, and
//! every byte change of a real file is caught; in each mode: payloads, big keys decoded,
//! and every key decoded (which runs every decoder: compact blobs, field expirations,
//! LZF streams, streams with their groups).

use proptest::prelude::*;

use super::{Error, RdbReader};

const REDIS_6_2_RDB: &[u8] = include_bytes!("fixtures/redis-6.2.rdb");

// Reads to the end or the first error; every step must consume input or end.
fn read_through(rdb: &[u8], max_payload: usize) -> Result<usize, Error> {
    let mut reader = RdbReader::new(rdb)?.with_max_payload(max_payload);
    let mut items = 0;
    let mut last_offset = reader.offset();
    while reader.next()?.is_some() {
        items += 1;
        let offset = reader.offset();
        // Element batches of one big key may come from bytes read ahead; a step never
        // goes backwards, and the number of items is bounded by the input.
        assert!(offset >= last_offset, "the offset went back from {last_offset} to {offset}");
        assert!(items <= 4 * rdb.len() + 16, "more items than the input can hold");
        last_offset = offset;
    }
    Ok(items)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        for header in [&b"REDIS0011"[..], b"REDIS0009", b"VALKEY080"] {
            let mut rdb = header.to_vec();
            rdb.extend_from_slice(&body);
            let _ = read_through(&rdb, 0);
            let _ = read_through(&rdb, 64);
            let _ = read_through(&rdb, super::DEFAULT_MAX_PAYLOAD);
        }
    }

    #[test]
    fn every_change_to_a_real_file_is_an_error(
        changes in proptest::collection::vec((0..REDIS_6_2_RDB.len(), 1..=255u8), 1..4),
        max_payload in prop_oneof![Just(0usize), Just(64), Just(super::DEFAULT_MAX_PAYLOAD)],
    ) {
        let mut rdb = REDIS_6_2_RDB.to_vec();
        for (index, flip) in changes {
            rdb[index] ^= flip;
        }
        // A changed byte breaks the structure or, at the latest, the CRC64 at the end.
        prop_assert!(read_through(&rdb, max_payload).is_err());
    }

    #[test]
    fn every_cut_of_a_real_file_is_an_error(length in 0..REDIS_6_2_RDB.len()) {
        prop_assert!(read_through(&REDIS_6_2_RDB[..length], super::DEFAULT_MAX_PAYLOAD).is_err());
        prop_assert!(read_through(&REDIS_6_2_RDB[..length], 0).is_err());
    }

    /// A key of every value type, decoded, whose value is arbitrary bytes or a blob
    /// (string) of arbitrary bytes, some starting like a listpack or intset.
    #[test]
    fn arbitrary_values_of_every_type_decode_or_fail(
        value_type in 0..=25u8,
        blob_head in prop_oneof![Just(None), Just(Some(0u8)), Just(Some(2u8))],
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        for header in [&b"REDIS0012"[..], b"VALKEY080"] {
            let mut rdb = header.to_vec();
            rdb.extend_from_slice(&[value_type, 0x01, b'k']);
            if let Some(head) = blob_head {
                // A string of the body's length, whose first bytes claim that total.
                let total = (body.len() as u32 + 6).to_le_bytes();
                rdb.extend_from_slice(&[0x80]);
                rdb.extend_from_slice(&(body.len() as u32 + 6).to_be_bytes());
                rdb.extend_from_slice(&total);
                rdb.extend_from_slice(&[head, 0]);
            }
            rdb.extend_from_slice(&body);
            let _ = read_through(&rdb, 0);
        }
    }
}

#[test]
fn the_real_file_reads_whole() {
    assert!(read_through(REDIS_6_2_RDB, super::DEFAULT_MAX_PAYLOAD).unwrap() > 0);
    assert!(read_through(REDIS_6_2_RDB, 64).unwrap() > 0);
    assert!(read_through(REDIS_6_2_RDB, 0).unwrap() > 0);
}

//! The boundaries of each value type: walks a value's encoding without building it, so
//! the bytes pass through the input's capture into the DUMP payload.

use std::io::Read;

use super::input::{ENCODED_LZF, Input, Length};
use super::{Error, lzf, packed};

/// RDB value types (`RDB_TYPE_*` in Redis's `rdb.h`).
pub mod value_type {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    /// Scores as binary doubles.
    pub const ZSET_2: u8 = 5;
    /// Module values of the 4.0 release candidates.
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// Hashes with field expiration (Redis 7.4, RDB 12); the `PRE_GA` forms come from
    /// its release candidates and lack the leading minimum expiration time.
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    pub const HASH_METADATA: u8 = 24;
    pub const HASH_LISTPACK_EX: u8 = 25;
    /// Valkey 9's hash with field expiration (RDB 80), where Redis has
    /// [`HASH_METADATA_PRE_GA`].
    pub const VALKEY_HASH_2: u8 = 22;
}

use value_type::*;

/// The first RDB version that may hold hashes with field expiration. Valkey 9 gives
/// type 22 another meaning (`RDB_TYPE_HASH_2`), so those types are Redis-only.
const FIELD_EXPIRATION_VERSION: u16 = 12;

/// What the file's header says about the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Format {
    pub(super) version: u16,
    pub(super) valkey: bool,
}

impl Format {
    /// Whether `value_type` may appear in this format.
    pub(super) fn knows(self, value_type: u8) -> bool {
        match value_type {
            STRING..=ZSET_2 | MODULE_2 | HASH_ZIPMAP..=STREAM_LISTPACKS_3 => true,
            VALKEY_HASH_2 if self.valkey => true,
            HASH_METADATA_PRE_GA..=HASH_LISTPACK_EX => {
                !self.valkey && self.version >= FIELD_EXPIRATION_VERSION
            }
            _ => false,
        }
    }
}

/// Walks one value of `value_type` (known to the format; modules are refused earlier).
/// With `blobs`, the compact blobs of at most that many bytes are read and checked as
/// Redis's loader checks them (see [`checked_blob`]).
pub(super) fn walk<R: Read>(
    input: &mut Input<R>,
    format: Format,
    value_type: u8,
    blobs: Option<usize>,
) -> Result<(), Error> {
    match value_type {
        VALKEY_HASH_2 if format.valkey => {
            for _ in 0..input.length()? {
                input.skip_string()?; // field
                input.skip_string()?; // value
                input.skip(8)?; // expiration in ms, or -1
            }
            Ok(())
        }
        STRING => input.skip_string(),
        // One blob: ziplist, listpack, intset or zipmap.
        HASH_ZIPMAP
        | LIST_ZIPLIST
        | SET_INTSET
        | ZSET_ZIPLIST
        | HASH_ZIPLIST
        | HASH_LISTPACK
        | ZSET_LISTPACK
        | SET_LISTPACK
        | HASH_LISTPACK_EX_PRE_GA => blob(input, value_type, blobs),
        LIST | SET => strings(input, 1),
        // Nodes, each a ziplist.
        LIST_QUICKLIST => {
            for _ in 0..input.length()? {
                blob(input, LIST_ZIPLIST, blobs)?;
            }
            Ok(())
        }
        HASH => strings(input, 2),
        ZSET => {
            for _ in 0..input.length()? {
                input.skip_string()?;
                text_double(input)?;
            }
            Ok(())
        }
        ZSET_2 => {
            for _ in 0..input.length()? {
                input.skip_string()?;
                input.skip(8)?;
            }
            Ok(())
        }
        LIST_QUICKLIST_2 => {
            for _ in 0..input.length()? {
                match input.length()? {
                    1 => input.skip_string()?, // a plain node: one element
                    2 => blob(input, LIST_QUICKLIST_2, blobs)?,
                    container => {
                        return Err(input.corrupt(format!("unknown quicklist container {container}")));
                    }
                }
            }
            Ok(())
        }
        HASH_LISTPACK_EX => {
            input.skip(8)?; // the earliest field expiration, in ms
            blob(input, value_type, blobs)
        }
        HASH_METADATA | HASH_METADATA_PRE_GA => {
            if value_type == HASH_METADATA {
                input.skip(8)?; // the earliest field expiration, in ms
            }
            for _ in 0..input.length()? {
                input.length()?; // the field's expiration
                input.skip_string()?;
                input.skip_string()?;
            }
            Ok(())
        }
        STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => stream(input, value_type, blobs),
        other => Err(input.corrupt(format!("no walker for value type {other}"))),
    }
}

/// Walks past a compact blob of a value of `value_type`, or, with `blobs`, checks it
/// ([`checked_blob`]).
fn blob<R: Read>(input: &mut Input<R>, value_type: u8, blobs: Option<usize>) -> Result<(), Error> {
    match blobs {
        Some(limit) => checked_blob(input, value_type, limit),
        None => input.skip_string(),
    }
}

/// Reads a compact blob of a value of `value_type` whole, when it is at most `limit`
/// bytes (a bigger one is walked past: it is decoded later, as a big key), and checks it
/// as Redis's loader does before it takes it: a replica that finds a blob broken stops
/// its whole server, and a `RESTORE` refused after the flush leaves a target half loaded.
fn checked_blob<R: Read>(input: &mut Input<R>, value_type: u8, limit: usize) -> Result<(), Error> {
    let blob = match input.length_or_encoding()? {
        Length::Plain(length) if length > limit as u64 => return input.skip(length),
        Length::Plain(length) => input.bytes(length, limit, "compact value")?,
        Length::Encoded(ENCODED_LZF) => {
            let compressed = input.length()?;
            let uncompressed = input.length()?;
            if uncompressed > limit as u64 {
                return input.skip(compressed);
            }
            let packed = input.bytes(compressed, limit, "compact value")?;
            lzf::decompress(&packed, uncompressed as usize).map_err(|problem| input.corrupt(problem))?
        }
        Length::Encoded(kind) => {
            return Err(
                input.corrupt(format!("a compact value (type {value_type}) stored as integer {kind}"))
            );
        }
    };
    packed::check(value_type, &blob).map_err(|problem| input.corrupt(problem))
}

/// `length` groups of `per_element` strings.
fn strings<R: Read>(input: &mut Input<R>, per_element: u64) -> Result<(), Error> {
    let length = input.length()?;
    for _ in 0..length {
        for _ in 0..per_element {
            input.skip_string()?;
        }
    }
    Ok(())
}

/// A score of the oldest sorted sets: a length byte and that much text, or 253 to 255
/// for NaN and the infinities.
fn text_double<R: Read>(input: &mut Input<R>) -> Result<(), Error> {
    match input.byte()? {
        253..=255 => Ok(()),
        length => input.skip(u64::from(length)),
    }
}

/// A stream: listpacks keyed by their master id, counters and ids, then the consumer
/// groups with their pending entries and consumers. Version 2 adds the first id, the
/// maximal deleted id, the entries added and each group's entries read; version 3 adds
/// each consumer's active time.
fn stream<R: Read>(input: &mut Input<R>, value_type: u8, blobs: Option<usize>) -> Result<(), Error> {
    let since_2 = value_type >= STREAM_LISTPACKS_2;
    let since_3 = value_type >= STREAM_LISTPACKS_3;
    let nodes = input.length()?;
    for _ in 0..nodes {
        match blobs {
            None => input.skip_string()?, // the master id
            // Redis stops on a node whose key is not an id.
            Some(_) => {
                let id = input.string(64, "stream node id")?;
                if id.len() != 16 {
                    return Err(input.corrupt(format!("a stream node id of {} bytes, not 16", id.len())));
                }
            }
        }
        blob(input, value_type, blobs)?; // the listpack
    }
    // Redis stops on entries without a node to hold them.
    let length = input.length()?;
    if blobs.is_some() && length > 0 && nodes == 0 {
        return Err(input.corrupt(format!("a stream of {length} entries without a node")));
    }
    let ids = if since_2 { 3 } else { 1 }; // last id; then first id, maximal deleted id
    for _ in 0..2 * ids {
        input.length()?; // the ids' milliseconds and sequences
    }
    if since_2 {
        input.length()?; // entries added
    }
    for _ in 0..input.length()? {
        input.skip_string()?; // the group's name
        input.length()?; // last delivered id
        input.length()?;
        if since_2 {
            input.length()?; // entries read
        }
        for _ in 0..input.length()? {
            input.skip(16)?; // the entry id, 128 bits
            input.skip(8)?; // delivery time, ms
            input.length()?; // delivery count
        }
        for _ in 0..input.length()? {
            input.skip_string()?; // the consumer's name
            input.skip(8)?; // seen time, ms
            if since_3 {
                input.skip(8)?; // active time, ms
            }
            let pending = input.length()?;
            for _ in 0..pending {
                input.skip(16)?; // an id from the group's pending entries
            }
        }
    }
    Ok(())
}

/// Module value opcodes, which let a module's data be walked without the module.
pub(super) mod module_opcode {
    pub(in super::super) const EOF: u64 = 0;
    pub(in super::super) const SINT: u64 = 1;
    pub(in super::super) const UINT: u64 = 2;
    pub(in super::super) const FLOAT: u64 = 3;
    pub(in super::super) const DOUBLE: u64 = 4;
    pub(in super::super) const STRING: u64 = 5;
}

/// Walks a module's fields (a module value after its type id, or module aux data after
/// its `when`): typed by opcodes, up to the end opcode.
pub(super) fn module_fields<R: Read>(input: &mut Input<R>) -> Result<(), Error> {
    loop {
        match input.length()? {
            module_opcode::EOF => return Ok(()),
            module_opcode::SINT | module_opcode::UINT => {
                input.length()?;
            }
            module_opcode::FLOAT => input.skip(4)?,
            module_opcode::DOUBLE => input.skip(8)?,
            module_opcode::STRING => input.skip_string()?,
            other => return Err(input.corrupt(format!("unknown module opcode {other}"))),
        }
    }
}

/// The name of the module with `id`: nine characters of six bits each from the top of
/// the id (the low 10 bits are the encoding version).
pub(super) fn module_name(id: u64) -> String {
    const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..9).map(|index| char::from(CHARSET[((id >> (64 - 6 * (index + 1))) & 63) as usize])).collect()
}

#[cfg(test)]
pub(super) mod tests_support {
    /// The id of a module type named "MyModType", encoding version 3.
    pub(in crate::engine::redis) const MODULE_ID: u64 = {
        const NAME: &[u8; 9] = b"MyModType";
        const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut id = 0u64;
        let mut index = 0;
        while index < 9 {
            let mut code = 0;
            while CHARSET[code] != NAME[index] {
                code += 1;
            }
            id = id << 6 | code as u64;
            index += 1;
        }
        id << 10 | 3
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks `bytes` as a value of `value_type`; it must end exactly at their end.
    fn check(value_type: u8, bytes: &[u8]) {
        check_in(REDIS_7_4, value_type, bytes);
    }

    const REDIS_7_4: Format = Format { version: 12, valkey: false };

    fn check_in(format: Format, value_type: u8, bytes: &[u8]) {
        let mut input = Input::new(bytes);
        walk(&mut input, format, value_type, None)
            .unwrap_or_else(|error| panic!("type {value_type}: {error}"));
        assert_eq!(input.offset(), bytes.len() as u64, "type {value_type} did not end at the end");
        let truncated = &bytes[..bytes.len() - 1];
        let error = walk(&mut Input::new(truncated), format, value_type, None).unwrap_err();
        assert!(matches!(error, Error::Truncated { .. }), "type {value_type} truncated: {error}");
    }

    #[test]
    fn walks_the_element_layouts() {
        check(STRING, b"\x03abc");
        check(LIST, b"\x02\x01a\xc0\x05");
        check(HASH, b"\x01\x01f\x01v");
        check(ZSET, b"\x02\x01a\x031.5\x01b\xfe");
        check(ZSET_2, b"\x01\x01a\x00\x00\x00\x00\x00\x00\xf8\x3f");
        check(LIST_QUICKLIST_2, b"\x02\x01\x01x\x02\x02lp");
        check(HASH_LISTPACK_EX, b"\x00\x00\x00\x00\x00\x00\x00\x00\x02lp");
        check(HASH_METADATA, b"12345678\x01\x05\x01f\x01v");
        check(HASH_METADATA_PRE_GA, b"\x02\x00\x01f\x01v\x41\x00\x01g\x01w");
        let valkey_9 = Format { version: 80, valkey: true };
        check_in(valkey_9, VALKEY_HASH_2, b"\x01\x01f\x01v\xff\xff\xff\xff\xff\xff\xff\xff");
    }

    #[test]
    fn walks_a_stream_with_groups_and_consumers() {
        let id = [7u8; 16];
        let time = [1u8; 8];
        let mut v3 = b"\x01\x10mastermasterma12\x02lp\x05\x01\x02\x01\x00\x00\x00\x05".to_vec();
        v3.extend(b"\x01\x01g\x01\x02\x04\x01");
        v3.extend(id);
        v3.extend(time);
        v3.extend(b"\x01\x01\x01c");
        v3.extend(time);
        v3.extend(time);
        v3.extend(b"\x01");
        v3.extend(id);
        check(STREAM_LISTPACKS_3, &v3);
    }

    #[test]
    fn checks_a_streams_nodes_when_asked() {
        // A node's id must be 16 bytes, its listpack whole.
        let node = |id: &[u8], listpack: &[u8]| {
            [&[0x01, id.len() as u8][..], id, &[listpack.len() as u8], listpack, b"\x00\x00\x00\x00"].concat()
        };
        let walked = |bytes: &[u8]| walk(&mut Input::new(bytes), REDIS_7_4, STREAM_LISTPACKS, Some(1 << 20));
        let empty_listpack = b"\x07\x00\x00\x00\x00\x00\xff";
        let error = walked(&node(&[1; 16], empty_listpack)).unwrap_err();
        assert!(error.to_string().contains("an empty listpack inside a stream"), "{error}");
        let error = walked(&node(&[1; 15], empty_listpack)).unwrap_err();
        assert!(error.to_string().contains("a stream node id of 15 bytes"), "{error}");
        let error = walked(&node(&[1; 16], b"lp")).unwrap_err();
        assert!(error.to_string().contains("listpack"), "{error}");
        // Unasked, the same bytes are only walked.
        let bytes = node(&[1; 15], b"lp");
        walk(&mut Input::new(&bytes[..]), REDIS_7_4, STREAM_LISTPACKS, None).unwrap();
        // Entries need a node: no nodes, a length of 3, last id 0-0, no groups.
        let error = walked(b"\x00\x03\x00\x00\x00").unwrap_err();
        assert!(error.to_string().contains("a stream of 3 entries without a node"), "{error}");
        walk(&mut Input::new(&b"\x00\x03\x00\x00\x00"[..]), REDIS_7_4, STREAM_LISTPACKS, None).unwrap();
        walked(b"\x00\x00\x00\x00\x00").unwrap();
    }

    #[test]
    fn refuses_unknown_quicklist_containers() {
        let error =
            walk(&mut Input::new(&b"\x01\x03\x01x"[..]), REDIS_7_4, LIST_QUICKLIST_2, None).unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{error}");
    }

    #[test]
    fn field_expiration_types_need_redis_rdb_12() {
        let redis = |version| Format { version, valkey: false };
        assert!(redis(12).knows(HASH_LISTPACK_EX));
        assert!(!redis(11).knows(HASH_METADATA_PRE_GA));
        assert!(Format { version: 80, valkey: true }.knows(VALKEY_HASH_2));
        assert!(!Format { version: 80, valkey: true }.knows(HASH_LISTPACK_EX));
        assert!(redis(9).knows(STREAM_LISTPACKS_3));
        assert!(redis(9).knows(MODULE_2) && !redis(12).knows(MODULE_PRE_GA));
        assert!(!redis(12).knows(8) && !redis(12).knows(26));
    }

    #[test]
    fn names_modules_from_their_ids() {
        assert_eq!(module_name(tests_support::MODULE_ID), "MyModType");
        assert_eq!(module_name(0), "AAAAAAAAA");
        assert_eq!(module_name(u64::MAX), "_________");
    }
}

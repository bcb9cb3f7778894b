//! A string value decoded from its encoding as the file holds it (a length and its
//! bytes, an integer, or LZF), for loads that send plain strings as `MSET` rather than
//! one `RESTORE` each. The encoding has already been walked (and so checked) by the
//! reader; this reads it again from the captured bytes, without a 64 KiB input buffer
//! per key.

use super::input::{ENCODED_INT8, ENCODED_INT16, ENCODED_INT32, ENCODED_LZF};
use super::lzf;

/// Decodes `encoded`, one string's encoding and nothing after it: its bytes, or `None`
/// when it is not exactly one string or decodes to more than `limit` bytes (the value
/// then goes as a payload, as any other).
pub(super) fn decode(encoded: &[u8], limit: usize) -> Option<Vec<u8>> {
    let &first = encoded.first()?;
    if first >> 6 == 0b11 {
        return encoded_string(first & 0x3f, &encoded[1..], limit);
    }
    let (length, rest) = length(encoded)?;
    (rest.len() as u64 == length && rest.len() <= limit).then(|| rest.to_vec())
}

/// An integer's decimal text, or an LZF string decompressed.
fn encoded_string(kind: u8, rest: &[u8], limit: usize) -> Option<Vec<u8>> {
    let integer = match (kind, rest) {
        (ENCODED_INT8, &[byte]) => i64::from(byte as i8),
        (ENCODED_INT16, &[low, high]) => i64::from(i16::from_le_bytes([low, high])),
        (ENCODED_INT32, &[a, b, c, d]) => i64::from(i32::from_le_bytes([a, b, c, d])),
        (ENCODED_LZF, _) => {
            let (compressed, rest) = length(rest)?;
            let (uncompressed, rest) = length(rest)?;
            if rest.len() as u64 != compressed || uncompressed > limit as u64 {
                return None;
            }
            return lzf::decompress(rest, uncompressed as usize).ok();
        }
        _ => return None,
    };
    Some(integer.to_string().into_bytes())
}

/// A plain length (6, 14, 32 or 64 bits) and what follows it.
fn length(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    match first >> 6 {
        0b00 => Some((u64::from(first & 0x3f), rest)),
        0b01 => {
            let (&second, rest) = rest.split_first()?;
            Some((u64::from(first & 0x3f) << 8 | u64::from(second), rest))
        }
        0b10 if first == 0x80 => {
            let (bytes, rest) = rest.split_first_chunk::<4>()?;
            Some((u64::from(u32::from_be_bytes(*bytes)), rest))
        }
        0b10 if first == 0x81 => {
            let (bytes, rest) = rest.split_first_chunk::<8>()?;
            Some((u64::from_be_bytes(*bytes), rest))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_encoding_of_a_string() {
        assert_eq!(decode(b"\x05hello", 64).unwrap(), b"hello");
        assert_eq!(decode(b"\x00", 64).unwrap(), b"");
        let long = vec![b'x'; 300];
        let mut fourteen = vec![0x40 | 0x01, 0x2c];
        fourteen.extend_from_slice(&long);
        assert_eq!(decode(&fourteen, 1024).unwrap(), long);
        let mut thirty_two = vec![0x80, 0, 0, 0x01, 0x2c];
        thirty_two.extend_from_slice(&long);
        assert_eq!(decode(&thirty_two, 1024).unwrap(), long);
        let mut sixty_four = vec![0x81, 0, 0, 0, 0, 0, 0, 0x01, 0x2c];
        sixty_four.extend_from_slice(&long);
        assert_eq!(decode(&sixty_four, 1024).unwrap(), long);
        assert_eq!(decode(&[0xC0, 0xF6], 64).unwrap(), b"-10");
        assert_eq!(decode(&[0xC1, 0x39, 0x30], 64).unwrap(), b"12345");
        assert_eq!(decode(&[0xC2, 0x00, 0x5E, 0xD0, 0xB2], 64).unwrap(), b"-1294967296");
        // LZF: a literal run of 3 ("abc"), then a back reference of 7 bytes at distance 3.
        let lzf = [0xC3, 0x06, 0x0A, 0x02, b'a', b'b', b'c', 0xA0, 0x02];
        assert_eq!(decode(&lzf, 64).unwrap(), b"abcabcabca");
    }

    #[test]
    fn refuses_what_is_not_exactly_one_string_within_the_limit() {
        assert_eq!(decode(b"", 64), None);
        assert_eq!(decode(b"\x05hell", 64), None, "short");
        assert_eq!(decode(b"\x05hello!", 64), None, "bytes after the string");
        assert_eq!(decode(b"\x05hello", 4), None, "over the limit");
        assert_eq!(decode(&[0xC1, 0x39], 64), None, "a short integer");
        assert_eq!(decode(&[0xC4, 0x00], 64), None, "an unknown encoding");
        assert_eq!(decode(&[0x82, 0x00], 64), None, "an unknown length");
        let lzf = [0xC3, 0x06, 0x0A, 0x02, b'a', b'b', b'c', 0xA0, 0x02];
        assert_eq!(decode(&lzf, 9), None, "decompressed over the limit");
        assert_eq!(decode(&lzf[..8], 64), None, "compressed bytes missing");
    }
}

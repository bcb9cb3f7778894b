//! LZF decompression, for the key names and aux fields Redis stores compressed. (Values
//! are copied into payloads as they are and never decompressed.) The format is small
//! enough that a bounds-checked decoder here is simpler to trust than a dependency.

/// The most allocated before the output actually grows: `expected_len` comes from the
/// stream and may lie.
const INITIAL_CAPACITY: usize = 1024 * 1024;

/// Decompresses `input`, which must expand to exactly `expected_len` bytes.
pub(super) fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, String> {
    let mut output = Vec::with_capacity(expected_len.min(INITIAL_CAPACITY));
    let mut position = 0;
    while position < input.len() {
        let control = usize::from(input[position]);
        position += 1;
        if control < 32 {
            // A run of `control + 1` literal bytes.
            let run = input.get(position..position + control + 1).ok_or("lzf literal runs past the input")?;
            position += run.len();
            if output.len() + run.len() > expected_len {
                return Err("lzf output is longer than announced".to_owned());
            }
            output.extend_from_slice(run);
            continue;
        }
        // A back reference: `length + 2` bytes copied from `distance + 1` bytes back.
        let mut length = control >> 5;
        if length == 7 {
            length += usize::from(*input.get(position).ok_or("lzf reference runs past the input")?);
            position += 1;
        }
        let low = usize::from(*input.get(position).ok_or("lzf reference runs past the input")?);
        position += 1;
        let distance = ((control & 0x1f) << 8 | low) + 1;
        let length = length + 2;
        let start = output.len().checked_sub(distance).ok_or("lzf reference points before the start")?;
        if output.len() + length > expected_len {
            return Err("lzf output is longer than announced".to_owned());
        }
        // Byte by byte: a reference may overlap what it produces.
        for index in start..start + length {
            output.push(output[index]);
        }
    }
    if output.len() != expected_len {
        return Err(format!("lzf output has {} bytes, {expected_len} announced", output.len()));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::decompress;

    #[test]
    fn expands_literals_and_overlapping_references() {
        assert_eq!(decompress(&[0x02, b'a', b'b', b'c'], 3).unwrap(), b"abc");
        assert_eq!(decompress(&[0x01, b'a', b'b', 0x20, 0x01], 5).unwrap(), b"ababa");
        assert_eq!(decompress(&[0x00, b'x', 0xe0, 0x03, 0x00], 13).unwrap(), b"xxxxxxxxxxxxx");
    }

    #[test]
    fn refuses_broken_input() {
        for (input, length) in [
            (&[0x05, b'a'][..], 6),
            (&[0x20, 0x00][..], 2),
            (&[0x00, b'a', 0xe0][..], 10),
            (&[0x00, b'a', 0x20, 0x05][..], 4),
            (&[0x01, b'a', b'b'][..], 1),
            (&[0x00, b'a'][..], 2),
            (&[0x00, b'a', 0x20, 0x00][..], 2),
        ] {
            assert!(decompress(input, length).is_err(), "{input:02x?} to {length} bytes");
        }
    }
}

//! LZF decompression: whole, for the key names and aux fields Redis stores compressed,
//! and as a stream, for compressed string values decoded into pieces. A back reference
//! reaches at most 8 KiB back, so a stream keeps that much of its output and no more.
//! The format is small enough that a bounds-checked decoder here is simpler to trust
//! than a dependency.

/// How far back a reference may point: 13 bits of distance, plus one.
pub(super) const WINDOW: usize = 8 * 1024;

/// The longest instruction: a control byte and 32 literal bytes.
pub(super) const LONGEST_INSTRUCTION: usize = 33;

/// Decompresses `input`, which must expand to exactly `expected_len` bytes.
pub(super) fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, String> {
    let mut decompressor = Decompressor::new(expected_len as u64);
    let used = decompressor.decode(input, usize::MAX)?;
    if used != input.len() {
        return Err("lzf instruction runs past the input".to_owned());
    }
    decompressor.finish()?;
    Ok(decompressor.buffer)
}

/// Decompresses a stream given in any slices, keeping only the window of output that
/// later references may need.
#[derive(Debug)]
pub(super) struct Decompressor {
    /// The window (output already taken), then the output not taken yet.
    buffer: Vec<u8>,
    /// Where the output not taken yet starts in `buffer`.
    taken: usize,
    /// Bytes produced so far, and in all.
    produced: u64,
    expected: u64,
}

impl Decompressor {
    /// A decompressor for a stream announced to expand to `expected` bytes (which
    /// allocates nothing: the claim may lie).
    pub(super) fn new(expected: u64) -> Decompressor {
        Decompressor { buffer: Vec::new(), taken: 0, produced: 0, expected }
    }

    /// Bytes of output not taken yet.
    pub(super) fn pending(&self) -> usize {
        self.buffer.len() - self.taken
    }

    /// Decodes the whole instructions at the start of `input` until at least `piece`
    /// bytes are pending; returns how many bytes of `input` were used. An instruction
    /// cut at the end of `input` is left for the next call.
    pub(super) fn decode(&mut self, input: &[u8], piece: usize) -> Result<usize, String> {
        let mut position = 0;
        while position < input.len() && self.pending() < piece {
            let control = usize::from(input[position]);
            if control < 32 {
                // A run of `control + 1` literal bytes.
                let Some(run) = input.get(position + 1..position + 2 + control) else { break };
                self.grow(run.len())?;
                self.buffer.extend_from_slice(run);
                position += 1 + run.len();
                continue;
            }
            // A back reference: `length + 2` bytes copied from `distance + 1` bytes back.
            let mut length = control >> 5;
            let mut size = 2;
            if length == 7 {
                let Some(&more) = input.get(position + 1) else { break };
                length += usize::from(more);
                size = 3;
            }
            let Some(&low) = input.get(position + size - 1) else { break };
            let distance = ((control & 0x1f) << 8 | usize::from(low)) + 1;
            let length = length + 2;
            let start =
                self.buffer.len().checked_sub(distance).ok_or("lzf reference points before the start")?;
            self.grow(length)?;
            if distance >= length {
                self.buffer.extend_from_within(start..start + length);
            } else {
                // Byte by byte: the reference overlaps what it produces.
                for index in start..start + length {
                    self.buffer.push(self.buffer[index]);
                }
            }
            position += size;
        }
        Ok(position)
    }

    fn grow(&mut self, length: usize) -> Result<(), String> {
        self.produced += length as u64;
        if self.produced > self.expected {
            return Err("lzf output is longer than announced".to_owned());
        }
        Ok(())
    }

    /// The output not taken yet; the window behind it is kept for later references.
    pub(super) fn take(&mut self) -> Vec<u8> {
        let piece = self.buffer[self.taken..].to_vec();
        let keep_from = self.buffer.len().saturating_sub(WINDOW);
        self.buffer.drain(..keep_from);
        self.taken = self.buffer.len();
        piece
    }

    /// Checks that the stream gave as many bytes as announced.
    pub(super) fn finish(&self) -> Result<(), String> {
        if self.produced != self.expected {
            return Err(format!("lzf output has {} bytes, {} announced", self.produced, self.expected));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// `data` compressed: literal runs of up to 32 bytes, and a reference wherever the
    /// next 3+ bytes repeat what came up to `WINDOW` bytes before.
    fn compress(data: &[u8]) -> Vec<u8> {
        let mut output = Vec::new();
        let mut literals: Vec<u8> = Vec::new();
        let flush = |literals: &mut Vec<u8>, output: &mut Vec<u8>| {
            for run in literals.chunks(32) {
                output.push(run.len() as u8 - 1);
                output.extend_from_slice(run);
            }
            literals.clear();
        };
        let mut at = 0;
        while at < data.len() {
            let best = (1..=WINDOW.min(at))
                .map(|distance| {
                    let length = (0..264.min(data.len() - at))
                        .take_while(|&index| data[at + index] == data[at - distance + index])
                        .count();
                    (length, distance)
                })
                .max();
            match best {
                Some((length, distance)) if length >= 3 => {
                    flush(&mut literals, &mut output);
                    let (length, distance) = (length - 2, distance - 1);
                    if length < 7 {
                        output.push((length << 5 | distance >> 8) as u8);
                    } else {
                        output.push((7 << 5 | distance >> 8) as u8);
                        output.push((length - 7) as u8);
                    }
                    output.push(distance as u8);
                    at += length + 2;
                }
                _ => {
                    literals.push(data[at]);
                    at += 1;
                }
            }
        }
        flush(&mut literals, &mut output);
        output
    }

    #[test]
    fn a_stream_fed_in_small_slices_gives_the_same_bytes_in_pieces() {
        // References reach far back (up to the whole window) across many pieces.
        let mut data = Vec::new();
        for index in 0..3000u32 {
            data.extend_from_slice(format!("{} ", index % 97 * 31 % 1000).as_bytes());
            if index % 500 == 0 {
                data.extend((0..200).map(|byte| (byte * 7 + index) as u8));
            }
        }
        let compressed = compress(&data);
        assert_eq!(decompress(&compressed, data.len()).unwrap(), data);
        for (slice, piece) in [(1, 100), (5, 1000), (64, 4096), (1000, 65536)] {
            let mut decompressor = Decompressor::new(data.len() as u64);
            let mut input = Vec::new();
            let mut output = Vec::new();
            for chunk in compressed.chunks(slice) {
                input.extend_from_slice(chunk);
                loop {
                    let used = decompressor.decode(&input, piece).unwrap();
                    input.drain(..used);
                    if decompressor.pending() < piece {
                        break;
                    }
                    let taken = decompressor.take();
                    assert!(taken.len() < piece + 264, "a piece of {} bytes", taken.len());
                    output.extend(taken);
                    assert!(decompressor.buffer.len() <= WINDOW + piece + 264);
                }
            }
            assert!(input.is_empty());
            output.extend(decompressor.take());
            decompressor.finish().unwrap();
            assert!(output == data, "slices of {slice}, pieces of {piece}");
        }
    }
}

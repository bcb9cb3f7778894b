//! zstd on the pipeline's own thread, as a run of independent frames of [`FRAME_INPUT`]
//! bytes of input each, every one compressed by a single call on a whole buffer.
//!
//! zstd's streaming compressor copies its input into a buffer one window long and
//! wraps around it, so that nearly all of its matching runs in its slower mode for a
//! window split in two. Compressing whole spans keeps every match in one piece of
//! memory: on SQL dumps and mixed files this took 10 to 20% less CPU than the streaming
//! compressor at the same level, for output as small or smaller (BENCHMARKS.md). The
//! frames are standard: `zstd -d` and every streaming decoder read them one after the
//! other, as one stream.

use std::io;

use async_compression::codecs::Encode;
use async_compression::core::util::PartialBuffer;
use zstd_safe::{CCtx, CParameter};

/// The input compressed into one frame. Each frame starts without history, so smaller
/// frames compress worse; 4 MiB (twice zstd's window at level 3) costs under 1% on
/// ordinary data, where the memory held is this buffer and at most one compressed
/// frame.
pub const FRAME_INPUT: usize = 4 << 20;

/// A zstd compressor writing one frame per [`FRAME_INPUT`] bytes, each with the content
/// checksum the `zstd` command writes.
pub struct FramedZstd {
    context: CCtx<'static>,
    /// Input not yet compressed, up to one frame's worth.
    pending: Vec<u8>,
    /// The last compressed frame, handed out from `handed_out` on.
    compressed: Vec<u8>,
    handed_out: usize,
    /// Whether a frame has been written: an empty input still gets one (empty) frame,
    /// so that the output is a zstd stream.
    wrote_frame: bool,
}

impl FramedZstd {
    /// A compressor at `level`.
    pub fn new(level: i32) -> io::Result<FramedZstd> {
        let mut context =
            CCtx::try_create().ok_or_else(|| io::Error::other("zstd could not allocate a context"))?;
        context.set_parameter(CParameter::CompressionLevel(level)).map_err(zstd_error)?;
        context.set_parameter(CParameter::ChecksumFlag(true)).map_err(zstd_error)?;
        Ok(FramedZstd {
            context,
            pending: Vec::with_capacity(FRAME_INPUT),
            // Only the pages a frame's output touches become resident.
            compressed: Vec::with_capacity(zstd_safe::compress_bound(FRAME_INPUT)),
            handed_out: 0,
            wrote_frame: false,
        })
    }

    /// Copies what `output` has room for of the last compressed frame; true when all of
    /// it has been handed out.
    fn hand_out(&mut self, output: &mut PartialBuffer<impl AsRef<[u8]> + AsMut<[u8]>>) -> bool {
        let left = &self.compressed[self.handed_out..];
        let room = output.unwritten_mut();
        let count = left.len().min(room.len());
        room[..count].copy_from_slice(&left[..count]);
        output.advance(count);
        self.handed_out += count;
        self.handed_out == self.compressed.len()
    }

    /// Compresses the pending input into one frame; needs the last one handed out.
    fn compress_pending(&mut self) -> io::Result<()> {
        debug_assert_eq!(self.handed_out, self.compressed.len());
        self.context.compress2(&mut self.compressed, &self.pending).map_err(zstd_error)?;
        self.handed_out = 0;
        self.pending.clear();
        self.wrote_frame = true;
        Ok(())
    }

    /// Ends the current frame early (or writes the empty frame of an empty input when
    /// `at_end`); true once everything is in `output`.
    fn end_frame(
        &mut self,
        output: &mut PartialBuffer<impl AsRef<[u8]> + AsMut<[u8]>>,
        at_end: bool,
    ) -> io::Result<bool> {
        if !self.hand_out(output) {
            return Ok(false);
        }
        if !self.pending.is_empty() || (at_end && !self.wrote_frame) {
            self.compress_pending()?;
            return Ok(self.hand_out(output));
        }
        Ok(true)
    }
}

impl Encode for FramedZstd {
    fn encode(
        &mut self,
        input: &mut PartialBuffer<impl AsRef<[u8]>>,
        output: &mut PartialBuffer<impl AsRef<[u8]> + AsMut<[u8]>>,
    ) -> io::Result<()> {
        if !self.hand_out(output) {
            return Ok(());
        }
        let take = (FRAME_INPUT - self.pending.len()).min(input.unwritten().len());
        self.pending.extend_from_slice(&input.unwritten()[..take]);
        input.advance(take);
        if self.pending.len() == FRAME_INPUT {
            self.compress_pending()?;
            self.hand_out(output);
        }
        Ok(())
    }

    fn flush(&mut self, output: &mut PartialBuffer<impl AsRef<[u8]> + AsMut<[u8]>>) -> io::Result<bool> {
        self.end_frame(output, false)
    }

    fn finish(&mut self, output: &mut PartialBuffer<impl AsRef<[u8]> + AsMut<[u8]>>) -> io::Result<bool> {
        self.end_frame(output, true)
    }
}

fn zstd_error(code: usize) -> io::Error {
    io::Error::other(format!("zstd: {}", zstd_safe::get_error_name(code)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` through a [`FramedZstd`] in `step`-byte inputs into `room`-byte
    /// outputs, the way the pipeline does, and returns the compressed stream.
    fn compress(data: &[u8], step: usize, room: usize) -> Vec<u8> {
        let mut encoder = FramedZstd::new(3).unwrap();
        let mut stream = Vec::new();
        let mut output = PartialBuffer::new(vec![0u8; room]);
        for piece in data.chunks(step) {
            let mut input = PartialBuffer::new(piece);
            while !input.unwritten().is_empty() {
                encoder.encode(&mut input, &mut output).unwrap();
                stream.extend_from_slice(output.written());
                output.reset();
            }
        }
        loop {
            let done = encoder.finish(&mut output).unwrap();
            stream.extend_from_slice(output.written());
            output.reset();
            if done {
                return stream;
            }
        }
    }

    /// Text that compresses, with enough variety to need real matching.
    fn sample(length: usize) -> Vec<u8> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut data = Vec::with_capacity(length + 64);
        while data.len() < length {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(
                format!("({},'row {}',{}),", state % 1000, state >> 40, state % 7).as_bytes(),
            );
        }
        data.truncate(length);
        data
    }

    /// Decodes a stream of frames with zstd's own streaming decoder.
    fn decode_all(stream: &[u8]) -> io::Result<Vec<u8>> {
        let mut context = zstd_safe::DCtx::create();
        let mut input = zstd_safe::InBuffer::around(stream);
        let mut decoded = Vec::new();
        let mut room = vec![0u8; 1 << 16];
        let mut hint = 1;
        while input.pos < stream.len() || hint != 0 {
            let mut output = zstd_safe::OutBuffer::around(&mut room[..]);
            hint = context.decompress_stream(&mut output, &mut input).map_err(zstd_error)?;
            let produced = output.pos();
            if produced == 0 && input.pos == stream.len() && hint != 0 {
                return Err(io::Error::other("truncated"));
            }
            decoded.extend_from_slice(&room[..produced]);
        }
        Ok(decoded)
    }

    fn frames_in(mut stream: &[u8]) -> usize {
        let mut frames = 0;
        while !stream.is_empty() {
            let size = zstd_safe::find_frame_compressed_size(stream).unwrap();
            stream = &stream[size..];
            frames += 1;
        }
        frames
    }

    #[test]
    fn decodes_to_the_input_across_frames_whatever_the_buffer_sizes() {
        let data = sample(FRAME_INPUT * 2 + 12_345);
        for (step, room) in [(1 << 20, 1 << 20), (777, 100), (FRAME_INPUT * 3, 64 << 10)] {
            let stream = compress(&data, step, room);
            assert_eq!(frames_in(&stream), 3, "step {step}, room {room}");
            assert!(stream.len() < data.len() / 2, "it compresses: {} of {}", stream.len(), data.len());
            assert_eq!(decode_all(&stream).unwrap(), data, "step {step}, room {room}");
        }
    }

    #[test]
    fn an_exact_multiple_of_the_frame_ends_without_an_empty_frame() {
        let data = sample(FRAME_INPUT * 2);
        let stream = compress(&data, 1 << 20, 1 << 20);
        assert_eq!(frames_in(&stream), 2);
        assert_eq!(decode_all(&stream).unwrap(), data);
    }

    #[test]
    fn an_empty_input_is_one_empty_frame_with_its_checksum() {
        let stream = compress(&[], 1, 1 << 20);
        assert_eq!(frames_in(&stream), 1);
        assert!(decode_all(&stream).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_frame_fails_its_checksum() {
        let data = sample(1 << 20);
        let mut stream = compress(&data, 1 << 20, 1 << 20);
        // The content checksum is the frame's last four bytes.
        let last = stream.len() - 1;
        stream[last] ^= 1;
        assert!(decode_all(&stream).is_err());
    }
}

//! Redis's CRC-64 (Jones, reflected), which ends RDB files and `DUMP` payloads, computed
//! with SIMD carry-less multiplication where the CPU has it: several GB/s, where a table
//! walk manages half of one, and every restored byte is checksummed two or three times.

use crc_fast::CrcAlgorithm;

/// The checksum, with the call shapes of a `crc::Crc`: `CRC64.checksum(bytes)` and
/// `CRC64.digest()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc64;

/// The one instance.
pub(crate) const CRC64: Crc64 = Crc64;

impl Crc64 {
    /// The checksum of `bytes`.
    pub(crate) fn checksum(self, bytes: &[u8]) -> u64 {
        crc_fast::checksum(CrcAlgorithm::Crc64Redis, bytes)
    }

    /// A running checksum, fed piece by piece.
    pub(crate) fn digest(self) -> Digest {
        Digest(crc_fast::Digest::new(CrcAlgorithm::Crc64Redis))
    }
}

/// A running checksum.
#[derive(Clone)]
pub(crate) struct Digest(crc_fast::Digest);

impl Digest {
    /// Adds `bytes`.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The checksum of everything added.
    pub(crate) fn finalize(self) -> u64 {
        self.0.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_redis_crc64() {
        // The check value of CRC-64/REDIS, and the test vector in Redis's crc64.c.
        assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
        let mut digest = CRC64.digest();
        digest.update(b"1234");
        digest.update(b"56789");
        assert_eq!(digest.finalize(), 0xe9c6d914c4b8d9ca);
        assert_eq!(CRC64.checksum(b""), 0);
    }
}

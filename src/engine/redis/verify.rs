//! Checks a whole RDB file before anything is loaded from it: the header, the end opcode
//! and, from RDB 5 on, the CRC64 trailer (zero means the writer had checksums off).

use std::io::Read;
use std::path::Path;

use crc::{CRC_64_REDIS, Crc, Table};

use super::rdb_stream::{MAGIC_LEN, parse_magic};
use crate::engine::Error;

/// Redis's CRC-64/Jones, sixteen bytes at a time.
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);
/// The first RDB version with a checksum trailer.
const FIRST_CHECKSUMMED_VERSION: u32 = 5;
const TRAILER_LEN: u64 = 8;
const OPCODE_EOF: u8 = 0xff;
const READ_BUFFER: usize = 1 << 20;

/// What a verified RDB file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RdbFile {
    /// The RDB version from the header.
    pub(crate) version: u32,
    /// The file's size.
    pub(crate) bytes: u64,
    /// Whether a checksum was present and matched (false: the writer had them off).
    pub(crate) checksummed: bool,
}

/// Reads the file at `path` once, with a fixed buffer, and says whether it is a whole,
/// undamaged RDB. Blocking: run it on a blocking thread.
pub(crate) fn verify_rdb_file(path: &Path, on_progress: &mut dyn FnMut(u64)) -> Result<RdbFile, Error> {
    let corrupt = |problem: String| Error::Corrupt(format!("the rdb data is not whole: {problem}"));
    let mut file = std::fs::File::open(path).map_err(|error| spool_error(path, &error))?;
    let bytes = file.metadata().map_err(|error| spool_error(path, &error))?.len();
    let mut head = [0u8; MAGIC_LEN];
    if bytes <= MAGIC_LEN as u64 {
        return Err(corrupt(format!("{bytes} bytes is too short for an rdb")));
    }
    file.read_exact(&mut head).map_err(|error| spool_error(path, &error))?;
    let version = parse_magic(&head).map_err(corrupt)?;
    let trailer_len = if version >= FIRST_CHECKSUMMED_VERSION { TRAILER_LEN } else { 0 };
    if bytes < MAGIC_LEN as u64 + 1 + trailer_len {
        return Err(corrupt(format!("{bytes} bytes is too short for an rdb version {version}")));
    }

    // Everything before the trailer goes through the CRC; the last byte of it must be EOF.
    let mut digest = CRC64.digest();
    digest.update(&head);
    let mut remaining = bytes - MAGIC_LEN as u64 - trailer_len;
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut last_byte = 0u8;
    while remaining > 0 {
        let want = remaining.min(READ_BUFFER as u64) as usize;
        file.read_exact(&mut buffer[..want]).map_err(|error| spool_error(path, &error))?;
        digest.update(&buffer[..want]);
        last_byte = buffer[want - 1];
        remaining -= want as u64;
        on_progress(bytes - remaining - trailer_len);
    }
    if last_byte != OPCODE_EOF {
        return Err(corrupt("it does not end with the end-of-file opcode (truncated?)".to_owned()));
    }
    if trailer_len == 0 {
        return Ok(RdbFile { version, bytes, checksummed: false });
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.read_exact(&mut trailer).map_err(|error| spool_error(path, &error))?;
    let expected = u64::from_le_bytes(trailer);
    let actual = digest.finalize();
    match expected {
        0 => Ok(RdbFile { version, bytes, checksummed: false }),
        _ if expected == actual => Ok(RdbFile { version, bytes, checksummed: true }),
        _ => Err(corrupt(format!("its crc64 is {actual:016x}, its trailer says {expected:016x}"))),
    }
}

fn spool_error(path: &Path, error: &std::io::Error) -> Error {
    Error::Unsupported(format!("cannot read the spooled rdb {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid RDB: header, one string key, EOF, checksum.
    fn tiny_rdb() -> Vec<u8> {
        let mut rdb = b"REDIS0011".to_vec();
        rdb.extend_from_slice(&[0xfe, 0x00, 0x00, 0x01, b'k', 0x01, b'v', 0xff]);
        let crc = CRC64.checksum(&rdb);
        rdb.extend_from_slice(&crc.to_le_bytes());
        rdb
    }

    fn check(bytes: &[u8]) -> Result<RdbFile, Error> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump.rdb");
        std::fs::write(&path, bytes).unwrap();
        verify_rdb_file(&path, &mut |_| {})
    }

    #[test]
    fn a_whole_rdb_passes() {
        let rdb = tiny_rdb();
        assert_eq!(check(&rdb).unwrap(), RdbFile { version: 11, bytes: rdb.len() as u64, checksummed: true });
        let mut unchecked = rdb.clone();
        let at = unchecked.len() - 8;
        unchecked[at..].fill(0);
        assert!(!check(&unchecked).unwrap().checksummed);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let rdb = tiny_rdb();
        for length in 0..rdb.len() {
            assert!(matches!(check(&rdb[..length]), Err(Error::Corrupt(_))), "truncated to {length}");
        }
        for index in 0..rdb.len() {
            let mut flipped = rdb.clone();
            flipped[index] ^= 0x20;
            assert!(matches!(check(&flipped), Err(Error::Corrupt(_))), "flipped byte {index}");
        }
        assert!(matches!(check(b"not an rdb at all, just text"), Err(Error::Corrupt(_))));
    }
}

//! Finding a key that RDB data holds twice, in bounded memory. Redis never writes such
//! data, but its loader stops the whole server when it meets one ("Duplicated key found
//! in RDB file"), a replica included; so data from elsewhere is searched before any of
//! it reaches a target.
//!
//! Each key is hashed with its database to 128 bits (SipHash-1-3 under a key drawn for
//! this search, so that no file can be made to collide on purpose). The hashes, each
//! with the key's number in the data, are gathered in runs of a fixed size; a full run is
//! sorted and written to an unnamed file in the spool directory. At the end the runs are
//! merged, and equal hashes side by side are the same key twice. Two different keys
//! share a hash with a chance of about n² / 2¹²⁹: none, for any real n.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{File, OpenOptions};
use std::hash::Hasher as _;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use siphasher::sip128::{Hasher128, SipHasher13};

use crate::engine::Error;

/// Keys in one run: 6 MiB of entries (and as much again to sort them).
const RUN: usize = 256 * 1024;
/// A run is sorted by first placing its entries in buckets by this many top bits of
/// their hash.
const BUCKET_BITS: u32 = 16;
/// Bytes read at a time from each run while merging, at most; all the runs' buffers
/// together stay under `MERGE_MEMORY` (each holds 4 KiB at least).
const MERGE_BUFFER: usize = 64 * 1024;
const MERGE_MEMORY: usize = 16 << 20;
/// One entry as written: the hash's two halves and the key's number, little-endian.
const ENTRY_BYTES: usize = 24;

/// A key's hash, and which key of the data it is (0 for the first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    hash: (u64, u64),
    key: u64,
}

/// The search over one piece of data: [`KeyIndex::add`] every key in order, then
/// [`KeyIndex::finish`].
pub(super) struct KeyIndex {
    hasher: SipHasher13,
    dir: PathBuf,
    run_len: usize,
    run: Vec<Entry>,
    /// Room for sorting a run.
    scratch: Vec<Entry>,
    /// Where full runs go, once there is one.
    spill: Option<Spill>,
    keys: u64,
    /// The first key found twice inside one run.
    found: Option<u64>,
}

/// The file of sorted runs.
struct Spill {
    writer: BufWriter<File>,
    /// The entries in each run, in file order.
    runs: Vec<u64>,
}

impl KeyIndex {
    /// A search whose runs, if the data is big enough to need them, go to `dir`.
    pub(super) fn new(dir: &Path) -> KeyIndex {
        KeyIndex::with_run(dir, RUN)
    }

    fn with_run(dir: &Path, run_len: usize) -> KeyIndex {
        let seed = uuid::Uuid::new_v4().as_u64_pair();
        KeyIndex {
            hasher: SipHasher13::new_with_keys(seed.0, seed.1),
            dir: dir.to_owned(),
            run_len: run_len.max(2),
            run: Vec::new(),
            scratch: Vec::new(),
            spill: None,
            keys: 0,
            found: None,
        }
    }

    /// Adds the next key of the data, `key` in logical database `db`.
    pub(super) fn add(&mut self, db: u64, key: &[u8]) -> Result<(), Error> {
        let mut hasher = self.hasher;
        hasher.write_u64(db);
        hasher.write(key);
        let hash = hasher.finish128().as_u64();
        self.run.push(Entry { hash, key: self.keys });
        self.keys += 1;
        if self.run.len() >= self.run_len {
            self.spill_run().map_err(|error| self.failed(&error))?;
        }
        Ok(())
    }

    /// Which key of the data (its number, 0 for the first) is the second of a key held
    /// twice, if any is.
    pub(super) fn finish(mut self) -> Result<Option<u64>, Error> {
        if self.spill.is_none() {
            sort_run(&mut self.run, &mut self.scratch);
            return Ok(twice(&self.run).or(self.found));
        }
        if !self.run.is_empty() {
            self.spill_run().map_err(|error| self.failed(&error))?;
        }
        if self.found.is_some() {
            return Ok(self.found);
        }
        let Some(spill) = self.spill.take() else { return Ok(None) };
        merge(spill).map_err(|error| self.failed(&error))
    }

    fn spill_run(&mut self) -> io::Result<()> {
        sort_run(&mut self.run, &mut self.scratch);
        if self.found.is_none() {
            self.found = twice(&self.run);
        }
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => self
                .spill
                .insert(Spill { writer: BufWriter::new(unnamed_file(&self.dir)?), runs: Vec::new() }),
        };
        for entry in &self.run {
            spill.writer.write_all(&encode(entry))?;
        }
        spill.runs.push(self.run.len() as u64);
        self.run.clear();
        Ok(())
    }

    fn failed(&self, error: &io::Error) -> Error {
        Error::Unsupported(format!(
            "cannot write the index of the rdb's keys in {}: {error}",
            self.dir.display()
        ))
    }
}

/// Sorts `run` (by hash, then key number), with `scratch` as room. The hashes are
/// uniform, so one pass puts each entry in its bucket by the top bits of its hash, and
/// the buckets, a few entries each, are sorted alone: much less work than sorting the
/// whole run by comparisons.
fn sort_run(run: &mut Vec<Entry>, scratch: &mut Vec<Entry>) {
    let bucket = |entry: &Entry| (entry.hash.0 >> (64 - BUCKET_BITS)) as usize;
    let mut starts = vec![0; (1 << BUCKET_BITS) + 1];
    for entry in run.iter() {
        starts[bucket(entry) + 1] += 1;
    }
    for index in 1..starts.len() {
        starts[index] += starts[index - 1];
    }
    scratch.clear();
    scratch.resize(run.len(), Entry::default());
    let mut next = starts.clone();
    for entry in run.iter() {
        let slot = &mut next[bucket(entry)];
        scratch[*slot] = *entry;
        *slot += 1;
    }
    for bounds in starts.windows(2) {
        scratch[bounds[0]..bounds[1]].sort_unstable();
    }
    std::mem::swap(run, scratch);
}

/// The later key of the first pair in sorted `entries` with the same hash.
fn twice(entries: &[Entry]) -> Option<u64> {
    entries.windows(2).find(|pair| pair[0].hash == pair[1].hash).map(|pair| pair[0].key.max(pair[1].key))
}

/// A file in `dir` that is gone from it as soon as it is open: nothing is left behind,
/// whatever stops the search.
fn unnamed_file(dir: &Path) -> io::Result<File> {
    let path = dir.join(format!("spool-keys-{}", uuid::Uuid::new_v4().simple()));
    let file = OpenOptions::new().read(true).write(true).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

fn encode(entry: &Entry) -> [u8; ENTRY_BYTES] {
    let mut bytes = [0; ENTRY_BYTES];
    bytes[..8].copy_from_slice(&entry.hash.0.to_le_bytes());
    bytes[8..16].copy_from_slice(&entry.hash.1.to_le_bytes());
    bytes[16..].copy_from_slice(&entry.key.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Entry {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
    Entry { hash: (word(0), word(8)), key: word(16) }
}

/// Merges the sorted runs of `spill`; the later key of the first hash found twice.
fn merge(spill: Spill) -> io::Result<Option<u64>> {
    let file = spill.writer.into_inner().map_err(io::IntoInnerError::into_error)?;
    let mut readers = Vec::with_capacity(spill.runs.len());
    let read = (MERGE_MEMORY / spill.runs.len().max(1)).clamp(4096, MERGE_BUFFER) / ENTRY_BYTES * ENTRY_BYTES;
    let mut start = 0;
    for &entries in &spill.runs {
        let end = start + entries * ENTRY_BYTES as u64;
        readers.push(RunReader { file: &file, next: start, end, read, buffer: Vec::new(), at: 0 });
        start = end;
    }
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (index, reader) in readers.iter_mut().enumerate() {
        if let Some(entry) = reader.next()? {
            heap.push(Reverse((entry, index)));
        }
    }
    let mut last: Option<Entry> = None;
    while let Some(Reverse((entry, index))) = heap.pop() {
        if let Some(last) = last.filter(|last| last.hash == entry.hash) {
            return Ok(Some(last.key.max(entry.key)));
        }
        last = Some(entry);
        if let Some(next) = readers[index].next()? {
            heap.push(Reverse((next, index)));
        }
    }
    Ok(None)
}

/// One sorted run of the spill file, read in buffers.
struct RunReader<'a> {
    file: &'a File,
    /// Where the next buffer starts in the file, and where the run ends.
    next: u64,
    end: u64,
    /// Bytes read at a time: whole entries.
    read: usize,
    buffer: Vec<u8>,
    at: usize,
}

impl RunReader<'_> {
    fn next(&mut self) -> io::Result<Option<Entry>> {
        if self.at == self.buffer.len() {
            let left = self.end - self.next;
            if left == 0 {
                return Ok(None);
            }
            let len = left.min(self.read as u64) as usize;
            self.buffer.resize(len, 0);
            self.file.read_exact_at(&mut self.buffer, self.next)?;
            self.next += len as u64;
            self.at = 0;
        }
        let entry = decode(&self.buffer[self.at..self.at + ENTRY_BYTES]);
        self.at += ENTRY_BYTES;
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search over `keys` (database, name) with runs of `run` keys: the key found
    /// twice, if any.
    fn search(keys: &[(u64, &[u8])], run: usize) -> Option<u64> {
        let dir = tempfile::tempdir().unwrap();
        let mut index = KeyIndex::with_run(dir.path(), run);
        for (db, key) in keys {
            index.add(*db, key).unwrap();
        }
        let found = index.finish().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "the runs' file is left behind: {left:?}");
        found
    }

    fn numbered(count: u64) -> Vec<Vec<u8>> {
        (0..count).map(|n| format!("key:{n}").into_bytes()).collect()
    }

    #[test]
    fn distinct_keys_are_not_found_twice_whatever_the_runs() {
        let names = numbered(1000);
        let keys: Vec<(u64, &[u8])> = names.iter().map(|name| (0, name.as_slice())).collect();
        for run in [2, 3, 7, 64, 999, 1000, 5000] {
            assert_eq!(search(&keys, run), None, "runs of {run}");
        }
        assert_eq!(search(&[], 4), None);
    }

    #[test]
    fn the_same_name_in_two_databases_is_two_keys() {
        assert_eq!(search(&[(0, b"k"), (1, b"k"), (2, b"k")], 2), None);
        assert_eq!(search(&[(0, b"k"), (1, b"k"), (0, b"k")], 100), Some(2));
    }

    #[test]
    fn a_key_twice_is_found_in_one_run_or_across_runs() {
        let names = numbered(1000);
        let mut keys: Vec<(u64, &[u8])> = names.iter().map(|name| (3, name.as_slice())).collect();
        // Key 1000 is key 17 again.
        keys.push((3, b"key:17"));
        for run in [2, 3, 7, 64, 999, 1000, 1001, 5000] {
            assert_eq!(search(&keys, run), Some(1000), "runs of {run}");
        }
        // Empty names and binary ones count as any other.
        assert_eq!(search(&[(0, b""), (0, b"\0\r\n"), (0, b"")], 2), Some(2));
    }

    #[test]
    fn a_run_sorts_as_a_whole_sort_would() {
        let seeds = uuid::Uuid::new_v4().as_u64_pair();
        let hasher = SipHasher13::new_with_keys(seeds.0, seeds.1);
        let mut run: Vec<Entry> = (0..10_000u64)
            .map(|key| Entry { hash: hasher.hash(&(key % 7000).to_le_bytes()).as_u64(), key })
            .collect();
        // Hashes whose top bits are all alike land in one bucket.
        run.extend((0..100).map(|key| Entry { hash: (5, 100 - key), key }));
        let mut expected = run.clone();
        expected.sort_unstable();
        sort_run(&mut run, &mut Vec::new());
        assert_eq!(run, expected);
    }

    #[test]
    fn entries_survive_the_spill_file() {
        let entry = Entry { hash: (u64::MAX, 7), key: 1 << 40 };
        assert_eq!(decode(&encode(&entry)), entry);
    }
}

//! The rewrite of a walked stream with its LZF strings stored plain (`expand.rs`): the
//! same items, a checksum Redis accepts, the same data once loaded, whatever the sizes of
//! the reads, and output that leaves a big value in bounded pieces.

use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::super::{Item, RdbReader};
use super::{Client, REDIS_6_2_RDB, Server, digest, load_every_type, noise};
use crate::engine::redis::connection::Reply;

/// Gives `bytes` at most `piece` at a time.
struct Trickle<'a> {
    bytes: &'a [u8],
    piece: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = buffer.len().min(self.piece).min(self.bytes.len());
        buffer[..count].copy_from_slice(&self.bytes[..count]);
        self.bytes = &self.bytes[count..];
        Ok(count)
    }
}

/// What a walk of `rdb`, read `piece` bytes at a time, writes as its rewrite: the bytes,
/// the sizes of the chunks it gave, and the LZF strings it stored plain.
fn expanded(rdb: &[u8], piece: usize) -> (Vec<u8>, Vec<usize>, u64) {
    let written = Arc::new(Mutex::new((Vec::new(), Vec::new())));
    let sink = {
        let written = written.clone();
        Box::new(move |bytes: Vec<u8>, _offset: u64| {
            let mut written = written.lock().unwrap();
            written.1.push(bytes.len());
            written.0.extend_from_slice(&bytes);
            true
        })
    };
    let mut reader = RdbReader::new(Trickle { bytes: rdb, piece }).unwrap().walk_only().expanding(sink);
    while reader.next().unwrap().is_some() {}
    reader.release_expanded_end().unwrap();
    let strings = reader.expanded_strings();
    drop(reader);
    let (bytes, chunks) = std::mem::take(&mut *written.lock().unwrap());
    (bytes, chunks, strings)
}

/// Every item of `rdb`, every value decoded.
fn decoded(rdb: &[u8]) -> Vec<Item> {
    let mut reader = RdbReader::new(rdb).unwrap().decode_all();
    let mut items = Vec::new();
    while let Some(item) = reader.next().unwrap() {
        items.push(item);
    }
    assert_eq!(reader.offset(), rdb.len() as u64, "bytes after the end");
    items
}

/// A server started on the rewrite of `rdb`, which must come in pieces under 2 MiB, and
/// the LZF strings the rewrite stored plain.
fn load_rewrite_in_pieces(rdb: &[u8]) -> (Loaded, u64) {
    let (rewritten, chunks, strings) = expanded(rdb, 1 << 16);
    let biggest = chunks.iter().max().copied().unwrap_or_default();
    assert!(biggest < 2 << 20, "a chunk of {biggest} bytes");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dump.rdb"), &rewritten).unwrap();
    let server = Server::start_with(Path::new("redis-server"), &["--dir", dir.path().to_str().unwrap()]);
    (Loaded { server, _dir: dir }, strings)
}

/// A server that loaded a file at start, with the directory that holds it.
struct Loaded {
    server: Server,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Loaded {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

#[test]
fn the_rewrite_of_a_redis_6_2_file_holds_the_same_items_without_lzf() {
    let (rewritten, _, strings) = expanded(REDIS_6_2_RDB, 1 << 16);
    assert!(strings > 0, "the fixture holds lzf strings");
    assert!(rewritten.len() > REDIS_6_2_RDB.len(), "{} bytes", rewritten.len());
    assert_eq!(decoded(&rewritten), decoded(REDIS_6_2_RDB));
    for piece in [1, 3, 7, 4096] {
        assert_eq!(expanded(REDIS_6_2_RDB, piece).0, rewritten, "read {piece} bytes at a time");
    }
    let (again, _, strings) = expanded(&rewritten, 1 << 16);
    assert_eq!((again, strings), (rewritten, 0), "nothing left to rewrite");
}

#[test]
fn redis_loads_the_rewrite_of_its_own_file_as_the_same_data() {
    let source = Server::start(Path::new("redis-server"));
    let mut client = source.client();
    load_every_type(&mut client);
    // One value of 4 MiB in 1 KiB elements that compress well: the rewrite gives it in
    // pieces, not whole.
    let element = "a compressible element ".repeat(45);
    for _ in 0..4 {
        let batch: Vec<&str> =
            ["RPUSH", "list:big"].into_iter().chain(std::iter::repeat_n(&element[..], 1000)).collect();
        client.run(&batch);
    }
    let (target, strings) = load_rewrite_in_pieces(&source.save(&mut client));
    assert!(strings > 100, "{strings} lzf strings");
    let mut loaded = target.client();
    for db in ["0", "1", "5"] {
        client.run(&["SELECT", db]);
        loaded.run(&["SELECT", db]);
        assert_eq!(digest(&mut loaded), digest(&mut client), "database {db}");
    }
}

#[test]
fn a_key_name_and_a_function_library_of_megabytes_go_in_pieces() {
    let source = Server::start(Path::new("redis-server"));
    let mut client = source.client();
    load_every_type(&mut client);
    // Neither compresses to less than the bytes the rewrite holds back at most (8 MiB).
    let name = noise(7, 10 << 20);
    client.run_bytes(&[b"SET", &name, b"a value under a name of 10 MiB"]);
    let comment: String = noise(8, 8 << 20).iter().map(|byte| format!("{byte:02x}")).collect();
    let code = format!("#!lua name=big\n-- {comment}\nredis.register_function('g', function() return 2 end)");
    client.run(&["FUNCTION", "LOAD", &code]);
    let (target, _) = load_rewrite_in_pieces(&source.save(&mut client));
    let mut loaded = target.client();
    assert_eq!(digest(&mut loaded), digest(&mut client));
    // The libraries come in no set order, each as its own compressed string.
    let dump_size = |client: &mut Client| client.bulk(&[b"FUNCTION", b"DUMP"]).len();
    assert_eq!(dump_size(&mut loaded), dump_size(&mut client));
    assert_eq!(loaded.run(&["FCALL", "g", "0"]), Reply::Integer(2));
}

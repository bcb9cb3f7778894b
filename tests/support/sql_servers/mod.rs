//! Throwaway PostgreSQL and MariaDB servers for tests, each on a free loopback port in a
//! temporary directory of its own, stopped and removed on drop; a fixture holding every
//! kind of value and schema object each engine has; and checksums that compare two
//! databases by content.
//!
//! When `CELLAR_TEST_POSTGRES_URL` or `CELLAR_TEST_MARIADB_URL` names an existing server
//! (`postgres://user:password@host:port/database`, `mysql://...`, the user allowed to
//! create databases), the harness uses it instead of starting one: the databases it
//! creates get a unique prefix (hidden from the caller) and are dropped on drop.
//!
//! This module is shared: the integration tests use it as `support::sql_servers`, and
//! the library's engine tests include it with `#[path]`, so it uses only std and
//! tempfile. SQL goes through the command-line clients (`psql`, `mariadb`) on standard
//! input. `postgres.rs` and `mariadb.rs` hold each engine's server, fixture and
//! checksums; this file what they share.

// The library's tests use only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to initialize its directory and accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to shut down after being asked before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often start-up and shutdown are looked at again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many ports are tried when another process takes the probed one first.
const PORT_ATTEMPTS: usize = 5;

/// The environment variable naming an existing PostgreSQL server to use.
pub(crate) const POSTGRES_URL_VARIABLE: &str = "CELLAR_TEST_POSTGRES_URL";
/// The environment variable naming an existing MariaDB server to use.
pub(crate) const MARIADB_URL_VARIABLE: &str = "CELLAR_TEST_MARIADB_URL";

/// How to get PostgreSQL, for the messages of a missing program.
const POSTGRES_INSTALL_HINT: &str = "run scripts/test (it installs it) or apt-get install postgresql \
     postgresql-client; or set CELLAR_TEST_POSTGRES_URL to postgres://user:password@host:port/database \
     of a server where the user may create databases";

/// How to get MariaDB, for the messages of a missing program.
const MARIADB_INSTALL_HINT: &str = "run scripts/test (it installs it) or apt-get install mariadb-server \
     mariadb-client; or set CELLAR_TEST_MARIADB_URL to mysql://user:password@host:port/database of a \
     server where the user may create databases";

/// The user the harness creates in the servers it starts.
const USER: &str = "cellar";

mod mariadb;
mod postgres;

// Each user takes part: the library's tests only the MariaDB server.
#[allow(unused_imports)]
pub(crate) use mariadb::MariaDbServer;
#[allow(unused_imports)]
pub(crate) use postgres::PostgresServer;

// ---------------------------------------------------------------------------------------
// Shared parts

/// A server process the harness started, and its directory. The process goes first
/// (fields drop in order), then the directory.
struct LocalServer {
    /// The server process.
    process: Daemon,
    /// Its data directory, socket, log (and for PostgreSQL, password file).
    dir: TempDir,
}

impl LocalServer {
    /// The server's log.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// A server child process, asked to stop (then killed if it does not) on drop.
struct Daemon {
    /// `None` once stopped.
    child: Option<Child>,
    /// The signal that asks for a clean, quick shutdown (`INT`, `TERM`).
    stop_signal: &'static str,
}

impl Daemon {
    /// Sends the stop signal and waits for the exit; kills the process when it is not
    /// gone within [`STOP_TIMEOUT`]. Does nothing when it is already stopped.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // The `kill` program, as std sends no other signal than SIGKILL.
        let signalled = Command::new("kill")
            .arg(format!("-{}", self.stop_signal))
            .arg(child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if signalled {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the process (SIGKILL) and waits for it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process has exited.
    fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|child| matches!(child.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the server `spawn(port)` makes, on a free port, its output appended to `log`,
/// and waits until `ready(port)`. A free port can be taken by another process between
/// the probe and the bind: then it starts again on another port. Panics with the log
/// when the server exits or does not become ready in time.
fn start_listening(
    name: &str,
    log: &Path,
    stop_signal: &'static str,
    spawn: impl Fn(u16) -> Command,
    ready: impl Fn(u16) -> bool,
) -> (Daemon, u16) {
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port();
        let _ = std::fs::remove_file(log);
        // Appending, as the server may open the same file itself (`--log-error`).
        let output = File::options().create(true).append(true).open(log).expect("open the log");
        let mut command = spawn(port);
        command.stdin(Stdio::null()).stdout(output.try_clone().expect("the log")).stderr(output);
        let child = command.spawn().unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        let mut server = Daemon { child: Some(child), stop_signal };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if server.exited() {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                if text.contains("Address already in use") {
                    break;
                }
                panic!("{name} exited at start-up; its log:\n{text}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() && ready(port) {
                return (server, port);
            }
            if Instant::now() > deadline {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("{name} was not ready within {START_TIMEOUT:?}; its log:\n{text}");
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
    panic!("{name} found no free port in {PORT_ATTEMPTS} attempts")
}

/// Where a server is and how to log in; for an existing server, also the prefix of the
/// databases the harness creates.
struct Connection {
    /// The host name or address.
    host: String,
    /// The TCP port.
    port: u16,
    /// The user to log in as.
    user: String,
    /// Its password (decoded).
    password: String,
    /// The database to connect to for server-wide statements.
    maintenance_database: String,
    /// Put before every database name given to the harness: empty for a server it
    /// started, unique for an existing one.
    prefix: String,
}

impl Connection {
    /// The server the harness started.
    fn local(port: u16, password: &str, maintenance_database: &str) -> Connection {
        Connection {
            host: "127.0.0.1".to_owned(),
            port,
            user: USER.to_owned(),
            password: password.to_owned(),
            maintenance_database: maintenance_database.to_owned(),
            prefix: String::new(),
        }
    }

    /// An existing server from `SCHEME://USER:PASSWORD@HOST:PORT/DATABASE` (the value of
    /// the environment variable `variable`).
    fn parse(variable: &str, url: &str, schemes: &[&str], default_port: u16) -> Connection {
        let invalid = |why: &str| -> ! {
            panic!("{variable} must look like {}://user:password@host:port/database: {why}", schemes[0])
        };
        let (scheme, rest) = url.split_once("://").unwrap_or_else(|| invalid("no scheme"));
        if !schemes.contains(&scheme) {
            invalid(&format!("scheme {scheme}"));
        }
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let database = database.split('?').next().unwrap_or_default();
        let (credentials, address) = authority.rsplit_once('@').unwrap_or_else(|| invalid("no user"));
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().unwrap_or_else(|_| invalid("bad port"))),
            None => (address, default_port),
        };
        Connection {
            host: host.to_owned(),
            port,
            user: percent_decode(user),
            password: percent_decode(password),
            maintenance_database: percent_decode(database),
            prefix: format!("cellar_test_{}_", &random_token()[..12]),
        }
    }

    /// The real name of the database the harness calls `name`.
    fn database_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The databases of `names` (one a line) that are the harness's, as it calls them.
    fn own_databases(&self, names: &str) -> Vec<String> {
        names.lines().filter_map(|name| name.strip_prefix(&self.prefix)).map(str::to_owned).collect()
    }

    /// `SCHEME://USER:PASSWORD@HOST:PORT/DATABASE`.
    fn url(&self, scheme: &str, database: &str) -> String {
        format!(
            "{scheme}://{}:{}@{}:{}/{}",
            percent_encode(&self.user),
            percent_encode(&self.password),
            self.host,
            self.port,
            percent_encode(database)
        )
    }
}

/// Runs `command` with `input` on its standard input; returns its standard output
/// without the last newline, or what it printed (with its exit status) when it fails.
fn run_with_input(mut command: Command, input: &str) -> Result<String, String> {
    let program = Path::new(command.get_program()).display().to_string();
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| format!("cannot run {program}: {error}"))?;
    let mut stdin = child.stdin.take().expect("a piped stdin");
    let input = input.to_owned();
    // Written from another thread: a client may print before it has read everything.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(|error| format!("{program} failed: {error}"))?;
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() {
        return Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned());
    }
    Err(format!("{program} failed ({}):\n{}{stdout}", output.status, String::from_utf8_lossy(&output.stderr)))
}

/// `KEY<TAB>VALUE` lines as a map; panics on other lines and on a key seen twice.
fn key_value_lines(output: &str) -> BTreeMap<String, String> {
    let mut entries = BTreeMap::new();
    for line in output.lines().filter(|line| !line.is_empty()) {
        let (key, value) =
            line.split_once('\t').unwrap_or_else(|| panic!("unexpected checksum line {line:?}"));
        let previous = entries.insert(key.to_owned(), value.to_owned());
        assert!(previous.is_none(), "checksum key {key} seen twice");
    }
    entries
}

/// The first of `names` found on PATH (or in the sbin directories, where servers live);
/// panics naming `what` and `hint` when none is.
fn program_on_path(names: &[&str], what: &str, hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{what} is not installed ({} not found): {hint}", names.join(" or ")))
}

/// Makes `command` run as `owner` (uid, gid) when given, in `dir`. std sets the ids in
/// the child before it runs the program, so the child is the server itself (`runuser`
/// would stand between them and not pass on every signal).
fn run_as(command: &mut Command, owner: Option<(u32, u32)>, dir: &Path) {
    command.current_dir(dir);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
}

/// Whether this process runs as root (the owner of `/proc/self` is its effective uid).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|metadata| metadata.uid() == 0)
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

/// 32 random lowercase hex digits (std's hasher keys are random per process and differ
/// for every `RandomState`).
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
        );
        hasher.write_u32(std::process::id());
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(), half())
}

/// `text` with every byte but unreserved URL characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// `text` with its `%XX` sequences decoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes.get(index + 1..index + 3).and_then(|hex| std::str::from_utf8(hex).ok());
        match (bytes[index], escaped.and_then(|hex| u8::from_str_radix(hex, 16).ok())) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                index += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

//! The engines' own tools (`pg_dump`, `pg_restore`, `psql`, `mariadb-dump`, `mariadb`)
//! run as child processes.
//!
//! - Found on disk by name (PATH, then extra directories such as
//!   `/usr/lib/postgresql/*/bin`, or only the directories of the `tool_path` setting),
//!   with their version read from `--version`.
//! - Run with secrets only in their environment (never in argv, which `ps` shows), and
//!   with the caller's `PG*`/`MYSQL*` variables removed so that nothing leaks from
//!   Cellar's own environment into a connection to another server.
//! - Dump tools write their output 1 MiB at a time, under `stdbuf` (`tool_buffer.rs`).
//! - Killed with the operation (the handle is dropped at a cancel or shutdown) and with
//!   Cellar itself (a parent-death signal), so a crash leaves no dump running.
//! - Their error output is kept, last lines only and secrets replaced by `****`, for the
//!   messages of the errors they cause.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, ReadBuf};
use tokio::process::{Child, ChildStdout, Command};

use super::Error;
use super::tool_versions::VersionCache;

mod feed;
pub use feed::run_feeding;

/// How many lines of a tool's error output are kept for messages.
const TAIL_LINES: usize = 12;

/// Environment variable prefixes removed from every tool's environment.
const INHERITED_PREFIXES: &[&str] = &["PG", "MYSQL", "MARIADB"];

/// An installed tool: where it is and the version it reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// The executable.
    pub path: PathBuf,
    /// The version it reports (`15.18`, `10.11.6`), or empty when it says none.
    pub version: String,
}

impl Tool {
    /// The major version: the first number of `version` (`15` of `15.18`), 0 if none.
    pub fn major(&self) -> u32 {
        leading_number(&self.version)
    }
}

/// Where the engines look for their tools, and the versions they reported (shared by
/// every clone).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPath {
    /// Only these directories, when set (the `tool_path` setting); else PATH and each
    /// engine's usual places.
    only: Option<Arc<[PathBuf]>>,
    versions: VersionCache,
}

impl ToolPath {
    /// Look only in `dirs`.
    pub fn only(dirs: Vec<PathBuf>) -> ToolPath {
        ToolPath { only: Some(dirs.into()), versions: VersionCache::default() }
    }

    /// The places searched, described for messages.
    pub fn describe(&self, usual: &str) -> String {
        match &self.only {
            Some(dirs) => {
                let dirs: Vec<String> = dirs.iter().map(|dir| dir.display().to_string()).collect();
                format!("the tool path {}", dirs.join(":"))
            }
            None => format!("PATH and {usual}"),
        }
    }

    /// Every installed copy of the first of `names` found in each place (PATH, then
    /// `usual` dirs; or only the set directories), with the version each reports (asked
    /// of all at once, and remembered: see [`VersionCache`]); duplicates (one file
    /// reached twice) removed.
    pub async fn find_all(&self, names: &[&str], usual: &[PathBuf]) -> Vec<Tool> {
        let places: Vec<PathBuf> = match &self.only {
            Some(dirs) => dirs.to_vec(),
            None => {
                let mut places: Vec<PathBuf> = std::env::var_os("PATH")
                    .map(|path| std::env::split_paths(&path).collect())
                    .unwrap_or_default();
                places.extend(usual.iter().cloned());
                places
            }
        };
        find_in(names, places, &self.versions).await
    }
}

async fn find_in(names: &[&str], places: Vec<PathBuf>, versions: &VersionCache) -> Vec<Tool> {
    let mut seen = Vec::new();
    let mut paths = Vec::new();
    for dir in places {
        let Some(path) = names.iter().map(|name| dir.join(name)).find(|path| is_executable(path)) else {
            continue;
        };
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if seen.contains(&real) {
            continue;
        }
        seen.push(real);
        paths.push(path);
    }
    let asked = paths.iter().map(|path| versions.version_of(path, || version_of(path)));
    let answers = futures::future::join_all(asked).await;
    paths
        .into_iter()
        .zip(answers)
        .filter_map(|(path, version)| version.map(|version| Tool { path, version }))
        .collect()
}

/// The directories `pattern`'s single `*` matches (`/usr/lib/postgresql/*/bin`).
pub fn glob_dirs(pattern: &str) -> Vec<PathBuf> {
    let Some((before, after)) = pattern.split_once('*') else { return vec![PathBuf::from(pattern)] };
    let Ok(entries) = std::fs::read_dir(before) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path().join(after.trim_start_matches('/')))
        .filter(|dir| dir.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The version a tool prints for `--version`: the first word that starts with a digit
/// and holds a dot (`pg_dump (PostgreSQL) 15.18 (Debian ...)` gives `15.18`;
/// `mariadb-dump from 11.4.2-MariaDB, ...` gives `11.4.2`).
async fn version_of(path: &Path) -> Option<String> {
    let mut command = command(path);
    command.arg("--version").stdout(Stdio::piped()).stderr(Stdio::null());
    let output =
        tokio::time::timeout(std::time::Duration::from_secs(10), command.output()).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    Some(parse_version(&text).unwrap_or_default())
}

/// The version in a `--version` line; see [`version_of`].
pub fn parse_version(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .find(|word| word.starts_with(|c: char| c.is_ascii_digit()) && word.contains('.'))
        .map(|word| word.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect::<String>())
}

/// The number a text starts with (`15` of `15.18`, `150018`), 0 if none.
pub fn leading_number(text: &str) -> u32 {
    let digits: String = text.trim().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

/// Whether an environment variable of Cellar's is kept from the tools.
fn withheld(key: &str) -> bool {
    INHERITED_PREFIXES.iter().any(|prefix| key.starts_with(prefix))
}

/// A command for `program` that runs with no stdin, none of the caller's
/// `PG*`/`MYSQL*` variables, is killed when its handle is dropped, and is killed when
/// Cellar dies.
pub fn command(program: &Path) -> Command {
    prepared(Command::new(program))
}

/// A [`command`] for a dump tool whose standard output Cellar reads through a pipe:
/// run under `stdbuf`, where it works, so that it writes 1 MiB at a time
/// (`tool_buffer.rs`).
pub fn dump_command(program: &Path) -> Command {
    let Some(stdbuf) = super::tool_buffer::stdbuf() else { return command(program) };
    let mut command = prepared(Command::new(stdbuf));
    command.arg(format!("--output={}", super::tool_buffer::OUTPUT_BUFFER)).arg(program);
    command
}

// Makes `command` run as [`command`] says.
// The one unsafe block of the crate: a child must not outlive Cellar (a dump left
// running holds a snapshot open on the server), and only a parent-death signal set
// in the child between fork and exec guarantees that.
#[allow(unsafe_code)]
fn prepared(mut command: Command) -> Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if withheld(&key) {
            command.env_remove(key.as_ref());
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // prctl(2), which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
}

/// The last lines of a tool's error output, secrets replaced by `****`.
#[derive(Debug, Clone, Default)]
pub struct Tail {
    lines: Arc<Mutex<VecDeque<String>>>,
    secrets: Arc<Vec<String>>,
}

impl Tail {
    /// An empty tail that will scrub `secrets` from every line it keeps.
    pub fn new(secrets: Vec<String>) -> Self {
        let secrets = secrets.into_iter().filter(|secret| !secret.is_empty()).collect();
        Tail { lines: Arc::default(), secrets: Arc::new(secrets) }
    }

    /// Keeps `line`, scrubbed; beyond the limit forgets the oldest line that is not an
    /// error (a verbose tool's chatter must not push out why it failed), else the oldest.
    pub fn push(&self, line: &str) {
        let line = self.scrub(line.trim_end());
        if line.is_empty() {
            return;
        }
        let mut lines = self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == TAIL_LINES {
            match lines.iter().position(|kept| !is_error_line(kept)) {
                Some(chatter) => drop(lines.remove(chatter)),
                None => drop(lines.pop_front()),
            }
        }
        lines.push_back(line);
    }

    /// `text` with every secret replaced by `****`.
    pub fn scrub(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "****"))
    }

    /// The kept lines joined by `; `.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        lines.iter().map(String::as_str).collect::<Vec<_>>().join("; ")
    }
}

/// Whether a line of a tool's error output says what went wrong (`pg_restore: error:
/// ...`, `FATAL: ...`, `ERROR 1045 ...`) rather than what it is doing.
fn is_error_line(line: &str) -> bool {
    let lower = line.to_ascii_lowercase();
    ["error", "fatal", "failed", "could not"].iter().any(|word| lower.contains(word))
}

/// Turns a tool's failure (its exit status and error output) into an engine error.
pub type Judge = Arc<dyn Fn(ExitStatus, &str) -> Error + Send + Sync>;

/// Runs a tool to its end, feeding it `input`; returns its standard output, or the
/// judged error when it fails.
pub async fn run(
    mut command: Command,
    input: Option<Vec<u8>>,
    tail: &Tail,
    judge: &Judge,
) -> Result<Vec<u8>, Error> {
    command
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| spawn_error(&command, &error))?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that exits early closes its stdin; its exit status tells why.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    }
    let output = child.wait_with_output().await.map_err(|error| Error::Unreachable(error.to_string()))?;
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        tail.push(line);
    }
    if output.status.success() { Ok(output.stdout) } else { Err(judge(output.status, &tail.text())) }
}

/// Starts a tool whose standard output is read as it comes; every line of its error
/// output goes to `on_line` (scrubbed) and into `tail`.
pub fn spawn_streaming(
    mut command: Command,
    tail: Tail,
    on_line: impl Fn(&str) + Send + Sync + 'static,
) -> Result<(Child, ChildStdout), Error> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| spawn_error(&command, &error))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    // A pipe that holds one of a dump tool's 1 MiB writes (`tool_buffer.rs`) takes it
    // at once, and the tool goes back to its server while Cellar reads. Where the
    // kernel refuses, the default stays.
    let _ = rustix::pipe::fcntl_setpipe_size(&stdout, TOOL_PIPE);
    follow_stderr(&mut child, tail, on_line);
    Ok((child, stdout))
}

/// Starts a dump tool whose standard output is the data, counting the lines of its
/// error output that `counts` picks (one per table, say); returns its output as a
/// [`ToolOutput`] and the count.
pub fn spawn_counting(
    command: Command,
    tail: Tail,
    judge: Judge,
    counts: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Result<(ToolOutput, Arc<AtomicU64>), Error> {
    let counted = Arc::new(AtomicU64::new(0));
    let counter = counted.clone();
    let (child, stdout) = spawn_streaming(command, tail.clone(), move |line| {
        if counts(line) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    })?;
    Ok((ToolOutput::new(child, stdout, tail, judge), counted))
}

/// Runs a tool to its end, its error output going line by line to `on_line` (scrubbed)
/// and into `tail`; the judged error when it fails.
pub async fn run_following(
    mut command: Command,
    tail: Tail,
    judge: &Judge,
    on_line: impl Fn(&str) + Send + Sync + 'static,
) -> Result<(), Error> {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| spawn_error(&command, &error))?;
    let follower = follow_stderr(&mut child, tail.clone(), on_line);
    let status = child.wait().await.map_err(|error| Error::Unreachable(error.to_string()))?;
    let _ = follower.await;
    if status.success() { Ok(()) } else { Err(judge(status, &tail.text())) }
}

/// The size asked for a tool's data pipe, its output's or its input's (Linux's limit for
/// a process without privileges, `/proc/sys/fs/pipe-max-size`).
const TOOL_PIPE: usize = 1 << 20;

/// The engine [`Error`] a read error carries (a check of the data refusing it, made
/// with `std::io::Error::new(kind, error)`), else the read error itself.
pub fn carried(error: std::io::Error) -> Result<Error, std::io::Error> {
    if !error.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return Err(error);
    }
    let kind = error.kind();
    match error.into_inner() {
        Some(inner) => inner
            .downcast::<Error>()
            .map(|carried| *carried)
            .map_err(|other| std::io::Error::new(kind, other)),
        None => Err(std::io::Error::from(kind)),
    }
}

fn follow_stderr(
    child: &mut Child,
    tail: Tail,
    on_line: impl Fn(&str) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let stderr = child.stderr.take().expect("stderr is piped");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let line = tail.scrub(&line);
            on_line(&line);
            tail.push(&line);
        }
    })
}

fn spawn_error(command: &Command, error: &std::io::Error) -> Error {
    let program = command.as_std().get_program().to_string_lossy().into_owned();
    Error::ToolNotFound(format!("cannot run {program}: {error}"))
}

/// A tool's standard output as a stream that ends (`Ok(0)`) only once the tool has
/// exited successfully; a failed exit is a read error carrying the judged
/// [`Error`]. Dropping it kills the tool.
pub struct ToolOutput {
    stdout: ChildStdout,
    exit: Option<Pin<Box<dyn Future<Output = std::io::Result<ExitStatus>> + Send>>>,
    child: Option<Child>,
    tail: Tail,
    judge: Judge,
}

impl ToolOutput {
    /// Follows `child`'s `stdout`; `judge` explains a failed exit from `tail`.
    pub fn new(child: Child, stdout: ChildStdout, tail: Tail, judge: Judge) -> Self {
        ToolOutput { stdout, exit: None, child: Some(child), tail, judge }
    }
}

impl AsyncRead for ToolOutput {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.exit.is_none() {
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.stdout).poll_read(cx, buf))?;
            if buf.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            // End of output: the data is whole only if the tool exits cleanly. The
            // future owns the child, so dropping the stream still kills it.
            let Some(mut child) = this.child.take() else { return Poll::Ready(Ok(())) };
            this.exit = Some(Box::pin(async move {
                let status = child.wait().await;
                // Let the error output reach the tail before it is read.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                status
            }));
        }
        let Some(exit) = this.exit.as_mut() else { return Poll::Ready(Ok(())) };
        let status = ready!(exit.as_mut().poll(cx))?;
        this.exit = Some(Box::pin(std::future::ready(Ok(status))));
        if status.success() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Ready(Err(std::io::Error::other((this.judge)(status, &this.tail.text()))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn judge() -> Judge {
        Arc::new(|status, tail| Error::Unreachable(format!("{status}: {tail}")))
    }

    #[test]
    fn versions_are_read_from_version_lines() {
        let cases = [
            ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", "15.18"),
            ("mariadb-dump from 11.4.2-MariaDB, client 10.19 for debian-linux-gnu (x86_64)", "11.4.2"),
            ("mysqldump  Ver 8.0.36 for Linux on x86_64", "8.0.36"),
        ];
        for (line, version) in cases {
            assert_eq!(parse_version(line).as_deref(), Some(version), "{line}");
        }
        assert_eq!(parse_version("no version here"), None);
        assert_eq!(Tool { path: PathBuf::new(), version: "15.18".into() }.major(), 15);
        assert_eq!(leading_number("150018"), 150018);
    }

    #[test]
    fn the_tail_keeps_the_last_lines_without_secrets() {
        let tail = Tail::new(vec!["hunter2".into(), String::new()]);
        for n in 0..20 {
            tail.push(&format!("line {n} password hunter2"));
        }
        let text = tail.text();
        assert!(text.starts_with("line 8 password ****"), "{text}");
        assert!(!text.contains("hunter2"));

        let verbose = Tail::default();
        verbose.push("pg_restore: error: could not read from input file: end of file");
        for n in 0..20 {
            verbose.push(&format!("pg_restore: processing item {n}"));
        }
        let text = verbose.text();
        assert!(text.starts_with("pg_restore: error: could not read"), "{text}");
        assert!(text.ends_with("processing item 19"), "{text}");
    }

    #[tokio::test]
    async fn output_ends_only_after_a_clean_exit() {
        let mut ok = command(Path::new("sh"));
        ok.args(["-c", "printf data"]);
        let (child, stdout) = spawn_streaming(ok, Tail::default(), |_| {}).unwrap();
        let mut body = ToolOutput::new(child, stdout, Tail::default(), judge());
        let mut read = String::new();
        body.read_to_string(&mut read).await.unwrap();
        assert_eq!(read, "data");

        let mut failing = command(Path::new("sh"));
        failing.args(["-c", "printf part; echo 'broke with hunter2' >&2; exit 3"]);
        let tail = Tail::new(vec!["hunter2".into()]);
        let (child, stdout) = spawn_streaming(failing, tail.clone(), |_| {}).unwrap();
        let mut body = ToolOutput::new(child, stdout, tail, judge());
        let error = body.read_to_string(&mut String::new()).await.unwrap_err();
        let inner = error.get_ref().and_then(|inner| inner.downcast_ref::<Error>()).expect("an engine error");
        assert!(inner.to_string().contains("broke with ****"), "{inner}");
    }

    #[tokio::test]
    async fn a_dump_tool_writes_through_a_big_buffer_and_keeps_its_exit_status() {
        assert!(super::super::tool_buffer::stdbuf().is_some(), "coreutils' stdbuf is missing or broken");
        let mut env = dump_command(Path::new("/usr/bin/env"));
        env.env("MYSQL_PWD", "given").stdout(Stdio::piped());
        let output = env.output().await.unwrap();
        let variables = String::from_utf8_lossy(&output.stdout);
        assert!(variables.lines().any(|line| line == "_STDBUF_O=1048576"), "{variables}");
        assert!(variables.lines().any(|line| line == "MYSQL_PWD=given"), "the tool's own login reaches it");

        let mut failing = dump_command(Path::new("/bin/sh"));
        failing.args(["-c", "echo partial; exit 3"]).stdout(Stdio::piped());
        let output = failing.output().await.unwrap();
        assert_eq!((output.status.code(), output.stdout.as_slice()), (Some(3), &b"partial\n"[..]));
    }

    #[test]
    fn the_callers_database_variables_are_withheld() {
        for key in ["PGPASSWORD", "PGHOST", "MYSQL_PWD", "MARIADB_HOST"] {
            assert!(withheld(key), "{key}");
        }
        for key in ["PATH", "HOME", "LANG"] {
            assert!(!withheld(key), "{key}");
        }
    }
}

//! Throwaway storage servers for tests, on free loopback ports: an FTP server
//! (`pyftpdlib`, from the project's `.venv`) and a WebDAV server (`rclone serve
//! webdav`). Shared by the unit tests of the backends and the integration tests (which
//! include this file by path). Each server serves a fresh temporary directory and is
//! killed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running test server serving `dir`.
#[derive(Debug)]
pub(crate) struct StorageServer {
    child: Child,
    /// The loopback port it listens on.
    pub(crate) port: u16,
    /// The directory it serves.
    pub(crate) dir: tempfile::TempDir,
}

impl StorageServer {
    /// An FTP server (pyftpdlib) with one writable user.
    pub(crate) fn ftp(user: &str, password: &str) -> StorageServer {
        let python = python_with("pyftpdlib");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let mut command = Command::new(python);
        command
            .args(["-m", "pyftpdlib", "-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-u", user, "-P", password, "-w", "-d"])
            .arg(dir.path());
        StorageServer::start(command, port, dir)
    }

    /// A WebDAV server (`rclone serve webdav`), with Basic auth when `credentials` are
    /// given.
    pub(crate) fn webdav(credentials: Option<(&str, &str)>) -> StorageServer {
        let rclone = "rclone";
        let runs = Command::new(rclone).arg("version").output().is_ok_and(|output| output.status.success());
        assert!(runs, "rclone not found: run scripts/test (it installs it) or apt-get install rclone");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let mut command = Command::new(rclone);
        command
            .args(["serve", "webdav", "--config", "/dev/null", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(dir.path());
        if let Some((user, password)) = credentials {
            command.args(["--user", user, "--pass", password]);
        }
        StorageServer::start(command, port, dir)
    }

    fn start(mut command: Command, port: u16, dir: tempfile::TempDir) -> StorageServer {
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = command.spawn().unwrap_or_else(|error| panic!("cannot start {command:?}: {error}"));
        let mut server = StorageServer { child, port, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{command:?} exited with {status} before listening");
            }
            assert!(Instant::now() < deadline, "{command:?} did not listen within {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(25));
        }
        server
    }

    /// Stops the server (a kill, as a crash would).
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every file under the served directory, relative to it, sorted.
    pub(crate) fn files(&self) -> Vec<String> {
        files_under(self.dir.path())
    }
}

impl Drop for StorageServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("the bound address").port()
}

/// The Python that has `module`: `CELLAR_TEST_PYTHON`, else the project's `.venv`, else
/// `python3` on PATH.
fn python_with(module: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let candidates = std::env::var_os("CELLAR_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv, PathBuf::from("python3")]);
    for python in candidates {
        let imports = Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if imports {
            return python;
        }
    }
    panic!(
        "the Python module {module} was not found: run scripts/test (it installs it into .venv), \
         or python3 -m venv .venv && .venv/bin/pip install {module}"
    )
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                files.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    files
}

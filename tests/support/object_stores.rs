//! Throwaway object stores on free loopback ports: moto (S3, checking signatures) and
//! Azurite (Azure Blob). Killed on drop.
//!
//! This file is shared: the integration tests use it as `support::object_stores`, and
//! the library's storage tests include it with `#[path]` to run the shared storage
//! suite against each store, so it uses only std, tempfile and reqwest. The set-up
//! requests (IAM user, bucket, container, object ACL) go through `object_stores.py`
//! beside it, run by the `.venv` Python that `scripts/test` fills.

// The library's tests use only part of it.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Azurite's well-known development account.
pub(crate) const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Its account key (public, the same in every Azurite).
pub(crate) const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

const INSTALL_HINT: &str = "run scripts/test, which installs moto[server] and azure-storage-blob into .venv \
                            and azurite into node_modules (npm ci)";

fn project_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn installed(relative: &str, what: &str) -> PathBuf {
    let path = project_dir().join(relative);
    assert!(path.is_file(), "{what} is not installed at {}: {INSTALL_HINT}", path.display());
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

/// Runs `object_stores.py COMMAND ARGS...` and returns its standard output.
fn helper(args: &[&str]) -> String {
    let python = installed(".venv/bin/python", "the test virtualenv");
    let script = project_dir().join("tests/support/object_stores.py");
    let output = Command::new(python).arg(script).args(args).output().expect("running object_stores.py");
    assert!(
        output.status.success(),
        "object_stores.py {args:?} failed ({INSTALL_HINT}):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// A child process that listens on `port`, killed on drop.
struct Listening {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl Listening {
    /// Starts `command` (given its port and directory) until one listens: a free port can
    /// be taken between the probe and the bind.
    fn start(name: &str, command: impl Fn(u16, &Path) -> Command) -> Listening {
        let mut dir =
            tempfile::Builder::new().prefix(&format!("cellar-{name}-")).tempdir().expect("temp dir");
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
            let child = command(port, dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|error| panic!("cannot start {name} ({INSTALL_HINT}): {error}"));
            let mut server = Listening { child, port, dir };
            if server.wait_listening() {
                return server;
            }
            last_log = server.log();
            dir = server.into_dir();
        }
        panic!("{name} did not start; its log:\n{last_log}");
    }

    fn wait_listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn into_dir(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::Builder::new().prefix("cellar-store-").tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A moto S3 server that checks signatures, with one bucket and a user allowed
/// everything.
pub(crate) struct Moto {
    server: Listening,
    /// The bucket created at start.
    pub(crate) bucket: String,
    /// The user's access key id.
    pub(crate) access_key_id: String,
    /// The user's secret key.
    pub(crate) secret_access_key: String,
}

impl Moto {
    /// Starts `moto_server` from `.venv` and sets it up (blocking: a second or two).
    pub(crate) fn start() -> Moto {
        Moto::launch(true)
    }

    /// A moto that checks no signature (it refuses presigned URLs when it checks them).
    pub(crate) fn start_unchecked() -> Moto {
        Moto::launch(false)
    }

    fn launch(check_signatures: bool) -> Moto {
        let binary = installed(".venv/bin/moto_server", "moto_server");
        let server = Listening::start("moto", |port, _dir| {
            let mut command = Command::new(&binary);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            // The first three requests (the IAM set-up) go unchecked, every later one
            // must be signed by a known key.
            if check_signatures {
                command.env("INITIAL_NO_AUTH_ACTION_COUNT", "3");
            }
            command
        });
        // Letters only: object_store's GCS client percent-encodes every other character
        // of a bucket name, which moto does not decode.
        let bucket = "cellartest".to_owned();
        let keys = helper(&["s3-setup", &server.port.to_string(), &bucket]);
        let (access_key_id, secret_access_key) = keys.trim().split_once(' ').expect("KEY_ID SECRET");
        Moto {
            bucket,
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            server,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// The port.
    pub(crate) fn port(&self) -> u16 {
        self.server.port
    }

    /// The keys of the multipart uploads in progress in the bucket.
    pub(crate) fn multipart_uploads(&self) -> Vec<String> {
        let port = self.server.port.to_string();
        let args = ["s3-uploads", &port, &self.access_key_id, &self.secret_access_key, &self.bucket];
        helper(&args).lines().map(str::to_owned).collect()
    }

    /// Lets anyone read the object `key` of the bucket (its ACL becomes public-read):
    /// moto refuses requests without an `Authorization` header to private objects.
    pub(crate) fn make_public_read(&self, key: &str) {
        let port = self.server.port.to_string();
        helper(&["s3-public-read", &port, &self.access_key_id, &self.secret_access_key, &self.bucket, key]);
    }

    /// The server's log.
    pub(crate) fn log(&self) -> String {
        self.server.log()
    }

    /// Stops the server (to fail requests mid-way).
    pub(crate) fn kill(&mut self) {
        let _ = self.server.child.kill();
        let _ = self.server.child.wait();
    }
}

/// An Azurite blob service with one container.
pub(crate) struct Azurite {
    server: Listening,
    /// The container created at start.
    pub(crate) container: String,
}

impl Azurite {
    /// Starts `azurite-blob` from `node_modules` and creates the container.
    pub(crate) fn start() -> Azurite {
        let binary = installed("node_modules/.bin/azurite-blob", "azurite-blob");
        let server = Listening::start("azurite", |port, dir| {
            let mut command = Command::new(&binary);
            command
                .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
                .args(["--disableTelemetry", "--skipApiVersionCheck"])
                .arg("--location")
                .arg(dir);
            command
        });
        let container = "cellar-test".to_owned();
        helper(&["azure-container", &server.port.to_string(), &container]);
        Azurite { server, container }
    }

    /// A SAS token for the container (read, write, delete, list; an hour).
    pub(crate) fn container_sas(&self) -> String {
        helper(&["azure-sas", &self.container]).trim().to_owned()
    }

    /// The account's blob endpoint, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.server.port)
    }

    /// The server's log.
    pub(crate) fn log(&self) -> String {
        self.server.log()
    }
}

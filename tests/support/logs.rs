//! Captures what the in-process servers log (every `cellar` event down to DEBUG, from
//! every test of this binary), so that tests can check that no secret is ever logged.
//!
//! With `CELLAR_TEST_LOG_DIR` set (`scripts/test` sets it), every captured line, and
//! the output of every `cellar` process a test starts, is also appended to
//! `server.log` there, and every secret a test checks for (`assert_no_secret`) to
//! `secrets.txt`: `scripts/scan-secrets` then looks for each secret in all the logs of
//! the whole run, not only in those of the test that used it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

static CAPTURED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// The secrets written to `secrets.txt` so far.
static REMEMBERED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Where the whole run's logs and secrets go, if anywhere.
fn archive_dir() -> Option<PathBuf> {
    std::env::var_os("CELLAR_TEST_LOG_DIR").filter(|dir| !dir.is_empty()).map(PathBuf::from)
}

/// Appends `bytes` to the file `name` of the archive directory, if there is one.
fn archive(name: &str, bytes: &[u8]) {
    let Some(dir) = archive_dir() else { return };
    let _ = std::fs::create_dir_all(&dir);
    let file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(name));
    if let Ok(mut file) = file {
        let _ = file.write_all(bytes);
    }
}

/// Keeps a `cellar` process's output with the run's logs.
pub(crate) fn archive_process_output(output: &str) {
    archive("server.log", output.as_bytes());
}

/// Notes a secret for the scan of the whole run's logs (secrets shorter than 6
/// characters would match by chance, and are left out).
pub(crate) fn remember_secret(secret: &str) {
    if secret.len() < 6 || secret.contains('\n') {
        return;
    }
    let mut remembered = REMEMBERED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if remembered.insert(secret.to_owned()) {
        archive("secrets.txt", format!("{secret}\n").as_bytes());
    }
}

/// Installs the capturing subscriber (once per test binary).
pub(crate) fn capture() {
    CAPTURED.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer_buffer = buffer.clone();
        let installed = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("cellar=debug,warn"))
            .with_ansi(false)
            .with_writer(move || BufferWriter(writer_buffer.clone()))
            .try_init();
        if installed.is_err() {
            eprintln!("another tracing subscriber is installed; server logs are not captured");
        }
        buffer
    });
}

/// Asserts that `secret` is in nothing captured so far (and notes it for the scan of
/// the whole run).
#[track_caller]
pub(crate) fn assert_not_logged(secret: &str) {
    remember_secret(secret);
    assert!(!captured().contains(secret), "a secret was logged");
}

/// Everything captured so far.
pub(crate) fn captured() -> String {
    let buffer = CAPTURED.get().expect("logs::capture() was called by TestServer::start");
    let bytes = buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    String::from_utf8_lossy(&bytes).into_owned()
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend_from_slice(bytes);
        archive("server.log", bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

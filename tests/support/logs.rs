//! Captures what the in-process servers log (every `cellar` event down to DEBUG, from
//! every test of this binary), so that tests can check that no secret is ever logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

static CAPTURED: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

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
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

//! A bigger output buffer for the dump tools, whose standard output is a pipe to Cellar.
//!
//! `pg_dump` and `mariadb-dump` write through the C library's stdio, which buffers a
//! pipe one 4 KiB page at a time: a 1 GB dump is some 250,000 `write(2)` calls, each
//! waking the reader. Run under coreutils' `stdbuf --output=1M`, the same dump takes
//! under a thousand, and the tool spends about a third of the system time it did (see
//! BENCHMARKS.md). `stdbuf` preloads a library that sets the buffer before the tool's
//! `main`; a tool that writes without stdio, or is linked statically, is left as it was.
//!
//! `stdbuf` is used only once it has run a command here: a copy without its preload
//! library would fail every tool it starts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The buffer `stdbuf` gives the tool's standard output.
pub const OUTPUT_BUFFER: &str = "1M";

/// Where a working `stdbuf` is; looked for once, on first use.
static STDBUF: OnceLock<Option<PathBuf>> = OnceLock::new();

/// A working `stdbuf` on PATH, if there is one. The first call looks (and runs it once,
/// a few milliseconds); later calls only read what it found.
pub fn stdbuf() -> Option<&'static Path> {
    STDBUF.get_or_init(find).as_deref()
}

fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let stdbuf = std::env::split_paths(&path).map(|dir| dir.join("stdbuf")).find(|path| path.is_file())?;
    let works = Command::new(&stdbuf)
        .arg(format!("--output={OUTPUT_BUFFER}"))
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !works {
        tracing::warn!(stdbuf = %stdbuf.display(), "stdbuf does not run commands: dump tools write with their default buffer");
    }
    works.then_some(stdbuf)
}

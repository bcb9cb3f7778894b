//! The key download links are signed with: read from the operator's file, or generated
//! at first start into `<data dir>/download.key` (mode 0600) and read from there ever
//! after, so that links outlive a restart. Never in the catalog, never logged.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom as _;

use super::token::MIN_KEY_LEN;

/// The name of the generated key file in the data directory.
pub const GENERATED_FILE: &str = "download.key";

/// Why the key cannot be had. Messages name the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read or written.
    #[error("cannot {action} the download key file {path}: {source}")]
    Io {
        /// `read`, `create`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file holds too short a key.
    #[error(
        "the download key file {path} must hold at least {MIN_KEY_LEN} bytes (leading and trailing whitespace aside)"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
    },
    /// No random bytes could be had.
    #[error("cannot generate a download key: the system has no random source")]
    NoRandom,
}

/// The key in `path` (an operator's file: it must exist), trimmed of surrounding
/// whitespace.
pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    let bytes =
        std::fs::read(path).map_err(|source| Error::Io { action: "read", path: path.to_owned(), source })?;
    let key = bytes.trim_ascii();
    if key.len() < MIN_KEY_LEN {
        return Err(Error::TooShort { path: path.to_owned() });
    }
    Ok(key.to_vec())
}

/// The key in `<data_dir>/download.key`, created with 32 random bytes (written as 64
/// hex digits) when absent.
pub fn read_or_generate(data_dir: &Path) -> Result<Vec<u8>, Error> {
    let path = data_dir.join(GENERATED_FILE);
    if !path.exists() {
        generate(&path)?;
    }
    warn_if_readable_by_others(&path);
    read(&path)
}

fn generate(path: &Path) -> Result<(), Error> {
    let mut random = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut random).map_err(|_| Error::NoRandom)?;
    let io = |source| Error::Io { action: "create", path: path.to_owned(), source };
    // Written whole under a temporary name, then renamed: a crash never leaves a short key.
    let temporary = path.with_file_name(format!(".{GENERATED_FILE}.partial-{}", std::process::id()));
    let mut file = private_file(&temporary).map_err(io)?;
    let written = file
        .write_all(format!("{}\n", hex::encode(random)).as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(io(error));
    }
    tracing::info!(path = %path.display(), "generated the download link key");
    Ok(())
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the download key file is readable by other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = read_or_generate(dir.path()).unwrap();
        assert_eq!(first.len(), 64, "32 random bytes as hex");
        assert_eq!(read_or_generate(dir.path()).unwrap(), first, "the same key at the next start");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(GENERATED_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        assert_ne!(read_or_generate(other.path()).unwrap(), first, "each data directory its own key");
        let leftovers: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().flatten().map(|entry| entry.file_name()).collect();
        assert_eq!(leftovers, [GENERATED_FILE], "no temporary file left");
    }

    #[test]
    fn an_operator_key_file_is_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("  {}\n", "k".repeat(40))).unwrap();
        assert_eq!(read(&path).unwrap(), "k".repeat(40).into_bytes());
        std::fs::write(&path, "short-secret-value\n").unwrap();
        let error = read(&path).unwrap_err();
        assert!(matches!(error, Error::TooShort { .. }), "{error}");
        assert!(!error.to_string().contains("short-secret-value"), "{error}");
        let missing = read(&dir.path().join("absent")).unwrap_err();
        assert!(missing.to_string().contains("absent"), "{missing}");
    }
}

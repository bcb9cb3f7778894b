//! The key download links are signed with: read from the operator's file, or generated
//! at first start into `<data dir>/download.key` (mode 0600) and read from there ever
//! after, so that links outlive a restart. Never in the catalog, never logged.

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
    crate::keyfile::warn_if_readable_by_others(&path, "download key");
    read(&path)
}

fn generate(path: &Path) -> Result<(), Error> {
    let mut random = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut random).map_err(|_| Error::NoRandom)?;
    let contents = format!("{}\n", hex::encode(random));
    crate::keyfile::write_private(path, contents.as_bytes(), false).map_err(|source| Error::Io {
        action: "create",
        path: path.to_owned(),
        source,
    })?;
    tracing::info!(path = %path.display(), "generated the download link key");
    Ok(())
}

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

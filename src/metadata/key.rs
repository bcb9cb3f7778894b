//! The catalog key: the 32-byte key secrets are sealed with in the catalog. It comes from
//! the operator (a key file, or the key itself in `CELLAR_CATALOG_KEY`) or, when neither
//! is given, from a file generated at first start in the user's configuration directory
//! (`$XDG_CONFIG_HOME/cellar/catalog.key`, else `~/.config/cellar/catalog.key`), mode
//! 0600: never beside the catalog, so that a copied data directory leaks nothing.

use std::path::{Path, PathBuf};

use ring::rand::SecureRandom as _;
use sha2::Digest as _;

use crate::domain::Secret;

/// The name of the generated key file in its directory.
pub const GENERATED_FILE: &str = "catalog.key";

/// Where the catalog key comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeySource {
    /// The operator's key file: 64 hex digits (surrounding whitespace ignored).
    File(PathBuf),
    /// The key itself, 64 hex digits.
    Value(Secret),
    /// The generated file in the user's configuration directory, created when absent.
    #[default]
    Default,
}

/// A catalog key. `Debug` shows its id only.
#[derive(Clone, PartialEq, Eq)]
pub struct CatalogKey {
    bytes: [u8; 32],
}

impl std::fmt::Debug for CatalogKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CatalogKey({})", self.id())
    }
}

/// Why the key cannot be had. Messages name files, never a key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read or written.
    #[error("cannot {action} the catalog key file {path}: {source}")]
    Io {
        /// `read`, `create`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key is not 64 hex digits.
    #[error("the catalog key {place} must be 64 hex digits (32 bytes; `openssl rand -hex 32` makes one)")]
    Malformed {
        /// `file /etc/cellar/catalog.key`, `in CELLAR_CATALOG_KEY`.
        place: String,
    },
    /// Neither `XDG_CONFIG_HOME` nor `HOME` says where the generated key would go.
    #[error(
        "no catalog key is configured and neither XDG_CONFIG_HOME nor HOME is set: set catalog_key_file or CELLAR_CATALOG_KEY"
    )]
    NoHome,
    /// No random bytes could be had.
    #[error("cannot generate a catalog key: the system has no random source")]
    NoRandom,
}

impl CatalogKey {
    /// A key from its 64 hex digits; `place` says where they came from, for the error.
    pub fn from_hex(text: &str, place: &str) -> Result<CatalogKey, Error> {
        let malformed = || Error::Malformed { place: place.to_owned() };
        let decoded = hex::decode(text.trim()).map_err(|_| malformed())?;
        let bytes: [u8; 32] = decoded.try_into().map_err(|_| malformed())?;
        Ok(CatalogKey { bytes })
    }

    /// A fresh random key (an in-memory catalog's).
    pub fn random() -> Result<CatalogKey, Error> {
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| Error::NoRandom)?;
        Ok(CatalogKey { bytes })
    }

    /// The key's id: 8 hex digits of a hash of it, which says which key sealed a value
    /// without revealing the key.
    pub fn id(&self) -> String {
        let digest =
            sha2::Sha256::new().chain_update(b"cellar catalog key id\0").chain_update(self.bytes).finalize();
        hex::encode(&digest[..4])
    }

    /// The raw key, for the cipher.
    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

/// The key `source` names, and where it was found (a file's path, or the environment),
/// for the log and for errors. `env` reads an environment variable (`XDG_CONFIG_HOME`,
/// `HOME`) for the default's place.
pub fn load(source: &KeySource, env: impl Fn(&str) -> Option<String>) -> Result<(CatalogKey, String), Error> {
    match source {
        KeySource::Value(secret) => Ok((
            CatalogKey::from_hex(secret.expose(), "in CELLAR_CATALOG_KEY")?,
            "CELLAR_CATALOG_KEY".to_owned(),
        )),
        KeySource::File(path) => Ok((read(path)?, path.display().to_string())),
        KeySource::Default => {
            let path = default_path(env).ok_or(Error::NoHome)?;
            if !path.exists() {
                generate(&path)?;
            }
            crate::keyfile::warn_if_readable_by_others(&path, "catalog key");
            Ok((read(&path)?, path.display().to_string()))
        }
    }
}

/// `$XDG_CONFIG_HOME/cellar/catalog.key` (an absolute XDG_CONFIG_HOME), else
/// `$HOME/.config/cellar/catalog.key`.
pub fn default_path(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |name: &str| env(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    let config_home = match non_empty("XDG_CONFIG_HOME").filter(|dir| dir.is_absolute()) {
        Some(dir) => dir,
        None => non_empty("HOME")?.join(".config"),
    };
    Some(config_home.join("cellar").join(GENERATED_FILE))
}

fn read(path: &Path) -> Result<CatalogKey, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    CatalogKey::from_hex(&text, &format!("file {}", path.display()))
}

fn generate(path: &Path) -> Result<(), Error> {
    let key = CatalogKey::random()?;
    let contents = format!("{}\n", hex::encode(key.bytes));
    crate::keyfile::write_private(path, contents.as_bytes(), true).map_err(|source| Error::Io {
        action: "create",
        path: path.to_owned(),
        source,
    })?;
    tracing::warn!(
        path = %path.display(),
        key_id = %key.id(),
        "generated the catalog key: keep a copy of it apart from the data directory, the catalog's secrets cannot be read without it"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_key_is_generated_private_outside_and_kept() {
        let home = tempfile::tempdir().unwrap();
        let home_text = home.path().to_str().unwrap().to_owned();
        let env = |name: &str| (name == "HOME").then(|| home_text.clone());
        let (first, place) = load(&KeySource::Default, env).unwrap();
        let path = home.path().join(".config/cellar/catalog.key");
        assert_eq!(place, path.display().to_string());
        assert_eq!(load(&KeySource::Default, env).unwrap().0, first, "the same key at the next start");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let xdg = tempfile::tempdir().unwrap();
        let xdg_text = xdg.path().to_str().unwrap().to_owned();
        let env = |name: &str| match name {
            "XDG_CONFIG_HOME" => Some(xdg_text.clone()),
            "HOME" => Some(home_text.clone()),
            _ => None,
        };
        let (other, place) = load(&KeySource::Default, env).unwrap();
        assert_ne!(other, first);
        assert!(place.starts_with(&xdg_text), "{place}");
        assert!(matches!(load(&KeySource::Default, |_| None), Err(Error::NoHome)));
    }

    #[test]
    fn operator_keys_are_checked_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let hex_key = "ab".repeat(32);
        std::fs::write(&path, format!("  {hex_key}\n")).unwrap();
        let (from_file, _) = load(&KeySource::File(path.clone()), |_| None).unwrap();
        let (from_value, place) = load(&KeySource::Value(Secret::new(hex_key.clone())), |_| None).unwrap();
        assert_eq!((from_file.clone(), place.as_str()), (from_value, "CELLAR_CATALOG_KEY"));
        assert!(!format!("{from_file:?}").contains("abab"), "{from_file:?}");
        assert_eq!(from_file.id().len(), 8);
        std::fs::write(&path, "short-secret-value\n").unwrap();
        let error = load(&KeySource::File(path), |_| None).unwrap_err();
        assert!(matches!(error, Error::Malformed { .. }), "{error}");
        assert!(!error.to_string().contains("short-secret-value"), "{error}");
        let error = load(&KeySource::Value(Secret::new("zz-secret")), |_| None).unwrap_err();
        assert!(error.to_string().contains("CELLAR_CATALOG_KEY") && !error.to_string().contains("zz-secret"));
    }
}

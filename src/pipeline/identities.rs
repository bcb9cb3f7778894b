//! The age identities (X25519 private keys) that open encrypted backups: read at start
//! from the operator's identity files (`age-keygen` output: `AGE-SECRET-KEY-1...` lines,
//! `#` comments). Never logged, never in the catalog.

use std::path::{Path, PathBuf};

use crate::domain::AgeRecipient;

/// Why an identity file cannot be used. Messages name the file and line, never a key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read.
    #[error("cannot read the age identity file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not an X25519 identity.
    #[error("the age identity file {path} has no X25519 identity (AGE-SECRET-KEY-1...) on line {line}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// The file holds no identity.
    #[error("the age identity file {path} holds no identity")]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The identities the server holds; empty when none is configured.
#[derive(Default, Clone)]
pub struct Identities {
    identities: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.recipients()).finish()
    }
}

impl Identities {
    /// Reads every identity in `files`.
    pub fn load(files: &[PathBuf]) -> Result<Identities, Error> {
        let mut identities = Vec::new();
        for path in files {
            identities.extend(read(path)?);
        }
        Ok(Identities { identities })
    }

    /// Identities from their text (tests, tools).
    pub fn from_keys(keys: &[age::x25519::Identity]) -> Identities {
        Identities { identities: keys.to_vec() }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// The public keys of the identities held.
    pub fn recipients(&self) -> Vec<String> {
        self.identities.iter().map(|identity| identity.to_public().to_string()).collect()
    }

    /// Whether one of them opens what was encrypted to `recipients`.
    pub fn opens_any(&self, recipients: &[AgeRecipient]) -> bool {
        let held = self.recipients();
        recipients.iter().any(|recipient| held.iter().any(|public| public == recipient.as_str()))
    }

    /// The identities, for the decryptor.
    pub(crate) fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.identities.iter().map(|identity| identity as &dyn age::Identity)
    }
}

fn read(path: &Path) -> Result<Vec<age::x25519::Identity>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    let mut identities = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let identity = line
            .parse::<age::x25519::Identity>()
            .map_err(|_| Error::Malformed { path: path.to_owned(), line: index + 1 })?;
        identities.push(identity);
    }
    if identities.is_empty() {
        return Err(Error::Empty { path: path.to_owned() });
    }
    Ok(identities)
}

#[cfg(test)]
mod tests {
    use age::secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn identity_files_are_read_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let secret = identity.to_string().expose_secret().to_owned();
        let public = identity.to_public().to_string();
        let path = dir.path().join("key.txt");
        std::fs::write(&path, format!("# created: today\n# public key: {public}\n{secret}\n")).unwrap();
        let identities = Identities::load(std::slice::from_ref(&path)).unwrap();
        assert_eq!(identities.recipients(), std::slice::from_ref(&public));
        assert!(identities.opens_any(&[AgeRecipient::parse(&public).unwrap()]));
        let other = age::x25519::Identity::generate().to_public().to_string();
        assert!(!identities.opens_any(&[AgeRecipient::parse(&other).unwrap()]));
        assert!(!format!("{identities:?}").contains(&secret));

        std::fs::write(&path, format!("{secret}x\n")).unwrap();
        let error = Identities::load(std::slice::from_ref(&path)).unwrap_err();
        assert!(matches!(error, Error::Malformed { line: 1, .. }), "{error}");
        assert!(!error.to_string().contains(&secret), "{error}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(matches!(Identities::load(&[path]), Err(Error::Empty { .. })));
        assert!(Identities::load(&[]).unwrap().is_empty());
    }
}

//! Sealing the catalog's secrets (connection URIs, destination URIs and credentials):
//! XChaCha20-Poly1305 under the catalog key, a random 24-byte nonce per value, and the
//! value's place (table, column, row id) as associated data, so that a sealed value
//! copied into another row or column does not open.
//!
//! A sealed value is text: `sealed:v1:<key id>:<base64url(nonce || ciphertext)>`. The
//! version names the format (a later one can change the cipher) and the key id the key
//! (so that keys can rotate: a catalog could then hold values of several keys, each
//! opened by its own).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ring::rand::SecureRandom as _;

use super::key::CatalogKey;

/// What every sealed value starts with.
const PREFIX: &str = "sealed:v1:";
/// Bytes of an XChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 24;

/// Why a value cannot be sealed or opened. Messages never hold the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The value is not sealed (plain text where a sealed value belongs).
    #[error("is not sealed")]
    NotSealed,
    /// The value was sealed with another key.
    #[error("was sealed with catalog key {sealed_with}, not with the key given ({given})")]
    OtherKey {
        /// The id of the key that sealed it.
        sealed_with: String,
        /// The id of the key given.
        given: String,
    },
    /// The value does not open: damaged, or moved from another row or column.
    #[error("does not open with the catalog key: it is damaged or belongs to another row")]
    Damaged,
    /// No random nonce could be had.
    #[error("cannot be sealed: the system has no random source")]
    NoRandom,
}

/// Seals and opens values with one catalog key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    key_id: String,
    random: ring::rand::SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({})", self.key_id)
    }
}

impl Sealer {
    /// A sealer with `key`.
    pub fn new(key: &CatalogKey) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.bytes().into()),
            key_id: key.id(),
            random: ring::rand::SystemRandom::new(),
        }
    }

    /// The id of the key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `text` is a sealed value (of any key).
    pub fn is_sealed(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    /// Seals `plaintext` for `place` (`table.column:row id`).
    pub fn seal(&self, place: &str, plaintext: &str) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| Error::NoRandom)?;
        let payload = Payload { msg: plaintext.as_bytes(), aad: place.as_bytes() };
        // Encryption fails only for messages longer than the cipher's limit (256 GiB).
        let ciphertext =
            self.cipher.encrypt(XNonce::from_slice(&nonce), payload).map_err(|_| Error::Damaged)?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{PREFIX}{}:{}", self.key_id, URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Opens a value sealed for `place`.
    pub fn open(&self, place: &str, text: &str) -> Result<String, Error> {
        let rest = text.strip_prefix(PREFIX).ok_or(Error::NotSealed)?;
        let (key_id, encoded) = rest.split_once(':').ok_or(Error::Damaged)?;
        if key_id != self.key_id {
            return Err(Error::OtherKey { sealed_with: key_id.to_owned(), given: self.key_id.clone() });
        }
        let sealed = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| Error::Damaged)?;
        if sealed.len() < NONCE_LEN {
            return Err(Error::Damaged);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let payload = Payload { msg: ciphertext, aad: place.as_bytes() };
        let plaintext =
            self.cipher.decrypt(XNonce::from_slice(nonce), payload).map_err(|_| Error::Damaged)?;
        String::from_utf8(plaintext).map_err(|_| Error::Damaged)
    }
}

/// The place of a column's value in a row, the associated data of its seal.
pub fn place(table: &str, column: &str, id: &str) -> String {
    format!("{table}.{column}:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_open_only_in_their_place_with_their_key() {
        let key = CatalogKey::random().unwrap();
        let sealer = Sealer::new(&key);
        let here = place("databases", "connection_uri", "a");
        let sealed = sealer.seal(&here, "redis://:hunter2@h").unwrap();
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("hunter2"), "{sealed}");
        assert!(sealed.starts_with(&format!("sealed:v1:{}:", key.id())), "{sealed}");
        assert_ne!(sealer.seal(&here, "redis://:hunter2@h").unwrap(), sealed, "a fresh nonce each time");
        assert_eq!(sealer.open(&here, &sealed).unwrap(), "redis://:hunter2@h");

        let elsewhere = place("databases", "connection_uri", "b");
        assert_eq!(sealer.open(&elsewhere, &sealed), Err(Error::Damaged));
        assert_eq!(sealer.open(&here, "redis://:hunter2@h"), Err(Error::NotSealed));
        let other = Sealer::new(&CatalogKey::random().unwrap());
        assert!(matches!(other.open(&here, &sealed), Err(Error::OtherKey { .. })));
        let mut damaged = sealed.clone();
        damaged.pop();
        damaged.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(sealer.open(&here, &damaged), Err(Error::Damaged));
    }
}

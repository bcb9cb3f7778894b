//! Download tokens: one object of one backup, until an expiry, signed with HMAC-SHA256
//! under the server's key.
//!
//! A token is `<payload>.<tag>`, both base64url without padding: the payload is a small
//! JSON object (backup id, object key, expiry in Unix seconds), the tag the HMAC of the
//! payload's text under the key, with a context prefix so that the key signs nothing
//! else by accident. The tag is checked (in constant time) before the payload is even
//! decoded. The payload is not secret: the object key is in the backup record too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

use crate::domain::BackupId;

/// What every tag signs before the payload: the purpose and the token version.
const CONTEXT: &[u8] = b"cellar download link v1\n";

/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// Why a token is refused. Messages never repeat the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not of the token's form.
    #[error("the download link is malformed")]
    Malformed,
    /// The tag does not match: changed, or signed under another key.
    #[error("the download link's signature does not match")]
    BadSignature,
    /// The expiry has passed.
    #[error("the download link has expired")]
    Expired,
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The backup.
    pub backup_id: BackupId,
    /// The one object of that backup the token opens.
    pub object_key: String,
    /// Until when, in Unix seconds (the token is refused from that second on).
    pub expires: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    /// Backup id.
    b: String,
    /// Object key.
    k: String,
    /// Expiry, Unix seconds.
    e: i64,
}

/// Signs and checks tokens under one key.
pub struct Signer {
    key: hmac::Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer under `key` (at least [`MIN_KEY_LEN`] bytes; the caller checks).
    pub fn new(key: &[u8]) -> Signer {
        Signer { key: hmac::Key::new(hmac::HMAC_SHA256, key) }
    }

    /// The token granting `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let payload =
            Payload { b: claims.backup_id.to_string(), k: claims.object_key.clone(), e: claims.expires };
        // Serializing three plain fields cannot fail.
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let tag = hmac::sign(&self.key, &signed_text(&payload));
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of `token` if its tag matches and it has not expired at `now` (Unix
    /// seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, Error> {
        let (payload, tag) = token.split_once('.').ok_or(Error::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| Error::Malformed)?;
        hmac::verify(&self.key, &signed_text(payload), &tag).map_err(|_| Error::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| Error::Malformed)?;
        let payload: Payload = serde_json::from_slice(&json).map_err(|_| Error::Malformed)?;
        let backup_id = BackupId::parse(&payload.b).ok_or(Error::Malformed)?;
        if now >= payload.e {
            return Err(Error::Expired);
        }
        Ok(Claims { backup_id, object_key: payload.k, expires: payload.e })
    }
}

fn signed_text(payload: &str) -> Vec<u8> {
    [CONTEXT, payload.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000;

    fn claims(expires: i64) -> Claims {
        Claims {
            backup_id: BackupId::parse("0b5e1c3a-4a8f-4f0e-9a55-3c2b1d0e9f88").unwrap(),
            object_key: "cache/0b5e1c3a/backup-1.rdb.zst".to_owned(),
            expires,
        }
    }

    fn check(token: &str, now: i64, expected: Result<Claims, Error>) {
        assert_eq!(Signer::new(KEY).verify(token, now), expected, "{token}");
    }

    #[test]
    fn a_signed_token_verifies_until_its_expiry() {
        let token = Signer::new(KEY).sign(&claims(NOW + 60));
        assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "{token}");
        check(&token, NOW, Ok(claims(NOW + 60)));
        check(&token, NOW + 59, Ok(claims(NOW + 60)));
        check(&token, NOW + 60, Err(Error::Expired));
        check(&token, NOW + 3600, Err(Error::Expired));
    }

    #[test]
    fn changed_or_foreign_tokens_are_refused() {
        let signer = Signer::new(KEY);
        let token = signer.sign(&claims(NOW + 60));
        let (payload, tag) = token.split_once('.').unwrap();
        let other_key = Signer::new(b"another key, also thirty-two bytes!").sign(&claims(NOW + 60));
        // The same claims with a later expiry, under the payload's own encoding.
        let extended = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
                .unwrap()
                .replace(&(NOW + 60).to_string(), &(NOW + 99_999).to_string()),
        );
        let mut flipped_tag = URL_SAFE_NO_PAD.decode(tag).unwrap();
        flipped_tag[0] ^= 1;
        let flipped_tag = URL_SAFE_NO_PAD.encode(flipped_tag);
        for (token, expected) in [
            (other_key, Error::BadSignature),
            (format!("{extended}.{tag}"), Error::BadSignature),
            (format!("{payload}.{flipped_tag}"), Error::BadSignature),
            (format!("{payload}.{}", &tag[..tag.len() - 4]), Error::BadSignature),
            (format!("{payload}."), Error::BadSignature),
            (payload.to_owned(), Error::Malformed),
            (format!("{payload}.not base64!"), Error::Malformed),
            (String::new(), Error::Malformed),
        ] {
            check(&token, NOW, Err(expected));
        }
        // A well-signed payload that is not ours (garbage JSON) is malformed.
        let garbage = URL_SAFE_NO_PAD.encode(b"{\"x\":1}");
        let tag = URL_SAFE_NO_PAD.encode(hmac::sign(&signer.key, &signed_text(&garbage)).as_ref());
        check(&format!("{garbage}.{tag}"), NOW, Err(Error::Malformed));
    }

    #[test]
    fn the_signer_does_not_show_its_key() {
        assert!(!format!("{:?}", Signer::new(KEY)).contains("0123"));
    }
}

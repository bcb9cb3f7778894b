//! The [`Authenticator`]: turns an `authorization: Bearer ...` value into who is
//! calling, from the configured tokens (compared by SHA-256, in constant time, every
//! entry looked at) or a JWT. No token, hash or claim text ever goes into an error.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::config::{AuthConfig, CertificateEntry, TokenEntry};
use super::jwt::Verifier;
use super::{Role, Scope};

/// Why a caller was not authenticated, or why the authenticator cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `authorization` header.
    #[error("no bearer token: send the header 'authorization: Bearer <token>'")]
    Missing,
    /// A header that is not `Bearer <token>`.
    #[error("the authorization header is not 'Bearer <token>'")]
    NotBearer,
    /// A token that matches no configured token (and is not a JWT).
    #[error("the bearer token is not valid")]
    Unknown,
    /// A JWT that fails verification.
    #[error("the JWT is not valid: {0}")]
    Jwt(&'static str),
    /// A verified JWT whose claims give no usable role or scope.
    #[error("the JWT's '{0}' claim is missing or not valid")]
    Claim(String),
    /// The JWT key cannot be read or used.
    #[error("cannot use the JWT key {path}: {problem}")]
    Key {
        /// The key's file.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Who a valid token says is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `token:<id>` or `jwt:<subject>`.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its scope.
    pub scope: Scope,
}

/// Checks bearer tokens against the configuration.
pub struct Authenticator {
    tokens: Vec<TokenEntry>,
    jwt: Option<Verifier>,
    download_requires_token: bool,
    certificates: Vec<CertificateEntry>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("jwt", &self.jwt.is_some())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The authenticator the configuration asks for, reading the JWT key file; `None`
    /// when no token and no JWT key are configured (authentication off).
    pub fn from_config(config: &AuthConfig) -> Result<Option<Authenticator>, Error> {
        if !config.is_configured() {
            return Ok(None);
        }
        let jwt = config.jwt.as_ref().map(Verifier::new).transpose()?;
        Ok(Some(Authenticator {
            tokens: config.tokens.clone(),
            jwt,
            download_requires_token: config.download_requires_token,
            certificates: config.certificates.clone(),
        }))
    }

    /// Whether the download listener asks for a bearer token too.
    pub fn download_requires_token(&self) -> bool {
        self.download_requires_token
    }

    /// Authenticates a call: by its bearer token when it sends one, else by the
    /// subject of the client certificate the TLS listener verified, if that subject
    /// is configured.
    pub fn authenticate_call(
        &self,
        authorization: Option<&str>,
        client_subject: Option<&str>,
    ) -> Result<Identity, Error> {
        if authorization.is_none()
            && let Some(subject) = client_subject
            && let Some(entry) = self.certificates.iter().find(|entry| entry.subject == subject)
        {
            return Ok(Identity {
                id: format!("cert:{subject}"),
                role: entry.role,
                scope: entry.scope.clone(),
            });
        }
        self.authenticate(authorization)
    }

    /// Authenticates the value of an `authorization` header.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Identity, Error> {
        let header = authorization.ok_or(Error::Missing)?.trim();
        let (scheme, token) = header.split_once(' ').ok_or(Error::NotBearer)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(Error::NotBearer);
        }
        if let Some(verifier) = &self.jwt
            && token.split('.').count() == 3
        {
            return verifier.verify(token);
        }
        self.configured(token).ok_or(Error::Unknown)
    }

    // Every entry is compared, so the time taken says nothing about which matched.
    fn configured(&self, token: &str) -> Option<Identity> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for entry in &self.tokens {
            if bool::from(entry.sha256.ct_eq(&hash)) && found.is_none() {
                found = Some(entry);
            }
        }
        found.map(|entry| Identity {
            id: format!("token:{}", entry.id),
            role: entry.role,
            scope: entry.scope.clone(),
        })
    }
}

/// The hex SHA-256 of a token: what the configuration stores instead of the token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        let entry = |id: &str, token: &str, role| TokenEntry {
            id: id.to_owned(),
            sha256: Sha256::digest(token.as_bytes()).into(),
            role,
            scope: Scope::default(),
        };
        Authenticator {
            tokens: vec![
                entry("ops", "ops-token", Role::Operator),
                entry("view", "view-token", Role::Viewer),
            ],
            jwt: None,
            download_requires_token: false,
            certificates: vec![CertificateEntry {
                subject: "CN=backup-bot,O=Example".to_owned(),
                role: Role::Viewer,
                scope: Scope::default(),
            }],
        }
    }

    #[test]
    fn a_configured_certificate_subject_stands_in_for_a_token() {
        let auth = authenticator();
        let caller = auth.authenticate_call(None, Some("CN=backup-bot,O=Example")).unwrap();
        assert_eq!((caller.id.as_str(), caller.role), ("cert:CN=backup-bot,O=Example", Role::Viewer));
        // A bearer token, when sent, decides.
        let caller =
            auth.authenticate_call(Some("Bearer ops-token"), Some("CN=backup-bot,O=Example")).unwrap();
        assert_eq!(caller.role, Role::Operator);
        assert!(matches!(auth.authenticate_call(None, Some("CN=someone-else")), Err(Error::Missing)));
        assert!(matches!(auth.authenticate_call(None, None), Err(Error::Missing)));
    }

    #[test]
    fn configured_tokens_by_their_hash() {
        let auth = authenticator();
        let caller = auth.authenticate(Some("Bearer view-token")).unwrap();
        assert_eq!((caller.id.as_str(), caller.role), ("token:view", Role::Viewer));
        assert_eq!(auth.authenticate(Some("bearer  ops-token ")).unwrap().role, Role::Operator);
        let refused = [
            (None, "no bearer token"),
            (Some("Basic b3BzOnRva2Vu"), "not 'Bearer"),
            (Some("Bearer"), "not 'Bearer"),
            (Some("Bearer ops-token2"), "not valid"),
            (Some("Bearer a.b.c"), "not valid"),
        ];
        for (header, message) in refused {
            let error = auth.authenticate(header).unwrap_err().to_string();
            assert!(error.contains(message), "{header:?}: {error}");
            assert!(!error.contains("ops-token"), "{error}");
        }
        assert_eq!(hash_token("ops-token"), hex::encode(Sha256::digest(b"ops-token")));
    }
}

//! JWT bearer tokens: the signature checked against the configured key (HS256, RS256 or
//! EdDSA, and only that algorithm), `exp`, `nbf` and `aud` (and `iss` when configured)
//! checked, the caller's role and scope read from the configured claims.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};

use super::config::{JwtAlgorithm, JwtConfig};
use super::token::{Error, Identity};
use super::{Role, Scope};

/// How much clock difference with the issuer `exp` and `nbf` allow.
const LEEWAY_SECONDS: u64 = 30;

/// Verifies JWTs with one key.
pub(super) struct Verifier {
    key: DecodingKey,
    validation: Validation,
    role_claim: String,
    scope_claim: String,
}

impl Verifier {
    /// Reads the key file the configuration names.
    pub(super) fn new(config: &JwtConfig) -> Result<Verifier, Error> {
        let key_error = |problem: String| Error::Key { path: config.key_file.display().to_string(), problem };
        let bytes = std::fs::read(&config.key_file).map_err(|error| key_error(error.to_string()))?;
        let (key, algorithm) = match config.algorithm {
            JwtAlgorithm::Hs256 => {
                let secret = trim_ascii_end(&bytes);
                if secret.len() < 32 {
                    return Err(key_error("an HS256 secret must be at least 32 bytes".to_owned()));
                }
                (DecodingKey::from_secret(secret), jsonwebtoken::Algorithm::HS256)
            }
            JwtAlgorithm::Rs256 => (
                DecodingKey::from_rsa_pem(&bytes)
                    .map_err(|_| key_error("not a PEM RSA public key".to_owned()))?,
                jsonwebtoken::Algorithm::RS256,
            ),
            JwtAlgorithm::EdDsa => (
                DecodingKey::from_ed_pem(&bytes)
                    .map_err(|_| key_error("not a PEM Ed25519 public key".to_owned()))?,
                jsonwebtoken::Algorithm::EdDSA,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub"]);
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
        }
        Ok(Verifier {
            key,
            validation,
            role_claim: config.role_claim.clone(),
            scope_claim: config.scope_claim.clone(),
        })
    }

    /// The identity a valid token names.
    pub(super) fn verify(&self, token: &str) -> Result<Identity, Error> {
        let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|error| Error::Jwt(reason(error.kind())))?
        .claims;
        let subject = claims.get("sub").and_then(|sub| sub.as_str()).filter(|sub| !sub.is_empty());
        let subject = subject.ok_or_else(|| Error::Claim("sub".to_owned()))?;
        let role = claims.get(&self.role_claim).and_then(|role| role.as_str()).and_then(Role::parse);
        let role = role.ok_or_else(|| Error::Claim(self.role_claim.clone()))?;
        let scope = match claims.get(&self.scope_claim) {
            None | Some(serde_json::Value::Null) => Scope::default(),
            Some(value) => {
                serde_json::from_value(value.clone()).map_err(|_| Error::Claim(self.scope_claim.clone()))?
            }
        };
        Ok(Identity { id: format!("jwt:{subject}"), role, scope })
    }
}

// Why a token failed, in words that quote nothing of it.
fn reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not valid yet (nbf)",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "wrong algorithm",
        ErrorKind::MissingRequiredClaim(_) => "a required claim (exp, aud, sub) is missing",
        _ => "malformed",
    }
}

fn trim_ascii_end(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|byte| !byte.is_ascii_whitespace()).map_or(0, |at| at + 1);
    &bytes[..end]
}

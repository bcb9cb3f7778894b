//! The `[auth]` section of the configuration: tokens (their SHA-256 only, never the
//! token), the JWT key and claims, and whether download links need a bearer token too.
//! Parsed here so that `config.rs` only hands the section over; every problem is
//! reported, each named the way its source spells it.
//!
//! ```toml
//! [auth]
//! download_requires_token = false
//! [[auth.tokens]]
//! id = "ci"
//! sha256 = "<cellar hash-token>"
//! role = "member"
//! scope = { databases = ["orders"], labels = ["team=shop"], projects = ["web"] }
//! [auth.jwt]
//! algorithm = "EdDSA"             # or HS256 (secret_file), RS256 (key_file)
//! key_file = "/etc/cellar/jwt.pub"
//! audience = "cellar"
//! [[auth.client_certificates]]    # with tls_client_ca_file (mTLS)
//! subject = "CN=backup-bot,O=Example"
//! role = "operator"
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Role, Scope};

/// The `[auth]` section as written.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// `[[auth.tokens]]`.
    pub tokens: Option<Vec<TokenFile>>,
    /// `[auth.jwt]`.
    pub jwt: Option<JwtFile>,
    /// `download_requires_token`: download links need a bearer token too.
    pub download_requires_token: Option<bool>,
    /// `[[auth.client_certificates]]`: roles of verified client certificates (mTLS).
    pub client_certificates: Option<Vec<CertificateFile>>,
}

/// One `[[auth.client_certificates]]` entry as written.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// The certificate's subject in RFC 4514 form, as the TLS listener reads it
    /// (`CN=backup-bot,O=Example`).
    pub subject: String,
    /// `admin`, `operator`, `member` or `viewer`.
    pub role: String,
    /// What a `member` may work on.
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// A client certificate subject with its role: a caller presenting a certificate the
/// TLS listener verified, with this subject and no bearer token, is this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateEntry {
    /// The subject, RFC 4514 form.
    pub subject: String,
    /// Its role.
    pub role: Role,
    /// Its scope (members).
    pub scope: Scope,
}

/// One `[[auth.tokens]]` entry as written.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// A name for the token, shown in the audit log.
    pub id: String,
    /// The hex SHA-256 of the token (`cellar hash-token`).
    pub sha256: String,
    /// `admin`, `operator`, `member` or `viewer`.
    pub role: String,
    /// What a `member` may work on.
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// `[auth.jwt]` as written.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    /// `HS256`, `RS256` or `EdDSA`.
    pub algorithm: String,
    /// The PEM public key (RS256, EdDSA).
    pub key_file: Option<PathBuf>,
    /// The shared secret's file (HS256).
    pub secret_file: Option<PathBuf>,
    /// The `aud` tokens must name.
    pub audience: String,
    /// The `iss` tokens must name, if any.
    pub issuer: Option<String>,
    /// The claim holding the role (`role` by default).
    pub role_claim: Option<String>,
    /// The claim holding the scope object (`scope` by default).
    pub scope_claim: Option<String>,
}

/// A configured token: its id, its SHA-256 (never the token), role and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// Its name, for the audit log.
    pub id: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// Its role.
    pub role: Role,
    /// Its scope (members).
    pub scope: Scope,
}

/// A JWT signing algorithm Cellar verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rs256,
    /// Ed25519.
    EdDsa,
}

/// How JWTs are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The one algorithm accepted.
    pub algorithm: JwtAlgorithm,
    /// The key (RS256, EdDSA: a PEM public key) or secret (HS256) file.
    pub key_file: PathBuf,
    /// The required `aud`.
    pub audience: String,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
    /// The role claim's name.
    pub role_claim: String,
    /// The scope claim's name.
    pub scope_claim: String,
}

/// The authentication settings, valid by construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Configured tokens.
    pub tokens: Vec<TokenEntry>,
    /// JWT verification, if configured.
    pub jwt: Option<JwtConfig>,
    /// Whether download links also need a bearer token.
    pub download_requires_token: bool,
    /// Roles of verified client certificates, by subject.
    pub certificates: Vec<CertificateEntry>,
}

impl AuthConfig {
    /// Whether any way to authenticate is configured (then every call must).
    pub fn is_configured(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some() || !self.certificates.is_empty()
    }
}

/// Applies one source's `[auth]` section; `name` spells a key the way the source does.
pub fn apply(
    config: &mut AuthConfig,
    file: AuthFile,
    name: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) {
    if let Some(required) = file.download_requires_token {
        config.download_requires_token = required;
    }
    if let Some(tokens) = file.tokens {
        let mut entries = Vec::with_capacity(tokens.len());
        let mut ids = HashSet::new();
        for (index, token) in tokens.into_iter().enumerate() {
            let key = |field: &str| name(&format!("auth.tokens[{index}].{field}"));
            if let Some(entry) = token_entry(token, &key, problems) {
                if ids.insert(entry.id.clone()) {
                    entries.push(entry);
                } else {
                    problems.push(format!("{}: '{}' is used by another token", key("id"), entry.id));
                }
            }
        }
        config.tokens = entries;
    }
    if let Some(jwt) = file.jwt {
        config.jwt = jwt_config(jwt, &|field| name(&format!("auth.jwt.{field}")), problems);
    }
    if let Some(certificates) = file.client_certificates {
        let mut entries = Vec::with_capacity(certificates.len());
        for (index, certificate) in certificates.into_iter().enumerate() {
            let key = |field: &str| name(&format!("auth.client_certificates[{index}].{field}"));
            let subject = certificate.subject.trim().to_owned();
            if subject.is_empty() {
                problems.push(format!("{}: must not be empty", key("subject")));
            } else if entries.iter().any(|entry: &CertificateEntry| entry.subject == subject) {
                problems.push(format!("{}: '{subject}' is listed twice", key("subject")));
            }
            let scope = certificate.scope.unwrap_or_default();
            if let Some(role) = role_with_scope(&certificate.role, &scope, &key, problems)
                && !subject.is_empty()
            {
                entries.push(CertificateEntry { subject, role, scope });
            }
        }
        config.certificates = entries;
    }
}

// A role name and its scope, checked: only a member has (and needs) a scope.
fn role_with_scope(
    role: &str,
    scope: &Scope,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) -> Option<Role> {
    let Some(parsed) = Role::parse(role) else {
        problems.push(format!("{}: '{role}' is not admin, operator, member or viewer", key("role")));
        return None;
    };
    match parsed {
        Role::Member if scope.is_empty() => {
            problems.push(format!("{}: a member needs databases, labels or projects", key("scope")));
            None
        }
        other if other != Role::Member && !scope.is_empty() => {
            problems
                .push(format!("{}: only a member has a scope; {other} reaches every database", key("scope")));
            None
        }
        other => Some(other),
    }
}

fn token_entry(
    token: TokenFile,
    key: &dyn Fn(&str) -> String,
    problems: &mut Vec<String>,
) -> Option<TokenEntry> {
    let before = problems.len();
    let id = token.id.trim().to_owned();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)) {
        problems.push(format!("{}: must be letters, digits, '-', '_', '.' or '@'", key("id")));
    }
    let sha256 = hex::decode(token.sha256.trim()).ok().and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
    if sha256.is_none() {
        // The value is not quoted: a token pasted here by mistake stays out of the logs.
        problems.push(format!("{}: must be 64 hex digits (`cellar hash-token` prints them)", key("sha256")));
    }
    let scope = token.scope.unwrap_or_default();
    let role = role_with_scope(&token.role, &scope, key, problems);
    if problems.len() > before {
        return None;
    }
    Some(TokenEntry { id, sha256: sha256?, role: role?, scope })
}

fn jwt_config(jwt: JwtFile, key: &dyn Fn(&str) -> String, problems: &mut Vec<String>) -> Option<JwtConfig> {
    let before = problems.len();
    let algorithm = match jwt.algorithm.trim().to_ascii_uppercase().as_str() {
        "HS256" => Some(JwtAlgorithm::Hs256),
        "RS256" => Some(JwtAlgorithm::Rs256),
        "EDDSA" => Some(JwtAlgorithm::EdDsa),
        _ => {
            problems.push(format!("{}: '{}' is not HS256, RS256 or EdDSA", key("algorithm"), jwt.algorithm));
            None
        }
    };
    let key_file = match (algorithm, jwt.key_file, jwt.secret_file) {
        (Some(JwtAlgorithm::Hs256), None, Some(file)) => Some(file),
        (Some(JwtAlgorithm::Hs256), _, _) => {
            problems.push(format!("{}: HS256 needs secret_file (and no key_file)", key("secret_file")));
            None
        }
        (Some(_), Some(file), None) => Some(file),
        (Some(_), _, _) => {
            problems.push(format!("{}: RS256 and EdDSA need key_file (and no secret_file)", key("key_file")));
            None
        }
        (None, _, _) => None,
    };
    if jwt.audience.trim().is_empty() {
        problems.push(format!("{}: must not be empty", key("audience")));
    }
    let claim = |value: Option<String>, default: &str, field: &str, problems: &mut Vec<String>| {
        let value = value.unwrap_or_else(|| default.to_owned());
        if value.trim().is_empty() {
            problems.push(format!("{}: must not be empty", key(field)));
        }
        value
    };
    let role_claim = claim(jwt.role_claim, "role", "role_claim", problems);
    let scope_claim = claim(jwt.scope_claim, "scope", "scope_claim", problems);
    if problems.len() > before {
        return None;
    }
    Some(JwtConfig {
        algorithm: algorithm?,
        key_file: key_file?,
        audience: jwt.audience.trim().to_owned(),
        issuer: jwt.issuer.filter(|issuer| !issuer.trim().is_empty()),
        role_claim,
        scope_claim,
    })
}

/// The problem with serving on `listen` without authentication, if there is one: only
/// loopback may run open.
pub fn check_listen(listen: SocketAddr, auth: &AuthConfig) -> Option<String> {
    (!listen.ip().is_loopback() && !auth.is_configured()).then(|| {
        format!(
            "listen: {listen} is not a loopback address, so authentication is required: \
             configure [[auth.tokens]] (hashes from `cellar hash-token`) or [auth.jwt]"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AuthConfig, Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Wrapper {
            auth: AuthFile,
        }
        let wrapper: Wrapper = toml::from_str(text).map_err(|error| vec![error.to_string()])?;
        let mut config = AuthConfig::default();
        let mut problems = Vec::new();
        apply(&mut config, wrapper.auth, &|key| key.to_owned(), &mut problems);
        if problems.is_empty() { Ok(config) } else { Err(problems) }
    }

    #[test]
    fn tokens_and_jwt_are_read() {
        let hash = super::super::hash_token("s3cret-token");
        let config = parse(&format!(
            "[auth]\n[[auth.tokens]]\nid = \"ci\"\nsha256 = \"{hash}\"\nrole = \"member\"\n\
             scope = {{ databases = [\"orders\"], labels = [\"team=shop\"] }}\n\
             [auth.jwt]\nalgorithm = \"EdDSA\"\nkey_file = \"/k.pem\"\naudience = \"cellar\"\n"
        ))
        .unwrap();
        assert_eq!(config.tokens[0].role, Role::Member);
        assert_eq!(config.tokens[0].scope.labels, ["team=shop"]);
        assert_eq!(hex::encode(config.tokens[0].sha256), hash);
        let jwt = config.jwt.unwrap();
        assert_eq!((jwt.algorithm, jwt.role_claim.as_str()), (JwtAlgorithm::EdDsa, "role"));
    }

    #[test]
    fn every_problem_is_named() {
        let problems = parse(
            "[auth]\n[[auth.tokens]]\nid = \"a\"\nsha256 = \"my-clear-token\"\nrole = \"root\"\n\
             [[auth.tokens]]\nid = \"m\"\nsha256 = \"00\"\nrole = \"member\"\n\
             [auth.jwt]\nalgorithm = \"HS256\"\nkey_file = \"/k\"\naudience = \"\"\n",
        )
        .unwrap_err();
        let text = problems.join("\n");
        for fragment in [
            "auth.tokens[0].sha256",
            "auth.tokens[0].role: 'root'",
            "auth.tokens[1].sha256",
            "auth.tokens[1].scope",
            "auth.jwt.secret_file",
            "auth.jwt.audience",
        ] {
            assert!(text.contains(fragment), "missing {fragment} in {text}");
        }
        assert!(!text.contains("my-clear-token"), "{text}");
    }

    #[test]
    fn only_loopback_runs_open() {
        let open = AuthConfig::default();
        assert_eq!(check_listen("127.0.0.1:50051".parse().unwrap(), &open), None);
        assert_eq!(check_listen("[::1]:50051".parse().unwrap(), &open), None);
        assert!(check_listen("0.0.0.0:50051".parse().unwrap(), &open).is_some());
        let configured = AuthConfig {
            tokens: vec![TokenEntry {
                id: "a".into(),
                sha256: [0; 32],
                role: Role::Admin,
                scope: Scope::default(),
            }],
            ..AuthConfig::default()
        };
        assert_eq!(check_listen("0.0.0.0:50051".parse().unwrap(), &configured), None);
    }
}

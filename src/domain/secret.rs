//! Secrets (passwords, keys, tokens) that must never reach a log, an error or a response.

use std::fmt;

use url::Url;

/// A secret string: `Debug` and `Display` print `****`; only [`Secret::expose`] reads it.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that needs it (a connection, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// A database connection URI whose password is secret.
///
/// `Display`/`Debug` show the redacted form (`redis://user:****@host:6379`); the full
/// URI is only available through [`ConnectionUri::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUri {
    url: Url,
}

impl ConnectionUri {
    /// Parses a URI; the error message never repeats the input (it may hold a password).
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = Url::parse(text.trim()).map_err(|error| format!("not a valid URI: {error}"))?;
        if url.cannot_be_a_base() {
            return Err("not a valid URI: expected scheme://host".to_owned());
        }
        if url.host_str().unwrap_or_default().is_empty() {
            return Err("not a valid URI: the host is missing".to_owned());
        }
        Ok(ConnectionUri { url })
    }

    /// Parses a storage location (an export's target): as [`ConnectionUri::parse`], but
    /// a `file://` URI, which names a local path, needs no host.
    pub fn parse_location(text: &str) -> Result<Self, String> {
        match Url::parse(text.trim()) {
            Ok(url) if url.scheme() == "file" => Ok(ConnectionUri { url }),
            _ => ConnectionUri::parse(text),
        }
    }

    /// The scheme (`redis`, `rediss`, `postgres`, ...).
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// The parsed URI including its password: for connecting only.
    pub fn expose(&self) -> &Url {
        &self.url
    }

    /// Replaces the password (`None` removes it).
    pub fn set_password(&mut self, password: Option<&str>) {
        // Only URIs without a host refuse a password, and parse rejected those.
        let _ = self.url.set_password(password);
    }

    /// The URI with the password replaced by `****`.
    pub fn redacted(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for ConnectionUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionUri({})", self.redacted())
    }
}

impl fmt::Display for ConnectionUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn redact_url(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Setting a password only fails for URIs without a host, which we rejected.
        let _ = shown.set_password(Some("****"));
    }
    // Azure's `abs://KEY@ACCOUNT/...` (the Redis Cloud form) holds the account key as
    // the user name.
    if shown.scheme() == "abs" && !shown.username().is_empty() {
        let _ = shown.set_username("****");
    }
    for secret_param in ["password", "sslpassword", "token", "secret", "key"] {
        if shown.query_pairs().any(|(name, _)| name == secret_param) {
            let pairs: Vec<(String, String)> = shown
                .query_pairs()
                .map(|(name, value)| {
                    let value = if name == secret_param { "****".to_owned() } else { value.into_owned() };
                    (name.into_owned(), value)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    shown.to_string()
}

/// Redacts any URI-looking text for messages: the password part of `user:pass@` is
/// replaced by `****`. Text that does not parse as a URI is returned as `<redacted uri>`
/// unless it contains no `@` at all.
pub fn redact_uri(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) if !url.cannot_be_a_base() => redact_url(&url),
        _ if !text.contains('@') => text.to_owned(),
        _ => "<redacted uri>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords() {
        let uri = ConnectionUri::parse("redis://default:hunter2@127.0.0.1:6379/0").unwrap();
        assert_eq!(uri.redacted(), "redis://default:****@127.0.0.1:6379/0");
        assert!(!format!("{uri:?} {uri}").contains("hunter2"));
        assert_eq!(uri.expose().password(), Some("hunter2"));
        assert_eq!(redact_uri("postgres://u:pw@h/db?password=x"), "postgres://u:****@h/db?password=****");
        assert_eq!(redact_uri("not a uri"), "not a uri");
        assert_eq!(redact_uri("abs://K3y%2B%3D@account/container/p"), "abs://****@account/container/p");
        assert_eq!(redact_uri("s3://AKID:s3cr3t@bucket/p"), "s3://AKID:****@bucket/p");
        assert!(!redact_uri("junk:pw@").contains("pw"));
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }

    #[test]
    fn parse_errors_do_not_echo_input() {
        let error = ConnectionUri::parse("redis//user:hunter2@").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }
}

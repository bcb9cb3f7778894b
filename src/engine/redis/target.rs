//! Where and how to reach a Redis server: the parts of a `redis://` or `rediss://` URI.

use std::fmt;

use url::{Host, Url};

use crate::domain::ConnectionUri;
use crate::engine::Error;

/// The port Redis listens on when the URI names none.
const DEFAULT_PORT: u16 = 6379;

/// A Redis server to connect to, read from a connection URI.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The host to resolve or the IP address to connect to (IPv6 without brackets).
    pub(crate) host: String,
    /// The TCP port.
    pub(crate) port: u16,
    /// `host:port` as the URI spells it, for messages.
    pub(crate) label: String,
    /// Whether to speak TLS, and how to check the server's certificate.
    pub(crate) tls: Option<TlsVerification>,
    /// What to send with `AUTH`, if anything.
    pub(crate) credentials: Option<Credentials>,
}

/// How a TLS connection checks the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsVerification {
    /// Against the system's trust roots and the host name.
    Verify,
    /// Not at all: for self-signed test servers only (`?insecure=true`).
    Insecure,
}

/// The user and password for `AUTH`, percent-decoded; `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// The ACL user; `None` authenticates the `default` user the pre-6.0 way.
    pub(crate) username: Option<Vec<u8>>,
    /// The password, as bytes: Redis passwords need not be UTF-8.
    pub(crate) password: Vec<u8>,
}

impl Credentials {
    /// The `AUTH` command: `AUTH user pass`, or `AUTH pass` without a user.
    pub(crate) fn auth_command(&self) -> Vec<&[u8]> {
        match &self.username {
            Some(username) => vec![b"AUTH", username, &self.password],
            None => vec![b"AUTH", &self.password],
        }
    }

    /// Whether the user is `default`, which pre-6.0 servers accept as `AUTH pass`.
    pub(crate) fn is_default_user(&self) -> bool {
        self.username.as_deref() == Some(b"default")
    }

    /// The same password without a user name.
    pub(crate) fn without_username(&self) -> Credentials {
        Credentials { username: None, password: self.password.clone() }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username.as_deref().map(String::from_utf8_lossy))
            .field("password", &"****")
            .finish()
    }
}

impl Target {
    /// Reads a `redis://[user[:password]@]host[:port][/db][?option=value]` URI (or
    /// `rediss://` for TLS). The db index is ignored: a snapshot covers every database.
    /// Options: `insecure` or `tls_insecure` (`true`/`false`); anything else is refused
    /// so that a misspelt option does not go unnoticed.
    pub(crate) fn from_uri(uri: &ConnectionUri) -> Result<Target, Error> {
        let url = uri.expose();
        let insecure = tls_insecure_option(url)?;
        let tls = match url.scheme() {
            "redis" => None,
            "rediss" if insecure => Some(TlsVerification::Insecure),
            "rediss" => Some(TlsVerification::Verify),
            other => {
                return Err(Error::Unsupported(format!(
                    "a redis uri starts with redis:// or rediss://, not {other}://"
                )));
            }
        };
        let port = url.port().unwrap_or(DEFAULT_PORT);
        let (host, shown_host) = match url.host() {
            Some(Host::Domain(domain)) => (domain.to_owned(), domain.to_owned()),
            Some(Host::Ipv4(address)) => (address.to_string(), address.to_string()),
            Some(Host::Ipv6(address)) => (address.to_string(), format!("[{address}]")),
            None => return Err(Error::Unsupported("the redis uri names no host".into())),
        };
        Ok(Target { host, port, label: format!("{shown_host}:{port}"), tls, credentials: credentials(url) })
    }
}

/// Reads the query options; `Ok(true)` when certificate checks are to be skipped.
fn tls_insecure_option(url: &Url) -> Result<bool, Error> {
    let mut insecure = false;
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "insecure" | "tls_insecure" => {
                insecure = match value.as_ref() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => {
                        return Err(Error::Unsupported(format!(
                            "the redis uri option {name} takes true or false"
                        )));
                    }
                }
            }
            // Only the name is repeated: an unknown option's value might be a secret.
            _ => {
                return Err(Error::Unsupported(format!(
                    "unknown redis uri option {name} (known: insecure, tls_insecure)"
                )));
            }
        }
    }
    Ok(insecure)
}

/// The credentials in the URI. A user without a password sends no `AUTH`, as
/// `redis-cli -u` does.
fn credentials(url: &Url) -> Option<Credentials> {
    let password = percent_decode(url.password()?);
    let username = Some(percent_decode(url.username())).filter(|name| !name.is_empty());
    Some(Credentials { username, password })
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = match bytes.get(index..index + 3) {
            Some([b'%', high, low]) => hex_value(*high).zip(hex_value(*low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                decoded.push(high << 4 | low);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    decoded
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str) -> Result<Target, Error> {
        Target::from_uri(&ConnectionUri::parse(uri).unwrap())
    }

    fn check(uri: &str, label: &str, tls: Option<TlsVerification>, auth: Option<&[&[u8]]>) {
        let target = target(uri).unwrap_or_else(|error| panic!("{uri}: {error}"));
        assert_eq!(target.label, label, "{uri}");
        assert_eq!(target.tls, tls, "{uri}");
        let command = target.credentials.as_ref().map(Credentials::auth_command);
        assert_eq!(command.as_deref(), auth, "{uri}");
    }

    #[test]
    fn reads_host_port_tls_and_credentials() {
        use TlsVerification::{Insecure, Verify};
        check("redis://127.0.0.1", "127.0.0.1:6379", None, None);
        check("redis://cache.internal:7000/3", "cache.internal:7000", None, None);
        check("rediss://cache.internal", "cache.internal:6379", Some(Verify), None);
        check("rediss://h?insecure=true", "h:6379", Some(Insecure), None);
        check("rediss://h?tls_insecure=1", "h:6379", Some(Insecure), None);
        check("rediss://h?insecure=false", "h:6379", Some(Verify), None);
        check("redis://[::1]:6380", "[::1]:6380", None, None);
        check("redis://:hunter2@h", "h:6379", None, Some(&[b"AUTH", b"hunter2"]));
        check("redis://backup:hunter2@h", "h:6379", None, Some(&[b"AUTH", b"backup", b"hunter2"]));
        check("redis://u%40x:p%40ss%3Aw%2Frd%25@h", "h:6379", None, Some(&[b"AUTH", b"u@x", b"p@ss:w/rd%"]));
        check("redis://u:%ff%00@h", "h:6379", None, Some(&[b"AUTH", b"u", b"\xff\x00"]));
        check("redis://backup@h", "h:6379", None, None);
    }

    #[test]
    fn ipv6_hosts_connect_without_brackets() {
        assert_eq!(target("redis://[::1]:6380").unwrap().host, "::1");
    }

    #[test]
    fn refuses_other_schemes_and_unknown_options_without_echoing_values() {
        assert!(matches!(target("postgres://h"), Err(Error::Unsupported(_))));
        let error = target("redis://h?password=hunter2").unwrap_err().to_string();
        assert_eq!(error, "unknown redis uri option password (known: insecure, tls_insecure)");
        let error = target("rediss://h?insecure=maybe").unwrap_err().to_string();
        assert_eq!(error, "the redis uri option insecure takes true or false");
    }

    #[test]
    fn percent_decoding_leaves_stray_percent_signs() {
        assert_eq!(percent_decode("a%2"), b"a%2");
        assert_eq!(percent_decode("%zz%41"), b"%zzA");
        assert_eq!(percent_decode(""), b"");
    }

    #[test]
    fn debug_hides_the_password() {
        let credentials = target("redis://u:hunter2@h").unwrap().credentials.unwrap();
        assert!(!format!("{credentials:?}").contains("hunter2"));
        assert_eq!(credentials.without_username().auth_command(), vec![&b"AUTH"[..], b"hunter2"]);
    }
}

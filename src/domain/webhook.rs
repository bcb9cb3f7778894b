//! A database's completion webhook: the endpoint Cellar notifies when an operation on
//! the database ends, and the secret that signs each notification.

use std::fmt;

use url::Url;

use super::Secret;

/// The fewest characters a webhook secret may have.
pub const MIN_SECRET_CHARS: usize = 16;
/// The most characters a webhook secret may have.
pub const MAX_SECRET_CHARS: usize = 256;

/// Where and how a database's completion notifications go. `Debug` shows neither the
/// secret nor the URL's query (which may carry a token).
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The endpoint, checked by [`Webhook::parse_url`].
    pub url: Url,
    /// The HMAC-SHA256 key of the signature.
    pub secret: Secret,
}

impl Webhook {
    /// Checks an endpoint's form: an absolute `http://` or `https://` URL with a host and
    /// no user information (the signature, not Basic auth, authenticates Cellar). Which
    /// hosts it may reach is the URL policy's question, asked by the core.
    pub fn parse_url(text: &str) -> Result<Url, String> {
        let url = Url::parse(text.trim()).map_err(|error| format!("not a valid URL: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http:// or https:// URL".to_owned());
        }
        if url.host_str().unwrap_or_default().is_empty() {
            return Err("the host is missing".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not hold user information; the signature authenticates Cellar".to_owned());
        }
        Ok(url)
    }

    /// Checks a secret's length (in characters); the error never repeats it.
    pub fn parse_secret(text: &str) -> Result<Secret, String> {
        let chars = text.chars().count();
        if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&chars) {
            return Err(format!("must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters long"));
        }
        Ok(Secret::new(text))
    }

    /// The endpoint as logs show it: scheme, host, port and path, without the query.
    pub fn shown_url(&self) -> String {
        shown_url(&self.url)
    }
}

/// `url` as logs show it: scheme, host, port and path, without user information, query
/// or fragment.
pub fn shown_url(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook").field("url", &self.shown_url()).field("secret", &self.secret).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for good in ["https://hooks.example.com/cellar", "http://127.0.0.1:8080/x?token=abc"] {
            assert!(Webhook::parse_url(good).is_ok(), "{good}");
        }
        for bad in ["ftp://h/x", "https://u:p@h/x", "not a url", "file:///tmp/x", "mailto:a@b"] {
            assert!(Webhook::parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_checked_without_being_echoed() {
        assert!(Webhook::parse_secret(&"s".repeat(16)).is_ok());
        assert!(Webhook::parse_secret(&"é".repeat(256)).is_ok());
        let error = Webhook::parse_secret("short-hunter2").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(Webhook::parse_secret(&"s".repeat(257)).is_err());
    }

    #[test]
    fn logs_and_debug_show_neither_query_nor_secret() {
        let webhook = Webhook {
            url: Webhook::parse_url("https://hooks.example.com:8443/in?token=t0ken").unwrap(),
            secret: Secret::new("hunter2-hunter2-hunter2"),
        };
        assert_eq!(webhook.shown_url(), "https://hooks.example.com:8443/in");
        let debug = format!("{webhook:?}");
        assert!(!debug.contains("t0ken") && !debug.contains("hunter2"), "{debug}");
    }
}

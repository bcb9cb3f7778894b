//! Objects over HTTP(S), through one client that enforces the [`UrlPolicy`] on every
//! connection and redirect: a streaming `GET` (with `Range` to start at an offset) and
//! `HEAD` for import sources; the http(s) destinations ([`super::webdav`]) send their
//! requests through it too.
//!
//! Credentials come from the URL's `user:pass@` as Basic auth and never appear in a
//! message: every error names the URL redacted. Transient failures (connect errors,
//! timeouts, 5xx, 429) are retried with backoff until the body starts; a body that
//! breaks later fails the read.

use std::error::Error as _;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::io::StreamReader;
use url::Url;

use super::{Error, ObjectReader};
use crate::domain::redact_uri;
use crate::net::guard::{GuardedResolver, redirect_policy};
use crate::net::{self, UrlPolicy};

/// How many times a request is sent before a transient failure is final.
const ATTEMPTS: u32 = 4;
/// The wait before the first retry; it doubles each time.
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait a server's `Retry-After` may impose between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the server may stay silent, before or during the body.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// What `HEAD` says about a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// `Content-Length`, when the server sends one.
    pub size: Option<u64>,
}

/// An HTTP(S) client for objects at user-given URLs; build it once and share it.
#[derive(Debug, Clone)]
pub struct HttpClient {
    pub(super) client: reqwest::Client,
    pub(super) policy: Arc<UrlPolicy>,
}

impl HttpClient {
    /// A client that reaches only what `policy` allows (checked when names resolve and
    /// on every redirect; no proxy from the environment, which would bypass the check).
    pub fn new(policy: UrlPolicy) -> Result<HttpClient, Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
            .redirect(redirect_policy(policy.clone()))
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(concat!("cellar/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Error::Setup(format!("the http client: {}", describe(&error))))?;
        Ok(HttpClient { client, policy })
    }

    /// The policy this client enforces, for checks before a request is queued.
    pub fn policy(&self) -> &UrlPolicy {
        &self.policy
    }

    /// Opens the resource at `url` from byte `offset`, streaming its body. Errors:
    /// [`Error::NotFound`] for 404 and 410, [`Error::Denied`] for 401 and 403,
    /// [`Error::Unreachable`] when the server cannot be reached or keeps failing,
    /// [`Error::Refused`] when the policy refuses the URL or a redirect. Dropping the
    /// reader closes the connection.
    pub async fn open(&self, url: &Url, offset: u64) -> Result<ObjectReader, Error> {
        let shown = redact_uri(url.as_str());
        let response = self.send(Method::GET, url, offset).await?;
        let status = response.status();
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            if offset == 0 {
                let detail = format!("the server answered {status}");
                return Err(Error::Unreachable { key: shown, detail });
            }
            // Asked for the end of the resource or beyond: nothing more to read.
            let size = content_range_total(&response);
            return Ok(ObjectReader { size, body: Box::pin(tokio::io::empty()) });
        }
        let ranged = status == StatusCode::PARTIAL_CONTENT;
        let size = if ranged { content_range_total(&response) } else { content_length(&response) };
        let key = shown.clone();
        let stream = response.bytes_stream().map_err(move |error| {
            std::io::Error::other(Error::Unreachable {
                key: key.clone(),
                detail: format!("the body broke off: {}", describe(&error)),
            })
        });
        let mut body: Pin<Box<dyn AsyncRead + Send>> = Box::pin(StreamReader::new(stream));
        if offset > 0 && !ranged {
            // The server ignored the range: read up to the offset and drop those bytes.
            let skipped = tokio::io::copy(&mut (&mut body).take(offset), &mut tokio::io::sink())
                .await
                .map_err(|source| Error::Io { key: shown.clone(), source })?;
            if skipped < offset {
                return Ok(ObjectReader { size, body: Box::pin(tokio::io::empty()) });
            }
        }
        Ok(ObjectReader { size, body })
    }

    /// Asks for the resource's size without its body. Errors as [`HttpClient::open`].
    pub async fn head(&self, url: &Url) -> Result<Head, Error> {
        let response = self.send(Method::HEAD, url, 0).await?;
        Ok(Head { size: content_length(&response) })
    }

    /// Sends one `POST` of `body` with `headers` to `url`, once (the caller has its own
    /// retry schedule), answering the response whatever its status; the whole exchange
    /// must end within `timeout`. The URL policy is checked first, and again when the
    /// name resolves and on every redirect. Errors: [`Error::Refused`] when the policy
    /// refuses the URL or a redirect, [`Error::Unreachable`] when the server cannot be
    /// reached or does not answer in time.
    pub async fn post_once(
        &self,
        url: &Url,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Response, Error> {
        self.policy.check_url(url)?;
        let request = self.client.post(url.clone()).headers(headers).body(body).timeout(timeout);
        request.send().await.map_err(|error| match refusal(&error) {
            Some(refused) => Error::Refused(refused),
            None => Error::Unreachable { key: redact_uri(url.as_str()), detail: describe(&error) },
        })
    }

    // Sends one request, retrying transient failures; answers a success status only.
    async fn send(&self, method: Method, url: &Url, offset: u64) -> Result<Response, Error> {
        let shown = redact_uri(url.as_str());
        let ranged = |request: RequestBuilder| {
            if offset > 0 { request.header(RANGE, format!("bytes={offset}-")) } else { request }
        };
        let response = self.exchange(method, url, &ranged).await?;
        match classify(&shown, response) {
            Outcome::Success(response) => Ok(response),
            Outcome::Final(error) | Outcome::Transient(error) => Err(error),
        }
    }

    // Sends one request built by `configure` (credentials from the URL added), retrying
    // connection failures and 429/5xx answers with backoff; answers the last response,
    // whatever its status. The URL policy is checked first.
    pub(super) async fn exchange(
        &self,
        method: Method,
        url: &Url,
        configure: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<Response, Error> {
        self.policy.check_url(url)?;
        let shown = redact_uri(url.as_str());
        let (bare, credentials) = split_credentials(url);
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let mut request = self.client.request(method.clone(), bare.clone());
            if let Some((user, password)) = &credentials {
                request = request.basic_auth(user, Some(password));
            }
            let request = configure(request);
            let failure = match request.send().await {
                Ok(response) => match retry_after(&response) {
                    Some(wait) if attempt < ATTEMPTS => {
                        backoff = wait.map_or(backoff, |wait| wait.min(MAX_BACKOFF));
                        let status = response.status();
                        Error::Unreachable {
                            key: shown.clone(),
                            detail: format!("the server answered {status}"),
                        }
                    }
                    _ => return Ok(response),
                },
                Err(error) => {
                    if let Some(refused) = refusal(&error) {
                        return Err(Error::Refused(refused));
                    }
                    // Connecting, timeouts and broken connections are worth a retry; a
                    // redirect loop is not.
                    let transient = !error.is_redirect() && !error.is_builder();
                    let error = Error::Unreachable { key: shown.clone(), detail: describe(&error) };
                    if !transient || attempt == ATTEMPTS {
                        return Err(error);
                    }
                    error
                }
            };
            tracing::debug!(url = %shown, attempt, error = %failure, "retrying an http request");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }
}

enum Outcome {
    Success(Response),
    Final(Error),
    Transient(Error),
}

// For an answer worth another try (429, 5xx): `Some`, with the wait the server asks for
// in `Retry-After` (in seconds), if any.
fn retry_after(response: &Response) -> Option<Option<Duration>> {
    if !matches!(response.status().as_u16(), 429 | 500..=599) {
        return None;
    }
    let asked = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Some(asked)
}

// Sorts a response by status: success, a failure worth retrying, or a final one.
fn classify(shown: &str, response: Response) -> Outcome {
    let status = response.status();
    let key = shown.to_owned();
    let detail = format!("the server answered {status}");
    match status.as_u16() {
        200..=299 | 416 => Outcome::Success(response),
        404 | 410 => Outcome::Final(Error::NotFound { key }),
        401 | 403 => Outcome::Final(Error::Denied { key, detail }),
        429 | 500..=599 => Outcome::Transient(Error::Unreachable { key, detail }),
        _ => Outcome::Final(Error::Unreachable { key, detail }),
    }
}

// The URL without `user:pass@`, and the decoded credentials for Basic auth.
pub(super) fn split_credentials(url: &Url) -> (Url, Option<(String, String)>) {
    if url.username().is_empty() && url.password().is_none() {
        return (url.clone(), None);
    }
    let decode = |text: &str| {
        url::form_urlencoded::parse(format!("x={text}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    let user = decode(url.username());
    let password = decode(url.password().unwrap_or_default());
    let mut bare = url.clone();
    // Only URLs without a host refuse credentials, and http(s) URLs always have one.
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    (bare, Some((user, password)))
}

fn content_length(response: &Response) -> Option<u64> {
    response.headers().get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

// The total of `Content-Range: bytes 10-99/100` (or `bytes */100`).
fn content_range_total(response: &Response) -> Option<u64> {
    let range = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    range.rsplit_once('/')?.1.trim().parse().ok()
}

// The policy's refusal, when that is why a request failed (at resolution or redirect).
pub(super) fn refusal(error: &reqwest::Error) -> Option<net::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(refused) = current.downcast_ref::<net::Error>() {
            return Some(refused.clone());
        }
        source = current.source();
    }
    None
}

// What went wrong, from the error's causes: reqwest's own message names the URL, which
// may hold a password, so it is left out.
pub(super) fn describe(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_redirect() {
        "redirect failed"
    } else {
        "request failed"
    };
    if parts.is_empty() { kind.to_owned() } else { format!("{kind}: {}", parts.join(": ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_move_from_the_url_to_basic_auth() {
        let url = Url::parse("https://back%40up:hun%3Ater2@files.example.com/a.rdb").unwrap();
        let (bare, credentials) = split_credentials(&url);
        assert_eq!(bare.as_str(), "https://files.example.com/a.rdb");
        assert_eq!(credentials, Some(("back@up".to_owned(), "hun:ter2".to_owned())));
        let plain = Url::parse("http://files.example.com/a.rdb").unwrap();
        assert_eq!(split_credentials(&plain), (plain.clone(), None));
    }

    #[tokio::test]
    async fn refusals_and_failures_never_show_the_password() {
        let client = HttpClient::new(UrlPolicy::default()).unwrap();
        // Loopback is refused before anything is sent.
        let refused = Url::parse("http://user:hunter2@127.0.0.1:9/a.rdb").unwrap();
        let error = client.open(&refused, 0).await.unwrap_err();
        assert!(matches!(error, Error::Refused(_)), "{error:?}");
        assert!(!format!("{error} {error:?}").contains("hunter2"), "{error}");

        // A name resolving to loopback is refused when it resolves.
        let resolved = Url::parse("http://user:hunter2@localhost:9/a.rdb").unwrap();
        let error = client.open(&resolved, 0).await.unwrap_err();
        assert!(matches!(error, Error::Refused(_)), "{error:?}");
        assert!(error.to_string().contains("loopback"), "{error}");
        assert!(!format!("{error} {error:?}").contains("hunter2"), "{error}");

        // Allowed but closed: unreachable after the retries, named without the password.
        let allowed =
            HttpClient::new(UrlPolicy::new(vec![net::AllowedHost::parse("127.0.0.1").unwrap()])).unwrap();
        let closed = closed_port().await;
        let url = Url::parse(&format!("http://user:hunter2@127.0.0.1:{closed}/a.rdb")).unwrap();
        let error = allowed.open(&url, 0).await.unwrap_err();
        assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("user:****@127.0.0.1"), "{text}");
    }

    async fn closed_port() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }
}

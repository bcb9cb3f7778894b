//! The download listener: `GET` and `HEAD /download/<token>` on its own address, serving
//! the one object a valid token names, streamed from the store (never buffered), with
//! single byte ranges.
//!
//! Nothing of the URL but the token is used: the token's signed claims name the backup
//! and the object key, which the catalog must confirm; no path from the request ever
//! reaches a store or the filesystem. Tokens never reach a log line.
//!
//! With `download_requires_token`, a request also needs a bearer token whose role may
//! download (`backups.download`; a member's only for its scope's databases), and every
//! download is audited.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;

use super::PATH_PREFIX;
use super::range::{self, Range};
use crate::auth::http::{Refusal, admit};
use crate::auth::{Authenticator, Caller, Level, Permission};
use crate::service::{Cellar, Error, LinkedObject};
use crate::tls::Tls;

/// What a download needs when the listener asks for a bearer token.
const BACKUPS_DOWNLOAD: Permission = Permission { name: "backups.download", level: Level::Data };

/// How much of the object one read takes from the store.
const READ_BUFFER: usize = 64 * 1024;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Serves download links on `listener` until `stop` is cancelled; with an authenticator
/// that asks for it, only to callers with a valid bearer token.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    cellar: Cellar,
    auth: Option<Arc<Authenticator>>,
    stop: CancellationToken,
) {
    let auth = auth.filter(|auth| auth.download_requires_token());
    crate::tls::http1::serve(listener, tls, "download", stop, |peer| {
        let (cellar, auth) = (cellar.clone(), auth.clone());
        hyper::service::service_fn(move |request| {
            let (cellar, auth) = (cellar.clone(), auth.clone());
            async move {
                let response = match auth {
                    Some(auth) => respond_to_bearer(&request, &cellar, &auth, peer).await,
                    None => respond(&request, &cellar, peer).await,
                };
                Ok::<_, Infallible>(response)
            }
        })
    })
    .await;
}

// A download that needs a bearer token as well as the link.
async fn respond_to_bearer(
    request: &Request<Incoming>,
    cellar: &Cellar,
    auth: &Authenticator,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let caller = match admit(auth, authorization, BACKUPS_DOWNLOAD, peer) {
        Ok(caller) => caller,
        Err(refusal) => {
            let (status, message) = match refusal {
                Refusal::Unauthenticated(error) => (StatusCode::UNAUTHORIZED, error.to_string()),
                Refusal::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            };
            let mut response = text(status, &message);
            insert(&mut response, header::WWW_AUTHENTICATE, "Bearer");
            return response;
        }
    };
    let token = request.uri().path().strip_prefix(PATH_PREFIX).filter(|token| is_token(token));
    if caller.role.is_scoped()
        && let Some(token) = token
        && let Ok(object) = cellar.open_link(token).await
    {
        caller.touches(format!("backups/{}", object.backup_id));
        if !in_scope(&caller, cellar, &object).await {
            audit(&caller, peer, "403");
            return text(
                StatusCode::FORBIDDEN,
                "permission backups.download denied: the database is not in the caller's scope",
            );
        }
    }
    let response = respond(request, cellar, peer).await;
    audit(&caller, peer, response.status().as_str());
    response
}

// Whether a member's scope covers the database of the linked backup.
async fn in_scope(caller: &Caller, cellar: &Cellar, object: &LinkedObject) -> bool {
    let Ok(backup) = cellar.get_backup(object.backup_id).await else { return false };
    let Some(database) = backup.database_id else { return false };
    cellar.get_database(database).await.is_ok_and(|database| caller.covers(&database))
}

fn audit(caller: &Caller, peer: std::net::SocketAddr, outcome: &str) {
    let resource = caller.resource();
    crate::auth::audit::record(crate::auth::audit::Entry {
        caller: &caller.id,
        role: Some(caller.role),
        permission: caller.permission.name,
        resource: resource.as_deref(),
        peer: Some(peer),
        outcome,
    });
}

async fn respond(request: &Request<Incoming>, cellar: &Cellar, peer: std::net::SocketAddr) -> Response<Body> {
    let token = request.uri().path().strip_prefix(PATH_PREFIX).filter(|token| is_token(token));
    let Some(token) = token else {
        return text(StatusCode::NOT_FOUND, "no such download; links look like /download/<token>");
    };
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET or HEAD");
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    let object = match cellar.open_link(token).await {
        Ok(object) => object,
        Err(error) => return refusal(&error),
    };
    let range_header = request.headers().get(header::RANGE).and_then(|value| value.to_str().ok());
    let range = range::parse(range_header, object.size);
    let Some((start, length)) = range.span(object.size) else {
        let mut response = text(StatusCode::RANGE_NOT_SATISFIABLE, "the range is past the end of the object");
        insert(&mut response, header::CONTENT_RANGE, &format!("bytes */{}", object.size));
        return response;
    };
    tracing::info!(backup = %object.backup_id, key = %object.key, %peer, start, length, head, "download");
    let body = if head || length == 0 {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    } else {
        match object.storage.reader(&object.key, start).await {
            Ok(reader) => {
                let bytes = ReaderStream::with_capacity(reader.body.take(length), READ_BUFFER);
                StreamBody::new(bytes.map_ok(Frame::data)).boxed_unsync()
            }
            Err(error) => {
                tracing::warn!(backup = %object.backup_id, %error, "cannot read a downloaded object");
                return text(StatusCode::BAD_GATEWAY, "the backup's store cannot be read now");
            }
        }
    };
    let mut response = Response::new(body);
    headers(&mut response, &object, length);
    if let Range::Part { start, end } = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        insert(&mut response, header::CONTENT_RANGE, &format!("bytes {start}-{end}/{}", object.size));
    }
    response
}

// A token is base64url text and one dot: anything else is not a link of ours.
fn is_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
}

fn headers(response: &mut Response<Body>, object: &LinkedObject, length: u64) {
    insert(response, header::CONTENT_TYPE, "application/octet-stream");
    insert(response, header::CONTENT_LENGTH, &length.to_string());
    insert(response, header::ACCEPT_RANGES, "bytes");
    insert(
        response,
        header::CONTENT_DISPOSITION,
        &format!("attachment; filename=\"{}\"", safe_filename(&object.filename)),
    );
    // The URL is a credential: no shared cache keeps the response.
    insert(response, header::CACHE_CONTROL, "private, no-store");
}

/// The filename as plain ASCII a quoted header value can hold.
fn safe_filename(name: &str) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    if safe.trim_matches('.').is_empty() { "backup".to_owned() } else { safe }
}

fn refusal(error: &Error) -> Response<Body> {
    let status = match error {
        Error::PermissionDenied { .. } => StatusCode::FORBIDDEN,
        Error::NotFound { .. } | Error::FailedPrecondition { .. } => StatusCode::NOT_FOUND,
        Error::StorageUnavailable { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::debug!(%error, %status, "download refused");
    match error {
        Error::Internal(_) => text(status, "internal error; see the server log"),
        other => text(status, &other.to_string()),
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("{message}\n"))).map_err(|never| match never {}).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    insert(&mut response, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    insert(&mut response, header::CACHE_CONTROL, "no-store");
    response
}

fn insert(response: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_plain_ascii() {
        for (name, expected) in [
            ("backup-2026-01-01T00-00-00Z.rdb.zst", "backup-2026-01-01T00-00-00Z.rdb.zst"),
            ("a \"quoted\"\\name.rdb", "a__quoted__name.rdb"),
            ("données.sql", "donn_es.sql"),
            ("..", "backup"),
        ] {
            assert_eq!(safe_filename(name), expected, "{name}");
        }
    }

    #[test]
    fn only_token_shaped_paths_are_tokens() {
        assert!(is_token("eyJiIjoiMCJ9.c2ln-_"));
        for bad in ["", "a/b", "..%2Fetc", "a b", "a?b"] {
            assert!(!is_token(bad), "{bad}");
        }
    }
}

//! The Prometheus endpoint: `GET /metrics` on its own listener, in the text format.
//! When authentication is configured, a scrape needs a bearer token of any role
//! (permission `metrics.read`); refusals are audited, scrapes are not.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::auth::http::{Refusal, admit};
use crate::auth::{Authenticator, Level, Permission};
use crate::operations::Manager;
use crate::tls::Tls;

/// The content type of Prometheus's text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a scrape needs.
const METRICS_READ: Permission = Permission { name: "metrics.read", level: Level::Read };

/// Serves `GET /metrics` on `listener` until `stop` is cancelled; with an
/// authenticator, only to callers with a valid bearer token.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    metrics: Arc<Metrics>,
    manager: Manager,
    auth: Option<Arc<Authenticator>>,
    stop: CancellationToken,
) {
    crate::tls::http1::serve(listener, tls, "metrics", stop, |peer| {
        let (metrics, manager, auth) = (metrics.clone(), manager.clone(), auth.clone());
        hyper::service::service_fn(move |request| {
            let response = match refused(&request, auth.as_deref(), peer) {
                Some(refusal) => refusal,
                None => respond(&request, &metrics, &manager),
            };
            async move { Ok::<_, Infallible>(response) }
        })
    })
    .await;
}

// The response to a request without the token the listener needs, if it lacks one.
fn refused(
    request: &Request<Incoming>,
    auth: Option<&Authenticator>,
    peer: std::net::SocketAddr,
) -> Option<Response<Full<Bytes>>> {
    let authorization =
        request.headers().get(hyper::header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let (status, message) = match admit(auth?, authorization, METRICS_READ, peer) {
        Ok(_) => return None,
        Err(Refusal::Unauthenticated(error)) => (StatusCode::UNAUTHORIZED, error.to_string()),
        Err(Refusal::Forbidden(message)) => (StatusCode::FORBIDDEN, message),
    };
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(hyper::header::WWW_AUTHENTICATE, hyper::header::HeaderValue::from_static("Bearer"));
    Some(response)
}

fn respond(request: &Request<Incoming>, metrics: &Metrics, manager: &Manager) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let (queued, running) = manager.counts();
            (StatusCode::OK, TEXT_FORMAT, metrics.render(queued, running))
        }
        (_, "/metrics") => (StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "the metrics are at /metrics\n".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

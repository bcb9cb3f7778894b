//! The Prometheus endpoint: `GET /metrics` on its own listener, in the text format.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::operations::Manager;
use crate::tls::{Accepted, Tls};

/// The content type of Prometheus's text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `GET /metrics` on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Tls>,
    metrics: Arc<Metrics>,
    manager: Manager,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            accepted = Accepted::next(&listener, tls.as_ref()) => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "metrics listener cannot accept");
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let peer = accepted.remote();
        let metrics = metrics.clone();
        let manager = manager.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let stream = match accepted.handshake().await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&request, &metrics, &manager);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, "metrics connection ended");
                    }
                }
                () = stop.cancelled() => {}
            }
        });
    }
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

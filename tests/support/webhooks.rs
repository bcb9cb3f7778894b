//! `WebhookReceiver`: an HTTP server (hyper 1) on a free loopback port that records every
//! request it gets, as a webhook endpoint would, and answers `500` to the first
//! `failures` requests (to make Cellar retry), then `204`. Its path `/redirect` answers
//! `307` to the URL in its `to` query parameter instead. It stops when dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::LOCATION;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::task::JoinSet;

use super::poll;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// The method.
    pub(crate) method: String,
    /// The path and query.
    pub(crate) path: String,
    /// `Cellar-Delivery`.
    pub(crate) delivery: String,
    /// `Cellar-Signature`.
    pub(crate) signature: String,
    /// `Cellar-Event`.
    pub(crate) event: String,
    /// `Content-Type`.
    pub(crate) content_type: String,
    /// The raw body.
    pub(crate) body: Vec<u8>,
    /// What the receiver answered.
    pub(crate) answered: u16,
}

/// A running receiver.
pub(crate) struct WebhookReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: tokio::task::JoinHandle<()>,
}

struct Shared {
    failures: usize,
    received: Mutex<Vec<Received>>,
}

impl WebhookReceiver {
    /// A receiver answering `500` to its first `failures` requests, then `204`.
    pub(crate) async fn start(failures: usize) -> WebhookReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared { failures, received: Mutex::new(Vec::new()) });
        let served = shared.clone();
        let accepting = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let shared = served.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(answer(&shared, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        WebhookReceiver { addr, shared, accepting }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, in order.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests came; returns them all.
    pub(crate) async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        poll(&format!("{count} webhook request(s)"), timeout, || async {
            let received = self.received();
            (received.len() >= count).then_some(received)
        })
        .await
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned()
    };
    let (method, path) = (request.method().to_string(), request.uri().to_string());
    let (delivery, signature, event, content_type) = (
        header("cellar-delivery"),
        header("cellar-signature"),
        header("cellar-event"),
        header("content-type"),
    );
    let redirect_to = request.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "to")
            .map(|(_, to)| to.into_owned())
    });
    let body = request.into_body().collect().await.map(|body| body.to_bytes().to_vec()).unwrap_or_default();
    let mut received = shared.received.lock().unwrap();
    let status = match &redirect_to {
        Some(_) if path.starts_with("/redirect") => StatusCode::TEMPORARY_REDIRECT,
        _ if received.len() < shared.failures => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::NO_CONTENT,
    };
    received.push(Received {
        method,
        path,
        delivery,
        signature,
        event,
        content_type,
        body,
        answered: status.as_u16(),
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    if let (StatusCode::TEMPORARY_REDIRECT, Some(to)) = (status, redirect_to) {
        response.headers_mut().insert(LOCATION, to.parse().expect("a redirect target"));
    }
    response
}

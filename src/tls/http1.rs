//! An HTTP/1.1 listener, plain or TLS: the download and metrics listeners' shared loop.
//! Each connection gets its own task (so that a slow TLS handshake or client holds up
//! no other), a deadline for its request head, and ends when the listener stops.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Accepted, Tls};

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `listener` (over `tls` when given) until `stop` is cancelled, each connection
/// with the service `service_for` makes for its peer's address; `what` names the
/// listener in log lines.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Option<Tls>,
    what: &'static str,
    stop: CancellationToken,
    service_for: impl Fn(SocketAddr) -> S,
) where
    S: hyper::service::Service<hyper::Request<Incoming>, Response = hyper::Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let accepted = tokio::select! {
            accepted = Accepted::next(&listener, tls.as_ref()) => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, listener = what, "cannot accept");
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let peer = accepted.remote();
        let service = service_for(peer);
        let stop = stop.clone();
        tokio::spawn(async move {
            let stream = match accepted.handshake().await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%peer, %error, listener = what, "TLS handshake failed");
                    return;
                }
            };
            // A client that never finishes its request head is dropped.
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(%peer, %error, listener = what, "connection ended");
                    }
                }
                () = stop.cancelled() => {}
            }
        });
    }
}

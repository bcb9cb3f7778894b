//! Accepted connections, plain or TLS, each carrying its [`Peer`]: the remote address
//! and, when the TLS listener verified a client certificate, its subject.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use super::Tls;
use crate::grpc::peer::Peer;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections that finished their handshake and wait for the server to take them.
const READY_QUEUE: usize = 64;

/// One accepted connection.
pub enum Connection {
    /// Plain TCP.
    Plain(TcpStream, Peer),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>, Peer),
}

impl Connection {
    /// Who is on the other side.
    pub fn peer(&self) -> &Peer {
        match self {
            Connection::Plain(_, peer) | Connection::Tls(_, peer) => peer,
        }
    }
}

/// A TCP connection accepted, its TLS handshake (if any) still to come: run it in the
/// connection's own task, so that a slow client holds up no other.
pub struct Accepted {
    stream: TcpStream,
    remote: SocketAddr,
    tls: Option<Tls>,
}

impl Accepted {
    /// Accepts the next connection on `listener`; `tls` is the configuration its
    /// handshake will use, if the listener speaks TLS.
    pub async fn next(listener: &TcpListener, tls: Option<&Tls>) -> io::Result<Accepted> {
        let (stream, remote) = listener.accept().await?;
        Ok(Accepted { stream, remote, tls: tls.cloned() })
    }

    /// The client's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The connection, after its TLS handshake when the listener speaks TLS.
    pub async fn handshake(self) -> io::Result<Connection> {
        let Some(tls) = self.tls else {
            let peer = Peer { remote_addr: Some(self.remote), client_subject: None };
            return Ok(Connection::Plain(self.stream, peer));
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(self.stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake took too long"))??;
        let client_subject = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| subject_of(leaf.as_ref()));
        let peer = Peer { remote_addr: Some(self.remote), client_subject };
        Ok(Connection::Tls(Box::new(stream), peer))
    }
}

/// The subject of a DER certificate in RFC 4514 form (`CN=backup-bot,O=Example`).
fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string().replace(", ", ","))
}

/// The connections of `listener` as the gRPC server takes them: accepted in one task,
/// each handshake in a task of its own; a failed handshake is logged and dropped, never
/// handed on (an error would stop the server). Ends when the server drops the stream.
pub fn incoming(listener: TcpListener, tls: Option<Tls>) -> impl Stream<Item = io::Result<Connection>> {
    let (ready, connections) = tokio::sync::mpsc::channel(READY_QUEUE);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = Accepted::next(&listener, tls.as_ref()) => accepted,
                () = ready.closed() => return,
            };
            let accepted = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "the gRPC listener cannot accept");
                    continue;
                }
            };
            let ready = ready.clone();
            tokio::spawn(async move {
                let remote = accepted.remote();
                match accepted.handshake().await {
                    Ok(connection) => {
                        let _ = ready.send(Ok(connection)).await;
                    }
                    Err(error) => tracing::debug!(%remote, %error, "TLS handshake failed"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(connections)
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer().clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream, _) => Pin::new(stream).poll_read(cx, buf),
            Connection::Tls(stream, _) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream, _) => Pin::new(stream).poll_write(cx, buf),
            Connection::Tls(stream, _) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream, _) => Pin::new(stream).poll_flush(cx),
            Connection::Tls(stream, _) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream, _) => Pin::new(stream).poll_shutdown(cx),
            Connection::Tls(stream, _) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream, _) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Connection::Tls(stream, _) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(stream, _) => stream.is_write_vectored(),
            Connection::Tls(stream, _) => stream.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_reads_in_rfc_4514_form() {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".to_owned()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "backup-bot");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Example");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let subject = subject_of(cert.der()).expect("a subject");
        assert!(subject.contains("CN=backup-bot") && subject.contains("O=Example"), "{subject}");
        assert_eq!(subject_of(b"not a certificate"), None);
    }
}

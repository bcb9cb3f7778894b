//! What the transport learned about a caller before any RPC ran: its address and, on a
//! TLS listener that verified a client certificate, the certificate's subject. Every
//! accepted connection carries one [`Peer`] as its tonic connect info, so handlers and
//! interceptors find it with `request.extensions().get::<Peer>()`.

use std::net::SocketAddr;

/// The caller's side of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The remote address, when the transport has one.
    pub remote_addr: Option<SocketAddr>,
    /// The subject of the client certificate the TLS listener verified (RFC 4514 form,
    /// e.g. `CN=backup-bot,O=Example`); `None` on plain connections and when no
    /// certificate was presented.
    pub client_subject: Option<String>,
}

//! TLS for every listener (gRPC, downloads, metrics): certificate and key files read into
//! a rustls configuration that is swapped in place when the files change or on SIGHUP
//! (a connection keeps the configuration it started with), and optional client
//! certificate verification (mTLS) whose verified subject reaches the handlers as part
//! of the connection's [`Peer`](crate::grpc::peer::Peer).
//!
//! `files.rs` reads PEM files into a `ServerConfig`; `connection.rs` is the accepted
//! connection, plain or TLS, and the stream of them the gRPC server takes; `http1.rs`
//! the loop of the HTTP/1.1 listeners (downloads, metrics).

mod connection;
mod files;
pub mod http1;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

pub use connection::{Accepted, Connection, incoming};

/// How often the certificate files are looked at for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// A TLS failure; messages name the file at fault, never key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM of the expected kind, or the pieces do not fit.
    #[error("{0}")]
    Invalid(String),
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Every client presents a certificate signed by the client CA.
    #[default]
    Required,
    /// A client may present one (then it is verified); others connect without.
    Optional,
}

/// Where the TLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain (PEM, leaf first).
    pub cert_file: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that sign client certificates; `None`: no client
    /// certificates asked for.
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client certificate is required when `client_ca_file` is set.
    pub client_auth: ClientAuth,
}

/// What a listener speaks over TLS, offered by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC: HTTP/2.
    Grpc,
    /// The download and metrics listeners: HTTP/1.1.
    Http1,
}

/// The configurations of one set of files, one per protocol.
struct Configs {
    grpc: Arc<rustls::ServerConfig>,
    http1: Arc<rustls::ServerConfig>,
}

impl Configs {
    fn read(settings: &TlsSettings) -> Result<Configs, Error> {
        let base = files::server_config(settings)?;
        let with_alpn = |protocol: &[u8]| {
            let mut config = base.clone();
            config.alpn_protocols = vec![protocol.to_vec()];
            Arc::new(config)
        };
        Ok(Configs { grpc: with_alpn(b"h2"), http1: with_alpn(b"http/1.1") })
    }
}

/// The TLS configuration listeners use, reloaded in place.
#[derive(Clone)]
pub struct Tls {
    settings: Arc<TlsSettings>,
    protocol: Protocol,
    current: Arc<RwLock<Arc<Configs>>>,
    /// The files' modification times when last loaded.
    stamps: Arc<RwLock<Vec<Option<SystemTime>>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files; fails when any is missing or unusable.
    pub fn load(settings: TlsSettings) -> Result<Tls, Error> {
        let stamps = files::stamps(&settings);
        let configs = Configs::read(&settings)?;
        Ok(Tls {
            settings: Arc::new(settings),
            protocol: Protocol::Grpc,
            current: Arc::new(RwLock::new(Arc::new(configs))),
            stamps: Arc::new(RwLock::new(stamps)),
        })
    }

    /// The same configuration (reloaded together) for a listener speaking `protocol`.
    pub fn speaking(&self, protocol: Protocol) -> Tls {
        Tls { protocol, ..self.clone() }
    }

    /// Whether client certificates are verified.
    pub fn verifies_clients(&self) -> bool {
        self.settings.client_ca_file.is_some()
    }

    /// The configuration new connections get.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        let configs = self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        match self.protocol {
            Protocol::Grpc => configs.grpc.clone(),
            Protocol::Http1 => configs.http1.clone(),
        }
    }

    /// Reads the files again; on failure the configuration in use stays, and the error
    /// says why.
    pub fn reload(&self) -> Result<(), Error> {
        let stamps = files::stamps(&self.settings);
        let configs = Configs::read(&self.settings)?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(configs);
        *self.stamps.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = stamps;
        Ok(())
    }

    /// Reloads on SIGHUP and whenever a file's modification time changes, until `stop`.
    pub async fn watch(self, stop: CancellationToken) {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut ticks = tokio::time::interval(WATCH_INTERVAL);
        loop {
            let hangup = async {
                match hangups.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            let why = tokio::select! {
                () = stop.cancelled() => return,
                _ = hangup => "SIGHUP",
                _ = ticks.tick() => {
                    let now = files::stamps(&self.settings);
                    if *self.stamps.read().unwrap_or_else(|poisoned| poisoned.into_inner()) == now {
                        continue;
                    }
                    "the files changed"
                }
            };
            match self.reload() {
                Ok(()) => {
                    tracing::info!(why, cert_file = %self.settings.cert_file.display(), "TLS certificates reloaded")
                }
                Err(error) => {
                    tracing::error!(why, %error, "cannot reload the TLS certificates; the ones in use stay")
                }
            }
        }
    }
}

//! TLS for `rediss://`: rustls with the ring provider and the system's trust roots
//! (`SSL_CERT_FILE`/`SSL_CERT_DIR` add a private CA), or no certificate checks at all
//! when the URI says `insecure=true`.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::target::TlsVerification;

/// Runs the TLS handshake over `stream`, checking the certificate against `host`
/// unless verification is off. The error says what failed, for a message.
pub(crate) async fn handshake(
    stream: TcpStream,
    host: &str,
    verification: TlsVerification,
) -> Result<TlsStream<TcpStream>, String> {
    let config = client_config(verification)?;
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host} is not a valid tls server name"))?;
    TlsConnector::from(config)
        .connect(server_name, stream)
        .await
        .map_err(|error| format!("tls handshake failed: {error}"))
}

/// The client configuration for a verification mode, built once per process.
fn client_config(verification: TlsVerification) -> Result<Arc<ClientConfig>, String> {
    static VERIFIED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    static INSECURE: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let cell = match verification {
        TlsVerification::Verify => &VERIFIED,
        TlsVerification::Insecure => &INSECURE,
    };
    cell.get_or_init(|| build_client_config(verification)).clone()
}

fn build_client_config(verification: TlsVerification) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("cannot set up tls: {error}"))?;
    let config = match verification {
        TlsVerification::Verify => builder.with_root_certificates(native_roots()).with_no_client_auth(),
        TlsVerification::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The system's trust roots; certificates that fail to load are skipped with a warning.
fn native_roots() -> RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(%error, "cannot load a system trust root");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "some system trust roots could not be parsed");
    }
    if added == 0 {
        tracing::warn!("no system trust roots found: rediss:// servers cannot be verified");
    }
    roots
}

/// Accepts any certificate, but still checks that the server holds its key.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_configurations_build() {
        assert!(client_config(TlsVerification::Verify).is_ok());
        assert!(client_config(TlsVerification::Insecure).is_ok());
    }
}

//! Reading PEM files into a rustls server configuration.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::{ClientAuth, Error, TlsSettings};

/// The modification times of the settings' files (`None` for a file that cannot be
/// looked at), to notice a change.
pub(super) fn stamps(settings: &TlsSettings) -> Vec<Option<SystemTime>> {
    let files = [Some(&settings.cert_file), Some(&settings.key_file), settings.client_ca_file.as_ref()];
    files
        .into_iter()
        .flatten()
        .map(|path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok())
        .collect()
}

/// A server configuration from the settings' files (no ALPN protocols yet), client
/// certificates verified against the client CA when there is one.
pub(super) fn server_config(settings: &TlsSettings) -> Result<rustls::ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Invalid(format!("TLS protocol versions: {error}")))?;
    let builder = match &settings.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca_file)? {
                roots.add(cert).map_err(|error| {
                    Error::Invalid(format!("{}: not a usable CA certificate: {error}", ca_file.display()))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match settings.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|error| Error::Invalid(format!("{}: {error}", ca_file.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let chain = certificates(&settings.cert_file)?;
    let key = private_key(&settings.key_file)?;
    builder.with_single_cert(chain, key).map_err(|error| {
        Error::Invalid(format!(
            "{} and {} do not make a usable certificate and key: {error}",
            settings.cert_file.display(),
            settings.key_file.display()
        ))
    })
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|error| Error::Invalid(format!("{}: not PEM certificates: {error}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Invalid(format!("{} holds no certificate", path.display())));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read(path)?;
    // The key's bytes never reach a message.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        Error::Invalid(format!("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display()))
    })
}

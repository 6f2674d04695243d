//! Optional TLS termination in the relay itself (`[server] tls_cert` and
//! `tls_key`, PEM), for users without a reverse proxy: rustls with the ring
//! provider, TLS 1.2 and 1.3, HTTP/1.1.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from \"{path}\": {reason}")]
    Certificates { path: String, reason: String },
    #[error("cannot read a private key from \"{path}\": {reason}")]
    Key { path: String, reason: String },
    #[error("certificate and key do not go together: {0}")]
    Mismatch(String),
}

/// Makes ring the process's TLS provider, for the libraries that ask
/// rustls for one (the relay's own server and clients name it anyway).
/// Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads the PEM certificate chain at `cert` and the private key at `key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let certificates = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificates { path: cert.display().to_string(), reason: e.to_string() })?;
    if certificates.is_empty() {
        return Err(TlsError::Certificates {
            path: cert.display().to_string(),
            reason: "no CERTIFICATE block in the file".into(),
        });
    }
    let private_key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key { path: key.display().to_string(), reason: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certificates, private_key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

//! TLS for a listener: certificate and key files, optional client
//! certificates (mutual TLS), and the certificate's expiry.
//!
//! The crypto provider (aws-lc-rs) is passed explicitly instead of relying on
//! a process-wide default, which panics when more than one provider is
//! compiled into the binary. Only HTTP/1.1 is offered over ALPN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

/// `tls` of a listener's config section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM file with the server certificate chain (leaf first).
    pub cert: PathBuf,
    /// PEM file with the server's private key (a secret: mode 0600).
    pub key: PathBuf,
    /// PEM file with the CA(s) client certificates must chain to. When set,
    /// every client must present a certificate (mutual TLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// Why TLS could not be set up. Names files, never their content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: {what}")]
    Content {
        /// The file.
        path: String,
        /// What was missing or wrong.
        what: String,
    },
    /// rustls refused the configuration (e.g. the key does not match).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn content(path: &Path, what: impl Into<String>) -> TlsError {
    TlsError::Content {
        path: path.display().to_string(),
        what: what.into(),
    }
}

/// Every certificate of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(path, format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(content(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => content(path, "no PRIVATE KEY block"),
        e => content(path, format!("malformed PEM: {e}")),
    })
}

/// The rustls server configuration for `files`: mutual TLS when `client_ca`
/// is set, HTTP/1.1 over ALPN.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let mut config = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots.add(cert)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)?
        }
        None => builder.with_no_client_auth().with_single_cert(certs, key)?,
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// When the first (leaf) certificate of a PEM file expires: its `notAfter`
/// as seconds since the Unix epoch.
pub fn not_after(cert: &Path) -> Result<i64, TlsError> {
    let certs = load_certs(cert)?;
    let leaf = certs
        .first()
        .ok_or_else(|| content(cert, "no CERTIFICATE block"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| content(cert, format!("not an X.509 certificate: {e}")))?;
    Ok(parsed.validity().not_after.timestamp())
}

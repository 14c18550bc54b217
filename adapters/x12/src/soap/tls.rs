//! TLS for the SOAP server: PEM loading and the rustls server configuration
//! with its client-certificate verifier.
//!
//! With `client_ca` the server asks every client for a certificate and
//! verifies its chain (mutual TLS); a client without one may still finish the
//! handshake, so that it gets a SOAP fault naming the CORE error code (and
//! partners that authenticate with a UsernameToken can post) — whether a
//! request is allowed is decided per request by [`super::auth`], from the
//! verified certificate the listener hands the handler.
//!
//! The listener itself (connection cap, TLS handshake, header, body and idle
//! timeouts) is the gateway's shared one, `gateway-http-listener`, which runs
//! the handshake with this configuration and puts the verified chain in each
//! request's extensions (`PeerCertificates`); see [`super::server`].
//!
//! The crypto provider is passed explicitly (aws-lc-rs) rather than installed
//! process-wide, so the adapter never panics on a missing default provider.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The PEM held no usable certificate or key.
    #[error("{0}")]
    Content(String),
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built from `client_ca`.
    #[error("client certificate verifier (client_ca): {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The aws-lc-rs provider.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Certificates from PEM text.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Content(format!("bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Content("no certificate in PEM".into()));
    }
    Ok(certs)
}

/// A private key from PEM text.
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| TlsError::Content(format!("bad key PEM: {e}")))?
        .ok_or_else(|| TlsError::Content("no private key in PEM".into()))
}

/// Reads a file for TLS setup.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A server config (HTTP/1.1) from PEM certificate chain and key, without
/// client certificates.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with_clients(cert_pem, key_pem, None)
}

/// A server config (HTTP/1.1); with `client_ca_pem` the server requests a
/// client certificate and verifies its chain against those CAs (a client
/// that sends none still connects: see the module docs).
pub fn server_config_with_clients(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in certs_from_pem(pem)? {
                roots.add(cert)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs_from_pem(cert_pem)?, key_from_pem(key_pem)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A self-signed certificate and key (PEM) for `names` (DNS names or IPs):
/// for the loopback demo and tests, never for a partner-facing endpoint.
pub fn self_signed(names: &[&str]) -> Result<(String, String), TlsError> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::Content(format!("cannot generate a certificate: {e}")))?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

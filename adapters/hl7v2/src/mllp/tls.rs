//! TLS and mutual TLS for MLLP, with tokio-rustls.
//!
//! Interface engines want TLS on MLLP without a paid add-on or a stunnel in
//! front (research: interface-engines.md §3.1), so both the listener and the
//! sender speak it natively. The crypto provider is passed explicitly
//! (aws-lc-rs) instead of relying on a process-wide default, which panics when
//! more than one provider is compiled into the binary.
//!
//! Mutual TLS verifies the client chain against the configured CA; an optional
//! allowlist then requires the client certificate to be valid for one of the
//! listed DNS names / IP addresses (its subject alternative names).

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::config::{TlsClientConfig, TlsServerConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file held no usable item.
    #[error("{path}: {what}")]
    Content {
        /// The file.
        path: String,
        /// What was missing or wrong.
        what: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// An allowlist entry is neither a DNS name nor an IP address.
    #[error("allowed_peers entry {0:?} is not a DNS name or IP address")]
    BadPeerName(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|source| TlsSetupError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Reads every certificate from a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::Content {
            path: path.display().to_string(),
            what: format!("malformed PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::Content {
            path: path.display().to_string(),
            what: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// Reads the first private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsSetupError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TlsSetupError::Content {
            path: path.display().to_string(),
            what: format!("malformed PEM: {e}"),
        })?
        .ok_or_else(|| TlsSetupError::Content {
            path: path.display().to_string(),
            what: "no PRIVATE KEY block".into(),
        })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    for cert in load_certs(path)? {
        store.add(cert)?;
    }
    Ok(store)
}

/// Allowed client identities (subject alternative names) for mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct PeerAllowlist {
    names: Vec<ServerName<'static>>,
}

impl PeerAllowlist {
    /// Parses the configured names; an empty list allows every verified client.
    pub fn new(names: &[String]) -> Result<Self, TlsSetupError> {
        let names = names
            .iter()
            .map(|n| {
                ServerName::try_from(n.clone()).map_err(|_| TlsSetupError::BadPeerName(n.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PeerAllowlist { names })
    }

    /// Whether any name is configured.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Whether the (already chain-verified) end-entity certificate is allowed.
    pub fn allows(&self, cert: Option<&CertificateDer<'_>>) -> bool {
        if self.names.is_empty() {
            return true;
        }
        let Some(cert) = cert else { return false };
        let Ok(ee) = webpki::EndEntityCert::try_from(cert) else {
            return false;
        };
        self.names
            .iter()
            .any(|name| ee.verify_is_valid_for_subject_name(name).is_ok())
    }
}

/// Builds the listener's rustls configuration (mTLS when `client_ca` is set).
pub fn server_config(cfg: &TlsServerConfig) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let certs = load_certs(&cfg.cert)?;
    let key = load_key(&cfg.key)?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let config = match &cfg.client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(certs, key)?
        }
        None => builder.with_no_client_auth().with_single_cert(certs, key)?,
    };
    Ok(Arc::new(config))
}

/// Builds a client configuration (with a client certificate when both `cert`
/// and `key` are set).
pub fn client_config(cfg: &TlsClientConfig) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(&cfg.ca)?);
    let config = match (&cfg.cert, &cfg.key) {
        (Some(cert), Some(key)) => {
            builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(TlsSetupError::Content {
                path: "tls".into(),
                what: "a client certificate needs both cert and key".into(),
            });
        }
    };
    Ok(Arc::new(config))
}

/// The name to verify a receiver's certificate against: the configured
/// `server_name`, else the host part of `address` (`host:port`, `[v6]:port`).
pub fn server_name_for(
    cfg: &TlsClientConfig,
    address: &str,
) -> Result<ServerName<'static>, TlsSetupError> {
    let host = match &cfg.server_name {
        Some(name) => name.clone(),
        None => {
            let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string()
        }
    };
    ServerName::try_from(host.clone()).map_err(|_| TlsSetupError::BadPeerName(host))
}

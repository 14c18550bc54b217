//! TLS for the SOAP server: PEM loading and an axum [`Listener`] that
//! completes TLS handshakes off the accept path (a slow or hostile client
//! cannot block others; handshakes time out after `handshake_timeout_ms`).
//!
//! With `client_ca` the server asks every client for a certificate and
//! verifies its chain (mutual TLS); a client without one may still finish the
//! handshake, so that it gets a SOAP fault naming the CORE error code (and
//! partners that authenticate with a UsernameToken can post) — whether a
//! request is allowed is decided per request by [`super::auth`], from the
//! peer certificate this listener hands the handler ([`PeerInfo`]).
//!
//! Connections are capped (`max_connections`): over the cap a new connection
//! is closed at once instead of holding a file descriptor and a task, so idle
//! or half-open connections cannot exhaust the process (whose MLLP listener
//! shares the descriptor limit).
//!
//! The crypto provider is passed explicitly (aws-lc-rs) rather than installed
//! process-wide, so the adapter never panics on a missing default provider.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

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

/// Limits of the TLS listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// A handshake not finished in this time is dropped.
    pub handshake_timeout: Duration,
    /// Connections at once (handshakes included).
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            handshake_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// A TLS connection that holds its slot under the connection cap until it
/// is dropped.
pub struct CappedTls {
    stream: TlsStream<TcpStream>,
    _permit: OwnedSemaphorePermit,
}

impl CappedTls {
    /// The client's end-entity certificate, when it sent one (its chain was
    /// verified during the handshake).
    pub fn peer_certificate(&self) -> Option<CertificateDer<'static>> {
        self.stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|c| c.clone().into_owned())
    }
}

impl AsyncRead for CappedTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Who is on the other end of a request: its address and verified client
/// certificate (axum `ConnectInfo`).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Its end-entity certificate, when it sent one.
    pub certificate: Option<Arc<CertificateDer<'static>>>,
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerInfo {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        PeerInfo {
            addr: *stream.remote_addr(),
            certificate: stream.io().peer_certificate().map(Arc::new),
        }
    }
}

/// A self-signed certificate and key (PEM) for `names` (DNS names or IPs):
/// for the loopback demo and tests, never for a partner-facing endpoint.
pub fn self_signed(names: &[&str]) -> Result<(String, String), TlsError> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::Content(format!("cannot generate a certificate: {e}")))?;
    Ok((cert.cert.pem(), cert.signing_key.serialize_pem()))
}

/// A TCP listener that yields TLS streams to axum.
pub struct TlsListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(CappedTls, SocketAddr)>,
}

impl TlsListener {
    /// Starts accepting on `listener` with the default limits.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        Self::with_limits(listener, config, ListenerLimits::default())
    }

    /// Starts accepting on `listener`; handshakes run in their own tasks,
    /// at most `limits.max_connections` connections at once.
    pub fn with_limits(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        limits: ListenerLimits,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "x12 soap accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    // Over the cap: closed at once (dropping the socket).
                    tracing::debug!(%peer, max = limits.max_connections, "x12 soap connection refused: connection cap reached");
                    drop(tcp);
                    continue;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => {
                            let conn = CappedTls {
                                stream: tls,
                                _permit: permit,
                            };
                            let _ = tx.send((conn, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "x12 soap TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "x12 soap TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, rx })
    }
}

impl Listener for TlsListener {
    type Io = CappedTls;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

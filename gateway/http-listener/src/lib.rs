//! A hardened HTTP/1.1 listener for the gateway's axum routers.
//!
//! *Why this crate exists*: `axum::serve` has no connection cap and no
//! timeouts. A peer that opens connections and sends nothing, sends a header
//! one byte at a time, or trickles a request body keeps a task and a file
//! descriptor for as long as it likes; enough of them exhaust the process's
//! descriptors and take every other listener down with it (MLLP included).
//! Every HTTP edge of the gateway (the admin server, the FHIR rest-hook and
//! the CAQH CORE SOAP server) is served through [`serve`] instead, which
//! bounds each of these:
//!
//! | limit | key in [`Limits`] | default | what happens |
//! | --- | --- | --- | --- |
//! | open connections | `max_connections` | 256 | a connection beyond the cap is accepted and closed at once |
//! | TLS handshake | `tls_handshake_timeout_secs` | 10 s | the connection is closed |
//! | request header | `header_read_timeout_secs` | 10 s | from the header's first byte; the connection is closed |
//! | request body | `body_timeout_secs` | 30 s | from the end of the header; `408` and the connection is closed |
//! | idle connection | `idle_timeout_secs` | 60 s | no request running and no byte moved; the connection is closed |
//!
//! The body timeout is a deadline for the *whole* body, not per read, so a
//! body trickled one byte a second is cut off. Handlers see the peer address
//! as `axum::extract::ConnectInfo<SocketAddr>` and, behind mutual TLS, the
//! verified client chain as [`PeerCertificates`]. TLS (rustls, with optional
//! client certificates) comes from [`tls::server_config`].
//!
//! The API is deliberately three items: [`Limits`], [`Options`] and [`serve`].

mod body;
mod conn;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Limits of one listener. Every field has a default (see the crate docs), so
/// a config section may name only what it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Connections served at once; one more is closed right after accept.
    pub max_connections: usize,
    /// Seconds a TLS handshake may take.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds from a request header's first byte to its end.
    pub header_read_timeout_secs: u64,
    /// Seconds from the end of a request header to the end of its body.
    pub body_timeout_secs: u64,
    /// Seconds a connection may stay open with no request running and no
    /// byte read or written.
    pub idle_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            tls_handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
        }
    }
}

impl Limits {
    /// Every field that cannot work (zero), as `(field, message)`; the caller
    /// prefixes its config section.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.max_connections == 0 {
            problems.push(("max_connections", "must be at least 1".to_owned()));
        }
        if self.max_connections > Semaphore::MAX_PERMITS {
            problems.push(("max_connections", "is too large".to_owned()));
        }
        for (field, value) in [
            (
                "tls_handshake_timeout_secs",
                self.tls_handshake_timeout_secs,
            ),
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("body_timeout_secs", self.body_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
        ] {
            if value == 0 {
                problems.push((field, "must be at least 1 second".to_owned()));
            }
        }
        problems
    }

    fn secs(value: u64) -> Duration {
        Duration::from_secs(value.max(1))
    }
}

/// How [`serve`] serves one listener.
#[derive(Clone, Default)]
pub struct Options {
    /// A short name for logs (`admin`, `fhir-rest-hook`); never PHI.
    pub name: &'static str,
    /// TLS, when set (see [`tls::server_config`]); plain HTTP otherwise.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The limits.
    pub limits: Limits,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("name", &self.name)
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

/// The verified client certificate chain (end entity first) of a mutual-TLS
/// connection, in each request's extensions.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// Serves `router` on `listener` with `options` until `shutdown` resolves;
/// then stops accepting, lets requests in flight finish and closes idle
/// connections, and returns once every connection is closed.
///
/// Accept errors (such as running out of file descriptors) are logged and
/// retried after a short pause; they never end the loop.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let limits = options.limits;
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let stop = CancellationToken::new();
    let acceptor = options.tls.map(tokio_rustls::TlsAcceptor::from);
    let name = options.name;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed; pausing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::debug!(
                listener = name,
                max_connections = max,
                "connection cap reached; connection closed"
            );
            drop(stream);
            continue;
        };
        let connection = conn::Connection {
            name,
            peer,
            router: router.clone(),
            limits,
            stop: stop.clone(),
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            connection.run(stream, acceptor).await;
            drop(permit);
        });
    }
    drop(listener);
    stop.cancel();
    // Every connection holds one permit: all of them back means all closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// The address a listener is reachable on is "loopback only" when it is a
/// loopback address (127.0.0.0/8, ::1). Callers use it to decide whether a
/// plaintext listener needs an explicit opt-in.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

//! The MLLP listener: accepts connections (plaintext, TLS or mutual TLS),
//! enforces the connection limit and hands each connection to
//! [`serve_connection`](super::connection::serve_connection).
//!
//! Over the limit a connection is closed right after accept — before it has
//! sent anything, so no message goes unanswered — and counted; the sender's
//! reconnect logic retries. A failed TLS handshake or a client certificate not
//! on the allowlist closes the connection likewise.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use gateway_core::adapter::IntakePipeline;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::config::ListenerConfig;
use super::connection::{ConnectionLimits, close, serve_connection};
use super::metrics::{self as m, ADAPTER};
use super::respond::Responder;
use super::tls::{PeerAllowlist, TlsSetupError, server_config};

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// Binding the address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS files are unusable.
    #[error("listener {addr}: {source}")]
    Tls {
        /// The configured address.
        addr: SocketAddr,
        /// What is wrong.
        source: TlsSetupError,
    },
}

struct TlsSetup {
    acceptor: TlsAcceptor,
    allowlist: PeerAllowlist,
    handshake_timeout: std::time::Duration,
}

/// A bound, not yet serving listener (bind first to learn the port, then serve).
pub struct MllpListener {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ListenerConfig,
    tls: Option<Arc<TlsSetup>>,
    responder: Arc<Responder>,
}

impl MllpListener {
    /// Binds the configured address and loads the TLS files.
    pub async fn bind(
        config: ListenerConfig,
        pipeline: Arc<dyn IntakePipeline>,
    ) -> Result<Self, ListenerError> {
        let addr = config.listen;
        let tls = match &config.tls {
            Some(t) => {
                let server =
                    server_config(t).map_err(|source| ListenerError::Tls { addr, source })?;
                let allowlist = PeerAllowlist::new(&t.allowed_peers)
                    .map_err(|source| ListenerError::Tls { addr, source })?;
                Some(Arc::new(TlsSetup {
                    acceptor: TlsAcceptor::from(server),
                    allowlist,
                    handshake_timeout: std::time::Duration::from_millis(t.handshake_timeout_ms),
                }))
            }
            None => None,
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ListenerError::Bind { addr, source })?;
        let responder = Arc::new(Responder::new(pipeline, config.profile.clone()));
        Ok(MllpListener {
            listener,
            local_addr,
            config,
            tls,
            responder,
        })
    }

    /// The bound address (the real port when the config said port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts connections until `shutdown` completes, then stops accepting,
    /// lets every connection finish the message in hand and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let limits = ConnectionLimits {
            max_frame: self.config.max_frame_bytes,
            idle_timeout: self.config.idle_timeout(),
            frame_timeout: self.config.frame_timeout(),
            write_timeout: self.config.write_timeout(),
        };
        let slots = Arc::new(Semaphore::new(self.config.max_connections.max(1)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tracing::info!(addr = %self.local_addr, profile = %self.config.profile,
            tls = self.tls.is_some(), "MLLP listener accepting");
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // EMFILE and friends: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        m::refused("limit");
                        tracing::warn!(peer = %peer, limit = self.config.max_connections,
                            "connection limit reached; connection closed");
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let tls = self.tls.clone();
                    let responder = self.responder.clone();
                    let stop = stop_rx.clone();
                    tasks.spawn(async move {
                        let gauge = metrics::gauge!(m::CONNECTIONS, "adapter" => ADAPTER);
                        gauge.increment(1.0);
                        handle(stream, peer, tls, responder, limits, stop).await;
                        gauge.decrement(1.0);
                        drop(permit);
                    });
                }
            }
        }
        tracing::info!(addr = %self.local_addr, open = tasks.len(), "MLLP listener stopping");
        // Close the socket now: a sender connecting during the drain is
        // refused at once (and fails over) instead of waiting in the backlog
        // for an accept that never comes.
        drop(self.listener);
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsSetup>>,
    responder: Arc<Responder>,
    limits: ConnectionLimits,
    stop: watch::Receiver<bool>,
) {
    let peer_s = peer.to_string();
    tracing::debug!(peer = %peer_s, "MLLP connection opened");
    let closed = match tls {
        None => {
            let mut stream = stream;
            let closed =
                serve_connection(&mut stream, peer_s.clone(), responder, limits, stop).await;
            close(&mut stream).await;
            closed
        }
        Some(tls) => {
            let mut stream = match timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    m::refused("tls");
                    tracing::warn!(peer = %peer_s, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    m::refused("tls");
                    tracing::warn!(peer = %peer_s, "TLS handshake timed out");
                    return;
                }
            };
            let allowed = {
                let (_, conn) = stream.get_ref();
                tls.allowlist
                    .allows(conn.peer_certificates().and_then(|c| c.first()))
            };
            if !allowed {
                m::refused("not_allowed");
                tracing::warn!(peer = %peer_s, "client certificate not on the allowlist; connection closed");
                close(&mut stream).await;
                return;
            }
            let closed =
                serve_connection(&mut stream, peer_s.clone(), responder, limits, stop).await;
            close(&mut stream).await;
            closed
        }
    };
    tracing::debug!(peer = %peer_s, reason = ?closed, "MLLP connection closed");
}

/// Binds and serves one listener until `shutdown` completes.
pub async fn serve(
    config: ListenerConfig,
    pipeline: Arc<dyn IntakePipeline>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ListenerError> {
    MllpListener::bind(config, pipeline)
        .await?
        .serve(shutdown)
        .await;
    Ok(())
}

//! One connection: the TLS handshake under its timeout, then hyper's HTTP/1.1
//! connection driven beside a watchdog that closes it when its header or its
//! idle time runs over.
//!
//! *Why a watchdog rather than hyper's own `header_read_timeout`*: hyper
//! starts that timer whenever it waits for a header, including on an idle
//! keep-alive connection, so the header and idle limits could not differ.
//! Here the stream wrapper notes when bytes move and when a header starts,
//! and the service notes when a request runs.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::body::DeadlineBody;
use crate::{Limits, PeerCertificates};

pub(crate) struct Connection {
    pub(crate) name: &'static str,
    pub(crate) peer: SocketAddr,
    pub(crate) router: Router,
    pub(crate) limits: Limits,
    pub(crate) stop: CancellationToken,
}

/// What the watchdog reads: when bytes last moved, how many requests run,
/// and since when an unanswered header has been arriving.
struct State {
    last_io: Instant,
    in_flight: usize,
    head_started: Option<Instant>,
}

#[derive(Clone)]
struct Activity(Arc<Mutex<State>>);

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(Mutex::new(State {
            last_io: Instant::now(),
            in_flight: 0,
            head_started: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        let mut state = self.lock();
        state.last_io = now;
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(now);
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.lock().last_io = Instant::now();
        }
    }

    fn begin(&self) -> RequestGuard {
        let mut state = self.lock();
        state.in_flight += 1;
        state.head_started = None;
        RequestGuard(self.clone())
    }

    /// Why the connection must close now, if it must.
    fn overdue(&self, limits: &Limits, now: Instant) -> Option<&'static str> {
        let state = self.lock();
        if state.in_flight > 0 {
            return None;
        }
        if let Some(started) = state.head_started
            && now.duration_since(started) >= Limits::secs(limits.header_read_timeout_secs)
        {
            return Some("header read timeout");
        }
        if now.duration_since(state.last_io) >= Limits::secs(limits.idle_timeout_secs) {
            return Some("idle timeout");
        }
        None
    }
}

struct RequestGuard(Activity);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.last_io = Instant::now();
    }
}

/// The stream, noting every byte that moves.
struct Tracked<S> {
    inner: S,
    activity: Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.activity
                .read(buf.filled().len().saturating_sub(before));
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.activity.wrote(n);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            this.activity.wrote(n);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn request_timeout() -> Response<axum::body::Body> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Request Timeout",
        "status": 408,
        "detail": "the request body did not arrive in time",
    });
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

impl Connection {
    pub(crate) async fn run(self, stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = tls else {
            self.drive(stream, None).await;
            return;
        };
        let handshake = tokio::time::timeout(
            Limits::secs(self.limits.tls_handshake_timeout_secs),
            acceptor.accept(stream),
        );
        let stream = tokio::select! {
            () = self.stop.cancelled() => return,
            result = handshake => match result {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(listener = self.name, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(listener = self.name, "TLS handshake timeout; connection closed");
                    return;
                }
            },
        };
        let certs = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|chain| PeerCertificates(Arc::new(chain.to_vec())));
        self.drive(stream, certs).await;
    }

    async fn drive<S>(self, stream: S, certs: Option<PeerCertificates>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::new();
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let limits = self.limits;
        let peer = self.peer;
        let router = self.router.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let guard = requests.begin();
            let expired = Arc::new(AtomicBool::new(false));
            let (mut parts, body) = request.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            if let Some(certs) = &certs {
                parts.extensions.insert(certs.clone());
            }
            let body = DeadlineBody::new(
                body,
                Limits::secs(limits.body_timeout_secs),
                Arc::clone(&expired),
            );
            let request = Request::from_parts(parts, axum::body::Body::new(body));
            let router = router.clone();
            async move {
                let response = match router.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                drop(guard);
                if expired.load(Ordering::SeqCst) {
                    return Ok::<_, std::convert::Infallible>(request_timeout());
                }
                Ok(response)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(io, service);
        tokio::pin!(connection);
        let tick = Duration::from_secs(
            limits
                .header_read_timeout_secs
                .min(limits.idle_timeout_secs)
                .clamp(1, 4),
        ) / 4;
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(listener = self.name, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = self.stop.cancelled(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = tokio::time::sleep(tick) => {
                    if let Some(reason) = activity.overdue(&limits, Instant::now()) {
                        tracing::debug!(listener = self.name, reason, "connection closed");
                        return;
                    }
                }
            }
        }
    }
}

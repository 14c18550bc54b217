//! One inbound MLLP connection: read frames, answer each in order, enforce the
//! deadlines.
//!
//! Deadlines, so that neither an idle nor a slow-dripping peer ties up a
//! connection slot: while no frame is open, the connection must deliver a
//! complete frame within `idle_timeout` of the previous one (junk bytes do not
//! extend it); once a frame's first byte has arrived, the frame must be complete
//! within `frame_timeout`. Frames are answered strictly in order, one at a time,
//! and every complete frame gets an answer before the connection closes — on
//! shutdown a connection finishes the message in hand (and a frame that is
//! mid-way) and closes at the next frame boundary.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::Decoder;

use super::codec::{MllpCodec, frame_into};
use super::metrics::{self as m, ADAPTER};
use super::respond::Responder;

/// Limits applied to one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Largest accepted payload.
    pub max_frame: usize,
    /// Longest wait for the next frame.
    pub idle_timeout: Duration,
    /// Longest time a started frame may take to complete.
    pub frame_timeout: Duration,
    /// Longest time writing one ACK may take.
    pub write_timeout: Duration,
}

/// How a connection ended (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed between frames.
    PeerClosed,
    /// The peer closed inside a frame.
    Truncated,
    /// No complete frame within the idle timeout.
    Idle,
    /// A started frame did not complete in time.
    FrameTimeout,
    /// The listener is shutting down.
    Shutdown,
    /// Reading or writing failed.
    IoError,
}

/// Serves one connection until it closes. `peer` is used for logs and audit.
pub async fn serve_connection<S>(
    mut io: S,
    peer: String,
    responder: Arc<Responder>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) -> Closed
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut codec = MllpCodec::new(limits.max_frame);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(1024);
    let mut last_frame = Instant::now();
    let mut frame_started: Option<Instant> = None;
    let mut stopping = *stop.borrow();

    loop {
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                // The decoder reports only I/O-class errors, which it cannot
                // produce from a buffer; treat one as a broken connection.
                Err(_) => return Closed::IoError,
            };
            report_discarded(&mut codec, &peer);
            let received = Instant::now();
            let ack = responder.respond(frame, &peer).await;
            out.clear();
            frame_into(&ack, &mut out);
            let written = timeout(limits.write_timeout, async {
                io.write_all(&out).await?;
                io.flush().await
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::warn!(peer = %peer, "could not write ACK; closing connection");
                return Closed::IoError;
            }
            metrics::histogram!(m::ACK_LATENCY, "adapter" => ADAPTER)
                .record(received.elapsed().as_secs_f64());
            last_frame = Instant::now();
            frame_started = None;
        }
        report_discarded(&mut codec, &peer);

        if codec.in_frame() {
            frame_started.get_or_insert_with(Instant::now);
        } else {
            frame_started = None;
            if stopping {
                return Closed::Shutdown;
            }
        }
        let deadline = match frame_started {
            Some(start) => start + limits.frame_timeout,
            None => last_frame + limits.idle_timeout,
        };

        tokio::select! {
            changed = stop.changed(), if !stopping => {
                // A dropped sender also means stop.
                stopping = changed.is_err() || *stop.borrow();
            }
            read = timeout_at(deadline, io.read_buf(&mut buf)) => match read {
                Err(_) if frame_started.is_some() => {
                    m::frame_error("frame_timeout");
                    tracing::warn!(peer = %peer, timeout_ms = limits.frame_timeout.as_millis() as u64,
                        "MLLP frame not completed in time; closing connection");
                    return Closed::FrameTimeout;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "idle MLLP connection closed");
                    return Closed::Idle;
                }
                Ok(Ok(0)) => {
                    if codec.in_frame() {
                        m::frame_error("truncated");
                        tracing::warn!(peer = %peer, "peer closed inside an MLLP frame");
                        return Closed::Truncated;
                    }
                    return Closed::PeerClosed;
                }
                Ok(Ok(_)) => {}
                Ok(Err(_)) => return Closed::IoError,
            }
        }
    }
}

fn report_discarded(codec: &mut MllpCodec, peer: &str) {
    let n = codec.take_discarded();
    if n > 0 {
        metrics::counter!(m::DISCARDED_BYTES, "adapter" => ADAPTER).increment(n);
        tracing::debug!(peer = %peer, discarded_bytes = n, "bytes outside MLLP frames discarded");
    }
}

/// Shuts a stream down politely, bounded in time.
pub async fn close<S: AsyncWrite + Unpin>(io: &mut S) {
    let _ = timeout(Duration::from_secs(1), io.shutdown()).await;
}

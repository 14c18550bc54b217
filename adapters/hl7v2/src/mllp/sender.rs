//! The outbound MLLP sender: one persistent connection (or one per message, for
//! receivers that misbehave on persistent connections), a response deadline,
//! strict ACK validation, reconnects and retries with exponential backoff.
//!
//! Every failure drops the connection, because after a timeout or a wrong ACK
//! the byte stream can no longer be trusted to pair answers with messages. A
//! retry resends the same bytes with the same MSH-10, so a receiver that got the
//! message but whose ACK was lost can recognise the duplicate. Callers that need
//! ordering (the write-back queue) send one message at a time through one
//! sender.

use std::time::Duration;

use bytes::BytesMut;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_util::codec::Decoder;

use super::ack_check::{AckError, AckSummary, control_id_of, validate_ack};
use super::codec::{MllpCodec, MllpError, MllpFrame, check_payload, frame_into};
use super::config::SenderConfig;
use super::metrics::{self as m, ADAPTER};
use super::tls::{TlsSetupError, client_config, server_name_for};

/// A byte stream the sender can use (TCP or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// Why sending one message failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message has no MSH-10, so its ACK could not be matched.
    #[error("message has no MSH-10 control id")]
    NoControlId,
    /// The message contains MLLP framing bytes.
    #[error("message cannot be framed: {0}")]
    Framing(MllpError),
    /// Connecting (TCP or TLS) failed.
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// The receiver.
        address: String,
        /// What failed.
        reason: String,
    },
    /// No complete ACK arrived in time.
    #[error("no ACK within {0:?}")]
    Timeout(Duration),
    /// The connection broke or was closed before the ACK was complete.
    #[error("connection lost before the ACK: {0}")]
    Connection(String),
    /// The response is not a valid ACK for our message.
    #[error("invalid ACK: {0}")]
    InvalidAck(#[from] AckError),
    /// More than one response (or unsolicited data) arrived for one message.
    #[error("receiver sent {0} unexpected byte(s) beyond the one ACK")]
    ExtraResponse(usize),
    /// The response frame was larger than the configured maximum.
    #[error("ACK frame of {0} bytes exceeds the maximum")]
    OversizedAck(usize),
    /// A valid ACK that did not accept the message (AE, AR, CE, CR).
    #[error("receiver answered {}", .0.one_line())]
    Negative(AckSummary),
}

impl SendError {
    /// Whether sending the same message again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            SendError::NoControlId | SendError::Framing(_) => false,
            SendError::Negative(ack) => ack.code.is_retryable(),
            _ => true,
        }
    }

    /// Short label for metrics.
    fn label(&self) -> &'static str {
        match self {
            SendError::Negative(_) => "rejected",
            SendError::InvalidAck(_) | SendError::ExtraResponse(_) | SendError::OversizedAck(_) => {
                "invalid_ack"
            }
            _ => "error",
        }
    }
}

struct Conn {
    io: Box<dyn Io>,
    codec: MllpCodec,
    buf: BytesMut,
}

/// An MLLP client with ACK validation and retries.
pub struct MllpSender {
    config: SenderConfig,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for MllpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MllpSender")
            .field("address", &self.config.address)
            .field("tls", &self.tls.is_some())
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl MllpSender {
    /// A sender for `config` (loads TLS files now; connects lazily).
    pub fn new(config: SenderConfig) -> Result<Self, TlsSetupError> {
        let tls = match &config.tls {
            Some(t) => Some((
                TlsConnector::from(client_config(t)?),
                server_name_for(t, &config.address)?,
            )),
            None => None,
        };
        Ok(MllpSender {
            config,
            tls,
            conn: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Whether a connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Closes the connection (the next send reconnects).
    pub async fn disconnect(&mut self) {
        if let Some(mut c) = self.conn.take() {
            let _ = timeout(Duration::from_secs(1), c.io.shutdown()).await;
        }
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let address = self.config.address.clone();
        let limit = Duration::from_millis(self.config.connect_timeout_ms);
        let fail = |reason: String| SendError::Connect {
            address: address.clone(),
            reason,
        };
        let tcp = timeout(limit, TcpStream::connect(&address))
            .await
            .map_err(|_| fail(format!("timed out after {limit:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => Box::new(
                timeout(limit, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| fail("TLS handshake timed out".into()))?
                    .map_err(|e| fail(format!("TLS handshake failed: {e}")))?,
            ),
        };
        Ok(Conn {
            io,
            codec: MllpCodec::new(self.config.max_frame_bytes),
            buf: BytesMut::with_capacity(4096),
        })
    }

    /// Sends once (no retry) and validates the ACK. A negative but valid ACK is
    /// returned as [`SendError::Negative`].
    pub async fn send_once(&mut self, message: &[u8]) -> Result<AckSummary, SendError> {
        let result = self.exchange(message).await;
        let keep = matches!(result, Ok(_) | Err(SendError::Negative(_)))
            && !self.config.connection_per_message;
        if !keep {
            self.disconnect().await;
        }
        let label = match &result {
            Ok(_) => "accepted",
            Err(e) => e.label(),
        };
        metrics::counter!(m::SENDS_TOTAL, "adapter" => ADAPTER, "result" => label).increment(1);
        result
    }

    /// Sends with retries and exponential backoff for retryable failures; the
    /// last error is returned when the attempts are used up.
    pub async fn send(&mut self, message: &[u8]) -> Result<AckSummary, SendError> {
        let attempts = self.config.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.send_once(message).await {
                Ok(ack) => return Ok(ack),
                Err(e) if e.retryable() && attempt < attempts => {
                    let delay = self.config.backoff(attempt);
                    tracing::warn!(address = %self.config.address, attempt, delay_ms = delay.as_millis() as u64,
                        error = %e, "MLLP send failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn exchange(&mut self, message: &[u8]) -> Result<AckSummary, SendError> {
        let control_id = control_id_of(message).ok_or(SendError::NoControlId)?;
        check_payload(message).map_err(SendError::Framing)?;

        // Unsolicited bytes on an idle persistent connection (a late or extra ACK
        // from the previous exchange) mean the pairing is lost: start afresh.
        if let Some(conn) = self.conn.as_mut() {
            let stray = match timeout(Duration::ZERO, conn.io.read_buf(&mut conn.buf)).await {
                Err(_) => conn.buf.len(),
                Ok(Ok(0)) | Ok(Err(_)) => usize::MAX,
                Ok(Ok(_)) => conn.buf.len(),
            };
            if stray > 0 {
                if stray != usize::MAX {
                    tracing::warn!(address = %self.config.address, bytes = stray,
                        "receiver sent unsolicited data between messages; reconnecting");
                }
                self.disconnect().await;
            }
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let response_timeout = Duration::from_millis(self.config.response_timeout_ms);
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendError::Connection("not connected".into()));
        };

        let mut out = BytesMut::with_capacity(message.len() + 3);
        frame_into(message, &mut out);
        let deadline = Instant::now() + response_timeout;
        match timeout_at(deadline, async {
            conn.io.write_all(&out).await?;
            conn.io.flush().await
        })
        .await
        {
            Err(_) => return Err(SendError::Timeout(response_timeout)),
            Ok(Err(e)) => return Err(SendError::Connection(e.to_string())),
            Ok(Ok(())) => {}
        }

        let frame = loop {
            match conn.codec.decode(&mut conn.buf) {
                Ok(Some(frame)) => break frame,
                Ok(None) => {}
                Err(e) => return Err(SendError::Connection(e.to_string())),
            }
            match timeout_at(deadline, conn.io.read_buf(&mut conn.buf)).await {
                Err(_) => return Err(SendError::Timeout(response_timeout)),
                Ok(Ok(0)) => return Err(SendError::Connection("closed by receiver".into())),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(SendError::Connection(e.to_string())),
            }
        };
        let payload = match frame {
            MllpFrame::Message(p) => p,
            MllpFrame::Oversized { len, .. } => return Err(SendError::OversizedAck(len)),
        };
        // Junk around the ACK is tolerated (and dropped by the codec); a second
        // frame already in the buffer is not: one message, one answer.
        let _ = conn.codec.take_discarded();
        let ack = validate_ack(&payload, &control_id)?;
        if conn.buf.contains(&super::codec::START_BLOCK) {
            return Err(SendError::ExtraResponse(conn.buf.len()));
        }
        if ack.code.is_accept() {
            Ok(ack)
        } else {
            Err(SendError::Negative(ack))
        }
    }
}

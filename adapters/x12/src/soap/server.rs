//! The CORE real-time SOAP server: accept a 278, answer with a 278 or a 999.
//!
//! Accepted PayloadTypes: a 278 request, and a 278 response pushed to us (a
//! decision on a request this gateway's side sent; answered with the 999).
//!
//! Per request: read the envelope (malformed XML → HTTP 400 + SOAP Sender
//! fault); check the CORE fields (missing → `<Field>Required`, wrong
//! ProcessingMode/PayloadType/CORERuleVersion → `ProcessingModeIllegal`,
//! `PayloadTypeIllegal`, `VersionMismatch`, answered in a response envelope
//! without payload); hand the X12 to the intake pipeline (one message per
//! transaction set, committed before we answer); then reply with
//!
//! * a TA1 when the interchange is rejected at the envelope,
//! * a 999 when the 999 rejects anything or the pipeline rejected a message,
//! * otherwise the 278 response a [`Responder`] produces (a payer-side or
//!   test deployment), or the 999 when there is none.
//!
//! If the pipeline cannot commit (a full store, a failing disk), the answer is
//! HTTP 503 with `Retry-After` and a SOAP Receiver fault (saying "store full"
//! when that is why) so the sender retries; nothing was acknowledged.
//!
//! Before any of that the partner is authenticated ([`super::auth`]: client
//! certificate and/or WS-Security UsernameToken, then the envelope's SenderID
//! must be the partner's). A refusal is a SOAP Sender fault whose Subcode is
//! the CORE error code (`cor:UnAuthorized`), HTTP 401 or 403; the payload never
//! reaches the pipeline (nothing stored), and the refusal is handed to the
//! [`RefusalAudit`] (the daemon writes an audit row).
//!
//! The listener is the gateway's shared hardened one (`gateway-http-listener`):
//! TLS with this module's rustls configuration ([`super::tls`], mutual TLS with
//! `client_ca`), a connection cap, and TLS handshake, header, whole-body and
//! idle timeouts ([`listener_limits`]), so an idle, half-open or trickling
//! client holds neither a task nor a file descriptor for long. The verified
//! client chain reaches the handler as the `PeerCertificates` request
//! extension, the peer address as `ConnectInfo<SocketAddr>`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use gateway_core::adapter::{BoxFuture, IntakePipeline};
use gateway_http_listener::{Limits, Options, PeerCertificates};
use tokio::net::TcpListener;

use super::auth::{Authenticator, Refused};
use super::envelope::{
    Body, CoreFields, read_with_token, write_core_fault, write_fault, write_response,
};
use super::tls::server_config_with_clients;
use super::{PAYLOAD_278_REQUEST, PAYLOAD_278_RESPONSE, PAYLOAD_999, PAYLOAD_TA1, REAL_TIME};
use crate::ack::AckIdentity;
use crate::config::SoapServerConfig;
use crate::control::ControlNumberAllocator;
use crate::intake::receive;
use crate::write::Stamp;

/// Produces a synchronous 278 response for a received 278 request, if it can.
pub trait Responder: Send + Sync {
    /// The 278 response interchange for `request`, or `None` to answer with the 999.
    fn respond<'a>(&'a self, request: &'a [u8]) -> BoxFuture<'a, Option<Vec<u8>>>;
}

/// A refused request, for the audit trail (no PHI: the peer address, the
/// partner the credentials matched, the CORE code and reason; the SenderID
/// only as a hash, since it is whatever the client wrote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The peer's address.
    pub peer: String,
    /// The partner the credentials matched, when any did.
    pub partner: Option<String>,
    /// HTTP status answered (401, 403).
    pub status: u16,
    /// CORE error code.
    pub code: String,
    /// Why.
    pub reason: String,
    /// SHA-256 (hex, first 16 digits) of the claimed SenderID.
    pub sender_id_hash: String,
}

/// Records refusals durably (the daemon: an audit row in the store).
pub trait RefusalAudit: Send + Sync {
    /// Records `refusal`; errors are the implementor's to log.
    fn refused(&self, refusal: Refusal) -> BoxFuture<'_, ()>;
}

/// Everything the server needs per request.
pub struct SoapServerState {
    /// The intake pipeline.
    pub pipeline: Arc<dyn IntakePipeline>,
    /// Mapping profile name.
    pub profile: String,
    /// Our identity (ISA of acknowledgments; CORE SenderID of responses).
    pub identity: AckIdentity,
    /// Durable control numbers for acknowledgments.
    pub numbers: Arc<dyn ControlNumberAllocator>,
    /// CORERuleVersion we accept.
    pub core_rule_version: String,
    /// Optional synchronous 278 responder.
    pub responder: Option<Arc<dyn Responder>>,
    /// Who may post (no partners: anyone, loopback only).
    pub auth: Arc<Authenticator>,
    /// Where refusals are recorded.
    pub audit: Option<Arc<dyn RefusalAudit>>,
}

/// TLS material and limits of the listener.
pub struct ListenerTls<'a> {
    /// PEM certificate chain.
    pub cert_pem: &'a [u8],
    /// PEM private key.
    pub key_pem: &'a [u8],
    /// PEM CA bundle for client certificates (mutual TLS), if any.
    pub client_ca_pem: Option<&'a [u8]>,
    /// Connection cap and timeouts ([`listener_limits`]).
    pub limits: Limits,
}

/// The listener limits of `[x12.soap_server]`: its `max_connections` and
/// `handshake_timeout_ms` (rounded up to whole seconds, which is what the
/// listener counts) and its `header_read_timeout_secs`, `body_timeout_secs`
/// and `idle_timeout_secs`.
pub fn listener_limits(config: &SoapServerConfig) -> Limits {
    Limits {
        max_connections: config.max_connections,
        tls_handshake_timeout_secs: config.handshake_timeout_ms.div_ceil(1000),
        header_read_timeout_secs: config.header_read_timeout_secs,
        body_timeout_secs: config.body_timeout_secs,
        idle_timeout_secs: config.idle_timeout_secs,
    }
}

/// Every limit of `[x12.soap_server]` that cannot work, as (full key,
/// message).
pub fn limit_problems(config: &SoapServerConfig) -> Vec<(String, String)> {
    listener_limits(config)
        .problems()
        .into_iter()
        .map(|(field, message)| match field {
            "tls_handshake_timeout_secs" => (
                "x12.soap_server.handshake_timeout_ms".to_owned(),
                "must be at least 1".to_owned(),
            ),
            field => (format!("x12.soap_server.{field}"), message),
        })
        .collect()
}

/// The limits [`serve`] uses: the `[x12.soap_server]` defaults.
fn default_limits() -> Limits {
    Limits {
        max_connections: 64,
        ..Limits::default()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The axum router (`POST path`).
pub fn router(state: Arc<SoapServerState>, path: &str, max_body: usize) -> Router {
    Router::new()
        .route(path, post(handle))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// A bound server: its address, and the future that serves until shutdown.
pub struct BoundServer {
    /// The bound address (port 0 resolved).
    pub local_addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl BoundServer {
    /// Waits for the server task to end (after shutdown).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// Binds `listen` with TLS (no client certificates, the default limits) and
/// serves until `shutdown` resolves.
pub async fn serve(
    listen: &str,
    cert_pem: &[u8],
    key_pem: &[u8],
    path: &str,
    max_body: usize,
    state: Arc<SoapServerState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<BoundServer, ServeError> {
    let tls = ListenerTls {
        cert_pem,
        key_pem,
        client_ca_pem: None,
        limits: default_limits(),
    };
    serve_with(listen, tls, path, max_body, state, shutdown).await
}

/// Binds `listen` with `tls` and serves until `shutdown` resolves.
pub async fn serve_with(
    listen: &str,
    tls: ListenerTls<'_>,
    path: &str,
    max_body: usize,
    state: Arc<SoapServerState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<BoundServer, ServeError> {
    let config = server_config_with_clients(tls.cert_pem, tls.key_pem, tls.client_ca_pem)?;
    let tcp = TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen.to_owned(),
            source,
        })?;
    let local_addr = tcp.local_addr().map_err(|source| ServeError::Bind {
        addr: listen.to_owned(),
        source,
    })?;
    let app = router(state, path, max_body);
    let options = Options {
        name: "x12-soap",
        tls: Some(config),
        limits: tls.limits,
    };
    let task = tokio::spawn(async move {
        if let Err(e) = gateway_http_listener::serve(tcp, app, options, shutdown).await {
            tracing::warn!(error = %e, "x12 soap server stopped");
        }
    });
    tracing::info!(%local_addr, "x12 CORE SOAP server listening");
    Ok(BoundServer { local_addr, task })
}

fn soap(status: StatusCode, xml: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/soap+xml; charset=utf-8")],
        xml,
    )
        .into_response()
}

/// `Retry-After` on a 503 when nothing could be committed: long enough for
/// delivery to free room in a full store, short enough for real-time senders.
const RETRY_AFTER_SECS: &str = "30";

fn fault(status: StatusCode, code: &str, reason: &str) -> Response {
    match write_fault(code, reason) {
        Ok(xml) => soap(status, xml),
        Err(_) => status.into_response(),
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Checks the required CORE fields; `Some((code, message))` on the first problem.
fn envelope_error(f: &CoreFields, version: &str) -> Option<(String, String)> {
    let required = [
        ("PayloadType", &f.payload_type),
        ("ProcessingMode", &f.processing_mode),
        ("PayloadID", &f.payload_id),
        ("TimeStamp", &f.timestamp),
        ("SenderID", &f.sender_id),
        ("ReceiverID", &f.receiver_id),
        ("CORERuleVersion", &f.core_rule_version),
        ("Payload", &f.payload),
    ];
    if let Some((name, _)) = required.iter().find(|(_, v)| v.trim().is_empty()) {
        return Some((format!("{name}Required"), format!("{name} is required")));
    }
    if f.processing_mode != REAL_TIME {
        return Some((
            "ProcessingModeIllegal".into(),
            "only RealTime is supported".into(),
        ));
    }
    if f.payload_type != PAYLOAD_278_REQUEST && f.payload_type != PAYLOAD_278_RESPONSE {
        return Some((
            "PayloadTypeIllegal".into(),
            format!("expected {PAYLOAD_278_REQUEST} or {PAYLOAD_278_RESPONSE}"),
        ));
    }
    if f.core_rule_version.trim_start_matches('v') != version.trim_start_matches('v') {
        return Some((
            "VersionMismatch".into(),
            format!("expected CORERuleVersion {version}"),
        ));
    }
    None
}

/// The refusal answer: a Sender fault with the CORE code as Subcode.
fn refusal_fault(refused: &Refused) -> Response {
    let status = StatusCode::from_u16(refused.status).unwrap_or(StatusCode::FORBIDDEN);
    let reason = format!("{}: {}", refused.code, refused.reason);
    let mut response = match write_core_fault("Sender", refused.code, &reason) {
        Ok(xml) => soap(status, xml),
        Err(_) => status.into_response(),
    };
    if status == StatusCode::UNAUTHORIZED
        && let Ok(value) = header::HeaderValue::from_str("Basic realm=\"CORE\"")
    {
        // 401 must name a scheme; CORE's are certificates and WS-Security.
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

async fn handle(
    State(state): State<Arc<SoapServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    chain: Option<Extension<PeerCertificates>>,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let Ok(text) = std::str::from_utf8(&body) else {
        return fault(StatusCode::BAD_REQUEST, "Sender", "body is not UTF-8");
    };
    let (parsed, token) = match read_with_token(text) {
        Ok((body, token)) => (Ok(body), token),
        Err(e) => (Err(e), None),
    };
    // Authentication first: nothing about the payload is looked at, and
    // nothing stored, for a caller that is not an allowed partner.
    if state.auth.enforced() {
        let sender_id = match &parsed {
            Ok(Body::Request(f)) => Some(f.sender_id.trim().to_owned()),
            _ => None,
        };
        // The end-entity certificate, first in the chain the handshake
        // verified against `client_ca`.
        let certificate = chain.as_ref().and_then(|Extension(c)| c.0.first());
        let verdict = match &sender_id {
            Some(sender_id) => state.auth.authorize(certificate, token.as_ref(), sender_id),
            // Unreadable: an allowed partner gets the envelope error below.
            None => state.auth.authenticate(certificate, token.as_ref()),
        };
        if let Err(refused) = verdict {
            tracing::warn!(peer = %peer, partner = refused.partner.as_deref().unwrap_or(""), status = refused.status, code = refused.code, reason = %refused.reason, "x12 soap request refused");
            if let Some(audit) = &state.audit {
                audit
                    .refused(Refusal {
                        peer: peer.to_string(),
                        partner: refused.partner.clone(),
                        status: refused.status,
                        code: refused.code.to_owned(),
                        reason: refused.reason.clone(),
                        sender_id_hash: crate::log_safe::hashed(sender_id.as_deref().unwrap_or("")),
                    })
                    .await;
            }
            return refusal_fault(&refused);
        }
    }
    let request = match parsed {
        Ok(Body::Request(f)) => f,
        Ok(_) => {
            return fault(
                StatusCode::BAD_REQUEST,
                "Sender",
                "expected COREEnvelopeRealTimeRequest",
            );
        }
        Err(e) => return fault(StatusCode::BAD_REQUEST, "Sender", &e.to_string()),
    };
    let mut reply = CoreFields {
        payload_type: String::new(),
        processing_mode: REAL_TIME.into(),
        payload_id: uuid::Uuid::new_v4().to_string(),
        timestamp: now_rfc3339(),
        sender_id: request.receiver_id.clone(),
        receiver_id: request.sender_id.clone(),
        core_rule_version: state.core_rule_version.clone(),
        payload: String::new(),
        error_code: Some("Success".into()),
        error_message: None,
    };
    if let Some((code, message)) = envelope_error(&request, &state.core_rule_version) {
        tracing::info!(payload_id = %crate::log_safe::hashed(&request.payload_id), %code, "x12 soap envelope rejected");
        reply.error_code = Some(code);
        reply.error_message = Some(message);
        return match write_response(&reply) {
            Ok(xml) => soap(StatusCode::OK, xml),
            Err(e) => fault(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Receiver",
                &e.to_string(),
            ),
        };
    }
    let raw = request.payload.as_bytes();
    let result = receive(
        state.pipeline.as_ref(),
        &state.profile,
        raw,
        jiff::Timestamp::now(),
        Some(format!("core:{}", request.sender_id)),
        &state.identity,
        state.numbers.as_ref(),
        &Stamp::now(),
    )
    .await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(payload_id = %crate::log_safe::hashed(&request.payload_id), error = %e, "x12 soap intake not committed");
            // A full store says so (the sender's operators learn why); both
            // answers are retryable: 503 with Retry-After.
            let reason = if e.message.starts_with("store full") {
                "store full: temporarily unable to accept; retry later"
            } else {
                "temporarily unable to accept; retry"
            };
            let mut response = fault(StatusCode::SERVICE_UNAVAILABLE, "Receiver", reason);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
            return response;
        }
    };
    let (payload_type, payload) =
        if let (Some(ta1), None) = (&result.ack.ta1, &result.ack.functional) {
            (PAYLOAD_TA1, ta1.clone())
        } else if !result.accepted() {
            (
                PAYLOAD_999,
                result.ack.functional.clone().unwrap_or_default(),
            )
        } else {
            // A pushed 278 response (a decision for a request we sent) is
            // answered with the 999; only requests get a synchronous 278.
            let answer = match &state.responder {
                Some(r) if request.payload_type == PAYLOAD_278_REQUEST => r.respond(raw).await,
                _ => None,
            };
            match answer {
                Some(bytes) => (PAYLOAD_278_RESPONSE, bytes),
                None => (
                    PAYLOAD_999,
                    result.ack.functional.clone().unwrap_or_default(),
                ),
            }
        };
    reply.payload_type = payload_type.into();
    reply.payload = String::from_utf8_lossy(&payload).into_owned();
    metrics::histogram!(gateway_core::metrics::ACK_LATENCY_SECONDS, "adapter" => gateway_core::adapter::name::X12)
        .record(started.elapsed().as_secs_f64());
    tracing::info!(payload_id = %crate::log_safe::hashed(&request.payload_id), reply = payload_type, verdict = %result.ack.verdict, "x12 soap request answered");
    match write_response(&reply) {
        Ok(xml) => soap(StatusCode::OK, xml),
        Err(e) => fault(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Receiver",
            &e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> SoapServerConfig {
        // Keys of the section itself first: `[tls]` opens a sub-table.
        toml::from_str(&format!(
            "listen = \"127.0.0.1:8443\"\n{extra}\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n"
        ))
        .unwrap_or_else(|e| panic!("config: {e}"))
    }

    #[test]
    fn the_timeouts_default_as_the_admin_listener_and_the_cap_stays_64() {
        let limits = listener_limits(&parse(""));
        let admin = Limits::default();
        assert_eq!(limits.max_connections, 64);
        assert_eq!(limits.tls_handshake_timeout_secs, 10);
        assert_eq!(
            limits.header_read_timeout_secs,
            admin.header_read_timeout_secs
        );
        assert_eq!(limits.body_timeout_secs, admin.body_timeout_secs);
        assert_eq!(limits.idle_timeout_secs, admin.idle_timeout_secs);
        assert!(limit_problems(&parse("")).is_empty());
    }

    #[test]
    fn configured_limits_are_mapped_and_zeroes_named_by_their_keys() {
        let config = parse(
            "max_connections = 3\nhandshake_timeout_ms = 1500\n\
             header_read_timeout_secs = 4\nbody_timeout_secs = 5\nidle_timeout_secs = 6\n",
        );
        assert_eq!(
            listener_limits(&config),
            Limits {
                max_connections: 3,
                tls_handshake_timeout_secs: 2,
                header_read_timeout_secs: 4,
                body_timeout_secs: 5,
                idle_timeout_secs: 6,
            }
        );
        let zero = parse(
            "max_connections = 0\nhandshake_timeout_ms = 0\n\
             header_read_timeout_secs = 0\nbody_timeout_secs = 0\nidle_timeout_secs = 0\n",
        );
        let keys: Vec<String> = limit_problems(&zero).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "x12.soap_server.max_connections",
                "x12.soap_server.handshake_timeout_ms",
                "x12.soap_server.header_read_timeout_secs",
                "x12.soap_server.body_timeout_secs",
                "x12.soap_server.idle_timeout_secs",
            ]
        );
    }
}

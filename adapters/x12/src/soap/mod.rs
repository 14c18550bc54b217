//! CAQH CORE real-time connectivity: SOAP 1.2 over HTTPS.
//!
//! * [`envelope`]: the `COREEnvelopeRealTimeRequest`/`Response` bodies
//!   (PayloadType, ProcessingMode, PayloadID, TimeStamp, SenderID, ReceiverID,
//!   CORERuleVersion, Payload, ErrorCode, ErrorMessage) via quick-xml serde.
//! * [`client`]: send a 278 request to a payer endpoint and get the 278
//!   response (or a 999/TA1) back; one [`crate::config::PartnerConfig`] each.
//! * [`server`]: accept 278s (axum behind the gateway's hardened listener,
//!   `gateway-http-listener`: TLS, connection cap, handshake, header, body and
//!   idle timeouts), hand them to the intake pipeline and answer with a 278
//!   (from a [`server::Responder`]) or a 999/TA1.
//! * [`auth`]: partner authentication (client certificates, WS-Security
//!   UsernameToken) and the SenderID check.
//! * [`tls`]: PEM loading and the rustls server configuration (mutual TLS
//!   with `client_ca`).

pub mod auth;
pub mod client;
pub mod envelope;
pub mod server;
pub mod tls;

/// PayloadType of a 278 request (X217 with errata, CORE naming).
pub const PAYLOAD_278_REQUEST: &str = "X12_278_Request_005010X217E1_2";
/// PayloadType of a 278 response.
pub const PAYLOAD_278_RESPONSE: &str = "X12_278_Response_005010X217E1_2";
/// PayloadType of a 999.
pub const PAYLOAD_999: &str = "X12_999_Response_005010X231A1";
/// PayloadType of a TA1.
pub const PAYLOAD_TA1: &str = "X12_TA1_Response_00501X231A1";
/// The only ProcessingMode of the real-time envelope.
pub const REAL_TIME: &str = "RealTime";

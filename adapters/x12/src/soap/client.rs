//! The CORE real-time SOAP client: send a 278 request to a partner, get the
//! 278 response (or a 999/TA1) back.
//!
//! One [`CoreClient`] per [`PartnerConfig`]: its endpoint, CORE ids, rule
//! version and payload type are per partner because partners differ (e.g.
//! `2.2.0` vs `v2.2.0`). TLS is rustls via reqwest; partners with a private CA
//! are trusted through `ca_file` (optionally exclusively), mutual TLS through
//! `client_identity`.

use std::time::Duration;

use super::envelope::{Body, CoreFields, read, write_request};
use super::{PAYLOAD_278_RESPONSE, PAYLOAD_999, PAYLOAD_TA1};
use crate::ack::{ReceivedAcks, parse_acks};
use crate::config::PartnerConfig;
use crate::tree::{Parsed, parse_interchange};

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SoapClientError {
    /// The client could not be built (TLS material, config).
    #[error("partner {partner}: {message}")]
    Setup {
        /// The partner name.
        partner: String,
        /// What is wrong.
        message: String,
    },
    /// Transport failure (connect, TLS, timeout): retryable.
    #[error("partner {partner}: transport: {message}")]
    Transport {
        /// The partner name.
        partner: String,
        /// What happened.
        message: String,
    },
    /// The partner answered with an HTTP error or a SOAP fault.
    #[error("partner {partner}: HTTP {status}: {message}")]
    Refused {
        /// The partner name.
        partner: String,
        /// HTTP status.
        status: u16,
        /// Fault reason or status text.
        message: String,
    },
    /// The partner rejected our envelope (ErrorCode other than Success).
    #[error("partner {partner}: envelope error {code}")]
    Envelope {
        /// The partner name.
        partner: String,
        /// CORE ErrorCode.
        code: String,
        /// CORE ErrorMessage.
        message: Option<String>,
    },
    /// The answer is not a CORE response we understand.
    #[error("partner {partner}: unreadable response: {message}")]
    Unreadable {
        /// The partner name.
        partner: String,
        /// What is wrong.
        message: String,
    },
}

impl SoapClientError {
    /// True when sending again later may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            SoapClientError::Transport { .. } => true,
            SoapClientError::Refused { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            _ => false,
        }
    }
}

/// What came back for a request.
#[derive(Debug, Clone)]
pub enum CoreReply {
    /// A 278 response interchange.
    Response278(Vec<u8>),
    /// A 999 and/or TA1 instead of a 278.
    Acknowledgment {
        /// The raw acknowledgment interchange.
        raw: Vec<u8>,
        /// What it says.
        acks: ReceivedAcks,
    },
}

/// The full exchange: our envelope's PayloadID and the reply.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The PayloadID we sent.
    pub payload_id: String,
    /// The partner's envelope fields (payload included).
    pub envelope: CoreFields,
    /// The interpreted payload.
    pub reply: CoreReply,
}

/// A client for one partner.
#[derive(Debug, Clone)]
pub struct CoreClient {
    partner: PartnerConfig,
    http: reqwest::Client,
}

impl CoreClient {
    /// Builds the HTTPS client for `partner`.
    pub fn new(partner: PartnerConfig) -> Result<Self, SoapClientError> {
        let setup = |message: String| SoapClientError::Setup {
            partner: partner.name.clone(),
            message,
        };
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(partner.timeout_ms))
            .connect_timeout(Duration::from_secs(10))
            .https_only(true);
        if let Some(ca) = &partner.ca_file {
            let pem =
                std::fs::read(ca).map_err(|e| setup(format!("ca_file {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| setup(format!("ca_file {}: {e}", ca.display())))?;
            builder = if partner.ca_only {
                builder.tls_certs_only(certs)
            } else {
                builder.tls_certs_merge(certs)
            };
        }
        if let Some(id) = &partner.client_identity {
            let pem = std::fs::read(id)
                .map_err(|e| setup(format!("client_identity {}: {e}", id.display())))?;
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| setup(format!("client_identity {}: {e}", id.display())))?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|e| setup(e.to_string()))?;
        Ok(CoreClient { partner, http })
    }

    /// The partner this client talks to.
    pub fn partner(&self) -> &PartnerConfig {
        &self.partner
    }

    /// Sends one 278 request interchange and returns the reply.
    pub async fn send(&self, x12: &[u8]) -> Result<Exchange, SoapClientError> {
        let payload_type = self.partner.request_payload_type.clone();
        self.send_as(x12, &payload_type).await
    }

    /// Sends one interchange with an explicit PayloadType (a 278 response
    /// delivered to a requester's endpoint is `X12_278_Response_005010X217E1_2`).
    pub async fn send_as(
        &self,
        x12: &[u8],
        payload_type: &str,
    ) -> Result<Exchange, SoapClientError> {
        let name = &self.partner.name;
        let payload_id = uuid::Uuid::new_v4().to_string();
        let fields = CoreFields {
            payload_type: payload_type.to_owned(),
            processing_mode: self.partner.processing_mode.as_str().into(),
            payload_id: payload_id.clone(),
            timestamp: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            sender_id: self.partner.sender_id.clone(),
            receiver_id: self.partner.receiver_id.clone(),
            core_rule_version: self.partner.core_rule_version.clone(),
            payload: String::from_utf8_lossy(x12).into_owned(),
            error_code: None,
            error_message: None,
        };
        let xml = write_request(&fields).map_err(|e| SoapClientError::Setup {
            partner: name.clone(),
            message: e.to_string(),
        })?;
        let response = self
            .http
            .post(&self.partner.endpoint)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/soap+xml; charset=utf-8; action=\"RealTimeTransaction\"",
            )
            .body(xml)
            .send()
            .await
            .map_err(|e| SoapClientError::Transport {
                partner: name.clone(),
                message: e.to_string(),
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| SoapClientError::Transport {
                partner: name.clone(),
                message: e.to_string(),
            })?;
        let body = read(&text);
        if !status.is_success() {
            let message = match body {
                Ok(Body::Fault { reason, .. }) => reason,
                _ => status.canonical_reason().unwrap_or("error").to_owned(),
            };
            return Err(SoapClientError::Refused {
                partner: name.clone(),
                status: status.as_u16(),
                message,
            });
        }
        let envelope = match body {
            Ok(Body::Response(f)) => f,
            Ok(other) => {
                return Err(SoapClientError::Unreadable {
                    partner: name.clone(),
                    message: format!("expected a real-time response, got {}", kind(&other)),
                });
            }
            Err(e) => {
                return Err(SoapClientError::Unreadable {
                    partner: name.clone(),
                    message: e.to_string(),
                });
            }
        };
        match envelope.error_code.as_deref() {
            Some("Success") | None => {}
            Some(code) => {
                return Err(SoapClientError::Envelope {
                    partner: name.clone(),
                    code: code.to_owned(),
                    message: envelope.error_message.clone(),
                });
            }
        }
        let raw = envelope.payload.clone().into_bytes();
        let reply = classify(&envelope.payload_type, raw).map_err(|message| {
            SoapClientError::Unreadable {
                partner: name.clone(),
                message,
            }
        })?;
        Ok(Exchange {
            payload_id,
            envelope,
            reply,
        })
    }
}

fn kind(b: &Body) -> &'static str {
    match b {
        Body::Request(_) => "a request",
        Body::Response(_) => "a response",
        Body::Fault { .. } => "a fault",
    }
}

/// Interprets a reply payload by its PayloadType, falling back to its content.
fn classify(payload_type: &str, raw: Vec<u8>) -> Result<CoreReply, String> {
    let is_278 = |p: &Parsed<'_>| p.sets.iter().any(|s| s.envelope.set_id == "278");
    let by_type = match payload_type {
        PAYLOAD_278_RESPONSE => Some(true),
        PAYLOAD_999 | PAYLOAD_TA1 => Some(false),
        _ => None,
    };
    let as_278 = match by_type {
        Some(b) => b,
        None => parse_interchange(&raw).map(|p| is_278(&p)).unwrap_or(false),
    };
    if as_278 {
        return Ok(CoreReply::Response278(raw));
    }
    let acks = parse_acks(&raw).map_err(|f| {
        f.first()
            .map(|f| f.diagnostic.to_string())
            .unwrap_or_else(|| "unreadable acknowledgment".into())
    })?;
    Ok(CoreReply::Acknowledgment { raw, acks })
}

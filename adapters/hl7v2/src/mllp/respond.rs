//! One frame in, one ACK out: parse, submit to the intake pipeline, and answer
//! from the pipeline's outcome.
//!
//! The ACK is built only after [`IntakePipeline::submit`] returned, and the
//! pipeline returns only after the raw message is committed, so AA/CA always
//! means "stored". What each situation is answered with:
//!
//! | situation | original mode | enhanced mode (MSH-15 set) |
//! | --- | --- | --- |
//! | accepted, or a recognised duplicate | AA | CA |
//! | rejected: message could not be parsed | AR + ERR | CR + ERR |
//! | rejected: content or mapping problem | AE + ERR | CE + ERR |
//! | pipeline failed (nothing committed): retry | AR + ERR 207 | CR + ERR 207 |
//! | frame larger than the limit (not stored) | AR + ERR | CR + ERR |
//!
//! Unparseable input is still submitted, so the raw bytes are stored with the
//! reason and can be replayed (DESIGN.md invariant 2). Oversized frames are the
//! exception: their content was never buffered, so only their length is logged
//! and counted (`ehr_gateway_messages_total{outcome="rejected"}` here, since the
//! pipeline never sees them).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use gateway_core::adapter::{InboundMessage, IntakeOutcome, IntakePipeline};
use gateway_core::{Diagnostic, ErrorKind, GatewayError};

use super::codec::MllpFrame;
use super::metrics::{self as m, ADAPTER};
use crate::ack::{AckRequest, AckStatus, build_ack};

/// Answers frames for one listener (one profile).
pub struct Responder {
    pipeline: Arc<dyn IntakePipeline>,
    profile: String,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("profile", &self.profile)
            .finish()
    }
}

impl Responder {
    /// A responder submitting to `pipeline` with `profile`.
    pub fn new(pipeline: Arc<dyn IntakePipeline>, profile: String) -> Self {
        Responder { pipeline, profile }
    }

    /// Processes one frame and returns the ACK payload (unframed).
    pub async fn respond(&self, frame: MllpFrame, peer: &str) -> Vec<u8> {
        match frame {
            MllpFrame::Message(raw) => self.message(raw, peer).await,
            MllpFrame::Oversized { len, head } => {
                m::frame_error("oversized");
                self.count("rejected");
                tracing::warn!(peer = %peer, len, "MLLP frame over the size limit rejected");
                let diag = Diagnostic::error(
                    "M001",
                    format!("message of {len} bytes exceeds the receiver's size limit"),
                );
                build_ack(&AckRequest {
                    message: &head,
                    status: AckStatus::Reject,
                    error: Some(&GatewayError::sender("message too large")),
                    diagnostics: std::slice::from_ref(&diag),
                })
            }
        }
    }

    async fn message(&self, raw: Bytes, peer: &str) -> Vec<u8> {
        let started = Instant::now();
        // Announced before parsing, so the store's group commit knows this
        // message is coming and can let it share another one's fsync.
        let _ticket = self.pipeline.announce();
        let parsed = crate::parse::parse_for_intake(&raw);
        let unparseable = parsed.is_err();
        let inbound = InboundMessage {
            adapter: gateway_core::adapter::AdapterName::HL7V2,
            profile: self.profile.clone(),
            raw: raw.to_vec(),
            received_at: jiff::Timestamp::now(),
            peer: Some(peer.to_string()),
            parsed,
        };
        let outcome = self.pipeline.submit(inbound).await;
        let (label, ack) = match &outcome {
            Ok(IntakeOutcome::Accepted { .. }) => {
                ("accepted", build_ack(&AckRequest::accept(&raw)))
            }
            Ok(IntakeOutcome::Duplicate { .. }) => {
                ("duplicate", build_ack(&AckRequest::accept(&raw)))
            }
            // Stored without a case event (an ADT for a patient with no open
            // case, an ignored message type): a positive ACK, as engines expect.
            Ok(IntakeOutcome::Kept { .. }) => ("kept", build_ack(&AckRequest::accept(&raw))),
            Ok(IntakeOutcome::Rejected {
                error, diagnostics, ..
            }) => {
                let status = if unparseable && error.kind == ErrorKind::Sender {
                    AckStatus::Reject
                } else {
                    AckStatus::Error
                };
                (
                    "rejected",
                    build_ack(&AckRequest {
                        message: &raw,
                        status,
                        error: Some(error),
                        diagnostics,
                    }),
                )
            }
            Err(error) => {
                tracing::error!(peer = %peer, error = %error, "intake failed; answering with a retryable reject");
                (
                    "error",
                    build_ack(&AckRequest {
                        message: &raw,
                        status: AckStatus::Reject,
                        error: Some(error),
                        diagnostics: &[],
                    }),
                )
            }
        };
        // `ehr_gateway_messages_total` for submitted messages is counted by the
        // pipeline (it sees replays too); only frames it never sees are counted here.
        tracing::debug!(peer = %peer, outcome = label, micros = started.elapsed().as_micros() as u64,
            "MLLP message answered");
        ack
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!(m::MESSAGES_TOTAL, "adapter" => ADAPTER,
            "profile" => self.profile.clone(), "outcome" => outcome)
        .increment(1);
    }
}

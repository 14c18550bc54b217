//! Shared intake: one received interchange → pipeline submissions → the
//! acknowledgment to send back. Used by the file drop and the SOAP server so
//! both answer the same bytes the same way.
//!
//! Each transaction set becomes one [`InboundMessage`] (one case per 278); an
//! interchange that cannot be tokenized is still submitted once, with its
//! diagnostics, so the raw bytes are stored with the reason (invariant 2). The
//! acknowledgment is built only after every submission returned, i.e. after
//! the pipeline committed (invariant 1).

use gateway_core::adapter::{InboundMessage, IntakeOutcome, IntakePipeline};
use gateway_core::{Diagnostic, GatewayError};

use crate::ack::{AckIdentity, Acknowledgment, acknowledge, acknowledge_parsed};
use crate::control::{ControlNumberAllocator, Need, reserve};
use crate::tree::{diagnostics, document, parse_interchange};
use crate::write::Stamp;

/// What happened to one received interchange.
#[derive(Debug, Clone)]
pub struct IntakeResult {
    /// The pipeline's outcome per submitted message.
    pub outcomes: Vec<IntakeOutcome>,
    /// The acknowledgment to send back.
    pub ack: Acknowledgment,
}

impl IntakeResult {
    /// True when every message was accepted (or a duplicate) and the
    /// acknowledgment accepts the interchange.
    pub fn accepted(&self) -> bool {
        self.ack.verdict != 'R'
            && self.ack.verdict != 'P'
            && self
                .outcomes
                .iter()
                .all(|o| !matches!(o, IntakeOutcome::Rejected { .. }))
    }
}

/// Submits `raw` to the pipeline and builds the acknowledgment.
///
/// `Err` means the pipeline could not commit: nothing may be acknowledged, the
/// sender must retry (the file stays in the inbound folder; SOAP answers 503).
#[allow(clippy::too_many_arguments)]
pub async fn receive(
    pipeline: &dyn IntakePipeline,
    profile: &str,
    raw: &[u8],
    received_at: jiff::Timestamp,
    peer: Option<String>,
    me: &AckIdentity,
    numbers: &dyn ControlNumberAllocator,
    stamp: &Stamp,
) -> Result<IntakeResult, GatewayError> {
    let message = |parsed: Result<gateway_core::SourceDocument, Vec<Diagnostic>>| InboundMessage {
        adapter: gateway_core::adapter::AdapterName::X12,
        profile: profile.to_owned(),
        raw: raw.to_vec(),
        received_at,
        peer: peer.clone(),
        parsed,
    };
    let mut outcomes = Vec::new();
    match parse_interchange(raw) {
        Ok(parsed) => {
            let docs: Vec<_> = if parsed.sets.is_empty() {
                vec![document(&parsed, None)]
            } else {
                (0..parsed.sets.len())
                    .map(|i| document(&parsed, Some(i)))
                    .collect()
            };
            for doc in docs {
                // A set our own 999/TA1 rejects must not become a case: it is
                // stored as rejected with the findings that reject it (the
                // document carries exactly the findings that concern its set).
                let parsed_doc = if doc.is_clean() {
                    Ok(doc)
                } else {
                    Err(doc.diagnostics)
                };
                outcomes.push(pipeline.submit(message(parsed_doc)).await?);
            }
            let reserved = reserve(numbers, Need::acknowledgment(Some(&parsed))).await?;
            let ack = acknowledge_parsed(&parsed, me, &reserved, stamp)?;
            Ok(IntakeResult { outcomes, ack })
        }
        Err(findings) => {
            outcomes.push(pipeline.submit(message(Err(diagnostics(findings)))).await?);
            let reserved = reserve(numbers, Need::acknowledgment(None)).await?;
            let ack = acknowledge(raw, me, &reserved, stamp)?;
            Ok(IntakeResult { outcomes, ack })
        }
    }
}

//! X12 278: inputs go through the adapter's shared intake (what the file drop
//! and the CORE SOAP server call), answered with our 999/TA1. Write-back is
//! what the daemon sends for the case: a decided case becomes the 278
//! response to the requester (`outbound/response.toml`, as the x12 write-back
//! does), an undecided one the 278 request to the payer (`outbound/request.toml`).

use std::path::Path;
use std::sync::Arc;

use gateway_core::SourceFormat;
use gateway_core::adapter::{BoxFuture, IntakePipeline};
use gateway_core::case::Case;
use gateway_x12::ack::{AckIdentity, parse_acks};
use gateway_x12::intake::receive;
use gateway_x12::outbound::Template;
use gateway_x12::write::{EnvelopeParams, MemoryControlNumbers, Stamp};

use super::{AckFacts, Harness, InboundResult};

/// The X12 harness.
#[derive(Debug, Clone, Copy)]
pub struct X12Harness;

fn fixed_stamp() -> Stamp {
    Stamp {
        at: jiff::civil::date(2026, 1, 1).at(0, 0, 0, 0),
    }
}

impl Harness for X12Harness {
    fn adapter(&self) -> &'static str {
        gateway_core::adapter::name::X12
    }

    fn format(&self) -> SourceFormat {
        SourceFormat::X12
    }

    fn inbound<'a>(
        &'a self,
        pipeline: Arc<dyn IntakePipeline>,
        profile: &'a str,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<InboundResult, String>> {
        Box::pin(async move {
            let numbers = MemoryControlNumbers::default();
            let received_at = jiff::Timestamp::now();
            let result = receive(
                pipeline.as_ref(),
                profile,
                raw,
                received_at,
                Some("conformance".to_owned()),
                &AckIdentity::default(),
                &numbers,
                &fixed_stamp(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let mut text = String::new();
            let mut errors = Vec::new();
            for bytes in [&result.ack.ta1, &result.ack.functional]
                .into_iter()
                .flatten()
            {
                text.push_str(&String::from_utf8_lossy(bytes));
                if let Ok(acks) = parse_acks(bytes) {
                    for ta1 in &acks.ta1 {
                        errors.push(ta1.note_code.clone());
                    }
                    for group in &acks.functional {
                        errors.extend(group.codes.iter().cloned());
                        for set in &group.sets {
                            errors.extend(set.codes.iter().cloned());
                            for segment in &set.segments {
                                errors.push(segment.code.clone());
                                errors.extend(segment.elements.iter().map(|e| e.code.clone()));
                            }
                        }
                    }
                }
            }
            errors.retain(|c| !c.is_empty() && c != "000");
            Ok(InboundResult {
                outcomes: result.outcomes,
                ack: AckFacts {
                    code: Some(result.ack.verdict.to_string()),
                    errors,
                    text,
                },
            })
        })
    }

    fn writeback<'a>(
        &'a self,
        profile_dir: &'a Path,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let file = if case.decision.is_some() {
                "outbound/response.toml"
            } else {
                "outbound/request.toml"
            };
            let template = Template::load(&profile_dir.join(file)).map_err(|e| e.to_string())?;
            let envelope = EnvelopeParams::default();
            let bytes = template
                .interchange(
                    case,
                    &envelope,
                    &MemoryControlNumbers::default(),
                    &fixed_stamp(),
                )
                .map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        })
    }
}

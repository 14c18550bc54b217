//! HL7 v2: inputs go through the MLLP listener's own [`Responder`] (parse,
//! pipeline, ACK from the outcome); write-back through the profile's outbound
//! template, exactly as the MLLP write-back builds it.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use gateway_core::SourceFormat;
use gateway_core::adapter::{BoxFuture, IntakePipeline};
use gateway_core::case::Case;
use gateway_hl7v2::mllp::MllpFrame;
use gateway_hl7v2::mllp::respond::Responder;
use gateway_hl7v2::outbound::{OutboundTemplate, build_decision_message};

use super::{AckFacts, Harness, InboundResult, Recorder};

/// The HL7 v2 harness.
#[derive(Debug, Clone, Copy)]
pub struct Hl7Harness;

/// Fixed values for the volatile header fields of write-back output.
const FIXED_CONTROL_ID: &str = "CONFORMANCE0001";
const FIXED_NOW: &str = "2026-01-01T00:00:00Z";

impl Harness for Hl7Harness {
    fn adapter(&self) -> &'static str {
        gateway_core::adapter::name::HL7V2
    }

    fn format(&self) -> SourceFormat {
        SourceFormat::Hl7v2
    }

    fn inbound<'a>(
        &'a self,
        pipeline: Arc<dyn IntakePipeline>,
        profile: &'a str,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<InboundResult, String>> {
        Box::pin(async move {
            let recorder = Recorder::new(pipeline);
            let responder = Responder::new(recorder.clone(), profile.to_owned());
            let frame = MllpFrame::Message(Bytes::copy_from_slice(raw));
            let ack = responder.respond(frame, "conformance").await;
            Ok(InboundResult {
                outcomes: recorder.take(),
                ack: ack_facts(&ack),
            })
        })
    }

    fn writeback<'a>(
        &'a self,
        profile_dir: &'a Path,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let template = OutboundTemplate::load(&profile_dir.join("outbound/decision.toml"))
                .map_err(|e| e.to_string())?;
            let bytes = build_decision_message(&template, case, FIXED_CONTROL_ID, FIXED_NOW)
                .map_err(|e| e.to_string())?;
            Ok(segments_per_line(&bytes))
        })
    }
}

/// The ACK's MSA-1 and ERR-3 codes.
pub fn ack_facts(ack: &[u8]) -> AckFacts {
    let text = segments_per_line(ack);
    match gateway_hl7v2::ack::parse_ack(ack) {
        Ok(parsed) => AckFacts {
            code: Some(parsed.code),
            errors: parsed.errors.into_iter().filter_map(|e| e.code).collect(),
            text,
        },
        Err(e) => AckFacts {
            code: None,
            errors: Vec::new(),
            text: format!("unreadable ACK ({e}):\n{text}"),
        },
    }
}

/// HL7 segments one per line, for diffs and expected files.
fn segments_per_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .split(['\r', '\n'])
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}\n"))
        .collect()
}

//! Da Vinci PAS: an input is a PAS Request Bundle as an EHR posts it to
//! `Claim/$submit`. It goes through the adapter's own validation
//! ([`gateway_davinci_pas::request::validate`], what the server runs before
//! anything else): a refused bundle is submitted as a failed parse, so it is
//! kept with its diagnostics exactly as the server keeps it, and its
//! "acknowledgement" is the HTTP status with the diagnostic codes of its
//! OperationOutcome; a valid one is submitted with the client name
//! [`CONFORMANCE_CLIENT`] as its sender and acknowledged `200`. Write-back is
//! the PAS Response Bundle for a decided case
//! ([`gateway_davinci_pas::response::response_bundle`]), what `$inquire` and
//! full-resource notifications carry.

use std::path::Path;
use std::sync::Arc;

use gateway_core::SourceFormat;
use gateway_core::adapter::{BoxFuture, InboundMessage, IntakePipeline};
use gateway_core::case::Case;
use gateway_davinci_pas::request::{Operation, validate};

use super::{AckFacts, Harness, InboundResult, submit_message};

/// The client name conformance runs stand for.
pub const CONFORMANCE_CLIENT: &str = "conformance-ehr";

/// The Da Vinci PAS harness.
#[derive(Debug, Clone, Copy)]
pub struct PasHarness;

impl Harness for PasHarness {
    fn adapter(&self) -> &'static str {
        gateway_davinci_pas::ADAPTER
    }

    fn format(&self) -> SourceFormat {
        SourceFormat::DavinciPas
    }

    fn inbound<'a>(
        &'a self,
        pipeline: Arc<dyn IntakePipeline>,
        profile: &'a str,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<InboundResult, String>> {
        Box::pin(async move {
            let (parsed, ack) = match validate(raw, Operation::Submit) {
                Ok(mut request) => {
                    request.document.meta.sender = Some(CONFORMANCE_CLIENT.to_owned());
                    (
                        Ok(request.document),
                        AckFacts {
                            code: Some("200".to_owned()),
                            errors: Vec::new(),
                            text: "200 PAS Response Bundle".to_owned(),
                        },
                    )
                }
                Err(refusal) => {
                    let outcome = refusal.outcome();
                    let ack = AckFacts {
                        code: Some(refusal.status.to_string()),
                        errors: refusal.diagnostics.iter().map(|d| d.code.clone()).collect(),
                        text: outcome.to_value().to_string(),
                    };
                    (Err(refusal.diagnostics), ack)
                }
            };
            let message = InboundMessage {
                adapter: gateway_core::adapter::AdapterName::DAVINCI_PAS,
                profile: profile.to_owned(),
                raw: raw.to_vec(),
                received_at: jiff::Timestamp::now(),
                peer: Some("conformance".to_owned()),
                parsed,
            };
            let mut result = submit_message(pipeline.as_ref(), message).await?;
            result.ack = ack;
            Ok(result)
        })
    }

    fn writeback<'a>(
        &'a self,
        _profile_dir: &'a Path,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let bundle = gateway_davinci_pas::response::response_bundle(case, &[]);
            serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())
        })
    }
}

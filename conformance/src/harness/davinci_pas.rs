//! Da Vinci PAS: an input is a PAS Request Bundle as an EHR posts it to
//! `Claim/$submit`. It becomes the pipeline's message through the server's
//! own step ([`gateway_davinci_pas::server::submission`]: PAS validation,
//! then the client stamped as the sender): a refused bundle is submitted as
//! a failed parse, so it is kept with its diagnostics exactly as the server
//! keeps it, and its "acknowledgement" is the HTTP status with the
//! diagnostic codes of its OperationOutcome; a valid one is submitted with
//! the client name [`CONFORMANCE_CLIENT`] as its sender and acknowledged
//! `200`. Write-back is the PAS Response Bundle for a decided case
//! ([`gateway_davinci_pas::response::response_bundle`]), what `$inquire` and
//! full-resource notifications carry. An inquiry is answered by the
//! server's own [`gateway_davinci_pas::server::answer_inquiry`] over the
//! case's store.

use std::path::Path;
use std::sync::Arc;

use gateway_core::adapter::{BoxFuture, IntakePipeline};
use gateway_core::case::Case;
use gateway_core::{GatewayError, SourceFormat};
use gateway_davinci_pas::request::{Operation, validate};
use gateway_davinci_pas::server::{Submission, answer_inquiry, submission};
use gateway_davinci_pas::{CLAIM_REFERENCE, CaseDirectory, SUBMISSION_REFERENCE};
use gateway_store::Store;

use super::{AckFacts, Harness, InboundResult, InquiryAnswer, submit_message};

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
            let Submission { message, request } = submission(
                raw.to_vec(),
                CONFORMANCE_CLIENT,
                profile,
                Some("conformance".to_owned()),
            );
            let ack = match request {
                Ok(_) => AckFacts {
                    code: Some("200".to_owned()),
                    errors: Vec::new(),
                    text: "200 PAS Response Bundle".to_owned(),
                },
                Err(refusal) => AckFacts {
                    code: Some(refusal.status.to_string()),
                    errors: refusal.diagnostics.iter().map(|d| d.code.clone()).collect(),
                    text: refusal.outcome().to_value().to_string(),
                },
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

    fn inquire<'a>(
        &'a self,
        store: &'a Store,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<InquiryAnswer, String>> {
        Box::pin(async move {
            let directory = StoreDirectory { store };
            let answer = answer_inquiry(&directory, CONFORMANCE_CLIENT, raw)
                .await
                .map_err(|e| e.to_string())?;
            let mut text = serde_json::to_string_pretty(&answer.body).map_err(|e| e.to_string())?;
            if let Some(received_at) = received_at_of_inquired(&directory, raw).await? {
                text = text.replace(&format!("\"{received_at}\""), RECEIVED_AT);
            }
            Ok(InquiryAnswer {
                code: answer.status.to_string(),
                text,
            })
        })
    }
}

/// Stands for the time the inquired request was received, which an answer
/// for an undecided case carries (`ClaimResponse.created`, `Bundle.timestamp`)
/// and which differs on every run; a decided case answers with its fixed
/// `decided_at` instead, which stays in the compared answer.
const RECEIVED_AT: &str = "\"(the request's received_at)\"";

/// `source.received_at` of the case the inquiry names (by its Claim
/// identifier, the latest submission first), if any.
async fn received_at_of_inquired(
    directory: &StoreDirectory<'_>,
    raw: &[u8],
) -> Result<Option<String>, String> {
    let Ok(inquiry) = validate(raw, Operation::Inquire) else {
        return Ok(None);
    };
    for name in [SUBMISSION_REFERENCE, CLAIM_REFERENCE] {
        if let Some(case) = directory
            .case_by_reference(name, &inquiry.claim_id)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(Some(case.source.received_at));
        }
    }
    Ok(None)
}

/// The case's store as the PAS server reads it: the same three reads the
/// daemon's host answers for the adapter (by id, by the adapter's own
/// reference, by message).
struct StoreDirectory<'s> {
    store: &'s Store,
}

impl CaseDirectory for StoreDirectory<'_> {
    fn case_by_id<'a>(
        &'a self,
        case_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>> {
        Box::pin(async move {
            let record = self.store.get_case(case_id).await?;
            Ok(record.map(|r| r.case))
        })
    }

    fn case_by_reference<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>> {
        Box::pin(async move {
            let record = self
                .store
                .case_by_reference(gateway_davinci_pas::ADAPTER, name, value)
                .await?;
            Ok(record.map(|r| r.case))
        })
    }

    fn case_of_message(
        &self,
        message_id: i64,
    ) -> BoxFuture<'_, Result<Option<Case>, GatewayError>> {
        Box::pin(async move {
            let record = self.store.case_of_message(message_id).await?;
            Ok(record.map(|r| r.case))
        })
    }
}

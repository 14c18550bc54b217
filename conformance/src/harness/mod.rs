//! Harnesses: how each adapter's inputs enter the pipeline and how its
//! acknowledgements and write-backs look.
//!
//! A harness calls the adapter's own per-message code (the HL7 responder the
//! MLLP listener uses, the X12 intake the file drop and SOAP server use, …),
//! so the conformance suite proves the code the daemon runs — it never
//! re-implements a pipeline step.

use std::path::Path;
use std::sync::{Arc, Mutex};

use gateway_core::adapter::{BoxFuture, InboundMessage, IntakeOutcome, IntakePipeline};
use gateway_core::case::Case;
use gateway_core::{GatewayError, SourceFormat};
use gateway_store::Store;

pub mod davinci_pas;
pub mod desktop;
pub mod fhir;
pub mod hl7v2;
pub mod x12;

/// What an acknowledgement said, in format-neutral terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckFacts {
    /// HL7 MSA-1, X12 AK9-01/IK5-01/TA1-04, or an HTTP status; `None` when
    /// the transport has no acknowledgement (FHIR polling, desktop reads).
    pub code: Option<String>,
    /// Error codes carried (HL7 ERR-3, X12 IK3/IK4/TA1 codes).
    pub errors: Vec<String>,
    /// The acknowledgement as text, for reports.
    pub text: String,
}

/// The result of one input.
#[derive(Debug, Clone)]
pub struct InboundResult {
    /// What the pipeline did, for each message the input held.
    pub outcomes: Vec<IntakeOutcome>,
    /// The acknowledgement sent back.
    pub ack: AckFacts,
}

/// One adapter, as the conformance runner drives it.
pub trait Harness: Send + Sync {
    /// Adapter name (`hl7v2`, `x12`, `fhir`, `desktop`).
    fn adapter(&self) -> &'static str;

    /// The profile format this harness serves.
    fn format(&self) -> SourceFormat;

    /// Feeds one input file's bytes through the adapter's receive path.
    fn inbound<'a>(
        &'a self,
        pipeline: Arc<dyn IntakePipeline>,
        profile: &'a str,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<InboundResult, String>>;

    /// Produces what the adapter writes back for a decided case, normalized
    /// (volatile control numbers and timestamps replaced) so it can be
    /// compared with `expected.writeback.*`.
    fn writeback<'a>(
        &'a self,
        profile_dir: &'a Path,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<String, String>>;

    /// Answers a status inquiry (`raw`, as the client posts it) from the
    /// cases in `store`, the way the adapter's server answers it.
    /// Adapters without inquiries refuse.
    fn inquire<'a>(
        &'a self,
        store: &'a Store,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<InquiryAnswer, String>> {
        let _ = (store, raw);
        let adapter = self.adapter();
        Box::pin(async move { Err(format!("adapter {adapter} answers no inquiries")) })
    }
}

/// An adapter's answer to a status inquiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InquiryAnswer {
    /// The answer's status code (an HTTP status for PAS), checked against
    /// `expect.ack`.
    pub code: String,
    /// The answer's body, compared with `expected.writeback.*`.
    pub text: String,
}

/// Submits a message an adapter built itself and reports its one outcome.
pub(crate) async fn submit_message(
    pipeline: &dyn IntakePipeline,
    message: InboundMessage,
) -> Result<InboundResult, String> {
    let outcome = pipeline.submit(message).await.map_err(|e| e.to_string())?;
    Ok(InboundResult {
        outcomes: vec![outcome],
        ack: AckFacts::default(),
    })
}

/// All harnesses of this build: one per adapter of `gateway_registry::ADAPTERS`
/// (a test holds them to it). Profiles load with the registry's path
/// syntaxes (`gateway_registry::Syntaxes`), the same the daemon uses.
pub fn all() -> Vec<Box<dyn Harness>> {
    vec![
        Box::new(hl7v2::Hl7Harness),
        Box::new(x12::X12Harness),
        Box::new(fhir::FhirHarness),
        Box::new(desktop::DesktopHarness),
        Box::new(davinci_pas::PasHarness),
    ]
}

/// Wraps the real pipeline and remembers every outcome, so a harness whose
/// adapter code only returns acknowledgement bytes can still report outcomes.
pub struct Recorder {
    inner: Arc<dyn IntakePipeline>,
    outcomes: Mutex<Vec<IntakeOutcome>>,
}

impl Recorder {
    /// Records what `inner` returns.
    pub fn new(inner: Arc<dyn IntakePipeline>) -> Arc<Self> {
        Arc::new(Recorder {
            inner,
            outcomes: Mutex::new(Vec::new()),
        })
    }

    /// Takes the outcomes recorded so far.
    pub fn take(&self) -> Vec<IntakeOutcome> {
        match self.outcomes.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl IntakePipeline for Recorder {
    fn submit(
        &self,
        message: InboundMessage,
    ) -> BoxFuture<'_, Result<IntakeOutcome, GatewayError>> {
        Box::pin(async move {
            let result = self.inner.submit(message).await;
            if let Ok(outcome) = &result {
                match self.outcomes.lock() {
                    Ok(mut guard) => guard.push(outcome.clone()),
                    Err(poisoned) => poisoned.into_inner().push(outcome.clone()),
                }
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_harness_per_registered_adapter_each_with_its_formats() {
        let harnesses = super::all();
        let names: Vec<&str> = harnesses.iter().map(|h| h.adapter()).collect();
        assert_eq!(names.len(), gateway_registry::ADAPTERS.len());
        for spec in gateway_registry::ADAPTERS {
            let harness = harnesses
                .iter()
                .find(|h| h.adapter() == spec.name)
                .unwrap_or_else(|| panic!("no harness for adapter {}", spec.name));
            assert!(spec.formats.contains(&harness.format()), "{}", spec.name);
        }
    }
}

//! FHIR: an input is an assembled order bundle, submitted exactly as the
//! poller submits what it assembled — through the poller's own
//! [`gateway_fhir::poll::inbound_message`], which stamps the FHIR base URL as
//! the sender (part of the duplicate key), then the pipeline. Offline there is
//! no server, so the sender is [`CONFORMANCE_FHIR_BASE`]. FHIR polling has no
//! acknowledgement; write-back needs a live EHR and is covered by the
//! adapter's loopback tests, not offline suites.

use std::path::Path;
use std::sync::Arc;

use gateway_core::SourceFormat;
use gateway_core::adapter::{BoxFuture, IntakePipeline};
use gateway_core::case::Case;

use super::{Harness, InboundResult, submit_message};

/// The FHIR base URL conformance runs stand for (the daemon stamps the
/// configured `[fhir] base_url`); `.invalid` never resolves.
pub const CONFORMANCE_FHIR_BASE: &str = "https://ehr.conformance.invalid/fhir/";

/// The FHIR harness.
#[derive(Debug, Clone, Copy)]
pub struct FhirHarness;

impl Harness for FhirHarness {
    fn adapter(&self) -> &'static str {
        gateway_core::adapter::name::FHIR
    }

    fn format(&self) -> SourceFormat {
        SourceFormat::Fhir
    }

    fn inbound<'a>(
        &'a self,
        pipeline: Arc<dyn IntakePipeline>,
        profile: &'a str,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<InboundResult, String>> {
        Box::pin(async move {
            let message =
                gateway_fhir::poll::inbound_message(profile, raw.to_vec(), CONFORMANCE_FHIR_BASE);
            submit_message(pipeline.as_ref(), message).await
        })
    }

    fn writeback<'a>(
        &'a self,
        _profile_dir: &'a Path,
        _case: &'a Case,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async {
            Err("FHIR write-back needs a FHIR server; it is proven by gateway-fhir's loopback tests".to_owned())
        })
    }
}

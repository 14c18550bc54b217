//! FHIR: an input is an assembled order bundle, submitted exactly as the
//! poller submits what it assembled (`parse_bundle`, then the pipeline). FHIR
//! polling has no acknowledgement; write-back needs a live EHR and is covered
//! by the adapter's loopback tests, not offline suites.

use std::path::Path;
use std::sync::Arc;

use gateway_core::SourceFormat;
use gateway_core::adapter::{BoxFuture, IntakePipeline};
use gateway_core::case::Case;

use super::{Harness, InboundResult, submit_parsed};

/// The FHIR harness.
#[derive(Debug, Clone, Copy)]
pub struct FhirHarness;

impl Harness for FhirHarness {
    fn adapter(&self) -> &'static str {
        "fhir"
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
            submit_parsed(
                pipeline.as_ref(),
                self.adapter(),
                profile,
                raw,
                gateway_fhir::parse_bundle(raw),
            )
            .await
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

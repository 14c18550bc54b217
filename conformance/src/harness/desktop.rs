//! Desktop: an input is a screen read (captured name → value, as JSON with
//! `_meta`), made into an inbound message by the adapter's own
//! `capture::inbound_raw` (parsed as the replay path parses it) and
//! submitted. Typing into a real window is proven by the adapter's Xvfb tests.

use std::path::Path;
use std::sync::Arc;

use gateway_core::SourceFormat;
use gateway_core::adapter::{BoxFuture, IntakePipeline};
use gateway_core::case::Case;

use super::{Harness, InboundResult, submit_message};

/// The desktop harness.
#[derive(Debug, Clone, Copy)]
pub struct DesktopHarness;

impl Harness for DesktopHarness {
    fn adapter(&self) -> &'static str {
        gateway_core::adapter::name::DESKTOP
    }

    fn format(&self) -> SourceFormat {
        SourceFormat::Desktop
    }

    fn inbound<'a>(
        &'a self,
        pipeline: Arc<dyn IntakePipeline>,
        profile: &'a str,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<InboundResult, String>> {
        Box::pin(async move {
            let message = gateway_desktop::capture::inbound_raw(
                profile,
                raw.to_vec(),
                jiff::Timestamp::now(),
                Some("conformance".to_owned()),
            );
            submit_message(pipeline.as_ref(), message).await
        })
    }

    fn writeback<'a>(
        &'a self,
        _profile_dir: &'a Path,
        _case: &'a Case,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async {
            Err("desktop write-back types into a real window; it is proven by gateway-desktop's Xvfb tests".to_owned())
        })
    }
}

//! A faithful in-test intake pipeline: maps with the real `x12-278` profile
//! (gateway-mapping) and records what it committed; can be told to fail as a
//! broken store would.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use gateway_core::GatewayError;
use gateway_core::adapter::{
    BoxFuture, CommitReceipt, InboundMessage, IntakeOutcome, IntakePipeline,
};
use gateway_mapping::{MapContext, Profile};

/// What the pipeline committed for one message.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The raw bytes as received.
    pub raw: Vec<u8>,
    /// The case status, when mapped.
    pub status: Option<String>,
    /// The case id, when mapped.
    pub case_id: Option<String>,
    /// True when rejected.
    pub rejected: bool,
}

/// The pipeline double.
pub struct MappingPipeline {
    profile: Profile,
    next: AtomicI64,
    /// Everything committed.
    pub committed: Mutex<Vec<Committed>>,
    /// When set, `submit` fails as if the store were down.
    pub fail: AtomicBool,
}

impl MappingPipeline {
    /// A pipeline over the x12-278 profile.
    pub fn new() -> Self {
        MappingPipeline {
            profile: super::profile(),
            next: AtomicI64::new(1),
            committed: Mutex::new(Vec::new()),
            fail: AtomicBool::new(false),
        }
    }

    /// A copy of what was committed.
    pub fn committed(&self) -> Vec<Committed> {
        self.committed.lock().expect("lock").clone()
    }
}

impl IntakePipeline for MappingPipeline {
    fn submit(
        &self,
        message: InboundMessage,
    ) -> BoxFuture<'_, Result<IntakeOutcome, GatewayError>> {
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) {
                return Err(GatewayError::internal(true, "store unavailable"));
            }
            let receipt = CommitReceipt {
                message_id: self.next.fetch_add(1, Ordering::SeqCst),
            };
            let mut record = Committed {
                raw: message.raw.clone(),
                status: None,
                case_id: None,
                rejected: false,
            };
            let outcome = match &message.parsed {
                Ok(doc) if doc.is_clean() => {
                    let outcome = self
                        .profile
                        .map(doc, &MapContext::new(message.received_at.to_string()));
                    match outcome.case {
                        Some(case) => {
                            record.status = Some(case.status.as_str().to_owned());
                            record.case_id = Some(case.case_id.clone());
                            IntakeOutcome::Accepted {
                                receipt,
                                case_id: case.case_id,
                                warnings: Vec::new(),
                            }
                        }
                        None => IntakeOutcome::Rejected {
                            receipt,
                            error: GatewayError::mapping("unmappable"),
                            diagnostics: outcome.core_diagnostics(),
                        },
                    }
                }
                Ok(doc) => IntakeOutcome::Rejected {
                    receipt,
                    error: GatewayError::sender("invalid X12"),
                    diagnostics: doc.diagnostics.clone(),
                },
                Err(diagnostics) => IntakeOutcome::Rejected {
                    receipt,
                    error: GatewayError::sender("unreadable X12"),
                    diagnostics: diagnostics.clone(),
                },
            };
            record.rejected = matches!(outcome, IntakeOutcome::Rejected { .. });
            self.committed.lock().expect("lock").push(record);
            Ok(outcome)
        })
    }
}

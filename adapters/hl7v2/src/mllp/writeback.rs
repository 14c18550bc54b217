//! Decision write-back over MLLP: implements [`WriteBack`] by building the
//! profile's outbound message (`ORU^R01` or `MDM^T02`, see
//! [`crate::outbound`]) and sending it with ACK validation.
//!
//! The store's write-back worker calls [`WriteBack::apply`] for due decisions
//! in order and owns retries and backoff, so each call here is one attempt on
//! one sender whose connection persists between calls (a mutex keeps calls in
//! order). The message control id is derived from the case and its decision,
//! so a retry of the same decision carries the same MSH-10 and the EHR's engine
//! can recognise it as a duplicate.

use gateway_core::adapter::{BoxFuture, WriteBack, WriteBackReceipt};
use gateway_core::{Case, GatewayError};
use tokio::sync::Mutex;

use super::config::SenderConfig;
use super::metrics::ADAPTER;
use super::sender::{MllpSender, SendError};
use super::tls::TlsSetupError;
use crate::outbound::{OutboundError, OutboundTemplate, build_decision_message};

/// Writes decisions into an EHR through its interface engine's MLLP port.
pub struct MllpWriteBack {
    template: OutboundTemplate,
    sender: Mutex<MllpSender>,
}

impl std::fmt::Debug for MllpWriteBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MllpWriteBack")
            .field("message_type", &self.template.message_type)
            .finish()
    }
}

impl MllpWriteBack {
    /// A write-back sending `template`-shaped messages with `sender` settings.
    pub fn new(template: OutboundTemplate, sender: SenderConfig) -> Result<Self, TlsSetupError> {
        Ok(MllpWriteBack {
            template,
            sender: Mutex::new(MllpSender::new(sender)?),
        })
    }
}

/// A stable MSH-10 for one decision of one case (19 characters, within the
/// 20-character limit of HL7 2.5.1 ST).
pub fn decision_control_id(case: &Case) -> String {
    let decision = serde_json::to_string(&case.decision).unwrap_or_default();
    let digest =
        gateway_core::ids::content_hash(format!("{}\u{0}{}", case.case_id, decision).as_bytes());
    format!("GW{}", &digest[..17])
}

fn outbound_error(e: OutboundError) -> GatewayError {
    match e {
        OutboundError::NoDecision(_) => GatewayError::internal(false, e.to_string()),
        _ => GatewayError::mapping(e.to_string()),
    }
}

impl WriteBack for MllpWriteBack {
    fn adapter(&self) -> &str {
        ADAPTER
    }

    fn apply<'a>(
        &'a self,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<WriteBackReceipt, GatewayError>> {
        Box::pin(async move {
            let control_id = decision_control_id(case);
            let now = jiff::Timestamp::now().to_string();
            let message = build_decision_message(&self.template, case, &control_id, &now)
                .map_err(outbound_error)?;
            let mut sender = self.sender.lock().await;
            match sender.send_once(&message).await {
                Ok(ack) => Ok(WriteBackReceipt {
                    detail: format!(
                        "{} control {control_id} acknowledged {}",
                        self.template.message_type,
                        ack.code.as_str()
                    ),
                }),
                Err(SendError::Negative(ack)) => Err(GatewayError::downstream(
                    ack.code.is_retryable(),
                    format!(
                        "{} control {control_id} answered {}",
                        self.template.message_type,
                        ack.one_line()
                    ),
                )),
                Err(e) => Err(GatewayError::downstream(
                    e.retryable(),
                    format!("{} control {control_id}: {e}", self.template.message_type),
                )),
            }
        })
    }
}

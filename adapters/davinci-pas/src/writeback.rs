//! The adapter's `WriteBack`: a decision on a case submitted through
//! `$submit` notifies the submitting EHR's subscriptions.
//!
//! The daemon's write-back worker calls [`WriteBack::apply`] for every
//! decision recorded on a case this adapter owns (`source.adapter =
//! davinci-pas`) and retries a retryable failure with backoff from the
//! store's write-back queue — so a notification endpoint that is down gets the
//! notification later, across restarts. Without a subscription there is
//! nothing to send: the EHR learns the decision through `$inquire`.

use std::sync::Arc;

use gateway_core::adapter::{BoxFuture, WriteBack, WriteBackReceipt};
use gateway_core::{Case, GatewayError};

use crate::subscription::Notifier;

/// Sends subscription notifications for decided cases.
#[derive(Debug, Clone)]
pub struct PasWriteBack {
    notifier: Arc<Notifier>,
}

impl PasWriteBack {
    /// A write-back through `notifier`.
    pub fn new(notifier: Arc<Notifier>) -> Self {
        PasWriteBack { notifier }
    }
}

impl WriteBack for PasWriteBack {
    fn adapter(&self) -> &str {
        crate::ADAPTER
    }

    fn apply<'a>(
        &'a self,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<WriteBackReceipt, GatewayError>> {
        Box::pin(async move {
            let sent = self.notifier.notify(case).await?;
            Ok(WriteBackReceipt {
                detail: if sent == 0 {
                    "no PAS subscription of the submitting client; the decision is answered on $inquire".to_owned()
                } else {
                    format!("PAS notification sent to {sent} subscription(s)")
                },
            })
        })
    }
}

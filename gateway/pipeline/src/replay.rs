//! Re-processing of stored messages queued by `ehr-gateway messages replay`.
//!
//! The CLI (possibly another process) only marks a rejected message in the
//! store; the running daemon's [`ReplayWorker`] polls for marked messages,
//! parses the stored bytes again and runs them through the *current*
//! profiles, updating the original row in place. A message that still fails
//! stays rejected with its new reason.

use std::time::Duration;

use gateway_core::GatewayError;
use gateway_core::adapter::{AdapterName, InboundMessage, IntakeOutcome};
use tokio_util::sync::CancellationToken;

use crate::intake::Pipeline;

/// Polls the store for replay requests and processes them.
#[derive(Debug, Clone)]
pub struct ReplayWorker {
    pipeline: Pipeline,
    interval: Duration,
}

impl ReplayWorker {
    /// A worker polling every `interval`.
    pub fn new(pipeline: Pipeline, interval: Duration) -> Self {
        ReplayWorker { pipeline, interval }
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match replay_pending(&self.pipeline, 64).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(count = n, "Replayed queued messages."),
                Err(error) => tracing::warn!(%error, "Replay pass failed; will retry."),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}

/// Processes up to `limit` queued replays now; returns how many were processed.
pub async fn replay_pending(pipeline: &Pipeline, limit: usize) -> Result<usize, GatewayError> {
    let queued = pipeline
        .store()
        .replay_requests(limit)
        .await
        .map_err(GatewayError::from)?;
    let mut done = 0;
    for stored in queued {
        let summary = stored.summary;
        let Some(parser) = pipeline.parser() else {
            return Err(GatewayError::internal(
                false,
                "no document parser configured for replays",
            ));
        };
        let parsed = match pipeline.profiles().get(&summary.profile) {
            Some(profile) => parser.parse(&summary.adapter, profile.format(), &stored.raw),
            None => Err(vec![gateway_core::Diagnostic::error(
                "G001",
                format!("mapping profile `{}` is not loaded", summary.profile),
            )]),
        };
        // Stored as `Timestamp`'s text, so it reads back to the same text.
        let received_at = summary.received_at.parse().unwrap_or_else(|_| {
            tracing::warn!(
                message_id = summary.id,
                "Stored receive time unreadable; replaying with now."
            );
            jiff::Timestamp::now()
        });
        let message = InboundMessage {
            adapter: AdapterName::new(summary.adapter.clone()),
            profile: summary.profile.clone(),
            raw: stored.raw,
            received_at,
            peer: summary.peer.clone(),
            parsed,
        };
        let outcome = pipeline.process(message, Some(summary.id)).await?;
        let result = match &outcome {
            IntakeOutcome::Accepted { .. } => "accepted",
            IntakeOutcome::Kept { .. } => "kept",
            IntakeOutcome::Duplicate { .. } => "duplicate",
            IntakeOutcome::Rejected { .. } => "rejected",
        };
        tracing::info!(message_id = summary.id, result, "Replayed message.");
        done += 1;
    }
    Ok(done)
}

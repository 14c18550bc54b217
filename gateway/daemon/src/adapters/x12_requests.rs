//! The submission worker of the outbound 278 request path (`[x12.requests]`):
//! cases routed to a payer leave the gateway as 278 requests, and the payer's
//! synchronous 278 response comes back in as the decision on the case.
//!
//! *Why in the daemon and not in the x12 crate:* the worker's state is a
//! queue in the store (`x12_submissions`, filled from a cursor over committed
//! messages in the same transaction that moves the cursor; rows recorded
//! together with the request's trace in `case_requests`), and adapters never
//! see the store (the seam's invariant). The x12 adapter hands back
//! everything else as a [`RequestPath`] handle in its `Started` (routes,
//! request writer, control numbers over the seam's host, where the payer's
//! answer goes); [`spawn`] adds the store. Widening the seam's `Host` by the
//! seven queue operations only x12 uses would put one adapter's storage
//! schema into the trait every adapter sees.
//!
//! Durability (why it survives kill -9 without sending twice or forgetting):
//! * *What is due* is found from the messages committed since a cursor (a
//!   primary-key range, never a rescan of every case) and queued in the
//!   store's `x12_submissions` table together with the moved cursor, in one
//!   transaction; one row per (case, route), so a case is queued once.
//! * A due row is written (fresh TRN*1 trace, control numbers from the store)
//!   and *recorded* — trace and control numbers in `case_requests`, the exact
//!   bytes on the row — in one transaction before anything leaves (#12: the
//!   payer's response is adopted only when it echoes a recorded trace).
//! * A recorded row is delivered; after a crash, a restart delivers the same
//!   bytes again (same trace, same ISA13). Why the same and not a new trace:
//!   the first copy may have reached the payer before the crash; the same
//!   interchange lets the payer see a duplicate rather than a second request,
//!   and a response to either copy echoes the one recorded trace, so it is
//!   adopted. A folder route writes the file once (a name from case id and
//!   ISA13).
//! * A case that cannot give a valid 278 is refused by name (the facts it
//!   lacks), audited and counted, and not retried until a new message updates
//!   the case (the queue makes it due again); a transport failure is
//!   retried with backoff; a partner's rejection (999/TA1, envelope error)
//!   ends the row as failed.
//!
//! Metric: `ehr_gateway_x12_requests_total{route, outcome}` with outcome
//! `sent`, `refused`, `failed`, `retried`, `skipped`.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::adapter::IntakePipeline;
use gateway_core::case::CaseStatus;
use gateway_registry::seam::Started;
use gateway_store::backoff::BackoffPolicy;
use gateway_store::{
    AuditEntry, NewCaseRequest, Store, StoreError, SubmissionState, X12Submission,
};
use gateway_x12::ack::AckIdentity;
use gateway_x12::control::ControlNumberAllocator;
use gateway_x12::requests::{
    Delivery, DeliveryError, REQUEST_KIND, RequestError, RequestWriter, Route, Routes,
    request_references,
};
use gateway_x12::start::RequestPath;
use gateway_x12::write::Stamp;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Counter of the worker's outcomes, by route and outcome.
pub const REQUESTS_TOTAL: &str = "ehr_gateway_x12_requests_total";

/// The audit action of a request written and recorded by the worker.
pub const REQUEST_SENT: &str = "x12.request";
/// The audit action of a case refused by the request writer.
pub const REQUEST_REFUSED: &str = "x12.request.refused";
/// The audit action of a request the partner refused for good.
pub const REQUEST_FAILED: &str = "x12.request.failed";

/// The `outcome` label values of [`REQUESTS_TOTAL`].
const OUTCOMES: [&str; 5] = ["sent", "refused", "failed", "retried", "skipped"];

/// The store cursor over committed messages.
const CURSOR: &str = "x12-requests";
/// Messages read per scan step.
const SCAN_BATCH: usize = 500;
/// Submissions worked on per pass.
const DUE_BATCH: usize = 50;

/// The worker and what it needs.
pub struct SubmissionWorker {
    /// The store (queue, case reads, recording).
    pub store: Store,
    /// The routes.
    pub routes: Routes,
    /// The request writer.
    pub writer: RequestWriter,
    /// Durable control numbers.
    pub numbers: Arc<dyn ControlNumberAllocator>,
    /// Where the payer's synchronous 278 responses go.
    pub pipeline: Arc<dyn IntakePipeline>,
    /// The profile received 278s are mapped with.
    pub profile: String,
    /// Our identity for the acknowledgment of a received 278.
    pub ack_identity: AckIdentity,
    /// Retry delays of transport failures.
    pub backoff: BackoffPolicy,
    /// How often to look for work.
    pub poll: Duration,
}

/// Starts the submission worker over `store` when the x12 adapter in
/// `started` handed back a request path (`[x12.requests]` is configured);
/// it stops with `shutdown` (the adapters' stop).
pub fn spawn(
    started: &Started,
    store: &Store,
    shutdown: &CancellationToken,
) -> Option<JoinHandle<()>> {
    let path = started.handle::<RequestPath>()?;
    let worker = SubmissionWorker::new(&path, store.clone());
    Some(tokio::spawn(worker.run(shutdown.clone())))
}

fn count(route: &str, outcome: &'static str) {
    metrics::counter!(REQUESTS_TOTAL, "route" => route.to_owned(), "outcome" => outcome)
        .increment(1);
}

fn audit(action: &str, route: &str, case_id: &str, detail: String) -> AuditEntry {
    AuditEntry {
        actor: format!("x12-route:{route}"),
        action: action.to_owned(),
        target: Some(format!("case:{case_id}")),
        detail: Some(detail),
        case_id: Some(case_id.to_owned()),
    }
}

impl SubmissionWorker {
    /// The worker of the request path `path` over `store`.
    pub fn new(path: &RequestPath, store: Store) -> Self {
        SubmissionWorker {
            store,
            routes: path.routes.clone(),
            writer: path.writer.clone(),
            numbers: Arc::clone(&path.numbers),
            pipeline: Arc::clone(&path.pipeline),
            profile: path.profile.clone(),
            ack_identity: path.ack_identity.clone(),
            backoff: BackoffPolicy {
                initial_ms: path.retry_initial_ms,
                max_ms: path.retry_max_ms,
                multiplier: 2.0,
            },
            poll: path.poll,
        }
    }

    /// Runs until `shutdown`: each pass queues newly due cases, then works
    /// on what is due.
    pub async fn run(self, shutdown: CancellationToken) {
        metrics::describe_counter!(
            REQUESTS_TOTAL,
            "X12 278 requests the submission worker handled, by route and outcome (sent, refused, failed, retried, skipped)."
        );
        // Every route's series exist (at 0) before the first request.
        for route in self.routes.iter() {
            for outcome in OUTCOMES {
                metrics::counter!(REQUESTS_TOTAL, "route" => route.config.name.clone(), "outcome" => outcome)
                    .increment(0);
            }
        }
        loop {
            if let Err(e) = self.pass(&shutdown).await {
                tracing::error!(error = %e, "x12 request pass failed; retrying on the next poll");
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// One pass: queue, then work.
    async fn pass(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        loop {
            let (candidates, last) = self
                .store
                .x12_submission_candidates(CURSOR, SCAN_BATCH)
                .await?;
            let Some(last) = last else { break };
            let entries: Vec<(String, String)> = candidates
                .iter()
                .filter_map(|c| {
                    self.routes
                        .route_for(&c.case)
                        .map(|r| (c.case.case_id.clone(), r.config.name.clone()))
                })
                .collect();
            let added = self
                .store
                .enqueue_x12_submissions(CURSOR, last, entries)
                .await?;
            if added > 0 {
                tracing::info!(added, "x12 278 requests due");
            }
        }
        for submission in self.store.due_x12_submissions(DUE_BATCH).await? {
            if shutdown.is_cancelled() {
                break;
            }
            let (id, route) = (submission.id, submission.route.clone());
            // One row's store error must not starve the rows behind it: it
            // is logged and the row tried again after a backoff.
            if let Err(e) = self.work(submission, shutdown).await {
                tracing::error!(error = %e, submission = id, %route, "x12 278 request not processed");
                let delay = self.backoff.delay(1);
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                if let Err(e) = self
                    .store
                    .retry_x12_submission(id, delay_ms, format!("store error: {e}"))
                    .await
                {
                    tracing::error!(error = %e, submission = id, "x12 278 request retry not scheduled");
                }
            }
        }
        Ok(())
    }

    async fn finish(
        &self,
        s: &X12Submission,
        state: SubmissionState,
        outcome: &'static str,
        reason: String,
        audit_action: Option<&str>,
    ) -> Result<(), StoreError> {
        let entry = audit_action.map(|a| audit(a, &s.route, &s.case_id, reason.clone()));
        self.store
            .finish_x12_submission(s.id, state, Some(reason), entry)
            .await?;
        count(&s.route, outcome);
        Ok(())
    }

    async fn retry(&self, s: &X12Submission, reason: String) -> Result<(), StoreError> {
        let delay = self.backoff.delay(s.attempts.saturating_add(1));
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let attempts = self
            .store
            .retry_x12_submission(s.id, delay_ms, reason.clone())
            .await?;
        tracing::warn!(case_id = %s.case_id, route = %s.route, attempts, delay_ms, reason = %reason, "x12 278 request not delivered; will retry");
        count(&s.route, "retried");
        Ok(())
    }

    /// Writes and records a due submission; `None` when it ended or was
    /// rescheduled instead.
    async fn record(
        &self,
        s: &X12Submission,
        route: &Route,
    ) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let Some(record) = self.store.get_case(&s.case_id).await? else {
            self.finish(
                s,
                SubmissionState::Skipped,
                "skipped",
                "the case is no longer stored".into(),
                None,
            )
            .await?;
            return Ok(None);
        };
        if record.case.status != CaseStatus::Requested {
            let reason = format!(
                "the case is {}, no longer requested",
                record.case.status.as_str()
            );
            self.finish(s, SubmissionState::Skipped, "skipped", reason, None)
                .await?;
            return Ok(None);
        }
        let written = match self
            .writer
            .write(&record.case, route, self.numbers.as_ref(), &Stamp::now())
            .await
        {
            Ok(w) => w,
            Err(RequestError::Numbers(e)) => {
                self.retry(s, format!("control numbers: {}", e.message))
                    .await?;
                return Ok(None);
            }
            Err(e @ (RequestError::Refused(_) | RequestError::Unwritable(_))) => {
                tracing::warn!(case_id = %s.case_id, route = %s.route, reason = %e, "x12 278 request refused; not sent");
                self.finish(
                    s,
                    SubmissionState::Refused,
                    "refused",
                    e.to_string(),
                    Some(REQUEST_REFUSED),
                )
                .await?;
                return Ok(None);
            }
        };
        let isa13 = written.isa13().to_owned();
        let request = NewCaseRequest {
            case_id: s.case_id.clone(),
            kind: REQUEST_KIND.to_owned(),
            references: written.references.clone(),
            control: written.control.clone(),
            actor: format!("x12-route:{}", s.route),
        };
        let entry = audit(
            REQUEST_SENT,
            &s.route,
            &s.case_id,
            format!("278 request ISA13 {isa13} recorded for route {}", s.route),
        );
        self.store
            .record_x12_submission(s.id, request, entry, written.bytes.clone())
            .await?;
        tracing::info!(case_id = %s.case_id, route = %s.route, %isa13, "x12 278 request written and recorded");
        Ok(Some((written.bytes, isa13)))
    }

    async fn work(&self, s: X12Submission, shutdown: &CancellationToken) -> Result<(), StoreError> {
        let Some(route) = self.routes.named(&s.route) else {
            let reason = format!("route `{}` is no longer configured", s.route);
            return self
                .finish(&s, SubmissionState::Skipped, "skipped", reason, None)
                .await;
        };
        let (payload, isa13) = match (s.state, &s.payload) {
            (SubmissionState::Recorded, Some(payload)) => {
                let isa13 = request_references(payload)
                    .and_then(|(_, control)| control.get("isa13").cloned())
                    .unwrap_or_default();
                (payload.clone(), isa13)
            }
            (SubmissionState::Recorded, None) => {
                let reason = "recorded without its bytes: cannot be resent".to_owned();
                return self
                    .finish(
                        &s,
                        SubmissionState::Failed,
                        "failed",
                        reason,
                        Some(REQUEST_FAILED),
                    )
                    .await;
            }
            _ => match self.record(&s, route).await? {
                Some(written) => written,
                None => return Ok(()),
            },
        };
        // A delivery cut short by shutdown leaves the row recorded: the next
        // start sends the same bytes.
        let delivered = tokio::select! {
            delivered = route.deliver(&s.case_id, &isa13, &payload) => delivered,
            () = shutdown.cancelled() => return Ok(()),
        };
        match delivered {
            Ok(Delivery::Written(name)) => {
                tracing::info!(case_id = %s.case_id, route = %s.route, file = %name, "x12 278 request written to the outbound folder");
                self.finish(
                    &s,
                    SubmissionState::Sent,
                    "sent",
                    format!("written as {name}"),
                    None,
                )
                .await
            }
            Ok(Delivery::Acknowledged(detail)) => {
                self.finish(&s, SubmissionState::Sent, "sent", detail, None)
                    .await
            }
            Ok(Delivery::Answered {
                response,
                payload_id,
            }) => {
                let taken = gateway_x12::intake::receive(
                    self.pipeline.as_ref(),
                    &self.profile,
                    &response,
                    jiff::Timestamp::now(),
                    Some(format!("x12-route:{}", s.route)),
                    &self.ack_identity,
                    self.numbers.as_ref(),
                    &Stamp::now(),
                )
                .await;
                match taken {
                    // Not committed: the payer's answer is lost with it, so
                    // ask again (the same request: the payer answers again).
                    Err(e) => {
                        self.retry(
                            &s,
                            format!("the 278 response could not be committed: {}", e.message),
                        )
                        .await
                    }
                    Ok(result) => {
                        let detail = if result.accepted() {
                            format!(
                                "answered with a 278 response (PayloadID {payload_id}), taken in"
                            )
                        } else {
                            format!(
                                "answered with a 278 response (PayloadID {payload_id}) that was not accepted (see its stored message)"
                            )
                        };
                        tracing::info!(case_id = %s.case_id, route = %s.route, accepted = result.accepted(), "x12 278 request answered by the payer");
                        self.finish(&s, SubmissionState::Sent, "sent", detail, None)
                            .await
                    }
                }
            }
            Err(DeliveryError::Retryable(reason)) => self.retry(&s, reason).await,
            Err(DeliveryError::Permanent(reason)) => {
                tracing::warn!(case_id = %s.case_id, route = %s.route, reason = %reason, "x12 278 request refused by the partner");
                self.finish(
                    &s,
                    SubmissionState::Failed,
                    "failed",
                    reason,
                    Some(REQUEST_FAILED),
                )
                .await
            }
        }
    }
}

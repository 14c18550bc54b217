//! Decision intake: the central platform posts a Case v1 `decision` for a
//! case; it is validated against the stored case, recorded durably (decision
//! row, case snapshot, `decided` event and queued write-back in one commit),
//! and only then acknowledged. The write-back worker is woken afterwards.
//!
//! A decision may carry an idempotency key ([`DecisionKey`]): a repeat with
//! the same key and request answers the first receipt and changes nothing,
//! so a sender may retry a decision whose answer it lost. The key, the
//! decision and the caller's audit row commit together (see
//! `gateway_store::Store::record_decision_once`).

use std::collections::BTreeSet;
use std::sync::Arc;

use gateway_core::GatewayError;
use gateway_core::case::{Case, Decision, Period};
use gateway_store::{
    AuditEntry, DecisionKey, DecisionReceipt, DecisionRecorded, Store, StoreError,
};
use tokio::sync::Notify;

use crate::metrics;

/// Why a decision was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecisionError {
    /// The case is not in the store.
    #[error("unknown case {0}")]
    UnknownCase(String),
    /// The decision is well-formed JSON but does not fit the case.
    #[error("invalid decision: {detail}")]
    Invalid {
        /// The offending member, as a JSON pointer (`/effective/end`).
        pointer: String,
        /// What is wrong (no PHI).
        detail: String,
    },
    /// The idempotency key was used before for a different request.
    #[error("the idempotency key was already used for a different decision")]
    KeyReused,
    /// The store could not commit (retry later).
    #[error("store unavailable: {0}")]
    Store(GatewayError),
}

/// Records decisions and wakes the write-back worker.
#[derive(Debug, Clone)]
pub struct DecisionIntake {
    store: Store,
    wake: Arc<Notify>,
}

impl DecisionIntake {
    /// Intake over `store`; `wake` is notified after each commit (share it
    /// with [`crate::WriteBackWorker`]).
    pub fn new(store: Store, wake: Arc<Notify>) -> Self {
        DecisionIntake { store, wake }
    }

    /// Validates and records `decision` for `case_id`. Returns after COMMIT.
    pub async fn submit(
        &self,
        case_id: &str,
        decision: Decision,
    ) -> Result<DecisionReceipt, DecisionError> {
        self.submit_once(case_id, decision, None, None)
            .await
            .map(|recorded| recorded.receipt().clone())
    }

    /// Like [`DecisionIntake::submit`], at most once per `key`, committing
    /// `audit` with the decision. A repeat of a committed key with the same
    /// request is [`DecisionRecorded::Replayed`] with the first receipt
    /// (checked before validation: a repeat is answered as the first was);
    /// with another request it is [`DecisionError::KeyReused`].
    pub async fn submit_once(
        &self,
        case_id: &str,
        decision: Decision,
        key: Option<DecisionKey>,
        audit: Option<AuditEntry>,
    ) -> Result<DecisionRecorded, DecisionError> {
        if let Some(key) = &key {
            match self
                .store
                .decision_for_key(key.clone(), case_id, &decision)
                .await
            {
                Ok(Some(first)) => return Ok(DecisionRecorded::Replayed(first)),
                Ok(None) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        let record = self
            .store
            .get_case(case_id)
            .await
            .map_err(|e| DecisionError::Store(e.into()))?
            .ok_or_else(|| DecisionError::UnknownCase(case_id.to_owned()))?;
        validate(&record.case, &decision)?;
        let recorded = self
            .store
            .record_decision_once(case_id, decision, key, audit)
            .await
            .map_err(store_error)?;
        let DecisionRecorded::New(receipt) = &recorded else {
            // Committed by a concurrent repeat between the lookup and the write.
            return Ok(recorded);
        };
        let cycle = jiff::Timestamp::now()
            .duration_since(record.created_at)
            .as_secs_f64()
            .max(0.0);
        metrics::decision_cycle(cycle);
        tracing::info!(
            case_id,
            decision_id = receipt.decision_id,
            event_id = %receipt.event_id,
            "Decision recorded."
        );
        self.wake.notify_one();
        Ok(recorded)
    }
}

fn store_error(e: StoreError) -> DecisionError {
    match e {
        StoreError::UnknownCase(id) => DecisionError::UnknownCase(id),
        StoreError::IdempotencyKeyReused { .. } => DecisionError::KeyReused,
        e => DecisionError::Store(e.into()),
    }
}

/// Checks a decision against its case: dates are ISO 8601 with start ≤ end,
/// per-line decisions name existing service lines once each, `decided_at` is
/// RFC 3339.
pub fn validate(case: &Case, decision: &Decision) -> Result<(), DecisionError> {
    check_period(decision.effective.as_ref(), "/effective")?;
    if let Some(at) = &decision.decided_at
        && at.parse::<jiff::Timestamp>().is_err()
    {
        return Err(invalid(
            "/decided_at",
            "must be an RFC 3339 instant with offset",
        ));
    }
    let lines: BTreeSet<u32> = case.services.iter().map(|s| s.line).collect();
    let mut seen = BTreeSet::new();
    for (i, line) in decision.service_decisions.iter().enumerate() {
        let pointer = format!("/service_decisions/{i}");
        if !lines.contains(&line.line) {
            return Err(invalid(
                &format!("{pointer}/line"),
                &format!("the case has no service line {}", line.line),
            ));
        }
        if !seen.insert(line.line) {
            return Err(invalid(
                &format!("{pointer}/line"),
                &format!("service line {} is decided twice", line.line),
            ));
        }
        check_period(line.effective.as_ref(), &format!("{pointer}/effective"))?;
    }
    Ok(())
}

fn check_period(period: Option<&Period>, pointer: &str) -> Result<(), DecisionError> {
    let Some(period) = period else {
        return Ok(());
    };
    let parse = |value: &Option<String>,
                 member: &str|
     -> Result<Option<jiff::civil::Date>, DecisionError> {
        match value {
            None => Ok(None),
            Some(text) => text
                .parse::<jiff::civil::Date>()
                .map(Some)
                .map_err(|_| invalid(&format!("{pointer}/{member}"), "must be a date YYYY-MM-DD")),
        }
    };
    let start = parse(&period.start, "start")?;
    let end = parse(&period.end, "end")?;
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        return Err(invalid(&format!("{pointer}/end"), "is before start"));
    }
    Ok(())
}

fn invalid(pointer: &str, detail: &str) -> DecisionError {
    DecisionError::Invalid {
        pointer: pointer.to_owned(),
        detail: format!("{pointer} {detail}"),
    }
}

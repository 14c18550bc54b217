//! The audit trail of the admin server: who read PHI, who replayed what, who
//! logged in (or failed to).
//!
//! *Why here and not in each handler:* the action names are a contract (the
//! dashboard counts cases touched by `message.replay`/`event.replay` to
//! compute automation coverage) and an access to PHI must be on record
//! **before** the PHI leaves the server: [`record`] commits first and fails
//! with 503 when the store cannot take the entry, so the caller never
//! returns unaudited PHI.

use super::AdminState;
use super::access::Principal;
use super::problem::Problem;

/// A read of PHI: raw message bytes, the parsed message, a case's patient fields.
pub const PHI_READ: &str = "phi.read";
/// A stored message queued for re-processing or its dead events re-queued.
pub const MESSAGE_REPLAY: &str = "message.replay";
/// A dead-lettered event re-queued for delivery.
pub const EVENT_REPLAY: &str = "event.replay";
/// A dead-lettered event let go undelivered, releasing its case.
pub const EVENT_SKIP: &str = "event.skip";
/// A decision accepted (committed with the decision; a repeat of an
/// idempotency key writes none: it changes nothing).
pub const DECISION: &str = "decision.record";
/// A decision refused (role, body, unknown case, reused idempotency key).
pub const DECISION_REFUSED: &str = "decision.refused";
/// A browser login.
pub const LOGIN: &str = "login";
/// A refused browser login.
pub const LOGIN_FAILED: &str = "login.failed";

/// Commits an audit entry for `principal`; 503 problem when it could not be
/// stored.
pub(crate) async fn record(
    state: &AdminState,
    principal: &Principal,
    action: &str,
    target: Option<String>,
    case_id: Option<String>,
    detail: Option<String>,
) -> Result<i64, Problem> {
    record_raw(state, &principal.name, action, target, case_id, detail).await
}

/// The audit entry of `principal` doing `action`, for a store call that
/// commits it together with the change it records.
pub(crate) fn entry(
    principal: &Principal,
    action: &str,
    target: Option<String>,
    case_id: Option<String>,
    detail: Option<String>,
) -> gateway_store::AuditEntry {
    gateway_store::AuditEntry {
        actor: principal.name.clone(),
        action: action.to_owned(),
        target,
        detail,
        case_id,
    }
}

/// Commits an audit entry for `actor`.
pub(crate) async fn record_raw(
    state: &AdminState,
    actor: &str,
    action: &str,
    target: Option<String>,
    case_id: Option<String>,
    detail: Option<String>,
) -> Result<i64, Problem> {
    state
        .store
        .audit(gateway_store::AuditEntry {
            actor: actor.to_owned(),
            action: action.to_owned(),
            target,
            detail,
            case_id,
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, action, "Audit entry not stored.");
            Problem::unavailable("the audit log could not be written; nothing was done")
        })
}

//! The two ways an operator releases a dead letter, which holds its case's
//! later events back (per-case order is never broken):
//!
//! * `POST /api/v1/dead-letters/{event_id}/replay` — the event goes back to
//!   pending, keeping its place in its case's order (audited `event.replay`);
//! * `POST /api/v1/dead-letters/{event_id}/skip` — the platform will never
//!   take it: the event stays dead, marked skipped, and the case's later events
//!   are delivered (audited `event.skip`).
//!
//! Each change commits together with its audit row, or neither does.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_store::{EventState, OutboxEvent, StoreError};
use serde_json::json;

use super::AdminState;
use super::access::{Principal, Role, require};
use super::audit;
use super::problem::Problem;

/// `POST /api/v1/dead-letters/{event_id}/replay` (operator).
pub async fn replay_dead_letter(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Response {
    let result = async {
        let (principal, event) = operator_and_dead_event(&state, &headers, &event_id).await?;
        let entry = entry(&principal, audit::EVENT_REPLAY, &event);
        state
            .store
            .requeue_event_audited(&event_id, entry)
            .await
            .map_err(|e| change_problem(e, &event_id))?;
        super::api::count_replay();
        tracing::info!(event_id = %event_id, principal = %principal.name, "Dead letter re-queued.");
        Ok::<_, Problem>(answer(StatusCode::ACCEPTED, &event, "pending"))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/v1/dead-letters/{event_id}/skip` (operator).
pub async fn skip_dead_letter(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Response {
    let result = async {
        let (principal, event) = operator_and_dead_event(&state, &headers, &event_id).await?;
        let entry = entry(&principal, audit::EVENT_SKIP, &event);
        state
            .store
            .skip_dead_event_audited(&event_id, entry)
            .await
            .map_err(|e| change_problem(e, &event_id))?;
        ::metrics::counter!(gateway_core::metrics::MANUAL_INTERVENTIONS_TOTAL, "reason" => "skip")
            .increment(1);
        tracing::info!(event_id = %event_id, principal = %principal.name, "Dead letter skipped.");
        Ok::<_, Problem>(answer(StatusCode::OK, &event, "skipped"))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The operator asking, and the event, which must be dead.
async fn operator_and_dead_event(
    state: &AdminState,
    headers: &HeaderMap,
    event_id: &str,
) -> Result<(Principal, OutboxEvent), Problem> {
    let principal = require(state, headers, Role::Operator).await?;
    let id = event_id.to_owned();
    let event = state
        .store
        .read(move |r| r.event(&id))
        .await
        .map_err(|e| Problem::unavailable(format!("store: {e}")))?
        .ok_or_else(|| Problem::not_found(format!("unknown event {event_id}")))?;
    if event.state != EventState::Dead {
        return Err(Problem::conflict(format!(
            "event {event_id} is {}, not dead",
            event.state.as_str()
        )));
    }
    Ok((principal, event))
}

fn entry(principal: &Principal, action: &str, event: &OutboxEvent) -> gateway_store::AuditEntry {
    audit::entry(
        principal,
        action,
        Some(format!("event:{}", event.id)),
        Some(event.case_id.clone()),
        Some(format!("after {} attempts", event.attempts)),
    )
}

/// A store refusal of the audited change as a problem (nothing was done).
fn change_problem(e: StoreError, event_id: &str) -> Problem {
    match e {
        StoreError::UnknownEvent(_) => Problem::not_found(format!("unknown event {event_id}")),
        StoreError::InvalidState(detail) => Problem::conflict(detail),
        e => {
            tracing::error!(error = %e, "Audited change not stored.");
            Problem::unavailable(format!("store: {e}; nothing was done"))
        }
    }
}

fn answer(status: StatusCode, event: &OutboxEvent, state: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "event_id": event.id,
            "case_id": event.case_id,
            "state": state,
        })),
    )
        .into_response()
}

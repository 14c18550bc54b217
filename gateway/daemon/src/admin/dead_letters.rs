//! `POST /api/v1/dead-letters/{event_id}/skip`: let one dead letter go.
//!
//! A dead-lettered event holds its case's later events back (per-case order is
//! never broken). When the platform will never take it — the event is wrong
//! for good and the case has moved on — an operator skips it: the event stays
//! dead, marked skipped, and the case's later events are delivered. The skip
//! and its audit row (`event.skip`) commit together or not at all. Replay is
//! in `api.rs` (with the other replays); this file holds only the skip so the
//! release of a held case has one obvious home.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_store::{EventState, StoreError};
use serde_json::json;

use super::AdminState;
use super::access::{Role, require};
use super::audit;
use super::problem::Problem;

/// The route (operator role, CSRF-guarded like every POST).
pub async fn skip_dead_letter(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(event_id): Path<String>,
) -> Response {
    let result = async {
        let principal = require(&state, &headers, Role::Operator).await?;
        let id = event_id.clone();
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
        let entry = audit::entry(
            &principal,
            audit::EVENT_SKIP,
            Some(format!("event:{event_id}")),
            Some(event.case_id.clone()),
            Some(format!("after {} attempts", event.attempts)),
        );
        match state.store.skip_dead_event_audited(&event_id, entry).await {
            Ok(_) => {}
            Err(StoreError::UnknownEvent(_)) => {
                return Err(Problem::not_found(format!("unknown event {event_id}")));
            }
            Err(StoreError::InvalidState(detail)) => return Err(Problem::conflict(detail)),
            Err(e) => {
                tracing::error!(error = %e, "Audited change not stored.");
                return Err(Problem::unavailable(format!(
                    "store: {e}; nothing was done"
                )));
            }
        }
        ::metrics::counter!("ehr_gateway_manual_interventions_total", "reason" => "skip")
            .increment(1);
        tracing::info!(event_id = %event_id, principal = %principal.name, "Dead letter skipped.");
        Ok::<_, Problem>(
            (
                StatusCode::OK,
                axum::Json(json!({
                    "event_id": event_id,
                    "case_id": event.case_id,
                    "state": "skipped",
                })),
            )
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

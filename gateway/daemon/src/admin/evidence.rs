//! Operator access to adapter evidence and the desktop "read now" trigger.
//!
//! * `GET /api/v1/evidence` (viewer): evidence metadata, newest first, without
//!   bodies; `?case_id=`, `?since=` (RFC 3339), `?limit=` (default 50, max 500).
//! * `GET /api/v1/evidence/{id}` (`phi:read`): the body itself — an aborted
//!   desktop playbook's PNG screenshot, which can show a chart. Every read is
//!   audited as `phi.read` *before* the bytes leave the server, and the answer
//!   is marked `Cache-Control: no-store`.
//! * `POST /api/v1/adapters/desktop/read` (operator, audited as
//!   `desktop.read`): runs the desktop read playbook now. Input is global, so
//!   while another playbook (a scheduled read, a write-back) holds the desktop
//!   the answer is **409** with a problem body and nothing is queued — the
//!   operator asks again; a queued trigger would fire at a moment nobody chose.
//!   A finished read answers 200 with the pipeline's verdict; an aborted one
//!   502 with the abort reason and the id of the evidence it left.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gateway_core::adapter::IntakeOutcome;
use gateway_desktop::bridge::ReadNow;
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use super::access::{self, Role};
use super::audit;
use super::problem::Problem;

/// The audit action of an operator-triggered desktop read.
pub const DESKTOP_READ: &str = "desktop.read";

/// The routes of this module (merged into the admin router).
pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/evidence", get(list))
        .route("/api/v1/evidence/{id}", get(get_one))
        .route("/api/v1/adapters/desktop/read", post(read_now))
}

fn store_problem(e: gateway_store::StoreError) -> Problem {
    tracing::error!(error = %e, "Evidence store query failed.");
    Problem::unavailable("the store could not be read")
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    case_id: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, Problem> {
    access::require(&state, &headers, Role::Viewer).await?;
    let since = match q.since.as_deref() {
        Some(s) => Some(s.parse::<jiff::Timestamp>().map_err(|_| {
            Problem::bad_request("`since` is not an RFC 3339 instant").at("/since")
        })?),
        None => None,
    };
    let filter = gateway_store::EvidenceFilter {
        case_id: q.case_id,
        since,
        until: None,
        limit: q.limit.unwrap_or(50).clamp(1, 500),
    };
    let rows = state
        .store
        .list_evidence(filter)
        .await
        .map_err(store_problem)?;
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let detail = r
                .detail
                .as_deref()
                .map(|d| serde_json::from_str(d).unwrap_or_else(|_| json!(d)));
            json!({
                "id": r.id,
                "at": r.at.to_string(),
                "adapter": r.adapter,
                "kind": r.kind,
                "case_id": r.case_id,
                "content_type": r.content_type,
                "size": r.size,
                "detail": detail,
                "href": format!("/api/v1/evidence/{}", r.id),
            })
        })
        .collect();
    Ok(Json(json!({ "evidence": items })).into_response())
}

async fn get_one(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let principal = access::require(&state, &headers, Role::PhiRead).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| Problem::not_found("no such evidence"))?;
    let Some(evidence) = state.store.get_evidence(id).await.map_err(store_problem)? else {
        return Err(Problem::not_found(format!("no evidence with id {id}")));
    };
    // On record before the bytes leave: a screenshot may show a chart.
    audit::record(
        &state,
        &principal,
        audit::PHI_READ,
        Some(format!("evidence:{id}")),
        evidence.record.case_id.clone(),
        Some(format!(
            "{} {} ({} bytes)",
            evidence.record.adapter, evidence.record.kind, evidence.record.size
        )),
    )
    .await?;
    let content_type = HeaderValue::from_str(&evidence.record.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        evidence.body,
    )
        .into_response())
}

async fn read_now(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let principal = access::require(&state, &headers, Role::Operator).await?;
    let Some(trigger) = state.desktop_read.clone() else {
        return Err(Problem::not_found(
            "the desktop adapter is not running with a read playbook",
        ));
    };
    audit::record(
        &state,
        &principal,
        DESKTOP_READ,
        Some("adapter:desktop".to_owned()),
        None,
        None,
    )
    .await?;
    match trigger.read_now().await {
        ReadNow::Done(outcome) => Ok(Json(outcome_json(&outcome)).into_response()),
        ReadNow::Busy => Err(Problem::new(
            StatusCode::CONFLICT,
            "desktop-busy",
            "Desktop busy",
            "another desktop playbook is running (input is global); nothing was queued: try again when it has finished",
        )),
        ReadNow::Aborted(failed) => {
            let evidence_id = failed
                .evidence
                .as_deref()
                .and_then(|e| e.strip_prefix("evidence:"))
                .and_then(|id| id.parse::<i64>().ok());
            Err(Problem::new(
                StatusCode::BAD_GATEWAY,
                "desktop-read-aborted",
                "Desktop read aborted",
                failed.abort.to_string(),
            )
            .with_extra(json!({
                "reason": failed.abort.reason.code(),
                "evidence_id": evidence_id,
                "evidence_href": evidence_id.map(|id| format!("/api/v1/evidence/{id}")),
            })))
        }
        ReadNow::NotConfigured => Err(Problem::not_found(
            "the desktop adapter has no read playbook configured",
        )),
        ReadNow::Failed(e) => {
            tracing::warn!(error = %e, "Desktop read failed.");
            Err(Problem::unavailable(format!(
                "the desktop read failed: {e}"
            )))
        }
    }
}

fn outcome_json(outcome: &IntakeOutcome) -> serde_json::Value {
    match outcome {
        IntakeOutcome::Accepted {
            receipt, case_id, ..
        } => json!({"outcome": "accepted", "message_id": receipt.message_id, "case_id": case_id}),
        IntakeOutcome::Duplicate { receipt } => {
            json!({"outcome": "duplicate", "message_id": receipt.message_id})
        }
        IntakeOutcome::Kept {
            receipt, reason, ..
        } => json!({"outcome": "kept", "message_id": receipt.message_id, "reason": reason}),
        IntakeOutcome::Rejected { receipt, error, .. } => json!({
            "outcome": "rejected", "message_id": receipt.message_id, "error": error.to_string()
        }),
    }
}

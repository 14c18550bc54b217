//! `/api/v1/`: decision intake, messages (search, show, replay), dead
//! letters (list, replay), cases, adapters and the audit log.
//!
//! *Why PHI is handled here and nowhere else:* raw message bytes, the parsed
//! message and a case's PHI fields (as `gateway_core::phi` classifies them)
//! leave the server only through these
//! handlers, only for a principal with `phi:read`, and only after the
//! `phi.read` audit entry is committed; everyone else gets a redaction
//! marker in their place. Replays are operator actions, audited
//! (`message.replay`, `event.replay`) and counted as manual interventions.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gateway_core::case::Decision;
use gateway_pipeline::DecisionError;
use gateway_store::pages::{AuditQuery, MessageSearch};
use gateway_store::{
    DecisionKey, MessageFilter, MessageState, OutboxEvent, ReplayOutcome, StoredMessage,
};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use super::access::{self, Principal, Role, require};
use super::audit;
use super::problem::Problem;

/// The channel name decision keys of the admin API are stored under.
pub const DECISION_CHANNEL: &str = "admin-api";

/// The header that makes a decision POST idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// `POST /api/v1/cases/{case_id}/decision`: 202 only after the decision is
/// committed. With an `Idempotency-Key` a repeat answers the first receipt
/// and changes nothing. Every decision accepted or refused by a known caller
/// leaves an audit row naming it (an accepted one in the same commit).
pub async fn post_decision(
    State(state): State<AdminState>,
    Path(case_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = match access::authenticate(&state, &headers) {
        Ok(principal) => principal,
        // No known actor to name: the bearer limiter bounds these.
        Err(problem) => return problem.into_response(),
    };
    match decision(&state, &principal, &case_id, &headers, &body).await {
        Ok(response) => response,
        Err(problem) => {
            refused(&state, &principal, &case_id, &problem).await;
            problem.into_response()
        }
    }
}

/// The `decision.refused` audit row (the refusal stands when it cannot be
/// written; that is logged).
async fn refused(state: &AdminState, principal: &Principal, case_id: &str, problem: &Problem) {
    let _ = audit::record(
        state,
        principal,
        audit::DECISION_REFUSED,
        Some(format!("case:{case_id}")),
        Some(case_id.to_owned()),
        Some(format!("{} {}", problem.status().as_u16(), problem.slug())),
    )
    .await;
}

/// The `Idempotency-Key` header: at most one, 1 to 255 visible ASCII
/// characters (an RFC 8941 string's quotes are taken off).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<DecisionKey>, Problem> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Problem::bad_request("give one Idempotency-Key header"));
    }
    let text = value.to_str().unwrap_or("").trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if text.is_empty() || text.len() > 255 || !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(Problem::bad_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (e.g. a UUID)",
        ));
    }
    Ok(Some(DecisionKey {
        channel: DECISION_CHANNEL.to_owned(),
        key: text.to_owned(),
    }))
}

async fn decision(
    state: &AdminState,
    principal: &Principal,
    case_id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    require(state, headers, Role::Operator).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !(media.eq_ignore_ascii_case("application/json") || media.ends_with("+json")) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "the body must be application/json: a Case v1 `decision` object",
        ));
    }
    let key = idempotency_key(headers)?;
    let decision = parse_decision(body)?;
    let entry = audit::entry(
        principal,
        audit::DECISION,
        None,
        Some(case_id.to_owned()),
        Some(format!(
            "{} {} an idempotency key",
            decision.status.case_status().as_str(),
            if key.is_some() { "with" } else { "without" }
        )),
    );
    match state
        .decisions
        .submit_once(case_id, decision, key, Some(entry))
        .await
    {
        Ok(recorded) => {
            let receipt = recorded.receipt();
            let location = format!("/api/v1/cases/{case_id}");
            let mut response = (
                StatusCode::ACCEPTED,
                axum::Json(json!({
                    "case_id": case_id,
                    "decision_id": receipt.decision_id,
                    "event_id": receipt.event_id,
                    "sequence": receipt.sequence,
                    "writeback": "pending",
                })),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            if recorded.replayed() {
                tracing::info!(
                    case_id,
                    decision_id = receipt.decision_id,
                    principal = %principal.name,
                    "Decision repeated with its idempotency key; answered the first receipt."
                );
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
            }
            Ok(response)
        }
        Err(DecisionError::UnknownCase(id)) => {
            Err(Problem::not_found(format!("unknown case {id}")))
        }
        Err(DecisionError::Invalid { pointer, detail }) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-decision",
            "Invalid decision",
            detail,
        )
        .at(pointer)),
        Err(DecisionError::KeyReused) => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency key reused",
            "this Idempotency-Key was already used for a different decision or case; \
             use a new key for a new decision",
        )),
        Err(DecisionError::Store(e)) => {
            tracing::error!(error = %e, "Decision not recorded: store unavailable.");
            Err(Problem::unavailable(
                "the decision could not be stored; nothing was recorded, retry later",
            ))
        }
    }
}

/// Parses the body: malformed JSON is 400; JSON that is not a valid `decision`
/// (unknown member, wrong type, unknown status) is 422 with the member's pointer.
fn parse_decision(body: &[u8]) -> Result<Decision, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let result: Result<Decision, _> = serde_path_to_error::deserialize(&mut de);
    let decision = match result {
        Ok(decision) => decision,
        Err(error) => {
            let pointer = pointer_of(error.path());
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(Problem::bad_request(format!(
                    "malformed JSON at line {} column {}",
                    inner.line(),
                    inner.column()
                )));
            }
            let detail = strip_position(&inner.to_string());
            let detail = if pointer.is_empty() {
                format!("not a Case v1 decision object: {detail}")
            } else {
                format!("{pointer}: {detail}")
            };
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-decision",
                "Invalid decision",
                detail,
            )
            .at(pointer));
        }
    };
    de.end().map_err(|e| {
        Problem::bad_request(format!(
            "trailing data after the JSON object at line {} column {}",
            e.line(),
            e.column()
        ))
    })?;
    Ok(decision)
}

fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            Segment::Enum { variant } => {
                out.push('/');
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// serde_json appends " at line 1 column 17"; the pointer says where instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// `GET /api/v1/adapters`: the started adapters' endpoints.
pub async fn adapters(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(problem) = require(&state, &headers, Role::Viewer).await {
        return problem.into_response();
    }
    axum::Json(json!({ "endpoints": *state.endpoints })).into_response()
}

/// Query of `GET /api/v1/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    state: Option<String>,
    /// Alias of `state` (the dashboard's word).
    status: Option<String>,
    control_id: Option<String>,
    adapter: Option<String>,
    profile: Option<String>,
    case_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before_id: Option<i64>,
    after_id: Option<i64>,
    limit: Option<usize>,
}

fn instant(name: &str, value: Option<&str>) -> Result<Option<i64>, Problem> {
    value
        .map(|v| {
            v.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|_| {
                    Problem::bad_request(format!(
                        "`{name}` must be an RFC 3339 instant with offset, e.g. 2026-11-22T10:00:00Z"
                    ))
                })
        })
        .transpose()
}

/// `GET /api/v1/messages`: search by state, control id, adapter, profile,
/// case and receive time; newest first, paged with `before_id` (or the
/// older `after_id`, oldest first).
pub async fn list_messages(
    State(state): State<AdminState>,
    headers: HeaderMap,
    query: Result<Query<MessagesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        require(&state, &headers, Role::Viewer).await?;
        let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let name = match (query.state.as_deref(), query.status.as_deref()) {
            (Some(a), Some(b)) if a != b => {
                return Err(Problem::bad_request(
                    "`state` and `status` are the same filter: give one",
                ));
            }
            (a, b) => a.or(b),
        };
        let state_filter = match name {
            None => None,
            Some(name) => Some(MessageState::from_name(name).ok_or_else(|| {
                Problem::bad_request(format!(
                    "unknown state `{name}`: use accepted, duplicate, rejected or error"
                ))
            })?),
        };
        let since_ms = instant("since", query.since.as_deref())?;
        let until_ms = instant("until", query.until.as_deref())?;
        if let Some(after_id) = query.after_id {
            // Paging forward (oldest first), as the CLI and older clients do.
            // That mode filters by state, control id and time only: refuse the
            // other filters rather than silently answer without them.
            let unsupported: Vec<&str> = [
                ("adapter", query.adapter.is_some()),
                ("profile", query.profile.is_some()),
                ("case_id", query.case_id.is_some()),
                ("before_id", query.before_id.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, given)| given.then_some(name))
            .collect();
            if !unsupported.is_empty() {
                return Err(Problem::bad_request(format!(
                    "`after_id` pages oldest first by state, control_id, since and until only; \
                     drop it to filter by {} (newest first, paged with `before_id`)",
                    unsupported.join(", ")
                )));
            }
            let filter = MessageFilter {
                state: state_filter,
                control_id: query.control_id,
                since: since_ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
                until: until_ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
                after_id: Some(after_id),
                limit: query.limit,
            };
            let messages = state
                .store
                .list_messages(filter)
                .await
                .map_err(store_problem)?;
            return Ok(axum::Json(json!({ "messages": messages })).into_response());
        }
        let page = state
            .store
            .search_messages(MessageSearch {
                state: state_filter,
                control_id: query.control_id,
                adapter: query.adapter,
                profile: query.profile,
                case_id: query.case_id,
                since_ms,
                until_ms,
                before_id: query.before_id,
                limit: query.limit,
            })
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>(axum::Json(page).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn store_problem(e: gateway_store::StoreError) -> Problem {
    Problem::unavailable(format!("store: {e}"))
}

/// A failed audited change: the change and its audit row were rolled back
/// together.
fn audited_store_problem(e: gateway_store::StoreError) -> Problem {
    tracing::error!(error = %e, "Audited change not stored.");
    Problem::unavailable(format!("store: {e}; nothing was done"))
}

/// The `outcome` word of a message replay (answer and audit detail).
fn replay_kind(outcome: &ReplayOutcome) -> &'static str {
    match outcome {
        ReplayOutcome::MessageQueued { .. } => "queued",
        ReplayOutcome::EventsRequeued { .. } => "events_requeued",
    }
}

fn parse_id(id: &str) -> Result<i64, Problem> {
    id.parse()
        .map_err(|_| Problem::bad_request(format!("message id `{id}` is not a number")))
}

/// The stored message `id`, or a 404 problem naming it.
async fn stored_message(state: &AdminState, id: i64) -> Result<StoredMessage, Problem> {
    state
        .store
        .get_message(id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("unknown message {id}")))
}

/// The marker that replaces PHI for a caller without `phi:read`.
fn redacted() -> serde_json::Value {
    json!({ "redacted": true, "reason": "needs the phi:read role" })
}

/// `GET /api/v1/messages/{id}`: metadata, diagnostics and events for any
/// viewer; the raw bytes and the parsed tree only for `phi:read` (audited
/// as `phi.read` before they are sent), otherwise a redaction marker.
pub async fn get_message(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let principal = require(&state, &headers, Role::Viewer).await?;
        let id = parse_id(&id)?;
        let message = stored_message(&state, id).await?;
        let events = state
            .store
            .read(move |r| r.message_events(id))
            .await
            .map_err(store_problem)?;
        let (raw, parsed) = if principal.has(Role::PhiRead) {
            audit::record(
                &state,
                &principal,
                audit::PHI_READ,
                Some(format!("message:{id}")),
                message.summary.case_id.clone(),
                Some("raw message bytes and parsed tree".to_owned()),
            )
            .await?;
            (raw_json(&message.raw), parsed_json(&message.raw))
        } else {
            (redacted(), redacted())
        };
        let mut response = axum::Json(json!({
            "message": message.summary,
            "diagnostics": message.diagnostics,
            "events": events.iter().map(event_json).collect::<Vec<_>>(),
            "raw": raw,
            "parsed": parsed,
        }))
        .into_response();
        // It may carry PHI: no browser or proxy keeps a copy.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok::<_, Problem>(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

fn raw_json(raw: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    json!({
        "size": raw.len(),
        "text": String::from_utf8_lossy(raw),
        "base64": base64::engine::general_purpose::STANDARD.encode(raw),
    })
}

fn parsed_json(raw: &[u8]) -> serde_json::Value {
    let Some(format) = crate::formats::detect(raw) else {
        return json!({ "format": null, "tree": null, "diagnostics": [], "note": "format not recognised" });
    };
    match crate::formats::parse(format, raw) {
        Ok(doc) => json!({
            "format": format.as_str(),
            "tree": crate::formats::render_tree(&doc),
            "diagnostics": doc.diagnostics,
        }),
        Err(diagnostics) => json!({
            "format": format.as_str(),
            "tree": null,
            "diagnostics": diagnostics,
        }),
    }
}

/// Counts a manual replay (`ehr_gateway_manual_interventions_total{reason="replay"}`).
pub(super) fn count_replay() {
    ::metrics::counter!(gateway_core::metrics::MANUAL_INTERVENTIONS_TOTAL, "reason" => "replay")
        .increment(1);
}

/// `POST /api/v1/messages/{id}/replay` (operator): a rejected or failed
/// message is queued for re-processing with the current profiles; an
/// accepted one has its dead events re-queued. Audited as `message.replay`.
pub async fn replay_message(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let principal = require(&state, &headers, Role::Operator).await?;
        let id = parse_id(&id)?;
        let message = stored_message(&state, id).await?;
        let was = message.summary.state.as_str();
        let entry = audit::entry(
            &principal,
            audit::MESSAGE_REPLAY,
            Some(format!("message:{id}")),
            message.summary.case_id.clone(),
            None,
        );
        // The replay and its audit row commit together, or neither does.
        let outcome = match state
            .store
            .replay_message_audited(id, move |outcome| gateway_store::AuditEntry {
                detail: Some(format!("{} (was {was})", replay_kind(outcome))),
                ..entry
            })
            .await
        {
            Ok(outcome) => outcome,
            Err(gateway_store::StoreError::UnknownMessage(_)) => {
                return Err(Problem::not_found(format!("unknown message {id}")));
            }
            Err(gateway_store::StoreError::InvalidState(detail)) => {
                return Err(Problem::conflict(detail));
            }
            Err(e) => return Err(audited_store_problem(e)),
        };
        let kind = replay_kind(&outcome);
        let event_ids = match &outcome {
            ReplayOutcome::MessageQueued { .. } => Vec::new(),
            ReplayOutcome::EventsRequeued { event_ids } => event_ids.clone(),
        };
        count_replay();
        tracing::info!(message_id = id, principal = %principal.name, outcome = kind, "Message replay requested.");
        Ok::<_, Problem>(
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({
                    "message_id": id,
                    "outcome": kind,
                    "event_ids": event_ids,
                })),
            )
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Query of `GET /api/v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/dead-letters`: dead-lettered events, oldest first.
pub async fn dead_letters(
    State(state): State<AdminState>,
    headers: HeaderMap,
    query: Result<Query<DeadLettersQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        require(&state, &headers, Role::Viewer).await?;
        let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let (dead, total) = state
            .store
            .dead_letter_page(query.after, query.limit)
            .await
            .map_err(store_problem)?;
        Ok::<_, Problem>(
            axum::Json(json!({ "dead_letters": dead, "total": total })).into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/cases/{id}`: the case with its events; the fields
/// `gateway_core::phi` classifies as PHI (patient, member ids, services,
/// diagnoses, notes, decision note, …) only for `phi:read` (audited as
/// `phi.read` before the answer, which is sent `no-store`).
pub async fn get_case(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
) -> Response {
    let result = async {
        let principal = require(&state, &headers, Role::Viewer).await?;
        let record = state
            .store
            .get_case(&case_id)
            .await
            .map_err(store_problem)?
            .ok_or_else(|| Problem::not_found(format!("unknown case {case_id}")))?;
        let id = case_id.clone();
        let events = state
            .store
            .read(move |r| r.case_events(&id))
            .await
            .map_err(store_problem)?;
        let mut case = serde_json::to_value(&record.case)
            .map_err(|e| Problem::unavailable(format!("case {case_id}: {e}")))?;
        let mut redactions = Vec::new();
        if principal.has(Role::PhiRead) {
            audit::record(
                &state,
                &principal,
                audit::PHI_READ,
                Some(format!("case:{case_id}")),
                Some(case_id.clone()),
                Some("case PHI fields".to_owned()),
            )
            .await?;
        } else {
            redactions = redact_case(&mut case);
        }
        Ok::<_, Problem>(
            axum::Json(json!({
                "case": case,
                "redacted": redactions,
                "adapter": record.adapter,
                "profile": record.profile,
                "last_sequence": record.last_sequence,
                "created_at": record.created_at.to_string(),
                "updated_at": record.updated_at.to_string(),
                "events": events.iter().map(event_json).collect::<Vec<_>>(),
            }))
            .into_response(),
        )
        .map(|mut response: Response| {
            // It may carry PHI: no browser or proxy keeps a copy.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        })
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The least-PHI view of a case for a caller without `phi:read`: every
/// field `gateway_core::phi` classifies as PHI (or does not classify) is
/// replaced by the redaction marker; returns the JSON pointers replaced.
fn redact_case(case: &mut serde_json::Value) -> Vec<String> {
    gateway_core::phi::least_phi_view(case, &redacted())
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQueryParams {
    action: Option<String>,
    case_id: Option<String>,
    actor: Option<String>,
    before_id: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/v1/audit` (operator): the audit log, newest first.
pub async fn audit_log(
    State(state): State<AdminState>,
    headers: HeaderMap,
    query: Result<Query<AuditQueryParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        require(&state, &headers, Role::Operator).await?;
        let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let limit = query
            .limit
            .unwrap_or(100)
            .clamp(1, gateway_store::pages::MAX_PAGE);
        let entries = state
            .store
            .audit_entries(AuditQuery {
                action: query.action,
                case_id: query.case_id,
                actor: query.actor,
                before_id: query.before_id,
                limit: Some(limit),
            })
            .await
            .map_err(store_problem)?;
        let next_before_id = (entries.len() == limit)
            .then(|| entries.last().map(|e| e.id))
            .flatten();
        let entries: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "at": format!("{:.3}", e.at),
                    "actor": e.entry.actor,
                    "action": e.entry.action,
                    "target": e.entry.target,
                    "detail": e.entry.detail,
                    "case_id": e.entry.case_id,
                })
            })
            .collect();
        Ok::<_, Problem>(
            axum::Json(json!({ "entries": entries, "next_before_id": next_before_id }))
                .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The OpenAPI description of `/api/v1`.
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

/// `GET /api/v1/openapi.yaml` (no token: it describes, it reveals nothing).
pub async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml; charset=utf-8"),
    );
    response
}

fn event_json(event: &OutboxEvent) -> serde_json::Value {
    json!({
        "id": event.id,
        "sequence": event.sequence,
        "type": event.event_type.as_str(),
        "state": event.state.as_str(),
        "attempts": event.attempts,
        "last_error": event.last_error,
        "message_id": event.message_id,
        "decision_id": event.decision_id,
        "created_at": event.created_at.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_problems_are_classified() {
        assert_eq!(
            parse_decision(b"{\"status\":")
                .map_err(|p| p.status())
                .err(),
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            parse_decision(br#"{"status":"aproved"}"#)
                .map_err(|p| p.status())
                .err(),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(
            parse_decision(br#"{"status":"approved","colour":1}"#)
                .map_err(|p| p.status())
                .err(),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert!(parse_decision(br#"{"status":"approved"}"#).is_ok());
    }
}

//! `/api/v1/`: decision intake and read-only views of messages and cases.
//!
//! Raw message bytes are never returned here (they are PHI and need the
//! `phi:read` scope issue 9 adds); messages are shown by their metadata,
//! state, reason and diagnostics.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gateway_core::case::Decision;
use gateway_pipeline::DecisionError;
use gateway_store::{MessageFilter, MessageState, OutboxEvent};
use serde::Deserialize;
use serde_json::json;

use super::AdminState;
use super::access::{Role, require};
use super::problem::Problem;

/// `POST /api/v1/cases/{case_id}/decision`: 202 only after the decision is committed.
pub async fn post_decision(
    State(state): State<AdminState>,
    Path(case_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match decision(&state, &case_id, &headers, &body).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn decision(
    state: &AdminState,
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
    let decision = parse_decision(body)?;
    match state.decisions.submit(case_id, decision).await {
        Ok(receipt) => {
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
    control_id: Option<String>,
    after_id: Option<i64>,
    limit: Option<usize>,
}

/// `GET /api/v1/messages`.
pub async fn list_messages(
    State(state): State<AdminState>,
    headers: HeaderMap,
    query: Result<Query<MessagesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        require(&state, &headers, Role::Viewer).await?;
        let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let state_filter = match query.state.as_deref() {
            None => None,
            Some(name) => Some(MessageState::from_name(name).ok_or_else(|| {
                Problem::bad_request(format!(
                    "unknown state `{name}`: use accepted, duplicate, rejected or error"
                ))
            })?),
        };
        let filter = MessageFilter {
            state: state_filter,
            control_id: query.control_id,
            after_id: query.after_id,
            limit: query.limit,
            ..MessageFilter::default()
        };
        let messages = state
            .store
            .list_messages(filter)
            .await
            .map_err(|e| Problem::unavailable(format!("store: {e}")))?;
        Ok::<_, Problem>(axum::Json(json!({ "messages": messages })).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/messages/{id}`.
pub async fn get_message(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        require(&state, &headers, Role::Viewer).await?;
        let id: i64 = id
            .parse()
            .map_err(|_| Problem::bad_request(format!("message id `{id}` is not a number")))?;
        let message = state
            .store
            .get_message(id)
            .await
            .map_err(|e| Problem::unavailable(format!("store: {e}")))?
            .ok_or_else(|| Problem::not_found(format!("unknown message {id}")))?;
        let events = state
            .store
            .read(move |r| r.message_events(id))
            .await
            .map_err(|e| Problem::unavailable(format!("store: {e}")))?;
        Ok::<_, Problem>(
            axum::Json(json!({
                "message": message.summary,
                "diagnostics": message.diagnostics,
                "events": events.iter().map(event_json).collect::<Vec<_>>(),
            }))
            .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/cases/{id}`.
pub async fn get_case(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
) -> Response {
    let result = async {
        require(&state, &headers, Role::Viewer).await?;
        let record = state
            .store
            .get_case(&case_id)
            .await
            .map_err(|e| Problem::unavailable(format!("store: {e}")))?
            .ok_or_else(|| Problem::not_found(format!("unknown case {case_id}")))?;
        let id = case_id.clone();
        let events = state
            .store
            .read(move |r| r.case_events(&id))
            .await
            .map_err(|e| Problem::unavailable(format!("store: {e}")))?;
        Ok::<_, Problem>(
            axum::Json(json!({
                "case": record.case,
                "adapter": record.adapter,
                "profile": record.profile,
                "last_sequence": record.last_sequence,
                "created_at": record.created_at.to_string(),
                "updated_at": record.updated_at.to_string(),
                "events": events.iter().map(event_json).collect::<Vec<_>>(),
            }))
            .into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
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

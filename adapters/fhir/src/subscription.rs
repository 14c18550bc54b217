//! Optional rest-hook endpoint: the EHR tells us something changed, we poll.
//!
//! Vendors that support FHIR Subscriptions (athenahealth's R4 backport,
//! id-only payloads) POST a notification Bundle to a URL we register. The
//! notification only *triggers* a poll: the poll's watermark logic decides what
//! is new, so a lost, repeated or forged notification can cause at most an
//! extra poll, never a missed or duplicated order. Notifications must carry the
//! shared bearer token configured on the Subscription (`channel.header`); it
//! is required and compared in constant time (`subtle`), so neither a missing
//! token nor response timing lets a network peer trigger polls.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::Notify;

/// Shared state of the notification route.
#[derive(Clone)]
struct HookState {
    trigger: Arc<Notify>,
    token: Arc<str>,
}

/// The axum router for `POST {path}`; each accepted notification wakes the
/// poller through `trigger`. `token` must arrive as
/// `Authorization: Bearer <token>`.
pub fn router(path: &str, trigger: Arc<Notify>, token: &str) -> Router {
    Router::new()
        .route(path, post(notify))
        .with_state(HookState {
            trigger,
            token: Arc::from(token),
        })
}

/// Whether `given` is the expected token, in time independent of where they
/// differ (only the length may show).
fn token_matches(given: Option<&str>, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())))
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({"type": "about:blank", "title": title,
                                  "status": status.as_u16(), "detail": detail});
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn notify(State(state): State<HookState>, headers: HeaderMap, body: Bytes) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !token_matches(given, &state.token) {
        return problem(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "missing or wrong bearer token",
        );
    }
    if !body.is_empty() {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.get("resourceType").and_then(|t| t.as_str()) == Some("Bundle") => {}
            Ok(_) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Not a notification",
                    "body must be a FHIR Bundle",
                );
            }
            Err(_) => return problem(StatusCode::BAD_REQUEST, "Not JSON", "body is not JSON"),
        }
    }
    tracing::debug!("subscription notification received; poll triggered");
    state.trigger.notify_one();
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::token_matches;

    #[test]
    fn only_the_exact_token_matches() {
        let expected = "0123456789abcdef0123456789abcdef";
        assert!(token_matches(Some(expected), expected));
        assert!(!token_matches(None, expected));
        assert!(!token_matches(Some(""), expected));
        assert!(!token_matches(
            Some("0123456789abcdef0123456789abcdeF"),
            expected
        ));
        assert!(!token_matches(Some(&expected[..31]), expected));
    }
}

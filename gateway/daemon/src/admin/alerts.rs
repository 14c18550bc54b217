//! `GET /api/v1/alerts` (role viewer): what holds now and the latest
//! transitions, the same data the webhook receives. Lives with the admin
//! application so the alerting engine (`crate::alerts`) knows nothing of it.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AdminState;
use super::access::{Role, require};

/// `GET /api/v1/alerts`: `{"active": [ActiveAlert…], "recent": [AlertEvent…]}`.
pub async fn list(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    if let Err(problem) = require(&state, &headers, Role::Viewer).await {
        return problem.into_response();
    }
    axum::Json(json!({
        "active": state.alerts.active(),
        "recent": state.alerts.recent(),
    }))
    .into_response()
}

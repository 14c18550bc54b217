//! `GET /api/v1/alerts` (role viewer): what holds now and the latest
//! transitions, the same data the webhook receives.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::admin::AdminState;
use crate::admin::access::{Role, require};

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

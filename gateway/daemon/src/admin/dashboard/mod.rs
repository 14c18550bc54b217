//! The operations dashboard: `GET /` serves one self-contained HTML page
//! (inline CSS and JS, an SVG chart drawn by the script, no external assets)
//! that polls `GET /api/v1/stats` every few seconds.
//!
//! *Why server-rendered plus polling:* the page must work from a practice's
//! server room with no internet access and no build step; the figures come
//! from cheap indexed store aggregates ([`gateway_store::stats`]), so polling
//! is simpler and sturdier than a push channel.
//!
//! Access: the page needs a session with the `viewer` role — without one it
//! redirects to `/login?next=/`; the JSON answers 401/403 problems like the
//! rest of `/api/v1`. The page embeds the session's CSRF token for the
//! **Replay** button (`POST /api/v1/dead-letters/{event_id}/replay`, role
//! operator, enforced by that endpoint). No PHI: the stats carry ids, names of
//! practices/sites/adapters, counts and durations only.

mod page;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gateway_store::stats::{OpsStats, StatsQuery};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::access::{self, Role};
use super::problem::Problem;

/// Default window of `GET /api/v1/stats` (one hour).
pub const DEFAULT_WINDOW_SECS: u64 = 3600;

/// `GET /`: the dashboard for a viewer session; others go to the login page.
pub async fn page(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let principal = match access::authenticate(&state, &headers) {
        Ok(principal) => principal,
        Err(_) => return redirect_to_login(),
    };
    if !principal.has(Role::Viewer) {
        return Problem::forbidden(format!(
            "`{}` lacks the `viewer` role the dashboard needs",
            principal.name
        ))
        .into_response();
    }
    let html = page::render(
        &principal.name,
        &access::csrf_token(&principal),
        principal.has(Role::Operator),
    );
    let mut response = (StatusCode::OK, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Everything is inline; nothing may load from elsewhere.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn redirect_to_login() -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/login?next=/"));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Query of `GET /api/v1/stats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// Window in seconds (60 s … 7 days; default one hour).
    window: Option<u64>,
}

/// The body of `GET /api/v1/stats`: the store's figures plus adapter health.
#[derive(Debug, Serialize)]
pub struct DashboardStats {
    /// Store aggregates for the window.
    #[serde(flatten)]
    pub stats: OpsStats,
    /// Each started adapter endpoint with whether its adapter is up.
    pub adapters: Vec<AdapterHealth>,
}

/// One adapter endpoint and its health.
#[derive(Debug, Serialize)]
pub struct AdapterHealth {
    /// Adapter name.
    pub adapter: String,
    /// Profile, when it has one.
    pub profile: Option<String>,
    /// `mllp`, `soap`, `poll`, …
    pub transport: String,
    /// Bound address of a listener.
    pub address: Option<String>,
    /// `ehr_gateway_adapter_up{adapter}`: `None` before it is first reported.
    pub up: Option<bool>,
}

/// `GET /api/v1/stats` (role viewer).
pub async fn stats(
    State(state): State<AdminState>,
    headers: HeaderMap,
    query: Result<Query<StatsParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        access::require(&state, &headers, Role::Viewer).await?;
        let Query(params) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
        let mut q = StatsQuery::last(params.window.unwrap_or(DEFAULT_WINDOW_SECS));
        q.dead_letter_limit = 20;
        let stats = state
            .store
            .ops_stats(q)
            .await
            .map_err(|e| Problem::unavailable(format!("store: {e}")))?;
        let up = adapter_up(&state.metrics.render());
        let adapters = state
            .endpoints
            .iter()
            .map(|e| AdapterHealth {
                adapter: e.adapter.clone(),
                profile: e.profile.clone(),
                transport: e.transport.clone(),
                address: e.address.clone(),
                up: up
                    .iter()
                    .find(|(name, _)| *name == e.adapter)
                    .map(|(_, v)| *v),
            })
            .collect();
        let mut response = axum::Json(DashboardStats { stats, adapters }).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok::<_, Problem>(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `(adapter, up)` from the `ehr_gateway_adapter_up{adapter="…"} V` lines of
/// the Prometheus text (the gauge the daemon's supervisor sets).
fn adapter_up(text: &str) -> Vec<(String, bool)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("ehr_gateway_adapter_up{")?;
            let (labels, value) = rest.rsplit_once('}')?;
            let name = labels.split(',').find_map(|l| {
                l.trim()
                    .strip_prefix("adapter=\"")
                    .and_then(|v| v.strip_suffix('"'))
            })?;
            let value: f64 = value.trim().parse().ok()?;
            Some((name.to_owned(), value >= 1.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::adapter_up;

    #[test]
    fn adapter_up_is_read_from_the_prometheus_text() {
        let text = "# TYPE ehr_gateway_adapter_up gauge\n\
                    ehr_gateway_adapter_up{adapter=\"hl7v2\"} 1\n\
                    ehr_gateway_adapter_up{adapter=\"fhir\",x=\"y\"} 0\n\
                    ehr_gateway_messages_total{adapter=\"hl7v2\"} 3\n\
                    ehr_gateway_adapter_up{adapter=\"broken\"} nope\n";
        assert_eq!(
            adapter_up(text),
            vec![("hl7v2".to_owned(), true), ("fhir".to_owned(), false)]
        );
    }
}

//! The operations dashboard: `GET /` serves one self-contained HTML page
//! (inline CSS and JS, an SVG chart drawn by the script, no external assets)
//! that polls `GET /api/v1/stats` every few seconds; `GET /messages` is its
//! message search page (`messages.html`), filled from `GET /api/v1/messages`
//! and `GET /api/v1/messages/{id}`.
//!
//! *Why server-rendered plus polling:* the page must work from a practice's
//! server room with no internet access and no build step; the figures come
//! from cheap indexed store reads shaped by [`super::queries::stats`], so polling
//! is simpler and sturdier than a push channel.
//!
//! Access: the page needs a session with the `viewer` role — without one it
//! redirects to `/login?next=/`; the JSON answers 401/403 problems like the
//! rest of `/api/v1`. The page embeds the session's CSRF token for the
//! **Replay** button (`POST /api/v1/dead-letters/{event_id}/replay`, role
//! operator, enforced by that endpoint). No PHI: the stats carry ids, names of
//! practices/sites/adapters, counts and durations only.
//!
//! The messages page lists metadata only (ids, times, adapter, profile, type,
//! control id, state, case id, error reason). Its detail view shows what
//! `GET /api/v1/messages/{id}` answers the session's principal: the raw
//! message and parsed tree only when the API sent them — i.e. the principal
//! has `phi:read` and the `phi.read` audit entry is committed — otherwise a
//! note that they need `phi:read`. The page itself holds no PHI; it never
//! reads messages any other way. Its **Replay** button posts
//! `POST /api/v1/messages/{id}/replay` (operator, audited `message.replay`).

mod page;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde::{Deserialize, Serialize};

use super::AdminState;
use super::access::{self, Role};
use super::problem::Problem;
use super::queries::stats::{OpsStats, StatsQuery, ops_stats};

/// Default window of `GET /api/v1/stats` (one hour).
pub const DEFAULT_WINDOW_SECS: u64 = 3600;

/// `GET /`: the dashboard for a viewer session; others go to the login page.
pub async fn page(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let principal = match viewer_session(&state, &headers, "/", "the dashboard") {
        Ok(principal) => principal,
        Err(response) => return *response,
    };
    html(page::render(
        &principal.name,
        &access::session_csrf(&state, &headers).unwrap_or_default(),
        principal.has(Role::Operator),
    ))
}

/// `GET /messages`: the message search page for a viewer session; others go
/// to the login page (which returns them here, search included).
pub async fn messages(
    State(state): State<AdminState>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let here = uri
        .path_and_query()
        .map_or("/messages", axum::http::uri::PathAndQuery::as_str);
    let principal = match viewer_session(&state, &headers, here, "the messages page") {
        Ok(principal) => principal,
        Err(response) => return *response,
    };
    html(page::render_messages(
        &principal.name,
        &access::session_csrf(&state, &headers).unwrap_or_default(),
        principal.has(Role::Operator),
        principal.has(Role::PhiRead),
    ))
}

/// The caller of an HTML page: a principal with the viewer role, or the
/// response to send instead (the login page for `here` without a session,
/// 403 for a principal without viewer).
fn viewer_session(
    state: &AdminState,
    headers: &HeaderMap,
    here: &str,
    what: &str,
) -> Result<access::Principal, Box<Response>> {
    let principal =
        access::authenticate(state, headers).map_err(|_| Box::new(redirect_to_login(here)))?;
    if !principal.has(Role::Viewer) {
        return Err(Box::new(
            Problem::forbidden(format!(
                "`{}` lacks the `viewer` role {what} needs",
                principal.name
            ))
            .into_response(),
        ));
    }
    Ok(principal)
}

/// A rendered page with the headers every dashboard page carries.
fn html(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
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

/// `303` to `/login?next=…` that brings the browser back to `here` (a
/// local path with its query) after signing in.
fn redirect_to_login(here: &str) -> Response {
    let location = login_location(here);
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `/login?next=/` for a bare path, the percent-encoded path and query otherwise.
fn login_location(here: &str) -> String {
    if here.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/') {
        format!("/login?next={here}")
    } else {
        let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
        format!("/login?next={next}")
    }
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
    /// Where events go and, for JetStream, the connection and publish latency.
    pub platform: PlatformLink,
}

/// The forwarder's link to the platform, as the dashboard shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct PlatformLink {
    /// `file`, `http` or `nats`.
    pub sink: &'static str,
    /// `sink = "nats"`: `ehr_gateway_nats_connected` (`None` before it is set).
    pub connected: Option<bool>,
    /// `sink = "nats"`: publishes acknowledged since start.
    pub publishes: Option<u64>,
    /// `sink = "nats"`: publish → acknowledgement, the histogram bucket bound
    /// under which half of the publishes since start fell (seconds).
    pub publish_p50_seconds: Option<f64>,
    /// The same for 99 % of them.
    pub publish_p99_seconds: Option<f64>,
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
            .read(move |r| ops_stats(r, &q))
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
        let platform = platform_link(state.readiness.sink.name(), &state.metrics.render());
        let mut response = axum::Json(DashboardStats {
            stats,
            adapters,
            platform,
        })
        .into_response();
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

/// The platform link from the sink's name and the Prometheus text: the
/// `ehr_gateway_nats_connected` gauge and the `ehr_gateway_nats_publish_seconds`
/// histogram's cumulative buckets (a quantile is reported as the upper bound
/// of the bucket it falls in, as Prometheus' own buckets allow).
fn platform_link(sink: &'static str, text: &str) -> PlatformLink {
    let mut link = PlatformLink {
        sink,
        connected: None,
        publishes: None,
        publish_p50_seconds: None,
        publish_p99_seconds: None,
    };
    if sink != "nats" {
        return link;
    }
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("ehr_gateway_nats_connected ") {
            link.connected = value.trim().parse::<f64>().ok().map(|v| v >= 1.0);
        } else if let Some(value) = line.strip_prefix("ehr_gateway_nats_publish_seconds_count ") {
            link.publishes = value.trim().parse::<f64>().ok().map(|v| v as u64);
        } else if let Some(rest) =
            line.strip_prefix("ehr_gateway_nats_publish_seconds_bucket{le=\"")
        {
            let Some((bound, count)) = rest.split_once("\"}") else {
                continue;
            };
            let (Ok(bound), Ok(count)) = (bound.parse::<f64>(), count.trim().parse::<f64>()) else {
                continue;
            };
            buckets.push((bound, count as u64));
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let quantile = |q: f64| -> Option<f64> {
        let total = link.publishes.filter(|n| *n > 0)?;
        let rank = (q * total as f64).ceil() as u64;
        buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map(|(bound, _)| *bound)
            .filter(|bound| bound.is_finite())
    };
    link.publish_p50_seconds = quantile(0.5);
    link.publish_p99_seconds = quantile(0.99);
    link
}

#[cfg(test)]
mod tests {
    use super::{adapter_up, login_location, platform_link};

    #[test]
    fn the_platform_link_reads_the_nats_gauge_and_latency_buckets() {
        let text = "ehr_gateway_nats_connected 1\n\
                    ehr_gateway_nats_publish_seconds_bucket{le=\"0.001\"} 60\n\
                    ehr_gateway_nats_publish_seconds_bucket{le=\"0.005\"} 98\n\
                    ehr_gateway_nats_publish_seconds_bucket{le=\"0.1\"} 100\n\
                    ehr_gateway_nats_publish_seconds_bucket{le=\"+Inf\"} 100\n\
                    ehr_gateway_nats_publish_seconds_sum 0.2\n\
                    ehr_gateway_nats_publish_seconds_count 100\n";
        let link = platform_link("nats", text);
        assert_eq!(link.connected, Some(true));
        assert_eq!(link.publishes, Some(100));
        assert_eq!(link.publish_p50_seconds, Some(0.001));
        assert_eq!(link.publish_p99_seconds, Some(0.1));
        let down = platform_link("nats", "ehr_gateway_nats_connected 0\n");
        assert_eq!((down.connected, down.publishes), (Some(false), None));
        assert_eq!(down.publish_p99_seconds, None);
        // Other sinks carry no JetStream figures even if the text had some.
        let http = platform_link("http", text);
        assert_eq!(
            (http.sink, http.connected, http.publishes),
            ("http", None, None)
        );
    }

    #[test]
    fn the_login_brings_the_browser_back_with_its_search() {
        assert_eq!(login_location("/"), "/login?next=/");
        assert_eq!(login_location("/messages"), "/login?next=/messages");
        assert_eq!(
            login_location("/messages?control_id=A B&state=rejected"),
            "/login?next=%2Fmessages%3Fcontrol_id%3DA+B%26state%3Drejected"
        );
    }

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

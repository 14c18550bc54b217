//! The admin HTTP server (axum): health, readiness, Prometheus metrics,
//! decision intake and the read-only admin API.
//!
//! `/healthz`, `/readyz` and `/metrics` answer without a token (the listen
//! address limits who reaches them); everything under `/api/v1/` needs the
//! configured bearer token. With no token configured the API answers 401 to
//! everyone rather than being open. Every error is an RFC 9457 problem.

mod api;
mod health;
pub mod problem;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use gateway_pipeline::DecisionIntake;
use gateway_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

pub use health::{Readiness, SinkProbe};
use problem::Problem;

use crate::settings::Secret;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The store (reads for the API, writes through the decision intake).
    pub store: Store,
    /// Records decisions and wakes the write-back worker.
    pub decisions: DecisionIntake,
    /// The bearer token for `/api/v1/*`; `None` disables the API.
    pub token: Option<Secret>,
    /// Readiness checks.
    pub readiness: Arc<Readiness>,
    /// The Prometheus recorder's handle.
    pub metrics: PrometheusHandle,
    /// What the started adapters listen on or poll (`GET /api/v1/adapters`).
    pub endpoints: Arc<Vec<AdapterEndpoint>>,
}

/// One adapter endpoint as the admin API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterEndpoint {
    /// Adapter name.
    pub adapter: String,
    /// Profile the endpoint maps with, when it has one.
    pub profile: Option<String>,
    /// `mllp`, `soap`, `rest-hook`, `poll`, `file-drop`, `write-back`, `ui`.
    pub transport: String,
    /// Bound address of a listener.
    pub address: Option<String>,
    /// Human description.
    pub description: String,
}

impl AdapterEndpoint {
    /// Describes `endpoint` of `adapter`; the transport is derived from
    /// whether it listens and what the adapter calls it.
    pub fn new(adapter: &str, endpoint: &crate::adapters::Endpoint) -> Self {
        let text = endpoint.description.to_ascii_lowercase();
        let transport = if text.contains("write-back") {
            "write-back"
        } else if adapter == "hl7v2" && endpoint.addr.is_some() {
            "mllp"
        } else if text.contains("soap") {
            "soap"
        } else if text.contains("rest-hook") {
            "rest-hook"
        } else if text.contains("file drop") {
            "file-drop"
        } else if text.contains("poll") {
            "poll"
        } else if adapter == "desktop" {
            "ui"
        } else {
            adapter
        };
        AdapterEndpoint {
            adapter: adapter.to_owned(),
            profile: endpoint.profile.clone(),
            transport: transport.to_owned(),
            address: endpoint.addr.map(|a| a.to_string()),
            description: endpoint.description.clone(),
        }
    }
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/cases/{case_id}/decision", post(api::post_decision))
        .route("/api/v1/cases/{case_id}", get(api::get_case))
        .route("/api/v1/messages", get(api::list_messages))
        .route("/api/v1/adapters", get(api::adapters))
        .route("/api/v1/messages/{id}", get(api::get_message))
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled; requests in
/// flight are finished first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Binds the admin listener (a clear error names the address).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for the admin server on {addr}"))
}

/// Checks the `Authorization: Bearer …` header against the configured token.
pub(crate) fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), Problem> {
    let Some(expected) = &state.token else {
        return Err(Problem::unauthorized(
            "the admin API is disabled: no admin token is configured",
        ));
    };
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Err(Problem::unauthorized("missing bearer token"));
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| Problem::unauthorized("the Authorization header is not a bearer token"))?;
    if constant_time_eq(presented.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(Problem::unauthorized("invalid bearer token"))
    }
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}

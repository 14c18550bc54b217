//! The admin HTTP server (axum): health, readiness, Prometheus metrics,
//! decision intake and the read-only admin API.
//!
//! `/healthz`, `/readyz` and `/metrics` answer without a token (the listen
//! address limits who reaches them; `/metrics` takes an optional token);
//! everything under `/api/v1/` needs a token with the right role, as a bearer
//! token or through the browser session `/login` starts (see [`access`]).
//! With no token configured the API answers 401 to everyone rather than
//! being open; failed bearer attempts are limited per client address. Every error is an RFC 9457 problem.
//!
//! The listener is `gateway_http_listener`'s: HTTPS when `[admin.tls]` is
//! set (optionally with client certificates), a connection cap and header,
//! body, idle and TLS handshake timeouts from `[admin.limits]`, so idle or
//! slow peers cannot exhaust the process's file descriptors. A non-loopback
//! address without TLS is refused by the configuration check unless
//! `admin.allow_plaintext = true`.
//!
//! **One entry**: [`router`] over an [`AdminState`] (the daemon serves it
//! with [`serve`]); tests drive the router in-process (`src/admin/tests.rs`).
//! Invariants: every `/api/v1` handler asks [`access::require`] first; every
//! error is a problem body ([`problem`]); reads of PHI are audited
//! ([`audit`]); the handlers see the rest of the daemon only through
//! [`AdminState`] (store, decision intake, readiness, alerts, the started
//! adapters' endpoints and handles).

pub mod access;
mod alerts;
mod api;
pub mod audit;
mod dashboard;
mod dead_letters;
mod evidence;
mod health;
pub mod problem;
pub mod queries;
pub mod session;
pub mod x12_request;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use gateway_pipeline::DecisionIntake;
use gateway_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

pub use health::{Readiness, SinkProbe};
use problem::Problem;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The store (reads for the API, writes through the decision intake).
    pub store: Store,
    /// Records decisions and wakes the write-back worker.
    pub decisions: DecisionIntake,
    /// The configured tokens with their roles, and the browser sessions.
    pub access: Arc<access::Access>,
    /// Readiness checks.
    pub readiness: Arc<Readiness>,
    /// The Prometheus recorder's handle.
    pub metrics: PrometheusHandle,
    /// What the started adapters listen on or poll (`GET /api/v1/adapters`).
    pub endpoints: Arc<Vec<AdapterEndpoint>>,
    /// Alerts that hold now and recent transitions (`GET /api/v1/alerts`, dashboard).
    pub alerts: crate::alerts::AlertState,
    /// Writes and records 278 requests for cases (`POST
    /// /api/v1/cases/{id}/x12-request`); `None` without an x12 adapter.
    pub x12_request: Option<Arc<x12_request::X12RequestWriter>>,
    /// The desktop adapter's on-demand read (`POST
    /// /api/v1/adapters/desktop/read`); `None` without a read playbook.
    pub desktop_read: Option<Arc<gateway_desktop::ReadTrigger>>,
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
    /// Describes `endpoint` of `adapter`; the transport is the endpoint's
    /// declared one.
    pub fn new(adapter: &str, endpoint: &crate::adapters::Endpoint) -> Self {
        AdapterEndpoint {
            adapter: adapter.to_owned(),
            profile: endpoint.profile.clone(),
            transport: endpoint.transport.as_str().to_owned(),
            address: endpoint.addr.map(|a| a.to_string()),
            description: endpoint.description.clone(),
        }
    }
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/messages", get(dashboard::messages))
        .route("/api/v1/stats", get(dashboard::stats))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(
            "/metrics",
            get(health::metrics).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                access::metrics_guard,
            )),
        )
        .route("/api/v1/cases/{case_id}/decision", post(api::post_decision))
        .route(
            "/api/v1/cases/{case_id}/x12-request",
            post(x12_request::post_x12_request),
        )
        .route("/api/v1/cases/{case_id}", get(api::get_case))
        .route("/api/v1/messages", get(api::list_messages))
        .route("/api/v1/adapters", get(api::adapters))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/messages/{id}", get(api::get_message))
        .route("/api/v1/messages/{id}/replay", post(api::replay_message))
        .route("/api/v1/dead-letters", get(api::dead_letters))
        .route(
            "/api/v1/dead-letters/{event_id}/replay",
            post(dead_letters::replay_dead_letter),
        )
        .route(
            "/api/v1/dead-letters/{event_id}/skip",
            post(dead_letters::skip_dead_letter),
        )
        .route("/api/v1/audit", get(api::audit_log))
        .route("/api/v1/openapi.yaml", get(api::openapi))
        .route("/api/v1/session", get(session::whoami))
        .merge(evidence::routes())
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::csrf_guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::bearer_limit,
        ))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled; requests in
/// flight are finished first. The listener's TLS, connection cap and timeouts
/// come from `options` (`[admin.tls]`, `[admin.limits]`; see
/// `gateway_http_listener`), which also puts the peer address into each
/// request for the per-client login limit.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    options: gateway_http_listener::Options,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    gateway_http_listener::serve(listener, router(state), options, async move {
        shutdown.cancelled().await
    })
    .await
}

/// The admin listener's options from `[admin]`: TLS when configured (the
/// files were checked with the configuration; a failure here names the key).
pub fn listener_options(
    settings: &crate::settings::AdminSettings,
) -> anyhow::Result<gateway_http_listener::Options> {
    use anyhow::Context as _;
    let tls = match &settings.tls {
        Some(files) => Some(
            gateway_http_listener::tls::server_config(files)
                .context("admin.tls: cannot set up TLS")?,
        ),
        None => None,
    };
    Ok(gateway_http_listener::Options {
        name: "admin",
        tls,
        limits: settings.limits,
    })
}

/// Binds the admin listener (a clear error names the address).
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for the admin server on {addr}"))
}

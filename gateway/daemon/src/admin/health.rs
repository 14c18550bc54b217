//! `/healthz` (the process answers), `/readyz` (it can do its job: the store
//! is readable, its writer alive and its directory writable, and it is not
//! draining; an unreachable platform is only a warning, since intake goes on) and `/metrics` (Prometheus text from the recorder's handle).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AdminState;
use super::problem::Problem;

/// What readiness depends on.
#[derive(Debug)]
pub struct Readiness {
    /// Set when a drain starts: load balancers stop sending work.
    pub draining: AtomicBool,
    /// The data directory holding the store file.
    pub data_dir: PathBuf,
    /// Where the forwarder delivers.
    pub sink: SinkProbe,
}

/// How to tell whether the sink is reachable.
#[derive(Debug, Clone)]
pub enum SinkProbe {
    /// The file sink's directory must be writable.
    Directory(PathBuf),
    /// A TCP connection to the platform's host and port must open.
    Tcp {
        /// `host:port`.
        authority: String,
    },
    /// The NATS client must be connected (it reconnects by itself).
    Nats(gateway_forward::nats::async_nats::Client),
}

impl SinkProbe {
    /// The sink's name as the config spells it (`[forward] sink`).
    pub fn name(&self) -> &'static str {
        match self {
            SinkProbe::Directory(_) => "file",
            SinkProbe::Tcp { .. } => "http",
            SinkProbe::Nats(_) => "nats",
        }
    }
}

impl Readiness {
    /// Runs every check; `Ok` with the check names and warnings, or the
    /// failures. An unreachable platform is a warning, not a failure: intake
    /// still works (the outbox holds what it cannot deliver) and must keep
    /// being routed to the gateway during an outage.
    pub async fn check(
        &self,
        state: &AdminState,
    ) -> Result<(Vec<&'static str>, Vec<String>), Vec<String>> {
        let mut failures = Vec::new();
        let mut warnings = Vec::new();
        if self.draining.load(Ordering::SeqCst) {
            failures.push("draining: shutting down".to_owned());
        }
        if let gateway_store::WriterState::Died(why) = state.store.writer_state() {
            failures.push(format!("store: the writer died: {why}"));
        }
        if let Err(e) = state.store.outbox_stats().await {
            failures.push(format!("store: not readable: {e}"));
        }
        match tokio::time::timeout(Duration::from_secs(2), state.store.check_writable()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("store: not writable: {e}")),
            Err(_) => failures.push("store: write lock not available within 2 s".to_owned()),
        }
        if let Err(e) = probe_directory(&self.data_dir).await {
            failures.push(format!("store: data directory not writable: {e}"));
        }
        match &self.sink {
            SinkProbe::Directory(dir) => {
                if let Err(e) = probe_directory(dir).await {
                    failures.push(format!(
                        "sink: directory {} not writable: {e}",
                        dir.display()
                    ));
                }
            }
            SinkProbe::Tcp { authority } => {
                let connect = tokio::net::TcpStream::connect(authority.as_str());
                match tokio::time::timeout(Duration::from_secs(2), connect).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => warnings.push(format!(
                        "sink: {authority} unreachable: {e}; events wait in the outbox"
                    )),
                    Err(_) => warnings.push(format!(
                        "sink: {authority} did not answer within 2 s; events wait in the outbox"
                    )),
                }
            }
            SinkProbe::Nats(client) => {
                use gateway_forward::nats::async_nats::connection::State;
                match client.connection_state() {
                    State::Connected => {}
                    state => warnings.push(format!(
                        "sink: NATS {state:?}; reconnecting with backoff, events wait in the outbox"
                    )),
                }
            }
        }
        if failures.is_empty() {
            Ok((vec!["store", "sink"], warnings))
        } else {
            Err(failures)
        }
    }
}

/// Creates and removes a probe file in `dir`.
async fn probe_directory(dir: &std::path::Path) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let probe = dir.join(format!(".ready-probe-{}", std::process::id()));
    tokio::fs::write(&probe, b"ok").await?;
    tokio::fs::remove_file(&probe).await
}

/// `GET /healthz`.
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<AdminState>) -> Response {
    match state.readiness.check(&state).await {
        Ok((checks, warnings)) => {
            axum::Json(json!({ "status": "ready", "checks": checks, "warnings": warnings }))
                .into_response()
        }
        Err(failures) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            failures.join("; "),
        )
        .with_extra(json!({ "failures": failures }))
        .into_response(),
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AdminState>) -> Response {
    // Also refreshed every second by `telemetry::outbox_gauges`; exact at scrape.
    if let Ok(stats) = state.store.outbox_stats().await {
        crate::telemetry::publish_outbox(&stats);
    }
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

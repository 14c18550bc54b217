//! The admin web application in-process: [`super::router`] driven with
//! tower's `oneshot` over a real store file (no listener, no binary), for
//! the representative contracts — a request without a token is refused with
//! a problem body, bad input answers a problem body naming the parameter,
//! and the adapter list is what the started adapters' endpoints say.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gateway_pipeline::DecisionIntake;
use gateway_registry::Transport;
use gateway_store::{Store, StoreOptions};
use tower::ServiceExt as _;

use super::access::{Access, NamedToken, Role};
use super::problem::PROBLEM_JSON;
use super::{AdapterEndpoint, AdminState, Readiness, SinkProbe, router};
use crate::adapters::Endpoint;
use crate::settings::Secret;

const VIEWER: &str = "synthetic-viewer-token-0123456789abcdef";

async fn state(dir: &std::path::Path) -> (AdminState, Store) {
    let store = Store::open(dir.join("gateway.sqlite"), StoreOptions::default())
        .await
        .expect("store");
    let access = Access::new(
        vec![NamedToken {
            name: "dashboard".to_owned(),
            secret: Secret::new(VIEWER),
            roles: vec![Role::Viewer],
        }],
        None,
        Duration::from_secs(3600),
        10,
    );
    let endpoint = Endpoint {
        description: "MLLP listener (profile epic)".to_owned(),
        transport: Transport::Mllp,
        addr: Some(([127, 0, 0, 1], 2575).into()),
        profile: Some("epic".to_owned()),
    };
    let state = AdminState {
        store: store.clone(),
        decisions: DecisionIntake::new(store.clone(), Arc::new(tokio::sync::Notify::new())),
        access: Arc::new(access),
        readiness: Arc::new(Readiness {
            draining: false.into(),
            data_dir: dir.to_owned(),
            sink: SinkProbe::Directory(dir.to_owned()),
        }),
        metrics: crate::telemetry::prometheus(),
        endpoints: Arc::new(vec![AdapterEndpoint::new("hl7v2", &endpoint)]),
        alerts: crate::alerts::AlertState::new(),
        x12_request: None,
        desktop_read: None,
    };
    (state, store)
}

async fn get(state: &AdminState, uri: &str, token: Option<&str>) -> (StatusCode, String, Vec<u8>) {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router(state.clone())
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, content_type, body.to_vec())
}

#[tokio::test]
async fn the_api_refuses_a_request_without_a_token_with_a_problem() {
    let dir = tempfile::tempdir().expect("tmp");
    let (state, store) = state(dir.path()).await;
    let (status, content_type, body) = get(&state, "/api/v1/adapters", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(content_type, PROBLEM_JSON);
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(problem["status"], 401, "{problem}");
    // A wrong token is refused the same way.
    let (status, _, _) = get(&state, "/api/v1/adapters", Some("wrong-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    store.close().await;
}

#[tokio::test]
async fn bad_input_answers_a_problem_naming_the_parameter() {
    let dir = tempfile::tempdir().expect("tmp");
    let (state, store) = state(dir.path()).await;
    let (status, content_type, body) =
        get(&state, "/api/v1/messages?since=yesterday", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type, PROBLEM_JSON);
    let problem: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("`since`")),
        "{problem}"
    );
    store.close().await;
}

#[tokio::test]
async fn the_adapter_list_is_the_started_endpoints_with_their_declared_transport() {
    let dir = tempfile::tempdir().expect("tmp");
    let (state, store) = state(dir.path()).await;
    let (status, _, body) = get(&state, "/api/v1/adapters", Some(VIEWER)).await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        list,
        serde_json::json!({"endpoints": [{
            "adapter": "hl7v2",
            "profile": "epic",
            "transport": "mllp",
            "address": "127.0.0.1:2575",
            "description": "MLLP listener (profile epic)",
        }]})
    );
    store.close().await;
}

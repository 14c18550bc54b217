//! The admin server over real HTTP against the real binary: token checks,
//! RFC 9457 problems, 202 only after the decision is in the store; health,
//! readiness and metrics; `messages list --json` while the daemon runs.

mod support;

use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

const PROBLEM: &str = "application/problem+json";

async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(content_type, PROBLEM);
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"].as_str().is_some_and(|t| !t.is_empty()));
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn decision_intake_over_http() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(dir.path(), "");
    let case_id = support::seed(&dir.path().join("data"));
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::new();
    let url = daemon.url(&format!("/api/v1/cases/{case_id}/decision"));
    let good = r#"{"status": "approved", "authorization_number": "AUTH0001",
                  "effective": {"start": "2026-12-01", "end": "2027-02-28"}}"#;

    // No token, wrong token.
    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .body(good)
        .send()
        .await
        .expect("send");
    let body = problem(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["detail"], "missing bearer token");
    let r = http
        .post(&url)
        .bearer_auth("wrong")
        .header("content-type", "application/json")
        .body(good)
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNAUTHORIZED).await;

    let post = |body: &'static str| {
        http.post(&url)
            .bearer_auth(support::TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    // Malformed JSON: 400.
    let body = problem(
        post("{\"status\": ").await.expect("send"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("malformed JSON"),
        "{body}"
    );
    // Not a decision: 422 with the member's pointer.
    let body = problem(
        post(r#"{"status": "aproved"}"#).await.expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["pointer"], "/status", "{body}");
    let body = problem(
        post(
            r#"{"status": "approved", "effective": {"start": "2026-12-01", "end": "2026-01-01"}}"#,
        )
        .await
        .expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["pointer"], "/effective/end", "{body}");
    let body = problem(
        post(r#"{"status": "approved", "service_decisions": [{"line": 9, "status": "denied"}]}"#)
            .await
            .expect("send"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("no service line 9"),
        "{body}"
    );

    // Unknown case: 404.
    let r = http
        .post(daemon.url("/api/v1/cases/case-ffffffffffffffffffffffff/decision"))
        .bearer_auth(support::TOKEN)
        .header("content-type", "application/json")
        .body(good)
        .send()
        .await
        .expect("send");
    let body = problem(r, StatusCode::NOT_FOUND).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("unknown case"),
        "{body}"
    );

    // Accepted: 202, and already in the store when the answer arrives.
    let r = post(good).await.expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let receipt: Value = r.json().await.expect("json");
    let decision_id = receipt["decision_id"].as_i64().expect("decision id");
    let reader =
        gateway_store::Reader::open(dir.path().join("data/gateway.sqlite")).expect("reader");
    let record = reader.get_case(&case_id).expect("read").expect("case");
    assert_eq!(record.case.status.as_str(), "approved");
    assert_eq!(
        record
            .case
            .decision
            .as_ref()
            .and_then(|d| d.authorization_number.as_deref()),
        Some("AUTH0001")
    );
    let (state, _) = reader
        .writeback_state(decision_id)
        .expect("read")
        .expect("decision row");
    assert_eq!(
        state,
        gateway_store::WriteBackState::Pending,
        "no write-back registered for hl7v2 here: stays pending"
    );
    let events = reader.case_events(&case_id).expect("events");
    assert_eq!(
        events.last().map(|e| e.event_type.as_str()),
        Some("decided")
    );

    // The read-only API shows it.
    let case: Value = http
        .get(daemon.url(&format!("/api/v1/cases/{case_id}")))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(case["case"]["decision"]["status"], "approved");
    let r = http
        .get(daemon.url("/api/v1/messages"))
        .send()
        .await
        .expect("send");
    problem(r, StatusCode::UNAUTHORIZED).await;
    let list: Value = http
        .get(daemon.url("/api/v1/messages?state=rejected"))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(list["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["messages"][0]["control_id"], "MSG0002");

    // No adapter configured here: no endpoints.
    let adapters: Value = http
        .get(daemon.url("/api/v1/adapters"))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(adapters["endpoints"], serde_json::json!([]));

    // Health, readiness, metrics need no token.
    let r = http.get(daemon.url("/healthz")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let r = http.get(daemon.url("/readyz")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let metrics = http
        .get(daemon.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("ehr_gateway_decision_cycle_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ehr_gateway_outbox_depth"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_stays_ready_and_warns_when_the_platform_is_unreachable() {
    // An HTTP sink pointing at a port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(
        dir.path(),
        &format!(
            "[forward]\nsink = \"http\"\n[forward.http]\nurl = \"http://127.0.0.1:{port}/events\"\n"
        ),
    );
    let daemon = support::Daemon::start(&config);
    // Intake still works during a platform outage: the gateway stays ready
    // (load balancers keep routing to it) and says what is wrong.
    let r = reqwest::get(daemon.url("/readyz")).await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap_or("")
            .contains(&format!("127.0.0.1:{port} unreachable")),
        "{body}"
    );
}

#[test]
fn messages_list_json_while_the_daemon_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(dir.path(), "");
    support::seed(&dir.path().join("data"));
    let _daemon = support::Daemon::start(&config);
    let data_dir = dir.path().join("data");
    let out = Command::new(support::bin())
        .args(["messages", "list", "--json", "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        for key in [
            "id",
            "sender",
            "control_id",
            "message_type",
            "state",
            "received_at",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    let rejected = lines
        .iter()
        .find(|l| l["state"] == "rejected")
        .expect("rejected row");
    assert_eq!(rejected["error_reason"], "unsupported message type ORM^O01");

    // The same through --config, and `show`.
    let out = Command::new(support::bin())
        .args(["messages", "list", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("MSG0002"));
    let id = rejected["id"].as_i64().expect("id").to_string();
    let out = Command::new(support::bin())
        .args(["messages", "show", &id, "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("run");
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains("unsupported message type"), "{shown}");
    assert!(!shown.contains("MSH|"), "raw bytes only with --raw");

    // Replay through the store API while the daemon runs: queued.
    let out = Command::new(support::bin())
        .args(["messages", "replay", &id, "--data-dir"])
        .arg(&data_dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("queued"));
    // Audited in the same commit, by the operator's login.
    let audit = gateway_store::Reader::open(data_dir.join("gateway.sqlite"))
        .and_then(|reader| reader.audit_log(20))
        .expect("audit log");
    assert!(
        audit.iter().any(|a| a.entry.action == "message.replay"
            && a.entry.target.as_deref() == Some(id.as_str())
            && a.entry.actor.starts_with("cli:")),
        "{audit:?}"
    );
}

/// With an MLLP listener configured: `/api/v1/adapters` names it, a real
/// order sent over MLLP is acknowledged AA, and `/metrics` counts it exactly.
#[tokio::test(flavor = "multi_thread")]
async fn adapters_endpoint_and_exact_metrics_after_known_traffic() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(
        dir.path(),
        "[[hl7v2.listeners]]\nlisten = \"127.0.0.1:0\"\nprofile = \"epic\"\n",
    );
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::new();
    let adapters: Value = http
        .get(daemon.url("/api/v1/adapters"))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let endpoint = adapters["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["transport"] == "mllp"))
        .cloned()
        .unwrap_or_else(|| panic!("no MLLP endpoint in {adapters}"));
    assert_eq!(endpoint["profile"], "epic");
    let address = endpoint["address"].as_str().expect("address").to_owned();

    // The same order twice: accepted, then a recognised duplicate.
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let mut frame = vec![0x0b];
        frame.extend_from_slice(&support::epic_order());
        frame.extend_from_slice(&[0x1c, 0x0d]);
        stream.write_all(&frame).await.expect("send");
        let mut ack = Vec::new();
        let mut buf = [0u8; 4096];
        while !ack.ends_with(&[0x1c, 0x0d]) {
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("ack in time")
                .expect("read");
            assert!(n > 0, "connection closed before the ACK");
            ack.extend_from_slice(&buf[..n]);
        }
        let ack = String::from_utf8_lossy(&ack);
        assert!(ack.contains("MSA|AA|"), "{ack}");
    }

    let metrics = http
        .get(daemon.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    for (outcome, n) in [("accepted", 1), ("duplicate", 1)] {
        let line = format!(
            "ehr_gateway_messages_total{{adapter=\"hl7v2\",profile=\"epic\",outcome=\"{outcome}\"}} {n}\n"
        );
        assert!(metrics.contains(&line), "{line} missing in\n{metrics}");
    }
    assert!(
        metrics.contains("ehr_gateway_cases_total{profile=\"epic\",status=\"requested\"} 1\n"),
        "{metrics}"
    );
}

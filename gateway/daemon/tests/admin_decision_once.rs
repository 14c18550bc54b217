//! Decisions exactly once, end to end on the real binary: an Epic order over
//! MLLP makes a case; the same decision POSTed twice with one
//! `Idempotency-Key` gets the same answer twice and leaves one decision row,
//! one `decided` event, one audit row naming the actor, and one ORU write-back
//! received by a real third-party MLLP peer (the python `hl7` package's server,
//! installed by `.ci/install.d/30-hl7-peers.sh`). The same key with another
//! decision is refused (and audited); without a key each POST is new.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

const OPERATOR: &str = "platform-decisions-token-synthetic-0001";

/// The python `hl7` MLLP server answering AA; prints `RECV <MSH-10>`.
struct Peer {
    child: Child,
    port: u16,
    received: mpsc::Receiver<String>,
}

impl Peer {
    fn start() -> Option<Peer> {
        let have = Command::new("python3")
            .args(["-c", "import hl7.mllp"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            assert!(
                std::env::var_os("CI").is_none(),
                "python3 package hl7 is not installed (run .ci/install.d/30-hl7-peers.sh)"
            );
            eprintln!("SKIPPED: python3 package hl7 is not installed");
            return None;
        }
        let mut child = Command::new("python3")
            .arg(support::repo_root().join("adapters/hl7v2/tests/peers/py_server.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the python hl7 peer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the peer did not start");
        let port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected peer line {first}"));
        Some(Peer {
            child,
            port,
            received: rx,
        })
    }

    /// The next control id the peer reports (generous bound).
    fn next(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = self
                .received
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("no write-back reached the peer");
            if let Some(id) = line.strip_prefix("RECV ") {
                return id.trim().to_owned();
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one MLLP frame and returns the ACK text.
fn send_mllp(addr: &str, message: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut frame = vec![0x0b];
    frame.extend_from_slice(message);
    frame.extend_from_slice(&[0x1c, 0x0d]);
    stream.write_all(&frame).expect("write");
    let mut ack = Vec::new();
    let mut byte = [0u8; 1];
    while !ack.ends_with(&[0x1c, 0x0d]) {
        let n = stream.read(&mut byte).expect("read ack");
        assert_eq!(n, 1, "connection closed before the ACK");
        ack.push(byte[0]);
    }
    String::from_utf8_lossy(&ack).into_owned()
}

fn count(db: &std::path::Path, sql: &str, case_id: &str) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open");
    conn.query_row(sql, [case_id], |r| r.get(0)).expect("count")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_key_one_decision_one_event_one_writeback_one_audit_row() {
    let Some(peer) = Peer::start() else { return };
    let dir = tempfile::tempdir().expect("tmp");
    let token_file = dir.path().join("platform.token");
    std::fs::write(&token_file, format!("{OPERATOR}\n")).expect("token");
    let config = support::write_config(
        dir.path(),
        &format!(
            r#"[[admin.tokens]]
name = "platform-decisions"
token_file = "{token}"
roles = ["operator"]

[[hl7v2.listeners]]
listen = "127.0.0.1:0"
profile = "epic"

[[hl7v2.writeback]]
profile = "epic"
[hl7v2.writeback.sender]
address = "127.0.0.1:{port}"
"#,
            token = token_file.display(),
            port = peer.port,
        ),
    );
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::new();

    // A real Epic order over MLLP makes the case.
    let adapters = support::get_json(&http, daemon.url("/api/v1/adapters"), support::TOKEN).await;
    let mllp = adapters["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["transport"] == "mllp"))
        .and_then(|e| e["address"].as_str())
        .expect("the MLLP listener's address")
        .to_owned();
    let ack = send_mllp(&mllp, &support::epic_order());
    assert!(ack.contains("MSA|AA"), "{ack}");
    let messages = support::get_json(
        &http,
        daemon.url("/api/v1/messages?state=accepted"),
        support::TOKEN,
    )
    .await;
    let case_id = messages["messages"][0]["case_id"]
        .as_str()
        .expect("case id")
        .to_owned();

    let url = daemon.url(&format!("/api/v1/cases/{case_id}/decision"));
    let post = |key: Option<&str>, body: &str| {
        let mut request = http
            .post(&url)
            .bearer_auth(OPERATOR)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        request.send()
    };
    let approved = r#"{"status": "approved", "authorization_number": "AUTH-SYN-0001"}"#;
    let key = "6f1c2a9e-0b7d-4c1e-9a57-3f0e2d8c4b10";

    let first = post(Some(key), approved).await.expect("send");
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");
    let second = post(Some(key), approved).await.expect("send");
    assert_eq!(second.status(), StatusCode::ACCEPTED);
    assert_eq!(
        second
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let second: Value = second.json().await.expect("json");
    assert_eq!(first, second, "a repeat answers the first receipt");

    // The same key for another decision: refused, nothing recorded.
    let reused = post(Some(key), r#"{"status": "denied"}"#)
        .await
        .expect("send");
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = reused.json().await.expect("json");
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("idempotency-key-reused")),
        "{problem}"
    );

    let db = dir.path().join("data/gateway.sqlite");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM decisions WHERE case_id = ?1",
            &case_id
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE case_id = ?1 AND type = 'decided'",
            &case_id
        ),
        1
    );

    // One write-back at the peer: the first one, and the next one it gets is
    // the marker decision posted without a key afterwards (write-backs of a
    // case go out in order, so a duplicate would come before the marker).
    let written = peer.next();
    let marker = post(
        None,
        r#"{"status": "approved", "authorization_number": "AUTH-SYN-0002"}"#,
    )
    .await
    .expect("send");
    assert_eq!(marker.status(), StatusCode::ACCEPTED);
    let marker: Value = marker.json().await.expect("json");
    assert_ne!(marker["decision_id"], first["decision_id"]);
    let next = peer.next();
    assert_ne!(next, written, "the keyed decision was written back twice");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM decisions WHERE case_id = ?1",
            &case_id
        ),
        2,
        "without a key a POST is a new decision"
    );

    // Audit: one decision.record for the keyed decision, naming the actor;
    // the refused reuse is on record too.
    let audit = support::get_json(
        &http,
        daemon.url(&format!("/api/v1/audit?case_id={case_id}&limit=100")),
        support::TOKEN,
    )
    .await;
    let entries = audit["entries"].as_array().expect("entries");
    let keyed_target = format!("decision:{}", first["decision_id"]);
    let keyed: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "decision.record" && e["target"] == keyed_target.as_str())
        .collect();
    assert_eq!(keyed.len(), 1, "{audit}");
    assert_eq!(keyed[0]["actor"], "platform-decisions", "{audit}");
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == "decision.record")
            .count(),
        2,
        "the keyed decision and the marker: {audit}"
    );
    let refused: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "decision.refused")
        .collect();
    assert_eq!(refused.len(), 1, "{audit}");
    assert_eq!(refused[0]["actor"], "platform-decisions");
    assert!(
        refused[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("idempotency-key-reused")),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_decision_names_its_actor_and_a_bad_key_is_400() {
    let dir = tempfile::tempdir().expect("tmp");
    let viewer_file = dir.path().join("viewer.token");
    std::fs::write(&viewer_file, "viewer-token-synthetic-000000000077\n").expect("token");
    let config = support::write_config(
        dir.path(),
        &format!(
            "[[admin.tokens]]\nname = \"view-desk\"\ntoken_file = \"{}\"\nroles = [\"viewer\"]\n",
            viewer_file.display()
        ),
    );
    let case_id = support::seed(&dir.path().join("data"));
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::new();
    let url = daemon.url(&format!("/api/v1/cases/{case_id}/decision"));
    let body = r#"{"status": "approved"}"#;

    let r = http
        .post(&url)
        .bearer_auth("viewer-token-synthetic-000000000077")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    for bad in ["", "has space", &"k".repeat(256)] {
        let r = http
            .post(&url)
            .bearer_auth(support::TOKEN)
            .header("content-type", "application/json")
            .header("idempotency-key", bad)
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "key {bad:?}");
    }
    let audit = support::get_json(
        &http,
        daemon.url("/api/v1/audit?action=decision.refused&limit=100"),
        support::TOKEN,
    )
    .await;
    let entries = audit["entries"].as_array().expect("entries");
    assert!(
        entries.iter().any(|e| e["actor"] == "view-desk"
            && e["detail"].as_str().is_some_and(|d| d.starts_with("403"))),
        "{audit}"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["actor"] == "admin"
                && e["detail"].as_str().is_some_and(|d| d.starts_with("400")))
            .count(),
        3,
        "{audit}"
    );
    let db = dir.path().join("data/gateway.sqlite");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM decisions WHERE case_id = ?1",
            &case_id
        ),
        0
    );
}

//! X12 end to end through the real binary: a 278 request dropped into the
//! inbound folder becomes a case; a decision posted to the admin API becomes a
//! 278 response written to the outbound folder *and* delivered over loopback
//! HTTPS (CAQH CORE SOAP) to the requester's endpoint — first unreachable (the
//! write-back worker retries), then up. Control numbers come from the store:
//! the response's ISA13 follows the 999's, and one decision leaves exactly one
//! outbound file despite the retries.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gateway_store::{Reader, WriteBackState};
use gateway_x12::ack::AckIdentity;
use gateway_x12::control::ControlNumberAllocator;
use gateway_x12::soap::server::{SoapServerState, serve};
use gateway_x12::write::MemoryControlNumbers;
use serde_json::{Value, json};
use support::core_payer::Recorder;
use support::{Daemon, TOKEN, files_with_prefix as files, repo_root, wait_for, write_config};

/// ISA13 of an interchange.
fn isa13(bytes: &[u8]) -> u64 {
    let parsed = gateway_x12::parse_interchange(bytes).expect("parses");
    parsed
        .interchange
        .header
        .control_number
        .parse()
        .expect("numeric ISA13")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decision_goes_back_as_a_278_response_to_file_and_core_partner_with_retries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbound = dir.path().join("inbound");
    let outbound = dir.path().join("outbound");
    std::fs::create_dir_all(&inbound).expect("inbound");

    // The requester's endpoint: a TLS certificate now, the server later.
    let (cert, key) =
        gateway_x12::soap::tls::self_signed(&["localhost", "127.0.0.1"]).expect("certificate");
    let cert_path = dir.path().join("partner-cert.pem");
    std::fs::write(&cert_path, &cert).expect("cert");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("addr").port()
    };

    let config = write_config(
        dir.path(),
        &format!(
            r#"[forward]
sink = "file"
[forward.delivery.backoff]
initial_ms = 200
max_ms = 400
[x12]
profile = "x12-278"
[x12.identity]
id = "EHRGATEWAY"
[x12.file_drop]
inbound = "{inbound}"
poll_interval_ms = 100
settle_ms = 0
[x12.writeback]
outbound = "{outbound}"
partner = "cardio-north-pm"
[[x12.partners]]
name = "cardio-north-pm"
endpoint = "https://localhost:{port}/core/realtime"
sender_id = "EHRGATEWAY"
receiver_id = "CARDIONORTH"
isa_receiver_id = "CARDIONORTH"
ca_file = "{cert}"
ca_only = true
timeout_ms = 5000
"#,
            inbound = inbound.display(),
            outbound = outbound.display(),
            cert = cert_path.display(),
        ),
    );
    let daemon = Daemon::start(&config);
    let http = reqwest::Client::new();

    // A 278 request arrives through the file drop.
    let request =
        std::fs::read(repo_root().join("sample-messages/x12/x12-278/request-two-lines.x12"))
            .expect("sample");
    std::fs::write(inbound.join(".request.x12.part"), &request).expect("write");
    std::fs::rename(
        inbound.join(".request.x12.part"),
        inbound.join("request.x12"),
    )
    .expect("rename");
    let archive = inbound.join("archive");
    let ack999 = wait_for(
        "the 999 beside the archived request",
        Duration::from_secs(20),
        || {
            files(&archive, "request")
                .into_iter()
                .find(|p| p.to_string_lossy().contains("999"))
                .and_then(|p| std::fs::read(p).ok())
        },
    );
    let ack_isa13 = isa13(&ack999);

    let messages: Value = get_json(&http, &daemon, "/api/v1/messages").await;
    let case_id = messages["messages"]
        .as_array()
        .expect("list")
        .iter()
        .find_map(|m| {
            (m["adapter"] == "x12")
                .then(|| m["case_id"].as_str())
                .flatten()
        })
        .expect("the request made a case")
        .to_owned();

    // The central platform decides: line 2 denied.
    let response = http
        .post(daemon.url(&format!("/api/v1/cases/{case_id}/decision")))
        .bearer_auth(TOKEN)
        .json(&json!({
            "status": "partially_approved",
            "authorization_number": "AUTH-E2E-1",
            "effective": {"start": "2026-12-01", "end": "2027-02-28"},
            "service_decisions": [{"line": 2, "status": "denied", "reason_codes": ["0A"]}]
        }))
        .send()
        .await
        .expect("post decision");
    assert_eq!(response.status(), 202);
    let posted: Value = response.json().await.expect("json");
    let decision_id = posted["decision_id"].as_i64().expect("decision id");

    // The partner is down: the file is written, the SOAP delivery is retried.
    let written = wait_for("the outbound 278 response", Duration::from_secs(20), || {
        files(&outbound, "278-response-").into_iter().next()
    });
    let store_file = dir.path().join("data/gateway.sqlite");
    let reader = Reader::open(&store_file).expect("store reader");
    let (state, error) = wait_for("a failed first attempt", Duration::from_secs(20), || {
        reader
            .writeback_state(decision_id)
            .expect("state")
            .filter(|(_, e)| e.is_some())
    });
    assert_eq!(state, WriteBackState::Pending, "retryable: {error:?}");

    // The partner comes up on the configured port; the retry delivers.
    let recorder = Arc::new(Recorder::default());
    let numbers: Arc<dyn ControlNumberAllocator> = Arc::new(MemoryControlNumbers::new());
    let shutdown = tokio_util_free_shutdown();
    let server = serve(
        &format!("127.0.0.1:{port}"),
        cert.as_bytes(),
        key.as_bytes(),
        "/core/realtime",
        4 * 1024 * 1024,
        Arc::new(SoapServerState {
            pipeline: recorder.clone(),
            profile: "x12-278".into(),
            identity: AckIdentity {
                id: "CARDIONORTH".into(),
                ..AckIdentity::default()
            },
            numbers,
            core_rule_version: "2.2.0".into(),
            responder: None,
            auth: Default::default(),
            audit: None,
        }),
        shutdown.1,
    )
    .await
    .expect("partner server");
    wait_for("the write-back to finish", Duration::from_secs(30), || {
        reader
            .writeback_state(decision_id)
            .expect("state")
            .filter(|(s, _)| *s != WriteBackState::Pending)
    });
    assert_eq!(
        reader
            .writeback_state(decision_id)
            .expect("state")
            .map(|s| s.0),
        Some(WriteBackState::Done)
    );

    // The partner got one 278 response; the outbound folder holds one file.
    let received = recorder.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 1, "one delivery");
    assert_eq!(
        files(&outbound, "278-response-").len(),
        1,
        "no duplicate file"
    );
    for bytes in [
        std::fs::read(&written).expect("file"),
        received[0].raw.clone(),
    ] {
        let text = String::from_utf8(bytes.clone()).expect("ascii");
        let parsed = gateway_x12::parse_interchange(&bytes).expect("parses");
        assert!(parsed.is_clean(), "{:?}\n{text}", parsed.findings);
        assert!(text.contains("BHT*0007*11*REQ-0002*"), "{text}");
        assert!(text.contains("HCR*A2*AUTH-E2E-1~"), "{text}");
        assert!(text.contains("HCR*A3**0A~"), "{text}");
        assert_eq!(parsed.interchange.header.receiver_id, "CARDIONORTH");
        assert_eq!(parsed.interchange.header.sender_id, "EHRGATEWAY");
        // Allocated from the store after the 999's numbers.
        assert!(isa13(&bytes) > ack_isa13, "{text}");
    }
    // The retry wrote a new interchange: its ISA13 differs from the file's.
    assert_ne!(
        isa13(&std::fs::read(&written).expect("file")),
        isa13(&received[0].raw)
    );

    let _ = shutdown.0.send(());
    server.join().await;
    drop(daemon);
}

/// A oneshot-based shutdown future (the test needs no tokio-util).
fn tokio_util_free_shutdown() -> (
    tokio::sync::oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

/// A sample interchange of the x12-278 profile.
fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("sample-messages/x12/x12-278").join(name)).expect("sample")
}

/// Drops `bytes` as `name` into `inbound` atomically and waits until the file
/// drop moved it into `folder` (`archive` or `error`).
fn drop_file(inbound: &Path, name: &str, bytes: &[u8], folder: &str) {
    let part = inbound.join(format!(".{name}.part"));
    std::fs::write(&part, bytes).expect("write");
    std::fs::rename(&part, inbound.join(name)).expect("rename");
    let moved_to = inbound.join(folder);
    wait_for(
        &format!("{name} in {folder}/"),
        Duration::from_secs(20),
        || files(&moved_to, name).into_iter().next(),
    );
}

/// Drops the sample `name` and waits until it is archived.
fn drop_sample(inbound: &Path, name: &str) {
    drop_file(inbound, name, &sample(name), "archive");
}

/// `GET` an admin API path with the test token, as JSON.
async fn get_json(http: &reqwest::Client, daemon: &Daemon, path: &str) -> Value {
    support::get_json(http, daemon.url(path), TOKEN).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pended_response_without_service_lines_keeps_the_requested_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbound = dir.path().join("inbound");
    std::fs::create_dir_all(&inbound).expect("inbound");
    let config = write_config(
        dir.path(),
        &format!(
            "[x12]\n[x12.file_drop]\ninbound = \"{}\"\npoll_interval_ms = 100\nsettle_ms = 0\n",
            inbound.display()
        ),
    );
    let daemon = Daemon::start(&config);
    let http = reqwest::Client::new();
    let get_case = async |case_id: &str| -> Value {
        get_json(&http, &daemon, &format!("/api/v1/cases/{case_id}")).await["case"].clone()
    };

    drop_sample(&inbound, "request.x12");
    let messages: Value = get_json(&http, &daemon, "/api/v1/messages").await;
    let case_id = messages["messages"][0]["case_id"]
        .as_str()
        .expect("the request made a case")
        .to_owned();
    let requested = get_case(&case_id).await;
    let lines = requested["services"].as_array().expect("lines").len();
    assert!(lines > 0, "{requested}");

    // The payer pends it: BHT03 correlates, and the response has no 2000F.
    drop_sample(&inbound, "response-pended.x12");
    let pended = get_case(&case_id).await;
    assert_eq!(pended["status"], "pended", "{pended}");
    assert_eq!(pended["decision"]["status"], "pended", "{pended}");
    assert_eq!(
        pended["services"], requested["services"],
        "the requested lines survive a response without service loops"
    );
    assert_eq!(pended["diagnoses"], requested["diagnoses"]);
    assert_eq!(
        pended["patient"]["identifiers"],
        requested["patient"]["identifiers"]
    );

    // A response with the same BHT03 but the trace of another request
    // (TRN*2) is about another case: rejected with G002 and kept (the file in
    // error/), and the case is not touched.
    let foreign = String::from_utf8(sample("response-approved.x12"))
        .expect("ascii")
        .replace("TRN*2*TRACE0001*", "TRN*2*TRACE0999*");
    drop_file(&inbound, "foreign.x12", foreign.as_bytes(), "error");
    let rejected = get_json(&http, &daemon, "/api/v1/messages?state=rejected").await;
    assert_eq!(rejected["total"], 1, "{rejected}");
    let id = rejected["messages"][0]["id"].as_i64().expect("id");
    let shown = get_json(&http, &daemon, &format!("/api/v1/messages/{id}")).await;
    let diagnostics = shown["diagnostics"].to_string();
    assert!(
        diagnostics.contains("G002") && diagnostics.contains("TRACE0999"),
        "{shown}"
    );
    let after = get_case(&case_id).await;
    assert_eq!(after["status"], "pended", "{after}");
    assert_eq!(after["references"]["x12_trace"], "TRACE0001", "{after}");
    drop(daemon);
}

#[test]
fn x12_response_prints_the_278_response_of_a_decided_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = repo_root().join("conformance/suites/x12-278/writeback-request/input.json");
    let mut case: Value =
        serde_json::from_slice(&std::fs::read(input).expect("case")).expect("json");
    case["status"] = json!("approved");
    case["decision"] = json!({"status": "approved", "authorization_number": "AUTH-CLI-1"});
    let file = dir.path().join("case.json");
    std::fs::write(&file, serde_json::to_vec(&case).expect("json")).expect("write");
    let out = std::process::Command::new(support::bin())
        .args(["x12", "response"])
        .arg(&file)
        .current_dir(repo_root())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("BHT*0007*11*"), "{text}");
    assert!(text.contains("HCR*A1*AUTH-CLI-1~"), "{text}");
    let parsed = gateway_x12::parse_interchange(text.as_bytes()).expect("parses");
    assert!(parsed.is_clean(), "{:?}", parsed.findings);
}

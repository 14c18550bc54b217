//! The adapter against a real FHIR implementation on loopback: Medplum's FHIR
//! router in a Node HTTP server with a SMART Backend Services token endpoint
//! that verifies our client assertions against our JWKS (tests/fhir-server).
//!
//! One server for the whole file (its startup dominates on a busy 2-core CI
//! machine); the scenarios run one after another, each on a reset server
//! (no data, tokens, faults or counters), so they cannot see each other.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::case::{CaseSource, Decision, DecisionStatus, Period};
use gateway_core::{Case, adapter::WriteBack};
use gateway_fhir::auth::{AuthConfig, AuthError, SecretMethod, SigningAlgorithm, TokenProvider};
use gateway_fhir::client::http_client;
use gateway_fhir::poll::{FileWatermarkStore, PollSettings, Poller, WatermarkStore};
use gateway_fhir::profile::{VendorProfile, WriteKind};
use gateway_fhir::writeback::FhirWriteBack;
use gateway_fhir::{FhirAdapter, FhirConfig, FhirError};
use serde_json::{Value, json};
use support::*;

fn athena() -> VendorProfile {
    VendorProfile::load(&repo_root().join("mappings/athenahealth")).expect("vendor profile")
}

fn ids(pages: &[Value], mode: &str) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p["entry"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["search"]["mode"] == mode)
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
        .collect()
}

async fn smart_backend_assertions_are_verified_and_bad_keys_rejected(server: &FhirServer) {
    server.load(order(1, "2026-01-01T00:00:00.000Z", "1")).await;
    for alg in [SigningAlgorithm::ES384, SigningAlgorithm::RS384] {
        let client = server.client(&server.smart_auth(alg));
        let sr = client
            .read("ServiceRequest", "sr-1")
            .await
            .expect("read with token");
        assert_eq!(sr["id"], "sr-1");
        let stats = server.stats().await;
        assert_eq!(stats["last_assertion_alg"], format!("{alg:?}"));
        assert_eq!(
            stats["last_scope"],
            "system/ServiceRequest.read system/Task.write"
        );
    }
    for method in [
        SecretMethod::ClientSecretBasic,
        SecretMethod::ClientSecretPost,
    ] {
        let client_id = match method {
            SecretMethod::ClientSecretBasic => BASIC_CLIENT,
            SecretMethod::ClientSecretPost => POST_CLIENT,
        };
        let auth = AuthConfig::ClientSecret {
            token_url: server.token_url(),
            client_id: client_id.into(),
            client_secret: Some(SECRET.into()),
            client_secret_file: None,
            method,
            scopes: None,
        };
        let client = server.client(&auth);
        client
            .read("Patient", "pat-1")
            .await
            .expect("read with secret");
    }
    assert_eq!(server.stats().await["tokens_issued"], 4);

    // A key that is not in our JWKS, presented under our kid: refused.
    let rogue = AuthConfig::SmartBackend {
        token_url: server.token_url(),
        client_id: ES_CLIENT.into(),
        private_key_file: key_path("test-only-rogue-es384.pem"),
        algorithm: SigningAlgorithm::ES384,
        kid: "es-1".into(),
        scopes: None,
    };
    let provider = TokenProvider::new(
        &rogue,
        &[],
        http_client(Duration::from_secs(5)).expect("http"),
    )
    .expect("provider");
    match provider.bearer().await {
        Err(AuthError::Refused { status: 401, error }) => assert_eq!(error, "invalid_client"),
        other => panic!("rogue key accepted: {other:?}"),
    }
    // The wrong audience is refused too.
    let mut wrong_aud = server.smart_auth(SigningAlgorithm::ES384);
    if let AuthConfig::SmartBackend { token_url, .. } = &mut wrong_aud {
        *token_url = token_url.replace("127.0.0.1", "localhost");
    }
    let provider = TokenProvider::new(
        &wrong_aud,
        &[],
        http_client(Duration::from_secs(5)).expect("http"),
    )
    .expect("provider");
    assert!(matches!(
        provider.bearer().await,
        Err(AuthError::Refused { .. })
    ));
    assert_eq!(server.stats().await["assertions_rejected"], 2);
    // And without a token the FHIR API answers 401 with an OperationOutcome.
    let anonymous = server.client(&AuthConfig::None);
    match anonymous.read("Patient", "pat-1").await {
        Err(FhirError::Status { status: 401, .. }) => {}
        other => panic!("anonymous read allowed: {other:?}"),
    }
}

async fn search_follows_next_links_across_pages_with_includes(server: &FhirServer) {
    let mut all = Vec::new();
    for n in 1..=7 {
        all.extend(order(n, &format!("2026-01-01T00:00:0{n}.000Z"), "1"));
    }
    server.load(all).await;
    let client = server.client(&server.smart_auth(SigningAlgorithm::ES384));
    let params = vec![
        ("_count".to_owned(), "2".to_owned()),
        ("_sort".to_owned(), "_lastUpdated".to_owned()),
        ("_include".to_owned(), "ServiceRequest:subject".to_owned()),
    ];
    let pages = client
        .search_all("ServiceRequest", &params, 100)
        .await
        .expect("search");
    assert_eq!(pages.len(), 4, "7 matches at 2 per page");
    assert_eq!(
        ids(&pages, "match"),
        ["sr-1", "sr-2", "sr-3", "sr-4", "sr-5", "sr-6", "sr-7"]
    );
    assert_eq!(
        ids(&pages, "include").len(),
        7,
        "each page includes its subjects"
    );
    // A page limit stops early.
    let two = client
        .search_all("ServiceRequest", &params, 2)
        .await
        .expect("search");
    assert_eq!(two.len(), 2);
}

async fn throttling_server_errors_and_timeouts_are_retried(server: &FhirServer) {
    server.load(order(1, "2026-01-01T00:00:00.000Z", "1")).await;
    let client = server.client(&server.smart_auth(SigningAlgorithm::ES384));
    client
        .read("Patient", "pat-1")
        .await
        .expect("warm up token");

    server
        .fault(json!({"match": "ServiceRequest", "status": 429, "retryAfter": 1, "count": 1}))
        .await;
    server
        .fault(json!({"match": "ServiceRequest", "status": 503, "count": 1}))
        .await;
    server
        .fault(json!({"match": "ServiceRequest", "delayMs": 2500, "count": 1}))
        .await;
    let started = std::time::Instant::now();
    let sr = client
        .read("ServiceRequest", "sr-1")
        .await
        .expect("retried to success");
    assert_eq!(sr["id"], "sr-1");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
    assert_eq!(server.stats().await["faults_served"], 3);

    // Persistent 5xx: retries run out, the OperationOutcome is surfaced.
    server
        .fault(json!({"match": "Coverage", "status": 500, "count": 10}))
        .await;
    match client.read("Coverage", "cov-1").await {
        Err(e @ FhirError::Status { status: 500, .. }) => {
            assert!(e.retryable());
            let text = e.to_string();
            assert!(
                text.contains("error transient: injected fault 500"),
                "{text}"
            );
        }
        other => panic!("expected 500, got {other:?}"),
    }
    // A 404 is not retried and names the issue.
    let before = server.stats().await["fhir_requests"].as_u64().expect("n");
    match client.read("ServiceRequest", "missing").await {
        Err(e @ FhirError::Status { status: 404, .. }) => {
            assert!(!e.retryable());
            assert!(e.to_string().contains("not-found"), "{e}");
        }
        other => panic!("expected 404, got {other:?}"),
    }
    assert_eq!(
        server.stats().await["fhir_requests"].as_u64(),
        Some(before + 1)
    );
}

async fn concurrency_is_limited_per_ehr(server: &FhirServer) {
    server.load(order(1, "2026-01-01T00:00:00.000Z", "1")).await;
    let client = Arc::new(server.client_limited(&server.smart_auth(SigningAlgorithm::ES384), 2));
    client
        .read("Patient", "pat-1")
        .await
        .expect("warm up token");
    // Every read is slowed down server-side so they would overlap if allowed.
    server
        .fault(json!({"match": "Patient", "delayMs": 300, "count": 8}))
        .await;
    let reads: Vec<_> = (0..8)
        .map(|_| {
            let client = Arc::clone(&client);
            tokio::spawn(async move { client.read("Patient", "pat-1").await })
        })
        .collect();
    for read in reads {
        read.await.expect("join").expect("read");
    }
    assert_eq!(server.stats().await["max_in_flight"], 2);
}

async fn expired_and_revoked_tokens_are_refreshed(server: &FhirServer) {
    server.load(order(1, "2026-01-01T00:00:00.000Z", "1")).await;
    let client = server.client(&server.smart_auth_short());
    client.read("Patient", "pat-1").await.expect("first");
    client.read("Patient", "pat-1").await.expect("cached token");
    assert_eq!(server.stats().await["tokens_issued"], 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client.read("Patient", "pat-1").await.expect("after expiry");
    let stats = server.stats().await;
    assert_eq!(stats["tokens_issued"], 2, "refreshed before use");
    assert_eq!(stats["unauthorized"], 0, "never sent an expired token");

    // Revoked server-side: 401, one refresh, the request succeeds.
    server.expire_tokens().await;
    client
        .read("Patient", "pat-1")
        .await
        .expect("after revocation");
    let stats = server.stats().await;
    assert_eq!(stats["tokens_issued"], 3);
    assert_eq!(stats["unauthorized"], 1);
}

fn poller(
    server: &FhirServer,
    pipeline: Arc<Recorder>,
    store: Arc<dyn WatermarkStore>,
    vendor: VendorProfile,
) -> Poller {
    let client = Arc::new(server.client(&server.smart_auth(SigningAlgorithm::ES384)));
    Poller::new(
        client,
        Arc::new(vendor),
        "athenahealth",
        pipeline,
        store,
        PollSettings {
            page_size: 2,
            ..PollSettings::default()
        },
    )
}

async fn restart_mid_poll_misses_nothing_and_repeats_nothing(server: &FhirServer) {
    // Equal stamps on purpose: 3,4,5 share one instant, 7,8 another; pages of 2.
    let stamps = ["00", "01", "02", "02", "02", "03", "04", "04", "05"];
    let mut all = Vec::new();
    for (i, s) in stamps.iter().enumerate() {
        all.extend(order(
            i as u32 + 1,
            &format!("2026-01-01T00:00:{s}.000Z"),
            "1",
        ));
    }
    server.load(all).await;
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn WatermarkStore> = Arc::new(FileWatermarkStore::new(dir.path()));

    // Run 1 "crashes" while the 5th order is being committed.
    let first = Recorder::new(Behaviour::HangAfter(4));
    let p1 = poller(server, first.clone(), store.clone(), athena());
    let task = tokio::spawn(async move { p1.poll_once().await });
    for _ in 0..200 {
        if first.committed.lock().expect("lock").len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
    let _ = task.await;
    assert_eq!(first.keys().len(), 4);

    // Run 2: a new poller from the stored watermark.
    let second = Recorder::new(Behaviour::Commit);
    let p2 = poller(server, second.clone(), store.clone(), athena());
    let report = p2.poll_once().await.expect("poll");
    let mut union: Vec<String> = first.keys();
    union.extend(second.keys());
    let distinct: BTreeSet<&String> = union.iter().collect();
    assert_eq!(distinct.len(), union.len(), "duplicates: {union:?}");
    assert_eq!(distinct.len(), 9, "missed some: {union:?}");
    assert_eq!(report.submitted, 5);

    // Every bundle carries what a case needs, read where not included.
    let bundle: Value =
        serde_json::from_slice(&second.committed.lock().expect("lock")[0].raw).expect("json");
    let types: BTreeSet<&str> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        [
            "Condition",
            "Coverage",
            "Organization",
            "Patient",
            "Practitioner",
            "PractitionerRole",
            "ServiceRequest"
        ]
    );
    assert!(
        second
            .committed
            .lock()
            .expect("lock")
            .iter()
            .all(|m| m.parsed.is_ok())
    );

    // New work: an updated order, a new one, and one stamped exactly at the
    // watermark instant (it arrived late): all three, nothing else.
    let mut more = order(3, "2026-01-01T00:00:06.000Z", "2");
    more.retain(|r| r["resourceType"] == "ServiceRequest");
    more.extend(order(10, "2026-01-01T00:00:06.000Z", "1"));
    more.extend(order(11, "2026-01-01T00:00:05.000Z", "1"));
    server.load(more).await;
    let third = Recorder::new(Behaviour::Commit);
    poller(server, third.clone(), store.clone(), athena())
        .poll_once()
        .await
        .expect("poll");
    let got: BTreeSet<String> = third.keys().into_iter().collect();
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        ["sr-10@1", "sr-11@1", "sr-3@2"]
    );
    let fourth = Recorder::new(Behaviour::Commit);
    let report = poller(server, fourth.clone(), store, athena())
        .poll_once()
        .await
        .expect("poll");
    assert_eq!(fourth.keys(), Vec::<String>::new());
    assert!(report.already_seen >= 2, "{report:?}");
}

async fn a_full_store_does_not_advance_the_cursor(server: &FhirServer) {
    let stamps = ["00", "01", "02", "02", "03", "04"];
    let mut all = Vec::new();
    for (i, s) in stamps.iter().enumerate() {
        all.extend(order(
            i as u32 + 1,
            &format!("2026-01-01T00:00:{s}.000Z"),
            "1",
        ));
    }
    server.load(all).await;
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn WatermarkStore> = Arc::new(FileWatermarkStore::new(dir.path()));
    // The store fills after three orders: the pass fails, retryably.
    let full = Recorder::new(Behaviour::FullAfter(3));
    let error = poller(server, full.clone(), store.clone(), athena())
        .poll_once()
        .await
        .expect_err("a full store fails the pass");
    assert!(error.retryable, "{error:?}");
    assert_eq!(full.keys().len(), 3);
    // Space returns: the next pass takes exactly the refused orders on.
    let after = Recorder::new(Behaviour::Commit);
    poller(server, after.clone(), store, athena())
        .poll_once()
        .await
        .expect("poll");
    let mut union = full.keys();
    union.extend(after.keys());
    let distinct: BTreeSet<&String> = union.iter().collect();
    assert_eq!(distinct.len(), union.len(), "duplicates: {union:?}");
    assert_eq!(distinct.len(), 6, "missed some: {union:?}");
}

async fn unsorted_vendor_restart_is_also_exact(server: &FhirServer) {
    let mut all = Vec::new();
    for n in 1..=6 {
        all.extend(order(n, &format!("2026-01-01T00:00:0{}.000Z", 7 - n), "1"));
    }
    server.load(all).await;
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn WatermarkStore> = Arc::new(FileWatermarkStore::new(dir.path()));
    let mut vendor = athena();
    vendor.search.sort_last_updated = false;
    let first = Recorder::new(Behaviour::HangAfter(3));
    let p1 = poller(server, first.clone(), store.clone(), vendor.clone());
    let task = tokio::spawn(async move { p1.poll_once().await });
    for _ in 0..200 {
        if first.committed.lock().expect("lock").len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
    let _ = task.await;
    let second = Recorder::new(Behaviour::Commit);
    poller(server, second.clone(), store, vendor)
        .poll_once()
        .await
        .expect("poll");
    let mut union = first.keys();
    union.extend(second.keys());
    union.sort();
    assert_eq!(
        union,
        ["sr-1@1", "sr-2@1", "sr-3@1", "sr-4@1", "sr-5@1", "sr-6@1"]
    );
}

async fn bad_bundles_are_rejected_with_specific_diagnostics_and_kept(server: &FhirServer) {
    let mut resources = order(1, "2026-01-01T00:00:00.000Z", "1");
    // Order 2 points at a patient the EHR does not have; order 3 has no subject.
    resources.push(
        json!({"resourceType": "ServiceRequest", "id": "sr-ghost", "status": "active",
        "intent": "order", "meta": {"lastUpdated": "2026-01-01T00:00:01.000Z", "versionId": "1"},
        "subject": {"reference": "Patient/ghost"}}),
    );
    resources.push(
        json!({"resourceType": "ServiceRequest", "id": "sr-nosubject", "status": "active",
        "intent": "order", "meta": {"lastUpdated": "2026-01-01T00:00:02.000Z", "versionId": "1"}}),
    );
    server.load(resources).await;
    let dir = tempfile::tempdir().expect("tmp");
    let recorder = Recorder::new(Behaviour::Commit);
    let report = poller(
        server,
        recorder.clone(),
        Arc::new(FileWatermarkStore::new(dir.path())),
        athena(),
    )
    .poll_once()
    .await
    .expect("poll");
    assert_eq!((report.accepted, report.rejected), (1, 2));
    let committed = recorder.committed.lock().expect("lock");
    let ghost = &committed[1];
    let diags = ghost.parsed.as_ref().expect_err("rejected");
    assert_eq!(diags[0].code, "F012");
    assert!(
        diags[0].message.contains("Patient/ghost"),
        "{}",
        diags[0].message
    );
    assert_eq!(
        diags[0].location.as_deref(),
        Some("Bundle.entry[0].resource.subject")
    );
    let raw: Value = serde_json::from_slice(&ghost.raw).expect("raw kept");
    assert_eq!(raw["entry"][0]["resource"]["id"], "sr-ghost");
    let nosubject = committed[2].parsed.as_ref().expect_err("rejected");
    assert_eq!(nosubject[0].code, "F011");
}

fn decided_case(sr: &str) -> Case {
    let mut case = Case::new(
        "case-0123456789abcdef01234567",
        "mso-demo",
        CaseSource {
            adapter: "fhir".into(),
            profile: "athenahealth".into(),
            message_type: Some("ServiceRequest".into()),
            control_id: Some(format!("ServiceRequest/{sr}")),
            sender: None,
            received_at: "2026-11-23T10:00:00Z".into(),
        },
    );
    case.decision = Some(Decision {
        status: DecisionStatus::Approved,
        authorization_number: Some("AUTH0001".into()),
        effective: Some(Period {
            start: Some("2026-12-01".into()),
            end: Some("2027-02-28".into()),
        }),
        reason_codes: vec![],
        payer_trace: vec![],
        service_decisions: vec![],
        decided_at: None,
        note: None,
    });
    case
}

async fn write_back_creates_task_communication_and_note_once(server: &FhirServer) {
    server.load(order(1, "2026-01-01T00:00:00.000Z", "1")).await;
    let client = Arc::new(server.client(&server.smart_auth(SigningAlgorithm::ES384)));
    let case = decided_case("sr-1");
    for (kind, rtype) in [
        (WriteKind::Task, "Task"),
        (WriteKind::Communication, "Communication"),
        (WriteKind::DocumentReference, "DocumentReference"),
    ] {
        let mut vendor = athena();
        vendor.writeback.kind = kind;
        vendor.resources.writable = vec![rtype.into()];
        let wb = FhirWriteBack::new(client.clone(), Arc::new(vendor));
        let receipt = wb.apply(&case).await.expect("write back");
        assert!(receipt.detail.starts_with(rtype), "{}", receipt.detail);
        wb.apply(&case).await.expect("idempotent retry");
        let search_param = match kind {
            WriteKind::DocumentReference => "related",
            _ => "based-on",
        };
        let found = client
            .search(
                rtype,
                &[(search_param.into(), "ServiceRequest/sr-1".into())],
            )
            .await
            .expect("search");
        let entries = found["entry"].as_array().cloned().unwrap_or_default();
        assert_eq!(entries.len(), 1, "{rtype} written exactly once");
        let resource = &entries[0]["resource"];
        match kind {
            WriteKind::Task => {
                assert_eq!(resource["status"], "completed");
                assert_eq!(resource["for"]["reference"], "Patient/pat-1");
                assert_eq!(resource["output"][0]["valueString"], "AUTH0001");
            }
            WriteKind::Communication => {
                assert_eq!(resource["subject"]["reference"], "Patient/pat-1");
                let text = resource["payload"][0]["contentString"]
                    .as_str()
                    .expect("text");
                assert!(text.contains("AUTH0001"), "{text}");
            }
            _ => assert_eq!(
                resource["content"][0]["attachment"]["contentType"],
                "text/plain"
            ),
        }
    }
    // A vendor that does not allow the write refuses before calling the EHR.
    let mut vendor = athena();
    vendor.resources.writable = vec![];
    let wb = FhirWriteBack::new(client, Arc::new(vendor));
    let err = wb.apply(&case).await.expect_err("not allowed");
    assert!(
        err.message.contains("does not accept Task"),
        "{}",
        err.message
    );
}

async fn subscription_notification_triggers_a_poll(server: &FhirServer) {
    let config: FhirConfig = toml::from_str(&format!(
        r#"
profile = "{}"
base_url = "{}"
poll_interval_secs = 3600
[auth]
style = "smart_backend"
token_url = "{}"
client_id = "{ES_CLIENT}"
private_key_file = "{}"
algorithm = "ES384"
kid = "es-1"
[subscription]
listen = "127.0.0.1:0"
token = "hook-secret-0123456789abcdef0123456789"
"#,
        repo_root().join("mappings/athenahealth").display(),
        server.base_url(),
        server.token_url(),
        key_path("test-only-es384.pem").display()
    ))
    .expect("config parses");
    let adapter = FhirAdapter::new(config).expect("adapter");
    let recorder = Recorder::new(Behaviour::Commit);
    let dir = tempfile::tempdir().expect("tmp");
    let store: Arc<dyn WatermarkStore> = Arc::new(FileWatermarkStore::new(dir.path()));
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = recorder.clone();
    let task = tokio::spawn(async move {
        adapter
            .serve(
                pipeline,
                store,
                async {
                    let _ = stop_rx.await;
                },
                |addr| {
                    let _ = addr_tx.send(addr);
                },
            )
            .await
    });
    let addr = addr_rx.await.expect("listening").expect("hook address");
    // The first (empty) poll runs at startup; then the order appears.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(recorder.keys().is_empty());
    server.load(order(1, "2026-01-01T00:00:00.000Z", "1")).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/fhir/notify");
    let refused = http.post(&url).body("{}").send().await.expect("post");
    assert_eq!(refused.status(), 401);
    let notification = json!({"resourceType": "Bundle", "type": "history", "entry": []});
    let ok = http
        .post(&url)
        .bearer_auth("hook-secret-0123456789abcdef0123456789")
        .body(notification.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), 200);
    for _ in 0..100 {
        if !recorder.keys().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recorder.keys(), ["sr-1@1"]);
    let _ = stop_tx.send(());
    task.await.expect("join").expect("serve");
}

#[tokio::test]
async fn against_medplum() {
    let Some(server) = FhirServer::start() else {
        return;
    };
    server.reset().await;
    smart_backend_assertions_are_verified_and_bad_keys_rejected(&server).await;
    server.reset().await;
    search_follows_next_links_across_pages_with_includes(&server).await;
    server.reset().await;
    throttling_server_errors_and_timeouts_are_retried(&server).await;
    server.reset().await;
    concurrency_is_limited_per_ehr(&server).await;
    server.reset().await;
    expired_and_revoked_tokens_are_refreshed(&server).await;
    server.reset().await;
    restart_mid_poll_misses_nothing_and_repeats_nothing(&server).await;
    server.reset().await;
    a_full_store_does_not_advance_the_cursor(&server).await;
    server.reset().await;
    unsorted_vendor_restart_is_also_exact(&server).await;
    server.reset().await;
    bad_bundles_are_rejected_with_specific_diagnostics_and_kept(&server).await;
    server.reset().await;
    write_back_creates_task_communication_and_note_once(&server).await;
    server.reset().await;
    subscription_notification_triggers_a_poll(&server).await;
}

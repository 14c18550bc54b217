//! The pipeline end to end over a real SQLite store and a JSON-format mapping
//! profile written to a temp dir: accept, duplicate, every rejection kind,
//! replay after a mapping fix, patient updates, decisions and write-back retry.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::adapter::{
    BoxFuture, InboundMessage, IntakeOutcome, IntakePipeline, WriteBack, WriteBackReceipt,
};
use gateway_core::case::{Case, Decision, DecisionStatus, Period, ServiceDecision};
use gateway_core::{Diagnostic, GatewayError, SourceDocument, SourceFormat};
use gateway_mapping::{DefaultSyntaxes, Profile};
use gateway_pipeline::{
    DecisionError, DecisionIntake, DocumentParser, Identity, Pipeline, ProfileSet,
    WriteBackRegistry, WriteBackWorker,
};
use gateway_store::{MessageFilter, MessageState, Store, StoreOptions, WriteBackState};
use tokio::sync::Notify;

const PROFILE: &str = r#"
name = "demo-json"
format = "json"
time_zone = "America/Chicago"
[defaults]
tenant = "ignored-tenant"
"#;

const ORDERS: &str = r#"
[match]
message_type = "ORDER"
[case_id]
key = ["order.id"]
[foreach]
services = "order.lines[*]"
[fields]
status = { const = "requested" }
"patient.identifiers[0].value" = "patient.mrn"
"patient.identifiers[0].type" = { const = "MR" }
"patient.name.family" = "patient.last"
"patient.birth_date" = { path = "patient.dob", transforms = [{ date = "hl7" }], required = true }
"services[].code.code" = { path = "code", required = true }
"services[].code.system" = { const = "CPT" }
"references.placer_order" = "order.id"
"#;

const REFERRALS: &str = r#"
[match]
message_type = "REFERRAL"
[case_id]
key = ["ref.id"]
[fields]
status = { const = "requested" }
"patient.identifiers[0].value" = "patient.mrn"
"patient.identifiers[0].type" = { const = "MR" }
"references.placer_order" = "ref.id"
"#;

const ADT: &str = r#"
action = "patient_update"
[match]
message_type = "ADT^A08"
[case_id]
key = ["patient.mrn"]
prefix = "patient"
[fields]
"patient.identifiers[0].value" = "patient.mrn"
"patient.identifiers[0].type" = { const = "MR" }
"patient.name.family" = "patient.last"
"patient.address.city" = "patient.city"
"#;

fn write_profile(dir: &Path, with_referrals: bool) -> Profile {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("profile.toml"), PROFILE).expect("write");
    std::fs::write(dir.join("orders.toml"), ORDERS).expect("write");
    std::fs::write(dir.join("adt.toml"), ADT).expect("write");
    if with_referrals {
        std::fs::write(dir.join("referrals.toml"), REFERRALS).expect("write");
    }
    Profile::load(dir, &DefaultSyntaxes).expect("profile loads")
}

/// Parses JSON the way the daemon's format registry does for `json`.
struct JsonParser;

impl DocumentParser for JsonParser {
    fn parse(
        &self,
        _adapter: &str,
        _format: SourceFormat,
        raw: &[u8],
    ) -> Result<SourceDocument, Vec<Diagnostic>> {
        parse(raw)
    }
}

fn parse(raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    serde_json::from_slice::<serde_json::Value>(raw)
        .map(|v| gateway_mapping::json_document(&v))
        .map_err(|e| {
            vec![Diagnostic::error(
                "J001",
                format!("not JSON at column {}", e.column()),
            )]
        })
}

fn inbound(raw: &str) -> InboundMessage {
    InboundMessage {
        adapter: gateway_core::adapter::AdapterName::new("json"),
        profile: "demo-json".to_owned(),
        raw: raw.as_bytes().to_vec(),
        received_at: "2026-11-22T10:00:00Z".parse().expect("time"),
        peer: Some("127.0.0.1:1".to_owned()),
        parsed: parse(raw.as_bytes()),
    }
}

fn order(control: &str, order_id: &str, mrn: &str) -> String {
    format!(
        r#"{{"_meta": {{"message_type": "ORDER", "control_id": "{control}", "sender": "DEMO"}},
            "patient": {{"mrn": "{mrn}", "last": "Testpatient", "dob": "19700131"}},
            "order": {{"id": "{order_id}", "lines": [{{"code": "78452"}}, {{"code": "93000"}}]}}}}"#
    )
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Store,
    pipeline: Pipeline,
    profile_dir: std::path::PathBuf,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile_dir = dir.path().join("profiles/demo-json");
    let profile = write_profile(&profile_dir, false);
    let store = Store::open(dir.path().join("gateway.sqlite"), StoreOptions::default())
        .await
        .expect("store");
    let identity = Identity {
        tenant: "mso-test".to_owned(),
        practice: Some("cardio-north".to_owned()),
        site: Some("main".to_owned()),
    };
    let pipeline = Pipeline::new(store.clone(), ProfileSet::new([profile]), identity)
        .with_parser(Arc::new(JsonParser));
    Setup {
        _dir: dir,
        store,
        pipeline,
        profile_dir,
    }
}

#[tokio::test]
async fn accepted_message_is_committed_before_the_outcome_and_duplicates_add_no_event() {
    let s = setup().await;
    let outcome = s
        .pipeline
        .submit(inbound(&order("C1", "ORD1", "E10001")))
        .await
        .expect("committed");
    let IntakeOutcome::Accepted {
        receipt, case_id, ..
    } = outcome
    else {
        panic!("expected accepted, got {outcome:?}");
    };
    // The outcome came back, so the row and the case must already be readable.
    let record = s
        .store
        .get_case(&case_id)
        .await
        .expect("read")
        .expect("case stored");
    assert_eq!(
        record.case.tenant, "mso-test",
        "daemon identity overrides profile default"
    );
    assert_eq!(record.case.practice.as_deref(), Some("cardio-north"));
    assert_eq!(record.case.services.len(), 2);
    assert_eq!(record.last_sequence, 1);
    let message = s
        .store
        .get_message(receipt.message_id)
        .await
        .expect("read")
        .expect("message stored");
    assert_eq!(message.summary.state, MessageState::Accepted);
    assert_eq!(message.summary.control_id.as_deref(), Some("C1"));

    let again = s
        .pipeline
        .submit(inbound(&order("C1", "ORD1", "E10001")))
        .await
        .expect("committed");
    match again {
        IntakeOutcome::Duplicate { receipt: original } => {
            assert_eq!(original, receipt)
        }
        other => panic!("expected duplicate, got {other:?}"),
    }
    let record = s
        .store
        .get_case(&case_id)
        .await
        .expect("read")
        .expect("case");
    assert_eq!(record.last_sequence, 1, "no second event for a duplicate");
}

#[tokio::test]
async fn rejections_are_stored_with_reason_and_diagnostics() {
    let s = setup().await;
    // Parse failure.
    let bad = "{not json";
    let outcome = s.pipeline.submit(inbound(bad)).await.expect("committed");
    let IntakeOutcome::Rejected { receipt, error, .. } = outcome else {
        panic!("expected rejection");
    };
    assert_eq!(error.kind, gateway_core::ErrorKind::Sender);
    let stored = s
        .store
        .get_message(receipt.message_id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(stored.summary.state, MessageState::Rejected);
    assert_eq!(stored.raw, bad.as_bytes(), "raw bytes kept exactly");
    assert!(
        stored
            .summary
            .error_reason
            .as_deref()
            .unwrap_or("")
            .contains("J001")
    );
    assert_eq!(stored.diagnostics[0].code, "J001");

    // Unknown message type.
    let outcome = s
        .pipeline
        .submit(inbound(
            r#"{"_meta": {"message_type": "XYZ", "control_id": "C9"}}"#,
        ))
        .await
        .expect("committed");
    let IntakeOutcome::Rejected { error, .. } = outcome else {
        panic!("expected rejection");
    };
    assert!(
        error.message.contains("unsupported message type XYZ"),
        "{}",
        error.message
    );

    // Missing required field (birth date).
    let raw = r#"{"_meta": {"message_type": "ORDER", "control_id": "C10"},
                  "patient": {"mrn": "E1"}, "order": {"id": "O10", "lines": [{"code": "1"}]}}"#;
    let outcome = s.pipeline.submit(inbound(raw)).await.expect("committed");
    let IntakeOutcome::Rejected {
        error, diagnostics, ..
    } = outcome
    else {
        panic!("expected rejection");
    };
    assert_eq!(error.kind, gateway_core::ErrorKind::Mapping);
    assert!(diagnostics.iter().any(Diagnostic::is_error));

    let rejected = s
        .store
        .list_messages(MessageFilter {
            state: Some(MessageState::Rejected),
            ..MessageFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(rejected.len(), 3);
    assert!(rejected.iter().all(|m| m.error_reason.is_some()));
}

#[tokio::test]
async fn replay_after_a_mapping_fix_turns_a_rejected_message_into_a_case() {
    let s = setup().await;
    let raw = r#"{"_meta": {"message_type": "REFERRAL", "control_id": "R1", "sender": "DEMO"},
                  "patient": {"mrn": "E20002"}, "ref": {"id": "REF1"}}"#;
    let outcome = s.pipeline.submit(inbound(raw)).await.expect("committed");
    let IntakeOutcome::Rejected { receipt, .. } = outcome else {
        panic!("REFERRAL has no mapping yet");
    };

    // The integration engineer adds the mapping file; the profiles are reloaded.
    let fixed = write_profile(&s.profile_dir, true);
    s.pipeline.profiles().replace([fixed]);
    s.store
        .replay_message(receipt.message_id)
        .await
        .expect("queued");
    let n = gateway_pipeline::replay::replay_pending(&s.pipeline, 10)
        .await
        .expect("replayed");
    assert_eq!(n, 1);
    let stored = s
        .store
        .get_message(receipt.message_id)
        .await
        .expect("read")
        .expect("row");
    assert_eq!(stored.summary.state, MessageState::Accepted);
    let case_id = stored.summary.case_id.expect("case linked");
    assert!(s.store.get_case(&case_id).await.expect("read").is_some());
    // Nothing left to replay.
    let n = gateway_pipeline::replay::replay_pending(&s.pipeline, 10)
        .await
        .expect("replayed");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn patient_update_updates_every_open_case_of_the_patient() {
    let s = setup().await;
    let mut case_ids = Vec::new();
    for (control, order_id) in [("C1", "ORD1"), ("C2", "ORD2")] {
        match s
            .pipeline
            .submit(inbound(&order(control, order_id, "E30003")))
            .await
            .expect("committed")
        {
            IntakeOutcome::Accepted { case_id, .. } => case_ids.push(case_id),
            other => panic!("expected accepted, got {other:?}"),
        }
    }
    // Another patient's case must not change.
    let IntakeOutcome::Accepted { case_id: other, .. } = s
        .pipeline
        .submit(inbound(&order("C3", "ORD3", "E99999")))
        .await
        .expect("committed")
    else {
        panic!("expected accepted");
    };

    let adt = r#"{"_meta": {"message_type": "ADT^A08", "control_id": "A1", "sender": "DEMO"},
                  "patient": {"mrn": "E30003", "last": "Renamed", "city": "Austin"}}"#;
    let outcome = s.pipeline.submit(inbound(adt)).await.expect("committed");
    assert!(
        matches!(outcome, IntakeOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    for case_id in &case_ids {
        let record = s
            .store
            .get_case(case_id)
            .await
            .expect("read")
            .expect("case");
        let patient = record.case.patient.expect("patient");
        assert_eq!(
            patient.name.and_then(|n| n.family).as_deref(),
            Some("Renamed")
        );
        assert_eq!(record.last_sequence, 2, "one updated event");
        assert_eq!(record.case.services.len(), 2, "order data kept");
    }
    let record = s.store.get_case(&other).await.expect("read").expect("case");
    assert_eq!(record.last_sequence, 1);

    // An update for a patient without open cases is acknowledged and kept
    // (no negative ACK for routine ADT traffic), never turned into a case.
    let adt = r#"{"_meta": {"message_type": "ADT^A08", "control_id": "A2"},
                  "patient": {"mrn": "E40004", "last": "Nobody"}}"#;
    let outcome = s.pipeline.submit(inbound(adt)).await.expect("committed");
    let IntakeOutcome::Kept {
        receipt, reason, ..
    } = outcome
    else {
        panic!("expected Kept, got {outcome:?}");
    };
    assert!(reason.contains("no open case"), "{reason}");
    let stored = s
        .store
        .get_message(receipt.message_id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.summary.case_id, None);
    assert_eq!(stored.summary.state.as_str(), "accepted");
    // The same ADT again is a duplicate, still without a case event.
    let again = s.pipeline.submit(inbound(adt)).await.expect("committed");
    assert!(
        matches!(again, IntakeOutcome::Duplicate { .. }),
        "{again:?}"
    );
}

/// A stand-in for the EHR side of a write-back (outside our product): fails
/// retryably `fail_first` times, then records the case id.
struct RecordingEhr {
    fail_first: usize,
    calls: AtomicUsize,
    written: Mutex<Vec<String>>,
}

impl WriteBack for RecordingEhr {
    fn adapter(&self) -> &str {
        "json"
    }

    fn apply<'a>(
        &'a self,
        case: &'a Case,
    ) -> BoxFuture<'a, Result<WriteBackReceipt, GatewayError>> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                return Err(GatewayError::downstream(true, "EHR busy"));
            }
            self.written
                .lock()
                .expect("lock")
                .push(case.case_id.clone());
            Ok(WriteBackReceipt {
                detail: format!("decision for {} written", case.case_id),
            })
        })
    }
}

#[tokio::test]
async fn decisions_are_validated_recorded_and_written_back_with_retry() {
    let s = setup().await;
    let IntakeOutcome::Accepted { case_id, .. } = s
        .pipeline
        .submit(inbound(&order("C1", "ORD1", "E10001")))
        .await
        .expect("committed")
    else {
        panic!("expected accepted");
    };
    let wake = Arc::new(Notify::new());
    let intake = DecisionIntake::new(s.store.clone(), wake.clone());
    let decision = |line: u32, end: &str| Decision {
        status: DecisionStatus::Approved,
        authorization_number: Some("AUTH1".to_owned()),
        effective: Some(Period {
            start: Some("2026-12-01".to_owned()),
            end: Some(end.to_owned()),
        }),
        reason_codes: vec![],
        payer_trace: vec![],
        service_decisions: vec![ServiceDecision {
            line,
            status: DecisionStatus::Approved,
            authorization_number: None,
            quantity: None,
            effective: None,
            reason_codes: vec![],
        }],
        decided_at: None,
        note: None,
    };

    let unknown = intake
        .submit("case-000000000000000000000000", decision(1, "2027-01-01"))
        .await;
    assert!(matches!(unknown, Err(DecisionError::UnknownCase(_))));
    match intake.submit(&case_id, decision(7, "2027-01-01")).await {
        Err(DecisionError::Invalid { pointer, .. }) => {
            assert_eq!(pointer, "/service_decisions/0/line")
        }
        other => panic!("expected invalid, got {other:?}"),
    }
    match intake.submit(&case_id, decision(1, "2026-01-01")).await {
        Err(DecisionError::Invalid { pointer, .. }) => assert_eq!(pointer, "/effective/end"),
        other => panic!("expected invalid, got {other:?}"),
    }

    let receipt = intake
        .submit(&case_id, decision(1, "2027-02-28"))
        .await
        .expect("recorded");
    let record = s
        .store
        .get_case(&case_id)
        .await
        .expect("read")
        .expect("case");
    assert_eq!(record.case.status.as_str(), "approved");

    let ehr = Arc::new(RecordingEhr {
        fail_first: 1,
        calls: AtomicUsize::new(0),
        written: Mutex::new(Vec::new()),
    });
    let mut registry = WriteBackRegistry::new();
    registry.register(ehr.clone(), None);
    let mut worker = WriteBackWorker::new(s.store.clone(), registry, wake).with_backoff(
        gateway_store::backoff::BackoffPolicy {
            initial_ms: 10,
            max_ms: 20,
            multiplier: 2.0,
        },
    );
    worker.poll_interval = Duration::from_millis(10);
    // First pass fails retryably, a later one succeeds.
    assert_eq!(worker.pass().await.expect("pass"), 1);
    let state = s
        .store
        .read(move |r| r.writeback_state(receipt.decision_id))
        .await
        .expect("read");
    assert_eq!(state.map(|s| s.0), Some(WriteBackState::Pending));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        worker.pass().await.expect("pass");
        let state = s
            .store
            .read(move |r| r.writeback_state(receipt.decision_id))
            .await
            .expect("read");
        if state.map(|s| s.0) == Some(WriteBackState::Done) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "write-back never completed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*ehr.written.lock().expect("lock"), vec![case_id]);
    assert_eq!(ehr.calls.load(Ordering::SeqCst), 2);
}

/// Known traffic gives exact counts in the Prometheus text: the pipeline's
/// metrics are recorded into a recorder local to this test's thread.
#[test]
fn metrics_count_known_traffic_exactly() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let s = setup().await;
            for raw in [
                order("C1", "ORD1", "E10001"),
                order("C1", "ORD1", "E10001"),
                order("C2", "ORD2", "E10002"),
                "{broken".to_owned(),
            ] {
                s.pipeline.submit(inbound(&raw)).await.expect("committed");
            }
        })
    });
    let text = handle.render();
    let line = |outcome: &str| {
        format!(
            "ehr_gateway_messages_total{{adapter=\"json\",profile=\"demo-json\",outcome=\"{outcome}\"}}"
        )
    };
    assert!(
        text.contains(&format!("{} 2\n", line("accepted"))),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} 1\n", line("duplicate"))),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} 1\n", line("rejected"))),
        "{text}"
    );
    assert!(
        text.contains("ehr_gateway_cases_total{profile=\"demo-json\",status=\"requested\"} 2\n"),
        "{text}"
    );
}

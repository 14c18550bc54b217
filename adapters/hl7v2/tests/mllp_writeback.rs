//! Decision write-back over MLLP: the outbound message reaches a real MLLP
//! receiver (our listener, recording what it gets), in order, with a stable
//! control id per decision; negative ACKs map to retryable or permanent errors.

mod common;

use common::scripted::{Action, ScriptedReceiver, ack};
use common::*;
use gateway_core::Case;
use gateway_core::adapter::WriteBack;
use gateway_core::error::ErrorKind;
use gateway_hl7v2::mllp::writeback::decision_control_id;
use gateway_hl7v2::mllp::{MllpWriteBack, SenderConfig};
use gateway_hl7v2::outbound::OutboundTemplate;

const TEMPLATE: &str = r#"
message_type = "ORU^R01"
sending_application = "EHR-GATEWAY"
sending_facility = "MSO"
receiving_application = "EPIC"
receiving_facility = "CARDIO-NORTH"
[[observation]]
fact = "status"
code = "PA-STATUS^Prior auth status^L"
[[observation]]
fact = "authorization_number"
code = "PA-AUTH^Authorization number^L"
"#;

fn case(order: &str, auth: &str) -> Case {
    serde_json::from_value(serde_json::json!({
        "schema": "ehr-gateway/case/v1",
        "case_id": format!("case-{order}"),
        "tenant": "mso-demo",
        "source": {"adapter": "hl7v2", "profile": "epic", "message_type": "ORM^O01",
                   "control_id": "MSG0001", "sender": "EPIC^CARDIO-NORTH",
                   "received_at": "2026-11-22T10:00:00Z"},
        "status": "approved",
        "urgency": "routine",
        "patient": {"identifiers": [{"type": "MR", "value": "E10001"}],
                    "name": {"family": "Testpatient", "given": ["Alpha"]},
                    "birth_date": "1970-01-31", "sex": "female"},
        "decision": {"status": "approved", "authorization_number": auth,
                     "effective": {"start": "2026-12-01", "end": "2027-02-28"}},
        "references": {"placer_order": order}
    }))
    .expect("case json")
}

fn sender(addr: &str) -> SenderConfig {
    let mut c = SenderConfig::new(addr);
    c.response_timeout_ms = 3_000;
    c
}

#[tokio::test]
async fn decisions_are_written_in_order_with_stable_control_ids() {
    let p = RecordingPipeline::new(Mode::Accept);
    let run = start(config(), p.clone()).await;
    let template = OutboundTemplate::from_toml(TEMPLATE).expect("template");
    let wb = MllpWriteBack::new(template, sender(&run.addr.to_string())).expect("writeback");
    assert_eq!(wb.adapter(), "hl7v2");
    let cases = [
        case("ORD1", "AUTH0001"),
        case("ORD2", "AUTH0002"),
        case("ORD3", "AUTH0003"),
    ];
    for c in &cases {
        let receipt = wb.apply(c).await.expect("written");
        assert!(
            receipt.detail.starts_with("ORU^R01 control GW"),
            "{}",
            receipt.detail
        );
        assert!(
            receipt.detail.ends_with("acknowledged AA"),
            "{}",
            receipt.detail
        );
    }
    let got = p.recorded.lock().expect("lock").messages.clone();
    assert_eq!(got.len(), 3);
    for (m, c) in got.iter().zip(&cases) {
        let text = String::from_utf8_lossy(&m.raw);
        assert!(text.contains("|ORU^R01"), "{text}");
        let auth = c
            .decision
            .as_ref()
            .and_then(|d| d.authorization_number.clone())
            .expect("auth");
        assert!(text.contains(&auth), "{text}");
        assert_eq!(
            gateway_hl7v2::mllp::ack_check::control_id_of(&m.raw).expect("MSH-10"),
            decision_control_id(c)
        );
    }
    // Same decision, same control id (a retry is recognisable); another decision differs.
    assert_eq!(
        decision_control_id(&cases[0]),
        decision_control_id(&case("ORD1", "AUTH0001"))
    );
    assert_ne!(
        decision_control_id(&cases[0]),
        decision_control_id(&case("ORD1", "AUTH9999"))
    );
    assert!(decision_control_id(&cases[0]).len() <= 20);
    let peers: std::collections::BTreeSet<_> = got.iter().filter_map(|m| m.peer.clone()).collect();
    assert_eq!(peers.len(), 1, "one persistent connection");
    run.shutdown().await;
}

#[tokio::test]
async fn negative_acks_become_retryable_or_permanent_errors() {
    let template = OutboundTemplate::from_toml(TEMPLATE).expect("template");
    let ae = ScriptedReceiver::start(|_, _, id| Action::Ack(ack("AE", id))).await;
    let wb = MllpWriteBack::new(template.clone(), sender(&ae.addr)).expect("writeback");
    let err = wb.apply(&case("ORD9", "AUTH9")).await.expect_err("AE");
    assert_eq!(err.kind, ErrorKind::Downstream);
    assert!(
        !err.retryable,
        "AE: the message is wrong, resending cannot help"
    );

    let ar = ScriptedReceiver::start(|_, _, id| Action::Ack(ack("AR", id))).await;
    let wb = MllpWriteBack::new(template.clone(), sender(&ar.addr)).expect("writeback");
    let err = wb.apply(&case("ORD9", "AUTH9")).await.expect_err("AR");
    assert!(err.retryable, "AR: the receiver may take it later");
    assert_eq!(
        ar.frames(),
        1,
        "one attempt per apply; the worker owns retries"
    );

    let mut silent_cfg = sender("127.0.0.1:9");
    silent_cfg.connect_timeout_ms = 500;
    let wb = MllpWriteBack::new(template, silent_cfg).expect("writeback");
    let err = wb
        .apply(&case("ORD9", "AUTH9"))
        .await
        .expect_err("nobody listening");
    assert!(err.retryable);
}

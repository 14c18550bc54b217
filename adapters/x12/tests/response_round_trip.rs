//! Decision → 278 response (outbound/response.toml) → our parser → the profile
//! → the same decision facts, for every decision status; the response is clean,
//! correlates to the request's case, and our own 999 accepts it.

mod common;

use gateway_core::Case;
use gateway_core::case::{CaseStatus, Decision};
use gateway_x12::ack::{AckIdentity, acknowledge, parse_acks};
use gateway_x12::outbound::ResponseTemplate;
use gateway_x12::write::{EnvelopeParams, MemoryControlNumbers};
use gateway_x12::{parse_documents, parse_interchange};
use serde_json::{Value, json};

/// The case our profile makes of the two-line request sample.
fn requested_case() -> Case {
    let docs = parse_documents(&common::sample("request-two-lines.x12")).expect("parses");
    let outcome = common::profile().map(&docs[0], &common::context());
    let case = outcome.case.expect("request maps");
    assert_eq!(case.services.len(), 2, "the sample has two lines");
    case
}

fn template() -> ResponseTemplate {
    ResponseTemplate::load(&common::repo().join("mappings/x12-278/outbound/response.toml"))
        .expect("template loads")
}

/// Writes the response for `case` + `decision`, checks it is clean and
/// accepted by our 999, and maps it back.
fn round_trip(decision: Value) -> (Case, Case, String) {
    let mut case = requested_case();
    let decision: Decision = serde_json::from_value(decision).expect("valid decision");
    case.status = decision.status.case_status();
    case.decision = Some(decision);
    let numbers = MemoryControlNumbers::starting_after(41);
    let envelope = EnvelopeParams {
        sender_id: "DEMOPAYER".into(),
        receiver_id: "CARDIONORTH".into(),
        ..EnvelopeParams::default()
    };
    let bytes = template()
        .interchange(&case, &envelope, &numbers, &common::stamp())
        .expect("response written");
    let text = String::from_utf8(bytes.clone()).expect("ascii");
    let parsed = parse_interchange(&bytes).expect("parses");
    assert!(parsed.is_clean(), "{:#?}\n{text}", parsed.findings);
    assert!(text.contains("ISA*00*"), "{text}");
    assert!(
        text.contains("*000000042*0*T*:~"),
        "ISA13 from the allocator\n{text}"
    );
    assert!(text.contains("IEA*1*000000042~"), "{text}");

    let ack =
        acknowledge(&bytes, &AckIdentity::default(), &numbers, &common::stamp()).expect("ack");
    let acks = parse_acks(ack.functional.as_deref().expect("999")).expect("999 parses");
    assert_eq!(acks.functional[0].status, "A", "{text}");

    let docs = parse_documents(&bytes).expect("parses");
    let outcome = common::profile().map(&docs[0], &common::context());
    assert!(!outcome.has_errors(), "{:?}\n{text}", outcome.diagnostics);
    let back = outcome.case.expect("response maps");
    (case, back, text)
}

/// The decision facts a 278 response carries (payer_trace and decided_at are
/// not carried back: see the template's header).
fn facts(case: &Case) -> Value {
    let mut d = serde_json::to_value(case.decision.as_ref().expect("decided")).expect("json");
    if let Value::Object(map) = &mut d {
        map.remove("payer_trace");
        map.remove("decided_at");
    }
    json!({"status": case.status, "decision": d})
}

fn assert_same_facts(decision: Value) -> String {
    let (original, back, text) = round_trip(decision);
    assert_eq!(back.case_id, original.case_id, "BHT03 correlates\n{text}");
    assert_eq!(facts(&back), facts(&original), "\n{text}");
    text
}

#[test]
fn approved_with_authorization_dates_and_note() {
    let text = assert_same_facts(json!({
        "status": "approved",
        "authorization_number": "AUTH-RT-1",
        "effective": {"start": "2026-12-01", "end": "2027-02-28"},
        "note": "APPROVED AS REQUESTED"
    }));
    assert!(
        text.contains("BHT*0007*11*REQ-0002*20261124*1100*18~"),
        "{text}"
    );
    assert!(text.contains("TRN*2*TRACE0002*9EHRGATEWY~"), "{text}");
    assert!(text.contains("HCR*A1*AUTH-RT-1~"), "{text}");
    assert!(text.contains("DTP*007*D8*20261201~"), "{text}");
    assert!(text.contains("DTP*036*D8*20270228~"), "{text}");
    // Every line carries its (here: the case-level) decision.
    assert_eq!(text.matches("HCR*A1*AUTH-RT-1~").count(), 3, "{text}");
}

#[test]
fn partially_approved_with_a_denied_line() {
    let text = assert_same_facts(json!({
        "status": "partially_approved",
        "authorization_number": "AUTH-RT-2",
        "service_decisions": [
            {"line": 2, "status": "denied", "reason_codes": ["0A"]}
        ]
    }));
    assert!(text.contains("HCR*A2*AUTH-RT-2~"), "{text}");
    assert!(text.contains("HCR*A3**0A~"), "{text}");
}

#[test]
fn modified_line_with_approved_quantity_and_own_window() {
    let text = assert_same_facts(json!({
        "status": "modified",
        "authorization_number": "AUTH-RT-3",
        "effective": {"start": "2026-12-01", "end": "2027-01-31"},
        "service_decisions": [
            {"line": 1, "status": "modified", "authorization_number": "AUTH-RT-3",
             "quantity": 3, "effective": {"start": "2026-12-10", "end": "2026-12-20"}}
        ]
    }));
    assert!(text.contains("HSD*FL*3~"), "{text}");
}

#[test]
fn denied_pended_and_cancelled_with_reasons() {
    let text = assert_same_facts(json!({"status": "denied", "reason_codes": ["0B"]}));
    assert!(text.contains("HCR*A3**0B~"), "{text}");
    // A pended response says more is to come (BHT06 19), which reads back as
    // words after the payer's note; everything else is the same.
    let pended = json!({"status": "pended", "note": "CLINICAL NOTES REQUESTED"});
    let (original, back, text) = round_trip(pended);
    assert!(text.contains("*1100*19~"), "BHT06 19\n{text}");
    assert!(text.contains("HCR*A4~"), "{text}");
    assert!(text.contains("MSG*CLINICAL NOTES REQUESTED~"), "{text}");
    assert_eq!(back.case_id, original.case_id);
    let mut expected = facts(&original);
    expected["decision"]["note"] =
        json!("CLINICAL NOTES REQUESTED Further updates to follow (BHT06 19).");
    assert_eq!(facts(&back), expected, "\n{text}");
    assert_same_facts(json!({"status": "cancelled"}));
}

#[test]
fn a_rejection_is_answered_with_aaa_and_reads_back_as_an_error_not_a_denial() {
    let (_, back, text) = round_trip(json!({"status": "error", "reason_codes": ["15", "72"]}));
    assert!(!text.contains("HCR*"), "{text}");
    assert!(text.contains("AAA*N**15*C~"), "{text}");
    assert!(text.contains("AAA*N**72*C~"), "{text}");
    assert!(
        !text.contains("*SS*"),
        "no service lines in a rejection\n{text}"
    );
    assert_eq!(back.status, CaseStatus::Error);
    let d = back.decision.expect("decision");
    assert_eq!(d.reason_codes, vec!["15".to_owned(), "72".to_owned()]);
}

/// The response echoes the requester's trace with the requester's originator
/// id (TRN03 of their TRN*1), not ours; a case without a trace of theirs
/// (opened by another adapter) gets ours.
#[test]
fn the_trace_echo_keeps_the_requesters_originator() {
    let mut case = requested_case();
    case.references
        .insert("x12_trace_originator".into(), "1PMSYSTEM1".into());
    case.status = gateway_core::case::CaseStatus::Approved;
    case.decision = Some(
        serde_json::from_value(json!({"status": "approved", "authorization_number": "A-1"}))
            .expect("decision"),
    );
    let write = |case: &Case| {
        let bytes = template()
            .interchange(
                case,
                &EnvelopeParams::default(),
                &MemoryControlNumbers::starting_after(1),
                &common::stamp(),
            )
            .expect("response written");
        String::from_utf8(bytes).expect("ascii")
    };
    let text = write(&case);
    assert!(text.contains("TRN*2*TRACE0002*1PMSYSTEM1~"), "{text}");
    assert_eq!(text.matches("TRN*2*").count(), 1, "{text}");

    case.references.remove("x12_trace_originator");
    case.references.remove("x12_trace");
    let text = write(&case);
    assert!(
        text.contains(&format!("TRN*2*{}*9EHRGATEWY~", case.case_id)),
        "{text}"
    );
}

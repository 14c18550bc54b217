//! Case → 278 request (outbound template) → parse → map (profile) → Case:
//! the same facts come back, and the request we write is clean and accepted
//! by our own 999.

mod common;

use gateway_core::Case;
use gateway_x12::ack::{AckIdentity, acknowledge, parse_acks};
use gateway_x12::outbound::RequestTemplate;
use gateway_x12::write::{EnvelopeParams, MemoryControlNumbers};
use gateway_x12::{parse_documents, parse_interchange};
use serde_json::{Value, json};

fn case() -> Case {
    serde_json::from_value(json!({
        "case_id": "case-000000000000000000000001",
        "tenant": "mso-demo",
        "source": {"adapter": "hl7v2", "profile": "epic", "received_at": "2026-11-22T10:00:00Z"},
        "status": "requested",
        "urgency": "urgent",
        "patient": {
            // REF*EJ carries the patient account number (AN); a 278 has no
            // place for a medical record number.
            "identifiers": [{"type": "AN", "value": "E10042"}],
            "name": {"family": "TESTPATIENT", "given": ["JOHN", "X"]},
            "birth_date": "1981-02-03",
            "sex": "male",
            "address": {"lines": ["9 TEST RD", "APT 2"], "city": "AUSTIN", "state": "TX", "postal_code": "78702"}
        },
        "coverages": [{"sequence": 1, "payer": {"id": "60054", "name": "DEMO HEALTH PLAN"},
                        "member_id": "W000000042", "group_number": "G200", "subscriber_relationship": "self"}],
        "providers": [
            {"role": "requester", "npi": "1234567893", "organization": "CARDIO NORTH CLINIC", "phone": "5125550100"},
            {"role": "ordering", "npi": "1000000004", "name": {"family": "HEART", "given": ["ANN"]}},
            {"role": "servicing", "npi": "1111111112", "organization": "NORTH IMAGING CENTER"}
        ],
        "services": [
            {"line": 1, "code": {"system": "CPT", "code": "78452"}, "quantity": 1, "unit": "UN",
             "service_date": {"start": "2026-12-01", "end": "2026-12-31"}, "place_of_service": "22"},
            {"line": 2, "code": {"system": "HCPCS", "code": "E0601"}, "modifiers": ["NU", "RR"], "quantity": 2, "unit": "UN",
             "service_date": {"start": "2026-12-05"}, "place_of_service": "22"}
        ],
        "diagnoses": [
            {"code": {"system": "ICD-10-CM", "code": "I25.10"}, "primary": true},
            {"code": {"system": "ICD-10-CM", "code": "G47.33"}}
        ],
        "references": {"x12_bht_reference": "BHT-RT-0001", "x12_trace": "TRACE-RT-1"},
        "notes": ["REQUEST FOR REVIEW"]
    }))
    .expect("valid case")
}

fn template() -> RequestTemplate {
    RequestTemplate::load(&common::repo().join("mappings/x12-278/outbound/request.toml"))
        .expect("template loads")
}

/// The facts a 278 request carries.
fn facts(case: &Case) -> Value {
    let v = serde_json::to_value(case).expect("json");
    let keys = [
        "urgency",
        "patient",
        "coverages",
        "providers",
        "services",
        "diagnoses",
        "references",
        "notes",
    ];
    Value::Object(
        keys.iter()
            .filter_map(|k| v.get(*k).map(|x| ((*k).to_owned(), x.clone())))
            .collect(),
    )
}

#[test]
fn case_to_request_and_back_gives_the_same_facts() {
    let original = case();
    let numbers = MemoryControlNumbers::new();
    let bytes = template()
        .interchange(
            &original,
            &EnvelopeParams::default(),
            &numbers,
            &common::stamp(),
        )
        .expect("request written");
    let text = String::from_utf8(bytes.clone()).expect("ascii");
    let parsed = parse_interchange(&bytes).expect("parses");
    assert!(parsed.is_clean(), "{:#?}\n{text}", parsed.findings);
    assert!(
        text.contains("BHT*0007*13*BHT-RT-0001*20261124*1100~"),
        "{text}"
    );
    assert!(text.contains("HI*ABK:I2510*ABF:G4733~"), "{text}");
    assert!(text.contains("SV1*HC:E0601:NU:RR*0*UN*2*22~"), "{text}");

    let docs = parse_documents(&bytes).expect("parses");
    let outcome = common::profile().map(&docs[0], &common::context());
    assert!(!outcome.has_errors(), "{:?}", outcome.diagnostics);
    let back = outcome.case.expect("case");
    assert_eq!(back.status, gateway_core::case::CaseStatus::Requested);
    // Reading it back adds one fact the writer supplies: we originated the
    // trace (TRN03 of our TRN*1).
    let mut expected = original.clone();
    expected
        .references
        .insert("x12_trace_originator".into(), "9EHRGATEWY".into());
    assert_eq!(facts(&back), facts(&expected), "\n{text}");

    // Our own 999 accepts what we write.
    let ack =
        acknowledge(&bytes, &AckIdentity::default(), &numbers, &common::stamp()).expect("ack");
    let acks = parse_acks(ack.functional.as_deref().expect("999")).expect("999 parses");
    assert_eq!(acks.functional.len(), 1);
    assert_eq!(acks.functional[0].status, "A");
    assert_eq!(acks.functional[0].sets[0].status, "A");
}

#[test]
fn template_errors_are_reported_at_load() {
    let bad =
        "header = [[\"BHT\", \"{case_id|nosuch}\"]]\n[[loops]]\nlevel = \"20\"\nsegments = []\n";
    let err = RequestTemplate::parse("bad.toml", bad).expect_err("unknown filter");
    assert!(err.to_string().contains("unknown filter"), "{err}");
    let bad = "header = []\n[[loops]]\nlevel = \"99\"\nsegments = []\n";
    assert!(RequestTemplate::parse("bad.toml", bad).is_err());
    let bad = "header = []\nloops = []\nextra = 1\n";
    assert!(RequestTemplate::parse("bad.toml", bad).is_err());
}

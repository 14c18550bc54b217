//! The 2010B requester of a written 278 request for cases that did not come
//! from X12: an HL7 v2 or FHIR case names an `ordering` and/or `referring`
//! provider, never a `requester`. The writer's rule
//! (`gateway_x12::outbound::requesting_provider_index`): `requester`, else
//! `ordering`, else `referring`; the one chosen is not written again as a
//! 2010EA event provider, and a case with none of them is refused by name.
//! Every request written here passes our own 999 (the TR3 check we apply to
//! what we receive).

mod common;

use gateway_core::Case;
use gateway_x12::ack::{AckIdentity, acknowledge};
use gateway_x12::outbound::{RequestTemplate, TemplateError, requesting_provider_index};
use gateway_x12::write::{EnvelopeParams, MemoryControlNumbers};
use serde_json::{Value, json};

/// Synthetic NPIs with a valid check digit.
const ORDERING_NPI: &str = "1234567893";
const REFERRING_NPI: &str = "1987654328";
const REQUESTER_NPI: &str = "1245319599";
const SERVICING_NPI: &str = "1679576722";

fn ordering() -> Value {
    json!({"role": "ordering", "npi": ORDERING_NPI, "name": {"family": "HEARTDOC", "given": ["ANN"]}})
}

fn referring() -> Value {
    json!({"role": "referring", "npi": REFERRING_NPI, "name": {"family": "REFERDOC", "given": ["BOB"]}})
}

fn requester() -> Value {
    json!({"role": "requester", "npi": REQUESTER_NPI, "organization": "CARDIO NORTH CLINIC"})
}

fn servicing() -> Value {
    json!({"role": "servicing", "npi": SERVICING_NPI, "organization": "NORTH IMAGING CENTER"})
}

/// An HL7-shaped case (what the epic profile maps from an ORM^O01) with the
/// given providers.
fn case(providers: Vec<Value>) -> Case {
    serde_json::from_value(json!({
        "case_id": "case-6b07fb6b67301125c12b09db",
        "tenant": "mso-demo",
        "source": {"adapter": "hl7v2", "profile": "epic", "message_type": "ORM^O01",
                   "received_at": "2026-11-22T10:00:00Z"},
        "status": "requested",
        "urgency": "routine",
        "patient": {"identifiers": [{"type": "MR", "value": "E20001"}],
                    "name": {"family": "TESTPATIENT", "given": ["EMMA", "R"]},
                    "birth_date": "1958-03-09", "sex": "female"},
        "coverages": [{"sequence": 1, "payer": {"id": "60054", "name": "DEMO HEALTH PLAN"},
                       "member_id": "W200000001", "group_number": "G300"}],
        "providers": providers,
        "services": [{"line": 1, "code": {"system": "CPT", "code": "78452"},
                      "service_date": {"start": "2026-12-01"}}],
        "diagnoses": [{"code": {"system": "ICD-10-CM", "code": "I25.10"}, "primary": true}],
        "references": {"placer_order": "EP5001"}
    }))
    .expect("valid case")
}

/// The request written (checked by our 999), or the facts the writer says
/// the case lacks.
fn write(case: &Case) -> Result<String, Vec<String>> {
    let template =
        RequestTemplate::load(&common::repo().join("mappings/x12-278/outbound/request.toml"))
            .expect("template loads");
    match template.interchange(
        case,
        &EnvelopeParams::default(),
        &MemoryControlNumbers::new(),
        &common::stamp(),
    ) {
        Ok(bytes) => {
            let ack = acknowledge(
                &bytes,
                &AckIdentity::default(),
                &MemoryControlNumbers::new(),
                &common::stamp(),
            )
            .expect("999");
            let text = String::from_utf8(bytes).expect("ascii");
            assert_eq!(ack.verdict, 'A', "our 999 rejects:\n{text}");
            Ok(text)
        }
        Err(TemplateError::Refused(facts)) => Err(facts),
        Err(e) => panic!("unexpected writer error: {e}"),
    }
}

/// The NM1 segments (as element lists) of the HL loop with HL03 `level`.
fn nm1s_in(text: &str, level: &str) -> Vec<Vec<String>> {
    let mut current = String::new();
    let mut out = Vec::new();
    for seg in text.split('~') {
        let seg = seg.trim();
        let els: Vec<String> = seg.split('*').map(str::to_owned).collect();
        if els[0] == "HL" {
            current = els.get(3).cloned().unwrap_or_default();
        } else if els[0] == "NM1" && current == level {
            out.push(els);
        }
    }
    out
}

/// `(NM101, NM109)` of the 2010B requester loop.
fn requester_2010b(text: &str) -> Vec<(String, String)> {
    nm1s_in(text, "21")
        .into_iter()
        .map(|e| (e[1].clone(), e.get(9).cloned().unwrap_or_default()))
        .collect()
}

/// `(NM101, NM109)` of the 2010EA event providers.
fn event_providers(text: &str) -> Vec<(String, String)> {
    nm1s_in(text, "EV")
        .into_iter()
        .map(|e| (e[1].clone(), e.get(9).cloned().unwrap_or_default()))
        .collect()
}

#[test]
fn an_hl7_order_is_requested_by_its_ordering_provider() {
    let case = case(vec![ordering(), referring(), servicing()]);
    assert_eq!(requesting_provider_index(&case), Some(0));
    let text = write(&case).expect("written");
    let nm1 = &nm1s_in(&text, "21")[0];
    assert_eq!(
        nm1[..10],
        [
            "NM1",
            "1P",
            "1",
            "HEARTDOC",
            "ANN",
            "",
            "",
            "",
            "XX",
            ORDERING_NPI
        ]
    );
    assert_eq!(requester_2010b(&text).len(), 1);
    // Not written twice: the referring and servicing providers stay event
    // providers, the ordering one does not.
    assert_eq!(
        event_providers(&text),
        [
            ("DN".to_owned(), REFERRING_NPI.to_owned()),
            ("SJ".to_owned(), SERVICING_NPI.to_owned())
        ]
    );
}

#[test]
fn a_referral_is_requested_by_its_referring_provider() {
    let case = case(vec![servicing(), referring()]);
    assert_eq!(requesting_provider_index(&case), Some(1));
    let text = write(&case).expect("written");
    assert_eq!(
        requester_2010b(&text),
        [("1P".to_owned(), REFERRING_NPI.to_owned())]
    );
    assert_eq!(
        event_providers(&text),
        [("SJ".to_owned(), SERVICING_NPI.to_owned())]
    );
}

#[test]
fn a_requester_beats_the_ordering_provider_which_stays_an_event_provider() {
    let case = case(vec![ordering(), requester(), referring()]);
    assert_eq!(requesting_provider_index(&case), Some(1));
    let text = write(&case).expect("written");
    let nm1 = &nm1s_in(&text, "21")[0];
    assert_eq!(
        nm1[..10],
        [
            "NM1",
            "1P",
            "2",
            "CARDIO NORTH CLINIC",
            "",
            "",
            "",
            "",
            "XX",
            REQUESTER_NPI
        ]
    );
    assert_eq!(requester_2010b(&text).len(), 1);
    assert_eq!(
        event_providers(&text),
        [
            ("DK".to_owned(), ORDERING_NPI.to_owned()),
            ("DN".to_owned(), REFERRING_NPI.to_owned())
        ]
    );
}

#[test]
fn the_ordering_provider_beats_the_referring_one_whatever_the_order() {
    let case = case(vec![referring(), ordering()]);
    assert_eq!(requesting_provider_index(&case), Some(1));
    let text = write(&case).expect("written");
    assert_eq!(
        requester_2010b(&text),
        [("1P".to_owned(), ORDERING_NPI.to_owned())]
    );
    assert_eq!(
        event_providers(&text),
        [("DN".to_owned(), REFERRING_NPI.to_owned())]
    );
}

#[test]
fn a_case_with_no_requester_ordering_or_referring_provider_is_refused_by_name() {
    let case = case(vec![servicing()]);
    assert_eq!(requesting_provider_index(&case), None);
    let facts = write(&case).expect_err("refused");
    assert!(
        facts
            .iter()
            .any(|f| f == "case has no requesting provider (2010B NM1)"),
        "{facts:?}"
    );
}

#[test]
fn an_ordering_provider_with_an_invalid_npi_is_refused_for_its_npi_and_not_replaced() {
    // The rule picks by role; an NPI failing the check digit is never
    // written, so the request is refused rather than sent with another
    // provider or without an NPI.
    let mut bad = ordering();
    bad["npi"] = json!("1234567890");
    let case = case(vec![bad, referring()]);
    let facts = write(&case).expect_err("refused");
    assert!(
        facts
            .iter()
            .any(|f| f == "case has no requesting provider NPI (2010B NM109)"),
        "{facts:?}"
    );
}

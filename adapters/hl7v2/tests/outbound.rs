//! Decision messages built from a case and read back through our own parser.

use gateway_core::Case;
use gateway_hl7v2::outbound::{OutboundTemplate, build_decision_message};
use gateway_hl7v2::parse::parse_message;
use gateway_hl7v2::path::compile;

const CASE: &str = r#"{
  "case_id": "c-1", "tenant": "mso-demo",
  "source": {"adapter": "hl7v2", "profile": "epic", "received_at": "2026-11-22T10:00:00Z"},
  "status": "approved",
  "patient": {"identifiers": [{"type": "MR", "value": "E10001", "assigner": "NORTH"}],
              "name": {"family": "Testperson", "given": ["Ann|a", "Q"]}, "birth_date": "1970-01-31", "sex": "female"},
  "services": [{"line": 1, "code": {"system": "CPT", "code": "78452", "display": "SPECT^MPI"}}],
  "decision": {"status": "approved", "authorization_number": "AUTH|0001^X",
               "effective": {"start": "2026-12-01", "end": "2027-02-28"},
               "reason_codes": ["A1", "B2"], "payer_trace": [], "service_decisions": [],
               "note": "line one\nline two & more"},
  "references": {"placer_order": "ORD1001", "filler_order": "F2002"}
}"#;

const ORU: &str = r#"
message_type = "ORU^R01"
sending_application = "EHR-GATEWAY"
sending_facility = "MSO"
receiving_application = "EPIC"
receiving_facility = "NORTH"
[status_text]
approved = "A"
[[observation]]
fact = "status"
code = "PA-STATUS^Prior auth status^L"
[[observation]]
fact = "authorization_number"
code = "PA-AUTH^Authorization number^L"
[[observation]]
fact = "effective_start"
code = "PA-START^Effective from^L"
value_type = "DT"
[[observation]]
fact = "effective_end"
code = "PA-END^Effective through^L"
value_type = "DT"
[[observation]]
fact = "reason_codes"
code = "PA-REASON^Reason^L"
[[observation]]
fact = "note"
code = "PA-NOTE^Note^L"
value_type = "TX"
"#;

fn case() -> Case {
    serde_json::from_str(CASE).expect("case")
}

fn get(doc: &gateway_core::SourceDocument, path: &str) -> Vec<String> {
    compile(path)
        .expect("path")
        .evaluate(&doc.tree, doc.tree.root())
        .into_iter()
        .filter_map(|n| doc.tree.value(n).map(str::to_owned))
        .collect()
}

#[test]
fn oru_round_trips_through_the_parser() {
    let t = OutboundTemplate::from_toml(ORU).expect("template");
    let bytes =
        build_decision_message(&t, &case(), "GW0001", "2026-11-22T10:05:00Z").expect("builds");
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(text.starts_with("MSH|^~\\&|EHR-GATEWAY|MSO|EPIC|NORTH|20261122100500+0000||ORU^R01^ORU_R01|GW0001|P|2.5.1\r"), "{text}");
    let doc = parse_message(&bytes).expect("parses");
    assert!(doc.is_clean(), "{:?}", doc.diagnostics);
    assert_eq!(doc.meta.message_type.as_deref(), Some("ORU^R01"));
    assert_eq!(get(&doc, "OBX(3.1=PA-AUTH)-5"), vec!["AUTH|0001^X"]);
    assert_eq!(get(&doc, "OBX(3.1=PA-STATUS)-5"), vec!["A"]);
    assert_eq!(
        get(&doc, "OBX[*](3.1=PA-START|PA-END)-5"),
        vec!["20261201", "20270228"]
    );
    assert_eq!(get(&doc, "OBX[*](3.1=PA-REASON)-5"), vec!["A1", "B2"]);
    assert_eq!(
        get(&doc, "OBX(3.1=PA-NOTE)-5"),
        vec!["line one\nline two & more"]
    );
    assert_eq!(get(&doc, "PID-5.2"), vec!["Ann|a"]);
    assert_eq!(get(&doc, "OBR-4.2"), vec!["SPECT^MPI"]);
    assert_eq!(get(&doc, "ORC-2"), vec!["ORD1001"]);
    assert_eq!(
        get(&doc, "OBX[*]-1"),
        vec!["1", "2", "3", "4", "5", "6", "7"]
    );
    // no double escaping anywhere
    assert!(!text.contains("\\E\\"), "{text}");
}

#[test]
fn mdm_with_latin1_charset() {
    let t = OutboundTemplate::from_toml(
        "message_type = \"MDM^T02\"\nsending_application = \"GW\"\nreceiving_application = \"MT\"\n\
         charset = \"8859/1\"\naccept_ack_type = \"AL\"\ndocument_type = \"PA\"\n\
         [[observation]]\nfact = \"status\"\ncode = \"PA\"\nlabel = \"Genehmigung\"\n\
         [[observation]]\nfact = \"note\"\ncode = \"PA\"\n",
    )
    .expect("template");
    let mut c = case();
    if let Some(d) = c.decision.as_mut() {
        d.note = Some("Prüfung ok".into());
    }
    let bytes = build_decision_message(&t, &c, "GW2", "20261122100500").expect("builds");
    assert!(bytes.contains(&0xFC), "ü as ISO 8859-1 byte");
    let doc = parse_message(&bytes).expect("parses");
    assert!(doc.is_clean(), "{:?}", doc.diagnostics);
    assert_eq!(doc.meta.message_type.as_deref(), Some("MDM^T02"));
    assert_eq!(get(&doc, "MSH-15"), vec!["AL"]);
    assert_eq!(get(&doc, "MSH-18"), vec!["8859/1"]);
    assert_eq!(get(&doc, "TXA-2"), vec!["PA"]);
    assert_eq!(get(&doc, "TXA-12"), vec!["GW2"]);
    assert_eq!(
        get(&doc, "OBX[*]-5"),
        vec!["Genehmigung: APPROVED", "Note: Prüfung ok"]
    );
}

#[test]
fn no_decision_is_an_error() {
    let t = OutboundTemplate::from_toml(ORU).expect("template");
    let mut c = case();
    c.decision = None;
    assert!(build_decision_message(&t, &c, "X", "20260101").is_err());
}

#[test]
fn every_profile_outbound_template_builds_a_parseable_message() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings");
    for (profile, kind) in [
        ("epic", "ORU^R01"),
        ("ecw-onprem", "MDM^T02"),
        ("nextgen-enterprise", "ORU^R01"),
        ("meditech", "MDM^T02"),
    ] {
        let t = OutboundTemplate::load(&root.join(profile).join("outbound/decision.toml"))
            .unwrap_or_else(|e| panic!("{profile}: {e}"));
        let bytes = build_decision_message(&t, &case(), "GW9", "2026-11-22T10:05:00Z")
            .unwrap_or_else(|e| panic!("{profile}: {e}"));
        let doc = parse_message(&bytes).expect("parses");
        assert!(doc.is_clean(), "{profile}: {:?}", doc.diagnostics);
        assert_eq!(doc.meta.message_type.as_deref(), Some(kind), "{profile}");
        assert_eq!(doc.meta.control_id.as_deref(), Some("GW9"));
        let auth: Vec<String> = get(&doc, "OBX[*]-5")
            .into_iter()
            .filter(|v| v.contains("AUTH|0001^X"))
            .collect();
        assert_eq!(
            auth.len(),
            1,
            "{profile}: authorization number once, escaped and decoded"
        );
    }
}

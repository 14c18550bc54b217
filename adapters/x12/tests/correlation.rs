//! Correlation of 278 responses to requests (`correlation/key`, the rule in
//! `gateway_x12::tree::Correlation`): by BHT03, falling back to the 2000E
//! trace (TRN*1 in a request, its TRN*2 echo in a response) when BHT03 is
//! unusable, never by ISA13/GS06/ST02; a 278 with neither gets X042 and no case.

mod common;

use gateway_core::Case;
use gateway_core::source::SourceDocument;
use gateway_x12::parse_documents;

fn edit(sample: &str, edits: &[(&str, &str)]) -> Vec<u8> {
    let mut text = String::from_utf8(common::sample(sample)).expect("ascii sample");
    for (from, to) in edits {
        assert!(text.contains(from), "{sample} has no {from:?}");
        text = text.replace(from, to);
    }
    text.into_bytes()
}

fn document(bytes: &[u8]) -> SourceDocument {
    let mut docs = parse_documents(bytes).expect("parses");
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

/// Maps one 278; returns the case (if any) and every diagnostic code.
fn map(bytes: &[u8]) -> (Option<Case>, Vec<String>) {
    let doc = document(bytes);
    let mut codes: Vec<String> = doc.diagnostics.iter().map(|d| d.code.clone()).collect();
    let outcome = common::profile().map(&doc, &common::context());
    codes.extend(outcome.diagnostics.iter().map(|d| d.code.to_string()));
    (outcome.case, codes)
}

fn case_id(bytes: &[u8]) -> String {
    let (case, codes) = map(bytes);
    case.unwrap_or_else(|| panic!("no case: {codes:?}")).case_id
}

/// 51 characters: one more than BHT03 may have.
const TOO_LONG: &str = "PAYER-OWN-REFERENCE-THAT-IS-NOT-AN-ECHO-0123456789X";

#[test]
fn a_response_correlates_by_bht03_and_never_by_the_envelope() {
    let request = case_id(&common::sample("request.x12"));
    assert_eq!(case_id(&common::sample("response-approved.x12")), request);
    // Other ISA13/GS06/ST02 (and an other trace) do not move it: BHT03 is the key.
    let renumbered = edit(
        "response-approved.x12",
        &[
            ("000000201", "000000777"),
            ("*201*X*", "*777*X*"),
            ("GE*1*201", "GE*1*777"),
            ("ST*278*0001", "ST*278*0042"),
            ("SE*21*0001", "SE*21*0042"),
        ],
    );
    let (case, codes) = map(&renumbered);
    assert!(codes.is_empty(), "{codes:?}");
    assert_eq!(case.expect("case").case_id, request);
}

#[test]
fn a_response_without_a_usable_bht03_correlates_by_its_trn2_trace() {
    // A request whose BHT03 is blank is keyed by its TRN*1 trace …
    let request = edit(
        "request.x12",
        &[("BHT*0007*13*REQ-0001*", "BHT*0007*13* *")],
    );
    let (request_case, codes) = map(&request);
    assert_eq!(codes, ["X041"], "the fallback is announced");
    let request_case = request_case.expect("request case");
    // … and a response whose BHT03 is blank or too long (not an echo) finds
    // that case by the TRN*2 echo of the trace.
    for bht03 in [" ", TOO_LONG] {
        let response = edit(
            "response-approved.x12",
            &[("BHT*0007*11*REQ-0001*", &format!("BHT*0007*11*{bht03}*"))],
        );
        let doc = document(&response);
        assert!(doc.is_clean(), "a warning only: {:?}", doc.diagnostics);
        let d = &doc.diagnostics[0];
        assert_eq!(d.code, "X041");
        assert!(d.message.contains("TRN*2 trace"), "{}", d.message);
        assert_eq!(d.location.as_deref(), Some("BHT-03"));
        let (case, _) = map(&response);
        let case = case.expect("response case");
        assert_eq!(case.case_id, request_case.case_id, "BHT03 {bht03:?}");
        assert_eq!(case.references["x12_trace"], "TRACE0001");
    }
    // Keyed by a trace, it is not the case of a request keyed by its BHT03:
    // a separate case, never merged into an unrelated one.
    assert_ne!(
        request_case.case_id,
        case_id(&common::sample("request.x12"))
    );
}

#[test]
fn the_trace_of_the_key_is_the_echo_of_the_right_request() {
    // Two responses without BHT03 echoing different traces are two cases.
    let a = edit(
        "response-approved.x12",
        &[("BHT*0007*11*REQ-0001*", "BHT*0007*11* *")],
    );
    let b = edit(
        "response-approved.x12",
        &[
            ("BHT*0007*11*REQ-0001*", "BHT*0007*11* *"),
            ("TRN*2*TRACE0001*", "TRN*2*TRACE0009*"),
        ],
    );
    assert_ne!(case_id(&a), case_id(&b));
    // The payer's own TRN*1 is never taken for the echo.
    let only_payer_trace = edit(
        "response-approved.x12",
        &[
            ("BHT*0007*11*REQ-0001*", "BHT*0007*11* *"),
            ("TRN*2*TRACE0001*9EHRGATEWY~\n", ""),
            ("SE*21*", "SE*20*"),
        ],
    );
    let (case, codes) = map(&only_payer_trace);
    assert!(case.is_none(), "not correlatable, no case");
    assert!(codes.contains(&"X042".to_owned()), "{codes:?}");
}

#[test]
fn a_response_with_neither_identifier_gets_x042_and_no_case() {
    let response = edit(
        "response-aaa-subscriber.x12",
        &[("BHT*0007*11*REQ-0001*", "BHT*0007*11* *")],
    );
    let doc = document(&response);
    assert!(!doc.is_clean(), "an error: intake keeps it rejected");
    let d = doc
        .diagnostics
        .iter()
        .find(|d| d.code == "X042")
        .expect("X042");
    assert!(d.message.contains("cannot be correlated"), "{}", d.message);
    let (case, codes) = map(&response);
    assert!(case.is_none(), "{codes:?}");
}

/// A response to a 278 request the gateway itself sent for a case (an HL7
/// order, say) echoes that case's id as BHT03 (`outbound/request.toml`): it
/// maps onto that very case, not onto a new x12 one.
#[test]
fn a_response_echoing_our_case_id_maps_onto_that_case() {
    let ours = gateway_core::ids::case_id("mso-demo", "epic:ORD1001");
    let echoed = edit(
        "response-approved.x12",
        &[("BHT*0007*11*REQ-0001*", &format!("BHT*0007*11*{ours}*"))],
    );
    assert_eq!(case_id(&echoed), ours);
    // A reference that merely starts like one is an ordinary key.
    let lookalike = edit(
        "response-approved.x12",
        &[("BHT*0007*11*REQ-0001*", "BHT*0007*11*case-REQ-0001*")],
    );
    let id = case_id(&lookalike);
    assert_ne!(id, "case-REQ-0001");
    assert!(gateway_core::ids::is_case_id(&id), "{id}");
}

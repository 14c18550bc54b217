//! Translation both ways through the Case (issue #19), with the real binary's
//! `map`, `x12 request` and `pas response` commands — the same profiles and
//! writers the daemon runs:
//!
//! - a PAS Request Bundle → Case (davinci-pas profile) → X12 278 request →
//!   Case (x12-278 profile) keeps the patient, member id, payer, service
//!   codes, diagnoses and the requesting provider's NPI, for every request
//!   kind in `sample-messages/fhir/davinci-pas/`;
//! - a payer's 278 response → Case decision → PAS ClaimResponse keeps the
//!   status (review action per item), authorization number, dates and reason
//!   codes, for every kind of answer in `sample-messages/x12/x12-278/`.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{bin, repo_root};

/// Runs the binary from the repository root; stdout on success, else panics
/// with stderr.
fn run(args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run ehr-gateway");
    assert!(
        out.status.success(),
        "ehr-gateway {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

/// The facts a payer needs that both formats carry.
fn facts(case: &Value) -> Value {
    let patient = &case["patient"];
    let requester_npi = case["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["role"] == "requester")
        .map(|p| p["npi"].clone());
    let codes = |list: &Value, pointer: &str| -> Vec<Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|v| v.pointer(pointer).cloned().unwrap_or(Value::Null))
            .collect()
    };
    serde_json::json!({
        "patient": {
            "name": patient["name"],
            "birth_date": patient["birth_date"],
            "sex": patient["sex"],
        },
        "member_id": case["coverages"][0]["member_id"],
        "payer_id": case["coverages"][0]["payer"]["id"],
        // The code's display text is not part of a 278 (SV1 carries codes).
        "service_systems": codes(&case["services"], "/code/system"),
        "service_codes": codes(&case["services"], "/code/code"),
        "service_lines": codes(&case["services"], "/line"),
        "diagnoses": codes(&case["diagnoses"], "/code/code"),
        "requester_npi": requester_npi,
    })
}

#[test]
fn a_pas_request_keeps_its_facts_through_a_278_request_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    for kind in ["referral", "medical-services", "home-care", "surgical"] {
        let sample = format!("sample-messages/fhir/davinci-pas/{kind}.json");
        let from_pas = run(&["map", "--profile", "mappings/davinci-pas", &sample]);
        let case_file = write(dir.path(), &format!("{kind}.case.json"), &from_pas);
        let request = run(&["x12", "request", &case_file]);
        assert!(request.starts_with("ISA*"), "{kind}: a 278 interchange");
        let x12_file = write(dir.path(), &format!("{kind}.x12"), &request);
        let back = run(&["map", "--profile", "mappings/x12-278", &x12_file]);

        let (original, back) = (json(&from_pas), json(&back));
        let expected = facts(&original);
        assert!(
            expected["requester_npi"].is_string(),
            "{kind}: the PAS sample names a requesting provider with an NPI"
        );
        assert!(
            expected["service_codes"]
                .as_array()
                .is_some_and(|c| !c.is_empty()),
            "{kind}: services"
        );
        assert_eq!(facts(&back), expected, "{kind}: PAS → Case → 278 → Case");
    }
}

/// The review action codes of a ClaimResponse's items, in item order.
fn review_actions(claim_response: &Value) -> Vec<String> {
    gateway_davinci_pas::response::item_actions(claim_response)
        .into_iter()
        .map(|(_, code, _)| code)
        .collect()
}

/// Every X12 reason code (code system 886) anywhere in the ClaimResponse.
fn reason_codes(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if map.get("system").and_then(Value::as_str)
                == Some("https://codesystem.x12.org/external/886")
                && let Some(code) = map.get("code").and_then(Value::as_str)
            {
                found.push(code.to_owned());
            }
            map.values().for_each(|v| reason_codes(v, found));
        }
        Value::Array(list) => list.iter().for_each(|v| reason_codes(v, found)),
        _ => {}
    }
}

#[test]
fn a_278_response_keeps_its_decision_through_the_claim_response() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (sample, the review action every item must carry, or per item)
    let answers: [(&str, &[&str]); 5] = [
        ("approved", &["A1"]),
        ("denied", &["A3"]),
        ("pended", &["A4"]),
        ("modified", &["A6"]),
        ("partial", &["A1", "A3"]),
    ];
    for (answer, actions) in answers {
        let sample = format!("sample-messages/x12/x12-278/response-{answer}.x12");
        let mapped = run(&["map", "--profile", "mappings/x12-278", &sample]);
        let case = json(&mapped);
        let decision = &case["decision"];
        assert!(decision.is_object(), "{answer}: the 278 response decides");
        let case_file = write(dir.path(), &format!("{answer}.case.json"), &mapped);
        let bundle = json(&run(&["pas", "response", &case_file]));
        let claim_response = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["resource"])
            .find(|r| r["resourceType"] == "ClaimResponse")
            .unwrap_or_else(|| panic!("{answer}: a ClaimResponse in {bundle}"));

        let got = review_actions(claim_response);
        assert!(!got.is_empty(), "{answer}: items carry review actions");
        if actions.len() == 1 {
            assert!(got.iter().all(|a| a == actions[0]), "{answer}: {got:?}");
        } else {
            assert_eq!(got, actions, "{answer}: per item");
        }

        // The authorization number is the preAuthRef and each item's number.
        match decision["authorization_number"].as_str() {
            Some(number) => {
                assert_eq!(claim_response["preAuthRef"], number, "{answer}");
                let numbers: Vec<Option<String>> =
                    gateway_davinci_pas::response::item_actions(claim_response)
                        .into_iter()
                        .filter(|(_, code, _)| code != "A3")
                        .map(|(_, _, n)| n)
                        .collect();
                assert!(
                    numbers.iter().all(|n| n.is_some()),
                    "{answer}: approved items carry a number: {numbers:?}"
                );
            }
            None => assert!(claim_response.get("preAuthRef").is_none(), "{answer}"),
        }
        // The dates the payer gave.
        if let Some(start) = decision["effective"]["start"].as_str() {
            assert_eq!(claim_response["preAuthPeriod"]["start"], start, "{answer}");
            assert_eq!(
                claim_response["preAuthPeriod"]["end"], decision["effective"]["end"],
                "{answer}"
            );
        }
        // The payer's reason codes (event level and per line).
        let mut expected: Vec<String> = decision["reason_codes"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(
                decision["service_decisions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|d| d["reason_codes"].as_array().into_iter().flatten()),
            )
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect();
        let mut found = Vec::new();
        reason_codes(claim_response, &mut found);
        expected.sort();
        expected.dedup();
        found.sort();
        found.dedup();
        assert_eq!(found, expected, "{answer}: reason codes");
    }
}

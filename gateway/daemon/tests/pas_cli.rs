//! `ehr-gateway pas request|response` through the real binary: a PAS Request
//! Bundle for cases that arrived as HL7 and as X12, which the davinci-pas
//! profile maps back to the same patient, member id, payer, services,
//! diagnoses and requesting provider NPI; the Response Bundle of a decision;
//! a case that cannot make a valid PAS request is refused with its issues.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{bin, repo_root};

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn round_trip(case_file: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ok, bundle, err) = run(&["pas", "request", case_file]);
    assert!(ok, "pas request {case_file}: {err}");
    let bundle_file = dir.path().join("request.json");
    std::fs::write(&bundle_file, &bundle).expect("write");
    let (ok, mapped, err) = run(&[
        "map",
        "--profile",
        "mappings/davinci-pas",
        &bundle_file.display().to_string(),
    ]);
    assert!(ok, "map: {err}");
    let original: Value =
        serde_json::from_slice(&std::fs::read(repo_root().join(case_file)).expect("case"))
            .expect("json");
    let back: Value = serde_json::from_str(&mapped).expect("case json");
    for key in ["patient", "services", "diagnoses"] {
        assert_eq!(back[key], original[key], "{case_file}: {key}");
    }
    for key in ["member_id", "payer"] {
        assert_eq!(
            back["coverages"][0][key], original["coverages"][0][key],
            "{case_file}: coverages[0].{key}"
        );
    }
    let npis = |c: &Value| -> Vec<String> {
        c["providers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["npi"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(!npis(&original).is_empty(), "{case_file} has provider NPIs");
    assert_eq!(npis(&back), npis(&original), "{case_file}: provider NPIs");
}

#[test]
fn request_bundles_of_hl7_and_x12_cases_map_back_to_the_same_facts() {
    round_trip("conformance/suites/epic/writeback-approved/input.json");
    round_trip("conformance/suites/x12-278/request-two-lines/expected.case.json");
}

#[test]
fn response_bundle_carries_the_decision_and_unsendable_cases_are_refused() {
    let (ok, out, err) = run(&[
        "pas",
        "response",
        "conformance/suites/davinci-pas/response-approved/input.json",
    ]);
    assert!(ok, "{err}");
    let bundle: Value = serde_json::from_str(&out).expect("json");
    let cr = &bundle["entry"][0]["resource"];
    assert_eq!(cr["resourceType"], "ClaimResponse");
    assert_eq!(cr["preAuthRef"], "SYNAUTH-1001");
    let actions = gateway_davinci_pas::response::item_actions(cr);
    assert!(
        actions.iter().all(|(_, code, _)| code == "A1"),
        "{actions:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let mut case: Value = serde_json::from_slice(
        &std::fs::read(
            repo_root().join("conformance/suites/davinci-pas/response-pended/input.json"),
        )
        .expect("case"),
    )
    .expect("json");
    case["coverages"] = Value::Array(Vec::new());
    let file = dir.path().join("no-coverage.json");
    std::fs::write(&file, case.to_string()).expect("write");
    let (ok, out, err) = run(&["pas", "request", &file.display().to_string()]);
    assert!(!ok, "refused");
    assert!(out.is_empty());
    assert!(err.contains("P013") && err.contains("insurance"), "{err}");
    assert!(Path::new(&file).exists());
}

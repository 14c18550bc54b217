//! The synthetic samples in `sample-messages/fhir/davinci-pas/`: every
//! request kind validates for its operation, every malformed one is refused
//! with the issue it is named after.

use std::path::PathBuf;

use gateway_davinci_pas::request::{Operation, validate};

fn sample(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../sample-messages/fhir/davinci-pas")
        .join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn request_kinds_validate_and_malformed_ones_are_refused_precisely() {
    for name in [
        "referral",
        "medical-services",
        "home-care",
        "surgical",
        "update",
        "cancel",
    ] {
        let request = validate(&sample(name), Operation::Submit)
            .unwrap_or_else(|r| panic!("{name}: {:?}", r.diagnostics));
        assert!(!request.item_sequences.is_empty(), "{name}");
    }
    let update = validate(&sample("update"), Operation::Submit).expect("update");
    assert_eq!(update.prior_claim_id.as_deref(), Some("PA-MED-0001"));
    let cancel = validate(&sample("cancel"), Operation::Submit).expect("cancel");
    assert!(cancel.cancelled);
    // An inquiry has no items: valid for $inquire, not for $submit.
    let inquiry = validate(&sample("inquiry"), Operation::Inquire).expect("inquiry");
    assert_eq!(inquiry.claim_id, "PA-MED-0001");
    assert!(validate(&sample("inquiry"), Operation::Submit).is_err());
    for (name, status, code) in [
        ("malformed-no-claim", 422, "P010"),
        ("malformed-use-claim", 422, "P011"),
        ("malformed-unresolvable-reference", 422, "P012"),
        ("malformed-not-a-bundle", 400, "P003"),
    ] {
        let refusal = validate(&sample(name), Operation::Submit).expect_err(name);
        assert_eq!(refusal.status, status, "{name}");
        let codes: Vec<&str> = refusal
            .diagnostics
            .iter()
            .map(|d| d.code.as_str())
            .collect();
        assert_eq!(codes, [code], "{name}");
    }
}

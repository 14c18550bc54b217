//! Property: an NPI that fails the Luhn check is never written into a 278
//! request, whatever provider carries it; a valid NPI is written as NM109
//! after `XX`. The writer guard is `gateway_core::facts::strip_unsendable`;
//! a requester left without an NPI makes the writer refuse (TR3 2010B NM109).

mod common;

use gateway_core::Case;
use gateway_core::facts::{npi_check_digit, npi_is_valid};
use gateway_x12::outbound::{RequestTemplate, TemplateError};
use gateway_x12::write::{EnvelopeParams, MemoryControlNumbers};
use proptest::prelude::*;
use serde_json::json;

fn case(npis: [&str; 3]) -> Case {
    serde_json::from_value(json!({
        "case_id": "case-000000000000000000000002",
        "tenant": "mso-demo",
        "source": {"adapter": "hl7v2", "profile": "epic", "received_at": "2026-11-22T10:00:00Z"},
        "status": "requested",
        "patient": {"identifiers": [{"type": "MR", "value": "E20001"}],
                    "name": {"family": "TESTPATIENT", "given": ["JANE"]}, "birth_date": "1975-04-05"},
        "coverages": [{"sequence": 1, "payer": {"id": "60054", "name": "DEMO PLAN"}, "member_id": "W000000077"}],
        "providers": [
            {"role": "requester", "npi": npis[0], "organization": "CARDIO NORTH CLINIC"},
            {"role": "ordering", "npi": npis[1], "name": {"family": "HEART", "given": ["ANN"]}},
            {"role": "servicing", "npi": npis[2], "organization": "NORTH IMAGING CENTER"}
        ],
        "services": [{"line": 1, "code": {"system": "CPT", "code": "78452"}, "quantity": 1}],
        "diagnoses": [{"code": {"system": "ICD-10-CM", "code": "I25.10"}, "primary": true}]
    }))
    .expect("valid case")
}

/// The request written, or the facts the writer says the case lacks.
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
        Ok(bytes) => Ok(String::from_utf8(bytes).expect("ascii")),
        Err(TemplateError::Refused(facts)) => Err(facts),
        Err(e) => panic!("unexpected writer error: {e}"),
    }
}

/// NM109 of every NM1 segment (where an NPI goes after NM108 `XX`).
fn nm109s(text: &str) -> Vec<String> {
    text.split('~')
        .filter(|seg| seg.starts_with("NM1*"))
        .filter_map(|seg| seg.split('*').nth(9).map(str::to_owned))
        .collect()
}

/// Strings that are not NPIs: 10 digits with a wrong check digit, short
/// numbers, names, licences.
fn invalid_npi() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{10}".prop_filter("fails Luhn", |s| !npi_is_valid(s)),
        "[0-9]{1,9}",
        "[A-Za-z][A-Za-z0-9]{2,11}",
    ]
}

fn valid_npi() -> impl Strategy<Value = String> {
    "[12][0-9]{8}".prop_map(|nine| {
        let check = npi_check_digit(&nine).expect("nine digits");
        format!("{nine}{check}")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn invalid_npis_are_never_written(bad in invalid_npi(), good in valid_npi(), slot in 0usize..3) {
        let mut npis = [good.as_str(); 3];
        npis[slot] = bad.as_str();
        let text = match write(&case(npis)) {
            Ok(text) => text,
            // The requester's NPI is required (2010B NM109): without a valid
            // one the writer refuses and says so, instead of sending `XX*` + junk.
            Err(facts) => {
                prop_assert_eq!(slot, 0, "refused: {:?}", facts);
                prop_assert!(
                    facts.iter().any(|f| f == "case has no requesting provider NPI (2010B NM109)"),
                    "{:?}", facts
                );
                return Ok(());
            }
        };
        prop_assert!(slot != 0, "a requester without a valid NPI was written:\n{text}");
        prop_assert!(!nm109s(&text).contains(&bad), "invalid NPI written as NM109:\n{text}");
        // Long values cannot collide with other elements by chance: they must not appear at all.
        prop_assert!(bad.len() < 8 || !text.contains(&bad), "invalid NPI written:\n{text}");
        prop_assert!(text.contains(&format!("*XX*{good}~")), "valid NPI missing:\n{text}");
    }
}

//! Property: for arbitrary cases — complete, incomplete, with invalid NPIs and
//! procedure codes of every system — every 278 our writers emit (request and
//! response templates) passes our own 999 (the TR3 rules included), or the
//! writer refuses and names what the case lacks; an NPI that fails the Luhn
//! check never appears in the bytes written.

mod common;

use gateway_core::Case;
use gateway_core::facts::{npi_check_digit, npi_is_valid};
use gateway_x12::ack::{AckIdentity, acknowledge};
use gateway_x12::outbound::{Template, TemplateError};
use gateway_x12::write::{EnvelopeParams, MemoryControlNumbers};
use proptest::prelude::*;
use serde_json::{Value, json};

fn template(name: &str) -> Template {
    Template::load(&common::repo().join("mappings/x12-278/outbound").join(name))
        .expect("template loads")
}

fn valid_npi() -> impl Strategy<Value = String> {
    "[12][0-9]{8}".prop_map(|nine| {
        let check = npi_check_digit(&nine).expect("nine digits");
        format!("{nine}{check}")
    })
}

fn invalid_npi() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{10}".prop_filter("fails Luhn", |s| !npi_is_valid(s)),
        "[0-9]{1,9}",
        "[A-Z][A-Za-z0-9]{2,11}",
    ]
}

/// An NPI slot: valid, invalid, or absent.
fn npi() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => valid_npi().prop_map(Some),
        2 => invalid_npi().prop_map(Some),
        1 => Just(None),
    ]
}

fn name() -> impl Strategy<Value = String> {
    "[A-Z]{1,12}( [A-Z]{1,8})?"
}

fn opt<T: std::fmt::Debug + Clone>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![9 => s.prop_map(Some), 1 => Just(None)]
}

fn provider(role: &'static str) -> impl Strategy<Value = Value> {
    (npi(), name(), any::<bool>()).prop_map(move |(npi, n, org)| {
        let mut p = if org {
            json!({"role": role, "organization": n})
        } else {
            json!({"role": role, "name": {"family": n, "given": ["ANN"]}})
        };
        if let Some(npi) = npi {
            p["npi"] = npi.into();
        }
        p
    })
}

fn service(line: u32) -> impl Strategy<Value = Value> {
    // Writable systems are weighted up so most cases are complete.
    let system = prop::sample::select(vec![
        "CPT",
        "CPT",
        "CPT",
        "CPT",
        "HCPCS",
        "HCPCS",
        "CDT",
        "X12-service-type",
        "X12-service-type",
        "HCPCS",
        "CDT",
        "NDC",
        "X12-service-type",
        "LOINC",
        "SNOMED",
        "ICD-10-PCS",
        "local",
    ]);
    (
        system,
        "[A-Z0-9][A-Z0-9.-]{0,7}",
        opt(1u32..40),
        any::<bool>(),
    )
        .prop_map(move |(system, code, quantity, dated)| {
            let mut s = json!({"line": line, "code": {"system": system, "code": code}});
            if let Some(q) = quantity {
                s["quantity"] = q.into();
                s["unit"] = "UN".into();
            }
            if dated {
                s["service_date"] = json!({"start": "2026-12-01", "end": "2026-12-31"});
            }
            s
        })
}

fn decision() -> impl Strategy<Value = Value> {
    let status = prop::sample::select(vec![
        "approved",
        "partially_approved",
        "denied",
        "pended",
        "modified",
        "cancelled",
        "error",
    ]);
    (status, opt("AUTH[0-9]{4}"), opt("[0-9A-Z]{2}")).prop_map(|(status, auth, reason)| {
        let mut d = json!({"status": status, "reason_codes": []});
        if let Some(a) = auth {
            d["authorization_number"] = a.into();
        }
        if let Some(r) = reason {
            d["reason_codes"] = json!([r]);
        }
        d
    })
}

prop_compose! {
    fn case()(
        requester in opt(provider("requester")),
        others in prop::collection::vec(
            prop::sample::select(vec!["ordering", "servicing", "referring", "facility"])
                .prop_flat_map(provider),
            0..3,
        ),
        services in (0usize..4).prop_flat_map(|n| {
            (1..=n).map(|i| service(u32::try_from(i).unwrap_or(1))).collect::<Vec<_>>()
        }),
        family in opt(name()),
        member in opt("[A-Z0-9]{4,12}"),
        payer_id in opt("[0-9]{5}"),
        payer_name in opt(name()),
        account in opt("[A-Z0-9-]{3,12}"),
        decision in opt(decision()),
    ) -> Value {
        let mut providers: Vec<Value> = requester.into_iter().collect();
        providers.extend(others);
        let mut patient = json!({"birth_date": "1980-02-03", "sex": "female"});
        if let Some(f) = family {
            patient["name"] = json!({"family": f, "given": ["JO"]});
        }
        if let Some(a) = account {
            patient["identifiers"] = json!([{"type": "AN", "value": a}]);
        }
        let mut payer = json!({});
        if let Some(id) = payer_id {
            payer["id"] = id.into();
        }
        if let Some(n) = payer_name {
            payer["name"] = n.into();
        }
        let mut coverage = json!({"sequence": 1, "payer": payer});
        if let Some(m) = member {
            coverage["member_id"] = m.into();
        }
        let mut c = json!({
            "case_id": "case-0000000000000000000000aa",
            "tenant": "mso-demo",
            "source": {"adapter": "hl7v2", "profile": "epic", "received_at": "2026-11-22T10:00:00Z"},
            "status": "requested",
            "patient": patient,
            "coverages": [coverage],
            "providers": providers,
            "services": services,
            "diagnoses": [{"code": {"system": "ICD-10-CM", "code": "I25.10"}, "primary": true}],
            "references": {"x12_trace": "TRACE-P-1"}
        });
        if let Some(d) = decision {
            c["decision"] = d;
        }
        c
    }
}

/// Every NM109 written after an `XX` qualifier.
fn written_npis(text: &str) -> Vec<String> {
    text.split('~')
        .map(str::trim)
        .filter(|s| s.starts_with("NM1*"))
        .filter_map(|s| {
            let e: Vec<&str> = s.split('*').collect();
            (e.get(8) == Some(&"XX")).then(|| e.get(9).copied().unwrap_or("").to_owned())
        })
        .collect()
}

/// Writes `case` with `template`; checks the property for what comes out.
fn check(template: &Template, case: &Case, json: &Value) -> Result<bool, TestCaseError> {
    match template.interchange(
        case,
        &EnvelopeParams::default(),
        &MemoryControlNumbers::new(),
        &common::stamp(),
    ) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes.clone()).expect("ascii");
            let ack = acknowledge(
                &bytes,
                &AckIdentity::default(),
                &MemoryControlNumbers::new(),
                &common::stamp(),
            )
            .expect("acknowledged");
            prop_assert!(
                matches!(ack.verdict, 'A' | 'E'),
                "our 999 rejects what we wrote ({}):\n{text}\n{}",
                ack.verdict,
                String::from_utf8_lossy(&ack.functional.unwrap_or_default())
            );
            for npi in written_npis(&text) {
                prop_assert!(npi_is_valid(&npi), "invalid NPI {npi} written:\n{text}");
            }
            // No invalid NPI of the case appears anywhere (long ones cannot
            // collide with other elements by chance).
            for p in json["providers"].as_array().into_iter().flatten() {
                if let Some(npi) = p["npi"].as_str()
                    && !npi_is_valid(npi)
                    && npi.len() >= 8
                {
                    prop_assert!(!text.contains(npi), "invalid NPI {npi} written:\n{text}");
                }
            }
            Ok(true)
        }
        Err(TemplateError::Refused(facts)) => {
            prop_assert!(!facts.is_empty());
            for f in &facts {
                prop_assert!(
                    f.starts_with("case has no ") || f.starts_with("case gives a "),
                    "a refusal must name the fact the case lacks: {f}"
                );
                prop_assert!(
                    f.contains('(') && f.contains(')'),
                    "names the loop/element: {f}"
                );
            }
            Ok(false)
        }
        Err(e) => Err(TestCaseError::fail(format!("writer failed: {e}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_written_278_passes_our_999_or_is_refused_with_a_named_fact(json in case()) {
        let case: Case = serde_json::from_value(json.clone()).expect("a valid Case");
        check(&template("request.toml"), &case, &json)?;
        if case.decision.is_some() {
            check(&template("response.toml"), &case, &json)?;
        }
    }
}

/// The property is not vacuous: complete cases are written, incomplete ones refused.
#[test]
fn complete_cases_are_written_and_incomplete_ones_refused() {
    let mut json = json!({
        "case_id": "case-0000000000000000000000ab",
        "tenant": "mso-demo",
        "source": {"adapter": "hl7v2", "profile": "epic", "received_at": "2026-11-22T10:00:00Z"},
        "status": "requested",
        "patient": {"name": {"family": "TESTPATIENT", "given": ["JO"]}, "birth_date": "1980-02-03"},
        "coverages": [{"sequence": 1, "payer": {"id": "60054", "name": "DEMO PLAN"}, "member_id": "W1"}],
        "providers": [{"role": "requester", "npi": "1234567893", "organization": "CLINIC"}],
        "services": [{"line": 1, "code": {"system": "CPT", "code": "78452"}, "quantity": 1}],
        "references": {"x12_trace": "TRACE-P-2"}
    });
    let request = template("request.toml");
    let case: Case = serde_json::from_value(json.clone()).expect("case");
    assert_eq!(check(&request, &case, &json).ok(), Some(true));
    json["coverages"][0]
        .as_object_mut()
        .expect("obj")
        .remove("member_id");
    json["services"][0]["code"] = json!({"system": "LOINC", "code": "24725-4"});
    let case: Case = serde_json::from_value(json.clone()).expect("case");
    match request.interchange(
        &case,
        &EnvelopeParams::default(),
        &MemoryControlNumbers::new(),
        &common::stamp(),
    ) {
        Err(TemplateError::Refused(facts)) => {
            assert!(
                facts.contains(&"case has no subscriber member id (2010C NM109)".to_owned()),
                "{facts:?}"
            );
            assert!(
                facts.iter().any(|f| f.ends_with("on service line 1")),
                "{facts:?}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Diagnoses go out with the HI qualifier of their own system: ICD-10-CM
/// `ABK`/`ABF`, ICD-9 `BK`/`BF`; a SNOMED or local code is never labelled as
/// an ICD code.
#[test]
fn diagnoses_are_written_with_the_qualifier_of_their_system() {
    let json = json!({
        "case_id": "case-0000000000000000000000ac",
        "tenant": "mso-demo",
        "source": {"adapter": "hl7v2", "profile": "epic", "received_at": "2026-11-22T10:00:00Z"},
        "status": "requested",
        "patient": {"name": {"family": "TESTPATIENT", "given": ["JO"]}, "birth_date": "1980-02-03"},
        "coverages": [{"sequence": 1, "payer": {"id": "60054", "name": "DEMO PLAN"}, "member_id": "W1"}],
        "providers": [{"role": "requester", "npi": "1234567893", "organization": "CLINIC"}],
        "services": [{"line": 1, "code": {"system": "CPT", "code": "78452"}, "quantity": 1}],
        "diagnoses": [
            {"code": {"system": "ICD-9", "code": "401.9"}, "primary": true},
            {"code": {"system": "SNOMED", "code": "38341003"}},
            {"code": {"system": "ICD-10-CM", "code": "E11.9"}}
        ]
    });
    let case: Case = serde_json::from_value(json).expect("case");
    let bytes = template("request.toml")
        .interchange(
            &case,
            &EnvelopeParams::default(),
            &MemoryControlNumbers::new(),
            &common::stamp(),
        )
        .expect("written");
    let text = String::from_utf8(bytes).expect("ascii");
    assert!(text.contains("HI*BK:4019*ABF:E119~"), "{text}");
    assert!(!text.contains("38341003"), "{text}");
}

//! A Case as a PAS Response Bundle: the ClaimResponse the EHR sees.
//!
//! The answer is built from the stored case alone, so `$submit`, a repeated
//! `$submit`, `$inquire`, a subscription's full-resource notification and
//! `ehr-gateway pas response` all say the same thing about the same case. The
//! decision's status becomes the X12 306 review action on every item
//! (`ClaimResponse.item.adjudication.extension[reviewAction]`): `A4` pended
//! while no decision exists, then `A1` approved (with the authorization number
//! as `number` and as `ClaimResponse.preAuthRef`), `A2` partially approved,
//! `A3` denied (with the payer's reason codes), `A6` modified, `C` cancelled.
//! A line with its own decision (`decision.service_decisions`) gets that one.
//! Every item sequence is echoed.
//!
//! Timestamps come from the case (the decision time, else the receive time)
//! and ids from the case id, so the same case always gives the same bundle.

use gateway_core::Case;
use gateway_core::case::{CaseStatus, DecisionStatus, Period};
use serde_json::{Map, Value, json};

use crate::outbound::{patient_resource, payer_resource, requester_resource};
use crate::urls;

/// The X12 306 review action code of a decision (`None`: not decided).
pub fn review_action(status: Option<DecisionStatus>, case_status: CaseStatus) -> &'static str {
    match status {
        Some(DecisionStatus::Approved) => "A1",
        Some(DecisionStatus::PartiallyApproved) => "A2",
        Some(DecisionStatus::Denied) => "A3",
        Some(DecisionStatus::Modified) => "A6",
        Some(DecisionStatus::Cancelled) => "C",
        // The payer could not process the request (X12 AAA): contact the payer.
        Some(DecisionStatus::Error) => "CT",
        Some(DecisionStatus::Pended) | None if case_status == CaseStatus::Cancelled => "C",
        Some(DecisionStatus::Pended) | None => "A4",
    }
}

/// The identifier value of the Claim this case answers.
pub fn claim_identifier(case: &Case) -> &str {
    case.references
        .get(crate::SUBMISSION_REFERENCE)
        .or_else(|| case.references.get(crate::CLAIM_REFERENCE))
        .map(String::as_str)
        .unwrap_or(case.case_id.as_str())
}

/// When the answer was made: the decision time, else the receive time.
pub fn answer_time(case: &Case) -> &str {
    case.decision
        .as_ref()
        .and_then(|d| d.decided_at.as_deref())
        .unwrap_or(case.source.received_at.as_str())
}

/// The ClaimResponse for `case`; `items` are the item sequences to echo (the
/// case's service lines when empty).
pub fn claim_response(case: &Case, items: &[u32]) -> Value {
    let decision = case.decision.as_ref();
    let overall = decision.map(|d| d.status);
    let mut sequences: Vec<u32> = if items.is_empty() {
        case.services.iter().map(|s| s.line).collect()
    } else {
        items.to_vec()
    };
    if sequences.is_empty() {
        sequences.push(1);
    }
    let item_values: Vec<Value> = sequences
        .iter()
        .map(|&line| {
            let line_decision = decision.and_then(|d| d.service_decisions.iter().find(|s| s.line == line));
            let status = line_decision.map(|s| s.status).or(overall);
            let code = review_action(status, case.status);
            let number = line_decision
                .and_then(|s| s.authorization_number.as_deref())
                .or_else(|| decision.and_then(|d| d.authorization_number.as_deref()))
                .filter(|_| matches!(code, "A1" | "A2" | "A6"));
            let reasons: Vec<&String> = match line_decision {
                Some(s) if !s.reason_codes.is_empty() => s.reason_codes.iter().collect(),
                _ => decision.map(|d| d.reason_codes.iter().collect()).unwrap_or_default(),
            };
            let mut action = vec![json!({"url": urls::REVIEW_ACTION_CODE,
                "valueCodeableConcept": {"coding": [{"system": urls::X12_306, "code": code}]}})];
            if let Some(number) = number {
                action.push(json!({"url": "number", "valueString": number}));
            }
            for reason in reasons {
                action.push(json!({"url": "reasonCode",
                    "valueCodeableConcept": {"coding": [{"system": urls::X12_886, "code": reason}]}}));
            }
            let mut item = json!({
                "itemSequence": line,
                "adjudication": [{
                    "extension": [{"url": urls::REVIEW_ACTION, "extension": action}],
                    "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}
                }]
            });
            let period = line_decision
                .and_then(|s| s.effective.as_ref())
                .or_else(|| decision.and_then(|d| d.effective.as_ref()))
                .filter(|_| matches!(code, "A1" | "A2" | "A6"));
            if let Some(period) = period.and_then(period_value) {
                item["extension"] = json!([{"url": "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-itemPreAuthPeriod",
                                            "valuePeriod": period}]);
            }
            item
        })
        .collect();

    let code = review_action(overall, case.status);
    let decided = code != "A4";
    let mut response = Map::new();
    response.insert("resourceType".into(), json!("ClaimResponse"));
    response.insert("id".into(), json!(case.case_id));
    response.insert("meta".into(), json!({"profile": [urls::CLAIM_RESPONSE]}));
    response.insert(
        "identifier".into(),
        json!([{"system": "urn:ehr-gateway:case", "value": case.case_id}]),
    );
    response.insert("status".into(), json!("active"));
    response.insert(
        "type".into(),
        json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]}),
    );
    response.insert("use".into(), json!("preauthorization"));
    response.insert(
        "patient".into(),
        json!({"reference": format!("Patient/{}-patient", case.case_id)}),
    );
    response.insert("created".into(), json!(answer_time(case)));
    response.insert(
        "insurer".into(),
        json!({"reference": format!("Organization/{}-payer", case.case_id)}),
    );
    response.insert(
        "requestor".into(),
        json!({"reference": format!("Practitioner/{}-requester", case.case_id)}),
    );
    response.insert(
        "request".into(),
        json!({"identifier": {"value": claim_identifier(case)}}),
    );
    response.insert(
        "outcome".into(),
        json!(if decided { "complete" } else { "queued" }),
    );
    response.insert(
        "disposition".into(),
        json!(match code {
            "A1" => "Certified in total",
            "A2" => "Certified, partial",
            "A3" => "Not certified",
            "A6" => "Modified",
            "C" => "Cancelled",
            _ => "Pended",
        }),
    );
    if let Some(number) = decision
        .and_then(|d| d.authorization_number.as_deref())
        .filter(|_| matches!(code, "A1" | "A2" | "A6"))
    {
        response.insert("preAuthRef".into(), json!(number));
    }
    if let Some(period) = decision
        .and_then(|d| d.effective.as_ref())
        .filter(|_| matches!(code, "A1" | "A2" | "A6"))
        .and_then(period_value)
    {
        response.insert("preAuthPeriod".into(), period);
    }
    response.insert("item".into(), Value::Array(item_values));
    Value::Object(response)
}

fn period_value(period: &Period) -> Option<Value> {
    let mut out = Map::new();
    if let Some(start) = &period.start {
        out.insert("start".into(), json!(start));
    }
    if let Some(end) = &period.end {
        out.insert("end".into(), json!(end));
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// The PAS Response Bundle for `case`: its ClaimResponse first, then the
/// Patient, the insurer and the requester it references.
pub fn response_bundle(case: &Case, items: &[u32]) -> Value {
    let mut case = case.clone();
    gateway_core::facts::strip_unsendable(&mut case);
    let claim_response = claim_response(&case, items);
    let base = "urn:ehr-gateway:pas";
    let entry = vec![
        json!({"fullUrl": format!("{base}/ClaimResponse/{}", case.case_id), "resource": claim_response}),
        json!({"fullUrl": format!("{base}/Patient/{}-patient", case.case_id), "resource": patient_resource(&case, &format!("{}-patient", case.case_id))}),
        json!({"fullUrl": format!("{base}/Organization/{}-payer", case.case_id), "resource": payer_resource(&case, &format!("{}-payer", case.case_id))}),
        json!({"fullUrl": format!("{base}/Practitioner/{}-requester", case.case_id), "resource": requester_resource(&case, &format!("{}-requester", case.case_id))}),
    ];
    json!({
        "resourceType": "Bundle",
        "id": format!("{}-response", case.case_id),
        "meta": {"profile": [urls::RESPONSE_BUNDLE]},
        "identifier": {"system": "urn:ehr-gateway:pas-response", "value": case.case_id},
        "type": "collection",
        "timestamp": answer_time(&case),
        "entry": entry,
    })
}

/// The review action codes of each item of a ClaimResponse:
/// `(itemSequence, code, number)` — for clients and tests reading an answer.
pub fn item_actions(claim_response: &Value) -> Vec<(u64, String, Option<String>)> {
    claim_response
        .get("item")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|item| {
            let sequence = item
                .get("itemSequence")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let action = item
                .pointer("/adjudication/0/extension")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|e| e.get("url").and_then(Value::as_str) == Some(urls::REVIEW_ACTION))
                .and_then(|e| e.get("extension"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let code = action
                .iter()
                .find(|e| e.get("url").and_then(Value::as_str) == Some(urls::REVIEW_ACTION_CODE))
                .and_then(|e| e.pointer("/valueCodeableConcept/coding/0/code"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let number = action
                .iter()
                .find(|e| e.get("url").and_then(Value::as_str) == Some("number"))
                .and_then(|e| e.get("valueString"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            (sequence, code, number)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::case::{CaseSource, Decision, ServiceDecision};

    fn case() -> Case {
        let mut case = Case::new(
            "case-000000000000000000000001",
            "mso-test",
            CaseSource {
                adapter: "davinci-pas".into(),
                profile: "davinci-pas".into(),
                message_type: Some("Claim".into()),
                control_id: Some("REQ-1".into()),
                sender: Some("ehr-one".into()),
                received_at: "2026-12-01T10:00:00Z".into(),
            },
        );
        for line in [1, 2] {
            case.services.push(
                serde_json::from_value(
                    json!({"line": line, "code": {"system": "CPT", "code": "97110"}}),
                )
                .expect("line"),
            );
        }
        case
    }

    fn decided(status: DecisionStatus) -> Decision {
        Decision {
            status,
            authorization_number: Some("AUTH-77".into()),
            effective: Some(Period {
                start: Some("2026-12-02".into()),
                end: Some("2027-01-31".into()),
            }),
            reason_codes: Vec::new(),
            payer_trace: Vec::new(),
            service_decisions: Vec::new(),
            decided_at: Some("2026-12-02T09:00:00Z".into()),
            note: None,
        }
    }

    #[test]
    fn pended_until_decided_then_the_decision_per_item() {
        let c = case();
        let cr = claim_response(&c, &[]);
        assert_eq!(
            item_actions(&cr),
            [(1, "A4".into(), None), (2, "A4".into(), None)]
        );
        assert_eq!(cr["outcome"], "queued");
        assert!(cr.get("preAuthRef").is_none());

        let mut c = case();
        c.decision = Some(decided(DecisionStatus::Approved));
        let cr = claim_response(&c, &[]);
        assert_eq!(cr["preAuthRef"], "AUTH-77");
        assert_eq!(
            item_actions(&cr)[0],
            (1, "A1".into(), Some("AUTH-77".into()))
        );
        assert_eq!(cr["created"], "2026-12-02T09:00:00Z");

        let mut d = decided(DecisionStatus::PartiallyApproved);
        d.service_decisions.push(ServiceDecision {
            line: 2,
            status: DecisionStatus::Denied,
            authorization_number: None,
            quantity: None,
            effective: None,
            reason_codes: vec!["CB".into()],
        });
        c.decision = Some(d);
        let cr = claim_response(&c, &[1, 2]);
        let actions = item_actions(&cr);
        assert_eq!(actions[0].1, "A2");
        assert_eq!(actions[1], (2, "A3".into(), None));
        let reason = &cr["item"][1]["adjudication"][0]["extension"][0]["extension"][1];
        assert_eq!(reason["valueCodeableConcept"]["coding"][0]["code"], "CB");
    }

    #[test]
    fn the_bundle_is_stable_and_resolvable() {
        let c = case();
        let a = response_bundle(&c, &[1, 2]);
        assert_eq!(a, response_bundle(&c, &[1, 2]));
        assert_eq!(a["entry"][0]["resource"]["resourceType"], "ClaimResponse");
        let raw = serde_json::to_vec(&a).expect("json");
        let value: Value = serde_json::from_slice(&raw).expect("json");
        let built = gateway_fhir_model::build_tree(&value, &[], "ClaimResponse").expect("tree");
        let cr = built.entries[0].resource;
        for element in ["patient", "insurer", "requestor"] {
            let reference = cr[element]["reference"].as_str().expect("reference");
            assert!(built.resolve(cr, reference).is_some(), "{element}");
        }
    }
}

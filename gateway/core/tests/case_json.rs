//! Case v1 JSON: the DESIGN.md example parses, round-trips, and absent data is omitted.

use gateway_core::case::{
    Case, CaseStatus, CodeSystem, DecisionStatus, Sex, SubscriberRelationship,
};

const DESIGN_EXAMPLE: &str = r#"{
  "schema": "ehr-gateway/case/v1",
  "case_id": "case-0123456789abcdef01234567",
  "tenant": "mso-demo", "practice": "cardio-north", "site": "main",
  "source": {"adapter": "hl7v2", "profile": "epic", "message_type": "ORM^O01",
             "control_id": "MSG0001", "sender": "EPIC^HOSP", "received_at": "2026-11-22T10:00:00Z"},
  "status": "requested",
  "urgency": "routine",
  "patient": {"identifiers": [{"type": "MR", "value": "E1234", "assigner": "HOSP"}],
              "name": {"family": "Doe", "given": ["Jane", "Q"]},
              "birth_date": "1970-01-31", "sex": "female",
              "address": {"lines": ["1 Main St"], "city": "Austin", "state": "TX", "postal_code": "78701"},
              "phone": "+1-512-555-0100"},
  "coverages": [{"sequence": 1, "payer": {"id": "60054", "name": "Aetna"}, "member_id": "W123456789",
                 "group_number": "G100", "plan_name": "PPO", "subscriber_relationship": "self"}],
  "providers": [{"role": "ordering", "npi": "1234567893", "name": {"family": "Heart", "given": ["Ann"]}}],
  "services": [{"line": 1, "code": {"system": "CPT", "code": "78452", "display": "SPECT MPI"},
                "modifiers": [], "quantity": 1, "service_date": {"start": "2026-12-01"},
                "place_of_service": "22"}],
  "diagnoses": [{"code": {"system": "ICD-10-CM", "code": "I25.10"}, "primary": true}],
  "decision": {"status": "approved", "authorization_number": "AUTH0001",
               "effective": {"start": "2026-12-01", "end": "2027-02-28"},
               "reason_codes": [], "payer_trace": ["TRN*2*..."], "service_decisions": []},
  "attachments": [{"kind": "clinical-note", "media_type": "application/pdf", "reference": "store:blob/..."}],
  "references": {"placer_order": "ORD1001", "filler_order": "F2002"},
  "notes": []
}"#;

#[test]
fn design_example_parses_and_round_trips() {
    let case: Case = serde_json::from_str(DESIGN_EXAMPLE).expect("design example parses");
    assert_eq!(case.status, CaseStatus::Requested);
    let patient = case.patient.as_ref().expect("patient");
    assert_eq!(patient.sex, Some(Sex::Female));
    assert_eq!(
        case.coverages[0].subscriber_relationship,
        Some(SubscriberRelationship::SelfInsured)
    );
    assert_eq!(case.services[0].code.system, CodeSystem::Cpt);
    assert_eq!(
        case.services[0]
            .quantity
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("1")
    );
    assert_eq!(case.diagnoses[0].code.system, CodeSystem::Icd10Cm);
    assert_eq!(
        case.decision.as_ref().map(|d| d.status),
        Some(DecisionStatus::Approved)
    );

    let text = serde_json::to_string(&case).expect("serializes");
    let again: Case = serde_json::from_str(&text).expect("re-parses");
    assert_eq!(case, again);
    // Empty lists are omitted on output, never invented.
    assert!(!text.contains("\"notes\""));
    assert!(!text.contains("\"modifiers\""));
    assert!(text.contains("\"quantity\":1,"));
}

#[test]
fn unknown_fields_and_values_are_rejected() {
    let typo = DESIGN_EXAMPLE.replace("\"urgency\"", "\"urgncy\"");
    let err = serde_json::from_str::<Case>(&typo).expect_err("typo rejected");
    assert!(err.to_string().contains("urgncy"), "{err}");
    let bad_status = DESIGN_EXAMPLE.replace("\"requested\"", "\"maybe\"");
    assert!(serde_json::from_str::<Case>(&bad_status).is_err());
}

//! Any Case as a PAS Request Bundle (`ehr-gateway pas request CASE.json`).
//!
//! The central platform can then submit a case that arrived as HL7, X12, FHIR
//! or from a desktop screen to a payer that runs a PAS API of its own. The
//! bundle holds the Claim (`use = preauthorization`) first, then the Patient,
//! each Coverage with its payer Organization, and the providers; every
//! reference resolves inside the bundle, so the gateway's own `$submit`
//! validation accepts what this writes (a test holds the two together). Ids
//! derive from the case id; nothing is invented: absent case data is absent
//! here. NPIs failing the Luhn check are dropped first
//! (`gateway_core::facts::strip_unsendable`).

use gateway_core::Case;
use gateway_core::case::{
    CaseStatus, CodeSystem, Coverage, Diagnosis, PersonName, ServiceLine, Urgency,
};
use serde_json::{Map, Value, json};

use crate::urls;

/// The FHIR code system URL of a Case code system.
pub fn system_url(system: CodeSystem) -> &'static str {
    match system {
        CodeSystem::Cpt => "http://www.ama-assn.org/go/cpt",
        CodeSystem::Hcpcs => "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        CodeSystem::Icd10Cm => "http://hl7.org/fhir/sid/icd-10-cm",
        CodeSystem::Icd10Pcs => "http://www.cms.gov/Medicare/Coding/ICD10",
        CodeSystem::Icd9 => "http://hl7.org/fhir/sid/icd-9-cm",
        CodeSystem::Cdt => "http://www.ada.org/cdt",
        CodeSystem::X12ServiceType => "https://codesystem.x12.org/005010/1365",
        CodeSystem::Loinc => "http://loinc.org",
        CodeSystem::Snomed => "http://snomed.info/sct",
        CodeSystem::Ndc => "http://hl7.org/fhir/sid/ndc",
        CodeSystem::Local => "urn:ehr-gateway:local",
    }
}

fn name_value(name: &PersonName) -> Value {
    let mut out = Map::new();
    if let Some(family) = &name.family {
        out.insert("family".into(), json!(family));
    }
    if !name.given.is_empty() {
        out.insert("given".into(), json!(name.given));
    }
    Value::Object(out)
}

fn insert_some(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v);
    }
}

/// The case's patient as a Patient resource with id `id`.
pub fn patient_resource(case: &Case, id: &str) -> Value {
    let mut p = Map::new();
    p.insert("resourceType".into(), json!("Patient"));
    p.insert("id".into(), json!(id));
    if let Some(patient) = &case.patient {
        let identifiers: Vec<Value> = patient
            .identifiers
            .iter()
            .map(|i| {
                let mut v = Map::new();
                if let Some(kind) = &i.kind {
                    v.insert("type".into(), json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": kind}]}));
                }
                if let Some(assigner) = &i.assigner {
                    v.insert("system".into(), json!(assigner));
                }
                v.insert("value".into(), json!(i.value));
                Value::Object(v)
            })
            .collect();
        if !identifiers.is_empty() {
            p.insert("identifier".into(), Value::Array(identifiers));
        }
        insert_some(
            &mut p,
            "name",
            patient.name.as_ref().map(|n| json!([name_value(n)])),
        );
        insert_some(
            &mut p,
            "gender",
            patient.sex.and_then(|s| serde_json::to_value(s).ok()),
        );
        insert_some(
            &mut p,
            "birthDate",
            patient.birth_date.as_ref().map(|d| json!(d)),
        );
        if let Some(address) = &patient.address {
            let mut a = Map::new();
            if !address.lines.is_empty() {
                a.insert("line".into(), json!(address.lines));
            }
            insert_some(&mut a, "city", address.city.as_ref().map(|v| json!(v)));
            insert_some(&mut a, "state", address.state.as_ref().map(|v| json!(v)));
            insert_some(
                &mut a,
                "postalCode",
                address.postal_code.as_ref().map(|v| json!(v)),
            );
            insert_some(
                &mut a,
                "country",
                address.country.as_ref().map(|v| json!(v)),
            );
            p.insert("address".into(), json!([a]));
        }
        insert_some(
            &mut p,
            "telecom",
            patient
                .phone
                .as_ref()
                .map(|v| json!([{"system": "phone", "value": v}])),
        );
    }
    Value::Object(p)
}

/// The first coverage's payer as an Organization with id `id`.
pub fn payer_resource(case: &Case, id: &str) -> Value {
    let payer = case.coverages.first().and_then(|c| c.payer.as_ref());
    let mut o = Map::new();
    o.insert("resourceType".into(), json!("Organization"));
    o.insert("id".into(), json!(id));
    o.insert("type".into(), json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "pay"}]}]));
    if let Some(payer) = payer {
        insert_some(
            &mut o,
            "identifier",
            payer
                .id
                .as_ref()
                .map(|v| json!([{"system": "urn:ehr-gateway:payer-id", "value": v}])),
        );
        insert_some(&mut o, "name", payer.name.as_ref().map(|v| json!(v)));
    }
    Value::Object(o)
}

/// The provider the Claim names as its requester: the case's requesting
/// provider ([`Case::requesting_provider_index`], the rule the 278 writer
/// uses too), else the first provider, since a PAS Claim must name one.
fn provider_index(case: &Case) -> Option<usize> {
    case.requesting_provider_index()
        .or(if case.providers.is_empty() {
            None
        } else {
            Some(0)
        })
}

fn provider_value(case: &Case, index: Option<usize>, id: &str) -> Value {
    let provider = index.and_then(|i| case.providers.get(i));
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("Practitioner"));
    r.insert("id".into(), json!(id));
    if let Some(p) = provider {
        insert_some(
            &mut r,
            "identifier",
            p.npi
                .as_ref()
                .map(|n| json!([{"system": urls::NPI, "value": n}])),
        );
        insert_some(
            &mut r,
            "name",
            p.name.as_ref().map(|n| json!([name_value(n)])),
        );
        if p.name.is_none() {
            insert_some(
                &mut r,
                "name",
                p.organization.as_ref().map(|o| json!([{"text": o}])),
            );
        }
    }
    Value::Object(r)
}

/// The requesting provider as a Practitioner with id `id`.
pub fn requester_resource(case: &Case, id: &str) -> Value {
    provider_value(case, provider_index(case), id)
}

/// The ids the resources of one request bundle refer to each other by.
struct BundleIds {
    patient: String,
    payer: String,
    requester: String,
}

/// The PAS Request Bundle for `case`: the Claim first, then the Patient, the
/// payer Organization, the requesting Practitioner, the Coverages and the
/// other providers (the care team).
pub fn request_bundle(case: &Case) -> Value {
    let mut case = case.clone();
    gateway_core::facts::strip_unsendable(&mut case);
    let cid = &case.case_id;
    let base = "urn:ehr-gateway:pas";
    let ids = BundleIds {
        patient: format!("{cid}-patient"),
        payer: format!("{cid}-payer"),
        requester: format!("{cid}-requester"),
    };
    let mut others = vec![
        (
            "Patient",
            ids.patient.clone(),
            patient_resource(&case, &ids.patient),
        ),
        (
            "Organization",
            ids.payer.clone(),
            payer_resource(&case, &ids.payer),
        ),
        (
            "Practitioner",
            ids.requester.clone(),
            requester_resource(&case, &ids.requester),
        ),
    ];
    let mut insurance = Vec::new();
    for (i, coverage) in case.coverages.iter().enumerate() {
        let id = format!("{cid}-coverage-{}", i + 1);
        others.push((
            "Coverage",
            id.clone(),
            coverage_resource(coverage, &id, &ids),
        ));
        insurance.push(json!({"sequence": i + 1, "focal": i == 0, "coverage": {"reference": format!("Coverage/{id}")}}));
    }
    let mut care_team = Vec::new();
    let requester = provider_index(&case);
    for (i, provider) in case.providers.iter().enumerate() {
        if Some(i) == requester {
            continue;
        }
        let id = format!("{cid}-provider-{}", i + 1);
        others.push((
            "Practitioner",
            id.clone(),
            provider_value(&case, Some(i), &id),
        ));
        care_team.push(json!({"sequence": care_team.len() + 1, "provider": {"reference": format!("Practitioner/{id}")},
                              "role": {"coding": [{"system": "urn:ehr-gateway:provider-role", "code": provider.role.as_str()}]}}));
    }
    let claim = claim_resource(&case, &ids, insurance, care_team);
    let mut entry = vec![json!({"fullUrl": format!("{base}/Claim/{cid}"), "resource": claim})];
    for (rtype, id, resource) in others {
        entry.push(json!({"fullUrl": format!("{base}/{rtype}/{id}"), "resource": resource}));
    }
    json!({
        "resourceType": "Bundle",
        "id": format!("{cid}-request"),
        "meta": {"profile": [urls::REQUEST_BUNDLE]},
        "identifier": {"system": "urn:ehr-gateway:pas-request", "value": cid},
        "type": "collection",
        "timestamp": case.source.received_at,
        "entry": entry,
    })
}

/// One Coverage (member id as `subscriberId` and an MB identifier, the
/// subscriber relationship, group and plan classes), paid by the bundle's
/// payer for its patient.
fn coverage_resource(coverage: &Coverage, id: &str, ids: &BundleIds) -> Value {
    let mut c = Map::new();
    c.insert("resourceType".into(), json!("Coverage"));
    c.insert("id".into(), json!(id));
    c.insert("status".into(), json!("active"));
    insert_some(
        &mut c,
        "subscriberId",
        coverage.member_id.as_ref().map(|v| json!(v)),
    );
    insert_some(&mut c, "identifier", coverage.member_id.as_ref().map(|v| json!([{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MB"}]}, "value": v}])));
    c.insert(
        "beneficiary".into(),
        json!({"reference": format!("Patient/{}", ids.patient)}),
    );
    insert_some(
        &mut c,
        "relationship",
        coverage
            .subscriber_relationship
            .and_then(|r| serde_json::to_value(r).ok())
            .map(|r| json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": r}]})),
    );
    c.insert(
        "payor".into(),
        json!([{"reference": format!("Organization/{}", ids.payer)}]),
    );
    let mut classes = Vec::new();
    if let Some(group) = &coverage.group_number {
        classes.push(json!({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}]}, "value": group}));
    }
    if let Some(plan) = &coverage.plan_name {
        classes.push(json!({"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]}, "value": plan, "name": plan}));
    }
    if !classes.is_empty() {
        c.insert("class".into(), Value::Array(classes));
    }
    Value::Object(c)
}

/// The Claim (`use = preauthorization`) of the request bundle.
fn claim_resource(
    case: &Case,
    ids: &BundleIds,
    insurance: Vec<Value>,
    care_team: Vec<Value>,
) -> Value {
    let mut claim = Map::new();
    claim.insert("resourceType".into(), json!("Claim"));
    claim.insert("id".into(), json!(case.case_id));
    claim.insert("meta".into(), json!({"profile": [urls::CLAIM]}));
    claim.insert("identifier".into(), json!([{"system": "urn:ehr-gateway:case", "value": crate::response::claim_identifier(case)}]));
    claim.insert(
        "status".into(),
        json!(if case.status == CaseStatus::Cancelled {
            "cancelled"
        } else {
            "active"
        }),
    );
    claim.insert("type".into(), json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]}));
    claim.insert("use".into(), json!("preauthorization"));
    claim.insert(
        "patient".into(),
        json!({"reference": format!("Patient/{}", ids.patient)}),
    );
    claim.insert("created".into(), json!(case.source.received_at));
    claim.insert(
        "insurer".into(),
        json!({"reference": format!("Organization/{}", ids.payer)}),
    );
    claim.insert(
        "provider".into(),
        json!({"reference": format!("Practitioner/{}", ids.requester)}),
    );
    let priority = match case.urgency {
        Some(Urgency::Urgent | Urgency::Emergency) => "stat",
        _ => "normal",
    };
    claim.insert("priority".into(), json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": priority}]}));
    if !care_team.is_empty() {
        claim.insert("careTeam".into(), Value::Array(care_team));
    }
    let diagnoses: Vec<Value> = case
        .diagnoses
        .iter()
        .enumerate()
        .map(|(i, d)| diagnosis_value(i + 1, d))
        .collect();
    if !diagnoses.is_empty() {
        claim.insert("diagnosis".into(), Value::Array(diagnoses));
    }
    claim.insert("insurance".into(), Value::Array(insurance));
    let items = case.services.iter().map(item_value).collect();
    claim.insert("item".into(), Value::Array(items));
    Value::Object(claim)
}

/// `Claim.diagnosis[sequence]`, `principal` when the case marks it primary.
fn diagnosis_value(sequence: usize, d: &Diagnosis) -> Value {
    let mut coding = json!({"system": system_url(d.code.system), "code": d.code.code});
    if let Some(display) = &d.code.display {
        coding["display"] = json!(display);
    }
    let mut v = json!({"sequence": sequence, "diagnosisCodeableConcept": {"coding": [coding]}});
    if d.primary {
        v["type"] = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-diagnosistype", "code": "principal"}]}]);
    }
    v
}

/// `Claim.item` of one service line (its `sequence` is the line number the
/// decision's lines refer to).
fn item_value(s: &ServiceLine) -> Value {
    let mut item = Map::new();
    item.insert("sequence".into(), json!(s.line));
    let mut coding = json!({"system": system_url(s.code.system), "code": s.code.code});
    if let Some(display) = &s.code.display {
        coding["display"] = json!(display);
    }
    item.insert("productOrService".into(), json!({"coding": [coding]}));
    if !s.modifiers.is_empty() {
        item.insert(
            "modifier".into(),
            Value::Array(
                s.modifiers
                    .iter()
                    .map(|m| json!({"coding": [{"system": system_url(s.code.system), "code": m}]}))
                    .collect(),
            ),
        );
    }
    if let Some(q) = &s.quantity {
        let mut quantity = json!({"value": q});
        if let Some(unit) = &s.unit {
            quantity["unit"] = json!(unit);
        }
        item.insert("quantity".into(), quantity);
    }
    if let Some(date) = &s.service_date {
        match (&date.start, &date.end) {
            (Some(start), None) => {
                item.insert("servicedDate".into(), json!(start));
            }
            (start, end) => {
                let mut p = Map::new();
                insert_some(&mut p, "start", start.as_ref().map(|v| json!(v)));
                insert_some(&mut p, "end", end.as_ref().map(|v| json!(v)));
                item.insert("servicedPeriod".into(), Value::Object(p));
            }
        }
    }
    if let Some(pos) = &s.place_of_service {
        item.insert("locationCodeableConcept".into(), json!({"coding": [{"system": "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", "code": pos}]}));
    }
    Value::Object(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Operation, validate};
    use serde_json::json;

    #[test]
    fn what_we_write_passes_our_own_submit_validation() {
        let case: Case = serde_json::from_value(json!({
            "schema": "ehr-gateway/case/v1", "case_id": "case-0000000000000000000000aa", "tenant": "t",
            "source": {"adapter": "hl7v2", "profile": "epic", "received_at": "2026-12-01T10:00:00Z"},
            "status": "requested", "urgency": "urgent",
            "patient": {"identifiers": [{"type": "MR", "value": "SYN1"}], "name": {"family": "Synthetic", "given": ["Pat"]}, "sex": "other"},
            "coverages": [{"sequence": 1, "payer": {"id": "P1", "name": "Synthetic Plan"}, "member_id": "M1"}],
            "providers": [{"role": "ordering", "npi": "1234567893"}, {"role": "rendering", "npi": "1234567890"}],
            "services": [{"line": 1, "code": {"system": "CPT", "code": "78452"}, "modifiers": [], "quantity": 1,
                          "service_date": {"start": "2026-12-01", "end": "2026-12-02"}}],
            "diagnoses": [{"code": {"system": "ICD-10-CM", "code": "I25.10"}, "primary": true}]
        }))
        .expect("case");
        let bundle = request_bundle(&case);
        let raw = serde_json::to_vec(&bundle).expect("json");
        let request = validate(&raw, Operation::Submit).expect("valid PAS request");
        assert_eq!(request.item_sequences, [1]);
        assert_eq!(request.claim_id, case.case_id);
        let claim = &bundle["entry"][0]["resource"];
        assert_eq!(claim["priority"]["coding"][0]["code"], "stat");
        // The invalid NPI (Luhn) of the rendering provider is not written.
        let text = bundle.to_string();
        assert!(text.contains("1234567893") && !text.contains("1234567890"));
    }
}

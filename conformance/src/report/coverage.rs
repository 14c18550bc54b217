//! Field coverage: which Case fields each profile filled across its cases.
//! An integration engineer reads it to see what a profile never maps.

use std::collections::{BTreeMap, BTreeSet};

use crate::compare::{field_pattern, leaf_paths};
use crate::result::CaseResult;

/// Suite → field pattern (`services[].code.code`) → number of cases filling it.
pub fn by_suite(results: &[CaseResult]) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for result in results {
        let Some(case) = &result.actual_case else {
            continue;
        };
        let fields: BTreeSet<String> = leaf_paths(case).iter().map(|p| field_pattern(p)).collect();
        let suite = out.entry(result.suite.clone()).or_default();
        for field in fields {
            *suite.entry(field).or_default() += 1;
        }
    }
    out
}

/// The Case v1 leaf fields a report lists even when no case filled them.
pub const CASE_FIELDS: &[&str] = &[
    "case_id",
    "tenant",
    "practice",
    "site",
    "status",
    "urgency",
    "source.adapter",
    "source.profile",
    "source.message_type",
    "source.control_id",
    "source.sender",
    "patient.identifiers[].type",
    "patient.identifiers[].value",
    "patient.identifiers[].assigner",
    "patient.name.family",
    "patient.name.given[]",
    "patient.birth_date",
    "patient.sex",
    "patient.address.lines[]",
    "patient.address.city",
    "patient.address.state",
    "patient.address.postal_code",
    "patient.phone",
    "coverages[].sequence",
    "coverages[].payer.id",
    "coverages[].payer.name",
    "coverages[].member_id",
    "coverages[].group_number",
    "coverages[].plan_name",
    "coverages[].subscriber_relationship",
    "providers[].role",
    "providers[].npi",
    "providers[].name.family",
    "providers[].organization",
    "services[].line",
    "services[].code.system",
    "services[].code.code",
    "services[].code.display",
    "services[].modifiers[]",
    "services[].quantity",
    "services[].service_date.start",
    "services[].place_of_service",
    "diagnoses[].code.system",
    "diagnoses[].code.code",
    "diagnoses[].primary",
    "decision.status",
    "decision.authorization_number",
    "decision.effective.start",
    "decision.effective.end",
    "decision.reason_codes[]",
    "decision.service_decisions[].status",
    "references.placer_order",
    "notes[]",
];

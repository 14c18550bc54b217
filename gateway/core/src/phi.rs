//! Which Case v1 fields are PHI: one table for every field of the model, and
//! the least-PHI view built from it.
//!
//! *Why one table next to the model:* "who may see what" must not be decided
//! handler by handler (the admin API once removed the patient object and the
//! member ids and let notes, diagnoses and services through). Every field of
//! the JSON Schema (`schema/case.v1.json`) has exactly one entry here, and a
//! test walks the schema and fails when a field has none — so a field added
//! to the model is classified before it ships.
//!
//! Paths are dotted member names from the case root; `[]` stands for "every
//! element" of an array (`coverages[].member_id`). An entry classified
//! [`Class::Phi`] covers its whole subtree (a field added under `patient` is
//! PHI without a new entry); an entry classified [`Class::Open`] covers only
//! itself, so each member of an open object needs its own entry. A path with
//! no entry is treated as PHI by [`least_phi_view`] (fail closed).

use serde_json::Value;

/// Whether a field may be shown to a role without `phi:read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Operational data: ids, routing, status, payer and provider identity.
    Open,
    /// Protected health information (HIPAA identifiers, clinical content,
    /// free text): shown only to `phi:read`, and audited.
    Phi,
}

use Class::{Open, Phi};

/// Every Case v1 field and its class. Free text is PHI wherever it appears
/// (it can say anything), as are identifiers and dates tied to the patient's
/// care (authorization numbers, trace numbers, authorized periods).
pub const CASE_FIELDS: &[(&str, Class)] = &[
    ("schema", Open),
    ("case_id", Open),
    ("tenant", Open),
    ("practice", Open),
    ("site", Open),
    ("source", Open),
    ("source.adapter", Open),
    ("source.profile", Open),
    ("source.message_type", Open),
    ("source.control_id", Open),
    ("source.sender", Open),
    ("source.received_at", Open),
    ("status", Open),
    ("urgency", Open),
    // Demographics and identifiers: the patient as a whole.
    ("patient", Phi),
    ("coverages", Open),
    ("coverages[]", Open),
    ("coverages[].sequence", Open),
    ("coverages[].payer", Open),
    ("coverages[].payer.id", Open),
    ("coverages[].payer.name", Open),
    ("coverages[].member_id", Phi),
    ("coverages[].group_number", Phi),
    ("coverages[].plan_name", Open),
    ("coverages[].subscriber_relationship", Phi),
    // The ordering/servicing providers are not the patient.
    ("providers", Open),
    ("providers[]", Open),
    ("providers[].role", Open),
    ("providers[].npi", Open),
    ("providers[].name", Open),
    ("providers[].name.family", Open),
    ("providers[].name.given", Open),
    ("providers[].name.given[]", Open),
    ("providers[].name.prefix", Open),
    ("providers[].name.suffix", Open),
    ("providers[].organization", Open),
    ("providers[].identifiers", Open),
    ("providers[].identifiers[]", Open),
    ("providers[].identifiers[].type", Open),
    ("providers[].identifiers[].value", Open),
    ("providers[].identifiers[].assigner", Open),
    ("providers[].phone", Open),
    // Clinical content: what is requested and why.
    ("services", Phi),
    ("diagnoses", Phi),
    ("decision", Open),
    ("decision.status", Open),
    ("decision.authorization_number", Phi),
    ("decision.effective", Phi),
    ("decision.reason_codes", Open),
    ("decision.reason_codes[]", Open),
    ("decision.payer_trace", Phi),
    ("decision.service_decisions", Phi),
    ("decision.decided_at", Open),
    ("decision.note", Phi),
    ("attachments", Phi),
    // Order numbers, X12 traces and other keys into the patient's record.
    ("references", Phi),
    ("notes", Phi),
];

/// The class of `path` (dotted, `[]` for array elements): its own entry, or
/// PHI when an ancestor is PHI; `None` when neither (unclassified).
pub fn classify(path: &str) -> Option<Class> {
    // Every proper prefix that names a field or an array's elements: before
    // each `.` and `[`, and after each `[]` that does not end the path.
    let mut prefixes = Vec::new();
    for (i, c) in path.char_indices() {
        match c {
            '.' | '[' if i > 0 => prefixes.push(&path[..i]),
            ']' if i + 1 < path.len() => prefixes.push(&path[..=i]),
            _ => {}
        }
    }
    if prefixes.into_iter().any(|p| lookup(p) == Some(Phi)) {
        return Some(Phi);
    }
    lookup(path)
}

fn lookup(path: &str) -> Option<Class> {
    CASE_FIELDS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, class)| *class)
}

/// Turns a Case v1 JSON value into the view of a role without `phi:read`:
/// every member whose path is PHI or unclassified is replaced by `marker`.
/// Returns the JSON pointers replaced (e.g. `/coverages/0/member_id`).
pub fn least_phi_view(case: &mut Value, marker: &Value) -> Vec<String> {
    let mut replaced = Vec::new();
    walk(case, "", "", marker, &mut replaced);
    replaced
}

fn walk(value: &mut Value, path: &str, pointer: &str, marker: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let child_pointer = format!("{pointer}/{}", escape(key));
                match classify(&child_path) {
                    Some(Open) => walk(child, &child_path, &child_pointer, marker, out),
                    Some(Phi) | None => {
                        *child = marker.clone();
                        out.push(child_pointer);
                    }
                }
            }
        }
        Value::Array(items) => {
            let element = format!("{path}[]");
            for (i, item) in items.iter_mut().enumerate() {
                let child_pointer = format!("{pointer}/{i}");
                match classify(&element) {
                    Some(Open) => walk(item, &element, &child_pointer, marker, out),
                    Some(Phi) | None => {
                        *item = marker.clone();
                        out.push(child_pointer);
                    }
                }
            }
        }
        _ => {}
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn phi_ancestors_cover_their_subtree_and_open_ones_do_not() {
        assert_eq!(classify("patient.name.family"), Some(Phi));
        assert_eq!(classify("services[].code.code"), Some(Phi));
        assert_eq!(classify("coverages[].member_id"), Some(Phi));
        assert_eq!(classify("coverages[].payer.name"), Some(Open));
        assert_eq!(classify("source.unheard_of"), None);
        assert_eq!(classify("decision.note"), Some(Phi));
    }

    #[test]
    fn the_view_keeps_open_fields_and_marks_the_rest() {
        let mut case = json!({
            "case_id": "case-1",
            "notes": ["call back"],
            "coverages": [{"sequence": 1, "member_id": "M1", "payer": {"name": "P"}}],
            "decision": {"status": "approved", "note": "n"},
            "brand_new": "x"
        });
        let marker = json!({"redacted": true});
        let replaced = least_phi_view(&mut case, &marker);
        assert_eq!(case["case_id"], "case-1");
        assert_eq!(case["notes"], marker);
        assert_eq!(case["coverages"][0]["member_id"], marker);
        assert_eq!(case["coverages"][0]["payer"]["name"], "P");
        assert_eq!(case["decision"]["status"], "approved");
        assert_eq!(case["decision"]["note"], marker);
        assert_eq!(case["brand_new"], marker, "unclassified fails closed");
        assert!(replaced.contains(&"/coverages/0/member_id".to_owned()));
    }
}

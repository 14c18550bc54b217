//! Every field of the checked-in Case v1 JSON Schema has a PHI classification
//! (`gateway_core::phi::CASE_FIELDS`), and every entry of that table is a
//! field of the schema: adding a field to the model without classifying it
//! fails here.

use std::collections::BTreeSet;
use std::path::Path;

use gateway_core::phi::{CASE_FIELDS, Class, classify};
use serde_json::Value;

fn schema() -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(gateway_core::schema::CASE_SCHEMA_FILE),
    )
    .expect("schema file");
    serde_json::from_str(&text).expect("schema json")
}

/// Resolves `$ref` and `anyOf` (nullable wrappers) to the object or array
/// schemas a value may take.
fn variants<'a>(root: &'a Value, node: &'a Value, depth: usize) -> Vec<&'a Value> {
    assert!(depth < 32, "schema nesting too deep (a cycle?)");
    if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let name = reference
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
        return variants(root, &root["$defs"][name], depth + 1);
    }
    let mut out = vec![node];
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = node.get(key).and_then(Value::as_array) {
            for item in list {
                out.extend(variants(root, item, depth + 1));
            }
        }
    }
    out
}

/// Every field path of the schema (`a.b`, `a[]`, `a[].b`).
fn walk(root: &Value, node: &Value, path: &str, out: &mut BTreeSet<String>, depth: usize) {
    for variant in variants(root, node, depth) {
        if let Some(properties) = variant.get("properties").and_then(Value::as_object) {
            for (name, child) in properties {
                let child_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                out.insert(child_path.clone());
                walk(root, child, &child_path, out, depth + 1);
            }
        }
        if let Some(items) = variant.get("items") {
            let element = format!("{path}[]");
            out.insert(element.clone());
            walk(root, items, &element, out, depth + 1);
        }
        if let Some(extra) = variant.get("additionalProperties")
            && extra.is_object()
        {
            // A map (e.g. `references`): its values are one field of the map.
            let element = format!("{path}.*");
            out.insert(element.clone());
            walk(root, extra, &element, out, depth + 1);
        }
    }
}

fn schema_fields() -> BTreeSet<String> {
    let root = schema();
    let mut fields = BTreeSet::new();
    walk(&root, &root, "", &mut fields, 0);
    fields
}

#[test]
fn every_schema_field_is_classified() {
    let fields = schema_fields();
    assert!(
        fields.contains("patient.name.family") && fields.contains("decision.note"),
        "the schema walk found too little: {fields:?}"
    );
    let unclassified: Vec<&String> = fields.iter().filter(|f| classify(f).is_none()).collect();
    assert!(
        unclassified.is_empty(),
        "Case v1 fields without a PHI classification in gateway_core::phi::CASE_FIELDS: \
         {unclassified:?}"
    );
}

#[test]
fn every_classification_names_a_schema_field() {
    let fields = schema_fields();
    let stale: Vec<&str> = CASE_FIELDS
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !fields.contains(*p))
        .collect();
    assert!(
        stale.is_empty(),
        "classified but not in the schema: {stale:?}"
    );
    let mut seen = BTreeSet::new();
    for (path, _) in CASE_FIELDS {
        assert!(seen.insert(path), "{path} classified twice");
    }
}

#[test]
fn what_the_issue_names_is_phi() {
    for path in [
        "notes",
        "decision.note",
        "diagnoses[].code.code",
        "services[].code.code",
        "coverages[].member_id",
        "coverages[].group_number",
        "patient.name.family",
        "patient.birth_date",
        "references.*",
    ] {
        assert_eq!(classify(path), Some(Class::Phi), "{path}");
    }
}

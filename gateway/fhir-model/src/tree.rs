//! A FHIR Bundle (or a single resource) as a gateway-core source tree.
//!
//! The mapping engine walks a [`SourceTree`]; for FHIR the tree's root is
//! named `Bundle` and holds one node per entry's resource, named by its
//! `resourceType` (so `Claim.item`, `Coverage[*]` and `Patient.birthDate` are
//! plain child paths), built with gateway-core's [`json_tree`] conventions
//! (arrays become repeated siblings). Resources of the *focus* type come first
//! (ServiceRequest for an order bundle, Claim for a PAS request). Every
//! resource is registered under `Type/id`, `Type/id/_history/versionId` and its
//! entry's `fullUrl`, so that `subject.resolve()` follows a reference within
//! the bundle.
//!
//! What each adapter requires of the bundle (which resource makes the case,
//! which references must resolve) is the adapter's business: this module only
//! builds the tree, reports what is structurally wrong (`F001`–`F004`) and
//! offers [`resolve`] for the adapter's own checks.
//!
//! [`json_tree`]: gateway_core::json_tree

use std::collections::HashSet;

use gateway_core::json_tree::push_member;
use gateway_core::{Diagnostic, NodeId, SourceTree, Span};
use serde_json::Value;

/// The FHIR version the adapters speak.
pub const FHIR_VERSION: &str = "4.0.1";

/// Diagnostic codes of this module (shared by every FHIR format).
pub mod codes {
    /// Not JSON.
    pub const NOT_JSON: &str = "F001";
    /// JSON, but not a FHIR resource.
    pub const NOT_A_RESOURCE: &str = "F002";
    /// A Bundle entry without a usable resource.
    pub const BAD_ENTRY: &str = "F003";
    /// Two entries with the same `Type/id`.
    pub const DUPLICATE_RESOURCE: &str = "F004";
}

/// One resource of the tree, in tree order.
#[derive(Debug, Clone)]
pub struct TreeEntry<'a> {
    /// `Bundle.entry[i]`, or `$` for a lone resource.
    pub location: String,
    /// The entry's `fullUrl`.
    pub full_url: Option<&'a str>,
    /// The resource JSON.
    pub resource: &'a Value,
    /// Its node in the tree.
    pub node: NodeId,
}

/// A bundle's tree with its resources and structural diagnostics.
#[derive(Debug)]
pub struct BundleTree<'a> {
    /// `resourceType` of the document (`Bundle` or the lone resource's type).
    pub root_type: &'a str,
    /// The tree (root `Bundle`).
    pub tree: SourceTree,
    /// Every resource, focus type first, otherwise in entry order.
    pub entries: Vec<TreeEntry<'a>>,
    /// Skipped entries and duplicate ids (warnings).
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> BundleTree<'a> {
    /// The entries whose resource is of type `rtype`, in tree order.
    pub fn of_type<'s>(&'s self, rtype: &'s str) -> impl Iterator<Item = &'s TreeEntry<'a>> + 's {
        self.entries
            .iter()
            .filter(move |e| resource_type(e.resource) == rtype)
    }

    /// Resolves `reference` made from `from` like the path engine will.
    pub fn resolve(&self, from: &Value, reference: &str) -> Option<NodeId> {
        resolve(&self.tree, from, reference)
    }

    /// The resource JSON a resolved node stands for.
    pub fn resource_at(&self, node: NodeId) -> Option<&'a Value> {
        self.entries
            .iter()
            .find(|e| e.node == node)
            .map(|e| e.resource)
    }
}

/// Parses raw bytes as JSON, or the `F001` diagnostic with the byte position.
pub fn parse_json(raw: &[u8]) -> Result<Value, Diagnostic> {
    serde_json::from_slice(raw).map_err(|e| json_error(raw, &e))
}

/// Builds the tree of `value` with resources of type `focus` first.
/// `spans[i]` is the byte span of `Bundle.entry[i]` (see [`entry_spans`]);
/// pass `&[]` without raw bytes. `Err` only when `value` is not a FHIR
/// resource at all (`F002`).
pub fn build_tree<'a>(
    value: &'a Value,
    spans: &[Span],
    focus: &str,
) -> Result<BundleTree<'a>, Diagnostic> {
    let mut diagnostics = Vec::new();
    let Some(root_type) = value.get("resourceType").and_then(Value::as_str) else {
        return Err(Diagnostic::error(
            codes::NOT_A_RESOURCE,
            "the document is not a FHIR resource (no resourceType)",
        )
        .at("$"));
    };

    let mut resources: Vec<(String, Option<&'a str>, &'a Value)> = Vec::new();
    if root_type == "Bundle" {
        let entries = value
            .get("entry")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (i, entry) in entries.iter().enumerate() {
            let location = format!("Bundle.entry[{i}]");
            match entry.get("resource") {
                Some(r) if r.get("resourceType").and_then(Value::as_str).is_some() => {
                    resources.push((location, entry.get("fullUrl").and_then(Value::as_str), r));
                }
                _ => diagnostics.push(
                    Diagnostic::warning(
                        codes::BAD_ENTRY,
                        "entry has no resource with a resourceType; skipped",
                    )
                    .at(location),
                ),
            }
        }
    } else {
        resources.push(("$".to_owned(), None, value));
    }
    // Stable partition: the focus type first, in its original order.
    resources.sort_by_key(|(_, _, r)| resource_type(r) != focus);

    let mut tree = SourceTree::new("Bundle");
    let root = tree.root();
    if root_type == "Bundle" {
        for key in ["id", "type", "timestamp"] {
            if let Some(v) = value.get(key) {
                push_member(&mut tree, root, key, v);
            }
        }
    }
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(resources.len());
    for (location, full_url, resource) in resources {
        let rtype = resource_type(resource);
        let span = entry_index(&location).and_then(|i| spans.get(i).copied());
        let node = tree.push(root, rtype, None, span);
        if let Some(members) = resource.as_object() {
            for (k, v) in members {
                push_member(&mut tree, node, k, v);
            }
        }
        entries.push(TreeEntry {
            location: location.clone(),
            full_url,
            resource,
            node,
        });
        if let Some(id) = resource.get("id").and_then(Value::as_str) {
            let key = format!("{rtype}/{id}");
            if !seen.insert(key.clone()) {
                diagnostics.push(
                    Diagnostic::warning(
                        codes::DUPLICATE_RESOURCE,
                        format!("{key} appears more than once; the first is used"),
                    )
                    .at(location),
                );
                continue;
            }
            if let Some(vid) = resource.pointer("/meta/versionId").and_then(Value::as_str) {
                tree.register_key(format!("{key}/_history/{vid}"), node);
            }
            tree.register_key(key, node);
        }
        if let Some(full_url) = full_url
            && tree.lookup(full_url).is_none()
        {
            tree.register_key(full_url, node);
        }
    }
    Ok(BundleTree {
        root_type,
        tree,
        entries,
        diagnostics,
    })
}

fn entry_index(location: &str) -> Option<usize> {
    location
        .strip_prefix("Bundle.entry[")
        .and_then(|l| l.split(']').next())
        .and_then(|i| i.parse::<usize>().ok())
}

/// Gives each diagnostic located at an entry (`Bundle.entry[i]…`) the byte
/// span of that entry in the raw input, unless it has one.
pub fn attach_diagnostic_spans(spans: &[Span], diagnostics: &mut [Diagnostic]) {
    for diagnostic in diagnostics {
        let index = diagnostic.location.as_deref().and_then(entry_index);
        if let Some(span) = index.and_then(|i| spans.get(i))
            && diagnostic.span.is_none()
        {
            diagnostic.span = Some(*span);
        }
    }
}

/// Byte spans of the elements of the top-level `"entry"` array of valid JSON.
/// A small scanner (strings, escapes, nesting) — serde_json keeps no positions.
pub fn entry_spans(raw: &[u8]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut in_entry = false;
    let mut element_start: Option<usize> = None;
    let mut last_key: Option<(usize, usize)> = None;
    while i < raw.len() {
        let b = raw[i];
        match b {
            b'"' => {
                let start = i;
                i += 1;
                while i < raw.len() && raw[i] != b'"' {
                    if raw[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if in_entry && depth == 2 && element_start.is_none() {
                    element_start = Some(start);
                }
                if depth == 1 {
                    last_key = Some((start + 1, i));
                }
            }
            b'{' | b'[' => {
                if in_entry && depth == 2 && element_start.is_none() {
                    element_start = Some(i);
                }
                if depth == 1 && b == b'[' {
                    in_entry = last_key.is_some_and(|(s, e)| raw.get(s..e) == Some(&b"entry"[..]));
                }
                depth += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if in_entry && depth == 2 {
                    if let Some(start) = element_start.take() {
                        spans.push(Span::new(start, i + 1));
                    }
                } else if in_entry && depth == 1 {
                    in_entry = false;
                }
            }
            b',' if in_entry && depth == 2 => {
                if let Some(start) = element_start.take() {
                    spans.push(Span::new(start, i));
                }
            }
            _ => {}
        }
        i += 1;
    }
    spans
}

/// `resourceType` of a resource (`Resource` when it has none).
pub fn resource_type(resource: &Value) -> &str {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource")
}

/// Resolves a reference like the path engine will: registered keys, plus
/// references to contained resources (`#id`, answered with the root node).
pub fn resolve(tree: &SourceTree, from: &Value, reference: &str) -> Option<NodeId> {
    if let Some(local) = reference.strip_prefix('#') {
        let contained = from.get("contained")?.as_array()?;
        return contained
            .iter()
            .any(|c| c.get("id").and_then(Value::as_str) == Some(local))
            .then_some(tree.root());
    }
    tree.lookup(reference)
}

/// `Type/id` of a reference for messages: ids and types are not PHI.
pub fn reference_label(reference: &str) -> String {
    let parts: Vec<&str> = reference
        .trim_end_matches('/')
        .rsplit('/')
        .take(2)
        .collect();
    match parts.as_slice() {
        [id, rtype] => format!("{rtype}/{id}"),
        _ => "an unresolvable reference".to_owned(),
    }
}

/// The `F001` diagnostic of a serde_json error, at its byte position.
pub fn json_error(raw: &[u8], e: &serde_json::Error) -> Diagnostic {
    let offset = byte_offset(raw, e.line(), e.column());
    Diagnostic::error(
        codes::NOT_JSON,
        format!(
            "not JSON: {:?} error at line {}, column {}",
            e.classify(),
            e.line(),
            e.column()
        ),
    )
    .with_span(Span::new(offset, (offset + 1).min(raw.len().max(offset))))
}

/// Byte offset of 1-based `line` and `column` (serde_json counts columns in bytes).
fn byte_offset(raw: &[u8], line: usize, column: usize) -> usize {
    let mut current = 1;
    let mut start = 0;
    for (i, b) in raw.iter().enumerate() {
        if current == line {
            break;
        }
        if *b == b'\n' {
            current += 1;
            start = i + 1;
        }
    }
    (start + column.saturating_sub(1)).min(raw.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn focus_first_keys_registered_and_spans_found() {
        let value = json!({"resourceType": "Bundle", "entry": [
            {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "meta": {"versionId": "3"}}},
            {"resource": {"resourceType": "Claim", "id": "c1", "patient": {"reference": "urn:uuid:p1"}}},
            {"resource": {"resourceType": "Claim", "id": "c1"}},
            {"request": {}}
        ]});
        let raw = serde_json::to_vec(&value).expect("json");
        let spans = entry_spans(&raw);
        assert_eq!(spans.len(), 4);
        let built = build_tree(&value, &spans, "Claim").expect("resource");
        let names: Vec<&str> = built
            .entries
            .iter()
            .map(|e| resource_type(e.resource))
            .collect();
        assert_eq!(names, ["Claim", "Claim", "Patient"]);
        assert!(built.tree.lookup("Patient/p1/_history/3").is_some());
        let claim = built.of_type("Claim").next().expect("claim");
        let patient = built
            .resolve(claim.resource, "urn:uuid:p1")
            .expect("resolves");
        assert_eq!(
            built.resource_at(patient).and_then(|p| p.get("id")),
            Some(&json!("p1"))
        );
        let codes: Vec<&str> = built.diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert_eq!(codes, ["F003", "F004"]);
        assert_eq!(reference_label("http://x/fhir/Patient/p9"), "Patient/p9");
    }

    #[test]
    fn non_json_and_non_resources_are_reported() {
        let err = parse_json(b"{\n \"a\": tru").expect_err("bad");
        assert_eq!(err.code, "F001");
        assert!(err.span.is_some());
        let value = json!([1, 2]);
        assert_eq!(
            build_tree(&value, &[], "Claim")
                .expect_err("no resource")
                .code,
            "F002"
        );
    }
}

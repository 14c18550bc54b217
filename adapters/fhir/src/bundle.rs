//! A FHIR Bundle (one ServiceRequest and what it references) as a source tree.
//!
//! The mapping engine walks a [`SourceTree`]; for FHIR the tree's root is named
//! `Bundle` and holds one node per entry's resource, named by its
//! `resourceType` (so `ServiceRequest.code`, `Coverage[*]` and
//! `Patient.birthDate` are plain child paths), built with gateway-core's
//! [`json_tree`] conventions (arrays become repeated siblings). The focus
//! ServiceRequest comes first. Every resource is registered under `Type/id`,
//! `Type/id/_history/versionId` and its entry's `fullUrl`, so that
//! `subject.resolve()` follows a reference within the bundle.
//!
//! We map from the JSON tree instead of typed FHIR models (fhirbolt): the
//! mapping needs names and values, not types, and fhirbolt would cost minutes of
//! build time and gigabytes of RAM (see the crate docs).
//!
//! A bundle that cannot make a case is reported precisely and never panics:
//! no ServiceRequest (`F010`), a ServiceRequest without `subject` (`F011`), a
//! reference on the case's path that nothing in the bundle answers (`F012`).
//! [`parse_bundle`] returns those as `Err` so the pipeline stores the raw bundle
//! as rejected with the reason; [`build_document`] keeps the partial tree for
//! `inspect`.

use std::collections::HashSet;

use gateway_core::json_tree::push_member;
use gateway_core::source::MessageMeta;
use gateway_core::{Diagnostic, SourceDocument, SourceFormat, SourceTree, Span};
use serde_json::Value;

/// The FHIR version the adapter speaks.
pub const FHIR_VERSION: &str = "4.0.1";

/// Diagnostic codes of this module.
pub mod codes {
    /// Not JSON.
    pub const NOT_JSON: &str = "F001";
    /// JSON, but not a FHIR resource.
    pub const NOT_A_RESOURCE: &str = "F002";
    /// A Bundle entry without a usable resource.
    pub const BAD_ENTRY: &str = "F003";
    /// Two entries with the same `Type/id`.
    pub const DUPLICATE_RESOURCE: &str = "F004";
    /// More than one ServiceRequest; the first is the case.
    pub const SEVERAL_SERVICE_REQUESTS: &str = "F005";
    /// No ServiceRequest in the bundle.
    pub const NO_SERVICE_REQUEST: &str = "F010";
    /// The ServiceRequest has no subject.
    pub const MISSING_SUBJECT: &str = "F011";
    /// A reference the case needs points at nothing in the bundle.
    pub const DANGLING_REFERENCE: &str = "F012";
    /// The subject is not a Patient.
    pub const SUBJECT_NOT_PATIENT: &str = "F013";
}

/// Parses a bundle for the pipeline: `Ok` only when it can make a case.
/// On `Err` every diagnostic is returned (errors and warnings).
pub fn parse_bundle(raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    let document = build_document(raw)?;
    if document.is_clean() {
        Ok(document)
    } else {
        Err(document.diagnostics)
    }
}

/// Builds the tree and every diagnostic; `Err` only when there is no resource
/// at all (not JSON, no `resourceType`).
pub fn build_document(raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| vec![json_error(raw, &e)])?;
    let spans = entry_spans(raw);
    build_with_spans(&value, &spans)
}

/// Gives each diagnostic located at an entry the byte span of that
/// `Bundle.entry[i]` in the raw input.
fn attach_diagnostic_spans(spans: &[Span], diagnostics: &mut [Diagnostic]) {
    for diagnostic in diagnostics {
        let index = diagnostic
            .location
            .as_deref()
            .and_then(|l| l.strip_prefix("Bundle.entry["))
            .and_then(|l| l.split(']').next())
            .and_then(|i| i.parse::<usize>().ok());
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

/// As [`build_document`], from already-parsed JSON (no byte spans).
pub fn build_from_value(value: &Value) -> Result<SourceDocument, Vec<Diagnostic>> {
    build_with_spans(value, &[])
}

/// Builds the document; `spans[i]` is the byte span of `Bundle.entry[i]`.
fn build_with_spans(value: &Value, spans: &[Span]) -> Result<SourceDocument, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let Some(root_type) = value.get("resourceType").and_then(Value::as_str) else {
        return Err(vec![
            Diagnostic::error(
                codes::NOT_A_RESOURCE,
                "the document is not a FHIR resource (no resourceType)",
            )
            .at("$"),
        ]);
    };

    // (location, fullUrl, resource) in tree order, focus ServiceRequest first.
    let mut resources: Vec<(String, Option<&str>, &Value)> = Vec::new();
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
    // Stable partition: ServiceRequests first, in their original order.
    resources.sort_by_key(|(_, _, r)| resource_type(r) != "ServiceRequest");

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
    for (location, full_url, resource) in &resources {
        let rtype = resource_type(resource);
        let span = location
            .strip_prefix("Bundle.entry[")
            .and_then(|l| l.strip_suffix(']'))
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| spans.get(i).copied());
        let node = tree.push(root, rtype, None, span);
        if let Some(members) = resource.as_object() {
            for (k, v) in members {
                push_member(&mut tree, node, k, v);
            }
        }
        if let Some(id) = resource.get("id").and_then(Value::as_str) {
            let key = format!("{rtype}/{id}");
            if !seen.insert(key.clone()) {
                diagnostics.push(
                    Diagnostic::warning(
                        codes::DUPLICATE_RESOURCE,
                        format!("{key} appears more than once; the first is used"),
                    )
                    .at(location.clone()),
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
            tree.register_key(*full_url, node);
        }
    }

    let mut meta = MessageMeta {
        message_type: Some("ServiceRequest".to_owned()),
        version: Some(FHIR_VERSION.to_owned()),
        ..MessageMeta::default()
    };
    let service_requests: Vec<&(String, Option<&str>, &Value)> = resources
        .iter()
        .filter(|(_, _, r)| resource_type(r) == "ServiceRequest")
        .collect();
    match service_requests.first() {
        None => diagnostics.push(
            Diagnostic::error(
                codes::NO_SERVICE_REQUEST,
                format!("no ServiceRequest in the {root_type}; nothing to make a case from"),
            )
            .at("$"),
        ),
        Some((location, _, sr)) => {
            if service_requests.len() > 1 {
                diagnostics.push(
                    Diagnostic::warning(
                        codes::SEVERAL_SERVICE_REQUESTS,
                        format!(
                            "{} ServiceRequests; only the first becomes the case",
                            service_requests.len()
                        ),
                    )
                    .at(location.clone()),
                );
            }
            meta.control_id = sr
                .get("id")
                .and_then(Value::as_str)
                .map(|id| format!("ServiceRequest/{id}"));
            check_references(&tree, &resources, sr, location, &mut diagnostics);
        }
    }

    attach_diagnostic_spans(spans, &mut diagnostics);
    Ok(SourceDocument {
        format: SourceFormat::Fhir,
        meta,
        tree,
        diagnostics,
    })
}

fn resource_type(resource: &Value) -> &str {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("Resource")
}

/// The references a case is built from, per resource type:
/// (element, required).
fn case_references(rtype: &str) -> &'static [(&'static str, bool)] {
    match rtype {
        "ServiceRequest" => &[
            ("subject", true),
            ("requester", false),
            ("performer", false),
            ("insurance", false),
            ("reasonReference", false),
        ],
        "Coverage" => &[("payor", false), ("beneficiary", false)],
        "PractitionerRole" => &[("practitioner", false), ("organization", false)],
        _ => &[],
    }
}

/// Checks the references the case follows: from the focus ServiceRequest, and
/// from every Coverage and PractitionerRole it reaches.
fn check_references(
    tree: &SourceTree,
    resources: &[(String, Option<&str>, &Value)],
    focus: &Value,
    focus_location: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    match focus.get("subject") {
        None | Some(Value::Null) => diagnostics.push(
            Diagnostic::error(
                codes::MISSING_SUBJECT,
                "ServiceRequest has no subject: the case has no patient",
            )
            .at(format!("{focus_location}.resource.subject")),
        ),
        Some(subject) => {
            if let Some(reference) = subject.get("reference").and_then(Value::as_str)
                && let Some(node) = resolve(tree, focus, reference)
                && tree.name(node) != "Patient"
            {
                diagnostics.push(
                    Diagnostic::warning(
                        codes::SUBJECT_NOT_PATIENT,
                        format!(
                            "ServiceRequest.subject is a {}, not a Patient",
                            tree.name(node)
                        ),
                    )
                    .at(format!("{focus_location}.resource.subject")),
                );
            }
        }
    }
    let mut checked: Vec<(&str, &Value)> = vec![(focus_location, focus)];
    checked.extend(
        resources
            .iter()
            .filter(|(_, _, r)| matches!(resource_type(r), "Coverage" | "PractitionerRole"))
            .map(|(loc, _, r)| (loc.as_str(), *r)),
    );
    for (location, resource) in checked {
        let rtype = resource_type(resource);
        for (element, _) in case_references(rtype) {
            let items: Vec<&Value> = match resource.get(*element) {
                Some(Value::Array(items)) => items.iter().collect(),
                Some(one) => vec![one],
                None => Vec::new(),
            };
            for (i, item) in items.iter().enumerate() {
                let Some(reference) = item.get("reference").and_then(Value::as_str) else {
                    continue; // identifier-only or display-only references are fine
                };
                if resolve(tree, resource, reference).is_none() {
                    let at = if items.len() > 1
                        || matches!(resource.get(*element), Some(Value::Array(_)))
                    {
                        format!("{location}.resource.{element}[{i}]")
                    } else {
                        format!("{location}.resource.{element}")
                    };
                    diagnostics.push(
                        Diagnostic::error(
                            codes::DANGLING_REFERENCE,
                            format!(
                                "{rtype}.{element} refers to {}, which is not in the bundle",
                                reference_label(reference)
                            ),
                        )
                        .at(at),
                    );
                }
            }
        }
    }
}

/// Resolves a reference like the path engine will: registered keys, plus
/// references to contained resources (`#id`).
fn resolve(tree: &SourceTree, from: &Value, reference: &str) -> Option<gateway_core::NodeId> {
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
fn reference_label(reference: &str) -> String {
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

fn json_error(raw: &[u8], e: &serde_json::Error) -> Diagnostic {
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

    fn bundle(entries: Vec<Value>) -> Vec<u8> {
        let entry: Vec<Value> = entries
            .into_iter()
            .map(|r| {
                let url = format!(
                    "urn:test:{}/{}",
                    r["resourceType"].as_str().unwrap_or("X"),
                    r["id"].as_str().unwrap_or("x")
                );
                json!({"fullUrl": url, "resource": r})
            })
            .collect();
        serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "collection", "entry": entry}))
            .expect("serializes")
    }

    fn codes_of(d: &[Diagnostic]) -> Vec<&str> {
        d.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn builds_tree_with_keys_and_focus_first() {
        let raw = bundle(vec![
            json!({"resourceType": "Patient", "id": "p1", "meta": {"versionId": "2"}}),
            json!({"resourceType": "ServiceRequest", "id": "sr1", "subject": {"reference": "Patient/p1"}}),
        ]);
        let doc = parse_bundle(&raw).expect("clean");
        let t = &doc.tree;
        let first = t
            .children_named(t.root(), "ServiceRequest")
            .next()
            .expect("sr");
        let resources: Vec<&str> = t
            .children(t.root())
            .iter()
            .map(|n| t.name(*n))
            .filter(|n| n.chars().next().is_some_and(char::is_uppercase))
            .collect();
        assert_eq!(resources, ["ServiceRequest", "Patient"]);
        assert!(t.lookup("Patient/p1").is_some());
        assert!(t.lookup("Patient/p1/_history/2").is_some());
        assert!(t.lookup("urn:test:Patient/p1").is_some());
        assert_eq!(t.location(first), "ServiceRequest");
        let span = t.span(first).expect("span");
        let entry: Value = serde_json::from_slice(&raw[span.start..span.end]).expect("entry json");
        assert_eq!(entry["resource"]["id"], "sr1");
        assert_eq!(doc.meta.control_id.as_deref(), Some("ServiceRequest/sr1"));
    }

    #[test]
    fn reports_missing_subject_and_dangling_references() {
        let raw = bundle(vec![json!({"resourceType": "ServiceRequest", "id": "sr1"})]);
        let err = parse_bundle(&raw).expect_err("no subject");
        assert_eq!(codes_of(&err), ["F011"]);
        assert_eq!(
            err[0].location.as_deref(),
            Some("Bundle.entry[0].resource.subject")
        );

        let raw = bundle(vec![
            json!({"resourceType": "ServiceRequest", "id": "sr1",
                   "subject": {"reference": "Patient/p404"},
                   "insurance": [{"reference": "Coverage/c1"}]}),
            json!({"resourceType": "Coverage", "id": "c1", "payor": [{"reference": "Organization/o404"}]}),
        ]);
        let err = parse_bundle(&raw).expect_err("dangling");
        assert_eq!(codes_of(&err), ["F012", "F012"]);
        assert!(
            err[0].message.contains("Patient/p404"),
            "{}",
            err[0].message
        );
        assert_eq!(
            err[1].location.as_deref(),
            Some("Bundle.entry[1].resource.payor[0]")
        );
    }

    #[test]
    fn rejects_non_json_and_non_resources_without_panicking() {
        let err = parse_bundle(b"{\n  \"a\": tru").expect_err("bad");
        assert_eq!(err[0].code, "F001");
        assert!(err[0].span.is_some());
        assert_eq!(parse_bundle(b"[1,2]").expect_err("bad")[0].code, "F002");
        assert_eq!(
            parse_bundle(br#"{"resourceType":"Bundle","entry":[{"x":1}]}"#)
                .expect_err("bad")
                .iter()
                .map(|d| d.code.as_str())
                .collect::<Vec<_>>(),
            ["F003", "F010"]
        );
        for junk in [&b""[..], b"\xff\xfe", b"{\"resourceType\":1}", b"null"] {
            assert!(parse_bundle(junk).is_err());
        }
    }
}

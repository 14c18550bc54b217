//! A FHIR Bundle (one ServiceRequest and what it references) as a source tree.
//!
//! The mapping engine walks a [`SourceTree`]; for FHIR the tree's root is named
//! `Bundle` and holds one node per entry's resource, named by its
//! `resourceType` (so `ServiceRequest.code`, `Coverage[*]` and
//! `Patient.birthDate` are plain child paths), built with gateway-core's
//! `json_tree` conventions (arrays become repeated siblings). The focus
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

use gateway_core::source::MessageMeta;
use gateway_core::{Diagnostic, SourceDocument, SourceFormat, SourceTree, Span};
use gateway_fhir_model::tree::{
    BundleTree, TreeEntry, attach_diagnostic_spans, build_tree, reference_label, resolve,
    resource_type,
};
use serde_json::Value;

pub use gateway_fhir_model::tree::{FHIR_VERSION, entry_spans};

/// Diagnostic codes of this module (`F001`–`F004` are the shared tree's).
pub mod codes {
    pub use gateway_fhir_model::tree::codes::*;
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
    let value = gateway_fhir_model::parse_json(raw).map_err(|d| vec![d])?;
    let spans = entry_spans(raw);
    build_with_spans(&value, &spans)
}

/// As [`build_document`], from already-parsed JSON (no byte spans).
pub fn build_from_value(value: &Value) -> Result<SourceDocument, Vec<Diagnostic>> {
    build_with_spans(value, &[])
}

/// Builds the document; `spans[i]` is the byte span of `Bundle.entry[i]`.
fn build_with_spans(value: &Value, spans: &[Span]) -> Result<SourceDocument, Vec<Diagnostic>> {
    let BundleTree {
        root_type,
        tree,
        entries,
        mut diagnostics,
    } = build_tree(value, spans, "ServiceRequest").map_err(|d| vec![d])?;
    let resources: Vec<(String, Option<&str>, &Value)> = entries
        .iter()
        .map(
            |TreeEntry {
                 location,
                 full_url,
                 resource,
                 ..
             }| (location.clone(), *full_url, *resource),
        )
        .collect();

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

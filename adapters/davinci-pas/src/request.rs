//! Reading and validating a PAS Request Bundle (`Claim/$submit`,
//! `Claim/$inquire`).
//!
//! A request the gateway cannot turn into a case must say *why* precisely, so
//! the EHR can show its user what to fix: every problem becomes one
//! `OperationOutcome.issue` with a FHIR issue-type code and the FHIRPath
//! `expression` of the offending element (`Bundle.entry[0].resource.use`), and
//! the raw body is kept in the store with the same diagnostics (the pipeline
//! stores a document whose parse failed as rejected, replayable). Structural
//! faults (not JSON, not a Bundle) are answered `400`, profile violations
//! (no Claim first, `use` not `preauthorization`, a reference the bundle does
//! not hold, a missing required element) `422`.
//!
//! What is checked is what PAS 2.2.1 requires of a request and what the case
//! needs: the Claim as the first entry (`use = preauthorization`, an
//! `identifier`, `status`, `patient`, `insurer`, `provider`, at least one
//! `insurance` with its `coverage`, at least one `item` with a positive
//! `sequence` and a `productOrService`), and every one of those references
//! resolvable inside the bundle. Nothing here panics on any input.

use std::collections::HashSet;

use gateway_core::source::MessageMeta;
use gateway_core::{Diagnostic, SourceDocument, SourceFormat};
use gateway_fhir_model::tree::{
    FHIR_VERSION, attach_diagnostic_spans, build_tree, entry_spans, parse_json, reference_label,
    resource_type,
};
use gateway_fhir_model::{OperationOutcome, OutcomeIssue};
use serde_json::Value;

/// Diagnostic codes of PAS requests (`F001`/`F002` are the shared tree's).
pub mod codes {
    /// The request's content type is not FHIR JSON.
    pub const WRONG_CONTENT_TYPE: &str = "P001";
    /// The request body is over the configured size.
    pub const TOO_LARGE: &str = "P002";
    /// The document is a FHIR resource but not a Bundle.
    pub const NOT_A_BUNDLE: &str = "P003";
    /// `Bundle.type` is not `collection`.
    pub const BUNDLE_TYPE: &str = "P004";
    /// The Bundle's first entry is not a Claim (or there is no Claim).
    pub const NO_CLAIM: &str = "P010";
    /// `Claim.use` is not `preauthorization`.
    pub const NOT_PREAUTHORIZATION: &str = "P011";
    /// A reference the request needs resolves to nothing in the bundle.
    pub const UNRESOLVED_REFERENCE: &str = "P012";
    /// A required element is missing or empty.
    pub const REQUIRED: &str = "P013";
    /// A reference points at a resource of the wrong type.
    pub const WRONG_TARGET: &str = "P014";
    /// An element has a value PAS does not allow.
    pub const BAD_VALUE: &str = "P015";
}

/// Which operation a request bundle was posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `Claim/$submit`: a new request, an update or a cancellation.
    Submit,
    /// `Claim/$inquire`: the status of an earlier request.
    Inquire,
}

/// A validated request.
#[derive(Debug)]
pub struct PasRequest {
    /// The source tree (Claim first) for the mapping profile.
    pub document: SourceDocument,
    /// `Claim.identifier[0].value`.
    pub claim_id: String,
    /// The identifier value of the prior Claim an update or cancellation
    /// names in `Claim.related.claim`.
    pub prior_claim_id: Option<String>,
    /// `Claim.status = cancelled`: the request cancels an earlier one.
    pub cancelled: bool,
    /// Every `Claim.item.sequence`, in order.
    pub item_sequences: Vec<u32>,
}

/// Why a request is refused: the HTTP status, and one diagnostic per problem
/// (the diagnostic's `location` is the FHIRPath expression).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// 400, 413, 415 or 422.
    pub status: u16,
    /// The problems, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Refusal {
    /// A refusal with one error.
    pub fn one(status: u16, code: &str, message: impl Into<String>, at: &str) -> Self {
        Refusal {
            status,
            diagnostics: vec![Diagnostic::error(code, message).at(at)],
        }
    }

    /// The OperationOutcome the client gets.
    pub fn outcome(&self) -> OperationOutcome {
        outcome_of(&self.diagnostics)
    }
}

/// The OperationOutcome of a list of diagnostics (errors and warnings).
pub fn outcome_of(diagnostics: &[Diagnostic]) -> OperationOutcome {
    OperationOutcome {
        issues: diagnostics
            .iter()
            .map(|d| {
                let mut issue = OutcomeIssue::error(
                    issue_code(&d.code),
                    format!("{}: {}", d.code, d.message),
                    d.location.clone(),
                );
                if !d.is_error() {
                    issue.severity = "warning".to_owned();
                }
                issue
            })
            .collect(),
    }
}

/// The FHIR issue-type code (`http://hl7.org/fhir/issue-type`) of a
/// diagnostic code.
pub fn issue_code(code: &str) -> &'static str {
    match code {
        "F001" | "F002" | codes::NOT_A_BUNDLE => "structure",
        codes::WRONG_CONTENT_TYPE => "not-supported",
        codes::TOO_LARGE => "too-costly",
        codes::NO_CLAIM | codes::REQUIRED => "required",
        codes::UNRESOLVED_REFERENCE => "not-found",
        codes::NOT_PREAUTHORIZATION | codes::BUNDLE_TYPE | codes::BAD_VALUE => "value",
        codes::WRONG_TARGET => "invalid",
        _ => "processing",
    }
}

/// The `davinci-pas` format's parse (intake and replays): the source tree of
/// a valid `$submit` bundle, or every problem.
pub fn parse_request(raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    validate(raw, Operation::Submit)
        .map(|r| r.document)
        .map_err(|r| r.diagnostics)
}

/// Validates `raw` as the input of `operation`.
pub fn validate(raw: &[u8], operation: Operation) -> Result<PasRequest, Refusal> {
    let value = parse_json(raw).map_err(|d| Refusal {
        status: 400,
        diagnostics: vec![d],
    })?;
    let spans = entry_spans(raw);
    let built = build_tree(&value, &spans, "Claim").map_err(|d| Refusal {
        status: 400,
        diagnostics: vec![d],
    })?;
    if built.root_type != "Bundle" {
        return Err(Refusal::one(
            400,
            codes::NOT_A_BUNDLE,
            format!(
                "a PAS request is a Bundle, not a {}",
                safe_code(built.root_type)
            ),
            "Bundle",
        ));
    }
    let mut problems: Vec<Diagnostic> = Vec::new();
    if value.get("type").and_then(Value::as_str) != Some("collection") {
        problems.push(
            Diagnostic::error(
                codes::BUNDLE_TYPE,
                "a PAS Request Bundle has type `collection`",
            )
            .at("Bundle.type"),
        );
    }
    // The Claim must be the first entry (PAS Request Bundle).
    let first = value.pointer("/entry/0/resource");
    let claim_is_first = first.is_some_and(|r| resource_type(r) == "Claim");
    let Some(claim_entry) = built.of_type("Claim").next() else {
        problems.push(
            Diagnostic::error(
                codes::NO_CLAIM,
                "the bundle holds no Claim: a PAS request's first entry is the Claim",
            )
            .at("Bundle.entry[0].resource"),
        );
        return Err(refusal(problems, &spans));
    };
    if !claim_is_first {
        problems.push(
            Diagnostic::error(
                codes::NO_CLAIM,
                "the Claim must be the first entry of a PAS Request Bundle",
            )
            .at("Bundle.entry[0].resource"),
        );
    }
    let claim = claim_entry.resource;
    let at = |element: &str| format!("{}.resource.{element}", claim_entry.location);
    if claim.get("use").and_then(Value::as_str) != Some("preauthorization") {
        let given = claim.get("use").and_then(Value::as_str).unwrap_or("absent");
        let given = safe_code(given);
        problems.push(
            Diagnostic::error(
                codes::NOT_PREAUTHORIZATION,
                format!("Claim.use is `{given}`; a PAS request has `preauthorization`"),
            )
            .at(at("use")),
        );
    }
    let claim_id = claim
        .pointer("/identifier/0/value")
        .and_then(Value::as_str)
        .filter(|v| !v.trim().is_empty())
        .map(str::to_owned);
    if claim_id.is_none() {
        problems.push(
            Diagnostic::error(
                codes::REQUIRED,
                "Claim.identifier (with a value) is required",
            )
            .at(at("identifier")),
        );
    }
    let status = claim.get("status").and_then(Value::as_str);
    match status {
        Some("active" | "cancelled") => {}
        None => problems
            .push(Diagnostic::error(codes::REQUIRED, "Claim.status is required").at(at("status"))),
        Some(_) => problems.push(
            Diagnostic::error(
                codes::BAD_VALUE,
                "Claim.status must be `active` (a request or update) or `cancelled`",
            )
            .at(at("status")),
        ),
    }

    let strict = operation == Operation::Submit;
    let check_ref = |problems: &mut Vec<Diagnostic>,
                     element: &str,
                     path: &str,
                     reference: Option<&Value>,
                     types: &[&str],
                     required: bool| {
        let Some(reference) = reference else {
            if required {
                problems.push(
                    Diagnostic::error(codes::REQUIRED, format!("Claim.{element} is required"))
                        .at(path.to_owned()),
                );
            }
            return;
        };
        let Some(text) = reference.get("reference").and_then(Value::as_str) else {
            problems.push(
                Diagnostic::error(
                    codes::REQUIRED,
                    format!("Claim.{element} must be a reference to a resource in the bundle"),
                )
                .at(format!("{path}.reference")),
            );
            return;
        };
        match built.resolve(claim, text) {
            None => problems.push(
                Diagnostic::error(
                    codes::UNRESOLVED_REFERENCE,
                    format!(
                        "Claim.{element} refers to {}, which is not in the bundle",
                        reference_label(text)
                    ),
                )
                .at(format!("{path}.reference")),
            ),
            Some(node) => {
                let name = built.tree.name(node);
                if !types.is_empty() && !types.contains(&name) {
                    problems.push(
                        Diagnostic::error(
                            codes::WRONG_TARGET,
                            format!(
                                "Claim.{element} must be a {}, not a {name}",
                                types.join(" or ")
                            ),
                        )
                        .at(format!("{path}.reference")),
                    );
                }
            }
        }
    };
    check_ref(
        &mut problems,
        "patient",
        &at("patient"),
        claim.get("patient"),
        &["Patient"],
        true,
    );
    check_ref(
        &mut problems,
        "insurer",
        &at("insurer"),
        claim.get("insurer"),
        &["Organization"],
        strict,
    );
    check_ref(
        &mut problems,
        "provider",
        &at("provider"),
        claim.get("provider"),
        &["Organization", "Practitioner", "PractitionerRole"],
        strict,
    );
    let insurance = claim.get("insurance").and_then(Value::as_array);
    match insurance {
        Some(list) if !list.is_empty() => {
            for (i, ins) in list.iter().enumerate() {
                check_ref(
                    &mut problems,
                    "insurance.coverage",
                    &at(&format!("insurance[{i}].coverage")),
                    ins.get("coverage"),
                    &["Coverage"],
                    true,
                );
            }
        }
        _ if strict => problems.push(
            Diagnostic::error(
                codes::REQUIRED,
                "Claim.insurance (with a coverage) is required",
            )
            .at(at("insurance")),
        ),
        _ => {}
    }
    for (i, member) in claim
        .get("careTeam")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        check_ref(
            &mut problems,
            "careTeam.provider",
            &at(&format!("careTeam[{i}].provider")),
            member.get("provider"),
            &["Organization", "Practitioner", "PractitionerRole"],
            false,
        );
    }

    let mut item_sequences = Vec::new();
    let mut seen = HashSet::new();
    match claim.get("item").and_then(Value::as_array) {
        Some(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                let sequence = item
                    .get("sequence")
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n > 0);
                match sequence {
                    Some(n) if seen.insert(n) => item_sequences.push(n),
                    Some(_) => problems.push(
                        Diagnostic::error(codes::BAD_VALUE, "Claim.item.sequence repeats")
                            .at(at(&format!("item[{i}].sequence"))),
                    ),
                    None => problems.push(
                        Diagnostic::error(
                            codes::REQUIRED,
                            "Claim.item.sequence (a positive integer) is required",
                        )
                        .at(at(&format!("item[{i}].sequence"))),
                    ),
                }
                let coded = item
                    .pointer("/productOrService/coding/0/code")
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.is_empty());
                if strict && !coded {
                    problems.push(
                        Diagnostic::error(
                            codes::REQUIRED,
                            "Claim.item.productOrService (a coded service) is required",
                        )
                        .at(at(&format!("item[{i}].productOrService"))),
                    );
                }
            }
        }
        _ if strict => problems.push(
            Diagnostic::error(
                codes::REQUIRED,
                "Claim.item (at least one service) is required",
            )
            .at(at("item")),
        ),
        _ => {}
    }

    let mut diagnostics = built.diagnostics.clone();
    if problems.iter().any(Diagnostic::is_error) {
        return Err(refusal(problems, &spans));
    }
    let Some(claim_id) = claim_id else {
        return Err(refusal(problems, &spans));
    };
    let prior_claim_id = claim
        .get("related")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|r| r.pointer("/claim/identifier/value").and_then(Value::as_str))
        .map(str::to_owned);
    attach_diagnostic_spans(&spans, &mut diagnostics);
    let cancelled = status == Some("cancelled");
    let meta = MessageMeta {
        message_type: Some("Claim".to_owned()),
        control_id: Some(claim_id.clone()),
        version: Some(FHIR_VERSION.to_owned()),
        trigger: Some(if cancelled { "cancel" } else { "submit" }.to_owned()),
        ..MessageMeta::default()
    };
    Ok(PasRequest {
        document: SourceDocument {
            format: SourceFormat::DavinciPas,
            meta,
            tree: built.tree,
            diagnostics,
        },
        claim_id,
        prior_claim_id,
        cancelled,
        item_sequences,
    })
}

/// A code from the input, echoed only when it looks like one (never free
/// text, which could be PHI).
fn safe_code(text: &str) -> &str {
    if !text.is_empty()
        && text.len() <= 40
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        text
    } else {
        "value that is not a code"
    }
}

fn refusal(mut problems: Vec<Diagnostic>, spans: &[gateway_core::Span]) -> Refusal {
    attach_diagnostic_spans(spans, &mut problems);
    Refusal {
        status: 422,
        diagnostics: problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(claim: Value, others: Vec<Value>) -> Vec<u8> {
        let mut entry = vec![json!({"fullUrl": "urn:uuid:claim-1", "resource": claim})];
        entry.extend(others.into_iter().map(|r| {
            let url = format!(
                "http://ehr.example.test/fhir/{}/{}",
                r["resourceType"].as_str().unwrap_or("X"),
                r["id"].as_str().unwrap_or("x")
            );
            json!({"fullUrl": url, "resource": r})
        }));
        serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "collection", "entry": entry}))
            .expect("json")
    }

    fn claim() -> Value {
        json!({"resourceType": "Claim", "id": "c1", "status": "active", "use": "preauthorization",
               "identifier": [{"system": "urn:test", "value": "REQ-1"}],
               "patient": {"reference": "Patient/p1"}, "insurer": {"reference": "Organization/payer"},
               "provider": {"reference": "Organization/prov"},
               "insurance": [{"sequence": 1, "focal": true, "coverage": {"reference": "Coverage/cov"}}],
               "item": [{"sequence": 1, "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "73721"}]}},
                        {"sequence": 2, "productOrService": {"coding": [{"code": "97110"}]}}]})
    }

    fn others() -> Vec<Value> {
        vec![
            json!({"resourceType": "Patient", "id": "p1"}),
            json!({"resourceType": "Organization", "id": "payer"}),
            json!({"resourceType": "Organization", "id": "prov"}),
            json!({"resourceType": "Coverage", "id": "cov"}),
        ]
    }

    fn codes_of(r: &Refusal) -> Vec<&str> {
        r.diagnostics.iter().map(|d| d.code.as_str()).collect()
    }

    #[test]
    fn a_complete_request_validates_with_its_items() {
        let request = validate(&bundle(claim(), others()), Operation::Submit).expect("valid");
        assert_eq!(request.claim_id, "REQ-1");
        assert_eq!(request.item_sequences, [1, 2]);
        assert!(!request.cancelled);
        assert_eq!(request.document.format, SourceFormat::DavinciPas);
        assert_eq!(request.document.meta.control_id.as_deref(), Some("REQ-1"));
        let t = &request.document.tree;
        let first = t
            .children(t.root())
            .iter()
            .map(|n| t.name(*n))
            .find(|n| n.starts_with(char::is_uppercase));
        assert_eq!(first, Some("Claim"));
    }

    #[test]
    fn each_fault_has_its_code_status_and_expression() {
        let r = validate(b"{\"resourceType\": ", Operation::Submit).expect_err("not json");
        assert_eq!((r.status, codes_of(&r)), (400, vec!["F001"]));
        let r =
            validate(br#"{"resourceType": "Claim"}"#, Operation::Submit).expect_err("not bundle");
        assert_eq!((r.status, codes_of(&r)), (400, vec!["P003"]));

        let no_claim = serde_json::to_vec(&json!({"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}]}))
        .expect("json");
        let r = validate(&no_claim, Operation::Submit).expect_err("no claim");
        assert_eq!((r.status, codes_of(&r)), (422, vec!["P010"]));
        assert_eq!(r.outcome().issues[0].code, "required");

        let mut c = claim();
        c["use"] = json!("claim");
        let r = validate(&bundle(c, others()), Operation::Submit).expect_err("use");
        assert_eq!(codes_of(&r), ["P011"]);
        assert_eq!(
            r.diagnostics[0].location.as_deref(),
            Some("Bundle.entry[0].resource.use")
        );
        assert_eq!(r.outcome().issues[0].code, "value");

        let mut c = claim();
        c["insurance"][0]["coverage"]["reference"] = json!("Coverage/missing");
        let r = validate(&bundle(c, others()), Operation::Submit).expect_err("dangling");
        assert_eq!(codes_of(&r), ["P012"]);
        assert_eq!(
            r.outcome().issues[0].expression,
            ["Bundle.entry[0].resource.insurance[0].coverage.reference"]
        );
        assert!(r.diagnostics[0].message.contains("Coverage/missing"));
        assert!(r.diagnostics[0].span.is_some());

        let mut c = claim();
        c["item"][1]["sequence"] = json!(0);
        c.as_object_mut().map(|o| o.remove("identifier"));
        let r = validate(&bundle(c, others()), Operation::Submit).expect_err("required");
        assert_eq!(codes_of(&r), ["P013", "P013"]);
    }

    #[test]
    fn cancellations_and_updates_are_recognized() {
        let mut c = claim();
        c["status"] = json!("cancelled");
        c["related"] = json!([{"claim": {"identifier": {"system": "urn:test", "value": "REQ-0"}},
                               "relationship": {"coding": [{"code": "prior"}]}}]);
        let request = validate(&bundle(c, others()), Operation::Submit).expect("valid");
        assert!(request.cancelled);
        assert_eq!(request.prior_claim_id.as_deref(), Some("REQ-0"));
        assert_eq!(request.document.meta.trigger.as_deref(), Some("cancel"));
    }

    #[test]
    fn never_panics_on_junk() {
        for junk in [&b""[..], b"null", b"[]", b"{\"resourceType\":\"Bundle\",\"entry\":7}",
                     b"{\"resourceType\":\"Bundle\",\"entry\":[{\"resource\":{\"resourceType\":\"Claim\",\"item\":[{\"sequence\":-1}],\"patient\":5}}]}"] {
            let _ = validate(junk, Operation::Submit);
            let _ = validate(junk, Operation::Inquire);
        }
    }
}

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
    BundleTree, FHIR_VERSION, attach_diagnostic_spans, build_tree, entry_spans, parse_json,
    reference_label, resource_type,
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
///
/// Structure first (JSON, a FHIR Bundle: `400`), then every profile rule at
/// once (`422` with one issue per problem), so the EHR's user sees all that
/// is wrong in one answer.
pub fn validate(raw: &[u8], operation: Operation) -> Result<PasRequest, Refusal> {
    let structural = |d: Diagnostic| Refusal {
        status: 400,
        diagnostics: vec![d],
    };
    let value = parse_json(raw).map_err(structural)?;
    let spans = entry_spans(raw);
    let built = build_tree(&value, &spans, "Claim").map_err(structural)?;
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
    let mut problems = bundle_problems(&value);
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
    let first = value.pointer("/entry/0/resource");
    if first.is_none_or(|r| resource_type(r) != "Claim") {
        problems.push(
            Diagnostic::error(
                codes::NO_CLAIM,
                "the Claim must be the first entry of a PAS Request Bundle",
            )
            .at("Bundle.entry[0].resource"),
        );
    }
    let claim = claim_entry.resource;
    let mut check = ClaimCheck {
        built: &built,
        claim,
        location: &claim_entry.location,
        strict: operation == Operation::Submit,
        problems,
    };
    let header = check.header();
    check.references();
    let item_sequences = check.items();
    let problems = check.problems;

    if problems.iter().any(Diagnostic::is_error) {
        return Err(refusal(problems, &spans));
    }
    let Some(claim_id) = header.claim_id else {
        return Err(refusal(problems, &spans));
    };
    let mut diagnostics = built.diagnostics;
    attach_diagnostic_spans(&spans, &mut diagnostics);
    let meta = MessageMeta {
        message_type: Some("Claim".to_owned()),
        control_id: Some(claim_id.clone()),
        version: Some(FHIR_VERSION.to_owned()),
        trigger: Some(if header.cancelled { "cancel" } else { "submit" }.to_owned()),
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
        prior_claim_id: prior_claim_id(claim),
        cancelled: header.cancelled,
        item_sequences,
    })
}

/// The Bundle-level rule: type `collection`.
fn bundle_problems(bundle: &Value) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    if bundle.get("type").and_then(Value::as_str) != Some("collection") {
        problems.push(
            Diagnostic::error(
                codes::BUNDLE_TYPE,
                "a PAS Request Bundle has type `collection`",
            )
            .at("Bundle.type"),
        );
    }
    problems
}

/// `Claim.related.claim.identifier.value`: the prior request an update or a
/// cancellation names.
fn prior_claim_id(claim: &Value) -> Option<String> {
    claim
        .get("related")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find_map(|r| r.pointer("/claim/identifier/value").and_then(Value::as_str))
        .map(str::to_owned)
}

/// What the Claim's header says about the request.
struct Header {
    /// `Claim.identifier[0].value`, when present and not blank.
    claim_id: Option<String>,
    /// `Claim.status = cancelled`.
    cancelled: bool,
}

/// The rules of one Claim, each problem collected with its FHIRPath.
struct ClaimCheck<'t, 'a> {
    built: &'t BundleTree<'a>,
    claim: &'a Value,
    /// `Bundle.entry[i]` of the Claim.
    location: &'t str,
    /// `$submit` needs everything a case needs; `$inquire` only what finds
    /// the earlier request.
    strict: bool,
    problems: Vec<Diagnostic>,
}

/// Resource types a Claim's provider references may point at.
const PROVIDER_TYPES: &[&str] = &["Organization", "Practitioner", "PractitionerRole"];

impl ClaimCheck<'_, '_> {
    /// The FHIRPath of an element of the Claim.
    fn at(&self, element: &str) -> String {
        format!("{}.resource.{element}", self.location)
    }

    fn error(&mut self, code: &str, message: impl Into<String>, at: String) {
        self.problems.push(Diagnostic::error(code, message).at(at));
    }

    /// `use`, `identifier`, `status`.
    fn header(&mut self) -> Header {
        let claim = self.claim;
        if claim.get("use").and_then(Value::as_str) != Some("preauthorization") {
            let given = claim.get("use").and_then(Value::as_str).unwrap_or("absent");
            let given = safe_code(given);
            self.error(
                codes::NOT_PREAUTHORIZATION,
                format!("Claim.use is `{given}`; a PAS request has `preauthorization`"),
                self.at("use"),
            );
        }
        let claim_id = claim
            .pointer("/identifier/0/value")
            .and_then(Value::as_str)
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned);
        if claim_id.is_none() {
            self.error(
                codes::REQUIRED,
                "Claim.identifier (with a value) is required",
                self.at("identifier"),
            );
        }
        let status = claim.get("status").and_then(Value::as_str);
        match status {
            Some("active" | "cancelled") => {}
            None => self.error(
                codes::REQUIRED,
                "Claim.status is required",
                self.at("status"),
            ),
            Some(_) => self.error(
                codes::BAD_VALUE,
                "Claim.status must be `active` (a request or update) or `cancelled`",
                self.at("status"),
            ),
        }
        Header {
            claim_id,
            cancelled: status == Some("cancelled"),
        }
    }

    /// `patient`, `insurer`, `provider`, `insurance.coverage`,
    /// `careTeam.provider`: present where required and resolvable in the
    /// bundle to a resource of the right type.
    fn references(&mut self) {
        let claim = self.claim;
        let strict = self.strict;
        self.reference(
            "patient",
            self.at("patient"),
            claim.get("patient"),
            &["Patient"],
            true,
        );
        self.reference(
            "insurer",
            self.at("insurer"),
            claim.get("insurer"),
            &["Organization"],
            strict,
        );
        self.reference(
            "provider",
            self.at("provider"),
            claim.get("provider"),
            PROVIDER_TYPES,
            strict,
        );
        match claim.get("insurance").and_then(Value::as_array) {
            Some(list) if !list.is_empty() => {
                for (i, ins) in list.iter().enumerate() {
                    self.reference(
                        "insurance.coverage",
                        self.at(&format!("insurance[{i}].coverage")),
                        ins.get("coverage"),
                        &["Coverage"],
                        true,
                    );
                }
            }
            _ if strict => self.error(
                codes::REQUIRED,
                "Claim.insurance (with a coverage) is required",
                self.at("insurance"),
            ),
            _ => {}
        }
        let care_team = claim.get("careTeam").and_then(Value::as_array);
        for (i, member) in care_team.into_iter().flatten().enumerate() {
            self.reference(
                "careTeam.provider",
                self.at(&format!("careTeam[{i}].provider")),
                member.get("provider"),
                PROVIDER_TYPES,
                false,
            );
        }
    }

    /// One reference element: required when `required`, a `reference` that
    /// resolves inside the bundle, to one of `types` (any when empty).
    fn reference(
        &mut self,
        element: &str,
        path: String,
        reference: Option<&Value>,
        types: &[&str],
        required: bool,
    ) {
        let Some(reference) = reference else {
            if required {
                self.error(
                    codes::REQUIRED,
                    format!("Claim.{element} is required"),
                    path,
                );
            }
            return;
        };
        let Some(text) = reference.get("reference").and_then(Value::as_str) else {
            self.error(
                codes::REQUIRED,
                format!("Claim.{element} must be a reference to a resource in the bundle"),
                format!("{path}.reference"),
            );
            return;
        };
        let Some(node) = self.built.resolve(self.claim, text) else {
            self.error(
                codes::UNRESOLVED_REFERENCE,
                format!(
                    "Claim.{element} refers to {}, which is not in the bundle",
                    reference_label(text)
                ),
                format!("{path}.reference"),
            );
            return;
        };
        let name = self.built.tree.name(node);
        if !types.is_empty() && !types.contains(&name) {
            self.error(
                codes::WRONG_TARGET,
                format!(
                    "Claim.{element} must be a {}, not a {name}",
                    types.join(" or ")
                ),
                format!("{path}.reference"),
            );
        }
    }

    /// `item`: at least one (for `$submit`), each with a positive, unique
    /// `sequence` and a coded `productOrService`. Returns the sequences in
    /// order, for the response to echo.
    fn items(&mut self) -> Vec<u32> {
        let mut sequences = Vec::new();
        let mut seen = HashSet::new();
        let items = match self.claim.get("item").and_then(Value::as_array) {
            Some(items) if !items.is_empty() => items,
            _ => {
                if self.strict {
                    self.error(
                        codes::REQUIRED,
                        "Claim.item (at least one service) is required",
                        self.at("item"),
                    );
                }
                return sequences;
            }
        };
        for (i, item) in items.iter().enumerate() {
            let sequence = item
                .get("sequence")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0);
            match sequence {
                Some(n) if seen.insert(n) => sequences.push(n),
                Some(_) => self.error(
                    codes::BAD_VALUE,
                    "Claim.item.sequence repeats",
                    self.at(&format!("item[{i}].sequence")),
                ),
                None => self.error(
                    codes::REQUIRED,
                    "Claim.item.sequence (a positive integer) is required",
                    self.at(&format!("item[{i}].sequence")),
                ),
            }
            let coded = item
                .pointer("/productOrService/coding/0/code")
                .and_then(Value::as_str)
                .is_some_and(|c| !c.is_empty());
            if self.strict && !coded {
                self.error(
                    codes::REQUIRED,
                    "Claim.item.productOrService (a coded service) is required",
                    self.at(&format!("item[{i}].productOrService")),
                );
            }
        }
        sequences
    }
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

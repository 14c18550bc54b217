//! OperationOutcome: reading one as a readable error, and writing one.
//!
//! FHIR servers explain failures in an `OperationOutcome`; an operator needs its
//! issue severity, code and diagnostics to act ("not-found", "throttled",
//! "invalid: ServiceRequest.subject"). The summary keeps those. Diagnostics text
//! comes from the EHR and may quote data, so it is part of the error value shown
//! to the operator, but logs only carry [`OutcomeSummary::codes`].
//!
//! A FHIR *server* of ours (the Da Vinci PAS endpoint) answers refused input
//! with an [`OperationOutcome`] built from [`OutcomeIssue`]s: one issue per
//! problem, with its FHIR issue-type code and the FHIRPath `expression` of the
//! offending element, so an EHR can show the user what to fix.

use std::fmt;

use serde_json::Value;

/// One `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeIssue {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: String,
    /// The issue type code (`not-found`, `invalid`, `throttled`, …).
    pub code: String,
    /// `issue.diagnostics`, or `issue.details.text` when there are none.
    pub diagnostics: Option<String>,
    /// `issue.expression` (FHIRPath of the offending element), if given.
    pub expression: Vec<String>,
}

/// The issues of an OperationOutcome, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutcomeSummary {
    /// The issues, in document order.
    pub issues: Vec<OutcomeIssue>,
}

impl OutcomeSummary {
    /// Reads an OperationOutcome; `None` when `value` is not one.
    pub fn from_value(value: &Value) -> Option<Self> {
        if value.get("resourceType")?.as_str()? != "OperationOutcome" {
            return None;
        }
        let issues = value
            .get("issue")
            .and_then(Value::as_array)
            .map(|issues| {
                issues
                    .iter()
                    .map(|i| {
                        let text = |k: &str| i.get(k).and_then(Value::as_str).map(str::to_owned);
                        OutcomeIssue {
                            severity: text("severity").unwrap_or_else(|| "error".into()),
                            code: text("code").unwrap_or_else(|| "unknown".into()),
                            diagnostics: text("diagnostics").or_else(|| {
                                i.pointer("/details/text")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                            }),
                            expression: i
                                .get("expression")
                                .and_then(Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(Value::as_str)
                                        .map(str::to_owned)
                                        .collect()
                                })
                                .unwrap_or_default(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(OutcomeSummary { issues })
    }

    /// Reads an OperationOutcome from a response body; `None` when it is not one.
    pub fn from_body(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| Self::from_value(&v))
    }

    /// `severity/code` of every issue, joined by `,`: safe to log (no free text).
    pub fn codes(&self) -> String {
        self.issues
            .iter()
            .map(|i| format!("{}/{}", i.severity, i.code))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for OutcomeSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.issues.is_empty() {
            return write!(f, "OperationOutcome without issues");
        }
        for (n, issue) in self.issues.iter().enumerate() {
            if n > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{} {}", issue.severity, issue.code)?;
            if let Some(d) = &issue.diagnostics {
                write!(f, ": {d}")?;
            }
            if !issue.expression.is_empty() {
                write!(f, " at {}", issue.expression.join(", "))?;
            }
        }
        Ok(())
    }
}

/// An `OperationOutcome` we write: issues in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperationOutcome {
    /// The issues.
    pub issues: Vec<OutcomeIssue>,
}

impl OutcomeIssue {
    /// An `error` issue with its type code, text and FHIRPath expression.
    pub fn error(code: &str, diagnostics: impl Into<String>, expression: Option<String>) -> Self {
        OutcomeIssue {
            severity: "error".to_owned(),
            code: code.to_owned(),
            diagnostics: Some(diagnostics.into()),
            expression: expression.into_iter().collect(),
        }
    }

    /// An `information` issue (e.g. "accepted, pended").
    pub fn information(code: &str, diagnostics: impl Into<String>) -> Self {
        OutcomeIssue {
            severity: "information".to_owned(),
            code: code.to_owned(),
            diagnostics: Some(diagnostics.into()),
            expression: Vec::new(),
        }
    }
}

impl OperationOutcome {
    /// An outcome with one issue.
    pub fn single(issue: OutcomeIssue) -> Self {
        OperationOutcome {
            issues: vec![issue],
        }
    }

    /// Whether any issue is `error` or `fatal`.
    pub fn has_errors(&self) -> bool {
        self.issues
            .iter()
            .any(|i| i.severity == "error" || i.severity == "fatal")
    }

    /// The resource JSON. An outcome without issues gets one `information`
    /// issue (`issue` is required, 1..*).
    pub fn to_value(&self) -> Value {
        let issues: Vec<Value> = if self.issues.is_empty() {
            vec![serde_json::json!({"severity": "information", "code": "informational"})]
        } else {
            self.issues
                .iter()
                .map(|i| {
                    let mut issue = serde_json::Map::new();
                    issue.insert("severity".into(), Value::from(i.severity.as_str()));
                    issue.insert("code".into(), Value::from(i.code.as_str()));
                    if let Some(d) = &i.diagnostics {
                        issue.insert("diagnostics".into(), Value::from(d.as_str()));
                    }
                    if !i.expression.is_empty() {
                        issue.insert("expression".into(), Value::from(i.expression.clone()));
                    }
                    Value::Object(issue)
                })
                .collect()
        };
        serde_json::json!({"resourceType": "OperationOutcome", "issue": issues})
    }

    /// The summary a client would read back (round trip).
    pub fn summary(&self) -> OutcomeSummary {
        OutcomeSummary {
            issues: self.issues.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summarizes_issues() {
        let oo = json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "bad subject",
             "expression": ["ServiceRequest.subject"]},
            {"severity": "warning", "code": "not-found", "details": {"text": "Not found"}}
        ]});
        let s = OutcomeSummary::from_value(&oo).expect("outcome");
        assert_eq!(s.codes(), "error/invalid,warning/not-found");
        assert_eq!(
            s.to_string(),
            "error invalid: bad subject at ServiceRequest.subject; warning not-found: Not found"
        );
        assert!(OutcomeSummary::from_value(&json!({"resourceType": "Patient"})).is_none());
        assert!(OutcomeSummary::from_body(b"not json").is_none());
    }

    #[test]
    fn written_outcomes_read_back() {
        let written = OperationOutcome {
            issues: vec![
                OutcomeIssue::error("required", "no Claim", Some("Bundle.entry".into())),
                OutcomeIssue::information("informational", "pended"),
            ],
        };
        assert!(written.has_errors());
        let read = OutcomeSummary::from_value(&written.to_value()).expect("outcome");
        assert_eq!(read, written.summary());
        assert_eq!(read.codes(), "error/required,information/informational");
        let empty = OperationOutcome::default().to_value();
        assert_eq!(empty["issue"][0]["code"], "informational");
    }
}

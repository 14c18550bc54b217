//! Results of cases and whole runs, shared by every report format.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::compare::Difference;
use crate::harness::AckFacts;
use crate::suite::{CaseSpec, Suite};

/// Pass, fail or skip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Status {
    /// Every check held.
    Passed,
    /// At least one check failed.
    Failed,
    /// Not run, with the reason.
    Skipped(String),
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Suite (profile) name.
    pub suite: String,
    /// Case name.
    pub case: String,
    /// What the case proves.
    pub description: String,
    /// Requirement ids.
    pub requirements: Vec<String>,
    /// Outcome.
    #[serde(flatten)]
    pub status: Status,
    /// Every failed check, readable.
    pub failures: Vec<String>,
    /// Field differences from the expected case.
    pub diffs: Vec<Difference>,
    /// The case produced (for coverage), when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_case: Option<Value>,
    /// The write-back output, for write-back cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writeback: Option<String>,
    /// The last acknowledgement.
    #[serde(skip)]
    pub ack: Option<AckFacts>,
    /// How long it took.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl CaseResult {
    fn new(suite: &Suite, spec: &CaseSpec, status: Status, failures: Vec<String>) -> Self {
        CaseResult {
            suite: suite.name.clone(),
            case: spec.name.clone(),
            description: spec.file.description.clone(),
            requirements: spec.file.requirements.clone(),
            status,
            failures,
            diffs: Vec::new(),
            actual_case: None,
            writeback: None,
            ack: None,
            duration: Duration::ZERO,
        }
    }

    /// A failed case.
    pub fn failed(suite: &Suite, spec: &CaseSpec, failures: Vec<String>) -> Self {
        Self::new(suite, spec, Status::Failed, failures)
    }

    /// A skipped case.
    pub fn skipped(suite: &Suite, spec: &CaseSpec, reason: String) -> Self {
        Self::new(suite, spec, Status::Skipped(reason), Vec::new())
    }

    /// Passed when `failures` is empty, failed otherwise.
    pub fn finished(suite: &Suite, spec: &CaseSpec, failures: Vec<String>) -> Self {
        let status = if failures.is_empty() {
            Status::Passed
        } else {
            Status::Failed
        };
        Self::new(suite, spec, status, failures)
    }

    /// True for a failure.
    pub fn is_failure(&self) -> bool {
        self.status == Status::Failed
    }
}

/// Counts over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Passed cases.
    pub passed: usize,
    /// Failed cases.
    pub failed: usize,
    /// Skipped cases.
    pub skipped: usize,
}

impl Totals {
    /// Counts `results`.
    pub fn of(results: &[CaseResult]) -> Self {
        let mut t = Totals::default();
        for r in results {
            match r.status {
                Status::Passed => t.passed += 1,
                Status::Failed => t.failed += 1,
                Status::Skipped(_) => t.skipped += 1,
            }
        }
        t
    }
}

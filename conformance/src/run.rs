//! Running cases offline: a fresh store per case, the real pipeline, the
//! adapter's own receive path (through its [`Harness`]), then the checks.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use gateway_core::adapter::{IntakeOutcome, IntakePipeline};
use gateway_core::case::Case;
use gateway_mapping::{Profile, render_all};
use gateway_pipeline::{Identity, Pipeline, ProfileSet};
use gateway_store::{Store, StoreOptions};
use serde_json::Value;

use crate::compare::{self, Difference};
use crate::harness::{Harness, InboundResult};
use crate::result::CaseResult;
use crate::suite::{CaseSpec, Mode, Suite};

/// How the run treats expectations.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunSettings {
    /// Re-write `expected.*` files from what the code produces now.
    pub bless: bool,
}

/// Runs every case of `suite` offline and returns one result per case.
pub async fn run_suite(
    suite: &Suite,
    harnesses: &[Box<dyn Harness>],
    settings: RunSettings,
    on_case_done: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    let profile = Profile::load(&suite.profile_dir, &gateway_registry::Syntaxes);
    let mut results = Vec::new();
    for spec in &suite.cases {
        let started = Instant::now();
        let mut result = match &profile {
            Err(e) => CaseResult::failed(
                suite,
                spec,
                vec![format!(
                    "profile {} does not load:\n{}",
                    suite.profile_dir.display(),
                    render_all(&e.diagnostics)
                )],
            ),
            Ok(profile) => match harnesses.iter().find(|h| h.format() == profile.format()) {
                None => CaseResult::skipped(
                    suite,
                    spec,
                    format!("no harness for format `{}`", profile.format().as_str()),
                ),
                Some(harness) => match &spec.file.skip {
                    Some(reason) => CaseResult::skipped(suite, spec, reason.clone()),
                    None => run_case(suite, spec, profile, harness.as_ref(), settings).await,
                },
            },
        };
        result.duration = started.elapsed();
        on_case_done(&result);
        results.push(result);
    }
    results
}

async fn run_case(
    suite: &Suite,
    spec: &CaseSpec,
    profile: &Profile,
    harness: &dyn Harness,
    settings: RunSettings,
) -> CaseResult {
    match spec.file.mode {
        Mode::Inbound => run_inbound(suite, spec, profile, harness, settings).await,
        Mode::Writeback => run_writeback(suite, spec, harness, settings).await,
    }
}

async fn run_inbound(
    suite: &Suite,
    spec: &CaseSpec,
    profile: &Profile,
    harness: &dyn Harness,
    settings: RunSettings,
) -> CaseResult {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return CaseResult::failed(suite, spec, vec![format!("temp dir: {e}")]),
    };
    let store = match Store::open(dir.path().join("store.sqlite"), StoreOptions::default()).await {
        Ok(store) => store,
        Err(e) => return CaseResult::failed(suite, spec, vec![format!("store: {e}")]),
    };
    let identity = Identity {
        tenant: suite.identity.tenant.clone(),
        practice: suite.identity.practice.clone(),
        site: suite.identity.site.clone(),
    };
    let pipeline = Pipeline::new(store.clone(), ProfileSet::new([profile.clone()]), identity);
    let pipeline: Arc<dyn IntakePipeline> = Arc::new(pipeline);

    let mut results: Vec<InboundResult> = Vec::new();
    for input in &spec.inputs {
        let raw = match std::fs::read(input) {
            Ok(raw) => raw,
            Err(e) => {
                return CaseResult::failed(suite, spec, vec![format!("{}: {e}", input.display())]);
            }
        };
        match harness
            .inbound(pipeline.clone(), profile.name(), &raw)
            .await
        {
            Ok(r) => results.push(r),
            Err(e) => {
                return CaseResult::failed(suite, spec, vec![format!("{}: {e}", input.display())]);
            }
        }
    }

    let mut failures = Vec::new();
    let outcomes: Vec<&IntakeOutcome> = results.iter().flat_map(|r| r.outcomes.iter()).collect();
    let labels: Vec<&str> = outcomes.iter().map(|o| outcome_label(o)).collect();
    let expect = &spec.file.expect;
    if expect.outcomes.is_empty() {
        if let Some(bad) = labels.iter().find(|l| **l != "accepted") {
            failures.push(format!(
                "outcomes: expected every input accepted, got {labels:?} (first non-accepted: {bad})"
            ));
        }
    } else if labels
        != expect
            .outcomes
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    {
        failures.push(format!(
            "outcomes: expected {:?}, got {labels:?}",
            expect.outcomes
        ));
    }

    let last = results.last();
    let ack = last.map(|r| r.ack.clone()).unwrap_or_default();
    if let Some(code) = &expect.ack
        && ack.code.as_deref() != Some(code.as_str())
    {
        failures.push(format!(
            "acknowledgement: expected {code}, got {}\n{}",
            ack.code.as_deref().unwrap_or("(none)"),
            ack.text
        ));
    }
    for code in &expect.ack_errors {
        if !ack.errors.contains(code) {
            failures.push(format!(
                "acknowledgement: expected error code {code}, got {:?}",
                ack.errors
            ));
        }
    }

    let diagnostics: Vec<String> = outcomes
        .iter()
        .flat_map(|o| match o {
            IntakeOutcome::Accepted { warnings, .. } | IntakeOutcome::Kept { warnings, .. } => {
                warnings.clone()
            }
            IntakeOutcome::Rejected { diagnostics, .. } => diagnostics.clone(),
            IntakeOutcome::Duplicate { .. } => Vec::new(),
        })
        .map(|d| d.code)
        .collect();
    for code in &expect.diagnostics {
        if !diagnostics.contains(code) {
            failures.push(format!("diagnostics: expected {code}, got {diagnostics:?}"));
        }
    }

    let case_id = outcomes.iter().rev().find_map(|o| match o {
        IntakeOutcome::Accepted { case_id, .. } => Some(case_id.clone()),
        _ => None,
    });
    let no_case = expect.no_case || matches!(labels.last(), Some(&"rejected" | &"kept"));
    let mut actual_case: Option<Value> = None;
    let mut diffs: Vec<Difference> = Vec::new();
    match (&case_id, no_case) {
        (Some(id), true) => failures.push(format!("expected no case, but case {id} was produced")),
        (None, false) => failures.push("expected a case, but none was produced".to_owned()),
        (Some(id), false) => match store.get_case(id).await {
            Ok(Some(record)) => {
                let value = serde_json::to_value(&record.case).unwrap_or(Value::Null);
                check_case(spec, &value, settings, &mut diffs, &mut failures);
                actual_case = Some(value);
            }
            Ok(None) => failures.push(format!("case {id} was accepted but is not in the store")),
            Err(e) => failures.push(format!("reading case {id}: {e}")),
        },
        (None, true) => {}
    }
    store.close().await;

    let mut result = CaseResult::finished(suite, spec, failures);
    result.diffs = diffs;
    result.actual_case = actual_case;
    result.ack = Some(ack);
    result
}

fn check_case(
    spec: &CaseSpec,
    actual: &Value,
    settings: RunSettings,
    diffs: &mut Vec<Difference>,
    failures: &mut Vec<String>,
) {
    let expected_path = spec.dir.join("expected.case.json");
    if settings.bless {
        if let Err(e) = write_json(&expected_path, actual) {
            failures.push(format!("blessing {}: {e}", expected_path.display()));
        }
        return;
    }
    let Some(path) = &spec.expected_case else {
        failures.push(
            "no expected.case.json (run with BLESS=1 to create it, then review it)".to_owned(),
        );
        return;
    };
    let expected: Value = match std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            failures.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    let found = compare::compare(&expected, actual, &spec.rules);
    if !found.is_empty() {
        failures.push(format!(
            "case differs from expected.case.json in {} field(s)",
            found.len()
        ));
        diffs.extend(found);
    }
}

async fn run_writeback(
    suite: &Suite,
    spec: &CaseSpec,
    harness: &dyn Harness,
    settings: RunSettings,
) -> CaseResult {
    let Some(input) = spec.inputs.first() else {
        return CaseResult::failed(suite, spec, vec!["no input case".to_owned()]);
    };
    let case: Case = match std::fs::read_to_string(input)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(case) => case,
        Err(e) => {
            return CaseResult::failed(suite, spec, vec![format!("{}: {e}", input.display())]);
        }
    };
    let output = match harness.writeback(&suite.profile_dir, &case).await {
        Ok(output) => output,
        Err(e) => return CaseResult::failed(suite, spec, vec![format!("write-back failed: {e}")]),
    };
    let mut failures = Vec::new();
    let expected_path = spec.expected_writeback.clone().unwrap_or_else(|| {
        spec.dir.join(format!(
            "expected.writeback.{}",
            writeback_extension(harness)
        ))
    });
    if settings.bless {
        if let Err(e) = std::fs::write(&expected_path, &output) {
            failures.push(format!("blessing {}: {e}", expected_path.display()));
        }
    } else {
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if normalize_newlines(&expected) == normalize_newlines(&output) => {}
            Ok(expected) => failures.push(format!(
                "write-back differs from {}:\n{}",
                expected_path.display(),
                line_diff(&expected, &output)
            )),
            Err(e) => failures.push(format!(
                "{}: {e} (run with BLESS=1 to create it, then review it)",
                expected_path.display()
            )),
        }
    }
    let mut result = CaseResult::finished(suite, spec, failures);
    result.writeback = Some(output);
    result
}

fn writeback_extension(harness: &dyn Harness) -> &'static str {
    use gateway_core::adapter::name;
    match harness.adapter() {
        name::HL7V2 => "hl7",
        name::X12 => "x12",
        name::FHIR | name::DAVINCI_PAS => "json",
        _ => "txt",
    }
}

fn normalize_newlines(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim_end()
        .to_owned()
}

/// A minimal line diff: each differing line as `- expected` / `+ actual`.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let e = normalize_newlines(expected);
    let a = normalize_newlines(actual);
    let e: Vec<&str> = e.lines().collect();
    let a: Vec<&str> = a.lines().collect();
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("  - {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("  + {y}\n"));
                }
            }
        }
    }
    out
}

fn write_json(path: &Path, value: &Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

/// `accepted`, `duplicate` or `rejected`.
pub fn outcome_label(outcome: &IntakeOutcome) -> &'static str {
    match outcome {
        IntakeOutcome::Accepted { .. } => "accepted",
        IntakeOutcome::Duplicate { .. } => "duplicate",
        IntakeOutcome::Kept { .. } => "kept",
        IntakeOutcome::Rejected { .. } => "rejected",
    }
}

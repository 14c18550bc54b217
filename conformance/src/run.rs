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
        Mode::Inquiry => run_inquiry(suite, spec, profile, harness, settings).await,
    }
}

async fn run_inbound(
    suite: &Suite,
    spec: &CaseSpec,
    profile: &Profile,
    harness: &dyn Harness,
    settings: RunSettings,
) -> CaseResult {
    let env = match CaseStore::open(suite, profile).await {
        Ok(env) => env,
        Err(e) => return CaseResult::failed(suite, spec, vec![e]),
    };
    let results = match feed(harness, &env, profile, &spec.inputs).await {
        Ok(results) => results,
        Err(e) => return CaseResult::failed(suite, spec, vec![e]),
    };
    let store = &env.store;

    let mut failures = Vec::new();
    let outcomes: Vec<&IntakeOutcome> = results.iter().flat_map(|r| r.outcomes.iter()).collect();
    let labels: Vec<&str> = outcomes.iter().map(|o| outcome_label(o)).collect();
    let expect = &spec.file.expect;
    check_outcomes(spec, &labels, &mut failures);

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
    env.store.close().await;

    let mut result = CaseResult::finished(suite, spec, failures);
    result.diffs = diffs;
    result.actual_case = actual_case;
    result.ack = Some(ack);
    result
}

/// A fresh store in a temporary folder and the real pipeline over it: what
/// one inbound or inquiry case runs against.
struct CaseStore {
    store: Store,
    pipeline: Arc<dyn IntakePipeline>,
    /// Removed when the case is done.
    _dir: tempfile::TempDir,
}

impl CaseStore {
    async fn open(suite: &Suite, profile: &Profile) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let store = Store::open(dir.path().join("store.sqlite"), StoreOptions::default())
            .await
            .map_err(|e| format!("store: {e}"))?;
        let identity = Identity {
            tenant: suite.identity.tenant.clone(),
            practice: suite.identity.practice.clone(),
            site: suite.identity.site.clone(),
        };
        let pipeline = Pipeline::new(store.clone(), ProfileSet::new([profile.clone()]), identity);
        Ok(CaseStore {
            store,
            pipeline: Arc::new(pipeline),
            _dir: dir,
        })
    }
}

/// Feeds `inputs`, in order, through the adapter's receive path.
async fn feed(
    harness: &dyn Harness,
    env: &CaseStore,
    profile: &Profile,
    inputs: &[std::path::PathBuf],
) -> Result<Vec<InboundResult>, String> {
    let mut results = Vec::new();
    for input in inputs {
        let raw = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
        let result = harness
            .inbound(env.pipeline.clone(), profile.name(), &raw)
            .await
            .map_err(|e| format!("{}: {e}", input.display()))?;
        results.push(result);
    }
    Ok(results)
}

/// The pipeline outcomes against `expect.outcomes` (default: all accepted).
fn check_outcomes(spec: &CaseSpec, labels: &[&str], failures: &mut Vec<String>) {
    let expected = &spec.file.expect.outcomes;
    if expected.is_empty() {
        if let Some(bad) = labels.iter().find(|l| **l != "accepted") {
            failures.push(format!(
                "outcomes: expected every input accepted, got {labels:?} (first non-accepted: {bad})"
            ));
        }
    } else if labels != expected.iter().map(String::as_str).collect::<Vec<_>>() {
        failures.push(format!("outcomes: expected {expected:?}, got {labels:?}"));
    }
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
    check_writeback(spec, harness, &output, settings, &mut failures);
    let mut result = CaseResult::finished(suite, spec, failures);
    result.writeback = Some(output);
    result
}

/// `output` (a write-back or an inquiry's answer) against the case's
/// `expected.writeback.*`, or blessed into it.
fn check_writeback(
    spec: &CaseSpec,
    harness: &dyn Harness,
    output: &str,
    settings: RunSettings,
    failures: &mut Vec<String>,
) {
    let expected_path = spec.expected_writeback.clone().unwrap_or_else(|| {
        spec.dir.join(format!(
            "expected.writeback.{}",
            writeback_extension(harness)
        ))
    });
    if settings.bless {
        if let Err(e) = std::fs::write(&expected_path, output) {
            failures.push(format!("blessing {}: {e}", expected_path.display()));
        }
    } else {
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if normalize_newlines(&expected) == normalize_newlines(output) => {}
            Ok(expected) => failures.push(format!(
                "write-back differs from {}:\n{}",
                expected_path.display(),
                line_diff(&expected, output)
            )),
            Err(e) => failures.push(format!(
                "{}: {e} (run with BLESS=1 to create it, then review it)",
                expected_path.display()
            )),
        }
    }
}

/// An inquiry case: the requests go in, the decision is recorded, the
/// adapter answers the inquiry from the store.
async fn run_inquiry(
    suite: &Suite,
    spec: &CaseSpec,
    profile: &Profile,
    harness: &dyn Harness,
    settings: RunSettings,
) -> CaseResult {
    let Some((inquiry, requests)) = spec.inputs.split_last() else {
        return CaseResult::failed(suite, spec, vec!["no inquiry input".to_owned()]);
    };
    let env = match CaseStore::open(suite, profile).await {
        Ok(env) => env,
        Err(e) => return CaseResult::failed(suite, spec, vec![e]),
    };
    let results = match feed(harness, &env, profile, requests).await {
        Ok(results) => results,
        Err(e) => return CaseResult::failed(suite, spec, vec![e]),
    };
    let mut failures = Vec::new();
    let outcomes: Vec<&IntakeOutcome> = results.iter().flat_map(|r| r.outcomes.iter()).collect();
    let labels: Vec<&str> = outcomes.iter().map(|o| outcome_label(o)).collect();
    check_outcomes(spec, &labels, &mut failures);
    if let Some(file) = &spec.file.decision {
        let case_id = outcomes.iter().rev().find_map(|o| match o {
            IntakeOutcome::Accepted { case_id, .. } => Some(case_id.clone()),
            _ => None,
        });
        if let Err(e) = record_decision(&env.store, &spec.dir.join(file), case_id).await {
            failures.push(e);
        }
    }
    let answer = match std::fs::read(inquiry) {
        Ok(raw) => harness.inquire(&env.store, &raw).await,
        Err(e) => Err(format!("{}: {e}", inquiry.display())),
    };
    env.store.close().await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            failures.push(format!("inquiry: {e}"));
            return CaseResult::finished(suite, spec, failures);
        }
    };
    if let Some(code) = &spec.file.expect.ack
        && answer.code != *code
    {
        failures.push(format!(
            "inquiry answer: expected {code}, got {}",
            answer.code
        ));
    }
    check_writeback(spec, harness, &answer.text, settings, &mut failures);
    let mut result = CaseResult::finished(suite, spec, failures);
    result.ack = Some(crate::harness::AckFacts {
        code: Some(answer.code),
        errors: Vec::new(),
        text: answer.text.clone(),
    });
    result.writeback = Some(answer.text);
    result
}

/// Records the decision in `file` on the case the requests produced, the
/// way the central platform's decision reaches the store.
async fn record_decision(
    store: &Store,
    file: &Path,
    case_id: Option<String>,
) -> Result<(), String> {
    let Some(case_id) = case_id else {
        return Err("a decision is given but the requests produced no case".to_owned());
    };
    let decision: gateway_core::case::Decision = std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", file.display()))?;
    store
        .record_decision(&case_id, decision)
        .await
        .map(|_| ())
        .map_err(|e| format!("recording the decision on {case_id}: {e}"))
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

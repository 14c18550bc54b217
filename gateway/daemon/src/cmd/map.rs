//! `map --profile DIR FILE [--explain]`: a file through a mapping profile,
//! exactly as the daemon would take it in. The Case JSON goes to stdout
//! (exit 0); parser and mapping diagnostics go to stderr; exit 1 when a
//! document is unmappable or would be refused. `--explain` adds a trace of
//! every case field (rule, file and line, source path and position, raw value,
//! transforms) on stderr. This is a local tool for the integration engineer: it
//! shows message data.
//!
//! It tells the same truth as intake, so the file is split the way intake
//! splits it:
//!
//! * **X12**: one document per transaction set, and the 999 our intake would
//!   answer is computed from the same findings. Its verdict goes to stderr
//!   (`999: accepted …` / `999: rejected …` with each IK3/IK4 line); a set
//!   the 999 rejects gets no case (the daemon stores it as rejected), and any
//!   rejection makes the exit status 1.
//! * **HL7 v2**: an FHS/BHS batch or several concatenated messages are split
//!   into messages as `send mllp` and the MLLP listener see them, and each is
//!   mapped on its own (`message N of M` on stderr).
//!
//! Several cases are printed as a stream of JSON objects, one after another.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use gateway_core::{SourceDocument, SourceFormat};
use gateway_hl7v2::mllp::files::split_messages;
use gateway_mapping::{MapAction, MapContext, Profile, render_all, render_explain};
use gateway_x12::ack::{AckIdentity, Acknowledgment, acknowledge};
use gateway_x12::write::{MemoryControlNumbers, Stamp};

use crate::formats::{self, Syntaxes};

/// Map one document with a profile and print the case.
#[derive(clap::Args)]
pub struct Args {
    /// The profile folder (holding `profile.toml`).
    #[arg(long, value_name = "DIR")]
    profile: PathBuf,
    /// The document (HL7 v2, X12, FHIR JSON, JSON), parsed in the profile's format.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print how every case field was produced (on stderr).
    #[arg(long)]
    explain: bool,
    /// Receive time to record (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    received_at: Option<String>,
    /// Tenant to use instead of the profile's default.
    #[arg(long)]
    tenant: Option<String>,
}

/// What `map` prints and whether the document was mapped.
pub(crate) struct Report {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Exit 0 with the case(s) (or an `ignore` match), 1 when a document is
/// unmappable or refused.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = map(&args)?;
    print!("{}", report.stdout);
    eprint!("{}", report.stderr);
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn map(args: &Args) -> anyhow::Result<Report> {
    let mut stderr = String::new();
    let failed = |stderr: String| Report {
        ok: false,
        stdout: String::new(),
        stderr,
    };
    let profile = match Profile::load(&args.profile, &Syntaxes) {
        Ok(p) => p,
        Err(e) => {
            stderr.push_str(&render_all(&e.diagnostics));
            stderr.push_str(&format!(
                "\n{}: the profile has errors (run `lint`)\n",
                args.profile.display()
            ));
            return Ok(failed(stderr));
        }
    };
    let raw = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let received_at = args
        .received_at
        .clone()
        .unwrap_or_else(|| jiff::Timestamp::now().to_string());
    let context = MapContext {
        received_at,
        tenant: args.tenant.clone(),
        explain: args.explain,
        ..MapContext::default()
    };
    let mut report = Report {
        ok: true,
        stdout: String::new(),
        stderr,
    };
    match profile.format() {
        SourceFormat::X12 => map_x12(args, &profile, &context, &raw, &mut report)?,
        SourceFormat::Hl7v2 => {
            let messages = split_messages(&raw);
            if messages.len() > 1 {
                for (i, message) in messages.iter().enumerate() {
                    report.stderr.push_str(&format!(
                        "--- message {} of {} ---\n",
                        i + 1,
                        messages.len()
                    ));
                    map_one(args, &profile, &context, message, &mut report)?;
                }
            } else {
                map_one(args, &profile, &context, &raw, &mut report)?;
            }
        }
        _ => map_one(args, &profile, &context, &raw, &mut report)?,
    }
    Ok(report)
}

/// Parses and maps one document, appending to `report`.
fn map_one(
    args: &Args,
    profile: &Profile,
    context: &MapContext,
    raw: &[u8],
    report: &mut Report,
) -> anyhow::Result<()> {
    let document = match formats::parse(profile.format(), raw) {
        Ok(doc) => doc,
        Err(diagnostics) => {
            for d in &diagnostics {
                report.stderr.push_str(&format!("{d}\n"));
            }
            report.stderr.push_str(&format!(
                "{}: not a valid `{}` document\n",
                args.file.display(),
                profile.format().as_str()
            ));
            report.ok = false;
            return Ok(());
        }
    };
    map_document(args, profile, context, &document, report)
}

/// Maps one parsed document, appending to `report`.
fn map_document(
    args: &Args,
    profile: &Profile,
    context: &MapContext,
    document: &SourceDocument,
    report: &mut Report,
) -> anyhow::Result<()> {
    for d in &document.diagnostics {
        report.stderr.push_str(&format!("{d}\n"));
    }
    let outcome = profile.map(document, context);
    if args.explain {
        report.stderr.push_str(&render_explain(&outcome));
    } else if !outcome.diagnostics.is_empty() {
        report.stderr.push_str(&render_all(&outcome.diagnostics));
    }
    if let Some(case) = &outcome.case {
        report.stdout.push_str(&serde_json::to_string_pretty(case)?);
        report.stdout.push('\n');
    }
    if outcome.action == Some(MapAction::Ignore) {
        report.stderr.push_str(&format!(
            "{}: ignored by {}\n",
            args.file.display(),
            outcome.mapping_file.as_deref().unwrap_or("?")
        ));
    }
    report.ok &= outcome.is_mapped();
    Ok(())
}

/// X12: the 999 verdict, then one case per set the 999 accepts (as intake).
fn map_x12(
    args: &Args,
    profile: &Profile,
    context: &MapContext,
    raw: &[u8],
    report: &mut Report,
) -> anyhow::Result<()> {
    let ack = acknowledge(
        raw,
        &AckIdentity::default(),
        &MemoryControlNumbers::new(),
        &Stamp::now(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    report.stderr.push_str(&verdict_text(&ack));
    if !matches!(ack.verdict, 'A' | 'E') {
        report.ok = false;
    }
    let documents = match gateway_x12::parse_documents(raw) {
        Ok(docs) => docs,
        Err(diagnostics) => {
            for d in &diagnostics {
                report.stderr.push_str(&format!("{d}\n"));
            }
            report.stderr.push_str(&format!(
                "{}: not a valid `x12` document\n",
                args.file.display()
            ));
            report.ok = false;
            return Ok(());
        }
    };
    let count = documents.len();
    for (i, document) in documents.iter().enumerate() {
        if count > 1 {
            report.stderr.push_str(&format!(
                "--- transaction set {} of {count} ---\n",
                i + 1
            ));
        }
        if document.is_clean() {
            map_document(args, profile, context, document, report)?;
        } else {
            // Intake stores such a set as rejected and opens no case.
            for d in &document.diagnostics {
                report.stderr.push_str(&format!("{d}\n"));
            }
            report
                .stderr
                .push_str("rejected by the 999: no case (the daemon stores it as rejected)\n");
            report.ok = false;
        }
    }
    Ok(())
}

/// `999: accepted (AK9 A)` or `999: rejected (…)` with the IK3/IK4/IK5 lines.
pub(crate) fn verdict_text(ack: &Acknowledgment) -> String {
    let word = match ack.verdict {
        'A' => "accepted",
        'E' => "accepted with errors noted",
        'P' => "partially accepted (some sets rejected)",
        _ => "rejected",
    };
    let mut out = String::new();
    if let Some(functional) = &ack.functional {
        out.push_str(&format!("999: {word} (AK9 {})\n", ack.verdict));
        let text = String::from_utf8_lossy(functional);
        for segment in text.split('~').map(str::trim) {
            if ["AK2", "IK3", "IK4", "IK5", "AK9"]
                .iter()
                .any(|id| segment.starts_with(&format!("{id}*")))
            {
                out.push_str(&format!("  {segment}\n"));
            }
        }
    } else if let Some(ta1) = &ack.ta1 {
        out.push_str(&format!("TA1: {word} (interchange {})\n", ack.verdict));
        let text = String::from_utf8_lossy(ta1);
        for segment in text.split('~').map(str::trim) {
            if segment.starts_with("TA1*") {
                out.push_str(&format!("  {segment}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(case: &str, explain: bool) -> Args {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../mapping/tests/cases")
            .join(case);
        Args {
            profile: dir.join("profile"),
            file: dir.join("input.json"),
            explain,
            received_at: Some("2026-11-22T10:00:00Z".into()),
            tenant: None,
        }
    }

    #[test]
    fn prints_the_case_json_like_the_golden_file() {
        let report = map(&args("readme_worked_example", false)).expect("runs");
        assert!(report.ok, "{}", report.stderr);
        let expected = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../mapping/tests/cases/readme_worked_example/expected.json"),
        )
        .expect("golden file");
        assert_eq!(report.stdout, expected);
        assert_eq!(report.stderr, "");
    }

    #[test]
    fn explain_traces_every_field_on_stderr() {
        let report = map(&args("readme_worked_example", true)).expect("runs");
        assert!(report.ok);
        assert!(
            report
                .stderr
                .contains("patient.birth_date = \"1970-01-31\"")
        );
        assert!(report.stderr.contains("raw:    \"19700131\""));
        assert!(report.stderr.contains("steps:  date hl7"));
    }

    #[test]
    fn unmappable_documents_fail_with_diagnostics() {
        let report = map(&args("required_missing", false)).expect("runs");
        assert!(!report.ok);
        assert_eq!(report.stdout, "");
        assert!(report.stderr.contains("error[M022]"));
        let ignored = map(&args("ignore_action", false)).expect("runs");
        assert!(ignored.ok);
        assert!(ignored.stderr.contains("ignored by acks.toml"));
        let broken = map(&args("load_unknown_keys", false)).expect("runs");
        assert!(!broken.ok);
        assert!(broken.stderr.contains("the profile has errors"));
    }
}

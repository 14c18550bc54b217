//! `map --profile DIR FILE [--explain]`: one document through a mapping
//! profile, exactly as the daemon would map it. The Case JSON goes to stdout
//! (exit 0); parser and mapping diagnostics go to stderr; exit 1 when the
//! document is unmappable. `--explain` adds a trace of every case field (rule,
//! file and line, source path and position, raw value, transforms) on stderr.
//! This is a local tool for the integration engineer: it shows message data.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use gateway_mapping::{MapAction, MapContext, Profile, render_all, render_explain};

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

/// Exit 0 with the case (or an `ignore` match), 1 when unmappable.
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
    let document = match formats::parse(profile.format(), &raw) {
        Ok(doc) => doc,
        Err(diagnostics) => {
            for d in &diagnostics {
                stderr.push_str(&format!("{d}\n"));
            }
            stderr.push_str(&format!(
                "{}: not a valid `{}` document\n",
                args.file.display(),
                profile.format().as_str()
            ));
            return Ok(failed(stderr));
        }
    };
    for d in &document.diagnostics {
        stderr.push_str(&format!("{d}\n"));
    }
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
    let outcome = profile.map(&document, &context);
    if args.explain {
        stderr.push_str(&render_explain(&outcome));
    } else if !outcome.diagnostics.is_empty() {
        stderr.push_str(&render_all(&outcome.diagnostics));
    }
    let mut stdout = String::new();
    if let Some(case) = &outcome.case {
        stdout.push_str(&serde_json::to_string_pretty(case)?);
        stdout.push('\n');
    }
    if outcome.action == Some(MapAction::Ignore) {
        stderr.push_str(&format!(
            "{}: ignored by {}\n",
            args.file.display(),
            outcome.mapping_file.as_deref().unwrap_or("?")
        ));
    }
    Ok(Report {
        ok: outcome.is_mapped(),
        stdout,
        stderr,
    })
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

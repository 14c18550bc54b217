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

/// Exit 0 with the case (or an `ignore` match), 1 when unmappable.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profile = match Profile::load(&args.profile, &Syntaxes) {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", render_all(&e.diagnostics));
            eprintln!(
                "\n{}: the profile has errors (run `lint`)",
                args.profile.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let raw = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let document = match formats::parse(profile.format(), &raw) {
        Ok(doc) => doc,
        Err(diagnostics) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!(
                "{}: not a valid `{}` document",
                args.file.display(),
                profile.format().as_str()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    for d in &document.diagnostics {
        eprintln!("{d}");
    }
    let received_at = args
        .received_at
        .unwrap_or_else(|| jiff::Timestamp::now().to_string());
    let context = MapContext {
        received_at,
        tenant: args.tenant,
        explain: args.explain,
        ..MapContext::default()
    };
    let outcome = profile.map(&document, &context);
    if args.explain {
        eprint!("{}", render_explain(&outcome));
    } else if !outcome.diagnostics.is_empty() {
        eprint!("{}", render_all(&outcome.diagnostics));
    }
    if let Some(case) = &outcome.case {
        println!("{}", serde_json::to_string_pretty(case)?);
    }
    if outcome.action == Some(MapAction::Ignore) {
        eprintln!(
            "{}: ignored by {}",
            args.file.display(),
            outcome.mapping_file.as_deref().unwrap_or("?")
        );
    }
    Ok(if outcome.is_mapped() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

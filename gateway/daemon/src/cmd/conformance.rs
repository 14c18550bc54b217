//! `conformance [--suite DIR]… [--junit F] [--html F] [--json F] [--live ADDR]`:
//! runs the per-EHR conformance suites (all under `conformance/suites` by
//! default) through the adapters' own receive paths, prints failures with
//! readable diffs, writes the requested reports, and exits 1 on any failure.
//! `BLESS=1` (or `--bless`) re-writes expectations after a deliberate change.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use conformance::live::LiveTarget;
use conformance::{Options, Totals, report};

/// Run the conformance suites.
#[derive(clap::Args)]
pub struct Args {
    /// A suite folder (repeatable); default: every suite under `--suites-root`.
    #[arg(long = "suite", value_name = "DIR")]
    suites: Vec<PathBuf>,
    /// Where the suites live.
    #[arg(long, value_name = "DIR", default_value = "conformance/suites")]
    suites_root: PathBuf,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a static HTML report (results, diffs, field coverage).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write a JSON report.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Run against a running daemon's admin address (`HOST:PORT` or URL)
    /// instead of in-process.
    #[arg(long, value_name = "ADDR")]
    live: Option<String>,
    /// File holding the admin API bearer token for `--live`.
    #[arg(long, value_name = "FILE", requires = "live")]
    token_file: Option<PathBuf>,
    /// Re-write expected files from the current output (also `BLESS=1`).
    #[arg(long)]
    bless: bool,
}

/// Exit 0 when every case passed or was skipped, 1 on any failure.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let bless = args.bless || std::env::var_os("BLESS").is_some_and(|v| !v.is_empty() && v != "0");
    if bless && std::env::var_os("CI").is_some() {
        // A golden re-blessed on the CI machine would hide the very change it guards.
        anyhow::bail!("re-blessing expectations is refused when CI is set: bless locally and review the diff");
    }
    let options = Options {
        suites: args.suites.clone(),
        suites_root: args.suites_root.clone(),
        bless,
        live: args
            .live
            .as_deref()
            .map(|addr| LiveTarget::new(addr, token)),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let results = runtime.block_on(conformance::run(&options))?;

    for (path, text) in [
        (
            &args.json,
            args.json.as_ref().map(|_| report::json(&results)),
        ),
        (
            &args.junit,
            args.junit.as_ref().map(|_| report::junit::render(&results)),
        ),
        (
            &args.html,
            args.html.as_ref().map(|_| report::html::render(&results)),
        ),
    ] {
        if let (Some(path), Some(text)) = (path, text) {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    print!("{}", report::console::summary(&results));
    Ok(if Totals::of(&results).failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

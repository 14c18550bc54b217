//! The conformance runner: the per-EHR proof an integration engineer runs
//! before go-live and after every profile change.
//!
//! A suite (`conformance/suites/<profile>/`) is a folder of cases; each case
//! holds the input exactly as the EHR sends it, what it proves (`case.toml`),
//! the expected Case and acknowledgement facts, or the expected write-back.
//! [`run`] executes them **offline** (in-process: a fresh store per case, the
//! real pipeline, each adapter's own receive path through its
//! [`harness::Harness`]) or **live** (over the real transport against a
//! running daemon, reading the result back through its admin API; see
//! [`live`]), then writes console, JSON, JUnit and HTML reports.
//!
//! The runner never re-implements a pipeline step: the harnesses call the
//! same adapter functions the daemon's listeners call.

pub mod compare;
pub mod harness;
pub mod live;
pub mod report;
pub mod result;
pub mod run;
pub mod suite;

use std::path::PathBuf;

pub use result::{CaseResult, Status, Totals};

/// What to run and where to report.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Suite folders; empty means every suite under `suites_root`.
    pub suites: Vec<PathBuf>,
    /// Where suites live by default (`conformance/suites`).
    pub suites_root: PathBuf,
    /// Re-write expectations from the current output (`BLESS=1`).
    pub bless: bool,
    /// Run against a running daemon at this admin address instead of offline.
    pub live: Option<live::LiveTarget>,
    /// Show a progress bar.
    pub progress: bool,
}

/// A run that could not start (no suites, unreadable suite files).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A suite folder or file is broken.
    #[error(transparent)]
    Suite(#[from] suite::SuiteError),
    /// Nothing to run.
    #[error("no conformance suites found under {0}")]
    NoSuites(PathBuf),
}

/// Loads the suites and runs every case; the results are in suite and case order.
pub async fn run(options: &Options) -> Result<Vec<CaseResult>, RunError> {
    let dirs = if options.suites.is_empty() {
        suite::discover(&options.suites_root)?
    } else {
        options.suites.clone()
    };
    if dirs.is_empty() {
        return Err(RunError::NoSuites(options.suites_root.clone()));
    }
    let suites = dirs
        .iter()
        .map(|d| suite::load_suite(d))
        .collect::<Result<Vec<_>, _>>()?;
    let total: usize = suites.iter().map(|s| s.cases.len()).sum();
    let bar = options.progress.then(|| report::console::progress(total));
    let tick = |r: &CaseResult| {
        if let Some(bar) = &bar {
            bar.set_message(format!("{}/{}", r.suite, r.case));
            bar.inc(1);
        }
    };
    let harnesses = harness::all();
    let settings = run::RunSettings {
        bless: options.bless,
    };
    let mut results = Vec::with_capacity(total);
    for suite in &suites {
        let mut suite_results = match &options.live {
            Some(target) => live::run_suite(target, suite, &tick).await,
            None => run::run_suite(suite, &harnesses, settings, &tick).await,
        };
        results.append(&mut suite_results);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(results)
}

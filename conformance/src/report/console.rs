//! Console output: a progress bar while running, then failures with readable
//! diffs and the totals.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::result::{CaseResult, Status, Totals};

/// A progress bar over `total` cases (hidden when stderr is not a terminal).
pub fn progress(total: usize) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// The end-of-run text: every failure with its checks and field diffs, skips
/// with their reasons, and a closing `N passed, N failed, N skipped` line.
pub fn summary(results: &[CaseResult]) -> String {
    let mut out = String::new();
    for r in results {
        match &r.status {
            Status::Failed => {
                out.push_str(&format!(
                    "FAIL {}/{} — {}\n",
                    r.suite, r.case, r.description
                ));
                for failure in &r.failures {
                    for line in failure.lines() {
                        out.push_str(&format!("    {line}\n"));
                    }
                }
                for diff in &r.diffs {
                    out.push_str(&format!("      {diff}\n"));
                }
            }
            Status::Skipped(reason) => {
                out.push_str(&format!("skip {}/{}: {reason}\n", r.suite, r.case));
            }
            Status::Passed => {}
        }
    }
    let t = Totals::of(results);
    out.push_str(&format!(
        "conformance: {} passed, {} failed, {} skipped\n",
        t.passed, t.failed, t.skipped
    ));
    out
}

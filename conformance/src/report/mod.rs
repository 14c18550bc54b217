//! Reports of a run: console, JSON, JUnit XML and one static HTML file.

pub mod console;
pub mod coverage;
pub mod html;
pub mod junit;

use crate::result::{CaseResult, Totals};

/// The JSON report: totals plus every case result.
pub fn json(results: &[CaseResult]) -> String {
    let value = serde_json::json!({
        "totals": Totals::of(results),
        "coverage": coverage::by_suite(results),
        "cases": results,
    });
    serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

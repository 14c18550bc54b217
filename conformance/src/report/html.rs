//! One static HTML file: per-suite pass/fail, each failure with its diff, and
//! the field coverage of every profile. No external assets, no scripts.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::report::coverage;
use crate::result::{CaseResult, Status, Totals};

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24}\
h1{margin-bottom:.2rem}table{border-collapse:collapse;margin:1rem 0}\
td,th{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}\
.pass{background:#dafbe1}.fail{background:#ffebe9}.skip{background:#fff8c5}\
pre{background:#f6f8fa;padding:.5rem;white-space:pre-wrap;margin:0}\
.bar{display:inline-block;height:.8rem;background:#2da44e}";

/// The HTML report for `results`.
pub fn render(results: &[CaseResult]) -> String {
    let totals = Totals::of(results);
    let mut by_suite: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for r in results {
        by_suite.entry(r.suite.as_str()).or_default().push(r);
    }
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Conformance report</title><style>{STYLE}</style></head><body>\
<h1>EHR gateway conformance</h1>\
<p id=\"totals\"><strong>{}</strong> passed, <strong>{}</strong> failed, <strong>{}</strong> skipped</p>",
        totals.passed, totals.failed, totals.skipped
    );
    html.push_str("<h2>Suites</h2><table><tr><th>suite</th><th>passed</th><th>failed</th><th>skipped</th></tr>");
    for (suite, cases) in &by_suite {
        let owned: Vec<CaseResult> = cases.iter().map(|c| (*c).clone()).collect();
        let t = Totals::of(&owned);
        let class = if t.failed > 0 { "fail" } else { "pass" };
        let _ = write!(
            html,
            "<tr class=\"{class}\"><td><a href=\"#suite-{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td></tr>",
            esc(suite),
            t.passed,
            t.failed,
            t.skipped
        );
    }
    html.push_str("</table>");

    for (suite, cases) in &by_suite {
        let _ = write!(
            html,
            "<h2 id=\"suite-{0}\">{0}</h2><table><tr><th>case</th><th>result</th><th>what it proves</th><th>details</th></tr>",
            esc(suite)
        );
        for r in cases {
            let (class, label, details) = match &r.status {
                Status::Passed => ("pass", "pass".to_owned(), String::new()),
                Status::Skipped(reason) => ("skip", "skip".to_owned(), esc(reason)),
                Status::Failed => {
                    let mut text = r.failures.join("\n");
                    for d in &r.diffs {
                        text.push('\n');
                        text.push_str(&d.to_string());
                    }
                    (
                        "fail",
                        "FAIL".to_owned(),
                        format!("<pre>{}</pre>", esc(&text)),
                    )
                }
            };
            let _ = write!(
                html,
                "<tr class=\"{class}\"><td>{}</td><td>{label}</td><td>{}<br><small>{}</small></td><td>{details}</td></tr>",
                esc(&r.case),
                esc(&r.description),
                esc(&r.requirements.join(", "))
            );
        }
        html.push_str("</table>");
    }

    html.push_str(
        "<h2>Field coverage</h2><p>How many cases of each suite filled each Case field.</p>",
    );
    let coverage = coverage::by_suite(results);
    let suites: Vec<&String> = coverage.keys().collect();
    html.push_str("<table><tr><th>field</th>");
    for s in &suites {
        let _ = write!(html, "<th>{}</th>", esc(s));
    }
    html.push_str("</tr>");
    let mut fields: Vec<String> = coverage::CASE_FIELDS
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
    for per_suite in coverage.values() {
        for field in per_suite.keys() {
            if !fields.contains(field) {
                fields.push(field.clone());
            }
        }
    }
    for field in &fields {
        let _ = write!(html, "<tr><td><code>{}</code></td>", esc(field));
        for s in &suites {
            let n = coverage
                .get(*s)
                .and_then(|m| m.get(field))
                .copied()
                .unwrap_or(0);
            let class = if n == 0 { " class=\"skip\"" } else { "" };
            let _ = write!(html, "<td{class}>{n}</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</table></body></html>\n");
    html
}

//! JUnit XML (one test suite per profile) for CI systems.

use std::collections::BTreeMap;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::result::{CaseResult, Status};

/// The JUnit XML document for `results`.
pub fn render(results: &[CaseResult]) -> String {
    let mut suites: BTreeMap<&str, Vec<&CaseResult>> = BTreeMap::new();
    for r in results {
        suites.entry(r.suite.as_str()).or_default().push(r);
    }
    let mut report = Report::new("ehr-gateway conformance");
    for (name, cases) in suites {
        let mut suite = TestSuite::new(name);
        for r in cases {
            let status = match &r.status {
                Status::Passed => TestCaseStatus::success(),
                Status::Failed => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    let mut text = r.failures.join("\n");
                    for d in &r.diffs {
                        text.push('\n');
                        text.push_str(&d.to_string());
                    }
                    s.set_description(text);
                    s.set_message(r.failures.first().cloned().unwrap_or_default());
                    s
                }
                Status::Skipped(reason) => {
                    let mut s = TestCaseStatus::skipped();
                    s.set_message(reason.clone());
                    s
                }
            };
            let mut case = TestCase::new(r.case.clone(), status);
            case.set_classname(format!("{}.{}", name, r.case));
            case.set_time(r.duration);
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- junit rendering failed: {e} -->"))
}

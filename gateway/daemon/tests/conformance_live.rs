//! `ehr-gateway conformance --live` against a daemon this test starts: an
//! epic suite goes over real MLLP to the daemon's listener and every case is
//! read back through the admin API. The suite is built here from the
//! committed synthetic sample order and its expectations are blessed
//! offline first, so the test proves live == offline. It runs twice against
//! the same store, so the second pass proves re-sent inputs (now duplicates)
//! still pass.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// A suite named `epic` in `dir`: an order, the order sent twice, garbage.
fn write_suite(dir: &Path) -> PathBuf {
    let suite = dir.join("suites/epic");
    let case = |name: &str, toml: &str, input: &[u8]| {
        let case_dir = suite.join(name);
        std::fs::create_dir_all(&case_dir).expect("case dir");
        std::fs::write(case_dir.join("case.toml"), toml).expect("case.toml");
        std::fs::write(case_dir.join("input.hl7"), input).expect("input");
    };
    std::fs::create_dir_all(&suite).expect("suite dir");
    std::fs::write(
        suite.join("suite.toml"),
        format!(
            "profile = \"{}\"\n[identity]\ntenant = \"mso-test\"\npractice = \"cardio-north\"\n",
            support::repo_root().join("mappings/epic").display()
        ),
    )
    .expect("suite.toml");
    case(
        "order",
        "description = \"an ORM^O01 becomes a case, AA\"\n[expect]\nack = \"AA\"\n",
        &support::epic_order(),
    );
    case(
        "order-twice",
        "description = \"the same order twice: accepted then duplicate\"\n\
         inputs = [\"input.hl7\", \"input.hl7\"]\n\
         [expect]\noutcomes = [\"accepted\", \"duplicate\"]\nack = \"AA\"\n",
        &support::epic_order(),
    );
    case(
        "garbage",
        "description = \"bytes that are not HL7 are refused, no case\"\n\
         [expect]\noutcomes = [\"rejected\"]\n",
        b"THIS IS NOT AN HL7 MESSAGE\r",
    );
    suite
}

/// Runs `ehr-gateway conformance --suite SUITE EXTRA…` with a JSON report;
/// returns the exit code, the console output and the report.
fn conformance(
    dir: &Path,
    suite: &Path,
    extra: &[&str],
    name: &str,
) -> (Option<i32>, String, Value) {
    let json = dir.join(format!("{name}.json"));
    let output = Command::new(support::bin())
        .current_dir(support::repo_root())
        // The suite is a temporary one this test writes and blesses: CI's
        // refusal to re-bless the repository's expectations does not apply.
        .env_remove("CI")
        .args(["conformance", "--suite"])
        .arg(suite)
        .args(extra)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run ehr-gateway conformance");
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("{e}\n{console}")),
    )
    .expect("JSON report");
    (output.status.code(), console, report)
}

fn assert_all_passed(pass: &str, code: Option<i32>, console: &str, report: &Value) {
    assert_eq!(code, Some(0), "{pass} failed:\n{console}");
    let statuses: Vec<(String, String)> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| (c["case"].to_string(), c["status"].to_string()))
        .collect();
    assert_eq!(statuses.len(), 3, "{pass}: {statuses:?}");
    assert!(
        statuses.iter().all(|(_, s)| s == "\"passed\""),
        "{pass}: not all cases ran and passed: {statuses:?}\n{console}"
    );
}

#[test]
fn epic_suite_passes_live_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = write_suite(dir.path());
    // Expectations from the offline run (the daemon's own code in-process),
    // then a plain offline run must pass against them.
    let (code, console, _) = conformance(dir.path(), &suite, &["--bless"], "bless");
    assert_eq!(code, Some(0), "offline bless run failed:\n{console}");
    assert!(
        suite.join("order/expected.case.json").is_file(),
        "{console}"
    );
    let (code, console, offline) = conformance(dir.path(), &suite, &[], "offline");
    assert_all_passed("offline", code, &console, &offline);

    let config = support::write_config(
        dir.path(),
        "[[hl7v2.listeners]]\nlisten = \"127.0.0.1:0\"\nprofile = \"epic\"\n",
    );
    let daemon = support::Daemon::start(&config);
    let admin = daemon.admin.to_string();
    let token = dir.path().join("admin.token");
    let live = [
        "--live",
        admin.as_str(),
        "--token-file",
        token.to_str().expect("utf-8 path"),
    ];

    let (code, console, first) = conformance(dir.path(), &suite, &live, "live-1");
    assert_all_passed("live pass 1", code, &console, &first);
    // Same store: every input is now a duplicate and must still pass.
    let (code, console, second) = conformance(dir.path(), &suite, &live, "live-2");
    assert_all_passed("live pass 2", code, &console, &second);
}

#[test]
fn wrong_token_fails_every_case() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = write_suite(dir.path());
    let config = support::write_config(
        dir.path(),
        "[[hl7v2.listeners]]\nlisten = \"127.0.0.1:0\"\nprofile = \"epic\"\n",
    );
    let daemon = support::Daemon::start(&config);
    let wrong = dir.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token\n").expect("token");
    let admin = daemon.admin.to_string();
    let live = [
        "--live",
        admin.as_str(),
        "--token-file",
        wrong.to_str().expect("utf-8 path"),
    ];
    let (code, console, report) = conformance(dir.path(), &suite, &live, "wrong");
    assert_eq!(code, Some(1), "{console}");
    assert_eq!(report["totals"]["passed"], 0, "{console}");
    assert!(console.contains("401"), "{console}");
}

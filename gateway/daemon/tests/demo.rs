//! `demo --exit-after-traffic` runs to completion: the daemon starts on
//! loopback in a temporary directory, every wired adapter either sends its
//! sample traffic or is listed as skipped with a reason, and the summary names
//! the admin URL and the data directory.

mod support;

use std::process::Command;

#[test]
fn demo_runs_to_completion_and_reports() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(support::bin())
        .args([
            "demo",
            "--exit-after-traffic",
            "--admin-listen",
            "127.0.0.1:0",
            "--repo",
        ])
        .arg(&repo)
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("admin:    http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("data dir: "), "{stdout}");
    assert!(stdout.contains("\ncases:\n"), "{stdout}");
    // Every case line or the skipped section explains itself.
    let has_cases = !stdout.contains("cases:\n  (none)");
    assert!(has_cases || stdout.contains("skipped:"), "{stdout}");
    if has_cases {
        assert!(stdout.contains("decision  POST /api/v1/cases/"), "{stdout}");
        assert!(stdout.contains("auth=DEMO-AUTH-0001"), "{stdout}");
    }
}

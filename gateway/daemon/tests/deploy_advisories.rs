//! The CI advisory step (`.ci/advisories.sh`, run by `.ci/run`) with the
//! online RustSec database unreachable (every proxy variable points at a
//! closed loopback port): it checks the real dependency graph with the real
//! cargo-deny against an offline snapshot instead of skipping, says which
//! snapshot (commit and date) it used, passes when no advisory applies and
//! fails when one does. The snapshots are synthetic, written here in the
//! RustSec format, so the outcome does not depend on the published database.
#![cfg(unix)]

mod support;

use std::path::Path;
use std::process::Command;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A snapshot folder with one advisory against `hex` (a dependency of the
/// daemon, 0.4.x): patched in `patched`.
fn snapshot(dir: &Path, patched: &str) {
    let date = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24 * 10))
        .expect("date")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    std::fs::write(
        dir.join("SNAPSHOT.md"),
        format!(
            "# Synthetic advisory database for a test\n\nA copy of the advisory database (commit\n{COMMIT} of {date}); no history.\n"
        ),
    )
    .expect("SNAPSHOT.md");
    let crates = dir.join("crates/hex");
    std::fs::create_dir_all(&crates).expect("crates");
    std::fs::write(
        crates.join("RUSTSEC-2099-0001.md"),
        format!(
            "```toml\n[advisory]\nid = \"RUSTSEC-2099-0001\"\npackage = \"hex\"\n\
             date = \"2026-01-01\"\nurl = \"https://example.invalid/advisories/2099-0001\"\n\
             categories = [\"denial-of-service\"]\nkeywords = []\n\n\
             [versions]\npatched = [\"{patched}\"]\n```\n\n\
             # Synthetic advisory written by a test\n\nNot a real advisory.\n"
        ),
    )
    .expect("advisory");
}

fn run_step(snapshot: &Path) -> (bool, String) {
    let cargo_deny = Command::new("cargo").args(["deny", "--version"]).output();
    assert!(
        cargo_deny.is_ok_and(|o| o.status.success()),
        "cargo-deny is missing: run .ci/install.d/60-deploy.sh"
    );
    let closed = "http://127.0.0.1:9";
    let out = Command::new("bash")
        .arg(support::repo_root().join(".ci/advisories.sh"))
        .env("ADVISORY_SNAPSHOT", snapshot)
        .env_remove("ADVISORY_OFFLINE")
        .env("https_proxy", closed)
        .env("HTTPS_PROXY", closed)
        .env("http_proxy", closed)
        .env("HTTP_PROXY", closed)
        .env("ALL_PROXY", closed)
        .env("all_proxy", closed)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .expect("run .ci/advisories.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn advisories_are_checked_against_the_snapshot_when_the_database_is_unreachable() {
    let dir = tempfile::tempdir().expect("tmp");
    // Patched long ago: does not apply to hex 0.4.
    snapshot(dir.path(), ">= 0.0.1");
    let (ok, text) = run_step(dir.path());
    assert!(ok, "{text}");
    assert!(text.contains("using the offline snapshot"), "{text}");
    assert!(text.contains(&format!("commit {COMMIT}")), "{text}");
    assert!(text.contains("advisories ok"), "{text}");

    // Patched only in a future major: applies, so the step fails and names it.
    let dir = tempfile::tempdir().expect("tmp");
    snapshot(dir.path(), ">= 99.0.0");
    let (ok, text) = run_step(dir.path());
    assert!(!ok, "an applicable advisory must fail CI:\n{text}");
    assert!(text.contains("RUSTSEC-2099-0001"), "{text}");
    assert!(text.contains("using the offline snapshot"), "{text}");
}

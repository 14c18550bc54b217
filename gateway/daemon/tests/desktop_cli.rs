//! `ehr-gateway desktop run` end to end, the real binary against the
//! legacy-EHR test application under a private Xvfb: the shipped read
//! playbook prints the order screen as a Case; `--dry-run` of the shipped
//! write playbook lists its steps without a single value of the case; the
//! write playbook types a decision (HL7 delimiters and non-ASCII in the note)
//! that the application saves exactly as typed.
//!
//! Needs Xvfb and python3-tk (`.ci/install.d/50-desktop.sh`): skipped with a
//! printed reason when missing, failed when `CI` is set.

#![cfg(unix)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const NOTE: &str = "Approved per Dr. Müller / Søren |^~\\& ok";
const AUTH: &str = "PA-2026-0777";

fn playbook(name: &str) -> std::path::PathBuf {
    support::repo_root().join(format!("mappings/legacy-desktop/playbooks/{name}.toml"))
}

fn desktop_run(display: &str, args: &[&str]) -> Output {
    Command::new(support::bin())
        .args(["desktop", "run"])
        .args(args)
        .env("DISPLAY", display)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ehr-gateway desktop run")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A decided case for the write playbook, from the case the read printed.
fn decided(mut case: Value, dir: &Path) -> std::path::PathBuf {
    case["status"] = json!("approved");
    case["decision"] = json!({
        "status": "approved", "authorization_number": AUTH,
        "effective": {"start": "2026-12-01", "end": "2027-02-28"},
        "note": NOTE
    });
    let path = dir.join("decided-case.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&case).expect("json")).expect("write case");
    path
}

#[test]
fn desktop_run_reads_an_order_and_writes_a_decision() {
    let Some(display) = support::desktop::display("desktop CLI test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let app = support::desktop::App::start(display.display(), dir.path());

    // Read: the order screen becomes a Case on stdout.
    let read = desktop_run(
        display.display(),
        &[
            "--playbook",
            playbook("read-order").to_str().expect("utf-8 path"),
        ],
    );
    assert!(read.status.success(), "read failed: {}", text(&read.stderr));
    let case: Value = serde_json::from_slice(&read.stdout).expect("the read prints a Case");
    assert_eq!(case["schema"], "ehr-gateway/case/v1");
    assert_eq!(case["source"]["adapter"], "desktop");
    assert_eq!(case["patient"]["identifiers"][0]["value"], "E10001");
    assert_eq!(case["patient"]["name"]["family"], "Müller");
    assert_eq!(case["patient"]["birth_date"], "1970-01-31");
    assert_eq!(case["coverages"][0]["member_id"], "W123456789");
    assert_eq!(case["services"][0]["code"]["code"], "78452");
    assert_eq!(case["diagnoses"][0]["code"]["code"], "I25.10");
    assert_eq!(case["references"]["placer_order"], "ORD-70001");
    assert!(!app.saved.exists(), "reading must not save anything");
    let case_file = decided(case, dir.path());
    let case_arg = case_file.to_str().expect("utf-8 path");

    // Dry run: every step listed, no value of the case (PHI or decision).
    let write_playbook = playbook("write-decision");
    let write_arg = write_playbook.to_str().expect("utf-8 path");
    let dry = desktop_run(
        display.display(),
        &["--playbook", write_arg, "--case", case_arg, "--dry-run"],
    );
    assert!(dry.status.success(), "dry run: {}", text(&dry.stderr));
    let listing = format!("{}{}", text(&dry.stdout), text(&dry.stderr));
    assert!(listing.contains("verify"), "{listing}");
    for value in [AUTH, "Müller", "Søren", "E10001", "12/01/2026", "APPROVED"] {
        assert!(
            !listing.contains(value),
            "dry run shows `{value}`: {listing}"
        );
    }
    assert!(!app.saved.exists(), "a dry run must not type anything");

    // Write: typed, verified, saved exactly.
    let write = desktop_run(
        display.display(),
        &["--playbook", write_arg, "--case", case_arg],
    );
    let stderr = text(&write.stderr);
    assert!(write.status.success(), "write failed: {stderr}");
    assert!(stderr.contains("wrote and verified"), "{stderr}");
    for value in [AUTH, "Müller", NOTE] {
        assert!(
            !stderr.contains(value),
            "the CLI logged `{value}`: {stderr}"
        );
    }
    let until = Instant::now() + Duration::from_secs(5);
    while !app.saved.exists() {
        assert!(Instant::now() < until, "the application saved nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&app.saved).expect("saved")).expect("saved json");
    assert_eq!(
        saved,
        json!({"auth_number": AUTH, "status": "APPROVED",
               "start_date": "12/01/2026", "end_date": "02/28/2027", "note": NOTE})
    );
}

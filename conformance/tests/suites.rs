//! Every shipped suite passes offline (what `ehr-gateway conformance` runs in
//! CI), and a deliberately broken profile makes a suite fail with a readable diff.

use std::path::{Path, PathBuf};

use conformance::{Options, Status, Totals, report};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("conformance sits in the repo root")
        .to_path_buf()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn every_shipped_suite_passes() {
    let options = Options {
        suites_root: repo_root().join("conformance/suites"),
        // `BLESS=1 cargo test -p conformance` re-writes the expectations.
        bless: std::env::var_os("BLESS").is_some_and(|v| v != "0"),
        ..Options::default()
    };
    let results = runtime()
        .block_on(conformance::run(&options))
        .expect("suites load");
    let summary = report::console::summary(&results);
    let totals = Totals::of(&results);
    assert_eq!(totals.failed, 0, "{summary}");
    assert!(totals.passed > 0, "no case ran:\n{summary}");
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_broken_profile_fails_with_a_readable_diff() {
    let root = repo_root();
    let work = tempfile::tempdir().expect("tempdir");
    // A private copy of the mappings (the epic profile extends hl7v2-base)
    // and of the epic suite, side by side as in the repository.
    copy_dir(&root.join("mappings"), &work.path().join("mappings"));
    copy_dir(
        &root.join("conformance/suites/epic"),
        &work.path().join("suites/epic"),
    );
    // Break the birth-date rule: read PID-8 (sex) instead of PID-7.
    let base = work.path().join("mappings/hl7v2-base");
    let mut broken = false;
    for entry in std::fs::read_dir(&base).expect("read base profile") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).expect("read");
            if text.contains("\"PID-7.1\"") {
                std::fs::write(&path, text.replace("\"PID-7.1\"", "\"PID-8.1\"")).expect("write");
                broken = true;
            }
        }
    }
    assert!(
        broken,
        "the base profile no longer maps birth_date from \"PID-7.1\"; update this test"
    );

    let options = Options {
        suites: vec![work.path().join("suites/epic")],
        ..Options::default()
    };
    let results = runtime()
        .block_on(conformance::run(&options))
        .expect("suite loads");
    let failed: Vec<_> = results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .collect();
    assert!(!failed.is_empty(), "a broken profile must fail the suite");
    let summary = report::console::summary(&results);
    assert!(summary.contains("FAIL epic/"), "{summary}");
    assert!(
        summary.contains("patient.birth_date") || summary.contains("expected a case"),
        "the failure names the field that broke:\n{summary}"
    );
    let html = report::html::render(&results);
    assert!(html.contains("FAIL") && html.contains("Field coverage"));
    let junit = report::junit::render(&results);
    assert!(junit.contains("<failure"), "{junit}");
}

#[test]
fn an_inquiry_case_fails_when_the_decision_does_not_reach_the_answer() {
    let root = repo_root();
    let work = tempfile::tempdir().expect("tempdir");
    copy_dir(&root.join("mappings"), &work.path().join("mappings"));
    let case = work.path().join("suites/davinci-pas/inquiry-approved");
    copy_dir(
        &root.join("conformance/suites/davinci-pas/inquiry-approved"),
        &case,
    );
    // The same requests and inquiry, but the payer's approval is never
    // recorded: the answer is the pended bundle, not the expected A1.
    let toml = std::fs::read_to_string(case.join("case.toml")).expect("case.toml");
    assert!(toml.contains("decision = \"decision.json\""), "{toml}");
    std::fs::write(
        case.join("case.toml"),
        toml.replace("decision = \"decision.json\"\n", ""),
    )
    .expect("write");

    let options = Options {
        suites: vec![work.path().join("suites/davinci-pas")],
        ..Options::default()
    };
    let results = runtime()
        .block_on(conformance::run(&options))
        .expect("suite loads");
    let summary = report::console::summary(&results);
    assert_eq!(results.len(), 1, "{summary}");
    assert_eq!(results[0].status, Status::Failed, "{summary}");
    assert!(summary.contains("write-back differs"), "{summary}");
    assert!(summary.contains("SYNAUTH-2207"), "{summary}");
}

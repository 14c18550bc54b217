//! Data-driven mapping tests in the VRL style.
//!
//! Each folder under `tests/cases/<name>/` holds:
//! * `profile/` — the profile under test (`profile.toml` + mapping files), and
//!   optionally sibling profiles it extends (e.g. `base/`);
//! * `input.json` — the document (a `json`-format document; `_meta` carries
//!   message type etc.). Without it only loading is tested;
//! * `expected.json` — the Case JSON, when a case is produced;
//! * `expected.txt` — the outcome line and the rendered diagnostics, when
//!   loading fails, no case is produced, or there are warnings;
//! * `expected.explain.txt` — optional: the `--explain` trace.
//!
//! A missing expectation file means "nothing of that kind is expected".
//! `BLESS=1 cargo test -p gateway-mapping --test cases` rewrites them; review
//! the diff before committing.

use std::path::{Path, PathBuf};

use gateway_mapping::{
    DefaultSyntaxes, MapContext, Profile, json_document, render_all, render_explain,
};

const RECEIVED_AT: &str = "2026-11-22T10:00:00Z";

struct Actual {
    json: Option<String>,
    txt: Option<String>,
    explain: Option<String>,
}

fn run_case(dir: &Path) -> Actual {
    let profile = match Profile::load(&dir.join("profile"), &DefaultSyntaxes) {
        Ok(p) => p,
        Err(e) => {
            return Actual {
                json: None,
                txt: Some(format!(
                    "outcome: profile not loaded\n\n{}",
                    render_all(&e.diagnostics)
                )),
                explain: None,
            };
        }
    };
    let input = dir.join("input.json");
    if !input.exists() {
        let warnings = profile.warnings();
        return Actual {
            json: None,
            txt: (!warnings.is_empty())
                .then(|| format!("outcome: profile loaded\n\n{}", render_all(warnings))),
            explain: None,
        };
    }
    let text = std::fs::read_to_string(&input).expect("read input.json");
    let value: serde_json::Value = serde_json::from_str(&text).expect("input.json is JSON");
    let doc = json_document(&value);
    let want_explain = dir.join("expected.explain.txt").exists() || dir.join("explain").exists();
    let mut ctx = MapContext::new(RECEIVED_AT);
    ctx.explain = want_explain;
    let outcome = profile.map(&doc, &ctx);
    // Evaluating twice gives the same result.
    let again = profile.map(&doc, &ctx);
    assert_eq!(
        outcome,
        again,
        "{}: mapping is not deterministic",
        dir.display()
    );
    // As the daemon maps (no provenance): everything else is the same.
    let lean = profile.map(
        &doc,
        &MapContext {
            skip_provenance: true,
            ..ctx.clone()
        },
    );
    assert!(lean.provenance.is_empty(), "{}", dir.display());
    assert_eq!(
        gateway_mapping::MapOutcome {
            provenance: outcome.provenance.clone(),
            ..lean
        },
        outcome,
        "{}: skipping provenance changed the outcome",
        dir.display()
    );
    let mut diagnostics = profile.warnings().to_vec();
    diagnostics.extend(outcome.diagnostics.iter().cloned());
    let what = match (&outcome.case, outcome.action) {
        (Some(_), Some(a)) => format!("{} produced", a.as_str()),
        (Some(_), None) => "case without action".to_owned(),
        (None, Some(gateway_mapping::MapAction::Ignore)) => "ignored".to_owned(),
        (None, _) => "no case".to_owned(),
    };
    let file = outcome
        .mapping_file
        .clone()
        .unwrap_or_else(|| "no mapping file".into());
    let txt = if outcome.case.is_none() || !diagnostics.is_empty() {
        let mut t = format!("outcome: {what} ({file})\n");
        if !diagnostics.is_empty() {
            t.push('\n');
            t.push_str(&render_all(&diagnostics));
        }
        Some(t)
    } else {
        None
    };
    Actual {
        json: outcome
            .case
            .as_ref()
            .map(|c| serde_json::to_string_pretty(c).expect("case serializes") + "\n"),
        txt,
        explain: want_explain.then(|| render_explain(&outcome)),
    }
}

fn compare(path: &Path, actual: Option<&String>, bless: bool, failures: &mut Vec<String>) {
    let expected = std::fs::read_to_string(path).ok();
    if bless {
        match actual {
            Some(a) => std::fs::write(path, a).expect("write expectation"),
            None => {
                let _ = std::fs::remove_file(path);
            }
        }
        return;
    }
    if expected.as_ref() != actual {
        failures.push(format!(
            "{}\n--- expected\n{}\n--- actual\n{}",
            path.display(),
            expected.as_deref().unwrap_or("<no file>"),
            actual.map_or("<nothing>", String::as_str)
        ));
    }
}

#[test]
fn mapping_cases() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let bless = std::env::var_os("BLESS").is_some();
    assert!(
        !bless || std::env::var_os("CI").is_none(),
        "BLESS is refused when CI is set: re-bless locally and review the diff"
    );
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/cases exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 20,
        "expected at least 20 cases, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let actual = run_case(dir);
        if actual.json.is_none() && actual.txt.is_none() {
            failures.push(format!(
                "{}: produced neither a case nor diagnostics",
                dir.display()
            ));
        }
        compare(
            &dir.join("expected.json"),
            actual.json.as_ref(),
            bless,
            &mut failures,
        );
        compare(
            &dir.join("expected.txt"),
            actual.txt.as_ref(),
            bless,
            &mut failures,
        );
        if actual.explain.is_some() {
            compare(
                &dir.join("expected.explain.txt"),
                actual.explain.as_ref(),
                bless,
                &mut failures,
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ (BLESS=1 rewrites):\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

/// The worked example in `mappings/README.md` is this test case, verbatim.
#[test]
fn readme_worked_example_is_the_test_case() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(crate_dir.join("../../mappings/README.md"))
        .expect("mappings/README.md exists");
    let case = crate_dir.join("tests/cases/readme_worked_example");
    let block_after = |marker: &str| -> String {
        let at = readme
            .find(marker)
            .unwrap_or_else(|| panic!("README has no `{marker}`"));
        let rest = &readme[at..];
        let open = rest.find("```").expect("a code block follows");
        let body_start = open + rest[open..].find('\n').expect("fence line ends") + 1;
        let body_len = rest[body_start..].find("```").expect("code block closes");
        rest[body_start..body_start + body_len].to_owned()
    };
    let file = |name: &str| std::fs::read_to_string(case.join(name)).expect("case file");
    assert_eq!(block_after("The input, `order.json`"), file("input.json"));
    assert_eq!(
        block_after("`mappings/demo/profile.toml`:"),
        file("profile/profile.toml")
    );
    assert_eq!(
        block_after("`mappings/demo/orders.toml`:"),
        file("profile/orders.toml")
    );
    assert_eq!(block_after("prints the case:"), file("expected.json"));
}

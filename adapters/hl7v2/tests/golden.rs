//! Golden tests: every sample in `sample-messages/hl7v2/<profile>/` mapped with
//! `mappings/<profile>` must give exactly `tests/golden/<profile>/<sample>.json`
//! (one entry per message: the Case JSON, or what happened instead).
//! `BLESS=1 cargo test -p gateway-hl7v2 --test golden` re-writes the expectations.

use std::path::{Path, PathBuf};

use gateway_core::SourceFormat;
use gateway_core::path::PathSyntax;
use gateway_hl7v2::parse::parse_input;
use gateway_hl7v2::path::Hl7PathSyntax;
use gateway_mapping::{MapContext, Profile, SyntaxProvider, render_all};
use serde_json::{Value, json};

struct Syntaxes;

impl SyntaxProvider for Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        match format {
            SourceFormat::Hl7v2 => Some(&Hl7PathSyntax),
            _ => None,
        }
    }
}

const PROFILES: &[&str] = &[
    "hl7v2-base",
    "epic",
    "ecw-onprem",
    "nextgen-enterprise",
    "meditech",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(profile: &str) -> Profile {
    let dir = root().join("mappings").join(profile);
    match Profile::load(&dir, &Syntaxes) {
        Ok(p) => p,
        Err(e) => panic!(
            "profile {profile} does not load:\n{}",
            render_all(&e.diagnostics)
        ),
    }
}

#[test]
fn every_profile_lints_clean() {
    for profile in PROFILES {
        let p = load(profile);
        assert!(
            p.warnings().is_empty(),
            "{profile}:\n{}",
            render_all(p.warnings())
        );
    }
}

/// Maps one sample file: one JSON entry per message in it.
fn map_file(profile: &Profile, bytes: &[u8]) -> Value {
    let input = parse_input(bytes);
    let mut out = Vec::new();
    for m in &input.messages {
        let entry = match &m.result {
            Err(diags) => {
                json!({ "unparseable": diags.iter().map(|d| d.code.clone()).collect::<Vec<_>>() })
            }
            Ok(doc) => {
                let parse_errors: Vec<_> = doc
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| d.code.clone())
                    .collect();
                let mut ctx = MapContext::new("2026-11-22T10:00:00Z");
                ctx.adapter = Some("hl7v2".into());
                let outcome = profile.map(doc, &ctx);
                let mut e = match (&outcome.case, outcome.action) {
                    (Some(case), action) => {
                        let mut v = json!({ "case": case });
                        if let Some(a) = action.filter(|a| a.as_str() != "case") {
                            v["action"] = json!(a.as_str());
                        }
                        v
                    }
                    (None, Some(a)) if a.as_str() == "ignore" => json!({ "action": "ignore" }),
                    (None, _) => {
                        json!({ "unmapped": outcome.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.code.as_str().to_owned()).collect::<Vec<_>>() })
                    }
                };
                let warnings: Vec<String> = outcome
                    .diagnostics
                    .iter()
                    .filter(|d| !d.is_error())
                    .map(|d| d.code.as_str().to_owned())
                    .chain(
                        doc.diagnostics
                            .iter()
                            .filter(|d| !d.is_error())
                            .map(|d| d.code.clone()),
                    )
                    .collect();
                if !warnings.is_empty() {
                    e["warnings"] = json!(warnings);
                }
                if !parse_errors.is_empty() {
                    e["parse_errors"] = json!(parse_errors);
                }
                e
            }
        };
        out.push(entry);
    }
    if !input.diagnostics.is_empty() {
        out.push(json!({ "input_diagnostics": input.diagnostics.iter().map(|d| d.code.clone()).collect::<Vec<_>>() }));
    }
    Value::Array(out)
}

#[test]
fn samples_map_to_their_golden_cases() {
    let bless = std::env::var_os("BLESS").is_some();
    assert!(
        !bless || std::env::var_os("CI").is_none(),
        "BLESS is refused when CI is set: re-bless locally and review the diff"
    );
    let mut failures = Vec::new();
    let mut count = 0;
    for profile_name in PROFILES {
        let profile = load(profile_name);
        let dir = root().join("sample-messages/hl7v2").join(profile_name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "hl7"))
            .collect();
        files.sort();
        assert!(
            files.len() >= 6,
            "{profile_name}: at least 6 samples, found {}",
            files.len()
        );
        for file in files {
            count += 1;
            let bytes = std::fs::read(&file).expect("read sample");
            let actual = map_file(&profile, &bytes);
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("x")
                .to_owned();
            let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(profile_name)
                .join(format!("{stem}.json"));
            let pretty = serde_json::to_string_pretty(&actual).expect("json") + "\n";
            if bless {
                std::fs::create_dir_all(golden.parent().expect("dir")).expect("mkdir");
                std::fs::write(&golden, &pretty).expect("write golden");
                continue;
            }
            match std::fs::read_to_string(&golden) {
                Ok(expected) if expected == pretty => {}
                Ok(expected) => failures.push(format!(
                    "{profile_name}/{stem}: differs\n--- expected\n{expected}\n--- actual\n{pretty}"
                )),
                Err(_) => failures.push(format!(
                    "{profile_name}/{stem}: no golden file {} (run with BLESS=1)",
                    golden.display()
                )),
            }
        }
    }
    assert!(count >= 30, "expected at least 30 samples, found {count}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

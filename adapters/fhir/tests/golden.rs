//! Golden mapping tests: every sample bundle under
//! `sample-messages/fhir/<profile>/` mapped through `mappings/<profile>` must
//! give exactly `tests/golden/<profile>/<sample>.json` (the Case, or the
//! diagnostics when the bundle cannot make one). Each profile must lint clean
//! and its vendor file must agree with its mapping on the MRN system.
//! `BLESS=1 cargo test -p gateway-fhir --test golden` re-writes the expectations.

use std::path::{Path, PathBuf};

use gateway_core::SourceFormat;
use gateway_core::path::PathSyntax;
use gateway_fhir::FhirPathSyntax;
use gateway_fhir::profile::VendorProfile;
use gateway_mapping::{MapContext, Profile, SyntaxProvider};

struct Syntaxes;

impl SyntaxProvider for Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        (format == SourceFormat::Fhir).then_some(&FhirPathSyntax as &dyn PathSyntax)
    }
}

const PROFILES: [&str; 4] = ["athenahealth", "nextgen-office", "ecw-cloud", "elation"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn profiles_lint_clean_and_vendor_files_agree() {
    for name in PROFILES {
        let dir = root().join("mappings").join(name);
        let errors: Vec<String> = Profile::lint(&dir, &Syntaxes)
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{d:?}"))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        let vendor = VendorProfile::load(&dir).expect("vendor file");
        let orders = std::fs::read_to_string(dir.join("orders.toml")).expect("orders.toml");
        assert!(
            orders.contains(&vendor.identifiers.mrn_system),
            "{name}: mapping does not use the vendor's MRN system"
        );
    }
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
    for name in PROFILES {
        let profile = Profile::load(&root().join("mappings").join(name), &Syntaxes)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let samples = root().join("sample-messages/fhir").join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&samples)
            .expect("samples")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        assert!(files.len() >= 3, "{name}: at least three samples");
        for file in files {
            count += 1;
            let stem = file
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            let raw = std::fs::read(&file).expect("sample");
            let actual = match gateway_fhir::parse_bundle(&raw) {
                Ok(doc) => {
                    let outcome = profile.map(&doc, &MapContext::new("2026-11-23T10:00:00Z"));
                    match outcome.case {
                        Some(case) => serde_json::to_value(&case).expect("case json"),
                        None => serde_json::json!({"unmappable": outcome.core_diagnostics()}),
                    }
                }
                Err(diagnostics) => serde_json::json!({"rejected": diagnostics}),
            };
            let pretty = serde_json::to_string_pretty(&actual).expect("json") + "\n";
            let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/golden")
                .join(name)
                .join(format!("{stem}.json"));
            if bless {
                std::fs::create_dir_all(golden.parent().expect("dir")).expect("mkdir");
                std::fs::write(&golden, &pretty).expect("write golden");
                continue;
            }
            match std::fs::read_to_string(&golden) {
                Ok(expected) if expected == pretty => {}
                Ok(expected) => failures.push(format!(
                    "{name}/{stem}: differs\n--- expected\n{expected}\n--- actual\n{pretty}"
                )),
                Err(_) => {
                    failures.push(format!("{name}/{stem}: no golden file (run with BLESS=1)"))
                }
            }
        }
    }
    assert!(count >= 13, "expected at least 13 samples, found {count}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! Golden mapping tests: every 278 sample through `mappings/x12-278` must give
//! exactly the checked-in Case JSON in `tests/golden/<sample>.json`.
//! `BLESS=1 cargo test -p gateway-x12 --test golden` rewrites the expectations
//! (review the diff before committing).

mod common;

use gateway_x12::parse_documents;

#[test]
fn samples_map_to_their_golden_cases() {
    let profile = common::profile();
    let bless = std::env::var_os("BLESS").is_some();
    assert!(
        !(bless && std::env::var_os("CI").is_some()),
        "BLESS is refused when CI is set: re-bless locally and review the diff"
    );
    let golden_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut failures = Vec::new();
    let mut checked = 0;
    for name in common::sample_names() {
        let bytes = common::sample(&name);
        let docs = parse_documents(&bytes).expect("sample parses");
        if docs[0].meta.message_type.as_deref() != Some("278") {
            continue;
        }
        let mut cases = Vec::new();
        for doc in &docs {
            assert!(doc.is_clean(), "{name}: {:?}", doc.diagnostics);
            let outcome = profile.map(doc, &common::context());
            let errors: Vec<_> = outcome
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
            let warnings: Vec<String> = outcome.diagnostics.iter().map(|d| d.to_string()).collect();
            assert!(
                warnings.is_empty(),
                "{name}: unexpected warnings {warnings:#?}"
            );
            cases.push(serde_json::to_value(outcome.case.expect("case")).expect("json"));
        }
        let actual = if cases.len() == 1 {
            cases.remove(0)
        } else {
            serde_json::Value::Array(cases)
        };
        let path = golden_dir.join(name.replace(".x12", ".json"));
        let rendered = serde_json::to_string_pretty(&actual).expect("json") + "\n";
        checked += 1;
        if bless {
            std::fs::create_dir_all(&golden_dir).expect("golden dir");
            std::fs::write(&path, rendered).expect("write golden");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == rendered => {}
            Ok(expected) => failures.push(format!(
                "{name}: differs from {}\n--- expected\n{expected}\n--- actual\n{rendered}",
                path.display()
            )),
            Err(_) => failures.push(format!(
                "{name}: no golden file {} (run with BLESS=1)",
                path.display()
            )),
        }
    }
    assert!(checked >= 12, "only {checked} samples checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

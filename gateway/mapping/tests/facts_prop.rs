//! The engine's fact checks hold for any profile, not only the shipped ones:
//! whatever a rule maps into `providers[].npi` or labels as CPT, the case
//! never carries an NPI failing the Luhn check over `80840`, nor a
//! CPT-labelled code without the CPT shape; the id is not lost (it becomes a
//! `local` identifier of the provider) and each correction is warning M030,
//! with or without the per-field provenance.

use gateway_core::case::CodeSystem;
use gateway_core::facts::{has_cpt_shape, npi_is_valid};
use gateway_mapping::{Code, DefaultSyntaxes, MapContext, Profile, json_document};
use proptest::prelude::*;
use serde_json::json;

fn profile() -> (tempfile::TempDir, Profile) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("any");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        dir.join("profile.toml"),
        "name = \"any\"\nformat = \"json\"\n[defaults]\ntenant = \"mso-demo\"\n",
    )
    .expect("profile");
    // Deliberately careless rules: every id is mapped as an NPI, every code as CPT.
    std::fs::write(
        dir.join("orders.toml"),
        r#"[case_id]
key = ["id"]
[foreach]
providers = "ids[*]"
services = "codes[*]"
[fields]
status = { const = "requested" }
"providers[].role" = { const = "ordering" }
"providers[].npi" = "id"
"services[].code.code" = "code"
"services[].code.system" = { const = "CPT" }
"#,
    )
    .expect("orders");
    let profile = Profile::load(&dir, &DefaultSyntaxes).expect("loads");
    (tmp, profile)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_case_carries_an_invalid_npi_or_a_false_cpt(
        ids in proptest::collection::vec("[0-9]{10}|[0-9]{1,12}|[A-Za-z0-9 .-]{1,12}", 1..4),
        codes in proptest::collection::vec("[0-9]{5}|[0-9]{4}[A-Z0-9]|[A-Z0-9.-]{1,8}", 1..4),
    ) {
        let (_tmp, profile) = profile();
        let doc = json_document(&json!({
            "_meta": {"message_type": "ORDER"},
            "id": "P1",
            "ids": ids.iter().map(|i| json!({"id": i})).collect::<Vec<_>>(),
            "codes": codes.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
        }));
        let outcome = profile.map(&doc, &MapContext::new("2026-11-22T10:00:00Z"));
        let case = outcome.case.expect("a case");
        let mut corrections = 0;
        for (p, id) in case.providers.iter().zip(ids.iter().filter(|i| !i.trim().is_empty())) {
            let id = id.trim();
            match &p.npi {
                Some(npi) => prop_assert!(npi_is_valid(npi) && npi == id, "{npi:?} from {id:?}"),
                None => {
                    prop_assert!(!npi_is_valid(id));
                    prop_assert!(p.identifiers.iter().any(|i| i.value == id && i.kind.as_deref() == Some("local")));
                    corrections += 1;
                }
            }
        }
        for s in &case.services {
            if s.code.system == CodeSystem::Cpt {
                prop_assert!(has_cpt_shape(&s.code.code), "{:?}", s.code);
            } else {
                corrections += 1;
            }
        }
        let warned = outcome.diagnostics.iter().filter(|d| d.code == Code::FactCheck).count();
        prop_assert_eq!(warned, corrections);

        // As the daemon maps, without provenance: the same case and the
        // same diagnostics, each M030 still at its rule and source bytes.
        let lean = profile.map(&doc, &MapContext {
            skip_provenance: true,
            ..MapContext::new("2026-11-22T10:00:00Z")
        });
        prop_assert!(lean.provenance.is_empty());
        prop_assert_eq!(lean.case.as_ref(), Some(&case));
        prop_assert_eq!(&lean.diagnostics, &outcome.diagnostics);
    }
}

//! The checked-in Case v1 schema must match the model. `BLESS=1` rewrites it.

use gateway_core::schema::{CASE_SCHEMA_FILE, case_schema_json};

#[test]
fn checked_in_schema_matches_the_model() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(CASE_SCHEMA_FILE);
    let generated = case_schema_json();
    if std::env::var_os("BLESS").is_some() {
        assert!(
            std::env::var_os("CI").is_none(),
            "BLESS is refused when CI is set: re-bless locally and review the diff"
        );
        std::fs::write(&path, &generated).expect("write schema");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "{} is out of date with the Case model; run `BLESS=1 cargo test -p gateway-core` and review the diff",
        path.display()
    );
}

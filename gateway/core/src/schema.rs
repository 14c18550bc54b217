//! The JSON Schema of Case v1, generated from the Rust model.
//!
//! The generated schema is checked in at `gateway/core/schema/case.v1.json` so
//! the central platform can validate without our code; a test fails when the
//! model and the checked-in file drift (re-bless with `BLESS=1`).

use crate::case::Case;

/// Path of the checked-in schema, relative to this crate's root.
pub const CASE_SCHEMA_FILE: &str = "schema/case.v1.json";

/// The schema of [`Case`] as pretty-printed JSON with a trailing newline.
pub fn case_schema_json() -> String {
    let schema = schemars::schema_for!(Case);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_else(|e| {
        // Serializing a schemars Schema cannot fail; keep a readable marker if it ever does.
        format!("{{\"error\": \"{e}\"}}")
    });
    text.push('\n');
    text
}

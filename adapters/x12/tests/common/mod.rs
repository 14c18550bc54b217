//! Shared helpers for the integration tests: sample files, the profile, fixed stamps.
#![allow(dead_code)]

use std::path::PathBuf;

use gateway_core::SourceFormat;
use gateway_core::path::PathSyntax;
use gateway_mapping::{MapContext, Profile, SyntaxProvider};
use gateway_x12::X12PathSyntax;
use gateway_x12::write::Stamp;

/// The X12 path syntax for the mapping engine.
pub struct X12Syntaxes;

impl SyntaxProvider for X12Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        match format {
            SourceFormat::X12 => Some(&X12PathSyntax),
            _ => None,
        }
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `sample-messages/x12/x12-278`.
pub fn samples_dir() -> PathBuf {
    repo().join("sample-messages/x12/x12-278")
}

/// Reads one sample.
pub fn sample(name: &str) -> Vec<u8> {
    std::fs::read(samples_dir().join(name)).expect("sample exists")
}

/// Every sample file name, sorted.
pub fn sample_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(samples_dir())
        .expect("samples dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".x12"))
        .collect();
    names.sort();
    names
}

/// The `mappings/x12-278` profile.
pub fn profile() -> Profile {
    Profile::load(&repo().join("mappings/x12-278"), &X12Syntaxes)
        .unwrap_or_else(|e| panic!("profile loads: {e}"))
}

/// A fixed map context.
pub fn context() -> MapContext {
    MapContext::new("2026-11-24T10:00:00Z")
}

/// A fixed stamp for generated interchanges.
pub fn stamp() -> Stamp {
    Stamp {
        at: jiff::civil::date(2026, 11, 24).at(11, 0, 0, 0),
    }
}

pub mod pipeline;

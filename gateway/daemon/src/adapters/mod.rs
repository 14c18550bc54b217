//! Adapter wiring: how `run` and `demo` start each adapter the daemon hosts.
//!
//! Each adapter has one file here (`hl7v2.rs`, `fhir.rs`, `x12.rs`,
//! `desktop.rs`, written by that adapter's owner) holding its config section type
//! and a unit struct implementing [`Adapter`]. Registering an adapter is:
//! a `pub mod <name>;` line and an entry in [`all`] here, plus one field on
//! `crate::settings::Settings` for its section.

use std::path::Path;

use crate::settings::{Problem, Settings};

/// An adapter the daemon can host.
pub trait Adapter: Sync {
    /// The adapter name (`hl7v2`, …), as used in metrics and case sources.
    fn name(&self) -> &'static str;

    /// Semantic checks of the adapter's section beyond what serde checks
    /// (ports, referenced profiles, files), pushing one [`Problem`] per finding.
    fn check(&self, settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>);
}

/// Every adapter wired into this build, in start order.
pub fn all() -> Vec<&'static dyn Adapter> {
    Vec::new()
}

/// Runs every adapter's [`Adapter::check`].
pub fn check_all(settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>) {
    for adapter in all() {
        adapter.check(settings, config_file, problems);
    }
}

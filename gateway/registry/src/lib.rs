//! gateway-registry: the one list of what this build hosts — the input
//! formats ([`formats::FORMATS`]) and the adapters ([`ADAPTERS`]) with what
//! the rest of the system needs to know about each: its config section, the
//! formats it brings, the transports its endpoints use, its metrics label.
//!
//! *Why a crate*: the daemon (intake, `inspect`, `map`, `lint`, the admin
//! API, metrics) and the conformance runner (profile loading) read the same
//! table, so a format or adapter is declared once. Each adapter crate
//! implements [`seam::Adapter`] (config section type, start-up, secret
//! files) and declares its own [`AdapterSpec`] (`gateway_hl7v2::SPEC`); this
//! crate lists them. The seam lives in its own crate below the adapters
//! (`gateway-seam`, re-exported here as [`seam`]) because this crate
//! depends on every adapter crate.
//!
//! A missing declaration is caught twice: the entries are plain struct
//! literals without defaults (a missing field does not compile), and
//! [`check`] — run at daemon start and in this crate's tests — refuses a
//! format without exactly one [`formats::FormatSpec`], a format no adapter
//! (nor core) brings, or two adapters of one name.

pub mod formats;

use gateway_core::SourceFormat;
use gateway_core::adapter::name;

pub use formats::{FORMATS, FormatSpec, Syntaxes};
/// The seam every adapter implements (re-exported so the daemon and the
/// conformance runner name one crate): see [`gateway_seam`].
pub use gateway_seam as seam;
pub use gateway_seam::{AdapterSpec, Transport};

/// The HL7 v2 adapter (MLLP): declared by its crate.
pub const HL7V2: AdapterSpec = gateway_hl7v2::SPEC;

/// The FHIR R4 adapter (polling, rest-hook subscriptions): declared by its crate.
pub const FHIR: AdapterSpec = gateway_fhir::SPEC;

/// The desktop UI-automation adapter: declared by its crate.
pub const DESKTOP: AdapterSpec = gateway_desktop::SPEC;

/// The X12 278 adapter (file drop, CORE SOAP).
pub const X12: AdapterSpec = AdapterSpec {
    name: name::X12,
    section: "x12",
    metrics_label: name::X12,
    formats: &[SourceFormat::X12],
    transports: &[Transport::FileDrop, Transport::Soap, Transport::WriteBack],
    acknowledges: true,
};

/// The Da Vinci PAS server (`Claim/$submit`, `$inquire`, subscriptions):
/// declared by its crate.
pub const DAVINCI_PAS: AdapterSpec = gateway_davinci_pas::SPEC;

/// **The list of adapters** of this build, in start order.
pub static ADAPTERS: &[AdapterSpec] = &[HL7V2, FHIR, DESKTOP, X12, DAVINCI_PAS];

/// The adapter named `name`.
pub fn adapter(name: &str) -> Option<&'static AdapterSpec> {
    ADAPTERS.iter().find(|a| a.name == name)
}

/// The names of every adapter, in start order.
pub fn adapter_names() -> Vec<&'static str> {
    ADAPTERS.iter().map(|a| a.name).collect()
}

/// Checks that `formats` and `adapters` agree: every [`SourceFormat`] has
/// exactly one format entry; each format entry names an adapter that lists it
/// (or none, for core's JSON); every format an adapter lists has an entry;
/// adapter names are unique and every adapter declares a transport. Returns
/// every problem found.
pub fn check(formats: &[FormatSpec], adapters: &[AdapterSpec]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for format in SourceFormat::ALL {
        let entries = formats.iter().filter(|s| s.format == format).count();
        if entries != 1 {
            problems.push(format!(
                "format {} has {entries} entries in the format registry (needs exactly one)",
                format.as_str()
            ));
        }
    }
    for spec in formats {
        if let Some(name) = spec.adapter {
            match adapters.iter().find(|a| a.name == name) {
                None => problems.push(format!(
                    "format {} names adapter {name}, which is not registered",
                    spec.format.as_str()
                )),
                Some(a) if !a.formats.contains(&spec.format) => problems.push(format!(
                    "format {} names adapter {name}, which does not declare it",
                    spec.format.as_str()
                )),
                Some(_) => {}
            }
        }
    }
    for (i, adapter) in adapters.iter().enumerate() {
        if adapters[..i].iter().any(|a| a.name == adapter.name) {
            problems.push(format!("adapter {} is registered twice", adapter.name));
        }
        if adapter.transports.is_empty() {
            problems.push(format!("adapter {} declares no transport", adapter.name));
        }
        for format in adapter.formats {
            if !formats
                .iter()
                .any(|s| s.format == *format && s.adapter == Some(adapter.name))
            {
                problems.push(format!(
                    "adapter {} declares format {} without a format entry of its own",
                    adapter.name,
                    format.as_str()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_of_this_build_is_complete() {
        assert_eq!(check(FORMATS, ADAPTERS), Ok(()));
        assert_eq!(
            formats::format_names(),
            ["hl7v2", "x12", "davinci-pas", "fhir", "desktop", "json"]
        );
        assert_eq!(
            adapter_names(),
            ["hl7v2", "fhir", "desktop", "x12", "davinci-pas"]
        );
    }

    #[test]
    fn a_missing_format_entry_or_declaration_is_refused() {
        let without_x12: Vec<FormatSpec> = FORMATS
            .iter()
            .filter(|s| s.format != SourceFormat::X12)
            .copied()
            .collect();
        let problems = check(&without_x12, ADAPTERS).expect_err("x12 missing");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("format x12 has 0 entries")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("adapter x12 declares format x12")),
            "{problems:?}"
        );

        let mut undeclared = X12;
        undeclared.formats = &[];
        let adapters = [HL7V2, FHIR, DESKTOP, undeclared, DAVINCI_PAS];
        let problems = check(FORMATS, &adapters).expect_err("x12 undeclared");
        assert_eq!(
            problems,
            ["format x12 names adapter x12, which does not declare it"]
        );

        let mut silent = FHIR;
        silent.transports = &[];
        let problems =
            check(FORMATS, &[HL7V2, silent, DESKTOP, X12, X12, DAVINCI_PAS]).expect_err("bad");
        assert!(problems.contains(&"adapter fhir declares no transport".to_owned()));
        assert!(problems.contains(&"adapter x12 is registered twice".to_owned()));
    }
}

//! gateway-registry: the one list of what this build hosts — the input
//! formats ([`formats::FORMATS`]) and the adapters ([`ADAPTERS`]) with what
//! the rest of the system needs to know about each: its config section, the
//! formats it brings, the transports its endpoints use, its metrics label.
//!
//! *Why a crate*: the daemon (intake, `inspect`, `map`, `lint`, the admin
//! API, metrics) and the conformance runner (profile loading) read the same
//! table, so a format or adapter is declared once. The daemon's wiring of an
//! adapter (its config section type, start-up, secret files) implements
//! `ehr_gateway`'s `Adapter` trait, whose `spec` names the entry here.
//!
//! A missing declaration is caught twice: the entries are plain struct
//! literals without defaults (a missing field does not compile), and
//! [`check`] — run at daemon start and in this crate's tests — refuses a
//! format without exactly one [`formats::FormatSpec`], a format no adapter
//! (nor core) brings, or two adapters of one name.

pub mod formats;

use std::fmt;

use gateway_core::SourceFormat;
use gateway_core::adapter::name;

pub use formats::{FORMATS, FormatSpec, Syntaxes};

/// How an adapter endpoint talks to its peer (`GET /api/v1/adapters`'s
/// `transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// An MLLP listener (HL7 v2).
    Mllp,
    /// A CORE SOAP server (X12).
    Soap,
    /// A FHIR subscription rest-hook receiver.
    RestHook,
    /// A poller of a remote API.
    Poll,
    /// A watched directory.
    FileDrop,
    /// Decisions written back into the EHR.
    WriteBack,
    /// Screens of a desktop application.
    Ui,
}

impl Transport {
    /// Every transport.
    pub const ALL: [Transport; 7] = [
        Transport::Mllp,
        Transport::Soap,
        Transport::RestHook,
        Transport::Poll,
        Transport::FileDrop,
        Transport::WriteBack,
        Transport::Ui,
    ];

    /// The name the admin API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Mllp => "mllp",
            Transport::Soap => "soap",
            Transport::RestHook => "rest-hook",
            Transport::Poll => "poll",
            Transport::FileDrop => "file-drop",
            Transport::WriteBack => "write-back",
            Transport::Ui => "ui",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rest of the system needs to know about one adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdapterSpec {
    /// The adapter name (`hl7v2`, …): case sources, logs, `--version`.
    pub name: &'static str,
    /// Its top-level config section (`[hl7v2]`).
    pub section: &'static str,
    /// The `adapter` label of its metrics.
    pub metrics_label: &'static str,
    /// The formats it brings (each has a [`formats::FormatSpec`]).
    pub formats: &'static [SourceFormat],
    /// The transports its endpoints may use; an endpoint with another one is
    /// refused at start.
    pub transports: &'static [Transport],
    /// Whether it acknowledges what it receives (MLLP ACK; X12 999/TA1): it
    /// then has an `ehr_gateway_ack_latency_seconds` series.
    pub acknowledges: bool,
}

/// The HL7 v2 adapter (MLLP).
pub const HL7V2: AdapterSpec = AdapterSpec {
    name: gateway_hl7v2::mllp::metrics::ADAPTER,
    section: "hl7v2",
    metrics_label: gateway_hl7v2::mllp::metrics::ADAPTER,
    formats: &[SourceFormat::Hl7v2],
    transports: &[Transport::Mllp, Transport::WriteBack],
    acknowledges: true,
};

/// The FHIR R4 adapter (polling, rest-hook subscriptions).
pub const FHIR: AdapterSpec = AdapterSpec {
    name: gateway_fhir::poll::ADAPTER,
    section: "fhir",
    metrics_label: gateway_fhir::poll::ADAPTER,
    formats: &[SourceFormat::Fhir],
    transports: &[Transport::Poll, Transport::RestHook, Transport::WriteBack],
    acknowledges: false,
};

/// The desktop UI-automation adapter.
pub const DESKTOP: AdapterSpec = AdapterSpec {
    name: gateway_desktop::ADAPTER,
    section: "desktop",
    metrics_label: gateway_desktop::ADAPTER,
    formats: &[SourceFormat::Desktop],
    transports: &[Transport::Ui, Transport::WriteBack],
    acknowledges: false,
};

/// The X12 278 adapter (file drop, CORE SOAP).
pub const X12: AdapterSpec = AdapterSpec {
    name: name::X12,
    section: "x12",
    metrics_label: name::X12,
    formats: &[SourceFormat::X12],
    transports: &[Transport::FileDrop, Transport::Soap, Transport::WriteBack],
    acknowledges: true,
};

/// **The list of adapters** of this build, in start order.
pub static ADAPTERS: &[AdapterSpec] = &[HL7V2, FHIR, DESKTOP, X12];

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
            ["hl7v2", "x12", "fhir", "desktop", "json"]
        );
        assert_eq!(adapter_names(), ["hl7v2", "fhir", "desktop", "x12"]);
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
        let adapters = [HL7V2, FHIR, DESKTOP, undeclared];
        let problems = check(FORMATS, &adapters).expect_err("x12 undeclared");
        assert_eq!(
            problems,
            ["format x12 names adapter x12, which does not declare it"]
        );

        let mut silent = FHIR;
        silent.transports = &[];
        let problems = check(FORMATS, &[HL7V2, silent, DESKTOP, X12, X12]).expect_err("bad");
        assert!(problems.contains(&"adapter fhir declares no transport".to_owned()));
        assert!(problems.contains(&"adapter x12 is registered twice".to_owned()));
    }

    #[test]
    fn transports_have_distinct_names() {
        let mut names: Vec<&str> = Transport::ALL.iter().map(|t| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Transport::ALL.len());
    }
}

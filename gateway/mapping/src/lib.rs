//! gateway-mapping: loads, checks and evaluates mapping profiles.
//!
//! Onboarding an EHR means writing data, not code: a profile folder holds
//! `profile.toml` (name, format, time zone, tenant defaults, code tables, an
//! optional base profile it `extends`) and one TOML mapping file per message
//! kind (which documents it handles, and for each Case v1 field: source path
//! plus transforms). The file format is documented for integration engineers in
//! `mappings/README.md`.
//!
//! * [`Profile::load`] reads and checks a profile **completely** before use:
//!   unknown keys, unknown transforms and tables, paths that do not parse in the
//!   format's [`PathSyntax`], case fields that do not exist, invalid constants —
//!   every problem is reported at once, as a [`MapDiagnostic`] with file, line,
//!   column, rule and a caret under the offending text.
//! * [`Profile::map`] evaluates a [`SourceDocument`] into a [`MapOutcome`]: the
//!   case (or none), the action, every diagnostic and the provenance of every
//!   output field. It never panics and never fails outright.
//!
//! The crate is pure: it reads profile files and nothing else, has no clock
//! and no randomness — the receive time, tenant overrides and the like come in
//! through [`MapContext`]. It knows no format: paths are compiled by the
//! [`PathSyntax`] the caller's [`SyntaxProvider`] returns for the profile's
//! format (the JSON syntax from gateway-core is built in, see
//! [`DefaultSyntaxes`]).
//!
//! Tests: `tests/cases/` holds data-driven cases (input, profile, expected
//! case or rendered diagnostics; `BLESS=1` rewrites them), `tests/prop.rs`
//! random profiles over random trees. Throughput:
//! `cargo run --release -p gateway-mapping --bin mapping-bench` (cases/s for a
//! 1.5 KB order with ~45 rules, as ratios to building the tree and to raw path
//! evaluation in the same run).

mod built;
mod diag;
mod eval;
mod explain;
mod json;
mod load;
mod model;
pub mod schema;
mod transform;
mod walk;

use std::path::Path;
use std::sync::Arc;

use gateway_core::json_tree::JsonPathSyntax;
use gateway_core::path::PathSyntax;
use gateway_core::{Case, SourceDocument, SourceFormat, Span};

use crate::diag::Code as DiagCode;

pub use diag::{Code, MapDiagnostic, Snippet, render_all};
pub use explain::render_explain;
pub use json::json_document;
pub use model::Profile;

/// The HL7 v2 message kinds every HL7 profile must give a fate (open,
/// update, cancel, or ignore with AA); `lint` warns (M031) on each one no
/// mapping file matches.
pub const COMMON_HL7V2_KINDS: &[&str] = &[
    "ORM^O01", "OMG^O19", "REF^I12", "SIU^S12", "SIU^S13", "SIU^S14", "SIU^S15", "SIU^S17",
    "ADT^A01", "ADT^A02", "ADT^A03", "ADT^A04", "ADT^A08", "ADT^A14", "ADT^A28", "ADT^A31",
    "ORU^R01", "DFT^P03", "BAR^P01", "MDM^T02", "VXU^V04", "RDE^O11", "MFN^M02",
];

/// Gives the engine the path syntax of a format.
///
/// The daemon's registry implements it with every adapter's syntax (HL7, X12,
/// FHIR, desktop); tests and docs use [`DefaultSyntaxes`].
pub trait SyntaxProvider {
    /// The path syntax for `format`, or `None` when no adapter provides one.
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax>;
}

/// The syntaxes available without any adapter: the JSON path syntax of
/// gateway-core for the `json` format.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultSyntaxes;

impl SyntaxProvider for DefaultSyntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        match format {
            SourceFormat::Json => Some(&JsonPathSyntax),
            _ => None,
        }
    }
}

/// A profile that could not be loaded, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping profile has {} error(s):\n{}", self.error_count(), render_all(&self.diagnostics))]
pub struct LoadError {
    /// All findings (errors and warnings), in file order.
    pub diagnostics: Vec<MapDiagnostic>,
}

impl LoadError {
    /// Number of error-severity findings.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// What the caller knows about one document that the document itself does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapContext {
    /// When the gateway received the document, RFC 3339 with offset
    /// (becomes `source.received_at`).
    pub received_at: String,
    /// Adapter name for `source.adapter`; defaults to the profile's format.
    pub adapter: Option<String>,
    /// Overrides the profile's default tenant (the daemon's configured tenant).
    pub tenant: Option<String>,
    /// Overrides the profile's default practice.
    pub practice: Option<String>,
    /// Overrides the profile's default site.
    pub site: Option<String>,
    /// Record raw source values and intermediate results in the provenance
    /// (for `map --explain`, a local tool). Off in the daemon: provenance then
    /// carries positions and rule names only, never values.
    pub explain: bool,
    /// Leave [`MapOutcome::provenance`] empty: for a caller that never reads
    /// it (the daemon's intake), building a record per case field was a
    /// tenth of a map's work. Diagnostics keep pointing at their rule: when
    /// a fact check (M030) needs the provenance, the document is mapped
    /// again with it. With this set, `explain` records nothing.
    pub skip_provenance: bool,
}

impl MapContext {
    /// A context with only the receive time set.
    pub fn new(received_at: impl Into<String>) -> Self {
        MapContext {
            received_at: received_at.into(),
            ..MapContext::default()
        }
    }
}

/// What a mapping file tells the pipeline to do with a matching document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapAction {
    /// Create the case, or update it when the case id already exists.
    Case,
    /// Update the patient (and coverages) of every open case of the same
    /// patient; the outcome's case carries the new patient data, its
    /// `case_id` is derived from the file's key rule.
    PatientUpdate,
    /// Acknowledge and keep the document but produce nothing.
    Ignore,
}

impl MapAction {
    /// The name used in mapping files: `case`, `patient_update`, `ignore`.
    pub fn as_str(self) -> &'static str {
        match self {
            MapAction::Case => "case",
            MapAction::PatientUpdate => "patient_update",
            MapAction::Ignore => "ignore",
        }
    }
}

/// The result of mapping one document.
#[derive(Debug, Clone, PartialEq)]
pub struct MapOutcome {
    /// The mapping file that matched (`orders.toml`), if any.
    pub mapping_file: Option<String>,
    /// The matched file's action; `None` when no file matched.
    pub action: Option<MapAction>,
    /// The case, when the action produces one and no error prevented it.
    /// Always valid Case v1.
    pub case: Option<Case>,
    /// Everything found, errors and warnings.
    pub diagnostics: Vec<MapDiagnostic>,
    /// Where each output field came from, in output order.
    pub provenance: Vec<Provenance>,
    /// `references` entries that a case already stored under the same id
    /// must share with this one (the matched file's `[case_id] agree`): a
    /// document whose value differs is about another case and must not be
    /// merged into it. Checked by the caller that holds the store; a stored
    /// case that lacks one of these references does not agree either.
    pub agree: Vec<String>,
    /// True when the case id is one of ours echoed back by the document
    /// (`[case_id] own`): the document claims to answer a request this
    /// gateway sent. Knowing a case id must give no power over the case, so
    /// the caller that holds the store accepts such a document only when its
    /// `agree` references match a request the gateway knows (one it received
    /// or one it wrote and recorded), and rejects it otherwise.
    pub adopted: bool,
}

impl MapOutcome {
    /// True when the document was handled: a case was produced, or the
    /// matching file says to ignore it. False means "unmappable": the
    /// diagnostics say why.
    pub fn is_mapped(&self) -> bool {
        match self.action {
            Some(MapAction::Ignore) => true,
            Some(_) => self.case.is_some(),
            None => false,
        }
    }

    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(MapDiagnostic::is_error)
    }

    /// The diagnostics as gateway-wide [`gateway_core::Diagnostic`]s.
    pub fn core_diagnostics(&self) -> Vec<gateway_core::Diagnostic> {
        self.diagnostics
            .iter()
            .map(MapDiagnostic::to_core)
            .collect()
    }
}

/// How one output field got its value (invariant 5: every case field can
/// explain itself).
#[derive(Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The concrete case field: `services[0].code.code`, `patient.sex`.
    pub field: String,
    /// The profile file the rule is in (`epic/orders.toml`), or `engine` /
    /// `profile.toml` for values the engine sets (case id, source, defaults).
    pub file: Arc<str>,
    /// 1-based line of the rule in that file (0 when not from a file).
    pub line: usize,
    /// The rule: its field key as written (`services[].code.code`).
    pub rule: Arc<str>,
    /// The source path as written, when the value came from the document.
    pub source_path: Option<Arc<str>>,
    /// The tree location of the source node (`PID/7`, `order/lines[1]/code`);
    /// only with [`MapContext::explain`] (the span is always set when the
    /// tree has spans).
    pub source_location: Option<String>,
    /// Byte span of the source node in the raw document.
    pub source_span: Option<Span>,
    /// Where the value came from when not from a path: `const`, `default`,
    /// `position`, `profile default`, `context`, `meta`.
    pub origin: &'static str,
    /// The transforms applied, in order (`trim`, `table sex`, `date hl7`).
    pub transforms: Arc<[String]>,
    /// The raw source value — only with [`MapContext::explain`]; never logged.
    pub raw: Option<String>,
    /// The output value — only with [`MapContext::explain`]; never logged.
    pub value: Option<String>,
}

impl std::fmt::Debug for Provenance {
    /// Values are redacted so that a stray `{:?}` in a log line cannot leak PHI.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provenance")
            .field("field", &self.field)
            .field("file", &self.file)
            .field("line", &self.line)
            .field("rule", &self.rule)
            .field("source_path", &self.source_path)
            .field("source_location", &self.source_location)
            .field("source_span", &self.source_span)
            .field("origin", &self.origin)
            .field("transforms", &self.transforms)
            .field("raw", &self.raw.as_ref().map(|_| "<redacted>"))
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Profile {
    /// Loads the profile in folder `dir` (its `profile.toml`, its mapping
    /// files and every base profile it extends) and checks all of it. Paths
    /// are compiled with `syntaxes.syntax(format)`.
    ///
    /// Returns the profile (with any warnings in [`Profile::warnings`]) or
    /// every problem found.
    pub fn load(dir: &Path, syntaxes: &dyn SyntaxProvider) -> Result<Profile, LoadError> {
        load::load(dir, syntaxes)
    }

    /// Checks a profile without keeping it: every finding, errors and
    /// warnings (what `ehr-gateway lint` prints).
    pub fn lint(dir: &Path, syntaxes: &dyn SyntaxProvider) -> Vec<MapDiagnostic> {
        match load::load(dir, syntaxes) {
            Ok(profile) => {
                let mut found = profile.warnings.clone();
                found.extend(profile.undefined_common_kinds());
                found
            }
            Err(e) => e.diagnostics,
        }
    }

    /// Warnings M031 for the common message kinds of the profile's format
    /// that no mapping file matches (they would be refused with M020). Only
    /// the `[match] message_type` patterns count (a `when` may still narrow
    /// a file, deliberately); a file without a message-type match covers all.
    pub fn undefined_common_kinds(&self) -> Vec<MapDiagnostic> {
        let common: &[&str] = match self.format {
            SourceFormat::Hl7v2 => COMMON_HL7V2_KINDS,
            _ => &[],
        };
        common
            .iter()
            .filter(|kind| {
                !self.files.iter().any(|f| {
                    let patterns: Vec<&String> = f
                        .matcher
                        .meta
                        .iter()
                        .filter(|(m, _)| *m == model::MetaField::MessageType)
                        .flat_map(|(_, p)| p)
                        .collect();
                    patterns.is_empty() || patterns.iter().any(|p| transform::glob(p, kind))
                })
            })
            .map(|kind| {
                MapDiagnostic::warning(
                    DiagCode::UndefinedKind,
                    format!(
                        "common message kind `{kind}` has no mapping file in profile `{}`: it would be refused (M020, AE)",
                        self.name
                    ),
                )
                .with_rule("match")
                .with_help("handle it in a mapping file, or list it in a file with `action = \"ignore\"` (hl7v2-base's ignore.toml) to acknowledge and keep it")
            })
            .collect()
    }

    /// Maps one document. Never panics; problems are in the outcome's diagnostics.
    pub fn map(&self, document: &SourceDocument, context: &MapContext) -> MapOutcome {
        eval::map(self, document, context)
    }

    /// The profile's name (`epic`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The format the profile maps.
    pub fn format(&self) -> SourceFormat {
        self.format
    }

    /// The IANA time zone used for source times without an offset.
    pub fn time_zone(&self) -> &str {
        &self.time_zone_name
    }

    /// The default tenant from `profile.toml`, if any.
    pub fn default_tenant(&self) -> Option<&str> {
        self.defaults.tenant.as_deref()
    }

    /// The mapping file names in evaluation order (after `extends` merging).
    pub fn mapping_files(&self) -> Vec<&str> {
        self.files.iter().map(|f| f.name.as_str()).collect()
    }

    /// Warnings found while loading.
    pub fn warnings(&self) -> &[MapDiagnostic] {
        &self.warnings
    }
}

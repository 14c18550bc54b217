//! The compiled form of a profile: what loading produces and evaluation walks.
//!
//! Everything that can be checked is checked while building these types
//! (paths compiled, transforms and tables resolved, case fields resolved to
//! [`crate::schema`] kinds), so evaluation has no error paths of its own other
//! than the document's data.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use gateway_core::SourceFormat;
use gateway_core::path::Path;

use crate::MapAction;
use crate::diag::MapDiagnostic;
use crate::schema::Kind;

/// A loaded, checked mapping profile. Build with [`Profile::load`]; evaluate
/// documents with [`Profile::map`].
#[derive(Debug, Clone)]
pub struct Profile {
    pub(crate) name: String,
    pub(crate) format: SourceFormat,
    pub(crate) time_zone: jiff::tz::TimeZone,
    pub(crate) time_zone_name: String,
    pub(crate) defaults: Defaults,
    pub(crate) tables: BTreeMap<String, CodeTable>,
    pub(crate) files: Vec<MappingFile>,
    pub(crate) sources: Vec<SourceText>,
    pub(crate) warnings: Vec<MapDiagnostic>,
}

/// A profile file's text, kept for rendering runtime diagnostics.
#[derive(Debug, Clone)]
pub(crate) struct SourceText {
    /// Shared with every [`crate::Provenance`] that names the file.
    pub display: Arc<str>,
    pub text: String,
}

/// A position in a profile file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    pub file: usize,
    pub span: Range<usize>,
    /// 1-based line of `span.start`.
    pub line: usize,
}

/// Tenant/practice/site defaults from `profile.toml`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Defaults {
    pub tenant: Option<String>,
    pub practice: Option<String>,
    pub site: Option<String>,
}

/// A code table: source code → output value.
#[derive(Debug, Clone, Default)]
pub(crate) struct CodeTable {
    pub entries: BTreeMap<String, (String, Loc)>,
}

/// Which `SourceDocument.meta` field a match or condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaField {
    MessageType,
    Trigger,
    Version,
    Sender,
    ControlId,
}

impl MetaField {
    pub const NAMES: [&'static str; 5] =
        ["message_type", "trigger", "version", "sender", "control_id"];

    pub fn parse(name: &str) -> Option<MetaField> {
        Some(match name {
            "message_type" => MetaField::MessageType,
            "trigger" => MetaField::Trigger,
            "version" => MetaField::Version,
            "sender" => MetaField::Sender,
            "control_id" => MetaField::ControlId,
            _ => return None,
        })
    }
}

/// A `when` condition.
#[derive(Debug, Clone)]
pub(crate) struct Cond {
    pub subject: CondSubject,
    pub test: CondTest,
    /// Evaluate from the document root even inside a `foreach`.
    pub root: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum CondSubject {
    Path(Path),
    Meta(MetaField),
}

#[derive(Debug, Clone)]
pub(crate) enum CondTest {
    /// Equals one of the patterns (`*` wildcard).
    Equals(Vec<String>),
    /// Equals none of the patterns (or is absent).
    NotEquals(Vec<String>),
    /// Has a non-empty value (`true`) or not (`false`).
    Exists(bool),
}

/// What a table transform does with a code that is not in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Drop the value, with a warning (default).
    Warn,
    /// Drop the value silently (a table used as a filter).
    Drop,
    /// Keep the value unchanged.
    Keep,
    /// Drop it and report an error (the case is not produced).
    Error,
}

/// A date or date-time source format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DateFormat {
    /// HL7 DTM: `YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`.
    Hl7,
    /// ISO 8601 / RFC 3339 (`2026-12-01`, `2026-12-01T10:00:00-05:00`).
    Iso,
    /// An strftime-style pattern (`%Y%m%d`, `%m/%d/%Y`).
    Pattern(String),
}

/// One transform of a rule's chain.
#[derive(Debug, Clone)]
pub(crate) enum Transform {
    Trim,
    Upper,
    Lower,
    Icd10,
    /// Drops values equal to an earlier one (the same name in ORC-12 and OBR-16).
    Unique,
    /// `otherwise`: the value a code missing from the table becomes (with a
    /// warning), e.g. `local` for an unknown coding system.
    Table {
        name: String,
        miss: Miss,
        otherwise: Option<String>,
    },
    Date(Vec<DateFormat>),
    DateTime(Vec<DateFormat>),
    Concat(String),
    Split(String),
    Replace {
        from: String,
        to: String,
    },
    Index(i64),
    Prefix(String),
    Suffix(String),
}

/// Where a rule's values come from.
#[derive(Debug, Clone)]
pub(crate) enum ValueSource {
    /// One path (all its non-empty values).
    Path(Path),
    /// Several paths, values collected in order.
    Paths(Vec<Path>),
    /// A constant.
    Const(String),
    /// The 1-based position of the current `foreach` item.
    Position,
    /// Nothing but a `default`.
    Nothing,
}

/// A value rule: source, transforms, default, conditions.
#[derive(Debug, Clone)]
pub(crate) struct ValueRule {
    pub source: ValueSource,
    pub root: bool,
    pub transforms: Vec<Transform>,
    pub default: Option<String>,
    pub when: Vec<Cond>,
    pub required: bool,
    pub loc: Loc,
    /// Descriptions of `transforms`, for provenance (shared by every value
    /// the rule produces).
    pub transform_names: Arc<[String]>,
    /// The text of each source path (`Path` or each of `Paths`), for
    /// provenance.
    pub path_texts: Box<[Arc<str>]>,
}

impl ValueSource {
    /// The text of each path this source reads, as written.
    pub(crate) fn path_texts(&self) -> Box<[Arc<str>]> {
        match self {
            ValueSource::Path(p) => Box::new([Arc::from(p.text.as_str())]),
            ValueSource::Paths(ps) => ps.iter().map(|p| Arc::from(p.text.as_str())).collect(),
            _ => Box::new([]),
        }
    }
}

/// A segment of a resolved case-field target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    /// An object member.
    Key(String),
    /// A fixed list item (`providers[0]`).
    Fixed(usize),
    /// The current item of `foreach` group N (`services[]`).
    Group(usize),
}

/// A field rule: a resolved target plus its value rule.
#[derive(Debug, Clone)]
pub(crate) struct FieldRule {
    /// The field key as written (`services[].code.code`); shared with the
    /// provenance of every value the rule produces.
    pub key: Arc<str>,
    /// Where the key is written (runtime diagnostics point here).
    pub key_loc: Loc,
    pub segs: Vec<Seg>,
    pub kind: Kind,
    /// The foreach group this rule runs in, if any.
    pub group: Option<usize>,
    pub rule: ValueRule,
}

/// A `foreach` group: each node of `path` becomes one item of list `into`.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub name: String,
    /// Segments of the list field (`["services"]`, `["patient","identifiers"]`).
    pub into: Vec<Seg>,
    pub path: Path,
    pub when: Vec<Cond>,
}

/// The `[case_id]` rule: the parts of the source key, and optionally where a
/// reply echoes one of our own case ids.
#[derive(Debug, Clone)]
pub(crate) struct CaseIdRule {
    pub prefix: String,
    pub parts: Vec<ValueRule>,
    /// `own`: a value that, when it has the shape of a case id, is the case id.
    pub own: Option<ValueRule>,
    /// `agree`: `references` names a stored case must share with the document.
    pub agree: Vec<String>,
    pub loc: Loc,
}

/// The `[match]` table.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matcher {
    pub meta: Vec<(MetaField, Vec<String>)>,
    pub when: Vec<Cond>,
}

/// One mapping file, after `extends` merging.
#[derive(Debug, Clone)]
pub(crate) struct MappingFile {
    pub name: String,
    pub action: MapAction,
    pub priority: i64,
    pub matcher: Matcher,
    pub case_id: Option<CaseIdRule>,
    pub groups: Vec<Group>,
    pub rules: Vec<FieldRule>,
}

//! Mapping diagnostics: stable codes, positions in profile files, and a
//! compiler-style rendering with the offending line and a caret.
//!
//! Integration engineers read these in a terminal (`ehr-gateway lint`, `map`), so
//! every diagnostic says *where* (file, line, column, rule) and *what*, and never
//! quotes patient data: runtime diagnostics name source positions (`PID/7`,
//! bytes 120..128), not values. Codes are stable and documented in
//! `mappings/README.md`; tests compare the rendered text.

use std::fmt;

use gateway_core::{Diagnostic, Severity, Span};

/// Stable diagnostic codes. `M001`–`M019` are found while loading a profile,
/// `M020`–`M039` while mapping a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// M001: a profile folder or file cannot be read.
    Io,
    /// M002: a file is not valid TOML.
    Syntax,
    /// M003: a key the format does not know (typo, or a feature that does not exist).
    UnknownKey,
    /// M004: a required key is missing.
    MissingKey,
    /// M005: a value has the wrong TOML type or shape.
    WrongType,
    /// M006: `format` names no supported format, or no path syntax is registered for it.
    UnknownFormat,
    /// M007: `time_zone` is not an IANA time zone name.
    UnknownTimeZone,
    /// M008: `extends` names no profile, or profiles extend each other in a cycle.
    BadExtends,
    /// M009: a transform name that does not exist.
    UnknownTransform,
    /// M010: a transform argument is invalid (bad date format, bad separator, …).
    BadTransformArgument,
    /// M011: a code table that the profile (or its bases) does not define.
    UnknownTable,
    /// M012: a source path that does not parse in the profile format's path syntax.
    BadPath,
    /// M013: a case field that does not exist in Case v1 (or cannot be mapped).
    UnknownField,
    /// M014: a constant, default or table value that is not valid for its field.
    InvalidConstant,
    /// M015: a `foreach` problem: list field without a group, unknown group, nested group.
    BadForeach,
    /// M016: a mapping file lacks what its action needs (`case_id`, a `status` rule).
    IncompleteMapping,
    /// M017: a profile has no mapping files (warning).
    NoMappingFiles,
    /// M020: no mapping file matches the document.
    NoMatch,
    /// M021: the document's format is not the profile's format.
    FormatMismatch,
    /// M022: a `required` rule produced no value; the case is not produced.
    RequiredMissing,
    /// M023: a part of the case id key has no value; the case is not produced.
    CaseIdMissing,
    /// M024: a value has no entry in a code table.
    TableMiss,
    /// M025: a value does not parse as a date or date-time in any of the formats.
    BadDate,
    /// M026: a value is not valid for its case field (enum, number, date shape); it is dropped.
    InvalidValue,
    /// M027: an item (service line, coverage, …) lacks a field Case v1 requires; it is dropped.
    IncompleteItem,
    /// M028: two mapping files with the same priority match; the first by name is used.
    AmbiguousMatch,
    /// M029: the built case does not validate as Case v1 (an engine bug; please report).
    InvalidCase,
    /// M030: a fact failed validation and was corrected (an invalid NPI kept as a
    /// local identifier, a non-CPT code relabelled, an implausible birth date dropped).
    FactCheck,
    /// M031: a common message kind has no mapping file (lint warning).
    UndefinedKind,
}

impl Code {
    /// Every code, in order (for docs and tests).
    pub const ALL: [Code; 29] = [
        Code::Io,
        Code::Syntax,
        Code::UnknownKey,
        Code::MissingKey,
        Code::WrongType,
        Code::UnknownFormat,
        Code::UnknownTimeZone,
        Code::BadExtends,
        Code::UnknownTransform,
        Code::BadTransformArgument,
        Code::UnknownTable,
        Code::BadPath,
        Code::UnknownField,
        Code::InvalidConstant,
        Code::BadForeach,
        Code::IncompleteMapping,
        Code::NoMappingFiles,
        Code::NoMatch,
        Code::FormatMismatch,
        Code::RequiredMissing,
        Code::CaseIdMissing,
        Code::TableMiss,
        Code::BadDate,
        Code::InvalidValue,
        Code::IncompleteItem,
        Code::AmbiguousMatch,
        Code::InvalidCase,
        Code::FactCheck,
        Code::UndefinedKind,
    ];

    /// The stable code text, `M001`…
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "M001",
            Code::Syntax => "M002",
            Code::UnknownKey => "M003",
            Code::MissingKey => "M004",
            Code::WrongType => "M005",
            Code::UnknownFormat => "M006",
            Code::UnknownTimeZone => "M007",
            Code::BadExtends => "M008",
            Code::UnknownTransform => "M009",
            Code::BadTransformArgument => "M010",
            Code::UnknownTable => "M011",
            Code::BadPath => "M012",
            Code::UnknownField => "M013",
            Code::InvalidConstant => "M014",
            Code::BadForeach => "M015",
            Code::IncompleteMapping => "M016",
            Code::NoMappingFiles => "M017",
            Code::NoMatch => "M020",
            Code::FormatMismatch => "M021",
            Code::RequiredMissing => "M022",
            Code::CaseIdMissing => "M023",
            Code::TableMiss => "M024",
            Code::BadDate => "M025",
            Code::InvalidValue => "M026",
            Code::IncompleteItem => "M027",
            Code::AmbiguousMatch => "M028",
            Code::InvalidCase => "M029",
            Code::FactCheck => "M030",
            Code::UndefinedKind => "M031",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The profile-file line a diagnostic points at, kept with the diagnostic so it
/// renders without reading the file again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The whole line, without its line break.
    pub line_text: String,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (in characters) where the caret starts.
    pub column: usize,
    /// Number of characters to underline (at least 1).
    pub width: usize,
}

/// One finding about a profile or about mapping one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDiagnostic {
    /// How bad it is: errors stop loading, or stop the case from being produced.
    pub severity: Severity,
    /// Stable code.
    pub code: Code,
    /// What is wrong, in words, without patient data.
    pub message: String,
    /// The profile file, shown as `<profile folder>/<file>` (e.g. `epic/orders.toml`).
    pub file: Option<String>,
    /// The line and caret inside `file`.
    pub snippet: Option<Snippet>,
    /// The rule (case field, `match`, `case_id`, table name) the finding belongs to.
    pub rule: Option<String>,
    /// A hint on how to fix it (`did you mean `upper`?`).
    pub help: Option<String>,
    /// Where in the source document (tree location such as `PID/7`), for runtime findings.
    pub source_location: Option<String>,
    /// Byte span in the raw source document, for runtime findings.
    pub source_span: Option<Span>,
}

impl MapDiagnostic {
    /// A diagnostic without position.
    pub fn new(severity: Severity, code: Code, message: impl Into<String>) -> Self {
        MapDiagnostic {
            severity,
            code,
            message: message.into(),
            file: None,
            snippet: None,
            rule: None,
            help: None,
            source_location: None,
            source_span: None,
        }
    }

    /// An error without position.
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    /// A warning without position.
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, message)
    }

    /// Names the rule.
    pub fn with_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }

    /// Adds a hint.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points at bytes `span` of the profile file `file` whose text is `text`.
    pub fn at_file(mut self, file: &str, text: &str, span: std::ops::Range<usize>) -> Self {
        self.file = Some(file.to_owned());
        self.snippet = Some(snippet(text, span));
        self
    }

    /// Points at a place in the source document.
    pub fn at_source(mut self, location: Option<String>, span: Option<Span>) -> Self {
        self.source_location = location.filter(|l| !l.is_empty());
        self.source_span = span;
        self
    }

    /// True for error severity.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The compiler-style rendering (see the module docs), ending with a newline.
    pub fn render(&self) -> String {
        let level = match self.severity {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        let mut out = format!("{level}[{}]: {}\n", self.code, self.message);
        let gutter = self
            .snippet
            .as_ref()
            .map(|s| s.line.to_string().len())
            .unwrap_or(1);
        let pad = " ".repeat(gutter);
        if let Some(file) = &self.file {
            match &self.snippet {
                Some(s) => out.push_str(&format!("{pad}--> {file}:{}:{}\n", s.line, s.column)),
                None => out.push_str(&format!("{pad}--> {file}\n")),
            }
        }
        if let Some(s) = &self.snippet {
            out.push_str(&format!("{pad} |\n"));
            out.push_str(&format!("{} | {}\n", s.line, s.line_text));
            out.push_str(&format!(
                "{pad} | {}{}\n",
                " ".repeat(s.column.saturating_sub(1)),
                "^".repeat(s.width.max(1))
            ));
        }
        if let Some(rule) = &self.rule {
            out.push_str(&format!("{pad} = rule: {rule}\n"));
        }
        if self.source_location.is_some() || self.source_span.is_some() {
            let mut at = String::new();
            if let Some(loc) = &self.source_location {
                at.push_str(loc);
            }
            if let Some(span) = self.source_span {
                if !at.is_empty() {
                    at.push(' ');
                }
                at.push_str(&format!("(bytes {}..{})", span.start, span.end));
            }
            out.push_str(&format!("{pad} = source: {at}\n"));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("{pad} = help: {help}\n"));
        }
        out
    }

    /// The diagnostic as the gateway-wide [`Diagnostic`] (for the store and
    /// negative acknowledgements): the location names the profile file,
    /// line and rule.
    pub fn to_core(&self) -> Diagnostic {
        let mut message = self.message.clone();
        if let Some(rule) = &self.rule {
            message.push_str(&format!(" (rule {rule})"));
        }
        let mut d = Diagnostic {
            severity: self.severity,
            code: self.code.as_str().to_owned(),
            message,
            span: self.source_span,
            location: None,
        };
        let location = match (&self.source_location, &self.file, &self.snippet) {
            (Some(loc), _, _) => Some(loc.clone()),
            (None, Some(file), Some(s)) => Some(format!("{file}:{}:{}", s.line, s.column)),
            (None, Some(file), None) => Some(file.clone()),
            _ => None,
        };
        if let Some(location) = location {
            d = d.at(location);
        }
        d
    }
}

impl fmt::Display for MapDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Renders every diagnostic, separated by blank lines.
pub fn render_all(diagnostics: &[MapDiagnostic]) -> String {
    diagnostics
        .iter()
        .map(MapDiagnostic::render)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Builds the snippet for byte range `span` of `text` (clamped, char-aligned).
pub(crate) fn snippet(text: &str, span: std::ops::Range<usize>) -> Snippet {
    let start = floor_char(text, span.start.min(text.len()));
    let end = floor_char(text, span.end.min(text.len())).max(start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_text = text[line_start..line_end].trim_end_matches('\r');
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let underline_end = end.min(line_start + line_text.len()).max(start);
    let width = text[start..underline_end].chars().count().max(1);
    Snippet {
        line_text: line_text.to_owned(),
        line,
        column,
        width,
    }
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The closest of `candidates` to `word` (edit distance ≤ 2, or a prefix match),
/// for "did you mean" hints.
pub(crate) fn suggest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(word, c);
        let limit = if word.len() <= 3 { 1 } else { 2 };
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_the_span() {
        let text = "a = 1\n\"patient.sex\" = { path = \"PID-8(\" }\n";
        let start = text.find("PID-8(").expect("present") + 5;
        let d = MapDiagnostic::error(Code::BadPath, "unclosed bracket")
            .at_file("epic/orders.toml", text, start..start + 1)
            .with_rule("patient.sex");
        let r = d.render();
        assert_eq!(
            r,
            "error[M012]: unclosed bracket\n --> epic/orders.toml:2:32\n  |\n2 | \"patient.sex\" = { path = \"PID-8(\" }\n  |                                ^\n  = rule: patient.sex\n"
        );
        assert_eq!(
            d.to_core().location.as_deref(),
            Some("epic/orders.toml:2:32")
        );
    }

    #[test]
    fn codes_are_unique_and_suggestions_work() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {c}");
        }
        assert_eq!(suggest("uppr", ["upper", "lower", "trim"]), Some("upper"));
        assert_eq!(suggest("zzzzzz", ["upper"]), None);
    }
}

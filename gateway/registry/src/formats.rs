//! Input formats: detection from content, parse dispatch to each adapter,
//! the path syntaxes mapping profiles use, and the tree rendering of
//! `inspect` — one [`FormatSpec`] per format in [`FORMATS`].
//!
//! The mapping engine knows no format; this table is where formats meet it,
//! for the daemon (intake re-parses, `inspect`, `map`, `lint`, the admin
//! API's inspect) and the conformance runner alike. **Adding a format** is
//! one [`FormatSpec`] literal in [`FORMATS`]: its fields have no defaults, so
//! a format missing its detection, parser, syntax or rendering does not
//! compile, and [`crate::check`] (run at daemon start and in this crate's
//! tests) refuses a [`SourceFormat`] without exactly one entry.

use gateway_core::adapter::name;
use gateway_core::json_tree::JsonPathSyntax;
use gateway_core::path::PathSyntax;
use gateway_core::{Diagnostic, NodeId, SourceDocument, SourceFormat, SourceTree};
use gateway_mapping::SyntaxProvider;

/// A parser: the document with its diagnostics, or why nothing could be read.
pub type ParseFn = fn(&[u8]) -> Result<SourceDocument, Vec<Diagnostic>>;

/// Everything the rest of the system needs to know about one input format.
#[derive(Clone, Copy)]
pub struct FormatSpec {
    /// The format.
    pub format: SourceFormat,
    /// The adapter that brings it (`None`: gateway-core's generic JSON).
    pub adapter: Option<&'static str>,
    /// Recognizes the format from its first bytes (after a UTF-8 BOM and
    /// leading whitespace); entries are tried in [`FORMATS`] order.
    pub detect: fn(&[u8]) -> bool,
    /// The tools' parse (`inspect`, `map`): a partial tree with diagnostics.
    pub parse: ParseFn,
    /// The adapter intake's parse, stricter where the intake is (replays
    /// re-parse stored bytes with it).
    pub parse_for_intake: ParseFn,
    /// The path syntax of mapping rules for this format.
    pub syntax: fn() -> &'static dyn PathSyntax,
    /// The tree as text for `inspect`.
    pub render: fn(&SourceDocument) -> String,
}

impl std::fmt::Debug for FormatSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormatSpec")
            .field("format", &self.format)
            .field("adapter", &self.adapter)
            .finish_non_exhaustive()
    }
}

/// Every format of this build, in detection order (a PAS request — a Bundle
/// with a Claim first — before other FHIR, FHIR before generic JSON: all
/// start with `{`).
pub static FORMATS: &[FormatSpec] = &[
    FormatSpec {
        format: SourceFormat::Hl7v2,
        adapter: Some(name::HL7V2),
        detect: |body| {
            let header = |tag: &[u8]| {
                body.starts_with(tag) && body.get(3).is_some_and(|b| b.is_ascii_punctuation())
            };
            header(b"MSH") || header(b"FHS") || header(b"BHS")
        },
        parse: gateway_hl7v2::parse::parse_message,
        parse_for_intake: gateway_hl7v2::parse::parse_for_intake,
        syntax: || &gateway_hl7v2::path::Hl7PathSyntax,
        render: gateway_hl7v2::fields::render_tree,
    },
    FormatSpec {
        format: SourceFormat::X12,
        adapter: Some(name::X12),
        detect: |body| body.starts_with(b"ISA"),
        parse: gateway_x12::parse,
        parse_for_intake: gateway_x12::parse,
        syntax: || &gateway_x12::X12PathSyntax,
        render: |doc| generic_tree(&doc.tree),
    },
    FormatSpec {
        format: SourceFormat::DavinciPas,
        adapter: Some(name::DAVINCI_PAS),
        // A Bundle whose first entry is a Claim: a PAS request (before `fhir`).
        detect: |body| {
            body.starts_with(b"{")
                && serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| {
                    v.get("resourceType").and_then(|t| t.as_str()) == Some("Bundle")
                        && v.pointer("/entry/0/resource/resourceType")
                            .and_then(|t| t.as_str())
                            == Some("Claim")
                })
        },
        parse: gateway_davinci_pas::parse_request,
        parse_for_intake: gateway_davinci_pas::parse_request,
        syntax: || &gateway_fhir_model::FhirPathSyntax,
        render: |doc| generic_tree(&doc.tree),
    },
    FormatSpec {
        format: SourceFormat::Fhir,
        adapter: Some(name::FHIR),
        detect: |body| {
            body.starts_with(b"{")
                && serde_json::from_slice::<serde_json::Value>(body)
                    .is_ok_and(|v| v.get("resourceType").is_some())
        },
        parse: gateway_fhir::parse_bundle,
        parse_for_intake: gateway_fhir::parse_bundle,
        syntax: || &gateway_fhir_model::FhirPathSyntax,
        render: |doc| generic_tree(&doc.tree),
    },
    FormatSpec {
        format: SourceFormat::Desktop,
        adapter: Some(name::DESKTOP),
        // Desktop captures cannot be recognized from content (`--format desktop`).
        detect: |_| false,
        parse: gateway_desktop::capture::parse_raw,
        parse_for_intake: gateway_desktop::capture::parse_raw,
        syntax: || &gateway_desktop::DesktopPathSyntax,
        render: |doc| generic_tree(&doc.tree),
    },
    FormatSpec {
        format: SourceFormat::Json,
        adapter: None,
        detect: |body| {
            body.starts_with(b"{") && serde_json::from_slice::<serde_json::Value>(body).is_ok()
        },
        parse: parse_json,
        parse_for_intake: parse_json,
        syntax: || &JsonPathSyntax,
        render: |doc| generic_tree(&doc.tree),
    },
];

/// The entry of `format`. [`crate::check`] guarantees one per format.
pub fn spec(format: SourceFormat) -> Option<&'static FormatSpec> {
    FORMATS.iter().find(|s| s.format == format)
}

/// Every format name, for `--format` and messages, from [`FORMATS`].
pub fn format_names() -> Vec<&'static str> {
    FORMATS.iter().map(|s| s.format.as_str()).collect()
}

/// Parses a format name (`hl7v2`, `x12`, `fhir`, `desktop`, `json`) of a
/// format in [`FORMATS`].
pub fn format_from_name(name: &str) -> Option<SourceFormat> {
    SourceFormat::from_name(name).filter(|f| spec(*f).is_some())
}

/// Recognizes a format from the first bytes: HL7 `MSH|`/`FHS|`/`BHS|` (any
/// field separator), X12 `ISA`, JSON `{` — FHIR when it has a `resourceType`.
/// A UTF-8 BOM and leading whitespace are skipped. Desktop captures cannot be
/// recognized from content (pass `--format desktop`).
pub fn detect(raw: &[u8]) -> Option<SourceFormat> {
    let body = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let body = &body[start..];
    FORMATS.iter().find(|s| (s.detect)(body)).map(|s| s.format)
}

/// Parses `raw` as `format` the way the adapter's intake does before mapping
/// (replays go through this): stricter than [`parse`] where the adapter's
/// intake is — an HL7 message with a broken segment structure is refused
/// rather than mapped from a partial tree.
pub fn parse_for_intake(
    format: SourceFormat,
    raw: &[u8],
) -> Result<SourceDocument, Vec<Diagnostic>> {
    (spec_or_missing(format)?.parse_for_intake)(raw)
}

/// Parses `raw` as `format` with that format's adapter (the tools: `inspect`
/// and `map` show a partial tree with its diagnostics).
pub fn parse(format: SourceFormat, raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    (spec_or_missing(format)?.parse)(raw)
}

fn spec_or_missing(format: SourceFormat) -> Result<&'static FormatSpec, Vec<Diagnostic>> {
    spec(format).ok_or_else(|| {
        vec![Diagnostic::error(
            "F001",
            format!("format {} is not wired into this build", format.as_str()),
        )]
    })
}

/// Generic JSON (gateway-core's tree).
fn parse_json(raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    let body = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => Ok(gateway_mapping::json_document(&value)),
        Err(e) => Err(vec![
            Diagnostic::error("J001", format!("not valid JSON: {e}")).at(format!(
                "line {} column {}",
                e.line(),
                e.column()
            )),
        ]),
    }
}

/// The path syntaxes of every format in [`FORMATS`], for
/// [`gateway_mapping::Profile::load`] — the daemon's and the conformance
/// runner's.
#[derive(Debug, Clone, Copy, Default)]
pub struct Syntaxes;

impl SyntaxProvider for Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        spec(format).map(|s| (s.syntax)())
    }
}

/// The parsed tree as text for `inspect`: one node per line with byte spans
/// and values. Shows message data: for a terminal, never for logs.
pub fn render_tree(doc: &SourceDocument) -> String {
    match spec(doc.format) {
        Some(s) => (s.render)(doc),
        None => generic_tree(&doc.tree),
    }
}

/// Every node, indented by depth, `name[i]` where a name repeats among siblings.
pub fn generic_tree(tree: &SourceTree) -> String {
    let mut out = String::new();
    out.push_str(tree.name(tree.root()));
    out.push('\n');
    write_children(tree, tree.root(), 1, &mut out);
    out
}

fn write_children(tree: &SourceTree, node: NodeId, depth: usize, out: &mut String) {
    let children = tree.children(node);
    for (i, &child) in children.iter().enumerate() {
        let name = tree.name(child);
        let total = tree.children_named(node, name).count();
        out.push_str(&"  ".repeat(depth));
        out.push_str(name);
        if total > 1 {
            let idx = children[..i]
                .iter()
                .filter(|c| tree.name(**c) == name)
                .count();
            out.push_str(&format!("[{idx}]"));
        }
        if let Some(span) = tree.span(child) {
            out.push_str(&format!("  @{}..{}", span.start, span.end));
        }
        if let Some(value) = tree.value(child) {
            out.push_str(&format!(" = {value:?}"));
        }
        out.push('\n');
        write_children(tree, child, depth + 1, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_refuse_a_broken_hl7_segment_structure_that_inspect_still_shows() {
        let raw = b"MSH|^~\\&|EPIC|SITE|GW|MSO|20261122100000||ADT^A08|C1|P|2.5.1\rP@D|1||E10001\r";
        let shown = parse(SourceFormat::Hl7v2, raw).expect("inspect shows the partial tree");
        assert!(shown.diagnostics.iter().any(|d| d.is_error()));
        let refused = parse_for_intake(SourceFormat::Hl7v2, raw).expect_err("intake refuses");
        assert!(!refused.is_empty());
    }

    #[test]
    fn detects_formats_from_content() {
        assert_eq!(detect(b"MSH|^~\\&|A"), Some(SourceFormat::Hl7v2));
        assert_eq!(
            detect(b"\xEF\xBB\xBF\r\nFHS|^~\\&"),
            Some(SourceFormat::Hl7v2)
        );
        assert_eq!(detect(b"MSH$%~\\&$A"), Some(SourceFormat::Hl7v2));
        assert_eq!(detect(b"ISA*00*"), Some(SourceFormat::X12));
        assert_eq!(
            detect(br#"{"resourceType": "Bundle"}"#),
            Some(SourceFormat::Fhir)
        );
        assert_eq!(detect(br#" {"order": {}}"#), Some(SourceFormat::Json));
        assert_eq!(
            detect(br#"{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Claim"}}]}"#),
            Some(SourceFormat::DavinciPas)
        );
        assert_eq!(detect(b"{not json"), None);
        assert_eq!(detect(b"MSHX"), None);
        assert_eq!(detect(b""), None);
    }

    #[test]
    fn json_parses_and_renders() {
        let doc = parse(SourceFormat::Json, br#"{"a": {"b": [1, 2]}}"#).expect("parses");
        assert_eq!(
            generic_tree(&doc.tree),
            "document\n  a\n    b[0] = \"1\"\n    b[1] = \"2\"\n"
        );
        assert!(parse(SourceFormat::Json, b"{").is_err());
        assert!(Syntaxes.syntax(SourceFormat::Json).is_some());
    }
}

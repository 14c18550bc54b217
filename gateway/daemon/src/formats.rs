//! Input formats for the CLI and the daemon: detection from content, parse
//! dispatch to each adapter, the path-syntax registry mapping profiles use,
//! and the tree rendering of `inspect`.
//!
//! The mapping engine knows no format; this module is where formats meet it.
//! **Adding a format (adapter helpers)** is one arm in each of four `match`es
//! below, all marked `// formats:`:
//! 1. [`detect`] — how to recognize the bytes (only if not already covered),
//! 2. [`parse`] — call the adapter's `parse(&[u8]) -> Result<SourceDocument, Vec<Diagnostic>>`,
//! 3. [`Syntaxes::syntax`] — return the adapter's `PathSyntax`,
//! 4. [`render_tree`] — optional: a format-specific tree rendering (the
//!    generic one shows every node with its byte span and value).
//!
//! Plus the adapter crate as a dependency in `gateway/daemon/Cargo.toml`.
//! The matches are exhaustive (no `_` arm): a new [`SourceFormat`] variant is
//! a compile error here until it is wired. All five formats are wired:
//! `json` (gateway-core), `hl7v2`, `fhir`, `desktop`, `x12` (their adapters).

use gateway_core::json_tree::JsonPathSyntax;
use gateway_core::path::PathSyntax;
use gateway_core::{Diagnostic, NodeId, SourceDocument, SourceFormat, SourceTree};
use gateway_mapping::SyntaxProvider;

/// Every format name, for `--format` and messages.
pub const FORMAT_NAMES: &[&str] = &["hl7v2", "x12", "fhir", "desktop", "json"];

/// Parses a format name (`hl7v2`, `x12`, `fhir`, `desktop`, `json`).
pub fn format_from_name(name: &str) -> Option<SourceFormat> {
    Some(match name {
        "hl7v2" => SourceFormat::Hl7v2,
        "x12" => SourceFormat::X12,
        "fhir" => SourceFormat::Fhir,
        "desktop" => SourceFormat::Desktop,
        "json" => SourceFormat::Json,
        _ => return None,
    })
}

/// Recognizes a format from the first bytes: HL7 `MSH|`/`FHS|`/`BHS|` (any
/// field separator), X12 `ISA`, JSON `{` — FHIR when it has a `resourceType`.
/// A UTF-8 BOM and leading whitespace are skipped. Desktop captures cannot be
/// recognized from content (pass `--format desktop`).
pub fn detect(raw: &[u8]) -> Option<SourceFormat> {
    let body = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let body = &body[start..];
    // formats: detection rules
    let hl7_header =
        |tag: &[u8]| body.starts_with(tag) && body.get(3).is_some_and(|b| b.is_ascii_punctuation());
    if hl7_header(b"MSH") || hl7_header(b"FHS") || hl7_header(b"BHS") {
        return Some(SourceFormat::Hl7v2);
    }
    if body.starts_with(b"ISA") {
        return Some(SourceFormat::X12);
    }
    if body.starts_with(b"{") {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        return Some(if value.get("resourceType").is_some() {
            SourceFormat::Fhir
        } else {
            SourceFormat::Json
        });
    }
    None
}

/// Parses `raw` as `format` the way the adapter's intake does before mapping
/// (replays go through this): stricter than [`parse`] where the adapter's
/// intake is — an HL7 message with a broken segment structure is refused
/// rather than mapped from a partial tree.
pub fn parse_for_intake(
    format: SourceFormat,
    raw: &[u8],
) -> Result<SourceDocument, Vec<Diagnostic>> {
    match format {
        SourceFormat::Hl7v2 => gateway_hl7v2::parse::parse_for_intake(raw),
        other => parse(other, raw),
    }
}

/// Parses `raw` as `format` with that format's adapter (the tools: `inspect`
/// and `map` show a partial tree with its diagnostics).
pub fn parse(format: SourceFormat, raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    match format {
        // formats: parse dispatch
        SourceFormat::Json => {
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
        SourceFormat::Hl7v2 => gateway_hl7v2::parse::parse_message(raw),
        SourceFormat::Fhir => gateway_fhir::parse_bundle(raw),
        SourceFormat::Desktop => gateway_desktop::capture::parse_raw(raw),
        SourceFormat::X12 => gateway_x12::parse(raw),
    }
}

/// The path syntaxes of every wired format, for [`gateway_mapping::Profile::load`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Syntaxes;

impl SyntaxProvider for Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        match format {
            // formats: path syntaxes
            SourceFormat::Json => Some(&JsonPathSyntax),
            SourceFormat::Hl7v2 => Some(&gateway_hl7v2::path::Hl7PathSyntax),
            SourceFormat::Fhir => Some(&gateway_fhir::FhirPathSyntax),
            SourceFormat::Desktop => Some(&gateway_desktop::DesktopPathSyntax),
            SourceFormat::X12 => Some(&gateway_x12::X12PathSyntax),
        }
    }
}

/// The parsed tree as text for `inspect`: one node per line with byte spans
/// and values. Shows message data: for a terminal, never for logs.
pub fn render_tree(doc: &SourceDocument) -> String {
    match doc.format {
        // formats: tree renderings
        SourceFormat::Hl7v2 => gateway_hl7v2::fields::render_tree(doc),
        _ => generic_tree(&doc.tree),
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

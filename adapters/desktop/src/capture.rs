//! Captured screen values → a source document the mapping profile reads.
//!
//! A read playbook yields `name → value` pairs; dotted names nest
//! (`patient.mrn` → `{"patient": {"mrn": …}}`) and the result becomes a JSON
//! tree (format `desktop`, paths in gateway-core's JSON syntax). The raw bytes
//! kept in the store are that JSON, so a stored screen read can be replayed
//! through a fixed profile exactly like an HL7 message.

use std::collections::BTreeMap;

use gateway_core::adapter::InboundMessage;
use gateway_core::json_tree::{JsonPathSyntax, tree_from_json};
use gateway_core::path::{Path, PathError, PathSyntax};
use gateway_core::source::MessageMeta;
use gateway_core::{Diagnostic, SourceDocument, SourceFormat};
use serde_json::{Map, Value};

/// The adapter name used in cases, metrics and the store.
pub const ADAPTER: &str = gateway_core::adapter::name::DESKTOP;

/// The path syntax of desktop documents: the JSON syntax, under the `desktop` name.
#[derive(Debug, Clone, Copy, Default)]
pub struct DesktopPathSyntax;

impl PathSyntax for DesktopPathSyntax {
    fn name(&self) -> &'static str {
        SourceFormat::Desktop.as_str()
    }

    fn compile(&self, text: &str) -> Result<Path, PathError> {
        JsonPathSyntax.compile(text)
    }
}

/// Nests dotted capture names into a JSON object. A name that is both a value
/// and a group (`a` and `a.b`) is reported as a warning and the group wins.
pub fn captures_to_json(captures: &BTreeMap<String, String>) -> (Value, Vec<Diagnostic>) {
    let mut root = Map::new();
    let mut diagnostics = Vec::new();
    for (name, value) in captures {
        let parts: Vec<&str> = name.split('.').collect();
        if !insert(&mut root, &parts, value) {
            diagnostics.push(
                Diagnostic::warning("D001", "capture name is both a value and a group")
                    .at(name.clone()),
            );
        }
    }
    (Value::Object(root), diagnostics)
}

/// Inserts `value` at `path`; false when a value and a group collided (the
/// group wins).
fn insert(node: &mut Map<String, Value>, path: &[&str], value: &str) -> bool {
    match path {
        [] => true,
        [last] => match node.get(*last) {
            Some(Value::Object(_)) => false,
            _ => {
                node.insert((*last).to_owned(), Value::String(value.to_owned()));
                true
            }
        },
        [first, rest @ ..] => {
            let entry = node
                .entry((*first).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            let clean = entry.is_object();
            if !clean {
                *entry = Value::Object(Map::new());
            }
            match entry {
                Value::Object(child) => insert(child, rest, value) && clean,
                _ => false,
            }
        }
    }
}

/// The source document of a read: tree, meta (playbook name as message type,
/// the record key's value as control id) and diagnostics, plus the raw bytes to
/// store: the captures as JSON with a `_meta` object naming the playbook and the
/// record key, so [`parse_raw`] rebuilds the same document on replay.
pub fn document(
    playbook: &str,
    record_key: Option<&str>,
    captures: &BTreeMap<String, String>,
) -> (Vec<u8>, SourceDocument) {
    let (json, diagnostics) = captures_to_json(captures);
    let control_id = record_key.and_then(|k| captures.get(k)).cloned();
    let mut stored = Map::new();
    stored.insert(
        "_meta".to_owned(),
        serde_json::json!({"message_type": playbook, "control_id": control_id}),
    );
    if let Value::Object(fields) = &json {
        stored.extend(fields.clone());
    }
    let raw = serde_json::to_vec(&Value::Object(stored)).unwrap_or_default();
    let doc = SourceDocument {
        format: SourceFormat::Desktop,
        meta: MessageMeta {
            message_type: Some(playbook.to_owned()),
            control_id,
            ..MessageMeta::default()
        },
        tree: tree_from_json("screen", &json),
        diagnostics,
    };
    (raw, doc)
}

/// Parses stored raw bytes of a desktop read back into its document (replay,
/// `ehr-gateway map --profile mappings/legacy-desktop FILE`).
pub fn parse_raw(raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    let json: Value = serde_json::from_slice(raw).map_err(|e| {
        vec![Diagnostic::error(
            "D002",
            format!("stored screen read is not JSON: {e}"),
        )]
    })?;
    let Value::Object(mut fields) = json else {
        return Err(vec![Diagnostic::error(
            "D002",
            "stored screen read is not a JSON object",
        )]);
    };
    let meta = fields.remove("_meta");
    let text = |key: &str| {
        meta.as_ref()
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut diagnostics = Vec::new();
    if text("message_type").is_none() {
        diagnostics.push(Diagnostic::warning(
            "D003",
            "no `_meta.message_type`: the playbook that read this screen is unknown",
        ));
    }
    Ok(SourceDocument {
        format: SourceFormat::Desktop,
        meta: MessageMeta {
            message_type: text("message_type"),
            control_id: text("control_id"),
            ..MessageMeta::default()
        },
        tree: tree_from_json("screen", &Value::Object(fields)),
        diagnostics,
    })
}

/// An [`InboundMessage`] for the intake pipeline from a finished read.
pub fn inbound_message(
    profile: &str,
    playbook: &str,
    record_key: Option<&str>,
    captures: &BTreeMap<String, String>,
    received_at: jiff::Timestamp,
    display: Option<String>,
) -> InboundMessage {
    let (raw, doc) = document(playbook, record_key, captures);
    InboundMessage {
        adapter: gateway_core::adapter::AdapterName::DESKTOP,
        profile: profile.to_owned(),
        raw,
        received_at,
        peer: display,
        parsed: Ok(doc),
    }
}

/// An [`InboundMessage`] of a read's stored raw bytes (the `_meta` JSON
/// [`document`] writes), parsed as a replay parses it ([`parse_raw`]). The
/// conformance runner submits its desktop inputs through this, so the
/// adapter, not the runner, stamps the message.
pub fn inbound_raw(
    profile: &str,
    raw: Vec<u8>,
    received_at: jiff::Timestamp,
    peer: Option<String>,
) -> InboundMessage {
    let parsed = parse_raw(&raw);
    InboundMessage {
        adapter: gateway_core::adapter::AdapterName::DESKTOP,
        profile: profile.to_owned(),
        raw,
        received_at,
        peer,
        parsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_dotted_captures_into_a_tree() {
        let captures = BTreeMap::from([
            ("patient.mrn".to_owned(), "E10001".to_owned()),
            ("patient.name".to_owned(), "Müller, Søren".to_owned()),
            ("order".to_owned(), "ORD1".to_owned()),
            ("order.code".to_owned(), "X".to_owned()),
        ]);
        let (raw, doc) = document("read-order", Some("patient.mrn"), &captures);
        assert_eq!(doc.meta.control_id.as_deref(), Some("E10001"));
        assert_eq!(doc.format, SourceFormat::Desktop);
        let p = DesktopPathSyntax.compile("patient.name").expect("compiles");
        assert_eq!(
            p.first_value(&doc.tree, doc.tree.root()),
            Some("Müller, Søren")
        );
        assert_eq!(doc.diagnostics.len(), 1, "clash reported");
        let back = parse_raw(&raw).expect("replays");
        assert_eq!(
            p.first_value(&back.tree, back.tree.root()),
            Some("Müller, Søren")
        );
        assert_eq!(back.meta, doc.meta);
        assert!(
            back.tree
                .children_named(back.tree.root(), "_meta")
                .next()
                .is_none()
        );
        assert!(parse_raw(b"[1]").is_err());
        assert!(parse_raw(b"\xff").is_err());
        assert_eq!(parse_raw(b"{}").expect("empty object").diagnostics.len(), 1);
    }
}

//! Plain JSON documents as [`SourceDocument`]s, for the `json` format (tests,
//! docs, and any feed that is "just JSON").
//!
//! The tree is gateway-core's JSON tree. The identifying facts a mapping file
//! matches on come from an optional top-level `_meta` object
//! (`{"_meta": {"message_type": "ORDER", "trigger": "new", "version": "1",
//! "control_id": "C1", "sender": "DEMO"}}`); everything else is data.

use gateway_core::json_tree::tree_from_json;
use gateway_core::source::{MessageMeta, SourceDocument, SourceFormat};
use serde_json::Value;

/// Builds a `json`-format document from a parsed JSON value.
pub fn json_document(value: &Value) -> SourceDocument {
    let meta_obj = value.get("_meta");
    let field = |name: &str| -> Option<String> {
        meta_obj
            .and_then(|m| m.get(name))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
    };
    SourceDocument {
        format: SourceFormat::Json,
        meta: MessageMeta {
            message_type: field("message_type"),
            trigger: field("trigger"),
            version: field("version"),
            control_id: field("control_id"),
            sender: field("sender"),
        },
        tree: tree_from_json("document", value),
        diagnostics: Vec::new(),
    }
}

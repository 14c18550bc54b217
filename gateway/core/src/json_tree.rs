//! JSON documents as source trees, and the plain JSON path syntax.
//!
//! A JSON object becomes a node whose children are named by its keys; an array
//! becomes repeated sibling nodes with the array's key as their name (so `[*]`
//! and "first repetition" work as for HL7 repetitions); scalars become values
//! (numbers keep their JSON text, booleans are `true`/`false`, null is absent).
//! The FHIR adapter builds on this and adds reference keys; tests and docs use it
//! directly.
//!
//! JSON path syntax: `a.b[*].c`, `a.b[0]` (0-based), `a.b[-1]` (last),
//! `identifier(type=MR|MRN).value` (keep items whose sub-path equals one of the
//! values), `identifier(!type)` (items lacking it), `subject.reference.resolve()`
//! (follow a registered key), `parent()`, and `..name` (any depth).

use serde_json::Value;

use crate::path::{Condition, Path, PathError, PathSyntax, Select, Step};
use crate::source::{NodeId, SourceTree};

/// Builds a tree from a JSON value; the root is named `root_name`.
pub fn tree_from_json(root_name: &str, value: &Value) -> SourceTree {
    let mut tree = SourceTree::new(root_name);
    let root = tree.root();
    fill(&mut tree, root, value);
    tree
}

/// Adds the content of `value` under `node` (object members, scalar value).
pub fn fill(tree: &mut SourceTree, node: NodeId, value: &Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                push_member(tree, node, key, v);
            }
        }
        Value::Array(items) => {
            for v in items {
                push_member(tree, node, "item", v);
            }
        }
        scalar => tree.set_value(node, scalar_text(scalar)),
    }
}

/// Adds `key: value` under `parent`; arrays become repeated `key` nodes.
pub fn push_member(tree: &mut SourceTree, parent: NodeId, key: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                let child = tree.push(parent, key, None, None);
                fill(tree, child, item);
            }
        }
        other => {
            let child = tree.push(parent, key, None, None);
            fill(tree, child, other);
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(_) | Value::Array(_) => None,
    }
}

/// The plain JSON path syntax (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonPathSyntax;

impl PathSyntax for JsonPathSyntax {
    fn name(&self) -> &'static str {
        "json"
    }

    fn compile(&self, text: &str) -> Result<Path, PathError> {
        compile_dotted(text)
    }
}

/// Compiles the dotted JSON/FHIR-style syntax described in the module docs.
/// Shared so the FHIR adapter can add its own prefix handling on top.
pub fn compile_dotted(text: &str) -> Result<Path, PathError> {
    let mut steps = Vec::new();
    let bytes = text.as_bytes();
    if text.trim().is_empty() {
        return Err(PathError::new(text, 0, "empty path"));
    }
    let mut pos = 0;
    let mut descendant = false;
    while pos < bytes.len() {
        if text[pos..].starts_with("..") {
            descendant = true;
            pos += 2;
            continue;
        }
        if bytes[pos] == b'.' {
            if pos == 0 || pos + 1 == bytes.len() {
                return Err(PathError::new(
                    text,
                    pos,
                    "a path cannot start or end with `.`",
                ));
            }
            pos += 1;
            continue;
        }
        let name_start = pos;
        while pos < bytes.len() && !matches!(bytes[pos], b'.' | b'[' | b'(') {
            pos += 1;
        }
        let name = &text[name_start..pos];
        if name.is_empty() {
            return Err(PathError::new(text, name_start, "expected a name"));
        }
        if pos < bytes.len() && bytes[pos] == b'(' && (name == "resolve" || name == "parent") {
            if !text[pos..].starts_with("()") {
                return Err(PathError::new(text, pos, "expected `()`"));
            }
            pos += 2;
            steps.push(if name == "resolve" {
                Step::Follow
            } else {
                Step::Parent
            });
            continue;
        }
        if !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '*' | '$' | '@'))
        {
            return Err(PathError::new(
                text,
                name_start,
                format!("`{name}` is not a valid name"),
            ));
        }
        let mut select = Select::First;
        let mut filters = Vec::new();
        while pos < bytes.len() && matches!(bytes[pos], b'[' | b'(') {
            let close = if bytes[pos] == b'[' { b']' } else { b')' };
            let open = pos;
            let Some(len) = bytes[pos + 1..].iter().position(|b| *b == close) else {
                return Err(PathError::new(text, open, "unclosed bracket"));
            };
            let inner = &text[pos + 1..pos + 1 + len];
            if close == b']' {
                select = parse_index(text, open + 1, inner)?;
            } else {
                filters.push(parse_filter(text, open + 1, inner)?);
                if select == Select::First {
                    select = Select::All;
                }
            }
            pos += len + 2;
        }
        let name = name.to_owned();
        if filters.is_empty() {
            steps.push(if descendant {
                Step::Descendant { name, select }
            } else {
                Step::Child { name, select }
            });
        } else {
            steps.push(if descendant {
                Step::Descendant {
                    name,
                    select: Select::All,
                }
            } else {
                Step::Child {
                    name,
                    select: Select::All,
                }
            });
            steps.extend(filters);
            if select != Select::All {
                steps.push(Step::Pick(Select::First));
            }
        }
        descendant = false;
    }
    Ok(Path::new(text, steps))
}

fn parse_index(text: &str, offset: usize, inner: &str) -> Result<Select, PathError> {
    match inner.trim() {
        "*" => Ok(Select::All),
        "-1" => Ok(Select::Last),
        n => n
            .parse::<usize>()
            .map(Select::Index)
            .map_err(|_| PathError::new(text, offset, format!("`{inner}` is not an index"))),
    }
}

fn parse_filter(text: &str, offset: usize, inner: &str) -> Result<Step, PathError> {
    let (sub, condition) = if let Some(rest) = inner.strip_prefix('!') {
        (rest, Condition::Missing)
    } else if let Some((sub, values)) = inner.split_once("!=") {
        (sub, Condition::NotEquals(split_values(values)))
    } else if let Some((sub, values)) = inner.split_once('=') {
        (sub, Condition::Equals(split_values(values)))
    } else {
        (inner, Condition::Exists)
    };
    let path = compile_dotted(sub.trim())
        .map_err(|e| PathError::new(text, offset + e.offset, e.message))?;
    Ok(Step::Where { path, condition })
}

fn split_values(values: &str) -> Vec<String> {
    values.split('|').map(|v| v.trim().to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(tree: &SourceTree, path: &str) -> Option<String> {
        let p = JsonPathSyntax.compile(path).expect("path compiles");
        p.first_value(tree, tree.root()).map(str::to_owned)
    }

    #[test]
    fn resolves_members_arrays_and_filters() {
        let doc = json!({
            "identifier": [
                {"type": "SS", "value": "999"},
                {"type": "MR", "value": "E1"}
            ],
            "name": {"family": "Doe", "given": ["Jane", "Q"]},
            "quantity": 2, "active": true, "none": null
        });
        let t = tree_from_json("resource", &doc);
        assert_eq!(
            value(&t, "identifier(type=MR|MRN).value").as_deref(),
            Some("E1")
        );
        assert_eq!(value(&t, "identifier[1].value").as_deref(), Some("E1"));
        assert_eq!(value(&t, "identifier[-1].type").as_deref(), Some("MR"));
        assert_eq!(value(&t, "name.given[1]").as_deref(), Some("Q"));
        assert_eq!(value(&t, "..family").as_deref(), Some("Doe"));
        assert_eq!(value(&t, "quantity").as_deref(), Some("2"));
        assert_eq!(value(&t, "active").as_deref(), Some("true"));
        assert_eq!(value(&t, "none"), None);
        assert_eq!(
            value(&t, "identifier(!missing).value").as_deref(),
            Some("999")
        );
        let all = JsonPathSyntax
            .compile("identifier[*].value")
            .expect("compiles");
        assert_eq!(all.evaluate(&t, t.root()).len(), 2);
    }

    #[test]
    fn rejects_bad_paths_with_offsets() {
        let e = JsonPathSyntax.compile("a.[0]").expect_err("bad");
        assert_eq!(e.offset, 2);
        let e = JsonPathSyntax.compile("a(b=c").expect_err("bad");
        assert_eq!(e.offset, 1);
        assert!(JsonPathSyntax.compile("").is_err());
        assert!(JsonPathSyntax.compile("a.").is_err());
        assert!(JsonPathSyntax.compile("a[x]").is_err());
    }
}

//! The source-document tree: the one shape every adapter turns its input into.
//!
//! HL7 v2 (segments → fields → repetitions → components), X12 (loops → segments →
//! elements), FHIR JSON (objects and arrays) and desktop screens (captured
//! name → value) all become a [`SourceTree`]: named nodes, each with an optional
//! decoded text value and an optional byte [`Span`] into the raw input. The mapping
//! engine walks this tree through compiled [`crate::path::Path`]s and so knows no
//! format; the spans let every case field point back at the bytes it came from.
//!
//! Nodes live in an arena (`Vec`) and are addressed by [`NodeId`]: building is a
//! push, there is no reference counting, and a tree is cheap to drop.
//!
//! Why the values share one `String` and short child lists live inline: an
//! HL7 message of 1 KB makes ~300 nodes, and a `String` per value and a
//! `Vec` per child list (regrown as it filled) were ~500 allocator calls per
//! parse; keeping both in the tree cut the guarded parse's instructions by a
//! sixth (callgrind, issue #21). A value is now a range of the tree's text,
//! and a node with up to four children (almost every HL7 field and
//! component, most JSON objects) keeps them in the node.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::diagnostic::Diagnostic;

/// A byte range `[start, end)` into the raw input the tree was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// Number of bytes covered.
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// True when the span covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Index of a node inside its [`SourceTree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    /// The root node of every tree.
    pub const ROOT: NodeId = NodeId(0);

    fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone)]
struct NodeData {
    /// Borrowed for the names parsers repeat in every message (field and
    /// component numbers), so a node costs no allocation for its name.
    name: Cow<'static, str>,
    /// Byte range of the value in [`SourceTree::text`].
    value: Option<Range<usize>>,
    span: Option<Span>,
    parent: Option<NodeId>,
    /// Inline up to four (the same 24 bytes a `Vec` takes), so most nodes
    /// cost no allocation for their children.
    children: SmallVec<[NodeId; 4]>,
}

/// An arena tree of named nodes with optional values and spans.
#[derive(Debug, Clone)]
pub struct SourceTree {
    nodes: Vec<NodeData>,
    /// Every node's value, one after another; a node holds its range.
    text: String,
    keys: HashMap<String, NodeId>,
}

impl SourceTree {
    /// A tree holding only a root node called `root_name`.
    pub fn new(root_name: impl Into<String>) -> Self {
        SourceTree {
            nodes: vec![NodeData {
                name: Cow::Owned(root_name.into()),
                value: None,
                span: None,
                parent: None,
                children: SmallVec::new(),
            }],
            text: String::new(),
            keys: HashMap::new(),
        }
    }

    /// The root node.
    pub fn root(&self) -> NodeId {
        NodeId::ROOT
    }

    /// Appends a child under `parent` and returns its id.
    ///
    /// # Panics
    /// Never for ids handed out by this tree; an id from another tree is a
    /// programming error and panics on the index.
    pub fn push(
        &mut self,
        parent: NodeId,
        name: impl Into<String>,
        value: Option<String>,
        span: Option<Span>,
    ) -> NodeId {
        self.push_name(parent, Cow::Owned(name.into()), value, span)
    }

    /// [`SourceTree::push`] with a name that may be borrowed for the life of
    /// the program (a field number from a static table), so the node costs
    /// no allocation for it. Same panics as `push`.
    pub fn push_name(
        &mut self,
        parent: NodeId,
        name: Cow<'static, str>,
        value: Option<String>,
        span: Option<Span>,
    ) -> NodeId {
        self.push_text(parent, name, value.as_deref(), span)
    }

    /// [`SourceTree::push_name`] with a borrowed value, copied into the
    /// tree's text: a parser whose values are mostly slices of its input
    /// (no escapes to decode) allocates nothing per node. Same panics as
    /// `push`.
    pub fn push_text(
        &mut self,
        parent: NodeId,
        name: Cow<'static, str>,
        value: Option<&str>,
        span: Option<Span>,
    ) -> NodeId {
        let value = value.map(|v| self.keep(v));
        self.push_node(parent, name, value, span)
    }

    /// Appends a child under `parent` whose value is the value `same_as`
    /// has now, without copying it: an HL7 field with one component and one
    /// subcomponent has the same text at all three levels. Same panics as
    /// `push`.
    pub fn push_same_value(
        &mut self,
        parent: NodeId,
        name: Cow<'static, str>,
        same_as: NodeId,
        span: Option<Span>,
    ) -> NodeId {
        let value = self.nodes[same_as.index()].value.clone();
        self.push_node(parent, name, value, span)
    }

    fn push_node(
        &mut self,
        parent: NodeId,
        name: Cow<'static, str>,
        value: Option<Range<usize>>,
        span: Option<Span>,
    ) -> NodeId {
        let id = NodeId(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        self.nodes.push(NodeData {
            name,
            value,
            span,
            parent: Some(parent),
            children: SmallVec::new(),
        });
        self.nodes[parent.index()].children.push(id);
        id
    }

    /// Appends `value` to the tree's text and returns where it is.
    fn keep(&mut self, value: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(value);
        start..self.text.len()
    }

    /// Reserves room for `additional` more nodes (a parser that can estimate
    /// the node count from the input's size avoids regrowing the arena).
    pub fn reserve(&mut self, additional: usize) {
        self.nodes.reserve(additional);
    }

    /// Reserves room for `additional` more bytes of values (at most the
    /// input's size for a parser whose values are slices of it).
    pub fn reserve_text(&mut self, additional: usize) {
        self.text.reserve(additional);
    }

    /// Sets (or replaces) the value of a node. A replaced value's bytes stay
    /// in the tree's text until the tree is dropped.
    pub fn set_value(&mut self, node: NodeId, value: Option<String>) {
        let value = value.map(|v| self.keep(&v));
        self.nodes[node.index()].value = value;
    }

    /// Sets the span of a node.
    pub fn set_span(&mut self, node: NodeId, span: Option<Span>) {
        self.nodes[node.index()].span = span;
    }

    /// Registers `key` (a FHIR `Patient/123` reference or a `fullUrl`) as naming
    /// `node`, so that [`crate::path::Step::Follow`] can jump to it.
    pub fn register_key(&mut self, key: impl Into<String>, node: NodeId) {
        self.keys.insert(key.into(), node);
    }

    /// The node registered under `key`, if any.
    pub fn lookup(&self, key: &str) -> Option<NodeId> {
        self.keys.get(key).copied()
    }

    /// Name of a node (segment id, field number, JSON key, loop id…).
    pub fn name(&self, node: NodeId) -> &str {
        &self.nodes[node.index()].name
    }

    /// Decoded text value of a node, if it has one.
    pub fn value(&self, node: NodeId) -> Option<&str> {
        let range = self.nodes[node.index()].value.clone()?;
        self.text.get(range)
    }

    /// Byte span of a node in the raw input, if known.
    pub fn span(&self, node: NodeId) -> Option<Span> {
        self.nodes[node.index()].span
    }

    /// Parent of a node (`None` for the root).
    pub fn parent(&self, node: NodeId) -> Option<NodeId> {
        self.nodes[node.index()].parent
    }

    /// Children of a node, in document order.
    pub fn children(&self, node: NodeId) -> &[NodeId] {
        &self.nodes[node.index()].children
    }

    /// Children of `node` whose name is `name`, in document order.
    pub fn children_named<'a>(
        &'a self,
        node: NodeId,
        name: &'a str,
    ) -> impl Iterator<Item = NodeId> + 'a {
        self.children(node)
            .iter()
            .copied()
            .filter(move |c| self.name(*c) == name)
    }

    /// Number of nodes, root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the tree holds only its root.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// The names from the root (exclusive) down to `node`, joined by `/`:
    /// a readable location for diagnostics and `--explain`.
    pub fn location(&self, node: NodeId) -> String {
        let mut names = Vec::new();
        let mut current = Some(node);
        while let Some(n) = current {
            if n == NodeId::ROOT {
                break;
            }
            names.push(self.name(n));
            current = self.parent(n);
        }
        names.reverse();
        names.join("/")
    }

    /// All nodes below `node` (not including it), depth-first in document order.
    pub fn descendants(&self, node: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack: Vec<NodeId> = self.children(node).iter().rev().copied().collect();
        while let Some(n) = stack.pop() {
            out.push(n);
            stack.extend(self.children(n).iter().rev().copied());
        }
        out
    }
}

/// The input formats the gateway understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// HL7 v2 pipe-delimited messages.
    Hl7v2,
    /// X12 EDI (278, 999, TA1).
    X12,
    /// FHIR R4 JSON resources and bundles.
    Fhir,
    /// Values captured from a desktop application's screens.
    Desktop,
    /// Any other JSON document (tests, docs).
    Json,
    /// Da Vinci PAS Request Bundles (FHIR R4 Claim `use = preauthorization`)
    /// an EHR posts to the gateway's `Claim/$submit`.
    #[serde(rename = "davinci-pas")]
    DavinciPas,
}

crate::vocabulary::vocabulary!(SourceFormat, "source format" {
    Hl7v2 => "hl7v2",
    X12 => "x12",
    Fhir => "fhir",
    Desktop => "desktop",
    Json => "json",
    DavinciPas => "davinci-pas",
});

impl SourceFormat {
    /// The format named `name` (as [`SourceFormat::as_str`] writes it).
    pub fn from_name(name: &str) -> Option<SourceFormat> {
        name.parse().ok()
    }
}

/// Facts about a message that identify it, independent of its mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// Message type as the format names it: `ORM^O01`, `278`, `Bundle`.
    pub message_type: Option<String>,
    /// Trigger event or purpose (HL7 trigger, X12 BHT02).
    pub trigger: Option<String>,
    /// Format version (`2.5.1`, `005010X217`, `4.0.1`).
    pub version: Option<String>,
    /// The sender's control id (MSH-10, ST02, resource id).
    pub control_id: Option<String>,
    /// The sending system.
    pub sender: Option<String>,
}

/// One parsed input: its tree, its identifying facts and what the parser noticed.
#[derive(Debug, Clone)]
pub struct SourceDocument {
    /// The input format.
    pub format: SourceFormat,
    /// Identifying facts read from the header.
    pub meta: MessageMeta,
    /// The parsed tree; spans point into the raw bytes the adapter kept.
    pub tree: SourceTree,
    /// Parser warnings and errors with byte positions. A document with an
    /// error-severity diagnostic may still carry a partial tree.
    pub diagnostics: Vec<Diagnostic>,
}

impl SourceDocument {
    /// True when the parser reported no error-severity diagnostic.
    pub fn is_clean(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_format_round_trips_through_its_name() {
        for format in SourceFormat::ALL {
            assert_eq!(SourceFormat::from_name(format.as_str()), Some(format));
            let json = serde_json::to_string(&format).expect("serialize");
            assert_eq!(json, format!("\"{}\"", format.as_str()));
        }
        assert_eq!(SourceFormat::from_name("hl7"), None);
    }

    use super::*;

    #[test]
    fn builds_and_walks_a_tree() {
        let mut t = SourceTree::new("message");
        let pid = t.push(t.root(), "PID", None, Some(Span::new(0, 20)));
        let f3 = t.push(pid, "3", Some("E1234".into()), Some(Span::new(8, 13)));
        assert_eq!(t.name(f3), "3");
        assert_eq!(t.value(f3), Some("E1234"));
        assert_eq!(t.parent(f3), Some(pid));
        assert_eq!(t.location(f3), "PID/3");
        assert_eq!(t.descendants(t.root()), vec![pid, f3]);
        assert_eq!(t.children_named(t.root(), "PID").count(), 1);
        t.register_key("Patient/1", pid);
        assert_eq!(t.lookup("Patient/1"), Some(pid));
    }

    /// Values share one text and child lists start inline: neither may leak
    /// between nodes, whatever order they are pushed, replaced or cleared in.
    #[test]
    fn values_and_children_stay_with_their_node() {
        let mut t = SourceTree::new("message");
        let seg = t.push(t.root(), "OBX", None, None);
        let fields: Vec<NodeId> = (1..=9)
            .map(|i| {
                let value = (i % 3 != 0).then(|| "x".repeat(i));
                t.push_text(seg, Cow::Owned(i.to_string()), value.as_deref(), None)
            })
            .collect();
        // Nine children: past the four kept inline.
        assert_eq!(t.children(seg), fields.as_slice());
        let empty = t.push_text(fields[0], Cow::Borrowed("1"), Some(""), None);
        t.set_value(fields[1], Some("replaced".into()));
        t.set_value(fields[3], None);
        for (i, node) in fields.iter().enumerate() {
            let want = match i + 1 {
                2 => Some("replaced".to_owned()),
                4 => None,
                n if n % 3 == 0 => None,
                n => Some("x".repeat(n)),
            };
            assert_eq!(t.value(*node).map(str::to_owned), want, "field {}", i + 1);
        }
        assert_eq!(t.value(empty), Some(""));
        let shared = t.push_same_value(seg, Cow::Borrowed("10"), fields[4], None);
        t.set_value(fields[4], Some("later".into()));
        assert_eq!(t.value(shared), Some("xxxxx"), "shares the value as it was");
        assert_eq!(t.value(fields[4]), Some("later"));
        assert_eq!(t.children(fields[0]), &[empty]);
        assert_eq!(t.value(t.root()), None);
    }

    /// What a tree is, without sharing: each node owns its value and its
    /// child list. The arena must answer every read the same way.
    #[derive(Clone, Debug)]
    enum Op {
        Push {
            parent: usize,
            value: Option<String>,
        },
        Share {
            parent: usize,
            same_as: usize,
        },
        Set {
            node: usize,
            value: Option<String>,
        },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let value = prop::option::of("[a-z^&]{0,6}");
        prop_oneof![
            4 => (any::<usize>(), value.clone()).prop_map(|(parent, value)| Op::Push { parent, value }),
            1 => (any::<usize>(), any::<usize>()).prop_map(|(parent, same_as)| Op::Share { parent, same_as }),
            1 => (any::<usize>(), value).prop_map(|(node, value)| Op::Set { node, value }),
        ]
    }

    proptest::proptest! {
        #[test]
        fn the_arena_reads_as_a_tree_of_owned_nodes(ops in proptest::collection::vec(op(), 0..80)) {
            let mut tree = SourceTree::new("root");
            let mut ids = vec![tree.root()];
            // Model: (value, children) per node, in push order.
            let mut model: Vec<(Option<String>, Vec<usize>)> = vec![(None, Vec::new())];
            for op in ops {
                match op {
                    Op::Push { parent, value } => {
                        let p = parent % ids.len();
                        let id = tree.push_text(ids[p], Cow::Borrowed("n"), value.as_deref(), None);
                        ids.push(id);
                        model.push((value, Vec::new()));
                        let new = model.len() - 1;
                        model[p].1.push(new);
                    }
                    Op::Share { parent, same_as } => {
                        let p = parent % ids.len();
                        let s = same_as % ids.len();
                        let id = tree.push_same_value(ids[p], Cow::Borrowed("n"), ids[s], None);
                        ids.push(id);
                        let value = model[s].0.clone();
                        model.push((value, Vec::new()));
                        let new = model.len() - 1;
                        model[p].1.push(new);
                    }
                    Op::Set { node, value } => {
                        let n = node % ids.len();
                        tree.set_value(ids[n], value.clone());
                        model[n].0 = value;
                    }
                }
            }
            proptest::prop_assert_eq!(tree.len(), model.len());
            for (i, (value, children)) in model.iter().enumerate() {
                proptest::prop_assert_eq!(tree.value(ids[i]), value.as_deref());
                let want: Vec<NodeId> = children.iter().map(|c| ids[*c]).collect();
                proptest::prop_assert_eq!(tree.children(ids[i]), want.as_slice());
            }
        }
    }
}

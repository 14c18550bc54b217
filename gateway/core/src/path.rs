//! Compiled source paths and their evaluation.
//!
//! Each format has its own path *syntax* — HL7 `PID-3[*](5=MR).1`, X12
//! `2010CA/NM1-09`, FHIR `ServiceRequest.subject.resolve().birthDate` — but they
//! all compile to the same few [`Step`]s over a [`SourceTree`]. Adapters implement
//! [`PathSyntax`] (text → [`Path`]); evaluation lives here, once, so the mapping
//! engine stays format-neutral and every format gets the same semantics for
//! repetition, selection and filtering.
//!
//! Repetition is modelled as repeated sibling nodes with the same name (an HL7
//! field repeated with `~`, a JSON array, a repeated X12 loop), so "the first
//! repetition" and "all repetitions" are just [`Select::First`] and [`Select::All`].

use crate::source::{NodeId, SourceTree};

/// Which of several matching nodes a step keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The first match (the default in every syntax).
    First,
    /// The match at this 0-based position.
    Index(usize),
    /// The last match.
    Last,
    /// Every match (a `foreach` source or a `[*]`).
    All,
}

impl Select {
    fn apply(self, matches: Vec<NodeId>, out: &mut Vec<NodeId>) {
        match self {
            Select::All => out.extend(matches),
            Select::First => out.extend(matches.first().copied()),
            Select::Last => out.extend(matches.last().copied()),
            Select::Index(i) => out.extend(matches.get(i).copied()),
        }
    }
}

/// A comparison inside a [`Step::Where`] filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The sub-path's value equals one of these (exact, case-sensitive).
    Equals(Vec<String>),
    /// The sub-path's value equals none of these (or the sub-path is absent).
    NotEquals(Vec<String>),
    /// The sub-path has a non-empty value.
    Exists,
    /// The sub-path is absent or empty.
    Missing,
}

impl Condition {
    /// Whether the condition holds for the sub-path's first non-empty value
    /// (`None`: the sub-path yields none).
    pub fn holds(&self, value: Option<&str>) -> bool {
        match self {
            Condition::Equals(options) => value.is_some_and(|v| options.iter().any(|o| o == v)),
            Condition::NotEquals(options) => !value.is_some_and(|v| options.iter().any(|o| o == v)),
            Condition::Exists => value.is_some_and(|v| !v.is_empty()),
            Condition::Missing => value.is_none_or(str::is_empty),
        }
    }
}

/// One navigation step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Children with this name (`*` for any), then [`Select`] among them, per
    /// context node.
    Child {
        /// Node name to match, or `*`.
        name: String,
        /// Which matches to keep.
        select: Select,
    },
    /// Descendants at any depth with this name, then [`Select`] among them, per
    /// context node.
    Descendant {
        /// Node name to match, or `*`.
        name: String,
        /// Which matches to keep.
        select: Select,
    },
    /// Keep the context nodes for which `path` (relative to each) satisfies the
    /// condition.
    Where {
        /// Relative path evaluated from each context node.
        path: Path,
        /// The test on its first value.
        condition: Condition,
    },
    /// Select among the whole current node set (after a `Where`).
    Pick(Select),
    /// Replace each node by the node registered under its value
    /// ([`SourceTree::register_key`]): FHIR reference following.
    Follow,
    /// Replace each node by its parent.
    Parent,
    /// The later siblings of each context node with this name, up to the
    /// next sibling named like the context node, then [`Select`] among them:
    /// the segments of a flat HL7 group (`PR1` → its `AUT`, `OBR` → its
    /// `NTE`), where the message grammar nests what the wire format does not.
    Following {
        /// Node name to match, or `*`.
        name: String,
        /// Which matches to keep.
        select: Select,
    },
}

/// A compiled path: the steps plus the text it was compiled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The source text, for diagnostics and `--explain`.
    pub text: String,
    /// The steps, applied left to right.
    pub steps: Vec<Step>,
}

impl Path {
    /// A path from its text and steps.
    pub fn new(text: impl Into<String>, steps: Vec<Step>) -> Self {
        Path {
            text: text.into(),
            steps,
        }
    }

    /// Evaluates the path from `from` and returns the matching nodes in
    /// document order. Never panics; an impossible path yields nothing.
    pub fn evaluate(&self, tree: &SourceTree, from: NodeId) -> Vec<NodeId> {
        let mut current = vec![from];
        for step in &self.steps {
            if current.is_empty() {
                break;
            }
            current = apply_step(step, tree, current);
        }
        current
    }

    /// The first non-empty value the path yields, if any.
    pub fn first_value<'t>(&self, tree: &'t SourceTree, from: NodeId) -> Option<&'t str> {
        self.evaluate(tree, from)
            .into_iter()
            .filter_map(|n| tree.value(n))
            .find(|v| !v.is_empty())
    }
}

fn name_matches(tree: &SourceTree, node: NodeId, name: &str) -> bool {
    name == "*" || tree.name(node) == name
}

fn apply_step(step: &Step, tree: &SourceTree, current: Vec<NodeId>) -> Vec<NodeId> {
    let mut out = Vec::new();
    match step {
        Step::Child { name, select } => {
            for node in current {
                let matches: Vec<NodeId> = tree
                    .children(node)
                    .iter()
                    .copied()
                    .filter(|c| name_matches(tree, *c, name))
                    .collect();
                select.apply(matches, &mut out);
            }
        }
        Step::Descendant { name, select } => {
            for node in current {
                let matches: Vec<NodeId> = tree
                    .descendants(node)
                    .into_iter()
                    .filter(|c| name_matches(tree, *c, name))
                    .collect();
                select.apply(matches, &mut out);
            }
        }
        Step::Where { path, condition } => {
            out.extend(
                current
                    .into_iter()
                    .filter(|n| condition.holds(path.first_value(tree, *n))),
            );
        }
        Step::Pick(select) => select.apply(current, &mut out),
        Step::Follow => {
            out.extend(
                current
                    .into_iter()
                    .filter_map(|n| tree.value(n).and_then(|key| tree.lookup(key))),
            );
        }
        Step::Parent => out.extend(current.into_iter().filter_map(|n| tree.parent(n))),
        Step::Following { name, select } => {
            for node in current {
                select.apply(following_in_group(tree, node, name), &mut out);
            }
        }
    }
    dedup_in_order(out)
}

/// The siblings after `node` named `name`, stopping at the next sibling that
/// has `node`'s own name (where the next group of the same kind begins).
fn following_in_group(tree: &SourceTree, node: NodeId, name: &str) -> Vec<NodeId> {
    let Some(parent) = tree.parent(node) else {
        return Vec::new();
    };
    let own = tree.name(node);
    tree.children(parent)
        .iter()
        .copied()
        .skip_while(|c| *c != node)
        .skip(1)
        .take_while(|c| tree.name(*c) != own)
        .filter(|c| name_matches(tree, *c, name))
        .collect()
}

/// Descendant steps from nested context nodes can reach the same node twice;
/// keep the first occurrence so results stay in document order without repeats.
fn dedup_in_order(nodes: Vec<NodeId>) -> Vec<NodeId> {
    if nodes.len() < 2 {
        return nodes;
    }
    let mut seen = std::collections::HashSet::with_capacity(nodes.len());
    nodes.into_iter().filter(|n| seen.insert(*n)).collect()
}

/// A path that could not be compiled, with the byte offset in the path text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset} of `{text}`)")]
pub struct PathError {
    /// The path text.
    pub text: String,
    /// Byte offset in `text` where the problem is.
    pub offset: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl PathError {
    /// A path error at `offset` in `text`.
    pub fn new(text: &str, offset: usize, message: impl Into<String>) -> Self {
        PathError {
            text: text.to_owned(),
            offset,
            message: message.into(),
        }
    }
}

/// A format's path syntax: compiles path text into [`Path`] steps.
///
/// Implemented by each adapter crate (HL7, X12, FHIR) and by
/// [`crate::json_tree::JsonPathSyntax`]; the mapping engine picks one by the
/// profile's format and never parses paths itself.
pub trait PathSyntax: Send + Sync {
    /// The format name this syntax belongs to (`hl7v2`, `x12`, `fhir`, `json`).
    fn name(&self) -> &'static str;

    /// Compiles `text`; errors carry the offset of the offending character.
    fn compile(&self, text: &str) -> Result<Path, PathError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(name: &str, select: Select) -> Step {
        Step::Child {
            name: name.into(),
            select,
        }
    }

    /// PID with two identifiers: `E1^^^HOSP^MR~999^^^SSA^SS`.
    fn sample() -> SourceTree {
        let mut t = SourceTree::new("message");
        let pid = t.push(t.root(), "PID", None, None);
        for (id, kind) in [("E1", "MR"), ("999", "SS")] {
            let rep = t.push(pid, "3", Some(format!("{id}^^^X^{kind}")), None);
            t.push(rep, "1", Some(id.into()), None);
            t.push(rep, "5", Some(kind.into()), None);
        }
        t
    }

    #[test]
    fn selects_repetition_by_component_value() {
        let t = sample();
        let path = Path::new(
            "PID-3[*](5=SS).1",
            vec![
                child("PID", Select::First),
                child("3", Select::All),
                Step::Where {
                    path: Path::new("5", vec![child("5", Select::First)]),
                    condition: Condition::Equals(vec!["SS".into()]),
                },
                child("1", Select::First),
            ],
        );
        assert_eq!(path.first_value(&t, t.root()), Some("999"));
    }

    #[test]
    fn first_and_index_selection() {
        let t = sample();
        let first = Path::new(
            "",
            vec![
                child("PID", Select::First),
                child("3", Select::First),
                child("1", Select::First),
            ],
        );
        assert_eq!(first.first_value(&t, t.root()), Some("E1"));
        let second = Path::new(
            "",
            vec![
                Step::Descendant {
                    name: "3".into(),
                    select: Select::Index(1),
                },
                child("1", Select::First),
            ],
        );
        assert_eq!(second.first_value(&t, t.root()), Some("999"));
        let missing = Path::new("", vec![child("PV1", Select::First), Step::Parent]);
        assert!(missing.evaluate(&t, t.root()).is_empty());
    }

    #[test]
    fn following_stays_inside_the_group_of_the_context_node() {
        // PR1 A, AUT 1, CTD, AUT 2, PR1 B, AUT 3, PR1 C
        let mut t = SourceTree::new("message");
        let root = t.root();
        let mut pr1s = Vec::new();
        for (seg, value) in [
            ("PR1", "A"),
            ("AUT", "1"),
            ("CTD", "-"),
            ("AUT", "2"),
            ("PR1", "B"),
            ("AUT", "3"),
            ("PR1", "C"),
        ] {
            let node = t.push(root, seg, Some(value.into()), None);
            if seg == "PR1" {
                pr1s.push(node);
            }
        }
        let auts = |select| {
            Path::new(
                "",
                vec![Step::Following {
                    name: "AUT".into(),
                    select,
                }],
            )
        };
        let values = |path: &Path, from| -> Vec<String> {
            path.evaluate(&t, from)
                .into_iter()
                .filter_map(|n| t.value(n).map(str::to_owned))
                .collect()
        };
        assert_eq!(values(&auts(Select::All), pr1s[0]), ["1", "2"]);
        assert_eq!(values(&auts(Select::First), pr1s[1]), ["3"]);
        assert!(values(&auts(Select::All), pr1s[2]).is_empty());
        assert!(values(&auts(Select::All), root).is_empty());
    }

    #[test]
    fn follows_registered_keys() {
        let mut t = SourceTree::new("bundle");
        let sr = t.push(t.root(), "ServiceRequest", None, None);
        let subject = t.push(sr, "subject", None, None);
        t.push(subject, "reference", Some("Patient/p1".into()), None);
        let patient = t.push(t.root(), "Patient", None, None);
        t.push(patient, "birthDate", Some("1970-01-31".into()), None);
        t.register_key("Patient/p1", patient);
        let path = Path::new(
            "",
            vec![
                child("ServiceRequest", Select::First),
                child("subject", Select::First),
                child("reference", Select::First),
                Step::Follow,
                child("birthDate", Select::First),
            ],
        );
        assert_eq!(path.first_value(&t, t.root()), Some("1970-01-31"));
    }
}

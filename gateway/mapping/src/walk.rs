//! Path evaluation for the mapping hot path, with the exact semantics of
//! [`Path::evaluate`] but without its per-step allocations.
//!
//! `Path::evaluate` (gateway-core) collects every step's matches into a new
//! `Vec` and de-duplicates through a `HashSet`; for the short, mostly
//! first-match paths mapping profiles use (`PID-5.1.1`, `-4.1`) that is most
//! of the cost of a rule. Here:
//!
//! * a path whose steps each keep at most one node from one node (child
//!   steps with `First`/`Index`/`Last`, filters, picks) is walked node by
//!   node with no allocation at all;
//! * a path with an `All` child step (`PID-3[*].1`, `IN1[*]`) uses two
//!   buffers. Children of distinct nodes are distinct and filters and picks
//!   only keep a subset, so the set never holds a node twice and the
//!   de-duplication is not needed;
//! * anything else (descendant, parent, reference-following steps, which can
//!   reach a node twice) falls back to `Path::evaluate`.
//!
//! A unit proptest checks both against `Path::evaluate` on random trees.

use gateway_core::path::{Path, Select, Step};
use gateway_core::source::{NodeId, SourceTree};
use smallvec::SmallVec;

/// Appends the nodes `path` yields from `from` to `out`, in document order
/// (the same nodes, in the same order, as [`Path::evaluate`]).
pub(crate) fn evaluate_into(path: &Path, tree: &SourceTree, from: NodeId, out: &mut Vec<NodeId>) {
    match single(path, tree, from) {
        Single::Node(n) => out.push(n),
        Single::Empty => {}
        Single::Many => many(path, tree, from, out),
    }
}

/// The first non-empty value `path` yields from `from` (as
/// [`Path::first_value`]).
pub(crate) fn first_value<'t>(path: &Path, tree: &'t SourceTree, from: NodeId) -> Option<&'t str> {
    match single(path, tree, from) {
        Single::Node(n) => tree.value(n).filter(|v| !v.is_empty()),
        Single::Empty => None,
        Single::Many => {
            let mut nodes = Vec::new();
            many(path, tree, from, &mut nodes);
            nodes
                .into_iter()
                .filter_map(|n| tree.value(n))
                .find(|v| !v.is_empty())
        }
    }
}

enum Single {
    Node(NodeId),
    Empty,
    /// The path can yield several nodes: evaluate it with [`many`].
    Many,
}

/// Walks `path` while every step keeps at most one node.
fn single(path: &Path, tree: &SourceTree, from: NodeId) -> Single {
    // Decide first, so a path is never half-walked.
    if !path.steps.iter().all(|s| match s {
        Step::Child { select, .. } | Step::Pick(select) => *select != Select::All,
        Step::Where { .. } => true,
        _ => false,
    }) {
        return Single::Many;
    }
    let mut node = from;
    for step in &path.steps {
        let next = match step {
            Step::Child { name, select } => child(tree, node, name, *select),
            Step::Where { path, condition } => condition
                .holds(first_value(path, tree, node))
                .then_some(node),
            Step::Pick(Select::First | Select::Last | Select::Index(0)) => Some(node),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return Single::Empty,
        }
    }
    Single::Node(node)
}

/// The `select`ed child of `node` named `name` (`*`: any name); not for `All`.
fn child(tree: &SourceTree, node: NodeId, name: &str, select: Select) -> Option<NodeId> {
    let mut matching = tree
        .children(node)
        .iter()
        .copied()
        .filter(|c| name_matches(tree, *c, name));
    match select {
        Select::First => matching.next(),
        Select::Index(i) => matching.nth(i),
        Select::Last => matching.next_back(),
        Select::All => None,
    }
}

fn name_matches(tree: &SourceTree, node: NodeId, name: &str) -> bool {
    name == "*" || same_name(tree.name(node), name)
}

/// `a == b` for the short names paths use (`PID`, `3`, `12`). A slice
/// comparison calls into `memcmp`, which for three bytes costs more than the
/// comparison (callgrind: a fifth of a path walk); names are compared byte
/// by byte here instead.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Evaluates a path that may yield several nodes.
fn many(path: &Path, tree: &SourceTree, from: NodeId, out: &mut Vec<NodeId>) {
    if !path
        .steps
        .iter()
        .all(|s| matches!(s, Step::Child { .. } | Step::Where { .. } | Step::Pick(_)))
    {
        out.extend(path.evaluate(tree, from));
        return;
    }
    // Inline up to 16 nodes (an `IN1[*]` or `OBR[*]` rarely holds more): a
    // pair of heap vectors here was ~2% of a map's allocations.
    let mut current: SmallVec<[NodeId; 16]> = SmallVec::new();
    current.push(from);
    let mut next: SmallVec<[NodeId; 16]> = SmallVec::new();
    for step in &path.steps {
        if current.is_empty() {
            break;
        }
        next.clear();
        match step {
            Step::Child { name, select } => {
                for &node in &current {
                    match select {
                        Select::All => next.extend(
                            tree.children(node)
                                .iter()
                                .copied()
                                .filter(|c| name_matches(tree, *c, name)),
                        ),
                        other => next.extend(child(tree, node, name, *other)),
                    }
                }
            }
            Step::Where { path, condition } => next.extend(
                current
                    .iter()
                    .copied()
                    .filter(|n| condition.holds(first_value(path, tree, *n))),
            ),
            Step::Pick(select) => match select {
                Select::All => next.extend_from_slice(&current),
                Select::First => next.extend(current.first().copied()),
                Select::Last => next.extend(current.last().copied()),
                Select::Index(i) => next.extend(current.get(*i).copied()),
            },
            // Excluded above.
            _ => {}
        }
        std::mem::swap(&mut current, &mut next);
    }
    out.extend_from_slice(&current);
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::path::Condition;
    use proptest::prelude::*;

    const NAMES: [&str; 3] = ["a", "b", "c"];

    /// A tree from (parent choice, name, value) triples: node i+1 hangs under
    /// an earlier node.
    fn tree(spec: &[(usize, usize, Option<u8>)]) -> (SourceTree, Vec<NodeId>) {
        let mut t = SourceTree::new("root");
        let mut ids = vec![t.root()];
        for (parent, name, value) in spec {
            let parent = ids[parent % ids.len()];
            let value = value.map(|v| {
                if v == 0 {
                    String::new()
                } else {
                    format!("v{}", v % 3)
                }
            });
            ids.push(t.push(parent, NAMES[name % 3], value, None));
        }
        (t, ids)
    }

    fn select() -> impl Strategy<Value = Select> {
        prop_oneof![
            Just(Select::First),
            Just(Select::Last),
            Just(Select::All),
            (0usize..3).prop_map(Select::Index),
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_owned()),
            (0usize..3).prop_map(|i| NAMES[i].to_owned())
        ]
    }

    fn condition() -> impl Strategy<Value = Condition> {
        let values = prop::collection::vec((0u8..3).prop_map(|v| format!("v{v}")), 1..3);
        prop_oneof![
            values.clone().prop_map(Condition::Equals),
            values.prop_map(Condition::NotEquals),
            Just(Condition::Exists),
            Just(Condition::Missing),
        ]
    }

    fn step(depth: u32) -> BoxedStrategy<Step> {
        let leaf = prop_oneof![
            4 => (name(), select()).prop_map(|(name, select)| Step::Child { name, select }),
            1 => (name(), select()).prop_map(|(name, select)| Step::Descendant { name, select }),
            1 => select().prop_map(Step::Pick),
            1 => Just(Step::Parent),
        ];
        if depth == 0 {
            return leaf.boxed();
        }
        prop_oneof![
            4 => leaf,
            1 => (prop::collection::vec(step(depth - 1), 0..3), condition()).prop_map(
                |(steps, condition)| Step::Where { path: Path::new("sub", steps), condition }
            ),
        ]
        .boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn same_nodes_as_path_evaluate(
            spec in prop::collection::vec((0usize..64, 0usize..3, prop::option::of(0u8..4)), 0..30),
            steps in prop::collection::vec(step(1), 0..5),
            from in 0usize..31,
        ) {
            let (t, ids) = tree(&spec);
            let from = ids[from % ids.len()];
            let path = Path::new("p", steps);
            let mut ours = Vec::new();
            evaluate_into(&path, &t, from, &mut ours);
            prop_assert_eq!(&ours, &path.evaluate(&t, from));
            prop_assert_eq!(first_value(&path, &t, from), path.first_value(&t, from));
        }
    }
}

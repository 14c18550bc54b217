//! Structural comparison of an actual Case (or any JSON) with the expected one,
//! under per-field rules in the NIST test-tool style.
//!
//! Rules are keyed by a field pattern: a dotted path where `[]` stands for any
//! array position (`services[].code.display`), or an exact position
//! (`services[1].quantity`). The most specific matching pattern wins (exact
//! positions beat `[]`, longer beats shorter); fields without a rule inherit
//! the rule of their nearest ruled ancestor, and the default is `fixed`.
//!
//! * `fixed`: must equal the expectation (objects key by key, arrays item by
//!   item); a field present in the actual but not the expectation is a
//!   difference too, because Case v1 omits absent data rather than inventing it.
//! * `present`: must exist with a non-null value; the value is not compared.
//! * `absent`: must not exist.
//! * `ignore`: not compared at all (system-generated ids and timestamps).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How one field is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Must equal the expectation.
    Fixed,
    /// Must exist, any value.
    Present,
    /// Must not exist.
    Absent,
    /// Not compared.
    Ignore,
}

/// Field rules: pattern → rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    patterns: BTreeMap<String, Rule>,
}

impl Rules {
    /// Rules from a map of patterns.
    pub fn new(patterns: BTreeMap<String, Rule>) -> Self {
        Rules { patterns }
    }

    /// Adds a rule unless the pattern already has one (suite defaults under case rules).
    pub fn with_default(mut self, pattern: &str, rule: Rule) -> Self {
        self.patterns.entry(pattern.to_owned()).or_insert(rule);
        self
    }

    /// The patterns, for reports.
    pub fn patterns(&self) -> &BTreeMap<String, Rule> {
        &self.patterns
    }

    /// The rule for a concrete path like `services[0].code.code`.
    pub fn rule_for(&self, path: &str) -> Rule {
        let generic = generalize(path);
        let mut candidates = ancestors(path)
            .into_iter()
            .map(|p| (p.clone(), true))
            .chain(ancestors(&generic).into_iter().map(|p| (p, false)))
            .filter_map(|(p, exact)| self.patterns.get(&p).map(|r| (p.len(), exact, *r)))
            .collect::<Vec<_>>();
        // Longest pattern first; at equal length an exact position beats `[]`.
        candidates.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        candidates.first().map_or(Rule::Fixed, |c| c.2)
    }
}

/// `services[0].code` → `services[].code`.
fn generalize(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// `a.b[0].c` → [`a.b[0].c`, `a.b[0]`, `a.b`, `a`].
fn ancestors(path: &str) -> Vec<String> {
    let mut out = vec![path.to_owned()];
    let mut current = path;
    while let Some(cut) = current.rfind(['.', '[']) {
        current = &current[..cut];
        if current.is_empty() {
            break;
        }
        out.push(current.to_owned());
    }
    out
}

/// One mismatch, with the field path and both sides rendered as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Concrete field path.
    pub path: String,
    /// The rule that was applied.
    pub rule: Rule,
    /// What was expected (JSON text), if anything.
    pub expected: Option<String>,
    /// What was produced (JSON text), if anything.
    pub actual: Option<String>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".to_owned());
        match self.rule {
            Rule::Present => write!(f, "{}: expected a value, found none", self.path),
            Rule::Absent => write!(
                f,
                "{}: expected absent, found {}",
                self.path,
                show(&self.actual)
            ),
            _ => write!(
                f,
                "{}: expected {}, found {}",
                self.path,
                show(&self.expected),
                show(&self.actual)
            ),
        }
    }
}

/// Compares `actual` with `expected` under `rules`; empty means equal.
pub fn compare(expected: &Value, actual: &Value, rules: &Rules) -> Vec<Difference> {
    let mut out = Vec::new();
    compare_at("", Some(expected), Some(actual), rules, &mut out);
    // Rules that name fields absent from the expectation (`absent`/`present`
    // on a field the expected file leaves out) still apply.
    for (pattern, rule) in rules.patterns() {
        if matches!(rule, Rule::Absent | Rule::Present) && !pattern.contains("[]") {
            let found = lookup(actual, pattern);
            let listed = lookup(expected, pattern).is_some();
            if listed {
                continue;
            }
            match (rule, found) {
                (Rule::Absent, Some(v)) => out.push(Difference {
                    path: pattern.clone(),
                    rule: *rule,
                    expected: None,
                    actual: Some(v.to_string()),
                }),
                (Rule::Present, None) => out.push(Difference {
                    path: pattern.clone(),
                    rule: *rule,
                    expected: None,
                    actual: None,
                }),
                _ => {}
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup();
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn compare_at(
    path: &str,
    expected: Option<&Value>,
    actual: Option<&Value>,
    rules: &Rules,
    out: &mut Vec<Difference>,
) {
    let rule = if path.is_empty() {
        Rule::Fixed
    } else {
        rules.rule_for(path)
    };
    let actual = actual.filter(|v| !v.is_null());
    let expected = expected.filter(|v| !v.is_null());
    let diff = |rule| Difference {
        path: path.to_owned(),
        rule,
        expected: expected.map(Value::to_string),
        actual: actual.map(Value::to_string),
    };
    match rule {
        Rule::Ignore => {}
        Rule::Present => {
            if actual.is_none() {
                out.push(diff(Rule::Present));
            }
        }
        Rule::Absent => {
            if actual.is_some() {
                out.push(diff(Rule::Absent));
            }
        }
        Rule::Fixed => match (expected, actual) {
            (None, None) => {}
            (Some(Value::Object(e)), Some(Value::Object(a))) => {
                let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
                keys.sort();
                keys.dedup();
                for key in keys {
                    compare_at(&join(path, key), e.get(key), a.get(key), rules, out);
                }
            }
            (Some(Value::Array(e)), Some(Value::Array(a))) => {
                for i in 0..e.len().max(a.len()) {
                    compare_at(&format!("{path}[{i}]"), e.get(i), a.get(i), rules, out);
                }
            }
            (Some(e), Some(a)) if numbers_equal(e, a) || e == a => {}
            (Some(v), None) | (None, Some(v)) if all_leaves_ignored(path, v, rules) => {}
            _ => out.push(diff(Rule::Fixed)),
        },
    }
}

/// `1` and `1.0` are the same quantity.
fn numbers_equal(e: &Value, a: &Value) -> bool {
    match (e.as_f64(), a.as_f64()) {
        (Some(x), Some(y)) => e.is_number() && a.is_number() && x == y,
        _ => false,
    }
}

/// A value missing on one side whose every leaf is ignored is not a
/// difference (e.g. `source` when only `source.received_at` was expected).
fn all_leaves_ignored(path: &str, value: &Value, rules: &Rules) -> bool {
    let mut leaves = Vec::new();
    collect_leaves(path, value, &mut leaves);
    !leaves.is_empty()
        && leaves
            .iter()
            .all(|leaf| rules.rule_for(leaf) == Rule::Ignore)
}

/// Looks a concrete dotted path up in a JSON value.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    let mut current = value;
    for part in path.split('.') {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let n: usize = index.trim_end_matches(']').parse().ok()?;
            current = current.get(n)?;
        }
    }
    (!current.is_null()).then_some(current)
}

/// Every concrete leaf path with a value in `value` (for field coverage).
pub fn leaf_paths(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_leaves("", value, &mut out);
    out
}

fn collect_leaves(path: &str, value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                collect_leaves(&join(path, k), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_leaves(&format!("{path}[{i}]"), v, out);
            }
        }
        Value::Null => {}
        _ => out.push(path.to_owned()),
    }
}

/// `services[3].code` → `services[].code`, public for coverage reports.
pub fn field_pattern(path: &str) -> String {
    generalize(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(pairs: &[(&str, Rule)]) -> Rules {
        Rules::new(pairs.iter().map(|(p, r)| ((*p).to_owned(), *r)).collect())
    }

    #[test]
    fn equal_documents_have_no_differences() {
        let v = json!({"a": 1, "b": [{"c": "x"}]});
        assert!(compare(&v, &v, &Rules::default()).is_empty());
        assert!(compare(&json!({"q": 1}), &json!({"q": 1.0}), &Rules::default()).is_empty());
    }

    #[test]
    fn fixed_fields_report_changed_missing_and_invented_values() {
        let e = json!({"a": 1, "b": {"c": "x"}, "list": [1, 2]});
        let a = json!({"a": 2, "b": {"d": "y"}, "list": [1]});
        let d = compare(&e, &a, &Rules::default());
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, vec!["a", "b.c", "b.d", "list[1]"]);
        assert_eq!(d[0].to_string(), "a: expected 1, found 2");
    }

    #[test]
    fn rules_pick_the_most_specific_pattern() {
        let r = rules(&[
            ("source", Rule::Ignore),
            ("source.adapter", Rule::Fixed),
            ("services[].code", Rule::Present),
            ("services[1].code", Rule::Fixed),
        ]);
        assert_eq!(r.rule_for("source.received_at"), Rule::Ignore);
        assert_eq!(r.rule_for("source.adapter"), Rule::Fixed);
        assert_eq!(r.rule_for("services[0].code.code"), Rule::Present);
        assert_eq!(r.rule_for("services[1].code.code"), Rule::Fixed);
        assert_eq!(r.rule_for("patient.sex"), Rule::Fixed);
    }

    #[test]
    fn present_absent_and_ignore() {
        let r = rules(&[
            ("case_id", Rule::Present),
            ("decision", Rule::Absent),
            ("source.received_at", Rule::Ignore),
        ]);
        let e = json!({"case_id": "whatever", "source": {"received_at": "t1", "adapter": "hl7v2"}});
        let ok = json!({"case_id": "case-1", "source": {"received_at": "t2", "adapter": "hl7v2"}});
        assert!(compare(&e, &ok, &r).is_empty());
        let bad = json!({"source": {"received_at": "t2", "adapter": "x12"}, "decision": {"status": "approved"}});
        let d = compare(&e, &bad, &r);
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, vec!["case_id", "decision", "source.adapter"]);
    }

    #[test]
    fn lookup_and_leaves() {
        let v = json!({"services": [{"code": {"code": "1"}}, {"code": {"code": "2"}}]});
        assert_eq!(lookup(&v, "services[1].code.code"), Some(&json!("2")));
        assert_eq!(lookup(&v, "services[2].code"), None);
        assert_eq!(
            leaf_paths(&v),
            vec!["services[0].code.code", "services[1].code.code"]
        );
        assert_eq!(
            field_pattern("services[1].code.code"),
            "services[].code.code"
        );
    }
}

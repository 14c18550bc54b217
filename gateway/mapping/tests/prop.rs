//! Property tests: random (valid) profiles over random JSON trees never
//! panic, always load, give the same outcome twice, and any produced case is
//! valid Case v1 (it round-trips through its JSON form).

use std::fmt::Write as _;

use gateway_core::Case;
use gateway_mapping::{DefaultSyntaxes, MapContext, Profile, json_document};
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &["a", "b", "c", "id", "x"];

fn json_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        prop_oneof![
            Just("19700131".to_owned()),
            Just("202612011030-0500".to_owned()),
            Just("2026-12-01T10:00:00Z".to_owned()),
            Just("I509".to_owned()),
            Just("male".to_owned()),
            Just("approved".to_owned()),
            Just("CPT".to_owned()),
            Just("a,b c".to_owned()),
            Just(String::new()),
            "\\PC{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(|entries| {
                let mut m = Map::new();
                for (k, v) in entries {
                    m.insert(k.to_owned(), v);
                }
                Value::Object(m)
            }),
        ]
    })
}

#[derive(Debug, Clone, Copy)]
enum K {
    Text,
    List,
    Date,
    DateTime,
    Number,
    Count,
    Bool,
    Enum(&'static str),
}

const ROOT_FIELDS: &[(&str, K)] = &[
    ("urgency", K::Enum("routine")),
    ("patient.birth_date", K::Date),
    ("patient.sex", K::Enum("female")),
    ("patient.name.family", K::Text),
    ("patient.name.given", K::List),
    ("patient.phone", K::Text),
    ("references.placer_order", K::Text),
    ("notes", K::List),
    ("decision.status", K::Enum("approved")),
    ("decision.decided_at", K::DateTime),
    ("decision.effective.start", K::Date),
    ("providers[0].role", K::Enum("ordering")),
    ("providers[0].npi", K::Text),
    ("coverages[0].member_id", K::Text),
];

const ITEM_FIELDS: &[(&str, K)] = &[
    ("services[].code.code", K::Text),
    ("services[].code.system", K::Enum("CPT")),
    ("services[].quantity", K::Number),
    ("services[].modifiers", K::List),
    ("services[].line", K::Count),
    ("diagnoses[].code.code", K::Text),
    ("diagnoses[].code.system", K::Enum("ICD-10-CM")),
    ("diagnoses[].primary", K::Bool),
];

fn valid_value(kind: K) -> &'static str {
    match kind {
        K::Text | K::List => "v1",
        K::Date => "2026-01-02",
        K::DateTime => "2026-01-02T03:04:05Z",
        K::Number => "2",
        K::Count => "3",
        K::Bool => "true",
        K::Enum(v) => v,
    }
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(KEYS).prop_map(str::to_owned),
        (prop::sample::select(KEYS), prop::sample::select(KEYS))
            .prop_map(|(a, b)| format!("{a}.{b}")),
        (prop::sample::select(KEYS), prop::sample::select(KEYS))
            .prop_map(|(a, b)| format!("{a}[*].{b}")),
        prop::sample::select(KEYS).prop_map(|a| format!("..{a}")),
        (prop::sample::select(KEYS), prop::sample::select(KEYS))
            .prop_map(|(a, b)| format!("{a}({b}=1|true).{b}")),
        (prop::sample::select(KEYS), 0usize..3).prop_map(|(a, i)| format!("{a}[{i}]")),
    ]
}

const TRANSFORMS: &[&str] = &[
    "\"trim\"",
    "\"upper\"",
    "\"lower\"",
    "\"icd10\"",
    "{ split = \",\" }",
    "{ concat = \" \" }",
    "{ index = 0 }",
    "{ index = -1 }",
    "{ replace = \"a\", with = \"b\" }",
    "{ prefix = \"x\" }",
    "{ suffix = \"y\" }",
    "{ date = \"hl7\" }",
    "{ date = [\"iso\", \"%Y%m%d\"] }",
    "{ datetime = [\"hl7\", \"iso\"] }",
    "{ table = \"t1\" }",
    "{ table = \"t1\", miss = \"keep\" }",
    "{ table = \"t1\", miss = \"drop\" }",
    "{ table = \"t1\", miss = \"error\" }",
];

#[derive(Debug, Clone)]
struct RuleSpec {
    source: u8,
    paths: (String, String),
    transforms: Vec<usize>,
    default: bool,
    when: Option<(String, bool)>,
    required: bool,
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        0u8..4,
        (path(), path()),
        prop::collection::vec(0..TRANSFORMS.len(), 0..4),
        any::<bool>(),
        prop::option::of((path(), any::<bool>())),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(source, paths, transforms, default, when, required)| RuleSpec {
                source,
                paths,
                transforms,
                default,
                when,
                required,
            },
        )
}

fn rule_text(spec: &RuleSpec, kind: K, in_group: bool) -> String {
    let mut parts = Vec::new();
    match spec.source {
        0 => parts.push(format!("path = {:?}", spec.paths.0)),
        1 => parts.push(format!("paths = [{:?}, {:?}]", spec.paths.0, spec.paths.1)),
        2 => parts.push(format!("const = {:?}", valid_value(kind))),
        _ if in_group => parts.push("position = true".to_owned()),
        _ => parts.push(format!("path = {:?}", spec.paths.1)),
    }
    if !spec.transforms.is_empty() {
        let mut ts: Vec<&str> = spec.transforms.iter().map(|i| TRANSFORMS[*i]).collect();
        // A table last on a typed field is checked against the field at load
        // time; t1's values are text, so end such chains with `trim`.
        if ts.last().is_some_and(|t| t.contains("table")) && !matches!(kind, K::Text | K::List) {
            ts.push("\"trim\"");
        }
        parts.push(format!("transforms = [{}]", ts.join(", ")));
    }
    if spec.default {
        parts.push(format!("default = {:?}", valid_value(kind)));
    }
    if let Some((p, exists)) = &spec.when {
        parts.push(format!("when = {{ path = {p:?}, exists = {exists} }}"));
    }
    if spec.required {
        parts.push("required = true".to_owned());
    }
    format!("{{ {} }}", parts.join(", "))
}

#[derive(Debug, Clone)]
struct ProfileSpec {
    key: String,
    services: String,
    diagnoses: String,
    root: Vec<(usize, RuleSpec)>,
    items: Vec<(usize, RuleSpec)>,
    status_path: Option<String>,
}

fn profile_spec() -> impl Strategy<Value = ProfileSpec> {
    (
        prop_oneof![Just("id".to_owned()), path()],
        path(),
        path(),
        prop::collection::vec((0..ROOT_FIELDS.len(), rule_spec()), 0..8),
        prop::collection::vec((0..ITEM_FIELDS.len(), rule_spec()), 0..6),
        prop::option::of(path()),
    )
        .prop_map(
            |(key, services, diagnoses, root, items, status_path)| ProfileSpec {
                key,
                services,
                diagnoses,
                root,
                items,
                status_path,
            },
        )
}

/// A foreach path: every repeat of the last step where the syntax allows it.
fn all(path: &str) -> String {
    if path.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        format!("{path}[*]")
    } else {
        path.to_owned()
    }
}

fn write_profile(dir: &std::path::Path, spec: &ProfileSpec) {
    std::fs::write(
        dir.join("profile.toml"),
        "name = \"prop\"\nformat = \"json\"\ntime_zone = \"America/Chicago\"\n[defaults]\ntenant = \"t\"\n[tables.t1]\na = \"b\"\n\"1\" = \"x\"\n",
    )
    .expect("write profile.toml");
    let mut m = String::new();
    let _ = writeln!(m, "[case_id]\nkey = [{:?}]\n", spec.key);
    let _ = writeln!(
        m,
        "[foreach]\nservices = {:?}\ndiagnoses = {:?}\n\n[fields]",
        all(&spec.services),
        all(&spec.diagnoses)
    );
    match &spec.status_path {
        Some(p) => {
            let _ = writeln!(m, "status = {{ path = {p:?}, default = \"requested\" }}");
        }
        None => {
            let _ = writeln!(m, "status = {{ const = \"requested\" }}");
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in &spec.root {
        let (field, kind) = ROOT_FIELDS[*i];
        if seen.insert(field) {
            let _ = writeln!(m, "{field:?} = {}", rule_text(r, kind, false));
        }
    }
    for (i, r) in &spec.items {
        let (field, kind) = ITEM_FIELDS[*i];
        if seen.insert(field) {
            let _ = writeln!(m, "{field:?} = {}", rule_text(r, kind, true));
        }
    }
    std::fs::write(dir.join("orders.toml"), m).expect("write orders.toml");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_profiles_over_random_trees(spec in profile_spec(), docs in prop::collection::vec(json_tree(), 1..4)) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("prop");
        std::fs::create_dir(&dir).expect("mkdir");
        write_profile(&dir, &spec);
        let profile = match Profile::load(&dir, &DefaultSyntaxes) {
            Ok(p) => p,
            Err(e) => {
                let text = std::fs::read_to_string(dir.join("orders.toml")).unwrap_or_default();
                return Err(TestCaseError::fail(format!("generated profile does not load:\n{}\n{e}", text)));
            }
        };
        for (i, value) in docs.iter().enumerate() {
            // Most documents carry an order id so that cases get produced.
            let value = match value {
                Value::Object(m) if i > 0 => Value::Object(m.clone()),
                other => serde_json::json!({"id": "K1", "a": other, "b": [other, {"x": "1"}]}),
            };
            let doc = json_document(&value);
            for explain in [false, true] {
                let mut ctx = MapContext::new("2026-11-22T10:00:00Z");
                ctx.explain = explain;
                let first = profile.map(&doc, &ctx);
                let second = profile.map(&doc, &ctx);
                prop_assert_eq!(&first, &second, "document {} maps differently twice", i);
                if let Some(case) = &first.case {
                    prop_assert!(!first.has_errors());
                    let json = serde_json::to_value(case).expect("serializes");
                    let back: Case = serde_json::from_value(json).expect("round-trips as Case v1");
                    prop_assert_eq!(&back, case);
                } else {
                    prop_assert!(first.has_errors(), "no case and no error");
                }
                // Every diagnostic renders.
                for d in &first.diagnostics {
                    prop_assert!(d.render().contains(d.code.as_str()));
                }
            }
        }
    }

    #[test]
    fn arbitrary_profile_text_never_panics(text in "\\PC{0,200}", fields in prop::collection::vec(("[a-z._\\[\\]0-9]{1,24}", "\\PC{0,24}"), 0..6)) {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("junk");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("profile.toml"), "name = \"junk\"\nformat = \"json\"\n").expect("write");
        let mut m = text.clone();
        m.push_str("\n[fields]\n");
        for (k, v) in &fields {
            m.push_str(&format!("{k:?} = {v:?}\n"));
        }
        std::fs::write(dir.join("a.toml"), &m).expect("write");
        let diagnostics = Profile::lint(&dir, &DefaultSyntaxes);
        for d in &diagnostics {
            prop_assert!(d.render().contains(d.code.as_str()));
        }
    }
}

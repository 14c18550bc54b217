//! One field rule: a path or a table with transforms and `when` conditions.

use super::*;
use std::sync::Arc;

pub(super) type RuleParts = (ValueRule, Option<Loc>, Option<Loc>);

/// Parses a rule: a path string, or a table (see README "Rules").
pub(super) fn parse_rule(
    ctx: &mut Ctx<'_>,
    value: &Value<'_>,
    rule: &str,
    syntax: &dyn PathSyntax,
    tables: &BTreeMap<String, CodeTable>,
) -> Option<RuleParts> {
    const KEYS: &[&str] = &[
        "path",
        "paths",
        "const",
        "position",
        "scope",
        "transforms",
        "default",
        "when",
        "required",
        "disable",
    ];
    let loc = ctx.loc(value.span());
    let table = match value.get_ref() {
        DeValue::String(s) => {
            let path = ctx.path(syntax, s, value.span(), rule)?;
            return Some((path_rule(path, loc), None, None));
        }
        DeValue::Table(t) => t,
        _ => {
            ctx.wrong_type(
                rule,
                "a path string or a table such as `{ path = \"…\", transforms = [\"trim\"] }`",
                value,
                Some(rule),
            );
            return None;
        }
    };
    let errors_before = ctx.diags.iter().filter(|d| d.is_error()).count();
    ctx.check_keys(table, KEYS, "a rule", Some(rule));
    let (sources, const_span) = rule_sources(ctx, table, rule, syntax);
    let (default, default_span) = match get(table, "default") {
        Some(v) => (
            scalar_text(ctx, "default", v, rule),
            Some(ctx.loc(v.span())),
        ),
        None => (None, None),
    };
    let source = one_source(ctx, sources, default.is_some(), &loc, rule)?;
    let root = parse_scope(ctx, table, rule);
    let transforms = match get(table, "transforms") {
        Some(v) => parse_transforms(ctx, v, rule, tables),
        None => Vec::new(),
    };
    let when = get(table, "when")
        .map(|w| parse_when(ctx, w, syntax, rule))
        .unwrap_or_default();
    let required = ctx.boolean(table, "required", Some(rule)).unwrap_or(false);
    let errors_after = ctx.diags.iter().filter(|d| d.is_error()).count();
    if errors_after > errors_before {
        return None;
    }
    let transform_names = transforms.iter().map(crate::transform::describe).collect();
    let path_texts = source.path_texts();
    Some((
        ValueRule {
            path_texts,
            source,
            root,
            transforms,
            default,
            when,
            required,
            loc,
            transform_names,
        },
        const_span,
        default_span,
    ))
}

/// The rule a bare path string stands for.
fn path_rule(path: Path, loc: Loc) -> ValueRule {
    let source = ValueSource::Path(path);
    ValueRule {
        path_texts: source.path_texts(),
        source,
        root: false,
        transforms: Vec::new(),
        default: None,
        when: Vec::new(),
        required: false,
        loc,
        transform_names: Arc::from([]),
    }
}

/// The sources a rule table names (`path`, `paths`, `const`, `position`, in
/// that order), and where its `const` sits.
fn rule_sources(
    ctx: &mut Ctx<'_>,
    table: &Table<'_>,
    rule: &str,
    syntax: &dyn PathSyntax,
) -> (Vec<ValueSource>, Option<Loc>) {
    let mut sources = Vec::new();
    let mut const_span = None;
    if let Some((p, span)) = ctx.string(table, "path", Some(rule)) {
        if let Some(path) = ctx.path(syntax, &p, span, rule) {
            sources.push(ValueSource::Path(path));
        } else {
            sources.push(ValueSource::Nothing);
        }
    }
    if let Some(v) = get(table, "paths") {
        sources.push(ValueSource::Paths(parse_paths(ctx, v, rule, syntax)));
    }
    if let Some(v) = get(table, "const") {
        let text = scalar_text(ctx, "const", v, rule);
        const_span = Some(ctx.loc(v.span()));
        sources.push(ValueSource::Const(text.unwrap_or_default()));
    }
    if ctx.boolean(table, "position", Some(rule)) == Some(true) {
        sources.push(ValueSource::Position);
    }
    (sources, const_span)
}

/// `paths = ["…", …]`: the paths that compile (the others are reported).
fn parse_paths(ctx: &mut Ctx<'_>, v: &Value<'_>, rule: &str, syntax: &dyn PathSyntax) -> Vec<Path> {
    let mut paths = Vec::new();
    match v.get_ref() {
        DeValue::Array(items) => {
            for item in items.iter() {
                match item.get_ref() {
                    DeValue::String(s) => {
                        if let Some(p) = ctx.path(syntax, s, item.span(), rule) {
                            paths.push(p);
                        }
                    }
                    _ => ctx.wrong_type("paths", "an array of path strings", item, Some(rule)),
                }
            }
        }
        _ => ctx.wrong_type("paths", "an array of path strings", v, Some(rule)),
    }
    paths
}

/// A `const` or `default` value as text: a string, number or boolean.
fn scalar_text(ctx: &mut Ctx<'_>, key: &str, v: &Value<'_>, rule: &str) -> Option<String> {
    match v.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => Some(i.as_str().to_owned()),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::Float(f) => Some(f.as_str().to_owned()),
        _ => {
            ctx.wrong_type(key, "a string, number or boolean", v, Some(rule));
            None
        }
    }
}

/// Exactly one source (or none with a `default`); `None` (reported) otherwise.
fn one_source(
    ctx: &mut Ctx<'_>,
    mut sources: Vec<ValueSource>,
    has_default: bool,
    loc: &Loc,
    rule: &str,
) -> Option<ValueSource> {
    match sources.len() {
        0 if has_default => Some(ValueSource::Nothing),
        0 => {
            ctx.error_rule(
                Code::MissingKey,
                "a rule needs a source: `path`, `paths`, `const`, `position` or `default`",
                loc.span.clone(),
                rule,
                None,
            );
            None
        }
        1 => Some(sources.pop().unwrap_or(ValueSource::Nothing)),
        _ => {
            ctx.error_rule(
                Code::WrongType,
                "a rule takes exactly one of `path`, `paths`, `const`, `position`",
                loc.span.clone(),
                rule,
                None,
            );
            None
        }
    }
}

/// `scope = "item" | "root"` (default item); another value is reported.
fn parse_scope(ctx: &mut Ctx<'_>, table: &Table<'_>, rule: &str) -> bool {
    match ctx.string(table, "scope", Some(rule)) {
        Some((s, _)) if s == "root" => true,
        Some((s, _)) if s == "item" => false,
        Some((s, span)) => {
            ctx.error_rule(
                Code::WrongType,
                format!("unknown scope `{s}`"),
                span,
                rule,
                Some("scope is `item` (the default inside foreach) or `root`".into()),
            );
            false
        }
        None => false,
    }
}

pub(super) fn parse_transforms(
    ctx: &mut Ctx<'_>,
    value: &Value<'_>,
    rule: &str,
    tables: &BTreeMap<String, CodeTable>,
) -> Vec<Transform> {
    let items: Vec<&Value<'_>> = match value.get_ref() {
        DeValue::Array(items) => items.iter().collect(),
        _ => {
            ctx.wrong_type(
                "transforms",
                "an array, e.g. `[\"trim\", { table = \"sex\" }]`",
                value,
                Some(rule),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for item in items {
        if let Some(t) = parse_transform(ctx, item, rule, tables) {
            out.push(t);
        }
    }
    out
}

pub(super) fn unknown_transform(ctx: &mut Ctx<'_>, name: &str, span: Range<usize>, rule: &str) {
    let help = suggest(name, TRANSFORMS.iter().copied())
        .map(|s| format!("did you mean `{s}`?"))
        .unwrap_or_else(|| format!("transforms: {}", TRANSFORMS.join(", ")));
    ctx.error_rule(
        Code::UnknownTransform,
        format!("unknown transform `{name}`"),
        span,
        rule,
        Some(help),
    );
}

/// One `transforms` entry: a bare name or a one-transform table.
pub(super) fn parse_transform(
    ctx: &mut Ctx<'_>,
    item: &Value<'_>,
    rule: &str,
    tables: &BTreeMap<String, CodeTable>,
) -> Option<Transform> {
    match item.get_ref() {
        DeValue::String(s) => named_transform(ctx, s, item, rule),
        DeValue::Table(t) => table_transform(ctx, t, item, rule, tables),
        _ => {
            ctx.wrong_type(
                "transform",
                "a name or a one-transform table",
                item,
                Some(rule),
            );
            None
        }
    }
}

/// A transform without an argument (`"trim"`); one that needs an argument
/// or an unknown name is reported.
fn named_transform(
    ctx: &mut Ctx<'_>,
    name: &str,
    item: &Value<'_>,
    rule: &str,
) -> Option<Transform> {
    if let Some(t) = bare_transform(name) {
        return Some(t);
    }
    if TRANSFORMS.contains(&name) {
        ctx.error_rule(
            Code::BadTransformArgument,
            format!("transform `{name}` needs an argument"),
            item.span(),
            rule,
            Some(format!(
                "write it as a table: `{{ {name} = … }}` (see mappings/README.md)"
            )),
        );
    } else {
        unknown_transform(ctx, name, item.span(), rule);
    }
    None
}

/// The transforms that take no argument.
fn bare_transform(name: &str) -> Option<Transform> {
    match name {
        "trim" => Some(Transform::Trim),
        "upper" => Some(Transform::Upper),
        "lower" => Some(Transform::Lower),
        "icd10" => Some(Transform::Icd10),
        "unique" => Some(Transform::Unique),
        _ => None,
    }
}

/// A transform's argument and where it sits, for the per-transform parsers.
struct TransformArg<'a, 'i> {
    name: &'a str,
    key_span: Range<usize>,
    arg: &'a Value<'i>,
    table: &'a Table<'i>,
    rule: &'a str,
}

impl TransformArg<'_, '_> {
    /// The argument as a string (reported otherwise).
    fn text(&self, ctx: &mut Ctx<'_>) -> Option<String> {
        match self.arg.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                ctx.wrong_type(self.name, "a string", self.arg, Some(self.rule));
                None
            }
        }
    }

    /// The argument as a non-empty string (`what` says what it is for).
    fn non_empty(&self, ctx: &mut Ctx<'_>, what: &str) -> Option<String> {
        let text = self.text(ctx)?;
        if text.is_empty() {
            ctx.error_rule(
                Code::BadTransformArgument,
                what.to_owned(),
                self.arg.span(),
                self.rule,
                None,
            );
            return None;
        }
        Some(text)
    }
}

/// `{ name = argument, options… }`.
fn table_transform(
    ctx: &mut Ctx<'_>,
    t: &Table<'_>,
    item: &Value<'_>,
    rule: &str,
    tables: &BTreeMap<String, CodeTable>,
) -> Option<Transform> {
    let entries = sorted(t);
    let Some((key, arg)) = entries.first() else {
        ctx.wrong_type(
            "transform",
            "a name or a one-transform table",
            item,
            Some(rule),
        );
        return None;
    };
    let name: &str = key.get_ref();
    let options: &[&str] = match name {
        "table" => &["table", "miss", "otherwise"],
        "replace" => &["replace", "with"],
        _ => &[],
    };
    if !TRANSFORMS.contains(&name) {
        unknown_transform(ctx, name, key.span(), rule);
        return None;
    }
    let mut allowed = vec![name];
    allowed.extend_from_slice(options);
    ctx.check_keys(t, &allowed, &format!("transform `{name}`"), Some(rule));
    let a = TransformArg {
        name,
        key_span: key.span(),
        arg,
        table: t,
        rule,
    };
    match name {
        "trim" | "upper" | "lower" | "icd10" | "unique" => bare_transform(name),
        "table" => table_lookup(ctx, &a, tables),
        "date" | "datetime" => date_transform(ctx, &a),
        "concat" => Some(Transform::Concat(a.text(ctx)?)),
        "split" => Some(Transform::Split(
            a.non_empty(ctx, "`split` needs a non-empty separator")?,
        )),
        "replace" => replace_transform(ctx, &a),
        "index" => index_transform(ctx, &a),
        "prefix" => Some(Transform::Prefix(a.text(ctx)?)),
        "suffix" => Some(Transform::Suffix(a.text(ctx)?)),
        _ => {
            unknown_transform(ctx, name, key.span(), rule);
            None
        }
    }
}

/// `{ table = "name", miss = …, otherwise = … }`: the table must be defined.
fn table_lookup(
    ctx: &mut Ctx<'_>,
    a: &TransformArg<'_, '_>,
    tables: &BTreeMap<String, CodeTable>,
) -> Option<Transform> {
    let tname = a.text(ctx)?;
    if !tables.contains_key(&tname) {
        let help = suggest(&tname, tables.keys().map(String::as_str))
            .map(|s| format!("did you mean `{s}`?"))
            .unwrap_or_else(|| "define it in profile.toml under `[tables.<name>]`".into());
        ctx.error_rule(
            Code::UnknownTable,
            format!("unknown table `{tname}`"),
            a.arg.span(),
            a.rule,
            Some(help),
        );
        return None;
    }
    let miss = parse_miss(ctx, a)?;
    let otherwise = ctx
        .string(a.table, "otherwise", Some(a.rule))
        .map(|(v, _)| v);
    Some(Transform::Table {
        name: tname,
        miss,
        otherwise,
    })
}

/// `miss = "warn" | "drop" | "keep" | "error"` (default `warn`); `None`
/// (reported) for another value.
fn parse_miss(ctx: &mut Ctx<'_>, a: &TransformArg<'_, '_>) -> Option<Miss> {
    let Some((m, span)) = ctx.string(a.table, "miss", Some(a.rule)) else {
        return Some(Miss::Warn);
    };
    match m.as_str() {
        "warn" => Some(Miss::Warn),
        "drop" => Some(Miss::Drop),
        "keep" => Some(Miss::Keep),
        "error" => Some(Miss::Error),
        other => {
            ctx.error_rule(
                Code::BadTransformArgument,
                format!("unknown `miss` behaviour `{other}`"),
                span,
                a.rule,
                Some(
                    "`warn` (default: drop with a warning), `drop` (silently), `keep` or `error`"
                        .into(),
                ),
            );
            None
        }
    }
}

/// `{ date = "fmt" }` / `{ datetime = ["fmt", …] }`: every format must parse.
fn date_transform(ctx: &mut Ctx<'_>, a: &TransformArg<'_, '_>) -> Option<Transform> {
    let (name, arg, rule) = (a.name, a.arg, a.rule);
    let formats: Vec<(String, Range<usize>)> = match arg.get_ref() {
        DeValue::String(s) => vec![(s.to_string(), arg.span())],
        DeValue::Array(items) => items
            .iter()
            .filter_map(|i| match i.get_ref() {
                DeValue::String(s) => Some((s.to_string(), i.span())),
                _ => {
                    ctx.wrong_type(name, "a format string or an array of them", i, Some(rule));
                    None
                }
            })
            .collect(),
        _ => {
            ctx.wrong_type(name, "a format string or an array of them", arg, Some(rule));
            return None;
        }
    };
    let mut parsed = Vec::new();
    for (f, span) in formats {
        match crate::transform::parse_date_format(&f) {
            Ok(df) => parsed.push(df),
            Err(msg) => ctx.error_rule(
                Code::BadTransformArgument,
                msg,
                span,
                rule,
                Some("use `hl7`, `iso` or a pattern such as `%Y%m%d` or `%m/%d/%Y %H:%M`".into()),
            ),
        }
    }
    if parsed.is_empty() {
        return None;
    }
    Some(if name == "date" {
        Transform::Date(parsed)
    } else {
        Transform::DateTime(parsed)
    })
}

/// `{ replace = "from", with = "to" }`: `from` non-empty, `with` required.
fn replace_transform(ctx: &mut Ctx<'_>, a: &TransformArg<'_, '_>) -> Option<Transform> {
    let from = a.non_empty(ctx, "`replace` needs non-empty text to replace")?;
    let Some((to, _)) = ctx.string(a.table, "with", Some(a.rule)) else {
        if get(a.table, "with").is_none() {
            ctx.error_rule(
                Code::MissingKey,
                "`replace` needs `with` (the replacement text, may be empty)",
                a.key_span.clone(),
                a.rule,
                None,
            );
        }
        return None;
    };
    Some(Transform::Replace { from, to })
}

/// `{ index = n }` (0 = first, -1 = last).
fn index_transform(ctx: &mut Ctx<'_>, a: &TransformArg<'_, '_>) -> Option<Transform> {
    match a.arg.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(Transform::Index),
        _ => {
            ctx.wrong_type(
                "index",
                "an integer (0 = first, -1 = last)",
                a.arg,
                Some(a.rule),
            );
            None
        }
    }
}

/// `when`: a condition table or an array of them; malformed conditions are
/// reported and left out.
pub(super) fn parse_when(
    ctx: &mut Ctx<'_>,
    value: &Value<'_>,
    syntax: &dyn PathSyntax,
    rule: &str,
) -> Vec<Cond> {
    let items: Vec<&Value<'_>> = match value.get_ref() {
        DeValue::Array(items) => items.iter().collect(),
        DeValue::Table(_) => vec![value],
        _ => {
            ctx.wrong_type(
                "when",
                "a condition table or an array of them",
                value,
                Some(rule),
            );
            return Vec::new();
        }
    };
    items
        .into_iter()
        .filter_map(|item| parse_condition(ctx, item, syntax, rule))
        .collect()
}

/// One condition: a subject (`path` or `meta`), one test and a `scope`.
fn parse_condition(
    ctx: &mut Ctx<'_>,
    item: &Value<'_>,
    syntax: &dyn PathSyntax,
    rule: &str,
) -> Option<Cond> {
    let DeValue::Table(t) = item.get_ref() else {
        ctx.wrong_type(
            "when",
            "a condition table such as `{ path = \"ORC-1\", equals = \"NW\" }`",
            item,
            Some(rule),
        );
        return None;
    };
    ctx.check_keys(
        t,
        &["path", "meta", "equals", "not_equals", "exists", "scope"],
        "a condition",
        Some(rule),
    );
    let subject = condition_subject(ctx, t, item, syntax, rule)?;
    let mut tests = Vec::new();
    if let Some((v, _)) = ctx.strings(t, "equals", Some(rule)) {
        tests.push(CondTest::Equals(v));
    }
    if let Some((v, _)) = ctx.strings(t, "not_equals", Some(rule)) {
        tests.push(CondTest::NotEquals(v));
    }
    if let Some(b) = ctx.boolean(t, "exists", Some(rule)) {
        tests.push(CondTest::Exists(b));
    }
    if tests.len() != 1 {
        ctx.error_rule(
            Code::MissingKey,
            "a condition needs exactly one test: `equals`, `not_equals` or `exists`",
            item.span(),
            rule,
            None,
        );
        return None;
    }
    let root = matches!(ctx.string(t, "scope", Some(rule)), Some((s, _)) if s == "root");
    tests.pop().map(|test| Cond {
        subject,
        test,
        root,
    })
}

/// What a condition tests: exactly one of `path` (compiled) or `meta` (a
/// known header fact).
fn condition_subject(
    ctx: &mut Ctx<'_>,
    t: &Table<'_>,
    item: &Value<'_>,
    syntax: &dyn PathSyntax,
    rule: &str,
) -> Option<CondSubject> {
    match (
        ctx.string(t, "path", Some(rule)),
        ctx.string(t, "meta", Some(rule)),
    ) {
        (Some((p, span)), None) => ctx.path(syntax, &p, span, rule).map(CondSubject::Path),
        (None, Some((m, span))) => {
            if let Some(f) = MetaField::parse(&m) {
                return Some(CondSubject::Meta(f));
            }
            let help = suggest(&m, MetaField::NAMES)
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("meta fields: {}", MetaField::NAMES.join(", ")));
            ctx.error_rule(
                Code::UnknownKey,
                format!("unknown meta field `{m}`"),
                span,
                rule,
                Some(help),
            );
            None
        }
        _ => {
            ctx.error_rule(
                Code::MissingKey,
                "a condition needs exactly one of `path` or `meta`",
                item.span(),
                rule,
                None,
            );
            None
        }
    }
}

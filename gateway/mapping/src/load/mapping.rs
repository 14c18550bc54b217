//! One mapping file: its sections, groups and fields, and how a child
//! profile's file overlays its base's.

use super::*;

/// One mapping file's table: its top-level keys, then each section.
pub(super) fn parse_mapping(
    ctx: &mut Ctx<'_>,
    table: &Table<'_>,
    name: &str,
    syntax: &dyn PathSyntax,
    tables: &BTreeMap<String, CodeTable>,
) -> Option<RawFile> {
    const KEYS: &[&str] = &[
        "description",
        "match",
        "action",
        "priority",
        "case_id",
        "foreach",
        "fields",
    ];
    ctx.check_keys(table, KEYS, "a mapping file", None);
    let _ = ctx.string(table, "description", None);
    let first_key = sorted(table).first().map_or(0..0, |(k, _)| k.span());
    let action = parse_action(ctx, table);
    let priority = ctx.integer(table, "priority", None);
    let matcher = ctx
        .table(table, "match", None)
        .map(|m| parse_matcher(ctx, m, syntax));
    let case_id = ctx
        .table(table, "case_id", None)
        .and_then(|c| parse_case_id(ctx, table, c, syntax, tables));
    let groups = ctx
        .table(table, "foreach", None)
        .map(|fe| parse_groups(ctx, fe, syntax))
        .unwrap_or_default();
    let fields = ctx
        .table(table, "fields", None)
        .map(|fs| parse_fields(ctx, fs, syntax, tables))
        .unwrap_or_default();
    Some(RawFile {
        name: name.to_owned(),
        file_loc: ctx.loc(first_key),
        action,
        priority,
        matcher,
        case_id,
        groups,
        fields,
    })
}

/// `action = "case" | "patient_update" | "ignore"`.
fn parse_action(ctx: &mut Ctx<'_>, table: &Table<'_>) -> Option<(MapAction, Loc)> {
    let (a, span) = ctx.string(table, "action", None)?;
    let action = match a.as_str() {
        "case" => MapAction::Case,
        "patient_update" => MapAction::PatientUpdate,
        "ignore" => MapAction::Ignore,
        other => {
            let help = suggest(other, ["case", "patient_update", "ignore"])
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| "actions: case, patient_update, ignore".into());
            ctx.error_rule(
                Code::WrongType,
                format!("unknown action `{other}`"),
                span,
                "action",
                Some(help),
            );
            return None;
        }
    };
    Some((action, ctx.loc(span)))
}

/// `[match]`: header facts and a `when` condition.
fn parse_matcher(ctx: &mut Ctx<'_>, m: &Table<'_>, syntax: &dyn PathSyntax) -> Matcher {
    let mut keys: Vec<&str> = MetaField::NAMES.to_vec();
    keys.push("when");
    ctx.check_keys(m, &keys, "[match]", Some("match"));
    let mut matcher = Matcher::default();
    for field in MetaField::NAMES {
        if let Some((values, _)) = ctx.strings(m, field, Some("match"))
            && let Some(f) = MetaField::parse(field)
        {
            matcher.meta.push((f, values));
        }
    }
    if let Some(w) = get(m, "when") {
        matcher.when = parse_when(ctx, w, syntax, "match");
    }
    matcher
}

/// `[case_id]`: `key` (required), `prefix`, `own`, `agree`.
fn parse_case_id(
    ctx: &mut Ctx<'_>,
    table: &Table<'_>,
    c: &Table<'_>,
    syntax: &dyn PathSyntax,
    tables: &BTreeMap<String, CodeTable>,
) -> Option<CaseIdRule> {
    ctx.check_keys(
        c,
        &["key", "prefix", "own", "agree"],
        "[case_id]",
        Some("case_id"),
    );
    let prefix = ctx.string(c, "prefix", Some("case_id")).map(|p| p.0);
    let Some(key) = get(c, "key") else {
        let span = sorted(table)
            .into_iter()
            .find(|(k, _)| k.get_ref() == "case_id")
            .map_or(0..0, |(k, _)| k.span());
        ctx.error_rule(
            Code::MissingKey,
            "`[case_id]` needs a `key`: the source fields that identify the order",
            span,
            "case_id",
            Some("e.g. `key = [\"ORC-2\"]`".into()),
        );
        return None;
    };
    let items: Vec<&Value<'_>> = match key.get_ref() {
        DeValue::Array(items) => items.iter().collect(),
        _ => vec![key],
    };
    let mut parts = Vec::new();
    for item in items {
        if let Some((rule, _, _)) = parse_rule(ctx, item, "case_id", syntax, tables) {
            parts.push(rule);
        }
    }
    let own = get(c, "own")
        .and_then(|item| parse_rule(ctx, item, "case_id.own", syntax, tables))
        .map(|(rule, _, _)| rule);
    let agree = parse_agree(ctx, c);
    Some(CaseIdRule {
        prefix: prefix.unwrap_or_default(),
        parts,
        own,
        agree,
        loc: ctx.loc(key.span()),
    })
}

/// `case_id.agree`: names of `references` entries (lowercase, digits, `_`);
/// malformed names are reported and dropped.
fn parse_agree(ctx: &mut Ctx<'_>, c: &Table<'_>) -> Vec<String> {
    let Some((names, span)) = ctx.strings(c, "agree", Some("case_id")) else {
        return Vec::new();
    };
    let well_formed = |n: &String| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    for name in names.iter().filter(|n| !well_formed(n)) {
        ctx.error_rule(
            Code::InvalidConstant,
            format!("`agree` names `references` entries; `{name}` is not one"),
            span.clone(),
            "case_id",
            Some("e.g. `agree = [\"x12_trace\"]` (lowercase letters, digits, `_`)".into()),
        );
    }
    names.into_iter().filter(well_formed).collect()
}

/// `[foreach]`: each group is a path string or `{ path, into, when }`.
fn parse_groups(ctx: &mut Ctx<'_>, fe: &Table<'_>, syntax: &dyn PathSyntax) -> Vec<RawGroup> {
    sorted(fe)
        .into_iter()
        .filter_map(|(gname, value)| parse_group(ctx, gname, value, syntax))
        .collect()
}

/// One `[foreach]` group; `None` (reported) when it has no usable path.
fn parse_group(
    ctx: &mut Ctx<'_>,
    gname: &Spanned<toml::de::DeString<'_>>,
    value: &Value<'_>,
    syntax: &dyn PathSyntax,
) -> Option<RawGroup> {
    let name = gname.get_ref().to_string();
    let rule = format!("foreach.{name}");
    let (path_text, path_span, into, into_span, when) = match value.get_ref() {
        DeValue::String(s) => (
            s.to_string(),
            value.span(),
            name.clone(),
            gname.span(),
            Vec::new(),
        ),
        DeValue::Table(t) => {
            ctx.check_keys(t, &["path", "into", "when"], "a foreach group", Some(&rule));
            let Some((p, pspan)) = ctx.string(t, "path", Some(&rule)) else {
                if get(t, "path").is_none() {
                    ctx.error_rule(
                        Code::MissingKey,
                        "a foreach group needs a `path` to the repeats",
                        gname.span(),
                        &rule,
                        None,
                    );
                }
                return None;
            };
            let (into, ispan) = ctx
                .string(t, "into", Some(&rule))
                .unwrap_or((name.clone(), gname.span()));
            let when = get(t, "when")
                .map(|w| parse_when(ctx, w, syntax, &rule))
                .unwrap_or_default();
            (p, pspan, into, ispan, when)
        }
        _ => {
            ctx.wrong_type(
                &name,
                "a path string or a table with `path`, `into`, `when`",
                value,
                Some(&rule),
            );
            return None;
        }
    };
    let path = ctx.path(syntax, &path_text, path_span.clone(), &rule)?;
    Some(RawGroup {
        name,
        into,
        into_loc: ctx.loc(into_span),
        path,
        when,
    })
}

/// `[fields]`: a rule per target key, or `{ disable = true }`.
fn parse_fields(
    ctx: &mut Ctx<'_>,
    fs: &Table<'_>,
    syntax: &dyn PathSyntax,
    tables: &BTreeMap<String, CodeTable>,
) -> Vec<RawField> {
    let mut fields = Vec::new();
    for (key, value) in sorted(fs) {
        let k = key.get_ref().to_string();
        let loc = ctx.loc(key.span());
        if let DeValue::Table(t) = value.get_ref()
            && ctx.boolean(t, "disable", Some(&k)) == Some(true)
        {
            fields.push(RawField {
                key: k,
                loc,
                rule: None,
                const_span: None,
                default_span: None,
            });
            continue;
        }
        if let Some((rule, const_span, default_span)) = parse_rule(ctx, value, &k, syntax, tables) {
            fields.push(RawField {
                key: k,
                loc,
                rule: Some(rule),
                const_span,
                default_span,
            });
        }
    }
    fields
}

/// Child over base: top-level parts replace, groups by name, fields by key.
pub(super) fn overlay(mut base: RawFile, child: RawFile) -> RawFile {
    if child.action.is_some() {
        base.action = child.action;
    }
    if child.priority.is_some() {
        base.priority = child.priority;
    }
    if child.matcher.is_some() {
        base.matcher = child.matcher;
    }
    if child.case_id.is_some() {
        base.case_id = child.case_id;
    }
    for g in child.groups {
        match base.groups.iter_mut().find(|b| b.name == g.name) {
            Some(slot) => *slot = g,
            None => base.groups.push(g),
        }
    }
    for f in child.fields {
        match base.fields.iter_mut().find(|b| b.key == f.key) {
            Some(slot) => *slot = f,
            None => base.fields.push(f),
        }
    }
    base.file_loc = child.file_loc;
    base
}

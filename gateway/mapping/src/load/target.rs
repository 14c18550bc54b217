//! Field keys against the Case v1 catalog, and constants against the
//! field's kind.

use super::*;

/// A resolved field key.
pub(super) struct Target {
    pub(super) segs: Vec<Seg>,
    pub(super) kind: Kind,
    pub(super) group: Option<usize>,
    /// The key ends at a list (selector on the last segment, or none).
    pub(super) list_end: bool,
}

pub(super) struct TargetError {
    pub(super) code: Code,
    pub(super) message: String,
    pub(super) help: Option<String>,
}

pub(super) fn target_err(code: Code, message: String, help: Option<String>) -> TargetError {
    TargetError {
        code,
        message,
        help,
    }
}

/// Resolves `services[].code.code` against the Case v1 catalog. `groups` are
/// the foreach groups (name, list segments) for `[]` / `[name]` selectors.
pub(super) fn resolve_target(
    key: &str,
    groups: &[(String, Vec<Seg>)],
) -> Result<Target, TargetError> {
    if let Some((_, why)) = schema::COMPUTED.iter().find(|(k, _)| *k == key) {
        return Err(target_err(
            Code::UnknownField,
            format!("`{key}` cannot be mapped: {why}"),
            None,
        ));
    }
    let mut fields: &'static [FieldDef] = schema::CASE;
    let mut segs = Vec::new();
    let mut group = None;
    let parts: Vec<&str> = key.split('.').collect();
    let mut i = 0;
    while i < parts.len() {
        let part = parts[i];
        let (name, selector) = match part.find('[') {
            Some(open) if part.ends_with(']') => {
                (&part[..open], Some(&part[open + 1..part.len() - 1]))
            }
            Some(_) => {
                return Err(target_err(
                    Code::UnknownField,
                    format!("`{key}`: unclosed `[` in `{part}`"),
                    None,
                ));
            }
            None => (part, None),
        };
        let Some(def) = schema::field(fields, name) else {
            let path_so_far = parts[..i].join(".");
            let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
            let help = suggest(name, known.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| format!("fields here: {}", known.join(", ")));
            let what = if path_so_far.is_empty() {
                "Case v1".to_owned()
            } else {
                format!("`{path_so_far}`")
            };
            return Err(target_err(
                Code::UnknownField,
                format!("`{key}`: {what} has no field `{name}`"),
                Some(help),
            ));
        };
        segs.push(Seg::Key(name.to_owned()));
        let last = i + 1 == parts.len();
        match def.kind {
            Kind::ObjectList(item_fields) => {
                let Some(sel) = selector else {
                    if last {
                        return Ok(Target {
                            segs,
                            kind: def.kind,
                            group,
                            list_end: true,
                        });
                    }
                    return Err(target_err(
                        Code::BadForeach,
                        format!(
                            "`{key}`: `{name}` is a list; say which item: `{name}[]` (foreach), `{name}[<group>]` or `{name}[0]`"
                        ),
                        None,
                    ));
                };
                if sel.is_empty() || !sel.chars().all(|c| c.is_ascii_digit()) {
                    // foreach group
                    let candidates: Vec<(usize, &String)> = groups
                        .iter()
                        .enumerate()
                        .filter(|(_, (gname, into))| {
                            *into == segs && (sel.is_empty() || gname == sel)
                        })
                        .map(|(gi, (gname, _))| (gi, gname))
                        .collect();
                    if group.is_some() {
                        return Err(target_err(
                            Code::BadForeach,
                            format!("`{key}`: foreach groups cannot be nested"),
                            None,
                        ));
                    }
                    match candidates.as_slice() {
                        [(gi, _)] => {
                            group = Some(*gi);
                            segs.push(Seg::Group(*gi));
                        }
                        [] => {
                            let list = segs_text(&segs);
                            return Err(target_err(
                                Code::BadForeach,
                                if sel.is_empty() {
                                    format!("`{key}`: no `foreach` group fills `{list}`")
                                } else {
                                    format!("`{key}`: no `foreach` group `{sel}` fills `{list}`")
                                },
                                Some(format!(
                                    "add `[foreach] {list} = \"<path to the repeats>\"`"
                                )),
                            ));
                        }
                        _ => {
                            return Err(target_err(
                                Code::BadForeach,
                                format!(
                                    "`{key}`: several foreach groups fill `{}`; name one: `{name}[<group>]`",
                                    segs_text(&segs)
                                ),
                                None,
                            ));
                        }
                    }
                } else {
                    let n: usize = sel.parse().map_err(|_| {
                        target_err(
                            Code::UnknownField,
                            format!("`{key}`: bad index `{sel}`"),
                            None,
                        )
                    })?;
                    segs.push(Seg::Fixed(n));
                }
                if last {
                    return Ok(Target {
                        segs,
                        kind: def.kind,
                        group,
                        list_end: true,
                    });
                }
                fields = item_fields;
            }
            _ if selector.is_some() => {
                return Err(target_err(
                    Code::UnknownField,
                    format!("`{key}`: `{name}` is not a list of objects"),
                    None,
                ));
            }
            Kind::Object(sub) => {
                if last {
                    return Err(target_err(
                        Code::UnknownField,
                        format!(
                            "`{key}` is an object: map its fields, e.g. `{key}.{}`",
                            sub.first().map_or("…", |f| f.name)
                        ),
                        None,
                    ));
                }
                fields = sub;
            }
            Kind::TextMap => {
                if last {
                    return Err(target_err(
                        Code::UnknownField,
                        format!("`{key}` is a map: name the entry, e.g. `{key}.placer_order`"),
                        None,
                    ));
                }
                let entry = parts[i + 1..].join(".");
                if entry.is_empty()
                    || !entry
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return Err(target_err(
                        Code::UnknownField,
                        format!("`{key}`: map keys are lowercase letters, digits and `_`"),
                        None,
                    ));
                }
                segs.push(Seg::Key(entry));
                return Ok(Target {
                    segs,
                    kind: Kind::Text,
                    group,
                    list_end: false,
                });
            }
            kind => {
                if !last {
                    return Err(target_err(
                        Code::UnknownField,
                        format!("`{key}`: `{name}` has no fields"),
                        None,
                    ));
                }
                if def.auto == Auto::Position
                    && group.is_none()
                    && !segs.iter().any(|s| matches!(s, Seg::Fixed(_)))
                {
                    // fine: explicit line numbers on fixed items only
                }
                return Ok(Target {
                    segs,
                    kind,
                    group,
                    list_end: false,
                });
            }
        }
        i += 1;
    }
    Err(target_err(
        Code::UnknownField,
        format!("`{key}` is not a case field"),
        None,
    ))
}

pub(super) fn segs_text(segs: &[Seg]) -> String {
    let mut out = String::new();
    for s in segs {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Fixed(n) => out.push_str(&format!("[{n}]")),
            Seg::Group(_) => out.push_str("[]"),
        }
    }
    out
}

/// Checks constants, defaults and (when the chain ends in a table) table
/// values against the field's kind.
pub(super) fn check_constants(
    ctx: &mut Ctx<'_>,
    key: &str,
    kind: Kind,
    rule: &ValueRule,
    (const_span, default_span): (Option<&Loc>, Option<&Loc>),
    tables: &BTreeMap<String, CodeTable>,
    sources: &[SourceText],
) {
    let help = match kind {
        Kind::Enum(values) => Some(format!("allowed: {}", values.join(", "))),
        _ => None,
    };
    if let (ValueSource::Const(c), Some(loc)) = (&rule.source, const_span)
        && rule.transforms.is_empty()
        && let Err(why) = schema::check_value(kind, c)
    {
        ctx.error_rule(
            Code::InvalidConstant,
            format!("constant for `{key}` {why}"),
            loc.span.clone(),
            key,
            help.clone(),
        );
    }
    if let (Some(d), Some(loc)) = (&rule.default, default_span)
        && let Err(why) = schema::check_value(kind, d)
    {
        ctx.error_rule(
            Code::InvalidConstant,
            format!("default for `{key}` {why}"),
            loc.span.clone(),
            key,
            help.clone(),
        );
    }
    if let Some(Transform::Table {
        otherwise: Some(value),
        name,
        ..
    }) = rule.transforms.last()
        && let Err(why) = schema::check_value(kind, value)
    {
        ctx.error_rule(
            Code::InvalidConstant,
            format!("`otherwise` of table `{name}` for `{key}` {why}"),
            rule.loc.span.clone(),
            key,
            help.clone(),
        );
    }
    if let Some(Transform::Table { name, .. }) = rule.transforms.last()
        && matches!(
            kind,
            Kind::Enum(_) | Kind::Bool | Kind::Number | Kind::Count | Kind::Date
        )
        && let Some(table) = tables.get(name)
    {
        for (value, loc) in table.entries.values() {
            if let Err(why) = schema::check_value(kind, value) {
                let mut d = MapDiagnostic::error(
                    Code::InvalidConstant,
                    format!("table `{name}` value used for `{key}` {why}"),
                )
                .with_rule(key);
                d.help = help.clone();
                if let Some(src) = sources.get(loc.file) {
                    d = d.at_file(&src.display, &src.text, loc.span.clone());
                }
                ctx.diags.push(d);
            }
        }
    }
}

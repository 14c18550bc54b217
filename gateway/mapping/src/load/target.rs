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
    let mut walk = Walk {
        key,
        segs: Vec::new(),
        group: None,
    };
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let (name, selector) = split_selector(key, part)?;
        let Some(def) = schema::field(fields, name) else {
            return Err(unknown_field(key, &parts[..i], fields, name));
        };
        walk.segs.push(Seg::Key(name.to_owned()));
        let last = i + 1 == parts.len();
        match def.kind {
            Kind::ObjectList(item_fields) => {
                let Some(sel) = selector else {
                    if last {
                        return Ok(walk.target(def.kind, true));
                    }
                    return Err(target_err(
                        Code::BadForeach,
                        format!(
                            "`{key}`: `{name}` is a list; say which item: `{name}[]` (foreach), `{name}[<group>]` or `{name}[0]`"
                        ),
                        None,
                    ));
                };
                walk.select(name, sel, groups)?;
                if last {
                    return Ok(walk.target(def.kind, true));
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
            Kind::TextMap => return walk.map_entry(&parts[i + 1..]),
            kind => {
                if !last {
                    return Err(target_err(
                        Code::UnknownField,
                        format!("`{key}`: `{name}` has no fields"),
                        None,
                    ));
                }
                return Ok(walk.target(kind, false));
            }
        }
    }
    Err(target_err(
        Code::UnknownField,
        format!("`{key}` is not a case field"),
        None,
    ))
}

/// `name[selector]` → (`name`, `selector`); a `[` without its `]` is an error.
fn split_selector<'k>(key: &str, part: &'k str) -> Result<(&'k str, Option<&'k str>), TargetError> {
    match part.find('[') {
        Some(open) if part.ends_with(']') => {
            Ok((&part[..open], Some(&part[open + 1..part.len() - 1])))
        }
        Some(_) => Err(target_err(
            Code::UnknownField,
            format!("`{key}`: unclosed `[` in `{part}`"),
            None,
        )),
        None => Ok((part, None)),
    }
}

/// `name` is not among `fields` (reached through `before`): the error, with
/// the closest name or the list of names.
fn unknown_field(key: &str, before: &[&str], fields: &[FieldDef], name: &str) -> TargetError {
    let path_so_far = before.join(".");
    let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
    let help = suggest(name, known.iter().copied())
        .map(|s| format!("did you mean `{s}`?"))
        .unwrap_or_else(|| format!("fields here: {}", known.join(", ")));
    let what = if path_so_far.is_empty() {
        "Case v1".to_owned()
    } else {
        format!("`{path_so_far}`")
    };
    target_err(
        Code::UnknownField,
        format!("`{key}`: {what} has no field `{name}`"),
        Some(help),
    )
}

/// A key being resolved: the segments so far and its foreach group.
struct Walk<'k> {
    key: &'k str,
    segs: Vec<Seg>,
    group: Option<usize>,
}

impl Walk<'_> {
    fn target(self, kind: Kind, list_end: bool) -> Target {
        Target {
            segs: self.segs,
            kind,
            group: self.group,
            list_end,
        }
    }

    /// The item of list `name` that `sel` selects: a foreach group (`[]`, or
    /// `[group]` by name; groups do not nest) or a fixed index (`[0]`).
    fn select(
        &mut self,
        name: &str,
        sel: &str,
        groups: &[(String, Vec<Seg>)],
    ) -> Result<(), TargetError> {
        let key = self.key;
        if !sel.is_empty() && sel.chars().all(|c| c.is_ascii_digit()) {
            let n: usize = sel.parse().map_err(|_| {
                target_err(
                    Code::UnknownField,
                    format!("`{key}`: bad index `{sel}`"),
                    None,
                )
            })?;
            self.segs.push(Seg::Fixed(n));
            return Ok(());
        }
        if self.group.is_some() {
            return Err(target_err(
                Code::BadForeach,
                format!("`{key}`: foreach groups cannot be nested"),
                None,
            ));
        }
        let candidates: Vec<usize> = groups
            .iter()
            .enumerate()
            .filter(|(_, (gname, into))| *into == self.segs && (sel.is_empty() || gname == sel))
            .map(|(gi, _)| gi)
            .collect();
        match candidates.as_slice() {
            [gi] => {
                self.group = Some(*gi);
                self.segs.push(Seg::Group(*gi));
                Ok(())
            }
            [] => {
                let list = segs_text(&self.segs);
                Err(target_err(
                    Code::BadForeach,
                    if sel.is_empty() {
                        format!("`{key}`: no `foreach` group fills `{list}`")
                    } else {
                        format!("`{key}`: no `foreach` group `{sel}` fills `{list}`")
                    },
                    Some(format!(
                        "add `[foreach] {list} = \"<path to the repeats>\"`"
                    )),
                ))
            }
            _ => Err(target_err(
                Code::BadForeach,
                format!(
                    "`{key}`: several foreach groups fill `{}`; name one: `{name}[<group>]`",
                    segs_text(&self.segs)
                ),
                None,
            )),
        }
    }

    /// A text map's entry: the rest of the key (`rest`), lowercase letters,
    /// digits and `_`.
    fn map_entry(mut self, rest: &[&str]) -> Result<Target, TargetError> {
        let key = self.key;
        if rest.is_empty() {
            return Err(target_err(
                Code::UnknownField,
                format!("`{key}` is a map: name the entry, e.g. `{key}.placer_order`"),
                None,
            ));
        }
        let entry = rest.join(".");
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
        self.segs.push(Seg::Key(entry));
        Ok(self.target(Kind::Text, false))
    }
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

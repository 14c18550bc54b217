//! `profile.toml`: its header (name, format, time zone, defaults, tables)
//! and where an `extends` points.

use super::*;

pub(super) fn resolve_extends(dir: &FsPath, target: &str) -> PathBuf {
    if target.contains('/') || target.contains('\\') {
        dir.join(target)
    } else {
        dir.parent()
            .map_or_else(|| PathBuf::from(target), |p| p.join(target))
    }
}

pub(super) fn parse_format(name: &str) -> Option<SourceFormat> {
    SourceFormat::from_name(name)
}

pub(super) type HeaderResult = Option<(Header, Option<(String, Loc)>)>;

pub(super) fn parse_header(ctx: &mut Ctx<'_>, table: &Table<'_>, dir: &FsPath) -> HeaderResult {
    const KEYS: &[&str] = &[
        "name",
        "description",
        "format",
        "extends",
        "time_zone",
        "defaults",
        "tables",
    ];
    ctx.check_keys(table, KEYS, "profile.toml", None);
    let name = match ctx.string(table, "name", None) {
        Some((n, _)) => n,
        None => {
            if get(table, "name").is_none() {
                let mut d = ctx.diag(
                    Severity::Error,
                    Code::MissingKey,
                    "`profile.toml` has no `name`",
                    0..0,
                );
                d.help = Some("add e.g. `name = \"epic\"`".into());
                ctx.diags.push(d);
            }
            return None;
        }
    };
    let _ = ctx.string(table, "description", None);
    let format = match ctx.string(table, "format", None) {
        Some((f, span)) => match parse_format(&f) {
            Some(fmt) => Some((fmt, ctx.loc(span))),
            None => {
                let names = SourceFormat::ALL.map(SourceFormat::as_str);
                let help = suggest(&f, names)
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("formats: {}", names.join(", ")));
                ctx.error_rule(
                    Code::UnknownFormat,
                    format!("unknown format `{f}`"),
                    span,
                    "format",
                    Some(help),
                );
                None
            }
        },
        None => None,
    };
    let time_zone = match ctx.string(table, "time_zone", None) {
        Some((tz, span)) => {
            if jiff::tz::TimeZone::get(&tz).is_err() {
                ctx.error_rule(
                    Code::UnknownTimeZone,
                    format!("unknown time zone `{tz}`"),
                    span.clone(),
                    "time_zone",
                    Some("use an IANA name such as `America/Chicago` or `UTC`".into()),
                );
            }
            Some((tz, ctx.loc(span)))
        }
        None => None,
    };
    let extends = ctx
        .string(table, "extends", None)
        .map(|(e, span)| (e, ctx.loc(span)));
    let mut defaults = Defaults::default();
    if let Some(d) = ctx.table(table, "defaults", None) {
        ctx.check_keys(d, &["tenant", "practice", "site"], "[defaults]", None);
        defaults.tenant = ctx.string(d, "tenant", Some("defaults")).map(|v| v.0);
        defaults.practice = ctx.string(d, "practice", Some("defaults")).map(|v| v.0);
        defaults.site = ctx.string(d, "site", Some("defaults")).map(|v| v.0);
    }
    let mut tables = Vec::new();
    if let Some(ts) = ctx.table(table, "tables", None) {
        for (name, value) in sorted(ts) {
            let tname = name.get_ref().to_string();
            let rule = format!("tables.{tname}");
            let DeValue::Table(entries) = value.get_ref() else {
                ctx.wrong_type(
                    &tname,
                    "a table of code = \"value\" entries",
                    value,
                    Some(&rule),
                );
                continue;
            };
            let mut table = CodeTable::default();
            for (code, v) in sorted(entries) {
                match v.get_ref() {
                    DeValue::String(s) => {
                        table.entries.insert(
                            code.get_ref().to_string(),
                            (s.to_string(), ctx.loc(v.span())),
                        );
                    }
                    _ => ctx.wrong_type(code.get_ref(), "a string", v, Some(&rule)),
                }
            }
            tables.push((tname, table));
        }
    }
    Some((
        Header {
            dir: dir.to_path_buf(),
            name,
            format,
            time_zone,
            defaults,
            tables,
        },
        extends,
    ))
}

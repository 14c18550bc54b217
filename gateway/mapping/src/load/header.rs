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

/// `profile.toml`'s table: the header and its `extends` target, if any;
/// `None` (reported) without a `name`.
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
    let name = header_name(ctx, table)?;
    let _ = ctx.string(table, "description", None);
    let format = header_format(ctx, table);
    let time_zone = header_time_zone(ctx, table);
    let extends = ctx
        .string(table, "extends", None)
        .map(|(e, span)| (e, ctx.loc(span)));
    let defaults = ctx
        .table(table, "defaults", None)
        .map(|d| header_defaults(ctx, d))
        .unwrap_or_default();
    let tables = ctx
        .table(table, "tables", None)
        .map(|ts| code_tables(ctx, ts))
        .unwrap_or_default();
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

/// `name` (required).
fn header_name(ctx: &mut Ctx<'_>, table: &Table<'_>) -> Option<String> {
    if let Some((n, _)) = ctx.string(table, "name", None) {
        return Some(n);
    }
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
    None
}

/// `format`: one of [`SourceFormat::NAMES`] (another name is reported).
fn header_format(ctx: &mut Ctx<'_>, table: &Table<'_>) -> Option<(SourceFormat, Loc)> {
    let (f, span) = ctx.string(table, "format", None)?;
    if let Some(fmt) = parse_format(&f) {
        return Some((fmt, ctx.loc(span)));
    }
    let names = SourceFormat::NAMES;
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

/// `time_zone`: an IANA name (an unknown one is reported and kept).
fn header_time_zone(ctx: &mut Ctx<'_>, table: &Table<'_>) -> Option<(String, Loc)> {
    let (tz, span) = ctx.string(table, "time_zone", None)?;
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

/// `[defaults]`: tenant, practice, site.
fn header_defaults(ctx: &mut Ctx<'_>, d: &Table<'_>) -> Defaults {
    ctx.check_keys(d, &["tenant", "practice", "site"], "[defaults]", None);
    Defaults {
        tenant: ctx.string(d, "tenant", Some("defaults")).map(|v| v.0),
        practice: ctx.string(d, "practice", Some("defaults")).map(|v| v.0),
        site: ctx.string(d, "site", Some("defaults")).map(|v| v.0),
    }
}

/// `[tables.<name>]`: code = "value" entries (other values reported).
fn code_tables(ctx: &mut Ctx<'_>, ts: &Table<'_>) -> Vec<(String, CodeTable)> {
    let mut tables = Vec::new();
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
    tables
}

//! Loading and checking a profile folder.
//!
//! TOML is parsed with `toml::de::DeTable` (the toml crate's spanned document
//! tree) rather than serde derive: serde stops at the first error and reports
//! unknown keys one at a time, while walking the spanned tree ourselves lets
//! `lint` report *every* problem in one run, each with the byte span of the
//! exact key or value (so the caret lands under the typo), and lets us suggest
//! the key that was probably meant. `toml_edit` would give the same spans but
//! is a second TOML stack next to the `toml` 1.x the workspace already uses.
//!
//! Order of work: the `profile.toml` chain (leaf, then each base it
//! `extends`) fixes format, time zone, defaults and the merged code tables;
//! then every mapping file of every profile in the chain is parsed (paths
//! compiled with the format's syntax) base first, merged by file name and
//! field key, and finally each merged file's field keys are resolved against
//! the Case v1 catalog.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};

use gateway_core::path::{Path, PathSyntax};
use gateway_core::{Severity, SourceFormat};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{Code, MapDiagnostic, suggest};
use crate::model::*;
use crate::schema::{self, Auto, FieldDef, Kind};
use crate::{LoadError, MapAction, SyntaxProvider};

type Table<'i> = DeTable<'i>;
type Value<'i> = Spanned<DeValue<'i>>;

/// The names of transforms, for "did you mean" hints and docs.
pub(crate) const TRANSFORMS: &[&str] = &[
    "trim", "upper", "lower", "icd10", "table", "date", "datetime", "concat", "split", "replace",
    "index", "prefix", "suffix", "unique",
];

/// Per-file parsing context: where diagnostics point.
struct Ctx<'a> {
    file: usize,
    display: String,
    text: &'a str,
    diags: &'a mut Vec<MapDiagnostic>,
}

impl Ctx<'_> {
    fn diag(
        &self,
        severity: Severity,
        code: Code,
        message: impl Into<String>,
        span: Range<usize>,
    ) -> MapDiagnostic {
        MapDiagnostic::new(severity, code, message).at_file(&self.display, self.text, span)
    }

    fn error(&mut self, code: Code, message: impl Into<String>, span: Range<usize>) {
        let d = self.diag(Severity::Error, code, message, span);
        self.diags.push(d);
    }

    fn error_rule(
        &mut self,
        code: Code,
        message: impl Into<String>,
        span: Range<usize>,
        rule: &str,
        help: Option<String>,
    ) {
        let mut d = self
            .diag(Severity::Error, code, message, span)
            .with_rule(rule);
        d.help = help;
        self.diags.push(d);
    }

    fn loc(&self, span: Range<usize>) -> Loc {
        let upto = self.text.get(..span.start).unwrap_or(self.text);
        let line = upto.matches('\n').count() + 1;
        Loc {
            file: self.file,
            span,
            line,
        }
    }

    /// Reports every key of `table` not in `allowed` (M003).
    fn check_keys(&mut self, table: &Table<'_>, allowed: &[&str], what: &str, rule: Option<&str>) {
        for (key, _) in sorted(table) {
            let name: &str = key.get_ref();
            if !allowed.contains(&name) {
                let help = suggest(name, allowed.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(|| Some(format!("allowed here: {}", allowed.join(", "))));
                let mut d = self.diag(
                    Severity::Error,
                    Code::UnknownKey,
                    format!("unknown key `{name}` in {what}"),
                    key.span(),
                );
                d.help = help;
                if let Some(rule) = rule {
                    d.rule = Some(rule.to_owned());
                }
                self.diags.push(d);
            }
        }
    }

    fn wrong_type(&mut self, key: &str, expected: &str, value: &Value<'_>, rule: Option<&str>) {
        let mut d = self.diag(
            Severity::Error,
            Code::WrongType,
            format!(
                "`{key}` must be {expected}, found {}",
                type_name(value.get_ref())
            ),
            value.span(),
        );
        d.rule = rule.map(str::to_owned);
        self.diags.push(d);
    }

    fn string(
        &mut self,
        table: &Table<'_>,
        key: &str,
        rule: Option<&str>,
    ) -> Option<(String, Range<usize>)> {
        let value = get(table, key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((s.to_string(), value.span())),
            _ => {
                self.wrong_type(key, "a string", value, rule);
                None
            }
        }
    }

    /// A string or an array of strings.
    fn strings(
        &mut self,
        table: &Table<'_>,
        key: &str,
        rule: Option<&str>,
    ) -> Option<(Vec<String>, Range<usize>)> {
        let value = get(table, key)?;
        match value.get_ref() {
            DeValue::String(s) => Some((vec![s.to_string()], value.span())),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(s.to_string()),
                        _ => self.wrong_type(key, "a string or an array of strings", item, rule),
                    }
                }
                Some((out, value.span()))
            }
            _ => {
                self.wrong_type(key, "a string or an array of strings", value, rule);
                None
            }
        }
    }

    fn boolean(&mut self, table: &Table<'_>, key: &str, rule: Option<&str>) -> Option<bool> {
        let value = get(table, key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, "true or false", value, rule);
                None
            }
        }
    }

    fn integer(&mut self, table: &Table<'_>, key: &str, rule: Option<&str>) -> Option<i64> {
        let value = get(table, key)?;
        match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.wrong_type(key, "an integer", value, rule);
                None
            }
        }
    }

    fn table<'t, 'i>(
        &mut self,
        table: &'t Table<'i>,
        key: &str,
        rule: Option<&str>,
    ) -> Option<&'t Table<'i>> {
        let value = get(table, key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(key, "a table", value, rule);
                None
            }
        }
    }

    /// Compiles a path whose text is the string `value`; errors point at the
    /// offending character inside the string.
    fn path(
        &mut self,
        syntax: &dyn PathSyntax,
        text: &str,
        span: Range<usize>,
        rule: &str,
    ) -> Option<Path> {
        match syntax.compile(text) {
            Ok(p) => Some(p),
            Err(e) => {
                let raw = self.text.get(span.clone()).unwrap_or("");
                let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
                    3
                } else if raw.starts_with('"') || raw.starts_with('\'') {
                    1
                } else {
                    0
                };
                let at = (span.start + quote + e.offset)
                    .min(span.end.saturating_sub(quote).max(span.start));
                self.error_rule(
                    Code::BadPath,
                    format!(
                        "path `{text}` does not parse ({} syntax): {}",
                        syntax.name(),
                        e.message
                    ),
                    at..at + 1,
                    rule,
                    None,
                );
                None
            }
        }
    }
}

fn get<'t, 'i>(table: &'t Table<'i>, key: &str) -> Option<&'t Value<'i>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v)
}

/// Entries in file order (the map is ordered by key).
fn sorted<'t, 'i>(
    table: &'t Table<'i>,
) -> Vec<(&'t Spanned<toml::de::DeString<'i>>, &'t Value<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// One `profile.toml` of the chain.
struct Header {
    dir: PathBuf,
    name: String,
    format: Option<(SourceFormat, Loc)>,
    time_zone: Option<(String, Loc)>,
    defaults: Defaults,
    tables: Vec<(String, CodeTable)>,
}

/// A mapping file before merging and field resolution.
struct RawFile {
    name: String,
    file_loc: Loc,
    action: Option<(MapAction, Loc)>,
    priority: Option<i64>,
    matcher: Option<Matcher>,
    case_id: Option<CaseIdRule>,
    groups: Vec<RawGroup>,
    fields: Vec<RawField>,
}

#[derive(Clone)]
struct RawGroup {
    name: String,
    into: String,
    into_loc: Loc,
    path: Path,
    when: Vec<Cond>,
}

#[derive(Clone)]
struct RawField {
    key: String,
    loc: Loc,
    /// `None` for `disable = true`.
    rule: Option<ValueRule>,
    /// Where the const/default value sits, for M014.
    const_span: Option<Loc>,
    default_span: Option<Loc>,
}

struct Loader<'s> {
    syntaxes: &'s dyn SyntaxProvider,
    sources: Vec<SourceText>,
    diags: Vec<MapDiagnostic>,
}

pub(crate) fn load(dir: &FsPath, syntaxes: &dyn SyntaxProvider) -> Result<Profile, LoadError> {
    let mut loader = Loader {
        syntaxes,
        sources: Vec::new(),
        diags: Vec::new(),
    };
    let profile = loader.load(dir);
    let mut diags = loader.diags;
    dedup(&mut diags);
    match profile {
        Some(mut p) if !diags.iter().any(MapDiagnostic::is_error) => {
            p.warnings = diags;
            p.sources = loader.sources;
            Ok(p)
        }
        _ => Err(LoadError { diagnostics: diags }),
    }
}

fn dedup(diags: &mut Vec<MapDiagnostic>) {
    let mut seen = Vec::new();
    diags.retain(|d| {
        if seen.contains(d) {
            false
        } else {
            seen.push(d.clone());
            true
        }
    });
}

fn folder_name(dir: &FsPath) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

fn display_name(dir: &FsPath, file: &str) -> String {
    let folder = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    format!("{folder}/{file}")
}

impl Loader<'_> {
    fn read(&mut self, dir: &FsPath, file: &str) -> Option<usize> {
        let path = dir.join(file);
        let display = display_name(dir, file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                self.sources.push(SourceText { display, text });
                Some(self.sources.len() - 1)
            }
            Err(e) => {
                self.diags.push(
                    MapDiagnostic::error(Code::Io, format!("cannot read `{}`: {e}", path.display()))
                        .with_help("a profile is a folder with a `profile.toml` and one TOML mapping file per message kind"),
                );
                None
            }
        }
    }

    /// Parses file `idx`; syntax errors become M002 diagnostics.
    fn with_table<R>(
        &mut self,
        idx: usize,
        f: impl FnOnce(&mut Ctx<'_>, &Table<'_>) -> R,
    ) -> Option<R> {
        let text = self.sources[idx].text.clone();
        let display = self.sources[idx].display.clone();
        let (doc, errors) = DeTable::parse_recoverable(&text);
        let mut ctx = Ctx {
            file: idx,
            display,
            text: &text,
            diags: &mut self.diags,
        };
        if !errors.is_empty() {
            // The parser's recovery reports follow-on errors for one mistake;
            // the first one is the one to fix.
            for e in errors.into_iter().take(1) {
                let span = e.span().unwrap_or(0..0);
                ctx.error(
                    Code::Syntax,
                    format!("invalid TOML: {}", e.message().trim()),
                    span,
                );
            }
            return None;
        }
        Some(f(&mut ctx, doc.get_ref()))
    }

    fn load(&mut self, dir: &FsPath) -> Option<Profile> {
        // 1. The profile.toml chain, leaf first.
        let mut chain: Vec<Header> = Vec::new();
        let mut seen: HashSet<PathBuf> = HashSet::new();
        let mut next = Some(dir.to_path_buf());
        while let Some(current) = next.take() {
            let canonical = std::fs::canonicalize(&current).unwrap_or_else(|_| current.clone());
            if !seen.insert(canonical) {
                self.diags.push(MapDiagnostic::error(
                    Code::BadExtends,
                    format!(
                        "profiles extend each other in a cycle: {} -> {}",
                        chain
                            .iter()
                            .map(|h| folder_name(&h.dir))
                            .collect::<Vec<_>>()
                            .join(" -> "),
                        folder_name(&current)
                    ),
                ));
                return None;
            }
            let idx = self.read(&current, "profile.toml")?;
            let parsed = self.with_table(idx, |ctx, table| parse_header(ctx, table, &current))?;
            let (header, extends) = parsed?;
            chain.push(header);
            if let Some((target, loc)) = extends {
                let base = resolve_extends(&current, &target);
                if !base.join("profile.toml").is_file() {
                    let ctx = Ctx {
                        file: loc.file,
                        display: self.sources[loc.file].display.clone(),
                        text: &self.sources[loc.file].text,
                        diags: &mut Vec::new(),
                    };
                    let d = ctx
                        .diag(
                            Severity::Error,
                            Code::BadExtends,
                            format!("base profile `{target}` not found: no folder `{}` with a `profile.toml`", folder_name(&base)),
                            loc.span,
                        )
                        .with_help("`extends` takes a profile name (a sibling folder) or a relative folder path such as `../hl7v2-base`");
                    self.diags.push(d);
                    return None;
                }
                next = Some(base);
            }
        }

        // 2. Effective settings: the nearest definition wins.
        let leaf_name = chain[0].name.clone();
        let mut format: Option<(SourceFormat, Loc)> = None;
        for h in &chain {
            if let Some((f, loc)) = &h.format {
                match &format {
                    None => format = Some((*f, loc.clone())),
                    Some((leaf_f, _)) if leaf_f != f => {
                        let src = &self.sources[loc.file];
                        self.diags.push(
                            MapDiagnostic::error(
                                Code::BadExtends,
                                format!(
                                    "base profile `{}` has format `{}` but `{leaf_name}` has `{}`",
                                    h.name,
                                    f.as_str(),
                                    leaf_f.as_str()
                                ),
                            )
                            .at_file(
                                &src.display,
                                &src.text,
                                loc.span.clone(),
                            ),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        let format_declared_but_invalid = self.diags.iter().any(|d| d.code == Code::UnknownFormat);
        let Some((format, format_loc)) = format else {
            if format_declared_but_invalid {
                return None;
            }
            self.diags.push(
                MapDiagnostic::error(
                    Code::MissingKey,
                    "no `format` in `profile.toml` (nor in a base profile)",
                )
                .at_file(&self.sources[0].display, &self.sources[0].text, 0..0)
                .with_help("add `format = \"hl7v2\"` (or x12, fhir, desktop, json)"),
            );
            return None;
        };
        let Some(syntax) = self.syntaxes.syntax(format) else {
            let src = &self.sources[format_loc.file];
            self.diags.push(
                MapDiagnostic::error(
                    Code::UnknownFormat,
                    format!(
                        "no path syntax is registered for format `{}`",
                        format.as_str()
                    ),
                )
                .at_file(&src.display, &src.text, format_loc.span.clone())
                .with_help("this build of the tool does not include that format's adapter"),
            );
            return None;
        };
        let (time_zone_name, time_zone) = match chain.iter().find_map(|h| h.time_zone.clone()) {
            Some((name, _)) => match jiff::tz::TimeZone::get(&name) {
                Ok(tz) => (name, tz),
                Err(_) => return None, // reported by parse_header
            },
            None => ("UTC".to_owned(), jiff::tz::TimeZone::UTC),
        };
        let defaults = Defaults {
            tenant: chain.iter().find_map(|h| h.defaults.tenant.clone()),
            practice: chain.iter().find_map(|h| h.defaults.practice.clone()),
            site: chain.iter().find_map(|h| h.defaults.site.clone()),
        };
        let mut tables: BTreeMap<String, CodeTable> = BTreeMap::new();
        for h in chain.iter().rev() {
            for (name, table) in &h.tables {
                let merged = tables.entry(name.clone()).or_default();
                for (k, v) in &table.entries {
                    merged.entries.insert(k.clone(), v.clone());
                }
            }
        }

        // 3. Mapping files, base first, merged by name and field key.
        let mut merged: BTreeMap<String, RawFile> = BTreeMap::new();
        let dirs: Vec<PathBuf> = chain.iter().rev().map(|h| h.dir.clone()).collect();
        let mut any_file = false;
        for d in &dirs {
            let mut names: Vec<String> = match std::fs::read_dir(d) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".toml") && n != "profile.toml")
                    .collect(),
                Err(e) => {
                    self.diags.push(MapDiagnostic::error(
                        Code::Io,
                        format!("cannot list `{}`: {e}", d.display()),
                    ));
                    Vec::new()
                }
            };
            names.sort();
            for name in names {
                any_file = true;
                let Some(idx) = self.read(d, &name) else {
                    continue;
                };
                let tables_ref = &tables;
                let Some(Some(raw)) = self.with_table(idx, |ctx, table| {
                    parse_mapping(ctx, table, &name, syntax, tables_ref)
                }) else {
                    continue;
                };
                match merged.remove(&name) {
                    Some(base) => {
                        merged.insert(name, overlay(base, raw));
                    }
                    None => {
                        merged.insert(name, raw);
                    }
                }
            }
        }
        if !any_file {
            self.diags.push(
                MapDiagnostic::warning(
                    Code::NoMappingFiles,
                    "the profile has no mapping files: every document will be unmatched",
                )
                .at_file(&self.sources[0].display, &self.sources[0].text, 0..0),
            );
        }

        // 4. Resolve field keys against Case v1.
        let mut files = Vec::new();
        for (_, raw) in merged {
            if let Some(f) = self.resolve(raw, &tables) {
                files.push(f);
            }
        }
        Some(Profile {
            name: leaf_name,
            format,
            time_zone,
            time_zone_name,
            defaults,
            tables,
            files,
            sources: Vec::new(),
            warnings: Vec::new(),
        })
    }

    fn resolve(
        &mut self,
        raw: RawFile,
        tables: &BTreeMap<String, CodeTable>,
    ) -> Option<MappingFile> {
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        let action = raw.action.as_ref().map_or(MapAction::Case, |(a, _)| *a);
        // foreach groups
        let mut groups = Vec::new();
        for g in &raw.groups {
            let mut ctx = make_ctx(&self.sources, &mut self.diags, g.into_loc.file);
            match resolve_target(&g.into, &[]) {
                Ok(t) if matches!(t.kind, Kind::ObjectList(_)) && t.list_end => groups.push(Group {
                    name: g.name.clone(),
                    into: t.segs,
                    path: g.path.clone(),
                    when: g.when.clone(),
                }),
                Ok(_) => ctx.error_rule(
                    Code::BadForeach,
                    format!("`foreach` group `{}` must fill a list of objects, and `{}` is not one", g.name, g.into),
                    g.into_loc.span.clone(),
                    &format!("foreach.{}", g.name),
                    Some("lists of objects: coverages, providers, services, diagnoses, attachments, patient.identifiers, providers[N].identifiers, decision.service_decisions".into()),
                ),
                Err(e) => ctx.error_rule(e.code, e.message, g.into_loc.span.clone(), &format!("foreach.{}", g.name), e.help),
            }
        }
        let group_refs: Vec<(String, Vec<Seg>)> = groups
            .iter()
            .map(|g| (g.name.clone(), g.into.clone()))
            .collect();
        let mut rules = Vec::new();
        let mut has_status = false;
        for field in raw.fields {
            let Some(rule) = field.rule else { continue };
            let mut ctx = make_ctx(&self.sources, &mut self.diags, field.loc.file);
            let target = match resolve_target(&field.key, &group_refs) {
                Ok(t) if t.list_end => {
                    let msg = format!(
                        "`{}` is a list of objects: map its fields, e.g. `{}[].<field>`",
                        field.key,
                        field.key.trim_end_matches("[]")
                    );
                    ctx.error_rule(
                        Code::UnknownField,
                        msg,
                        field.loc.span.clone(),
                        &field.key,
                        None,
                    );
                    continue;
                }
                Ok(t) => t,
                Err(e) => {
                    ctx.error_rule(
                        e.code,
                        e.message,
                        field.loc.span.clone(),
                        &field.key,
                        e.help,
                    );
                    continue;
                }
            };
            if field.key == "status" {
                has_status = true;
            }
            if matches!(rule.source, ValueSource::Position) && target.group.is_none() {
                ctx.error_rule(
                    Code::BadForeach,
                    "`position` only has a value inside a `foreach` item",
                    field.loc.span.clone(),
                    &field.key,
                    None,
                );
            }
            let spans = (field.const_span.as_ref(), field.default_span.as_ref());
            check_constants(
                &mut ctx,
                &field.key,
                target.kind,
                &rule,
                spans,
                tables,
                &self.sources,
            );
            rules.push(FieldRule {
                key_loc: field.loc.clone(),
                key: field.key,
                segs: target.segs,
                kind: target.kind,
                group: target.group,
                rule,
            });
        }
        let mut ctx = make_ctx(&self.sources, &mut self.diags, raw.file_loc.file);
        if action != MapAction::Ignore && raw.case_id.is_none() {
            ctx.error(
                Code::IncompleteMapping,
                format!(
                    "`{}` produces a {} but has no `[case_id]` key",
                    raw.name,
                    action.as_str()
                ),
                raw.file_loc.span.clone(),
            );
        }
        if action == MapAction::Case && !has_status {
            let mut d = ctx.diag(
                Severity::Error,
                Code::IncompleteMapping,
                format!(
                    "`{}` produces a case but has no rule for `status`",
                    raw.name
                ),
                raw.file_loc.span.clone(),
            );
            d.help = Some("add e.g. `status = { const = \"requested\" }` under `[fields]`".into());
            ctx.diags.push(d);
        }
        let errors_after = self.diags.iter().filter(|d| d.is_error()).count();
        if errors_after > errors_before {
            return None;
        }
        Some(MappingFile {
            name: raw.name,
            action,
            priority: raw.priority.unwrap_or(0),
            matcher: raw.matcher.unwrap_or_default(),
            case_id: raw.case_id,
            groups,
            rules,
        })
    }
}

fn make_ctx<'a>(
    sources: &'a [SourceText],
    diags: &'a mut Vec<MapDiagnostic>,
    file: usize,
) -> Ctx<'a> {
    Ctx {
        file,
        display: sources[file].display.clone(),
        text: &sources[file].text,
        diags,
    }
}

fn resolve_extends(dir: &FsPath, target: &str) -> PathBuf {
    if target.contains('/') || target.contains('\\') {
        dir.join(target)
    } else {
        dir.parent()
            .map_or_else(|| PathBuf::from(target), |p| p.join(target))
    }
}

fn parse_format(name: &str) -> Option<SourceFormat> {
    SourceFormat::from_name(name)
}

type HeaderResult = Option<(Header, Option<(String, Loc)>)>;

fn parse_header(ctx: &mut Ctx<'_>, table: &Table<'_>, dir: &FsPath) -> HeaderResult {
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

fn parse_mapping(
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
    let action = ctx.string(table, "action", None).and_then(|(a, span)| {
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
    });
    let priority = ctx.integer(table, "priority", None);
    let matcher = ctx.table(table, "match", None).map(|m| {
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
    });
    let case_id = ctx.table(table, "case_id", None).and_then(|c| {
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
        let agree = ctx
            .strings(c, "agree", Some("case_id"))
            .map(|(names, span)| {
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
                        Some(
                            "e.g. `agree = [\"x12_trace\"]` (lowercase letters, digits, `_`)"
                                .into(),
                        ),
                    );
                }
                names.into_iter().filter(well_formed).collect()
            })
            .unwrap_or_default();
        Some(CaseIdRule {
            prefix: prefix.unwrap_or_default(),
            parts,
            own,
            agree,
            loc: ctx.loc(key.span()),
        })
    });
    let mut groups = Vec::new();
    if let Some(fe) = ctx.table(table, "foreach", None) {
        for (gname, value) in sorted(fe) {
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
                        continue;
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
                    continue;
                }
            };
            let Some(path) = ctx.path(syntax, &path_text, path_span.clone(), &rule) else {
                continue;
            };
            groups.push(RawGroup {
                name,
                into,
                into_loc: ctx.loc(into_span),
                path,
                when,
            });
        }
    }
    let mut fields = Vec::new();
    if let Some(fs) = ctx.table(table, "fields", None) {
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
            if let Some((rule, const_span, default_span)) =
                parse_rule(ctx, value, &k, syntax, tables)
            {
                fields.push(RawField {
                    key: k,
                    loc,
                    rule: Some(rule),
                    const_span,
                    default_span,
                });
            }
        }
    }
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

/// Child over base: top-level parts replace, groups by name, fields by key.
fn overlay(mut base: RawFile, child: RawFile) -> RawFile {
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

type RuleParts = (ValueRule, Option<Loc>, Option<Loc>);

/// Parses a rule: a path string, or a table (see README "Rules").
fn parse_rule(
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
            return Some((
                ValueRule {
                    source: ValueSource::Path(path),
                    root: false,
                    transforms: Vec::new(),
                    default: None,
                    when: Vec::new(),
                    required: false,
                    loc,
                    transform_names: Vec::new(),
                },
                None,
                None,
            ));
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
        sources.push(ValueSource::Paths(paths));
    }
    if let Some(v) = get(table, "const") {
        let text = match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(i) => Some(i.as_str().to_owned()),
            DeValue::Boolean(b) => Some(b.to_string()),
            DeValue::Float(f) => Some(f.as_str().to_owned()),
            _ => {
                ctx.wrong_type("const", "a string, number or boolean", v, Some(rule));
                None
            }
        };
        const_span = Some(ctx.loc(v.span()));
        sources.push(ValueSource::Const(text.unwrap_or_default()));
    }
    if ctx.boolean(table, "position", Some(rule)) == Some(true) {
        sources.push(ValueSource::Position);
    }
    let (default, default_span) = match get(table, "default") {
        Some(v) => {
            let text = match v.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                DeValue::Integer(i) => Some(i.as_str().to_owned()),
                DeValue::Boolean(b) => Some(b.to_string()),
                DeValue::Float(f) => Some(f.as_str().to_owned()),
                _ => {
                    ctx.wrong_type("default", "a string, number or boolean", v, Some(rule));
                    None
                }
            };
            (text, Some(ctx.loc(v.span())))
        }
        None => (None, None),
    };
    let source = match sources.len() {
        0 if default.is_some() => ValueSource::Nothing,
        0 => {
            ctx.error_rule(
                Code::MissingKey,
                "a rule needs a source: `path`, `paths`, `const`, `position` or `default`",
                loc.span.clone(),
                rule,
                None,
            );
            return None;
        }
        1 => sources.pop().unwrap_or(ValueSource::Nothing),
        _ => {
            ctx.error_rule(
                Code::WrongType,
                "a rule takes exactly one of `path`, `paths`, `const`, `position`",
                loc.span.clone(),
                rule,
                None,
            );
            return None;
        }
    };
    let root = match ctx.string(table, "scope", Some(rule)) {
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
    };
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
    Some((
        ValueRule {
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

fn parse_transforms(
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

fn unknown_transform(ctx: &mut Ctx<'_>, name: &str, span: Range<usize>, rule: &str) {
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

fn parse_transform(
    ctx: &mut Ctx<'_>,
    item: &Value<'_>,
    rule: &str,
    tables: &BTreeMap<String, CodeTable>,
) -> Option<Transform> {
    match item.get_ref() {
        DeValue::String(s) => match s.as_ref() {
            "trim" => Some(Transform::Trim),
            "upper" => Some(Transform::Upper),
            "lower" => Some(Transform::Lower),
            "icd10" => Some(Transform::Icd10),
            "unique" => Some(Transform::Unique),
            name if TRANSFORMS.contains(&name) => {
                ctx.error_rule(
                    Code::BadTransformArgument,
                    format!("transform `{name}` needs an argument"),
                    item.span(),
                    rule,
                    Some(format!(
                        "write it as a table: `{{ {name} = … }}` (see mappings/README.md)"
                    )),
                );
                None
            }
            name => {
                unknown_transform(ctx, name, item.span(), rule);
                None
            }
        },
        DeValue::Table(t) => {
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
            let text = |ctx: &mut Ctx<'_>| -> Option<String> {
                match arg.get_ref() {
                    DeValue::String(s) => Some(s.to_string()),
                    _ => {
                        ctx.wrong_type(name, "a string", arg, Some(rule));
                        None
                    }
                }
            };
            match name {
                "trim" | "upper" | "lower" | "icd10" | "unique" => Some(match name {
                    "trim" => Transform::Trim,
                    "unique" => Transform::Unique,
                    "upper" => Transform::Upper,
                    "lower" => Transform::Lower,
                    _ => Transform::Icd10,
                }),
                "table" => {
                    let tname = text(ctx)?;
                    if !tables.contains_key(&tname) {
                        let help = suggest(&tname, tables.keys().map(String::as_str))
                            .map(|s| format!("did you mean `{s}`?"))
                            .unwrap_or_else(|| {
                                "define it in profile.toml under `[tables.<name>]`".into()
                            });
                        ctx.error_rule(
                            Code::UnknownTable,
                            format!("unknown table `{tname}`"),
                            arg.span(),
                            rule,
                            Some(help),
                        );
                        return None;
                    }
                    let miss = match ctx.string(t, "miss", Some(rule)) {
                        None => Miss::Warn,
                        Some((m, span)) => match m.as_str() {
                            "warn" => Miss::Warn,
                            "drop" => Miss::Drop,
                            "keep" => Miss::Keep,
                            "error" => Miss::Error,
                            other => {
                                ctx.error_rule(Code::BadTransformArgument, format!("unknown `miss` behaviour `{other}`"), span, rule, Some("`warn` (default: drop with a warning), `drop` (silently), `keep` or `error`".into()));
                                return None;
                            }
                        },
                    };
                    let otherwise = ctx.string(t, "otherwise", Some(rule)).map(|(v, _)| v);
                    Some(Transform::Table {
                        name: tname,
                        miss,
                        otherwise,
                    })
                }
                "date" | "datetime" => {
                    let formats: Vec<(String, Range<usize>)> = match arg.get_ref() {
                        DeValue::String(s) => vec![(s.to_string(), arg.span())],
                        DeValue::Array(items) => items
                            .iter()
                            .filter_map(|i| match i.get_ref() {
                                DeValue::String(s) => Some((s.to_string(), i.span())),
                                _ => {
                                    ctx.wrong_type(
                                        name,
                                        "a format string or an array of them",
                                        i,
                                        Some(rule),
                                    );
                                    None
                                }
                            })
                            .collect(),
                        _ => {
                            ctx.wrong_type(
                                name,
                                "a format string or an array of them",
                                arg,
                                Some(rule),
                            );
                            return None;
                        }
                    };
                    let mut parsed = Vec::new();
                    for (f, span) in formats {
                        match crate::transform::parse_date_format(&f) {
                            Ok(df) => parsed.push(df),
                            Err(msg) => ctx.error_rule(Code::BadTransformArgument, msg, span, rule, Some("use `hl7`, `iso` or a pattern such as `%Y%m%d` or `%m/%d/%Y %H:%M`".into())),
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
                "concat" => Some(Transform::Concat(text(ctx)?)),
                "split" => {
                    let sep = text(ctx)?;
                    if sep.is_empty() {
                        ctx.error_rule(
                            Code::BadTransformArgument,
                            "`split` needs a non-empty separator",
                            arg.span(),
                            rule,
                            None,
                        );
                        return None;
                    }
                    Some(Transform::Split(sep))
                }
                "replace" => {
                    let from = text(ctx)?;
                    if from.is_empty() {
                        ctx.error_rule(
                            Code::BadTransformArgument,
                            "`replace` needs non-empty text to replace",
                            arg.span(),
                            rule,
                            None,
                        );
                        return None;
                    }
                    let Some((to, _)) = ctx.string(t, "with", Some(rule)) else {
                        if get(t, "with").is_none() {
                            ctx.error_rule(
                                Code::MissingKey,
                                "`replace` needs `with` (the replacement text, may be empty)",
                                key.span(),
                                rule,
                                None,
                            );
                        }
                        return None;
                    };
                    Some(Transform::Replace { from, to })
                }
                "index" => match arg.get_ref() {
                    DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                        .ok()
                        .map(Transform::Index),
                    _ => {
                        ctx.wrong_type(
                            "index",
                            "an integer (0 = first, -1 = last)",
                            arg,
                            Some(rule),
                        );
                        None
                    }
                },
                "prefix" => Some(Transform::Prefix(text(ctx)?)),
                "suffix" => Some(Transform::Suffix(text(ctx)?)),
                _ => {
                    unknown_transform(ctx, name, key.span(), rule);
                    None
                }
            }
        }
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

fn parse_when(
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
    let mut out = Vec::new();
    for item in items {
        let DeValue::Table(t) = item.get_ref() else {
            ctx.wrong_type(
                "when",
                "a condition table such as `{ path = \"ORC-1\", equals = \"NW\" }`",
                item,
                Some(rule),
            );
            continue;
        };
        ctx.check_keys(
            t,
            &["path", "meta", "equals", "not_equals", "exists", "scope"],
            "a condition",
            Some(rule),
        );
        let subject = match (
            ctx.string(t, "path", Some(rule)),
            ctx.string(t, "meta", Some(rule)),
        ) {
            (Some((p, span)), None) => match ctx.path(syntax, &p, span, rule) {
                Some(path) => CondSubject::Path(path),
                None => continue,
            },
            (None, Some((m, span))) => match MetaField::parse(&m) {
                Some(f) => CondSubject::Meta(f),
                None => {
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
                    continue;
                }
            },
            _ => {
                ctx.error_rule(
                    Code::MissingKey,
                    "a condition needs exactly one of `path` or `meta`",
                    item.span(),
                    rule,
                    None,
                );
                continue;
            }
        };
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
            continue;
        }
        let root = matches!(ctx.string(t, "scope", Some(rule)), Some((s, _)) if s == "root");
        if let Some(test) = tests.pop() {
            out.push(Cond {
                subject,
                test,
                root,
            });
        }
    }
    out
}

/// A resolved field key.
struct Target {
    segs: Vec<Seg>,
    kind: Kind,
    group: Option<usize>,
    /// The key ends at a list (selector on the last segment, or none).
    list_end: bool,
}

struct TargetError {
    code: Code,
    message: String,
    help: Option<String>,
}

fn target_err(code: Code, message: String, help: Option<String>) -> TargetError {
    TargetError {
        code,
        message,
        help,
    }
}

/// Resolves `services[].code.code` against the Case v1 catalog. `groups` are
/// the foreach groups (name, list segments) for `[]` / `[name]` selectors.
fn resolve_target(key: &str, groups: &[(String, Vec<Seg>)]) -> Result<Target, TargetError> {
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

fn segs_text(segs: &[Seg]) -> String {
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
fn check_constants(
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

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
//!
//! One job per module: `header` (`profile.toml`), `mapping` (one mapping
//! file, and a child's file overlaid on its base's), `rule` (one field rule
//! with its transforms and `when`), `target` (field keys against the Case v1
//! catalog, constants against the field's kind); this file holds the
//! diagnostics context (`Ctx`) and the `Loader` that walks the `extends`
//! chain and merges.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};

use gateway_core::path::{Path, PathSyntax};
use gateway_core::{Severity, SourceFormat};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{Code, MapDiagnostic, suggest};
use crate::model::*;
use crate::schema::{self, FieldDef, Kind};
use crate::{LoadError, MapAction, SyntaxProvider};

mod header;
mod mapping;
mod rule;
mod target;

use header::*;
use mapping::*;
use rule::*;
use target::*;

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

/// The chain's code tables: a child's entries over its base's.
fn merged_tables(chain: &[Header]) -> BTreeMap<String, CodeTable> {
    let mut tables: BTreeMap<String, CodeTable> = BTreeMap::new();
    for h in chain.iter().rev() {
        for (name, table) in &h.tables {
            let merged = tables.entry(name.clone()).or_default();
            for (k, v) in &table.entries {
                merged.entries.insert(k.clone(), v.clone());
            }
        }
    }
    tables
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

impl<'s> Loader<'s> {
    fn read(&mut self, dir: &FsPath, file: &str) -> Option<usize> {
        let path = dir.join(file);
        let display = display_name(dir, file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                self.sources.push(SourceText {
                    display: display.into(),
                    text,
                });
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
        let display = self.sources[idx].display.to_string();
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
        let chain = self.read_chain(dir)?;
        // 2. Effective settings: the nearest definition wins.
        let leaf_name = chain[0].name.clone();
        let (format, syntax) = self.effective_format(&chain)?;
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
        let tables = merged_tables(&chain);
        // 3. Mapping files, base first, merged by name and field key.
        let merged = self.read_mappings(&chain, syntax, &tables);
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

    /// `dir`'s `profile.toml` and those it `extends`, leaf first; `None`
    /// (reported) on a cycle, an unreadable header or a missing base.
    fn read_chain(&mut self, dir: &FsPath) -> Option<Vec<Header>> {
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
                next = Some(self.base_profile(&current, &target, loc)?);
            }
        }
        Some(chain)
    }

    /// The folder `extends = target` (written at `loc` in `current`'s header)
    /// names; `None` (reported) when it has no `profile.toml`.
    fn base_profile(&mut self, current: &FsPath, target: &str, loc: Loc) -> Option<PathBuf> {
        let base = resolve_extends(current, target);
        if base.join("profile.toml").is_file() {
            return Some(base);
        }
        let ctx = Ctx {
            file: loc.file,
            display: self.sources[loc.file].display.to_string(),
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
        None
    }

    /// The chain's format (the leaf's; a base declaring another one is
    /// reported) and its path syntax; `None` (reported) without a format or a
    /// syntax for it.
    fn effective_format(&mut self, chain: &[Header]) -> Option<(SourceFormat, &'s dyn PathSyntax)> {
        let leaf_name = &chain[0].name;
        let mut format: Option<(SourceFormat, Loc)> = None;
        for h in chain {
            let Some((f, loc)) = &h.format else {
                continue;
            };
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
                        .at_file(&src.display, &src.text, loc.span.clone()),
                    );
                }
                Some(_) => {}
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
        Some((format, syntax))
    }

    /// Every mapping file of the chain, base first, a child's file overlaid
    /// on its base's of the same name; warns when there is none.
    fn read_mappings(
        &mut self,
        chain: &[Header],
        syntax: &dyn PathSyntax,
        tables: &BTreeMap<String, CodeTable>,
    ) -> BTreeMap<String, RawFile> {
        let mut merged: BTreeMap<String, RawFile> = BTreeMap::new();
        let mut any_file = false;
        for h in chain.iter().rev() {
            let d = &h.dir;
            for name in self.mapping_names(d) {
                any_file = true;
                let Some(idx) = self.read(d, &name) else {
                    continue;
                };
                let Some(Some(raw)) = self.with_table(idx, |ctx, table| {
                    parse_mapping(ctx, table, &name, syntax, tables)
                }) else {
                    continue;
                };
                let raw = match merged.remove(&name) {
                    Some(base) => overlay(base, raw),
                    None => raw,
                };
                merged.insert(name, raw);
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
        merged
    }

    /// The mapping files of folder `d` (`*.toml` but `profile.toml`), sorted.
    fn mapping_names(&mut self, d: &FsPath) -> Vec<String> {
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
        names
    }

    fn resolve(
        &mut self,
        raw: RawFile,
        tables: &BTreeMap<String, CodeTable>,
    ) -> Option<MappingFile> {
        let errors_before = self.diags.iter().filter(|d| d.is_error()).count();
        let action = raw.action.as_ref().map_or(MapAction::Case, |(a, _)| *a);
        let groups = self.resolve_groups(&raw.groups);
        let group_refs: Vec<(String, Vec<Seg>)> = groups
            .iter()
            .map(|g| (g.name.clone(), g.into.clone()))
            .collect();
        let rules: Vec<FieldRule> = raw
            .fields
            .into_iter()
            .filter_map(|field| self.resolve_field(field, &group_refs, tables))
            .collect();
        let has_status = rules.iter().any(|r| &*r.key == "status");
        self.check_complete(
            &raw.name,
            &raw.file_loc,
            action,
            raw.case_id.is_some(),
            has_status,
        );
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

    /// The foreach groups whose `into` is a list of objects (others reported).
    fn resolve_groups(&mut self, raw: &[RawGroup]) -> Vec<Group> {
        let mut groups = Vec::new();
        for g in raw {
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
        groups
    }

    /// One field rule against Case v1 and the groups; `None` for a disabled
    /// field or an unknown target (reported). `position` outside a group and
    /// constants outside their vocabulary are reported but keep the rule.
    fn resolve_field(
        &mut self,
        field: RawField,
        group_refs: &[(String, Vec<Seg>)],
        tables: &BTreeMap<String, CodeTable>,
    ) -> Option<FieldRule> {
        let rule = field.rule?;
        let mut ctx = make_ctx(&self.sources, &mut self.diags, field.loc.file);
        let target = match resolve_target(&field.key, group_refs) {
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
                return None;
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
                return None;
            }
        };
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
        Some(FieldRule {
            key_loc: field.loc.clone(),
            key: field.key.into(),
            segs: target.segs,
            kind: target.kind,
            group: target.group,
            rule,
        })
    }

    /// A file that produces something needs a `[case_id]`; one that produces
    /// a case needs a `status` rule.
    fn check_complete(
        &mut self,
        name: &str,
        file_loc: &Loc,
        action: MapAction,
        has_case_id: bool,
        has_status: bool,
    ) {
        let mut ctx = make_ctx(&self.sources, &mut self.diags, file_loc.file);
        if action != MapAction::Ignore && !has_case_id {
            ctx.error(
                Code::IncompleteMapping,
                format!(
                    "`{name}` produces a {} but has no `[case_id]` key",
                    action.as_str()
                ),
                file_loc.span.clone(),
            );
        }
        if action == MapAction::Case && !has_status {
            let mut d = ctx.diag(
                Severity::Error,
                Code::IncompleteMapping,
                format!("`{name}` produces a case but has no rule for `status`"),
                file_loc.span.clone(),
            );
            d.help = Some("add e.g. `status = { const = \"requested\" }` under `[fields]`".into());
            ctx.diags.push(d);
        }
    }
}

fn make_ctx<'a>(
    sources: &'a [SourceText],
    diags: &'a mut Vec<MapDiagnostic>,
    file: usize,
) -> Ctx<'a> {
    Ctx {
        file,
        display: sources[file].display.to_string(),
        text: &sources[file].text,
        diags,
    }
}

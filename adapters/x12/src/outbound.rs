//! Case → 278 request or 278 response, driven by outbound templates that live in
//! the profile.
//!
//! The inverse mapping is data, like the inbound one: `mappings/x12-278/outbound/request.toml`
//! (BHT02 = 13, from a requested case) and `outbound/response.toml` (BHT02 = 11,
//! from a case and its decision) list the segments of each HL loop with `{…}`
//! expressions into the Case JSON.
//! This module evaluates it, numbers the HL hierarchy (HL01/HL02/HL04), and
//! hands the body to [`crate::write::write_interchange`] so SE01, GE01, IEA01 and
//! the control numbers are always right.
//!
//! Template format (TOML):
//!
//! ```toml
//! [tables.sex]                # code tables for the `table:NAME` filter
//! female = "F"
//!
//! header = [["BHT", "0007", "13", "{references.x12_bht_reference||$.case_id}", "{$now.date}", "{$now.time}"]]
//!
//! [[loops]]
//! level = "20"                # HL03; parents are implied: 21→20, 22→21, 23→22, EV→23|22, SS→EV
//! when = "coverages.0"        # optional: emit the loop only when this path has a value
//! foreach = "services"        # optional: one loop per item; paths are then relative to the item
//! segments = [
//!   ["NM1", "X3", "2", "{coverages.0.payer.name}", "", "", "", "", "PI", "{coverages.0.payer.id}"],
//!   { seg = ["DTP", "472", "D8", "{service_date.start|d8}"], when = "service_date.start", when_not = "service_date.end" },
//!   { foreach = "providers[role!=requester]", segments = [ ["NM1", "{role|table:entity}", "1", "{name.family}"] ] },
//!   { seg = ["HI"], elements = { foreach = "diagnoses", element = ["{primary|if:ABK:ABF}", "{code.code|nodot}"] } },
//! ]
//! ```
//!
//! * An element is a text or a list of components; a text may mix literals and
//!   `{expr}`. If any expression in an element is empty, the element is empty.
//! * A segment whose expression elements are all empty is skipped, as is one
//!   whose `when` path is empty or whose `when_not` path has a value.
//! * `when`/`when_not` (of a segment, a block or a loop) take a path — true when
//!   it has a value — or a comparison `path=value` / `path!=value` (`value` may
//!   list alternatives: `decision.status=approved,modified`).
//! * Pre-computed nodes: `hi_diagnoses` lists the ICD-10-CM and ICD-9
//!   diagnoses, each with its `hi_qualifier` (`ABK`/`ABF`, `BK`/`BF` by system
//!   and `primary`); `requesting_providers` holds the 2010B requester (zero or
//!   one provider, chosen by [`requesting_provider_index`]: role `requester`,
//!   else `ordering`, else `referring`) and `event_providers` every other
//!   provider but a `requester` (the 2010EA loops), so the requester is never
//!   written twice; when the case has a decision, every service line
//!   carries `line_decision` — its entry of `decision.service_decisions`, else
//!   the case-level status, authorization number and reason codes — so a 2000F
//!   loop can write its HCR without joining lists in the template.
//! * Paths: `.` is the current item (a string inside `foreach` over strings); dotted keys and 0-based indices (`coverages.0.payer.id`), array
//!   filters `providers[role=ordering]` / `[role!=requester]` (first match; all
//!   matches in `foreach`), `$.` for the case root inside a `foreach`, `$now.date`
//!   (CCYYMMDD) and `$now.time` (HHMM); `a||b` takes the first non-empty.
//! * Filters: `d8` (ISO date → CCYYMMDD), `nodot` (remove `.`), `upper`,
//!   `table:NAME`, `if:A:B` (A when the value is `true`, else B — also when absent),
//!   `then:TEXT` (TEXT when the value is present: `{npi|then:XX}` writes the
//!   NM108 qualifier only next to an NPI), `max:N` (truncate to N characters).
//!
//! Whatever a template says, [`Template::interchange`] checks the 278 it would
//! emit against the TR3 rules of [`crate::tr3`] — the same rules our 999 applies
//! to what we receive — and refuses ([`TemplateError::Refused`]) with the facts
//! the case lacks instead of sending something a payer rejects.

use std::collections::BTreeMap;
use std::path::Path;

use gateway_core::case::{CodeSystem, ProviderRole};
use gateway_core::{Case, GatewayError};
use serde_json::Value;

use crate::write::{ControlNumbers, EnvelopeParams, GroupOut, Seg, Stamp, write_interchange};

/// Why a template could not be loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read outbound template {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid template.
    #[error("invalid outbound template {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The case could not be serialized or written.
    #[error("cannot write the 278 request: {0}")]
    Write(String),
    /// The 278 the case would give breaks a TR3 rule ([`crate::tr3`]): each
    /// entry names the fact the case lacks ("case has no requesting provider
    /// NPI (2010B NM109)"). Nothing was written and no control number used.
    #[error("refusing to write an invalid 278: {}", .0.join("; "))]
    Refused(Vec<String>),
}

impl From<GatewayError> for TemplateError {
    fn from(e: GatewayError) -> Self {
        TemplateError::Write(e.message)
    }
}

/// A loaded outbound template (a 278 request or response).
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    tables: BTreeMap<String, BTreeMap<String, String>>,
    header: Vec<Entry>,
    loops: Vec<LoopTemplate>,
}

#[derive(Debug, Clone)]
struct LoopTemplate {
    level: String,
    when: Option<String>,
    when_not: Option<String>,
    foreach: Option<String>,
    segments: Vec<Entry>,
}

#[derive(Debug, Clone)]
enum ElementT {
    Simple(String),
    Composite(Vec<String>),
}

#[derive(Debug, Clone)]
enum Entry {
    Segment {
        id: String,
        elements: Vec<ElementT>,
        repeat_elements: Option<(String, ElementT)>,
        when: Option<String>,
        when_not: Option<String>,
        foreach: Option<String>,
    },
    Block {
        entries: Vec<Entry>,
        when: Option<String>,
        foreach: Option<String>,
    },
}

fn invalid(path: &str, message: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn parse_element(file: &str, v: &toml::Value) -> Result<ElementT, TemplateError> {
    match v {
        toml::Value::String(s) => Ok(ElementT::Simple(s.clone())),
        toml::Value::Array(items) => items
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(file, "components must be strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(ElementT::Composite),
        _ => Err(invalid(
            file,
            "an element must be a string or a list of strings",
        )),
    }
}

fn parse_seg_array(
    file: &str,
    items: &[toml::Value],
) -> Result<(String, Vec<ElementT>), TemplateError> {
    let id = items
        .first()
        .and_then(toml::Value::as_str)
        .ok_or_else(|| invalid(file, "a segment starts with its id"))?;
    let elements = items[1..]
        .iter()
        .map(|e| parse_element(file, e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((id.to_owned(), elements))
}

fn opt_str(file: &str, t: &toml::Table, key: &str) -> Result<Option<String>, TemplateError> {
    match t.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(file, format!("`{key}` must be a string"))),
    }
}

fn parse_entry(file: &str, v: &toml::Value) -> Result<Entry, TemplateError> {
    match v {
        toml::Value::Array(items) => {
            let (id, elements) = parse_seg_array(file, items)?;
            Ok(Entry::Segment {
                id,
                elements,
                repeat_elements: None,
                when: None,
                when_not: None,
                foreach: None,
            })
        }
        toml::Value::Table(t) => {
            for key in t.keys() {
                if !["seg", "segments", "when", "when_not", "foreach", "elements"]
                    .contains(&key.as_str())
                {
                    return Err(invalid(
                        file,
                        format!("unknown key `{key}` in a segment entry"),
                    ));
                }
            }
            let when = opt_str(file, t, "when")?;
            let when_not = opt_str(file, t, "when_not")?;
            let foreach = opt_str(file, t, "foreach")?;
            if let Some(seg) = t.get("seg") {
                let items = seg
                    .as_array()
                    .ok_or_else(|| invalid(file, "`seg` must be a list"))?;
                let (id, elements) = parse_seg_array(file, items)?;
                let repeat_elements = match t.get("elements") {
                    None => None,
                    Some(toml::Value::Table(r)) => {
                        let over = r
                            .get("foreach")
                            .and_then(toml::Value::as_str)
                            .ok_or_else(|| invalid(file, "`elements` needs `foreach`"))?;
                        let element = r
                            .get("element")
                            .ok_or_else(|| invalid(file, "`elements` needs `element`"))?;
                        Some((over.to_owned(), parse_element(file, element)?))
                    }
                    Some(_) => return Err(invalid(file, "`elements` must be a table")),
                };
                Ok(Entry::Segment {
                    id,
                    elements,
                    repeat_elements,
                    when,
                    when_not,
                    foreach,
                })
            } else if let Some(list) = t.get("segments").and_then(toml::Value::as_array) {
                Ok(Entry::Block {
                    entries: list
                        .iter()
                        .map(|e| parse_entry(file, e))
                        .collect::<Result<_, _>>()?,
                    when,
                    foreach,
                })
            } else {
                Err(invalid(file, "a segment entry needs `seg` or `segments`"))
            }
        }
        _ => Err(invalid(file, "a segment entry is a list or a table")),
    }
}

/// The Case → 278 request template (`outbound/request.toml`).
pub type RequestTemplate = Template;

/// The Case + decision → 278 response template (`outbound/response.toml`).
pub type ResponseTemplate = Template;

impl Template {
    /// Loads a template file.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: name.clone(),
            source,
        })?;
        Self::parse(&name, &text)
    }

    /// Parses template text (`name` is used in errors).
    pub fn parse(name: &str, text: &str) -> Result<Self, TemplateError> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| invalid(name, e.to_string()))?;
        for key in doc.keys() {
            if !["description", "tables", "header", "loops"].contains(&key.as_str()) {
                return Err(invalid(name, format!("unknown top-level key `{key}`")));
            }
        }
        let mut tables = BTreeMap::new();
        if let Some(t) = doc.get("tables") {
            let t = t
                .as_table()
                .ok_or_else(|| invalid(name, "`tables` must be a table"))?;
            for (table, entries) in t {
                let entries = entries
                    .as_table()
                    .ok_or_else(|| invalid(name, format!("table `{table}` must be a table")))?;
                let mut map = BTreeMap::new();
                for (k, v) in entries {
                    let v = v.as_str().ok_or_else(|| {
                        invalid(name, format!("table `{table}`: values must be strings"))
                    })?;
                    map.insert(k.clone(), v.to_owned());
                }
                tables.insert(table.clone(), map);
            }
        }
        let header = doc
            .get("header")
            .and_then(toml::Value::as_array)
            .ok_or_else(|| invalid(name, "`header` (the BHT) is required"))?
            .iter()
            .map(|e| parse_entry(name, e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut loops = Vec::new();
        for l in doc
            .get("loops")
            .and_then(toml::Value::as_array)
            .ok_or_else(|| invalid(name, "`loops` is required"))?
        {
            let t = l
                .as_table()
                .ok_or_else(|| invalid(name, "each `[[loops]]` entry is a table"))?;
            for key in t.keys() {
                if !["level", "when", "when_not", "foreach", "segments"].contains(&key.as_str()) {
                    return Err(invalid(name, format!("unknown key `{key}` in [[loops]]")));
                }
            }
            let level = opt_str(name, t, "level")?
                .ok_or_else(|| invalid(name, "[[loops]] needs `level`"))?;
            if !["20", "21", "22", "23", "EV", "SS"].contains(&level.as_str()) {
                return Err(invalid(name, format!("unknown HL level `{level}`")));
            }
            let segments = t
                .get("segments")
                .and_then(toml::Value::as_array)
                .ok_or_else(|| invalid(name, "[[loops]] needs `segments`"))?
                .iter()
                .map(|e| parse_entry(name, e))
                .collect::<Result<Vec<_>, _>>()?;
            loops.push(LoopTemplate {
                level,
                when: opt_str(name, t, "when")?,
                when_not: opt_str(name, t, "when_not")?,
                foreach: opt_str(name, t, "foreach")?,
                segments,
            });
        }
        let template = Template {
            name: name.to_owned(),
            tables,
            header,
            loops,
        };
        template.check_filters()?;
        Ok(template)
    }

    /// Checks every filter and table name once, at load time.
    fn check_filters(&self) -> Result<(), TemplateError> {
        let mut texts = Vec::new();
        fn collect(e: &Entry, out: &mut Vec<String>) {
            match e {
                Entry::Segment {
                    elements,
                    repeat_elements,
                    ..
                } => {
                    for el in elements.iter().chain(repeat_elements.iter().map(|r| &r.1)) {
                        match el {
                            ElementT::Simple(s) => out.push(s.clone()),
                            ElementT::Composite(c) => out.extend(c.iter().cloned()),
                        }
                    }
                }
                Entry::Block { entries, .. } => entries.iter().for_each(|e| collect(e, out)),
            }
        }
        for e in self
            .header
            .iter()
            .chain(self.loops.iter().flat_map(|l| &l.segments))
        {
            collect(e, &mut texts);
        }
        for text in texts {
            for expr in expressions(&text) {
                for filter in split_expr(expr).1 {
                    let (name, arg) = filter.split_once(':').unwrap_or((filter.as_str(), ""));
                    match name {
                        "d8" | "nodot" | "upper" | "if" | "then" => {}
                        "max" if arg.parse::<usize>().is_ok() => {}
                        "table" if self.tables.contains_key(arg) => {}
                        _ => {
                            return Err(invalid(
                                &self.name,
                                format!("unknown filter or table in `{{{expr}}}`"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The 278 body (BHT and HL loops) for `case`.
    ///
    /// Provider NPIs that fail the NPI check are never written
    /// ([`gateway_core::facts::strip_unsendable`]): the template sees them as
    /// absent, whatever path the case took to the writer.
    pub fn body(&self, case: &Case, stamp: &Stamp) -> Result<Vec<Seg>, TemplateError> {
        let mut checked = case.clone();
        gateway_core::facts::strip_unsendable(&mut checked);
        let case = &checked;
        let mut root =
            serde_json::to_value(case).map_err(|e| TemplateError::Write(e.to_string()))?;
        precompute(case, &mut root);
        let ctx = Ctx {
            t: self,
            root: &root,
            now_date: stamp.ccyymmdd(),
            now_time: stamp.hhmm(),
        };
        let mut body = Vec::new();
        for e in &self.header {
            ctx.entry(e, &root, &mut body);
        }
        // (HL01, level, index of the HL segment in `body`)
        let mut hls: Vec<(u32, String, usize)> = Vec::new();
        let mut parents: Vec<Option<u32>> = Vec::new();
        for l in &self.loops {
            if l.when.as_ref().is_some_and(|w| !ctx.holds(w, &root))
                || l.when_not.as_ref().is_some_and(|w| ctx.holds(w, &root))
            {
                continue;
            }
            let items: Vec<&Value> = match &l.foreach {
                Some(path) => ctx.items(path, &root),
                None => vec![&root],
            };
            for item in items {
                let parent = parent_of(&l.level, &hls);
                let id = u32::try_from(hls.len() + 1).unwrap_or(u32::MAX);
                hls.push((id, l.level.clone(), body.len()));
                parents.push(parent);
                body.push(
                    Seg::new("HL")
                        .e(id.to_string())
                        .e(parent.map(|p| p.to_string()).unwrap_or_default())
                        .e(&l.level)
                        .e("0"),
                );
                for e in &l.segments {
                    ctx.entry(e, item, &mut body);
                }
            }
        }
        // HL04: 1 when some HL names this one as its parent.
        for (id, _, at) in &hls {
            if parents.contains(&Some(*id)) {
                body[*at].elements[3] = vec!["1".into()];
            }
        }
        Ok(body)
    }

    /// A complete 278 interchange (one group, one set) for `case`, or
    /// [`TemplateError::Refused`] when that 278 would break a TR3 rule.
    ///
    /// The set is first written with throwaway control numbers and checked
    /// (envelope, loops and [`crate::tr3`], as our own 999 would), so a refusal
    /// uses none of `numbers`.
    pub fn interchange(
        &self,
        case: &Case,
        envelope: &EnvelopeParams,
        numbers: &dyn ControlNumbers,
        stamp: &Stamp,
    ) -> Result<Vec<u8>, TemplateError> {
        let body = self.body(case, stamp)?;
        let groups = [GroupOut {
            functional_id: "HI".into(),
            version: "005010X217".into(),
            set_id: "278".into(),
            sets: vec![body],
        }];
        let (trial, _) = write_interchange(
            envelope,
            &groups,
            &crate::write::MemoryControlNumbers::new(),
            stamp,
        )?;
        let refused = refusals(&trial);
        if !refused.is_empty() {
            return Err(TemplateError::Refused(refused));
        }
        let (bytes, _) = write_interchange(envelope, &groups, numbers, stamp)?;
        Ok(bytes)
    }
}

/// What keeps a 278 we wrote from passing our own 999: the facts the case
/// lacks for every TR3 rule it breaks, and any other error the reader finds.
pub fn refusals(written: &[u8]) -> Vec<String> {
    let parsed = match crate::tree::parse_interchange(written) {
        Ok(p) => p,
        Err(findings) => {
            return findings
                .iter()
                .map(|f| f.diagnostic.message.clone())
                .collect();
        }
    };
    let mut out: Vec<String> = Vec::new();
    for set in &parsed.sets {
        if let Some(model) = &set.model {
            for v in crate::tr3::check(&parsed.tokens, &set.envelope, model) {
                let fact = v.missing_fact();
                if !out.contains(&fact) {
                    out.push(fact);
                }
            }
        }
    }
    // Errors outside the TR3 tables (HL structure, code values, envelope).
    for f in parsed.findings.iter().filter(|f| f.is_error()) {
        if !f.diagnostic.message.starts_with("TR3: ") {
            out.push(format!(
                "written 278 has an error: {}",
                f.diagnostic.message
            ));
        }
    }
    out
}

fn parent_of(level: &str, hls: &[(u32, String, usize)]) -> Option<u32> {
    let wanted: &[&str] = match level {
        "21" => &["20"],
        "22" => &["21"],
        "23" => &["22"],
        "EV" => &["23", "22"],
        "SS" => &["EV"],
        _ => return None,
    };
    // The most recent HL of the nearest allowed level (23 before 22 for EV).
    let last_index = |lvl: &str| hls.iter().rposition(|(_, l, _)| l == lvl);
    let mut best: Option<usize> = None;
    for w in wanted {
        if let Some(i) = last_index(w) {
            best = Some(best.map_or(i, |b: usize| b.max(i)));
        }
    }
    best.map(|i| hls[i].0)
}

/// Splits a `path=values` / `path!=values` condition at its operator outside
/// `[...]` filters: (path, negated, values); `None` for a bare path.
fn split_condition(condition: &str) -> Option<(&str, bool, &str)> {
    let mut depth = 0i32;
    for (i, b) in condition.bytes().enumerate() {
        match b {
            b'[' => depth += 1,
            b']' => depth -= 1,
            b'=' if depth == 0 => {
                let negate = i > 0 && condition.as_bytes()[i - 1] == b'!';
                let path_end = if negate { i - 1 } else { i };
                return Some((&condition[..path_end], negate, &condition[i + 1..]));
            }
            _ => {}
        }
    }
    None
}

/// The HI code list qualifier of a diagnosis: ICD-10-CM `ABK` (principal) /
/// `ABF`, ICD-9-CM `BK` / `BF`; other systems have none a 278 allows.
fn hi_qualifier(d: &gateway_core::case::Diagnosis) -> Option<&'static str> {
    match (d.code.system, d.primary) {
        (CodeSystem::Icd10Cm, true) => Some("ABK"),
        (CodeSystem::Icd10Cm, false) => Some("ABF"),
        (CodeSystem::Icd9, true) => Some("BK"),
        (CodeSystem::Icd9, false) => Some("BF"),
        _ => None,
    }
}

/// The position in `case.providers` of the 278 requester (2010B, UMO's
/// "requesting provider"): [`Case::requesting_provider_index`] — role
/// `requester`, else `ordering`, else `referring`. `None` when the case has
/// none of them; the writer then refuses the case with "case has no requesting
/// provider (2010B NM1)". The request template reads the choice through the
/// pre-computed `requesting_providers` / `event_providers` nodes.
pub fn requesting_provider_index(case: &Case) -> Option<usize> {
    case.requesting_provider_index()
}

/// Adds the pre-computed nodes (see the module docs): `hi_diagnoses`,
/// `requesting_providers` and `event_providers` at the root, and
/// `line_decision` on every service line when the case has a decision.
fn precompute(case: &Case, root: &mut Value) {
    let requester = requesting_provider_index(case);
    let provider_values = |keep: &dyn Fn(usize, &gateway_core::case::Provider) -> bool| {
        case.providers
            .iter()
            .enumerate()
            .filter(|(i, p)| keep(*i, p))
            .filter_map(|(_, p)| serde_json::to_value(p).ok())
            .collect::<Vec<Value>>()
    };
    let requesting = provider_values(&|i, _| Some(i) == requester);
    // Every other provider is an event provider (2010EA), except further
    // `requester`s: a 278 has one 2010B requester and no 2010EA code for one.
    let event = provider_values(&|i, p| Some(i) != requester && p.role != ProviderRole::Requester);
    if let Value::Object(map) = root {
        map.insert("requesting_providers".to_owned(), Value::Array(requesting));
        map.insert("event_providers".to_owned(), Value::Array(event));
    }
    let hi: Vec<Value> = case
        .diagnoses
        .iter()
        .filter_map(|d| {
            let q = hi_qualifier(d)?;
            let mut v = serde_json::to_value(d).ok()?;
            if let Value::Object(map) = &mut v {
                map.insert("hi_qualifier".to_owned(), Value::String(q.to_owned()));
            }
            Some(v)
        })
        .collect();
    if let Value::Object(map) = root {
        map.insert("hi_diagnoses".to_owned(), Value::Array(hi));
    }
    let Some(decision) = &case.decision else {
        return;
    };
    let Some(services) = root.get_mut("services").and_then(Value::as_array_mut) else {
        return;
    };
    for (service, line) in services.iter_mut().zip(&case.services) {
        let own = decision
            .service_decisions
            .iter()
            .find(|d| d.line == line.line);
        let value = match own {
            Some(d) => serde_json::to_value(d).unwrap_or(Value::Null),
            None => serde_json::json!({
                "line": line.line,
                "status": decision.status,
                "authorization_number": decision.authorization_number,
                "reason_codes": decision.reason_codes,
            }),
        };
        if let Value::Object(map) = service {
            map.insert("line_decision".to_owned(), value);
        }
    }
}

/// Splits `a||b|filter|filter:arg` into the path alternatives and the filters.
fn split_expr(expr: &str) -> (String, Vec<String>) {
    let masked = expr.replace("||", "\u{1}");
    let mut parts = masked.split('|');
    let paths = parts.next().unwrap_or_default().replace('\u{1}', "||");
    let filters = parts
        .filter(|f| !f.is_empty())
        .map(|f| f.replace('\u{1}', "||"))
        .collect();
    (paths, filters)
}

/// The `{...}` expressions inside a text.
fn expressions(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    out
}

struct Ctx<'a> {
    t: &'a Template,
    root: &'a Value,
    now_date: String,
    now_time: String,
}

impl<'a> Ctx<'a> {
    fn entry(&self, e: &Entry, item: &'a Value, out: &mut Vec<Seg>) {
        match e {
            Entry::Segment {
                id,
                elements,
                repeat_elements,
                when,
                when_not,
                foreach,
            } => {
                let items = match foreach {
                    Some(f) => self.items(f, item),
                    None => vec![item],
                };
                for it in items {
                    if when.as_ref().is_some_and(|w| !self.holds(w, it))
                        || when_not.as_ref().is_some_and(|w| self.holds(w, it))
                    {
                        continue;
                    }
                    let mut seg = Seg::new(id);
                    let mut has_expr = false;
                    let mut any_value = false;
                    for el in elements {
                        let (value, expr, some) = self.element(el, it);
                        has_expr |= expr;
                        any_value |= expr && some;
                        seg.elements.push(value);
                    }
                    if let Some((over, el)) = repeat_elements {
                        has_expr = true;
                        for sub in self.items(over, it) {
                            let (value, _, some) = self.element(el, sub);
                            if some {
                                any_value = true;
                                seg.elements.push(value);
                            }
                        }
                    }
                    if !has_expr || any_value {
                        out.push(seg);
                    }
                }
            }
            Entry::Block {
                entries,
                when,
                foreach,
            } => {
                let items = match foreach {
                    Some(f) => self.items(f, item),
                    None => vec![item],
                };
                for it in items {
                    if when.as_ref().is_some_and(|w| !self.holds(w, it)) {
                        continue;
                    }
                    for e in entries {
                        self.entry(e, it, out);
                    }
                }
            }
        }
    }

    /// A `when` condition: `path` has a value, or `path=a,b` / `path!=a,b`.
    fn holds(&self, condition: &str, item: &Value) -> bool {
        match split_condition(condition) {
            Some((path, negate, values)) => {
                let got = self.text(path.trim(), item);
                let hit = got
                    .as_deref()
                    .is_some_and(|g| values.split(',').any(|v| v.trim() == g));
                hit != negate
            }
            None => self.text(condition, item).is_some(),
        }
    }

    /// (components, contains an expression, all expressions had values)
    fn element(&self, el: &ElementT, item: &Value) -> (Vec<String>, bool, bool) {
        match el {
            ElementT::Simple(s) => {
                let (v, expr, ok) = self.render(s, item);
                (vec![if ok { v } else { String::new() }], expr, ok && expr)
            }
            ElementT::Composite(parts) => {
                let mut out = Vec::new();
                let mut any_expr = false;
                let mut any_ok = false;
                for p in parts {
                    let (v, expr, ok) = self.render(p, item);
                    any_expr |= expr;
                    any_ok |= expr && ok;
                    out.push(if ok { v } else { String::new() });
                }
                if any_expr && !any_ok {
                    // A composite whose data is all absent is absent, qualifiers included.
                    out = vec![String::new()];
                }
                (out, any_expr, any_ok)
            }
        }
    }

    /// Renders literal text with `{expr}`s: (text, had expressions, all had values).
    fn render(&self, text: &str, item: &Value) -> (String, bool, bool) {
        let mut out = String::new();
        let mut rest = text;
        let mut expr = false;
        let mut ok = true;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            out.push_str(&rest[..start]);
            expr = true;
            match self.eval(&rest[start + 1..start + len], item) {
                Some(v) => out.push_str(&v),
                None => ok = false,
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        (out, expr, ok)
    }

    fn eval(&self, expr: &str, item: &Value) -> Option<String> {
        let (paths, filters) = split_expr(expr);
        let mut value = paths.split("||").find_map(|p| self.text(p.trim(), item));
        for filter in filters {
            let (name, arg) = filter
                .as_str()
                .split_once(':')
                .unwrap_or((filter.as_str(), ""));
            value = match name {
                "d8" => value.map(|v| v.replace('-', "")),
                "nodot" => value.map(|v| v.replace('.', "")),
                "upper" => value.map(|v| v.to_uppercase()),
                "max" => {
                    let n = arg.parse::<usize>().unwrap_or(usize::MAX);
                    value.map(|v| v.chars().take(n).collect())
                }
                "table" => {
                    value.and_then(|v| self.t.tables.get(arg).and_then(|t| t.get(&v)).cloned())
                }
                "then" => value.map(|_| arg.to_owned()),
                "if" => {
                    let (yes, no) = arg.split_once(':').unwrap_or((arg, ""));
                    let chosen = if value.as_deref() == Some("true") {
                        yes
                    } else {
                        no
                    };
                    (!chosen.is_empty()).then(|| chosen.to_owned())
                }
                _ => None,
            };
        }
        value.filter(|v| !v.is_empty())
    }

    /// The text at `path` from `item` (or the root with `$.`).
    fn text(&self, path: &str, item: &Value) -> Option<String> {
        match path {
            "$now.date" => return Some(self.now_date.clone()),
            "$now.time" => return Some(self.now_time.clone()),
            _ => {}
        }
        let v = self.resolve(path, item, false).into_iter().next()?;
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Object(m) if !m.is_empty() => Some("{}".into()),
            Value::Array(a) if !a.is_empty() => Some("[]".into()),
            _ => None,
        }
    }

    /// Items for a `foreach` path (all filter matches, array elements).
    fn items(&self, path: &str, item: &'a Value) -> Vec<&'a Value> {
        self.resolve(path, item, true)
            .into_iter()
            .flat_map(|v| match v {
                Value::Array(a) => a.iter().collect(),
                Value::Null => Vec::new(),
                other => vec![other],
            })
            .collect()
    }

    fn resolve(&self, path: &str, item: &'a Value, all: bool) -> Vec<&'a Value> {
        let (mut current, rest) = match path.strip_prefix("$.") {
            Some(r) => (vec![self.root], r),
            None => (vec![item], path),
        };
        for part in rest.split('.').filter(|p| !p.is_empty()) {
            let (key, filter) = match part.find('[') {
                Some(i) => (&part[..i], Some(part[i + 1..].trim_end_matches(']'))),
                None => (part, None),
            };
            let mut next = Vec::new();
            for v in current {
                let child = if let Ok(i) = key.parse::<usize>() {
                    v.as_array().and_then(|a| a.get(i))
                } else {
                    v.get(key)
                };
                let Some(child) = child else { continue };
                match filter {
                    Some(f) => {
                        let (k, want, negate) = match f.split_once("!=") {
                            Some((k, w)) => (k, w, true),
                            None => match f.split_once('=') {
                                Some((k, w)) => (k, w, false),
                                None => continue,
                            },
                        };
                        let matches = child.as_array().into_iter().flatten().filter(|x| {
                            let got = x.get(k).and_then(Value::as_str);
                            (got == Some(want)) != negate
                        });
                        if all {
                            next.extend(matches);
                        } else {
                            next.extend(matches.take(1));
                        }
                    }
                    None => next.push(child),
                }
            }
            current = next;
        }
        current
    }
}

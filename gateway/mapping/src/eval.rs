//! Evaluating a profile over one document.
//!
//! 1. Pick the mapping file: every `[match]` test must hold; the highest
//!    `priority` wins, ties go to the first file by name (with a warning).
//! 2. Evaluate rules into a *draft*: plain rules from the document root, then
//!    each `foreach` group once per repeat, with paths relative to the repeat.
//!    Each leaf remembers whether it came from the document or from a
//!    constant/default, and where (provenance).
//! 3. Finalize: objects with no document-derived value are dropped (absent
//!    data is omitted, never invented), list items lacking a Case v1 required
//!    field are dropped with a warning, line/sequence numbers are filled.
//! 4. Assemble the case (id, tenant, source) and validate it as Case v1.
//!
//! Any error-severity finding means no case; warnings travel with the case.

use std::sync::Arc;

use gateway_core::source::{NodeId, SourceDocument, SourceTree};
use gateway_core::{Case, Severity, ids};
use serde::Deserialize;
use serde_json::Value;

use crate::built::{Built, Object};
use crate::diag::{Code, MapDiagnostic};
use crate::model::*;
use crate::schema::{self, Auto, FieldDef, Kind};
use crate::transform::{self, Issue, Val};
use crate::walk;
use crate::{MapAction, MapContext, MapOutcome, Provenance};

/// A leaf value of the draft.
struct Leaf {
    json: Value,
    sourced: bool,
    /// `None` when the caller skips provenance ([`MapContext::skip_provenance`]).
    prov: Option<Provenance>,
}

/// Key of a list item: fixed items (`[0]`) first, then foreach items by group and position.
type ItemKey = (u8, usize, usize);

/// The draft of a case. Object keys borrow the profile's resolved targets
/// (`'p`), so building it allocates no key strings per message.
enum Draft<'p> {
    Leaf(Box<Leaf>),
    Texts(Vec<Leaf>),
    Obj(Members<&'p str, Draft<'p>>),
    List(Members<ItemKey, Draft<'p>>),
}

/// The members of a draft object or list: rarely more than a dozen, so a
/// vector searched from the front. The `BTreeMap` it replaces spent a sixth
/// of a map's instructions moving node entries and comparing keys
/// (callgrind, issue #21). Order is by insertion; [`Members::into_sorted`]
/// gives the key order where it matters (text maps, list items).
struct Members<K, V>(Vec<(K, V)>);

impl<K: Ord + Copy, V> Members<K, V> {
    fn new() -> Self {
        Members(Vec::new())
    }

    /// The value under `key`, inserted with `make` when absent.
    fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let at = match self.0.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                self.0.push((key, make()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }

    /// Every member, in key order.
    fn into_sorted(mut self) -> Vec<(K, V)> {
        self.0.sort_unstable_by_key(|member| member.0);
        self.0
    }
}

impl<V> Members<&str, V> {
    /// Takes the member named `key` out.
    fn remove(&mut self, key: &str) -> Option<V> {
        let at = self.0.iter().position(|(k, _)| *k == key)?;
        Some(self.0.swap_remove(at).1)
    }
}

struct Eval<'a> {
    profile: &'a Profile,
    doc: &'a SourceDocument,
    ctx: &'a MapContext,
    file: &'a MappingFile,
    diags: Vec<MapDiagnostic>,
    /// Set when the case id came from `[case_id] own` (see [`MapOutcome::adopted`]).
    adopted: bool,
    /// Node buffer reused by every path a rule evaluates.
    nodes: Vec<NodeId>,
    /// A rule's values and their source nodes, handed back by
    /// [`Eval::apply_rule`] for the next rule: a first push into fresh
    /// vectors for every rule cost ~7% of a map's instructions (callgrind).
    spare_values: Vec<Val>,
    spare_raws: Vec<(NodeId, usize)>,
}

/// The result of one rule: values after transforms and where they came from.
struct RuleValues {
    values: Vec<Val>,
    /// Source nodes (and which of `paths` they came from); values are read
    /// back from the tree only for explain.
    raws: Vec<(NodeId, usize)>,
    origin: &'static str,
}

pub(crate) fn map(profile: &Profile, doc: &SourceDocument, ctx: &MapContext) -> MapOutcome {
    let mut outcome = MapOutcome {
        mapping_file: None,
        action: None,
        case: None,
        diagnostics: Vec::new(),
        provenance: Vec::new(),
        agree: Vec::new(),
        adopted: false,
    };
    if doc.format != profile.format {
        outcome.diagnostics.push(MapDiagnostic::error(
            Code::FormatMismatch,
            format!(
                "the document is `{}` but profile `{}` maps `{}`",
                doc.format.as_str(),
                profile.name,
                profile.format.as_str()
            ),
        ));
        return outcome;
    }
    let Some(file) = select_file(profile, doc, &mut outcome.diagnostics) else {
        outcome.diagnostics.push(no_match(profile, doc));
        return outcome;
    };
    outcome.mapping_file = Some(file.name.clone());
    outcome.action = Some(file.action);
    outcome.agree = file
        .case_id
        .as_ref()
        .map(|rule| rule.agree.clone())
        .unwrap_or_default();
    if file.action == MapAction::Ignore {
        return outcome;
    }
    let mut eval = Eval {
        profile,
        doc,
        ctx,
        file,
        diags: std::mem::take(&mut outcome.diagnostics),
        adopted: false,
        nodes: Vec::new(),
        spare_values: Vec::new(),
        spare_raws: Vec::new(),
    };
    let (case, provenance) = eval.run();
    outcome.adopted = eval.adopted && case.is_some();
    outcome.case = case;
    outcome.provenance = provenance;
    outcome.diagnostics = eval.diags;
    if outcome.has_errors() {
        outcome.case = None;
    }
    outcome
}

fn meta_value(doc: &SourceDocument, field: MetaField) -> Option<&str> {
    let m = &doc.meta;
    match field {
        MetaField::MessageType => m.message_type.as_deref(),
        MetaField::Trigger => m.trigger.as_deref(),
        MetaField::Version => m.version.as_deref(),
        MetaField::Sender => m.sender.as_deref(),
        MetaField::ControlId => m.control_id.as_deref(),
    }
}

fn cond_holds(cond: &Cond, doc: &SourceDocument, from: NodeId) -> bool {
    let tree = &doc.tree;
    let start = if cond.root { tree.root() } else { from };
    let value = match &cond.subject {
        CondSubject::Path(p) => walk::first_value(p, tree, start),
        CondSubject::Meta(f) => meta_value(doc, *f).filter(|v| !v.is_empty()),
    };
    match &cond.test {
        CondTest::Equals(pats) => value.is_some_and(|v| pats.iter().any(|p| transform::glob(p, v))),
        CondTest::NotEquals(pats) => {
            !value.is_some_and(|v| pats.iter().any(|p| transform::glob(p, v)))
        }
        CondTest::Exists(want) => value.is_some() == *want,
    }
}

fn select_file<'p>(
    profile: &'p Profile,
    doc: &SourceDocument,
    diags: &mut Vec<MapDiagnostic>,
) -> Option<&'p MappingFile> {
    let root = doc.tree.root();
    let matching: Vec<&MappingFile> = profile
        .files
        .iter()
        .filter(|f| {
            f.matcher.meta.iter().all(|(field, pats)| {
                meta_value(doc, *field).is_some_and(|v| pats.iter().any(|p| transform::glob(p, v)))
            }) && f.matcher.when.iter().all(|c| cond_holds(c, doc, root))
        })
        .collect();
    let best = matching.iter().map(|f| f.priority).max()?;
    let top: Vec<&&MappingFile> = matching.iter().filter(|f| f.priority == best).collect();
    if top.len() > 1 {
        diags.push(
            MapDiagnostic::warning(
                Code::AmbiguousMatch,
                format!(
                    "{} mapping files match with priority {best} ({}); using `{}`",
                    top.len(),
                    top.iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    top[0].name
                ),
            )
            .with_help("give the more specific file a higher `priority`"),
        );
    }
    top.first().map(|f| **f)
}

/// Reports "no file matched" with the identifying facts (types, not values).
fn no_match(profile: &Profile, doc: &SourceDocument) -> MapDiagnostic {
    let m = &doc.meta;
    let mut facts = Vec::new();
    if let Some(t) = &m.message_type {
        facts.push(format!("message type `{t}`"));
    }
    if let Some(t) = &m.trigger {
        facts.push(format!("trigger `{t}`"));
    }
    if let Some(v) = &m.version {
        facts.push(format!("version `{v}`"));
    }
    let facts = if facts.is_empty() {
        "the document".to_owned()
    } else {
        facts.join(", ")
    };
    MapDiagnostic::error(
        Code::NoMatch,
        format!(
            "no mapping file of profile `{}` matches {facts}",
            profile.name
        ),
    )
    .with_help("add a mapping file whose `[match]` covers it, or one with `action = \"ignore\"`")
}

impl<'a> Eval<'a> {
    fn tree(&self) -> &SourceTree {
        &self.doc.tree
    }

    fn rule_diag(
        &self,
        severity: Severity,
        code: Code,
        message: String,
        loc: &Loc,
        rule: &str,
    ) -> MapDiagnostic {
        let mut d = MapDiagnostic::new(severity, code, message).with_rule(rule);
        if let Some(src) = self.profile.sources.get(loc.file) {
            d = d.at_file(&src.display, &src.text, loc.span.clone());
        }
        d
    }

    fn node_at(&self, node: Option<NodeId>) -> (Option<String>, Option<gateway_core::Span>) {
        match node {
            Some(n) => (Some(location(self.tree(), n)), self.tree().span(n)),
            None => (None, None),
        }
    }

    /// Evaluates a value rule from `item` (or the root). `None` when its `when` fails.
    fn values(
        &mut self,
        rule: &ValueRule,
        (name, at): (&str, &Loc),
        item: Option<(NodeId, usize)>,
    ) -> Option<RuleValues> {
        let root = self.tree().root();
        let from = match item {
            Some((node, _)) if !rule.root => node,
            _ => root,
        };
        let cond_from = item.map_or(root, |(n, _)| n);
        if !rule.when.iter().all(|c| cond_holds(c, self.doc, cond_from)) {
            return None;
        }
        let tree = &self.doc.tree;
        let mut raws = std::mem::take(&mut self.spare_raws);
        raws.clear();
        let mut origin = "path";
        let mut values = std::mem::take(&mut self.spare_values);
        values.clear();
        let mut nodes = std::mem::take(&mut self.nodes);
        let mut push_path = |path: &gateway_core::path::Path,
                             pi: usize,
                             raws: &mut Vec<(NodeId, usize)>,
                             values: &mut Vec<Val>| {
            nodes.clear();
            walk::evaluate_into(path, tree, from, &mut nodes);
            for &node in &nodes {
                // Surrounding whitespace is never data: `  Smith` is `Smith`.
                if let Some(v) = tree.value(node).map(str::trim).filter(|v| !v.is_empty()) {
                    values.push(Val {
                        text: v.to_owned(),
                        origin: Some(raws.len()),
                    });
                    raws.push((node, pi));
                }
            }
        };
        match &rule.source {
            ValueSource::Path(p) => push_path(p, 0, &mut raws, &mut values),
            ValueSource::Paths(ps) => {
                for (i, p) in ps.iter().enumerate() {
                    push_path(p, i, &mut raws, &mut values);
                }
            }
            ValueSource::Const(c) => {
                origin = "const";
                values.push(Val {
                    text: c.clone(),
                    origin: None,
                });
            }
            ValueSource::Position => {
                origin = "position";
                if let Some((_, k)) = item {
                    values.push(Val {
                        text: (k + 1).to_string(),
                        origin: None,
                    });
                }
            }
            ValueSource::Nothing => {}
        }
        self.nodes = nodes;
        let mut issues = Vec::new();
        for t in &rule.transforms {
            if values.is_empty() {
                break;
            }
            values = transform::apply(
                t,
                values,
                &self.profile.tables,
                &self.profile.time_zone,
                &mut issues,
            );
        }
        for issue in issues {
            let (severity, code, message, origin_idx) = match issue {
                Issue::TableMiss {
                    table,
                    otherwise: Some(used),
                    origin,
                    ..
                } => (
                    Severity::Warning,
                    Code::TableMiss,
                    format!(
                        "a value of `{name}` has no entry in table `{table}`; `{used}` is used"
                    ),
                    origin,
                ),
                Issue::TableMiss {
                    table,
                    error,
                    origin,
                    ..
                } => (
                    if error {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    Code::TableMiss,
                    format!(
                        "a value of `{name}` has no entry in table `{table}`; {}",
                        if error {
                            "the case is not produced"
                        } else {
                            "it is dropped"
                        }
                    ),
                    origin,
                ),
                Issue::BadDate {
                    datetime,
                    formats,
                    origin,
                } => (
                    Severity::Warning,
                    Code::BadDate,
                    format!(
                        "a value of `{name}` is not a {} in format {formats}; it is dropped",
                        if datetime { "date-time" } else { "date" }
                    ),
                    origin,
                ),
                Issue::NotIcd10 { origin } => (
                    Severity::Warning,
                    Code::InvalidValue,
                    format!("a value of `{name}` does not look like an ICD-10 code; kept as is"),
                    origin,
                ),
            };
            let node = origin_idx.and_then(|i| raws.get(i)).map(|r| r.0);
            let (loc, span) = self.node_at(node);
            let d = self
                .rule_diag(severity, code, message, at, name)
                .at_source(loc, span);
            self.diags.push(d);
        }
        if values.is_empty()
            && let Some(d) = &rule.default
        {
            origin = "default";
            values.push(Val {
                text: d.clone(),
                origin: None,
            });
        }
        Some(RuleValues {
            values,
            raws,
            origin,
        })
    }

    fn leaf(
        &self,
        rule: &FieldRule,
        rv: &RuleValues,
        origin: Option<usize>,
        shown: Option<String>,
        json: Value,
    ) -> Leaf {
        let sourced = origin.is_some();
        if self.ctx.skip_provenance {
            return Leaf {
                json,
                sourced,
                prov: None,
            };
        }
        let raw = origin.and_then(|i| rv.raws.get(i));
        // The readable location costs a tree walk per value: only for
        // explain; the byte span is always there.
        let node = raw.map(|r| r.0);
        let source_span = node.and_then(|n| self.tree().span(n));
        let source_location = if self.ctx.explain {
            node.map(|n| location(self.tree(), n))
        } else {
            None
        };
        let texts = &rule.rule.path_texts;
        let source_path = match (&rule.rule.source, raw) {
            (ValueSource::Path(_), _) => texts.first().cloned(),
            (ValueSource::Paths(_), Some(r)) => texts.get(r.1).cloned(),
            _ => None,
        };
        Leaf {
            json,
            sourced,
            prov: Some(Provenance {
                field: String::new(),
                file: self.display(rule.rule.loc.file),
                line: rule.rule.loc.line,
                rule: rule.key.clone(),
                source_path,
                source_location,
                source_span,
                origin: if sourced { "path" } else { rv.origin },
                transforms: rule.rule.transform_names.clone(),
                raw: if self.ctx.explain {
                    node.and_then(|n| self.tree().value(n)).map(str::to_owned)
                } else {
                    None
                },
                value: shown,
            }),
        }
    }

    /// The display name of profile file `file`, shared (no copy per value).
    fn display(&self, file: usize) -> Arc<str> {
        self.profile
            .sources
            .get(file)
            .map_or_else(|| Arc::from(""), |s| Arc::clone(&s.display))
    }

    /// Evaluates one field rule and stores its values in `draft`.
    fn apply_rule(
        &mut self,
        draft: &mut Draft<'a>,
        rule: &'a FieldRule,
        item: Option<(NodeId, usize, usize)>,
    ) {
        let Some(mut rv) = self.values(
            &rule.rule,
            (&rule.key, &rule.key_loc),
            item.map(|(n, _, k)| (n, k)),
        ) else {
            return;
        };
        let item_node = item.map(|(n, _, _)| n);
        // A text list keeps every value; any other kind its first, with no
        // vector for it.
        let list = rule.kind == Kind::TextList;
        let mut leaves = Vec::new();
        let mut single = None;
        let take = if list { usize::MAX } else { 1 };
        let mut values = std::mem::take(&mut rv.values);
        for val in values.drain(..).take(take) {
            let origin = val.origin;
            // The text moves into the JSON value; explain keeps a copy.
            let shown = self.ctx.explain.then(|| val.text.clone());
            match check_owned(rule.kind, val.text) {
                Ok(json) => {
                    let leaf = self.leaf(rule, &rv, origin, shown, json);
                    if list {
                        leaves.push(leaf);
                    } else {
                        single = Some(leaf);
                    }
                }
                Err(why) => {
                    let node = origin
                        .and_then(|i| rv.raws.get(i))
                        .map(|r| r.0)
                        .or(item_node);
                    let (loc, span) = self.node_at(node);
                    let what = if origin.is_some() {
                        "the source value"
                    } else {
                        "the value"
                    };
                    let d = self
                        .rule_diag(
                            if rule.rule.required {
                                Severity::Error
                            } else {
                                Severity::Warning
                            },
                            Code::InvalidValue,
                            format!("{what} for `{}` {why}; it is dropped", rule.key),
                            &rule.key_loc,
                            &rule.key,
                        )
                        .at_source(loc, span);
                    self.diags.push(d);
                }
            }
        }
        // Emptied: the next rule fills them again.
        self.spare_values = values;
        self.spare_raws = rv.raws;
        if leaves.is_empty() && single.is_none() {
            if rule.rule.required {
                let (loc, span) = self.node_at(item_node);
                let d = self
                    .rule_diag(
                        Severity::Error,
                        Code::RequiredMissing,
                        format!(
                            "required field `{}` has no value; the case is not produced",
                            rule.key
                        ),
                        &rule.key_loc,
                        &rule.key,
                    )
                    .at_source(loc, span);
                self.diags.push(d);
            }
            return;
        }
        let slot = draft_slot(draft, &rule.segs, item.map(|(_, g, k)| (g, k)));
        match single {
            Some(leaf) => *slot = Draft::Leaf(Box::new(leaf)),
            None => match slot {
                Draft::Texts(existing) => existing.extend(leaves),
                other => *other = Draft::Texts(leaves),
            },
        }
    }

    /// Maps the document: the field rules into a draft, then the case-level
    /// settings, the source block, the case id and the rest of the draft into
    /// a Case v1 (none when an error diagnostic was raised).
    fn run(&mut self) -> (Option<Case>, Vec<Provenance>) {
        let Draft::Obj(mut top) = self.draft() else {
            return (None, Vec::new());
        };
        // About one entry per rule, plus the engine's few (tenant, source
        // block, case id): sized once, so the ~200-byte entries are not
        // copied again each time the vector would have grown.
        let mut provenance = Vec::with_capacity(self.file.rules.len() + 16);
        let settings = self.settings(&mut top, &mut provenance);
        let Some(tenant) = settings.tenant else {
            self.diags.push(
                MapDiagnostic::error(Code::RequiredMissing, "no tenant: the case cannot be produced".to_owned())
                    .with_rule("tenant")
                    .with_help("set `[defaults] tenant` in profile.toml, map `tenant`, or configure the daemon's tenant"),
            );
            return (None, provenance);
        };
        let source = self.source_block(&mut top, &mut provenance);
        let case_id = self.case_id(&tenant, &mut provenance);
        let body = self.body(top, &mut provenance);
        let (Some(case_id), Some(status)) = (case_id, settings.status) else {
            return (None, provenance);
        };
        let mut case = Object::default();
        case.insert_leaf(
            "schema",
            Value::String(gateway_core::case::CASE_SCHEMA_V1.into()),
        );
        case.insert_leaf("case_id", Value::String(case_id));
        case.insert_leaf("tenant", Value::String(tenant));
        if let Some(p) = settings.practice {
            case.insert_leaf("practice", Value::String(p));
        }
        if let Some(s) = settings.site {
            case.insert_leaf("site", Value::String(s));
        }
        case.insert("source", Built::Object(source));
        case.insert_leaf("status", Value::String(status));
        case.extend(body);
        if self.diags.iter().any(MapDiagnostic::is_error) {
            return (None, provenance);
        }
        match Case::deserialize(Built::Object(case)) {
            Ok(mut case) => {
                self.check_facts(&mut case, &provenance);
                (Some(case), provenance)
            }
            Err(e) => {
                self.diags.push(MapDiagnostic::error(
                    Code::InvalidCase,
                    format!("the mapped case is not valid Case v1: {e}"),
                ));
                (None, provenance)
            }
        }
    }

    /// Every field rule of the file, the ungrouped ones first, then each
    /// group's rules once per item its path selects.
    fn draft(&mut self) -> Draft<'a> {
        let file = self.file;
        let root = self.tree().root();
        let mut draft = Draft::Obj(Members::new());
        for rule in file.rules.iter().filter(|r| r.group.is_none()) {
            self.apply_rule(&mut draft, rule, None);
        }
        for (gi, group) in file.groups.iter().enumerate() {
            let mut nodes = Vec::new();
            walk::evaluate_into(&group.path, self.tree(), root, &mut nodes);
            nodes.retain(|n| group.when.iter().all(|c| cond_holds(c, self.doc, *n)));
            for (k, node) in nodes.into_iter().enumerate() {
                for rule in file.rules.iter().filter(|r| r.group == Some(gi)) {
                    self.apply_rule(&mut draft, rule, Some((node, gi, k)));
                }
            }
        }
        draft
    }

    /// Provenance of a value the engine supplied (context, profile default,
    /// message meta) rather than a rule.
    fn engine_prov(
        &self,
        field: &str,
        origin: &'static str,
        value: &str,
        file: &str,
    ) -> Provenance {
        Provenance {
            field: field.to_owned(),
            file: file.into(),
            line: 0,
            rule: field.into(),
            source_path: None,
            source_location: None,
            source_span: None,
            origin,
            transforms: Arc::from([]),
            raw: None,
            value: if self.ctx.explain {
                Some(value.to_owned())
            } else {
                None
            },
        }
    }

    /// Tenant, practice, site (mapped, else the context's, else the profile
    /// default) and status (mapped; a patient update defaults to `draft`;
    /// missing is an error).
    fn settings(
        &mut self,
        top: &mut Members<&'a str, Draft<'a>>,
        provenance: &mut Vec<Provenance>,
    ) -> Settings {
        let profile = self.profile;
        let ctx = self.ctx;
        let profile_file = profile
            .sources
            .first()
            .map_or_else(|| "profile.toml".to_owned(), |s| s.display.to_string());
        let mut setting = |top: &mut Members<&'a str, Draft<'a>>,
                           key: &str,
                           from_ctx: &Option<String>,
                           from_profile: &Option<String>|
         -> Option<String> {
            if let Some((v, p)) = take_text(top, key) {
                if let Some(mut p) = p {
                    p.field = key.to_owned();
                    provenance.push(p);
                }
                return Some(v);
            }
            let keep = !ctx.skip_provenance;
            if let Some(v) = from_ctx {
                if keep {
                    provenance.push(self.engine_prov(key, "context", v, "engine"));
                }
                return Some(v.clone());
            }
            if let Some(v) = from_profile {
                if keep {
                    provenance.push(self.engine_prov(key, "profile default", v, &profile_file));
                }
                return Some(v.clone());
            }
            None
        };
        let tenant = setting(top, "tenant", &ctx.tenant, &profile.defaults.tenant);
        let practice = setting(top, "practice", &ctx.practice, &profile.defaults.practice);
        let site = setting(top, "site", &ctx.site, &profile.defaults.site);
        let status = match take_text(top, "status") {
            Some((s, p)) => {
                if let Some(mut p) = p {
                    p.field = "status".into();
                    provenance.push(p);
                }
                Some(s)
            }
            None if self.file.action == MapAction::PatientUpdate => Some("draft".to_owned()),
            None => {
                self.diags.push(self.missing_status());
                None
            }
        };
        Settings {
            tenant,
            practice,
            site,
            status,
        }
    }

    /// M-error for a file whose `status` rule gave no value, at the rule.
    fn missing_status(&self) -> MapDiagnostic {
        let profile = self.profile;
        let loc = self
            .file
            .rules
            .iter()
            .find(|r| &*r.key == "status")
            .map(|r| r.key_loc.clone());
        let mut d = MapDiagnostic::error(
            Code::RequiredMissing,
            "the `status` rule produced no value; the case is not produced".to_owned(),
        )
        .with_rule("status");
        if let (Some(loc), Some(src)) = (
            loc.as_ref(),
            loc.as_ref().and_then(|l| profile.sources.get(l.file)),
        ) {
            d = d.at_file(&src.display, &src.text, loc.span.clone());
        }
        d
    }

    /// The case's `source`: adapter, profile, the receive time, and message
    /// type, control id and sender (mapped, else from the message meta).
    fn source_block(
        &mut self,
        top: &mut Members<&'a str, Draft<'a>>,
        provenance: &mut Vec<Provenance>,
    ) -> Object<'a> {
        let ctx = self.ctx;
        let mut source = Object::default();
        let adapter = ctx
            .adapter
            .clone()
            .unwrap_or_else(|| self.profile.format.as_str().to_owned());
        source.insert_leaf("adapter", Value::String(adapter));
        source.insert_leaf("profile", Value::String(self.profile.name.clone()));
        if is_rfc3339(&ctx.received_at) {
            source.insert_leaf("received_at", Value::String(ctx.received_at.clone()));
        } else {
            self.diags.push(MapDiagnostic::error(
                Code::InvalidValue,
                "the receive time passed in by the caller is not an RFC 3339 date-time with offset",
            ));
        }
        let mut source_rules = match top.remove("source") {
            Some(Draft::Obj(m)) => m,
            _ => Members::new(),
        };
        let meta = &self.doc.meta;
        for (key, from_meta) in [
            ("message_type", &meta.message_type),
            ("control_id", &meta.control_id),
            ("sender", &meta.sender),
        ] {
            if let Some(Draft::Leaf(l)) = source_rules.remove(key) {
                if let Some(mut p) = l.prov {
                    p.field = join("source", key);
                    provenance.push(p);
                }
                source.insert_leaf(key, l.json);
            } else if let Some(v) = from_meta.as_ref().filter(|v| !v.is_empty()) {
                if !ctx.skip_provenance {
                    provenance.push(self.engine_prov(
                        &format!("source.{key}"),
                        "meta",
                        v,
                        "engine",
                    ));
                }
                source.insert_leaf(key, Value::String(v.clone()));
            }
        }
        source
    }

    /// The rest of the draft as Case v1 fields; items missing a required
    /// part are dropped with a warning.
    fn body(
        &mut self,
        top: Members<&'a str, Draft<'a>>,
        provenance: &mut Vec<Provenance>,
    ) -> Object<'a> {
        let mut body = Object::default();
        let mut drops = Vec::new();
        let keep = !self.ctx.skip_provenance;
        let _kept = finalize_obj(
            top,
            schema::CASE,
            "",
            &mut body,
            provenance,
            &mut drops,
            keep,
        );
        let file = self.file;
        let file_display = file
            .case_id
            .as_ref()
            .map(|c| c.loc.file)
            .or_else(|| file.rules.first().map(|r| r.key_loc.file))
            .map(|f| self.display(f).to_string());
        for (field, missing, _) in drops {
            let mut d = MapDiagnostic::warning(
                Code::IncompleteItem,
                format!("{field} is dropped: it has no `{missing}`, which Case v1 requires"),
            );
            d.file = file_display.clone();
            self.diags.push(d);
        }
        body
    }

    /// Applies the case-level fact rules of [`gateway_core::facts::check_case`]
    /// (NPI Luhn check, CPT shape, plausible birth date) and reports each change
    /// as warning M030 at the rule and source position that produced the field.
    fn check_facts(&mut self, case: &mut Case, provenance: &[Provenance]) {
        let today = self.ctx.received_at.get(..10);
        let issues = gateway_core::facts::check_case(case, today);
        // Skipped provenance: the rare document with a fact issue is mapped
        // again with it, so each warning still names its rule and source.
        let traced;
        let provenance = if self.ctx.skip_provenance && !issues.is_empty() {
            let ctx = MapContext {
                skip_provenance: false,
                ..self.ctx.clone()
            };
            traced = map(self.profile, self.doc, &ctx).provenance;
            traced.as_slice()
        } else {
            provenance
        };
        for issue in issues {
            let field = issue.field();
            let prov = provenance.iter().find(|p| p.field == field);
            let mut d = MapDiagnostic::warning(Code::FactCheck, issue.message());
            if let Some(p) = prov {
                d = d.with_rule(&*p.rule);
                d.file = Some(p.file.to_string());
                d = d.at_source(p.source_location.clone(), p.source_span);
            } else {
                d = d.with_rule(field);
            }
            self.diags.push(d);
        }
    }

    /// The `[case_id] own` value when it is one of our case ids (a reply
    /// echoing the reference our outbound message carried), else `None`.
    fn own_case_id(
        &mut self,
        own: &ValueRule,
        file: usize,
        provenance: &mut Vec<Provenance>,
    ) -> Option<String> {
        let rv = self.values(own, ("case_id.own", &own.loc), None)?;
        let first = rv.values.first()?;
        if !ids::is_case_id(&first.text) {
            return None;
        }
        let raw = first.origin.and_then(|o| rv.raws.get(o)).map(|r| r.0);
        let id = first.text.clone();
        if self.ctx.skip_provenance {
            return Some(id);
        }
        let (loc, span) = self.node_at(raw);
        provenance.push(Provenance {
            field: "case_id".into(),
            file: self.display(file),
            line: own.loc.line,
            rule: "case_id.own".into(),
            source_path: None,
            source_location: loc,
            source_span: span,
            origin: "own case id",
            transforms: Arc::from(["echoed case id".to_owned()]),
            raw: self.ctx.explain.then(|| id.clone()),
            value: self.ctx.explain.then(|| id.clone()),
        });
        Some(id)
    }

    fn case_id(&mut self, tenant: &str, provenance: &mut Vec<Provenance>) -> Option<String> {
        let rule = self.file.case_id.as_ref()?;
        if let Some(own) = &rule.own
            && let Some(id) = self.own_case_id(own, rule.loc.file, provenance)
        {
            self.adopted = true;
            return Some(id);
        }
        let mut parts = Vec::new();
        let mut ok = true;
        let mut raw_parts = Vec::new();
        for (i, part) in rule.parts.iter().enumerate() {
            let rv = self.values(part, ("case_id", &part.loc), None);
            match rv
                .as_ref()
                .and_then(|rv| rv.values.first().map(|v| (v.text.clone(), rv)))
            {
                Some((v, rv)) => {
                    if let Some(r) = rv
                        .values
                        .first()
                        .and_then(|v| v.origin)
                        .and_then(|o| rv.raws.get(o))
                    {
                        raw_parts.push(r.0);
                    }
                    parts.push(v);
                }
                None => {
                    ok = false;
                    let d = self.rule_diag(
                        Severity::Error,
                        Code::CaseIdMissing,
                        format!(
                            "part {} of the case id key has no value; the case is not produced",
                            i + 1
                        ),
                        &part.loc,
                        "case_id",
                    );
                    self.diags.push(d);
                }
            }
        }
        if !ok || parts.is_empty() {
            return None;
        }
        let prefix = if rule.prefix.is_empty() {
            self.profile.name.as_str()
        } else {
            rule.prefix.as_str()
        };
        let key = format!("{prefix}:{}", parts.join(":"));
        let id = ids::case_id(tenant, &key);
        if self.ctx.skip_provenance {
            return Some(id);
        }
        let (loc, span) = self.node_at(raw_parts.first().copied());
        provenance.push(Provenance {
            field: "case_id".into(),
            file: self.display(rule.loc.file),
            line: rule.loc.line,
            rule: "case_id".into(),
            source_path: None,
            source_location: loc,
            source_span: span,
            origin: "case id key",
            transforms: Arc::from([format!("case_id(tenant, \"{prefix}:…\")")]),
            raw: if self.ctx.explain { Some(key) } else { None },
            value: if self.ctx.explain {
                Some(id.clone())
            } else {
                None
            },
        });
        Some(id)
    }
}

/// Case-level settings read by [`Eval::settings`].
struct Settings {
    tenant: Option<String>,
    practice: Option<String>,
    site: Option<String>,
    status: Option<String>,
}

/// Takes a top-level text leaf out of the draft, with its provenance.
fn take_text(
    top: &mut Members<&str, Draft<'_>>,
    key: &str,
) -> Option<(String, Option<Provenance>)> {
    match top.remove(key) {
        Some(Draft::Leaf(l)) => {
            let l = *l;
            l.json.as_str().map(|s| (s.to_owned(), l.prov))
        }
        _ => None,
    }
}

/// Walks (creating as needed) to the draft node at `segs`; `Seg::Group` takes
/// the current item `(group, k)`.
fn draft_slot<'d, 'p>(
    draft: &'d mut Draft<'p>,
    segs: &'p [Seg],
    item: Option<(usize, usize)>,
) -> &'d mut Draft<'p> {
    let mut node = draft;
    for (i, seg) in segs.iter().enumerate() {
        let next_is_list = matches!(segs.get(i + 1), Some(Seg::Fixed(_) | Seg::Group(_)));
        let fresh = || {
            if next_is_list {
                Draft::List(Members::new())
            } else {
                Draft::Obj(Members::new())
            }
        };
        node = match seg {
            Seg::Key(k) => {
                if !matches!(node, Draft::Obj(_)) {
                    *node = Draft::Obj(Members::new());
                }
                let Draft::Obj(map) = node else {
                    unreachable_obj()
                };
                map.get_or_insert_with(k.as_str(), fresh)
            }
            Seg::Fixed(_) | Seg::Group(_) => {
                let key: ItemKey = match seg {
                    Seg::Fixed(n) => (0, *n, 0),
                    Seg::Group(g) => {
                        let k = item.filter(|(ig, _)| ig == g).map_or(0, |(_, k)| k);
                        (1, *g, k)
                    }
                    Seg::Key(_) => (2, 0, 0),
                };
                if !matches!(node, Draft::List(_)) {
                    *node = Draft::List(Members::new());
                }
                let Draft::List(items) = node else {
                    unreachable_obj()
                };
                items.get_or_insert_with(key, fresh)
            }
        };
    }
    node
}

/// `draft_slot` sets the variant right before matching on it, so this is
/// never reached (not input-dependent).
fn unreachable_obj() -> ! {
    unreachable!("draft node variant was just set")
}

/// Items dropped while finalizing: (concrete field, missing field, file).
type Drops = Vec<(String, String, Option<String>)>;

/// `prefix.name`, or `name` at the top. The field paths of provenance are
/// built once per output value, so they are assembled at their exact size
/// rather than through `format!` (which grows its buffer as it goes).
fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        return name.to_owned();
    }
    let mut path = String::with_capacity(prefix.len() + 1 + name.len());
    path.push_str(prefix);
    path.push('.');
    path.push_str(name);
    path
}

/// `path[index]` (as [`join`], without `format!`).
fn indexed(path: &str, index: usize) -> String {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = index;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let digits = &digits[start..];
    let mut out = String::with_capacity(path.len() + digits.len() + 2);
    out.push_str(path);
    out.push('[');
    out.extend(digits.iter().map(|&d| char::from(d)));
    out.push(']');
    out
}

/// Finalizes an object: fills `out` in schema order; returns the first
/// missing required field (if any) and whether any value came from the
/// document.
fn finalize_obj<'p>(
    mut map: Members<&'p str, Draft<'p>>,
    defs: &'static [FieldDef],
    prefix: &str,
    out: &mut Object<'p>,
    prov: &mut Vec<Provenance>,
    drops: &mut Drops,
    keep_prov: bool,
) -> (Option<String>, bool) {
    let mut sourced = false;
    let mut missing = None;
    for def in defs {
        let name = def.name;
        let Some(node) = map.remove(name) else {
            if def.required && def.auto == Auto::None && missing.is_none() {
                missing = Some(name.to_owned());
            }
            continue;
        };
        // The field's path names provenance and dropped items; a leaf
        // without provenance needs none.
        let path = || join(prefix, name);
        match (node, def.kind) {
            (Draft::Leaf(leaf), _) => {
                sourced |= leaf.sourced;
                if let Some(mut p) = leaf.prov {
                    p.field = path();
                    prov.push(p);
                }
                out.push_new(name, Built::Leaf(leaf.json));
            }
            (Draft::Texts(leaves), _) => {
                let mut arr = Vec::new();
                let path = if keep_prov { path() } else { String::new() };
                for (i, leaf) in leaves.into_iter().enumerate() {
                    sourced |= leaf.sourced;
                    if let Some(mut p) = leaf.prov {
                        p.field = indexed(&path, i);
                        prov.push(p);
                    }
                    arr.push(Built::Leaf(leaf.json));
                }
                out.push_new(name, Built::Array(arr));
            }
            (Draft::Obj(sub), Kind::TextMap) => {
                let mut m = Object::default();
                let path = if keep_prov { path() } else { String::new() };
                for (k, node) in sub.into_sorted() {
                    if let Draft::Leaf(leaf) = node {
                        sourced |= leaf.sourced;
                        if let Some(mut p) = leaf.prov {
                            p.field = join(&path, k);
                            prov.push(p);
                        }
                        m.push_new(k, Built::Leaf(leaf.json));
                    }
                }
                if !m.is_empty() {
                    out.push_new(name, Built::Object(m));
                }
            }
            (Draft::Obj(sub), Kind::Object(sub_defs)) => {
                let path = path();
                let mut m = Object::default();
                // The object's provenance goes straight into `prov` and is cut
                // off again when the object is dropped (no moving it twice).
                let mark = prov.len();
                let (sub_missing, sub_sourced) =
                    finalize_obj(sub, sub_defs, &path, &mut m, prov, drops, keep_prov);
                // Top-level objects (patient, decision) need a document value;
                // objects inside a kept item only need some value.
                sourced |= sub_sourced;
                if m.is_empty() || (prefix.is_empty() && !sub_sourced) {
                    prov.truncate(mark);
                    if def.required && missing.is_none() {
                        missing = Some(name.to_owned());
                    }
                    continue;
                }
                if let Some(miss) = sub_missing {
                    prov.truncate(mark);
                    if def.required {
                        if missing.is_none() {
                            missing = Some(format!("{name}.{miss}"));
                        }
                    } else {
                        drops.push((format!("`{path}`"), miss, None));
                    }
                    continue;
                }
                out.push_new(name, Built::Object(m));
            }
            (Draft::List(items), Kind::ObjectList(item_defs)) => {
                let path = path();
                let mut arr = Vec::new();
                for (ordinal, (_, item)) in items.into_sorted().into_iter().enumerate() {
                    let Draft::Obj(fields) = item else { continue };
                    let idx = arr.len();
                    let item_path = indexed(&path, idx);
                    let mut m = Object::default();
                    let mark = prov.len();
                    let (item_missing, item_sourced) = finalize_obj(
                        fields, item_defs, &item_path, &mut m, prov, drops, keep_prov,
                    );
                    if !item_sourced {
                        prov.truncate(mark);
                        continue;
                    }
                    if let Some(miss) = item_missing {
                        prov.truncate(mark);
                        drops.push((format!("{path} item #{}", ordinal + 1), miss, None));
                        continue;
                    }
                    for d in item_defs.iter().filter(|d| d.auto == Auto::Position) {
                        if !m.contains_key(d.name) {
                            m.push_new(d.name, Built::Leaf(Value::from(idx + 1)));
                            if !keep_prov {
                                continue;
                            }
                            prov.push(Provenance {
                                field: join(&item_path, d.name),
                                file: "engine".into(),
                                line: 0,
                                rule: format!("{path}[].{}", d.name).into(),
                                source_path: None,
                                source_location: None,
                                source_span: None,
                                origin: "position",
                                transforms: Arc::from([]),
                                raw: None,
                                value: None,
                            });
                        }
                    }
                    sourced = true;
                    arr.push(Built::Object(m));
                }
                if !arr.is_empty() {
                    out.push_new(name, Built::Array(arr));
                }
            }
            _ => {}
        }
    }
    (missing, sourced)
}

/// [`schema::check_value`] for an owned value: text kinds move the string
/// into the JSON value instead of copying it.
fn check_owned(kind: Kind, text: String) -> Result<Value, String> {
    match kind {
        Kind::Text | Kind::TextList | Kind::TextMap => Ok(Value::String(text)),
        _ => schema::check_value(kind, &text),
    }
}

fn is_rfc3339(s: &str) -> bool {
    s.contains('T') && s.parse::<jiff::Timestamp>().is_ok()
}

/// The readable location of a node, with 0-based repetition indexes where a
/// name repeats among its siblings: `order/lines[1]/code`, `PID/3[0]/1`.
fn location(tree: &SourceTree, node: NodeId) -> String {
    let mut parts = Vec::new();
    let mut current = node;
    while let Some(parent) = tree.parent(current) {
        let name = tree.name(current);
        let mut same = tree.children_named(parent, name);
        let total = tree.children_named(parent, name).count();
        if total > 1 {
            let idx = same.position(|c| c == current).unwrap_or(0);
            parts.push(format!("{name}[{idx}]"));
        } else {
            parts.push(name.to_owned());
        }
        current = parent;
    }
    parts.reverse();
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::{indexed, join};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn field_paths_read_as_their_format_spelling(
            prefix in "[a-z_.\\[\\]0-9]{0,12}",
            name in "[a-z_]{1,8}",
            index in any::<usize>(),
        ) {
            let joined = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            prop_assert_eq!(join(&prefix, &name), joined);
            prop_assert_eq!(indexed(&prefix, index), format!("{prefix}[{index}]"));
        }
    }
}

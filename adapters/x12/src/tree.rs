//! X12 → source tree, and the parse entry points.
//!
//! Tree shape (every node with its byte span into the raw input):
//!
//! ```text
//! interchange
//! ├── ISA            segment: value = segment text, children 01..16 (values trimmed)
//! ├── TA1            (only in TA1 interchanges)
//! ├── group
//! │   ├── GS
//! │   ├── transaction            value = ST01
//! │   │   ├── ST
//! │   │   ├── BHT
//! │   │   ├── 2000A              loops named by TR3 id, nested by HL parent
//! │   │   │   ├── HL
//! │   │   │   ├── 2010A
//! │   │   │   │   └── NM1 → 01, 02, … → components 1, 2, …
//! │   │   │   └── 2000B → 2010B, 2000C → 2010C, 2000E → 2010EA, 2000F → 2010F, …
//! │   │   ├── SE
//! │   │   ├── patient        pre-computed pointer to the patient's name loop (`patient/resolve()`)
//! │   │   ├── correlation    pre-computed: key, key_source, bht_reference, trace, purpose, report_type (see [`Correlation`])
//! │   │   └── decision       pre-computed for responses (see crate::decision)
//! │   └── GE
//! └── IEA
//! ```
//!
//! Elements are named `01`, `02`, … and skipped when empty; a repeated element
//! becomes sibling nodes with the same name; components (`1`, `2`, …) exist only
//! when the element contains the component separator. Every 2000F loop also
//! gets a pre-computed `line` child (its 1-based position) so a `foreach` over
//! `2000F[*]` can number service lines. Pre-computed nodes have lowercase names
//! and can never collide with segment or loop ids.

use std::borrow::Cow;

use gateway_core::source::MessageMeta;
use gateway_core::{Diagnostic, NodeId, SourceDocument, SourceFormat, SourceTree, Span};

use crate::codes::{AckCode, Finding};
use crate::decision::{DecisionFacts, decide};
use crate::envelope::{Interchange, TransactionSet, read_envelope};
use crate::loops::{Item, Transaction278, build_278};
use crate::token::{RawSegment, Tokens, tokenize};

/// One transaction set with its 278 loops (when it is a 278).
#[derive(Debug, Clone)]
pub struct ParsedSet {
    /// Index of its group in the interchange.
    pub group: usize,
    /// Index inside its group.
    pub set: usize,
    /// Its envelope facts.
    pub envelope: TransactionSet,
    /// The 278 loops; `None` for other sets (999s we receive back).
    pub model: Option<Transaction278>,
    /// The decision facts (278 responses only).
    pub decision: Option<DecisionFacts>,
    /// How it correlates to its request (278s only; see [`Correlation`]).
    pub correlation: Option<Correlation>,
}

/// A fully parsed interchange: tokens, envelope, loops and every finding.
#[derive(Debug, Clone)]
pub struct Parsed<'a> {
    /// Tokens with spans into the input.
    pub tokens: Tokens<'a>,
    /// Envelope structure.
    pub interchange: Interchange,
    /// Transaction sets in document order.
    pub sets: Vec<ParsedSet>,
    /// Tokenizer, envelope and loop findings, in that order.
    pub findings: Vec<Finding>,
}

impl Parsed<'_> {
    /// True when no finding is an error.
    pub fn is_clean(&self) -> bool {
        !self.findings.iter().any(Finding::is_error)
    }
}

/// Tokenizes, checks the envelope and builds the 278 loops of every set.
///
/// `Err` only when no delimiters could be determined; the findings then carry
/// the TA1 note code to answer with.
pub fn parse_interchange(input: &[u8]) -> Result<Parsed<'_>, Vec<Finding>> {
    let tokens = tokenize(input).map_err(|f| f.findings)?;
    let mut findings = tokens.findings.clone();
    let (interchange, envelope_findings) = read_envelope(&tokens);
    findings.extend(envelope_findings);
    let mut sets = Vec::new();
    for (gi, group) in interchange.groups.iter().enumerate() {
        for (si, tx) in group.transactions.iter().enumerate() {
            let (model, decision, correlation) = if tx.set_id == "278" {
                let (model, loop_findings) = build_278(&tokens, tx, gi, si);
                findings.extend(loop_findings);
                findings.extend(
                    crate::tr3::check(&tokens, tx, &model)
                        .iter()
                        .map(|v| v.finding(gi, si)),
                );
                let decision = decide(&tokens, &model);
                let correlation = correlate(&tokens, &model);
                (Some(model), decision, Some(correlation))
            } else {
                (None, None, None)
            };
            sets.push(ParsedSet {
                group: gi,
                set: si,
                envelope: tx.clone(),
                model,
                decision,
                correlation,
            });
        }
    }
    Ok(Parsed {
        tokens,
        interchange,
        sets,
        findings,
    })
}

/// Parses an interchange into one source document holding every set.
pub fn parse(input: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    let parsed = parse_interchange(input).map_err(diagnostics)?;
    Ok(document(&parsed, None))
}

/// Parses an interchange into one source document per transaction set (what
/// intake submits: one case per 278). An interchange without sets (a TA1)
/// yields one document.
pub fn parse_documents(input: &[u8]) -> Result<Vec<SourceDocument>, Vec<Diagnostic>> {
    let parsed = parse_interchange(input).map_err(diagnostics)?;
    if parsed.sets.is_empty() {
        return Ok(vec![document(&parsed, None)]);
    }
    Ok((0..parsed.sets.len())
        .map(|i| document(&parsed, Some(i)))
        .collect())
}

/// The diagnostics of a list of findings.
pub fn diagnostics(findings: Vec<Finding>) -> Vec<Diagnostic> {
    findings.into_iter().map(|f| f.diagnostic).collect()
}

/// Builds the source document of a parsed interchange; `only` restricts it to
/// one set (by index into [`Parsed::sets`]) and the findings that concern it.
pub fn document(parsed: &Parsed<'_>, only: Option<usize>) -> SourceDocument {
    let t = &parsed.tokens;
    let mut tree = SourceTree::new("interchange");
    let root = tree.root();
    tree.set_span(root, Some(Span::new(0, t.input.len())));
    if let Some(isa) = t.segments.first() {
        push_segment(&mut tree, root, t, isa, true);
    }
    for &i in &parsed.interchange.ta1 {
        push_segment(&mut tree, root, t, &t.segments[i], false);
    }
    let selected = only.and_then(|i| parsed.sets.get(i));
    for (gi, group) in parsed.interchange.groups.iter().enumerate() {
        if selected.is_some_and(|s| s.group != gi) {
            continue;
        }
        let g = tree.push(root, "group", Some(group.functional_id.clone()), None);
        let mut start = t.segments.get(group.gs).map(|s| s.span.start);
        if group.gs < t.segments.len() && t.segments[group.gs].id == "GS" {
            push_segment(&mut tree, g, t, &t.segments[group.gs], false);
        }
        for set in parsed.sets.iter().filter(|s| s.group == gi) {
            if selected.is_some_and(|s| s.set != set.set) {
                continue;
            }
            push_transaction(&mut tree, g, t, set);
        }
        let mut end = None;
        if let Some(ge) = group.ge {
            push_segment(&mut tree, g, t, &t.segments[ge], false);
            end = Some(t.segments[ge].span.end);
        }
        end = end.or_else(|| {
            group
                .transactions
                .last()
                .map(|tx| tx.se.unwrap_or(tx.body.end.saturating_sub(1)))
                .and_then(|i| t.segments.get(i))
                .map(|s| s.span.end)
        });
        start = start.or(end);
        if let (Some(s), Some(e)) = (start, end) {
            tree.set_span(g, Some(Span::new(s, e)));
        }
    }
    if let Some(iea) = parsed.interchange.iea {
        push_segment(&mut tree, root, t, &t.segments[iea], false);
    }

    let findings = parsed.findings.iter().filter(|f| match (&f.ack, selected) {
        (_, None) | (AckCode::Interchange { .. }, _) => true,
        (AckCode::Group { group, .. }, Some(s)) => *group == s.group,
        (AckCode::Transaction { group, set, .. }, Some(s))
        | (AckCode::Segment { group, set, .. }, Some(s)) => *group == s.group && *set == s.set,
    });
    let first = selected.or_else(|| parsed.sets.first());
    let h = &parsed.interchange.header;
    let meta = MessageMeta {
        message_type: first
            .map(|s| s.envelope.set_id.clone())
            .or_else(|| (!parsed.interchange.ta1.is_empty()).then(|| "TA1".to_owned())),
        trigger: first
            .and_then(|s| s.model.as_ref())
            .map(|m| m.purpose.clone())
            .filter(|p| !p.is_empty()),
        version: first
            .map(|s| s.envelope.implementation.clone())
            .filter(|v| !v.is_empty())
            .or_else(|| Some(h.version.clone())),
        control_id: Some(match first {
            Some(s) => s.envelope.control_number.clone(),
            None => h.control_number.clone(),
        }),
        sender: Some(h.sender_id.clone()).filter(|s| !s.is_empty()),
    };
    // Correlation problems are not syntax errors (no 999 code), but an
    // uncorrelatable 278 must not become a case: they join the document's
    // diagnostics after the findings.
    let correlation = parsed
        .sets
        .iter()
        .filter(|s| selected.is_none_or(|sel| sel.group == s.group && sel.set == s.set))
        .filter_map(|s| s.correlation.as_ref()?.diagnostic.clone());
    SourceDocument {
        format: SourceFormat::X12,
        meta,
        tree,
        diagnostics: findings
            .map(|f| f.diagnostic.clone())
            .chain(correlation)
            .collect(),
    }
}

fn push_transaction(tree: &mut SourceTree, parent: NodeId, t: &Tokens<'_>, set: &ParsedSet) {
    let tx = &set.envelope;
    let node = tree.push(parent, "transaction", Some(tx.set_id.clone()), None);
    let start = t.segments.get(tx.st).map_or(0, |s| s.span.start);
    push_segment(tree, node, t, &t.segments[tx.st], false);
    match &set.model {
        Some(model) => {
            let mut line = 0u32;
            let mut patient_loop = None;
            for item in &model.top {
                push_item(tree, node, t, model, *item, &mut line, &mut patient_loop);
            }
            if let Some(target) = patient_loop {
                let key = format!("loop:patient:{}:{}", set.group, set.set);
                tree.register_key(key.clone(), target);
                tree.push(node, "patient", Some(key), None);
            }
        }
        None => {
            for i in tx.body.clone() {
                if let Some(seg) = t.segments.get(i) {
                    push_segment(tree, node, t, seg, false);
                }
            }
        }
    }
    let last = tx.se.unwrap_or(tx.body.end.saturating_sub(1));
    if let Some(se) = tx.se {
        push_segment(tree, node, t, &t.segments[se], false);
    }
    let end = t.segments.get(last).map_or(start, |s| s.span.end);
    tree.set_span(node, Some(Span::new(start, end.max(start))));
    if let (Some(model), Some(c)) = (&set.model, &set.correlation) {
        push_correlation(tree, node, model, c);
    }
    if let Some(d) = &set.decision {
        push_decision(tree, node, d);
    }
}

fn push_item(
    tree: &mut SourceTree,
    parent: NodeId,
    t: &Tokens<'_>,
    model: &Transaction278,
    item: Item,
    line: &mut u32,
    patient: &mut Option<NodeId>,
) -> Option<Span> {
    match item {
        Item::Segment(i) => {
            let seg = t.segments.get(i)?;
            push_segment(tree, parent, t, seg, false);
            Some(seg.span)
        }
        Item::Loop(l) => {
            let lp = &model.loops[l];
            let node = tree.push(parent, lp.id, None, None);
            // The patient is the dependent when there is one, else the subscriber.
            if lp.id == "2010D" || (lp.id == "2010C" && patient.is_none()) {
                *patient = Some(node);
            }
            if lp.id == "2000F" {
                *line += 1;
                tree.push(node, "line", Some(line.to_string()), None);
            }
            let mut span: Option<Span> = None;
            for child in &lp.items {
                if let Some(s) = push_item(tree, node, t, model, *child, line, patient) {
                    span = Some(match span {
                        Some(acc) => Span::new(acc.start.min(s.start), acc.end.max(s.end)),
                        None => s,
                    });
                }
            }
            tree.set_span(node, span);
            if lp.id == "2000F"
                && let Some(system) = procedure_system(t, model, l)
            {
                tree.push(node, "code_system", Some(system.to_owned()), None);
            }
            span
        }
    }
}

/// The Case code system of a service line's procedure (pre-computed node
/// `code_system`): `HC` codes are CPT when they start with a digit, HCPCS when
/// with a letter; `N4` is NDC; `AD` is CDT; other qualifiers (`IV`, `ER`, …)
/// are `local`. A line without SV1/SV2/SV3 that carries a UM service type
/// (UM03) is keyed by it: `X12-service-type`.
fn procedure_system(t: &Tokens<'_>, model: &Transaction278, l: usize) -> Option<&'static str> {
    let procedure = model.segments_of(l).find_map(|s| {
        let seg = &t.segments[s];
        let element = match seg.id.as_str() {
            "SV1" | "SV3" => 1,
            "SV2" => 2,
            _ => return None,
        };
        let qualifier = t.component(seg, element, 1);
        let code = t.component(seg, element, 2);
        let first = code.chars().next()?;
        Some(match qualifier.as_ref() {
            "HC" if first.is_ascii_digit() => "CPT",
            "HC" => "HCPCS",
            "N4" => "NDC",
            "AD" => "CDT",
            _ => "local",
        })
    });
    procedure.or_else(|| {
        model.segments_of(l).find_map(|s| {
            let seg = &t.segments[s];
            (seg.id == "UM" && !t.element(seg, 3).is_empty()).then_some("X12-service-type")
        })
    })
}

fn push_segment(
    tree: &mut SourceTree,
    parent: NodeId,
    t: &Tokens<'_>,
    seg: &RawSegment,
    trim: bool,
) {
    let node = tree.push(
        parent,
        seg.id.clone(),
        Some(t.text(seg.span).into_owned()),
        Some(seg.span),
    );
    for (i, element) in seg.elements.iter().enumerate() {
        if element.span.is_empty() {
            continue;
        }
        let name = format!("{:02}", i + 1);
        for rep in &element.repetitions {
            let (Some(first), Some(last)) = (rep.first(), rep.last()) else {
                continue;
            };
            let rep_span = Span::new(first.start, last.end);
            if rep_span.is_empty() {
                continue;
            }
            // The tree copies borrowed text into its own: no `String` per value.
            let text = t.text(rep_span);
            let value: &str = if trim { text.trim() } else { &text };
            if value.is_empty() {
                continue;
            }
            let e = tree.push_text(node, Cow::Owned(name.clone()), Some(value), Some(rep_span));
            if rep.len() > 1 {
                for (ci, c) in rep.iter().enumerate() {
                    if !c.is_empty() {
                        tree.push_text(
                            e,
                            Cow::Owned((ci + 1).to_string()),
                            Some(&t.text(*c)),
                            Some(*c),
                        );
                    }
                }
            }
        }
    }
}

fn push_value(
    tree: &mut SourceTree,
    parent: NodeId,
    name: &str,
    value: Option<&str>,
    span: Option<Span>,
) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        tree.push_text(parent, Cow::Owned(name.to_owned()), Some(v), span);
    }
}

/// How one 278 correlates to its request: the case key and where it came from.
///
/// The rule (the profile's `[case_id]` key is `correlation/key`):
///
/// * the key is **BHT03** (the submitter's transaction identifier, which a
///   response echoes) when it is usable: not blank and at most 50 characters
///   (its TR3 maximum length);
/// * otherwise the key is the 2000E **trace** (TRN02 of `TRN*1` in a request,
///   of the `TRN*2` echo in a response), with warning `X041`. Requests and
///   responses follow the same rule, so a response finds its request's case
///   when that request was keyed by the same trace (its BHT03 was unusable
///   too, or equal to its trace); otherwise it opens a separate case and is
///   never merged into an unrelated one. (A 278 without BHT03 at all is
///   already a 999 error, IK403=1; this covers a blank or over-long one.)
/// * with neither there is no key and error `X042`: the set does not become
///   a case (it is kept with that reason, replayable).
///
/// ISA13/GS06/ST02 are never part of it: they identify an envelope, not a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correlation {
    /// The case key (`correlation/key`), `None` when neither identifier is usable.
    pub key: Option<String>,
    /// `BHT03` or `TRN02`: which identifier the key is (`correlation/key_source`).
    pub key_source: Option<&'static str>,
    /// BHT03 as sent (trimmed).
    pub bht_reference: Option<String>,
    /// The 2000E trace: `TRN*1` in a request, the `TRN*2` echo in a response.
    pub trace: Option<String>,
    /// TRN03 of that trace.
    pub trace_originator: Option<String>,
    /// BHT06 (`18` final, `19` more to come, `RU` medical services reservation).
    pub report_type: Option<String>,
    /// Spans of BHT03 and TRN02.
    bht_span: Option<Span>,
    trace_span: Option<Span>,
    /// `X041`/`X042`, located at BHT03.
    pub diagnostic: Option<Diagnostic>,
}

/// The longest usable BHT03 (element 127, 1..=50 characters).
const BHT03_MAX: usize = 50;

/// Applies the correlation rule of [`Correlation`] to one 278.
pub fn correlate(t: &Tokens<'_>, model: &Transaction278) -> Correlation {
    let mut c = Correlation::default();
    let non_empty = |v: std::borrow::Cow<'_, str>| {
        let v = v.trim();
        (!v.is_empty()).then(|| v.to_owned())
    };
    for item in &model.top {
        if let Item::Segment(i) = item
            && t.segments[*i].id == "BHT"
        {
            let b = &t.segments[*i];
            c.bht_reference = non_empty(t.element(b, 3));
            c.bht_span = b.elements.get(2).map(|e| e.span);
            c.report_type = non_empty(t.element(b, 6));
        }
    }
    // The patient event tracking number: the requester's TRN*1 in a request,
    // echoed as TRN*2 in the response.
    let wanted = if model.is_response() { "2" } else { "1" };
    if let Some(&event) = model.loops_named("2000E").first() {
        for s in model.segments_of(event) {
            let seg = &t.segments[s];
            if seg.id == "TRN" && t.element(seg, 1) == wanted {
                c.trace = non_empty(t.element(seg, 2));
                c.trace_span = seg.elements.get(1).map(|e| e.span);
                c.trace_originator = non_empty(t.element(seg, 3));
                break;
            }
        }
    }
    let usable_bht = c
        .bht_reference
        .as_ref()
        .filter(|b| b.chars().count() <= BHT03_MAX);
    let at = |d: Diagnostic, span: Option<Span>| {
        let d = d.at("BHT-03");
        match span {
            Some(s) => d.with_span(s),
            None => d,
        }
    };
    let trn = format!("TRN*{wanted}");
    if let Some(b) = usable_bht {
        c.key = Some(b.clone());
        c.key_source = Some("BHT03");
    } else if let Some(trace) = &c.trace {
        c.key = Some(trace.clone());
        c.key_source = Some("TRN02");
        let why = if c.bht_reference.is_some() {
            "longer than 50 characters"
        } else {
            "blank"
        };
        c.diagnostic = Some(at(
            Diagnostic::warning(
                "X041",
                format!(
                    "BHT03 is {why}: the 278 is correlated by its {trn} trace instead \
                     (the case is the request's only if that request's BHT03 was the same trace)"
                ),
            ),
            c.bht_span,
        ));
    } else {
        c.diagnostic = Some(at(
            Diagnostic::error(
                "X042",
                format!(
                    "neither a usable BHT03 nor a 2000E {trn} trace: the 278 cannot be \
                     correlated to a request and does not become a case"
                ),
            ),
            c.bht_span,
        ));
    }
    c
}

fn push_correlation(
    tree: &mut SourceTree,
    parent: NodeId,
    model: &Transaction278,
    c: &Correlation,
) {
    let node = tree.push(parent, "correlation", None, None);
    push_value(
        tree,
        node,
        "key",
        c.key.as_deref(),
        match c.key_source {
            Some("BHT03") => c.bht_span,
            _ => c.trace_span,
        },
    );
    push_value(tree, node, "key_source", c.key_source, None);
    push_value(
        tree,
        node,
        "bht_reference",
        c.bht_reference.as_deref(),
        c.bht_span,
    );
    push_value(tree, node, "report_type", c.report_type.as_deref(), None);
    let purpose = match model.purpose.as_str() {
        "11" => Some("response"),
        "13" => Some("request"),
        _ => None,
    };
    push_value(tree, node, "purpose", purpose, None);
    push_value(tree, node, "trace", c.trace.as_deref(), c.trace_span);
    push_value(
        tree,
        node,
        "trace_originator",
        c.trace_originator.as_deref(),
        None,
    );
}

fn push_decision(tree: &mut SourceTree, parent: NodeId, d: &DecisionFacts) {
    let node = tree.push(parent, "decision", None, d.span);
    push_value(tree, node, "status", Some(&d.status), d.span);
    push_value(tree, node, "action_code", d.action_code.as_deref(), d.span);
    push_value(
        tree,
        node,
        "authorization_number",
        d.authorization_number.as_deref(),
        d.span,
    );
    for r in &d.reason_codes {
        push_value(tree, node, "reason_code", Some(r), d.span);
    }
    push_value(
        tree,
        node,
        "effective_start",
        d.effective_start.as_deref(),
        None,
    );
    push_value(
        tree,
        node,
        "effective_end",
        d.effective_end.as_deref(),
        None,
    );
    for p in &d.payer_trace {
        push_value(tree, node, "payer_trace", Some(p), None);
    }
    push_value(
        tree,
        node,
        "admin_reference",
        d.admin_reference.as_deref(),
        None,
    );
    push_value(tree, node, "note", d.note.as_deref(), None);
    for s in &d.services {
        let sn = tree.push(node, "service", None, s.span);
        push_value(tree, sn, "line", Some(&s.line.to_string()), None);
        push_value(tree, sn, "status", Some(&s.status), s.span);
        push_value(
            tree,
            sn,
            "authorization_number",
            s.authorization_number.as_deref(),
            s.span,
        );
        for r in &s.reason_codes {
            push_value(tree, sn, "reason_code", Some(r), s.span);
        }
        push_value(tree, sn, "quantity", s.quantity.as_deref(), None);
        push_value(
            tree,
            sn,
            "effective_start",
            s.effective_start.as_deref(),
            None,
        );
        push_value(tree, sn, "effective_end", s.effective_end.as_deref(), None);
    }
}

//! Decisions read from a 278 response: HCR/AAA logic as typed code.
//!
//! The mapping format maps one path to one field with simple transforms; the
//! 278 decision needs logic it cannot express cleanly — a service-level (2000F)
//! HCR overriding the event-level (2000E) one for its line, an event status
//! aggregated from lines when 2000E carries none, and "AAA only" meaning a
//! *rejection* rather than a denial. So this module computes the decision once,
//! as typed code with tests, and the tree builder publishes it as **pre-computed
//! nodes** (`decision/…`, `correlation/…`, see [`crate::tree`]) that the profile
//! maps like any other path. A pre-computed node (rather than a typed transform
//! in the mapping engine) keeps the adapter → mapping dependency direction intact
//! and makes the derivation visible in `inspect` with spans back to the HCR.
//!
//! HCR01 (element 306) → decision status:
//!
//! | HCR01 | status | note |
//! | --- | --- | --- |
//! | `A1` certified in total | `approved` | |
//! | `A2` certified, partial | `partially_approved` | |
//! | `A3` not certified | `denied` | |
//! | `A4` pended | `pended` | REF*NT carries the tracking number |
//! | `A6` modified | `modified` | quantities/dates changed; see service lines |
//! | `C` cancelled | `cancelled` | |
//! | `CT` contact payer | `pended` | no answer in this 278: the case stays open |
//! | `NA` no action required | `approved` | nothing to authorize; the note says so |
//!
//! Without any HCR, AAA segments with AAA01 = `N` anywhere make the status
//! `error` with every AAA03 in `reason_codes`: the request was not reviewed.
//! When 2000E has no HCR but lines do, the event status is aggregated: one
//! distinct status → that one; only approved/modified → `modified`; any approval
//! next to a denial → `partially_approved`; else any pended → `pended`.

use gateway_core::Span;

use crate::loops::Transaction278;
use crate::token::Tokens;

/// The decision-relevant facts of one 278 response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionFacts {
    /// Case-level decision status (`approved`, …, `error`).
    pub status: String,
    /// The HCR01 the status came from (absent for AAA rejections and aggregates).
    pub action_code: Option<String>,
    /// HCR02 of 2000E, else the one HCR02 all lines share.
    pub authorization_number: Option<String>,
    /// HCR03 (event level, else of the lines) or AAA03 for rejections.
    pub reason_codes: Vec<String>,
    /// Certification start (DTP*007, else DTP*AAH).
    pub effective_start: Option<String>,
    /// Certification end (DTP*036, else the end of an RD8 range).
    pub effective_end: Option<String>,
    /// Every TRN segment of 2000E/2000F, as sent, plus `REF*NT*…`.
    pub payer_trace: Vec<String>,
    /// REF*NT administrative reference number (pended/denial tracking).
    pub admin_reference: Option<String>,
    /// MSG text of 2000E.
    pub note: Option<String>,
    /// Per-line decisions that differ from the case-level one.
    pub services: Vec<ServiceFacts>,
    /// Span of the segment the status came from.
    pub span: Option<Span>,
}

/// The decision for one 2000F service line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceFacts {
    /// 1-based position of the 2000F loop in the transaction.
    pub line: u32,
    /// Line status.
    pub status: String,
    /// Line HCR02.
    pub authorization_number: Option<String>,
    /// Line HCR03 or AAA03.
    pub reason_codes: Vec<String>,
    /// Certified quantity (HSD02) for modified lines; the SV1/SV2 quantity only
    /// echoes what was requested.
    pub quantity: Option<String>,
    /// Line certification start (DTP*007, else DTP*AAH, else DTP*472).
    pub effective_start: Option<String>,
    /// Line certification end (DTP*036, else the end of a DTP*AAH or DTP*472 RD8).
    pub effective_end: Option<String>,
    /// Span of the line's HCR (or AAA).
    pub span: Option<Span>,
}

/// Decision status for an HCR01 code (see the module table).
pub fn status_for_action(code: &str) -> Option<&'static str> {
    Some(match code {
        "A1" | "NA" => "approved",
        "A2" => "partially_approved",
        "A3" => "denied",
        "A4" | "CT" => "pended",
        "A6" => "modified",
        "C" => "cancelled",
        _ => return None,
    })
}

/// Aggregates line statuses into an event status (see the module docs).
pub fn aggregate(statuses: &[&str]) -> Option<&'static str> {
    const ALL: [&str; 7] = [
        "approved",
        "partially_approved",
        "denied",
        "pended",
        "modified",
        "cancelled",
        "error",
    ];
    let mut distinct: Vec<&'static str> = Vec::new();
    for s in statuses {
        if let Some(known) = ALL.iter().find(|k| *k == s)
            && !distinct.contains(known)
        {
            distinct.push(known);
        }
    }
    let has = |s: &str| distinct.contains(&s);
    match distinct.as_slice() {
        [] => None,
        [one] => Some(one),
        _ if distinct
            .iter()
            .all(|s| matches!(*s, "approved" | "modified")) =>
        {
            Some("modified")
        }
        _ if (has("approved") || has("modified") || has("partially_approved")) && has("denied") => {
            Some("partially_approved")
        }
        _ if has("pended") => Some("pended"),
        _ => distinct.first().copied(),
    }
}

struct Level {
    hcr: Option<(String, Option<String>, Option<String>, Span)>,
    aaa: Vec<(String, Span)>,
    dtp: Vec<(String, String, String)>,
    trn: Vec<String>,
    ref_nt: Option<String>,
    msg: Vec<String>,
    quantity: Option<String>,
}

fn non_empty(s: std::borrow::Cow<'_, str>) -> Option<String> {
    (!s.is_empty()).then(|| s.into_owned())
}

/// Reads the segments directly in loop `l` (and AAA from its sub-loops).
fn level(t: &Tokens<'_>, tx: &Transaction278, l: usize) -> Level {
    let mut out = Level {
        hcr: None,
        aaa: Vec::new(),
        dtp: Vec::new(),
        trn: Vec::new(),
        ref_nt: None,
        msg: Vec::new(),
        quantity: None,
    };
    for s in tx.segments_of(l) {
        let seg = &t.segments[s];
        match seg.id.as_str() {
            "HCR" if out.hcr.is_none() => {
                out.hcr = Some((
                    t.element(seg, 1).into_owned(),
                    non_empty(t.element(seg, 2)),
                    non_empty(t.element(seg, 3)),
                    seg.span,
                ));
            }
            "AAA" => collect_aaa(t, s, &mut out.aaa),
            "DTP" => out.dtp.push((
                t.element(seg, 1).into_owned(),
                t.element(seg, 2).into_owned(),
                t.element(seg, 3).into_owned(),
            )),
            "TRN" => out.trn.push(t.text(seg.span).into_owned()),
            "REF" if t.element(seg, 1) == "NT" => out.ref_nt = non_empty(t.element(seg, 2)),
            "MSG" => out.msg.extend(non_empty(t.element(seg, 1))),
            // HSD02 is the certified quantity; SV1/SV2 only echo the requested one.
            "HSD" => out.quantity = out.quantity.take().or(non_empty(t.element(seg, 2))),
            _ => {}
        }
    }
    for c in tx.children_of(l) {
        if tx.loops[c].hl.is_none() {
            for s in tx.segments_of(c) {
                collect_aaa(t, s, &mut out.aaa);
            }
        }
    }
    out
}

fn collect_aaa(t: &Tokens<'_>, s: usize, into: &mut Vec<(String, Span)>) {
    let seg = &t.segments[s];
    if seg.id == "AAA" && t.element(seg, 1) != "Y" {
        into.push((t.element(seg, 3).into_owned(), seg.span));
    }
}

/// Start and end of a certification window from DTP segments: DTP*007/036,
/// else the first of the `fallbacks` present (a line's DTP*AAH certification
/// range, then its DTP*472 service dates).
fn window(
    dtp: &[(String, String, String)],
    fallbacks: &[&str],
) -> (Option<String>, Option<String>) {
    let find = |q: &str| dtp.iter().find(|(qual, _, _)| qual == q);
    let split =
        |(_, format, value): &(String, String, String)| -> (Option<String>, Option<String>) {
            if format == "RD8" {
                match value.split_once('-') {
                    Some((a, b)) => (Some(iso(a)), Some(iso(b))),
                    None => (None, None),
                }
            } else if value.is_empty() {
                (None, None)
            } else {
                (Some(iso(value)), None)
            }
        };
    let (mut start, mut end) = find("007").map(split).unwrap_or((None, None));
    if let Some((s, _)) = find("036").map(split) {
        end = s;
    }
    if start.is_none()
        && end.is_none()
        && let Some(f) = fallbacks.iter().find_map(|q| find(q))
    {
        (start, end) = split(f);
    }
    (start, end)
}

/// `CCYYMMDD` → `CCYY-MM-DD` (other shapes returned unchanged).
pub fn iso(d: &str) -> String {
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        d.to_owned()
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// Computes the decision of a 278 response; `None` for requests and for
/// responses that carry neither HCR nor a rejecting AAA.
pub fn decide(t: &Tokens<'_>, tx: &Transaction278) -> Option<DecisionFacts> {
    if !tx.is_response() {
        return None;
    }
    let events = tx.loops_named("2000E");
    let event = events.first().map(|&l| level(t, tx, l));
    let mut lines = Vec::new();
    for (i, &l) in tx.loops_named("2000F").iter().enumerate() {
        let lv = level(t, tx, l);
        let (status, span, reasons, auth) = match (&lv.hcr, lv.aaa.is_empty()) {
            (Some((code, auth, reason, span)), _) => (
                status_for_action(code).map(str::to_owned),
                Some(*span),
                reason.iter().cloned().collect(),
                auth.clone(),
            ),
            (None, false) => (
                Some("error".to_owned()),
                lv.aaa.first().map(|a| a.1),
                lv.aaa.iter().map(|a| a.0.clone()).collect(),
                None,
            ),
            (None, true) => (None, None, Vec::new(), None),
        };
        let (start, end) = window(&lv.dtp, &["AAH", "472"]);
        lines.push((
            ServiceFacts {
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                status: status.unwrap_or_default(),
                authorization_number: auth,
                reason_codes: dedup(reasons),
                quantity: lv.quantity.clone(),
                effective_start: start,
                effective_end: end,
                span,
            },
            lv,
        ));
    }

    let mut facts = DecisionFacts::default();
    let line_statuses: Vec<&str> = lines
        .iter()
        .map(|(f, _)| f.status.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    let event_hcr = event.as_ref().and_then(|e| e.hcr.clone());
    if let Some((code, auth, reason, span)) = &event_hcr {
        facts.status = status_for_action(code).unwrap_or("pended").to_owned();
        facts.action_code = Some(code.clone());
        facts.authorization_number = auth.clone();
        facts.reason_codes = reason.iter().cloned().collect();
        facts.span = Some(*span);
        if code == "NA" {
            facts.note = Some("no action required (HCR01 NA)".to_owned());
        } else if code == "CT" {
            facts.note = Some("contact the payer (HCR01 CT)".to_owned());
        }
    } else if let Some(status) = aggregate(&line_statuses).filter(|s| *s != "error") {
        facts.status = status.to_owned();
        facts.reason_codes = dedup(
            lines
                .iter()
                .flat_map(|(f, _)| f.reason_codes.clone())
                .collect(),
        );
        facts.span = lines.iter().find_map(|(f, _)| f.span);
        let auths = dedup(
            lines
                .iter()
                .filter_map(|(f, _)| f.authorization_number.clone())
                .collect(),
        );
        if auths.len() == 1 {
            facts.authorization_number = auths.into_iter().next();
        }
    } else {
        // No HCR anywhere: rejecting AAA segments at any level make it an error.
        let mut codes = Vec::new();
        let mut span = None;
        for l in 0..tx.loops.len() {
            for s in tx.segments_of(l) {
                let seg = &t.segments[s];
                if seg.id == "AAA" && t.element(seg, 1) != "Y" {
                    codes.push(t.element(seg, 3).into_owned());
                    span = span.or(Some(seg.span));
                }
            }
        }
        span?;
        facts.status = "error".to_owned();
        facts.reason_codes = dedup(codes);
        facts.span = span;
    }

    if let Some(e) = &event {
        let (start, end) = window(&e.dtp, &["AAH"]);
        facts.effective_start = start;
        facts.effective_end = end;
        facts.payer_trace.extend(e.trn.iter().cloned());
        facts.admin_reference = e.ref_nt.clone();
        if !e.msg.is_empty() {
            facts.note = Some(e.msg.join(" "));
        }
    }
    for (_, lv) in &lines {
        facts.payer_trace.extend(lv.trn.iter().cloned());
        if facts.admin_reference.is_none() {
            facts.admin_reference = lv.ref_nt.clone();
        }
    }
    if let Some(nt) = &facts.admin_reference {
        facts.payer_trace.push(format!("REF*NT*{nt}"));
    }
    facts.payer_trace = dedup(std::mem::take(&mut facts.payer_trace));
    if facts.effective_start.is_none() && facts.effective_end.is_none() {
        let windows: Vec<_> = lines
            .iter()
            .map(|(f, _)| (f.effective_start.clone(), f.effective_end.clone()))
            .filter(|w| w.0.is_some() || w.1.is_some())
            .collect();
        if let Some(first) = windows.first()
            && windows.iter().all(|w| w == first)
        {
            (facts.effective_start, facts.effective_end) = first.clone();
        }
    }
    // A modification decided at the event level (2000E HCR A6) applies to
    // lines without their own HCR: a line's HSD is then its approved quantity,
    // which must not be lost.
    if facts.status == "modified" {
        for (f, _) in lines.iter_mut() {
            if f.status.is_empty() && f.quantity.is_some() {
                f.status = "modified".to_owned();
            }
        }
    }
    facts.services = lines
        .into_iter()
        .map(|(f, _)| f)
        .filter(|f| {
            !f.status.is_empty()
                && (f.status != facts.status
                    || (f.status == "modified" && f.quantity.is_some())
                    || (f.authorization_number.is_some()
                        && f.authorization_number != facts.authorization_number))
        })
        .map(|mut f| {
            if f.status != "modified" {
                f.quantity = None;
            }
            f
        })
        .collect();
    Some(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_table() {
        assert_eq!(status_for_action("A1"), Some("approved"));
        assert_eq!(status_for_action("A2"), Some("partially_approved"));
        assert_eq!(status_for_action("A3"), Some("denied"));
        assert_eq!(status_for_action("A4"), Some("pended"));
        assert_eq!(status_for_action("A6"), Some("modified"));
        assert_eq!(status_for_action("C"), Some("cancelled"));
        assert_eq!(status_for_action("CT"), Some("pended"));
        assert_eq!(status_for_action("NA"), Some("approved"));
        assert_eq!(status_for_action("ZZ"), None);
    }

    #[test]
    fn aggregation() {
        assert_eq!(aggregate(&["approved", "approved"]), Some("approved"));
        assert_eq!(
            aggregate(&["approved", "denied"]),
            Some("partially_approved")
        );
        assert_eq!(aggregate(&["approved", "modified"]), Some("modified"));
        assert_eq!(aggregate(&["pended", "approved"]), Some("pended"));
        assert_eq!(aggregate(&[]), None);
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso("20261201"), "2026-12-01");
        assert_eq!(iso("bad"), "bad");
    }
}

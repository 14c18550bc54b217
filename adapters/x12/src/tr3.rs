//! TR3-level rules of the 005010X217 278, as two tables.
//!
//! The loop builder ([`crate::loops`]) checks the HL structure, the segment
//! ids and the code values loop recognition itself depends on (BHT02, HL03,
//! NM101 per loop, HI qualifiers, DTP formats). What the implementation guide
//! requires beyond that lives here, as data rather than scattered `if`s:
//!
//! * [`PRESENCE`]: what each loop must contain — its name loop (2010A payer
//!   `NM1`, 2010B requester, 2010C subscriber), the child loops of the
//!   hierarchy, the 2000E `UM`, a decision (`HCR`) in a reviewed response, and
//!   a key for every service line (a procedure in `SV1`/`SV2`/`SV3` or a
//!   service type in `UM03`). Missing → IK3 code 3.
//! * [`ELEMENTS`]: element requirements per loop and segment, the `NM108`/
//!   `NM109` pairing (both or neither), and the code lists of the key
//!   qualifiers (`NM108` per loop, `UM01`/`UM02`, `HCR01`, `TRN01`, `AAA01`,
//!   `SV101-1`, `SV301-1`). Missing → IK3 code 8 with IK4 code 1, missing
//!   partner of a pair → IK4 code 2, a code not allowed → IK4 code 7 (the code
//!   echoed in IK404: codes are never patient data).
//!
//! The same rules run on everything we receive (their findings become 999
//! IK3/IK4 and IK5 `R`) and on everything our writers produce
//! ([`crate::outbound::Template::interchange`] refuses to emit a 278 that
//! breaks one). So every rule names the **fact** it needs in words a case
//! author understands — "requesting provider NPI (2010B NM109)" — and a
//! refusal says "case has no requesting provider NPI (2010B NM109)".
//!
//! Diagnostics: `X043` required segment or loop missing, `X044` required
//! element missing, `X045` element missing next to its partner, `X046` code
//! not allowed here; each message starts with `TR3:` and names the fact.
//!
//! A response that rejects the request (`AAA01 = N` anywhere) ends its
//! hierarchy at the level it rejects, so the rules marked
//! [`Applies::Reviewed`] are skipped for it.

use gateway_core::Span;

use crate::codes::{AckCode, ElementError, Finding, ik3, ik4};
use crate::envelope::TransactionSet;
use crate::loops::{HCR_ACTIONS, Transaction278};
use crate::token::Tokens;

/// Which 278s a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Requests and responses.
    Always,
    /// Requests, and responses that do not reject the request (no `AAA*N`).
    Reviewed,
    /// Responses that do not reject the request.
    ReviewedResponse,
}

/// What a loop must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A name loop (opened by its `NM1`) directly inside the loop.
    NameLoop(&'static str),
    /// A child 2000-level loop somewhere below the loop.
    ChildLoop(&'static str),
    /// A segment directly in the loop.
    Segment(&'static str),
    /// A decision: `HCR` in this loop or in one of its 2000F lines.
    Decision,
    /// A service-line key: `SV1`/`SV2`/`SV3`, or `UM` with `UM03`.
    ServiceKey,
}

/// One presence rule: loop `owner` must contain `need`.
#[derive(Debug, Clone, Copy)]
pub struct Presence {
    /// The loop id the rule applies to (every instance of it).
    pub owner: &'static str,
    /// What it must contain.
    pub need: Need,
    /// Which 278s.
    pub applies: Applies,
    /// The fact it carries, for messages and writer refusals.
    pub fact: &'static str,
}

/// Presence rules (IK3 code 3 when broken).
pub const PRESENCE: &[Presence] = &[
    Presence {
        owner: "2000A",
        need: Need::NameLoop("2010A"),
        applies: Applies::Always,
        fact: "payer (2010A NM1)",
    },
    Presence {
        owner: "2000A",
        need: Need::ChildLoop("2000B"),
        applies: Applies::Reviewed,
        fact: "requester level (2000B HL)",
    },
    Presence {
        owner: "2000B",
        need: Need::NameLoop("2010B"),
        applies: Applies::Always,
        fact: "requesting provider (2010B NM1)",
    },
    Presence {
        owner: "2000B",
        need: Need::ChildLoop("2000C"),
        applies: Applies::Reviewed,
        fact: "subscriber level (2000C HL)",
    },
    Presence {
        owner: "2000C",
        need: Need::NameLoop("2010C"),
        applies: Applies::Always,
        fact: "subscriber (2010C NM1)",
    },
    Presence {
        owner: "2000C",
        need: Need::ChildLoop("2000E"),
        applies: Applies::Reviewed,
        fact: "patient event (2000E HL)",
    },
    Presence {
        owner: "2000D",
        need: Need::NameLoop("2010D"),
        applies: Applies::Always,
        fact: "dependent (2010D NM1)",
    },
    Presence {
        owner: "2000E",
        need: Need::Segment("UM"),
        applies: Applies::Reviewed,
        fact: "service review information (2000E UM)",
    },
    Presence {
        owner: "2000E",
        need: Need::Decision,
        applies: Applies::ReviewedResponse,
        fact: "payer decision (2000E HCR)",
    },
    Presence {
        owner: "2000F",
        need: Need::ServiceKey,
        applies: Applies::Always,
        fact: "procedure code the 278 can carry (HCPCS/CPT, NDC or CDT) or X12 service type (2000F SV1/SV2/SV3 or UM03)",
    },
];

/// How an element is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Req {
    /// Must be present.
    Required,
    /// May be absent; checked against the code list when present.
    Optional,
    /// Must be present when element `n` of the same segment is (IK4 code 2).
    With(usize),
}

/// One element rule.
#[derive(Debug, Clone, Copy)]
pub struct ElementRule {
    /// Loop id (`*` for every loop).
    pub loop_id: &'static str,
    /// Segment id.
    pub segment: &'static str,
    /// Element position (1-based).
    pub position: usize,
    /// Component position for composites.
    pub component: Option<usize>,
    /// Data element reference number (IK402).
    pub reference: u32,
    /// Requirement.
    pub req: Req,
    /// Allowed codes (empty: any value).
    pub codes: &'static [&'static str],
    /// Which 278s.
    pub applies: Applies,
    /// The fact it carries.
    pub fact: &'static str,
}

const fn el(
    loop_id: &'static str,
    segment: &'static str,
    position: usize,
    reference: u32,
    req: Req,
    codes: &'static [&'static str],
    fact: &'static str,
) -> ElementRule {
    ElementRule {
        loop_id,
        segment,
        position,
        component: None,
        reference,
        req,
        codes,
        applies: Applies::Always,
        fact,
    }
}

const fn comp(rule: ElementRule, component: usize) -> ElementRule {
    ElementRule {
        component: Some(component),
        ..rule
    }
}

/// `NM108` identification code qualifiers the TR3 allows for providers.
const PROVIDER_ID_QUALIFIERS: &[&str] = &["24", "34", "46", "XX"];

use Req::{Optional, Required, With};

/// Element rules, checked in order; one finding per element at most.
#[rustfmt::skip]
pub const ELEMENTS: &[ElementRule] = &[
    // 2010A: the UMO (payer).
    el("2010A", "NM1", 2, 1065, Required, &["1", "2"], "payer entity type (2010A NM102)"),
    el("2010A", "NM1", 3, 1035, Required, &[], "payer name (2010A NM103)"),
    el("2010A", "NM1", 8, 66, Required, &["24", "46", "FI", "NI", "PI", "XV", "XX"], "payer id qualifier (2010A NM108)"),
    el("2010A", "NM1", 9, 67, Required, &[], "payer id (2010A NM109)"),
    // 2010B: the requester.
    el("2010B", "NM1", 2, 1065, Required, &["1", "2"], "requesting provider entity type (2010B NM102)"),
    el("2010B", "NM1", 3, 1035, Required, &[], "requesting provider name (2010B NM103)"),
    el("2010B", "NM1", 8, 66, Required, PROVIDER_ID_QUALIFIERS, "requesting provider id qualifier (2010B NM108)"),
    el("2010B", "NM1", 9, 67, Required, &[], "requesting provider NPI (2010B NM109)"),
    // 2010C: the subscriber.
    el("2010C", "NM1", 2, 1065, Required, &["1"], "subscriber entity type (2010C NM102)"),
    el("2010C", "NM1", 3, 1035, Required, &[], "subscriber last name (2010C NM103)"),
    el("2010C", "NM1", 8, 66, Required, &["MI"], "subscriber member id qualifier (2010C NM108)"),
    el("2010C", "NM1", 9, 67, Required, &[], "subscriber member id (2010C NM109)"),
    // 2010D: the dependent.
    el("2010D", "NM1", 2, 1065, Required, &["1"], "dependent entity type (2010D NM102)"),
    el("2010D", "NM1", 3, 1035, Required, &[], "dependent last name (2010D NM103)"),
    // 2010EA / 2010F: event and service providers.
    el("2010EA", "NM1", 2, 1065, Required, &["1", "2"], "patient event provider entity type (2010EA NM102)"),
    el("2010EA", "NM1", 8, 66, Optional, PROVIDER_ID_QUALIFIERS, "patient event provider id qualifier (2010EA NM108)"),
    el("2010F", "NM1", 2, 1065, Required, &["1", "2"], "service provider entity type (2010F NM102)"),
    el("2010F", "NM1", 8, 66, Optional, PROVIDER_ID_QUALIFIERS, "service provider id qualifier (2010F NM108)"),
    // Every NM1: the id and its qualifier come together.
    el("*", "NM1", 9, 67, With(8), &[], "NPI or id after its qualifier (NM109)"),
    el("*", "NM1", 8, 66, With(9), &[], "qualifier of the id given (NM108)"),
    // Review information, decisions and traces.
    el("*", "UM", 1, 1525, Required, &["AR", "HS", "SC", "IN"], "request category (UM01)"),
    el("2000E", "UM", 2, 1322, Required, &[], "certification type (2000E UM02)"),
    el("*", "UM", 2, 1322, Optional, &["I", "R", "S", "1", "2", "3", "4"], "certification type (UM02)"),
    el("*", "HCR", 1, 306, Required, HCR_ACTIONS, "certification action (HCR01)"),
    el("*", "AAA", 1, 1073, Required, &["Y", "N"], "valid request indicator (AAA01)"),
    el("*", "TRN", 1, 481, Required, &["1", "2"], "trace type (TRN01)"),
    el("*", "TRN", 2, 127, Required, &[], "trace number (TRN02)"),
    el("*", "TRN", 3, 509, Required, &[], "trace originator (TRN03)"),
    el("*", "REF", 2, 127, Required, &[], "reference number (REF02)"),
    // Service lines: the procedure and the qualifiers the TR3 allows.
    comp(el("2000F", "SV1", 1, 235, Required, &["ER", "HC", "IV", "N4", "WK"], "procedure code qualifier (2000F SV101-1)"), 1),
    comp(el("2000F", "SV1", 1, 234, Required, &[], "procedure code (2000F SV101-2)"), 2),
    comp(el("2000F", "SV2", 2, 235, Optional, &["HC", "HP", "IV", "N4", "WK"], "institutional procedure qualifier (2000F SV202-1)"), 1),
    comp(el("2000F", "SV3", 1, 235, Required, &["AD", "ER"], "dental procedure qualifier (2000F SV301-1)"), 1),
    comp(el("2000F", "SV3", 1, 234, Required, &[], "dental procedure code (2000F SV301-2)"), 2),
];

/// The kind of a TR3 violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A required segment or loop is absent.
    MissingSegment,
    /// A required element is absent.
    MissingElement,
    /// An element required by its partner is absent.
    MissingPartner,
    /// A code outside the allowed list (the code itself).
    BadCode(String),
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The fact the rule carries.
    pub fact: &'static str,
    /// What is wrong.
    pub problem: Problem,
    /// The 2000F line (1-based) it sits in, when inside a service line.
    pub line: Option<u32>,
    /// IK301.
    pub segment_id: String,
    /// IK302 (ST = 1).
    pub position: usize,
    /// IK303.
    pub loop_id: String,
    /// The IK4 detail.
    pub element: Option<ElementError>,
    /// Where.
    pub span: Option<Span>,
}

impl Violation {
    /// What a case lacks, for writer refusals: "case has no payer id (2010A NM109)".
    pub fn missing_fact(&self) -> String {
        let line = self
            .line
            .map(|l| format!(" on service line {l}"))
            .unwrap_or_default();
        match &self.problem {
            Problem::BadCode(code) => {
                format!(
                    "case gives a {} the 278 does not allow (`{code}`){line}",
                    self.fact
                )
            }
            _ => format!("case has no {}{line}", self.fact),
        }
    }

    /// The finding for the 999.
    pub fn finding(&self, group: usize, set: usize) -> Finding {
        let (diag, what) = match &self.problem {
            Problem::MissingSegment => ("X043", "is missing"),
            Problem::MissingElement => ("X044", "is required"),
            Problem::MissingPartner => ("X045", "is required with its partner element"),
            Problem::BadCode(_) => ("X046", "has a code the TR3 does not allow here"),
        };
        Finding::error(
            diag,
            format!("TR3: {} {what}", self.fact),
            self.span,
            AckCode::Segment {
                group,
                set,
                segment_id: self.segment_id.clone(),
                position: self.position,
                loop_id: Some(self.loop_id.clone()),
                code: if self.element.is_some() {
                    ik3::ELEMENT_ERRORS
                } else {
                    ik3::REQUIRED_MISSING
                },
                element: self.element.clone(),
            },
        )
    }
}

struct Walk<'t, 'a> {
    t: &'t Tokens<'a>,
    tx: &'t TransactionSet,
    model: &'t Transaction278,
    response: bool,
    rejected: bool,
    out: Vec<Violation>,
}

impl Walk<'_, '_> {
    fn applies(&self, a: Applies) -> bool {
        match a {
            Applies::Always => true,
            Applies::Reviewed => !(self.response && self.rejected),
            Applies::ReviewedResponse => self.response && !self.rejected,
        }
    }

    fn position(&self, seg: usize) -> usize {
        seg.saturating_sub(self.tx.st) + 1
    }

    fn first_segment(&self, l: usize) -> Option<usize> {
        self.model.segments_of(l).next()
    }

    fn has_below(&self, l: usize, id: &str) -> bool {
        self.model
            .children_of(l)
            .any(|c| self.model.loops[c].id == id || self.has_below(c, id))
    }

    fn has_segment(&self, l: usize, id: &str) -> bool {
        self.model
            .segments_of(l)
            .any(|s| self.t.segments[s].id == id)
    }

    fn service_key(&self, l: usize) -> bool {
        self.model.segments_of(l).any(|s| {
            let seg = &self.t.segments[s];
            match seg.id.as_str() {
                "SV1" | "SV2" | "SV3" => true,
                "UM" => !self.t.element(seg, 3).is_empty(),
                _ => false,
            }
        })
    }

    fn presence(&mut self, l: usize, line: Option<u32>) {
        let lp = &self.model.loops[l];
        for rule in PRESENCE.iter().filter(|r| r.owner == lp.id) {
            if !self.applies(rule.applies) {
                continue;
            }
            let (ok, segment_id, loop_id) = match rule.need {
                Need::NameLoop(child) => (
                    self.model
                        .children_of(l)
                        .any(|c| self.model.loops[c].id == child),
                    "NM1",
                    child,
                ),
                // A child loop whose parent link is broken is reported by the
                // loop builder (HL02); it is not missing as well.
                Need::ChildLoop(child) => (
                    self.has_below(l, child) || self.model.loops.iter().any(|x| x.id == child),
                    "HL",
                    child,
                ),
                Need::Segment(id) => (self.has_segment(l, id), id, lp.id),
                Need::Decision => (
                    self.has_segment(l, "HCR")
                        || self.model.children_of(l).any(|c| {
                            self.model.loops[c].id == "2000F" && self.has_segment(c, "HCR")
                        }),
                    "HCR",
                    lp.id,
                ),
                Need::ServiceKey => (self.service_key(l), "SV1", lp.id),
            };
            if ok {
                continue;
            }
            let at = self.first_segment(l);
            self.out.push(Violation {
                fact: rule.fact,
                problem: Problem::MissingSegment,
                line,
                segment_id: segment_id.to_owned(),
                position: at.map_or(1, |s| self.position(s)),
                loop_id: loop_id.to_owned(),
                element: None,
                span: at.map(|s| self.t.segments[s].span),
            });
        }
    }

    fn elements(&mut self, l: usize, line: Option<u32>) {
        let loop_id = self.model.loops[l].id;
        let segments: Vec<usize> = self.model.segments_of(l).collect();
        for s in segments {
            let seg = &self.t.segments[s];
            let mut flagged: Vec<usize> = Vec::new();
            for rule in ELEMENTS {
                if (rule.loop_id != "*" && rule.loop_id != loop_id)
                    || rule.segment != seg.id
                    || !self.applies(rule.applies)
                    || flagged.contains(&rule.position)
                {
                    continue;
                }
                let value = match rule.component {
                    Some(c) => self.t.component(seg, rule.position, c),
                    None => self.t.element(seg, rule.position),
                };
                // A composite written without its separator holds its first component only.
                let problem = if value.is_empty() {
                    match rule.req {
                        Required => Some((Problem::MissingElement, ik4::REQUIRED_MISSING)),
                        With(n) if !self.t.element(seg, n).is_empty() => {
                            Some((Problem::MissingPartner, ik4::CONDITIONAL_MISSING))
                        }
                        _ => None,
                    }
                } else if !rule.codes.is_empty() && !rule.codes.contains(&value.as_ref()) {
                    let code: String = value.chars().take(30).collect();
                    Some((Problem::BadCode(code), ik4::BAD_CODE))
                } else {
                    None
                };
                let Some((problem, code)) = problem else {
                    continue;
                };
                flagged.push(rule.position);
                let bad_value = match &problem {
                    Problem::BadCode(c) => Some(c.clone()),
                    _ => None,
                };
                let span =
                    seg.elements
                        .get(rule.position.saturating_sub(1))
                        .map_or(
                            seg.span,
                            |e| if e.span.is_empty() { seg.span } else { e.span },
                        );
                self.out.push(Violation {
                    fact: rule.fact,
                    problem,
                    line,
                    segment_id: seg.id.clone(),
                    position: self.position(s),
                    loop_id: loop_id.to_owned(),
                    element: Some(ElementError {
                        position: rule.position,
                        component: rule.component,
                        reference: Some(rule.reference),
                        code,
                        bad_value,
                    }),
                    span: Some(span),
                });
            }
        }
    }
}

/// Every TR3 rule broken by one 278 transaction set, in document order.
pub fn check(t: &Tokens<'_>, tx: &TransactionSet, model: &Transaction278) -> Vec<Violation> {
    let rejected = tx.body.clone().any(|s| {
        t.segments
            .get(s)
            .is_some_and(|seg| seg.id == "AAA" && t.element(seg, 1) == "N")
    });
    let mut w = Walk {
        t,
        tx,
        model,
        response: model.is_response(),
        rejected,
        out: Vec::new(),
    };
    let lines = model.loops_named("2000F");
    for l in 0..model.loops.len() {
        let line = lines
            .iter()
            .position(|&f| f == l || model.children_of(f).any(|c| c == l))
            .map(|i| u32::try_from(i + 1).unwrap_or(u32::MAX));
        w.presence(l, line);
        w.elements(l, line);
    }
    let mut out = w.out;
    out.sort_by_key(|v| v.position);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_names_its_fact_and_a_known_loop() {
        const LOOPS: &[&str] = &[
            "*", "2000A", "2000B", "2000C", "2000D", "2000E", "2000F", "2010A", "2010B", "2010C",
            "2010D", "2010EA", "2010F",
        ];
        for r in PRESENCE {
            assert!(LOOPS.contains(&r.owner), "{}", r.owner);
            assert!(r.fact.contains('('), "{}", r.fact);
        }
        for r in ELEMENTS {
            assert!(LOOPS.contains(&r.loop_id), "{}", r.loop_id);
            assert!(r.fact.contains('('), "{}", r.fact);
            assert!(r.position >= 1);
        }
    }

    #[test]
    fn missing_fact_wording() {
        let v = Violation {
            fact: "requesting provider NPI (2010B NM109)",
            problem: Problem::MissingElement,
            line: None,
            segment_id: "NM1".into(),
            position: 5,
            loop_id: "2010B".into(),
            element: None,
            span: None,
        };
        assert_eq!(
            v.missing_fact(),
            "case has no requesting provider NPI (2010B NM109)"
        );
    }
}

//! The 005010X217 278 loop builder: HL hierarchy, name loops, and the checks
//! that map onto 999 IK3/IK4 codes.
//!
//! Loops are recognized the way the TR3 defines them: an `HL` opens a 2000-level
//! loop named by HL03 (`20` → 2000A UMO, `21` → 2000B requester, `22` → 2000C
//! subscriber, `23` → 2000D dependent, `EV` → 2000E patient event, `SS` → 2000F
//! service); an `NM1` inside it opens the name loop chosen by the level and the
//! NM101 entity code (2010A, 2010B, 2010C, 2010D, 2010EA/EB/EC, 2010F). Loops
//! nest by HL02 (parent id), so a 2000F sits under its 2000E, which sits under
//! its 2000C/2000D, and so on: a path like `2000F[*]` or a `foreach` item sees
//! exactly its own segments and sub-loops.
//!
//! Parent links are validated (20 → none, 21 → 20, 22 → 21, 23 → 22, EV → 22 or
//! 23, SS → EV); a broken link is an `HL02` element error, and the loop is kept
//! at the top level so no data is dropped. Code values the loop recognition
//! itself relies on (BHT02, HL03, NM101 per loop, HI qualifiers, DTP formats)
//! are checked against the lists below; an unknown qualifier is IK403=7 with
//! the code echoed in IK404 (codes are not patient data). Every other TR3
//! requirement — required segments per loop, element requirements and pairs,
//! the code lists of UM01/UM02, HCR01, TRN01, AAA01, NM108, SV101-1 — is a row
//! of the tables in [`crate::tr3`].

use std::collections::HashMap;

use crate::codes::{AckCode, ElementError, Finding, ik3, ik4};
use crate::envelope::{TransactionSet, valid_date};
use crate::token::Tokens;

/// One loop of the transaction: its id, HL facts and ordered content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loop {
    /// TR3 loop id (`2000E`, `2010EA`, …).
    pub id: &'static str,
    /// The HL segment facts for 2000-level loops.
    pub hl: Option<Hl>,
    /// Segments and child loops in document order.
    pub items: Vec<Item>,
}

/// HL01–HL04.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl {
    /// HL01 hierarchical id.
    pub id: String,
    /// HL02 parent id.
    pub parent: String,
    /// HL03 level code.
    pub level: String,
}

/// An entry of a loop or of the transaction's top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A segment, by index into [`Tokens::segments`].
    Segment(usize),
    /// A loop, by index into [`Transaction278::loops`].
    Loop(usize),
}

/// A 278 transaction set as loops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction278 {
    /// Loop arena; [`Item::Loop`] indexes into it.
    pub loops: Vec<Loop>,
    /// Top level: BHT (and anything before the first HL), then 2000A loops
    /// (and loops whose parent link is broken).
    pub top: Vec<Item>,
    /// BHT02: `13` request, `11` response.
    pub purpose: String,
}

impl Transaction278 {
    /// True for a response (BHT02 = 11).
    pub fn is_response(&self) -> bool {
        self.purpose == "11"
    }

    /// Indices of all loops with this id, in document order.
    pub fn loops_named(&self, id: &str) -> Vec<usize> {
        let mut out = Vec::new();
        self.walk(&self.top, &mut |l| {
            if self.loops[l].id == id {
                out.push(l);
            }
        });
        out
    }

    fn walk(&self, items: &[Item], f: &mut dyn FnMut(usize)) {
        for item in items {
            if let Item::Loop(l) = item {
                f(*l);
                self.walk(&self.loops[*l].items, f);
            }
        }
    }

    /// Segment indices directly in loop `l` (not in its sub-loops).
    pub fn segments_of(&self, l: usize) -> impl Iterator<Item = usize> + '_ {
        self.loops[l].items.iter().filter_map(|i| match i {
            Item::Segment(s) => Some(*s),
            Item::Loop(_) => None,
        })
    }

    /// Child loops of loop `l`.
    pub fn children_of(&self, l: usize) -> impl Iterator<Item = usize> + '_ {
        self.loops[l].items.iter().filter_map(|i| match i {
            Item::Loop(c) => Some(*c),
            Item::Segment(_) => None,
        })
    }
}

/// Segment ids the 278 may contain (inside ST..SE).
const SEGMENTS_278: &[&str] = &[
    "BHT", "HL", "TRN", "AAA", "UM", "HCR", "REF", "DTP", "HI", "HSD", "CRC", "CL1", "CR1", "CR2",
    "CR4", "CR5", "CR6", "CR7", "CR8", "PWK", "MSG", "NM1", "N3", "N4", "PER", "PRV", "DMG", "INS",
    "SV1", "SV2", "SV3", "TOO",
];

/// Segments that belong to a name (2010) loop when one is open.
const NAME_LOOP_SEGMENTS: &[&str] = &["N3", "N4", "PER", "PRV", "REF", "DMG", "INS", "AAA"];

/// Entity codes of the event/service provider loops (2010EA, 2010F).
const PROVIDER_ENTITIES: &[&str] = &[
    "71", "72", "73", "77", "AAJ", "DD", "DK", "DN", "FA", "G3", "P3", "QB", "QV", "SJ",
];

/// HI composite qualifiers accepted (ICD-10-CM ABK/ABF, ICD-9 BK/BF, admitting
/// and reason-for-visit ABJ/ABN/BJ/BN, ICD-10-PCS BBR/BBQ, ICD-9 procedures BR/BQ,
/// CPT/HCPCS BP/BO, DRG DR, LOINC LOI for additional-documentation requests).
pub const HI_QUALIFIERS: &[&str] = &[
    "ABK", "ABF", "ABJ", "ABN", "APR", "BK", "BF", "BJ", "BN", "BO", "BP", "BQ", "BR", "BBQ",
    "BBR", "DR", "LOI",
];

/// HCR01 action codes (element 306) a 278 response may carry.
pub const HCR_ACTIONS: &[&str] = &["A1", "A2", "A3", "A4", "A6", "C", "CT", "NA"];

/// The loop an HL level code opens.
fn hl_loop(level: &str) -> Option<&'static str> {
    Some(match level {
        "20" => "2000A",
        "21" => "2000B",
        "22" => "2000C",
        "23" => "2000D",
        "EV" => "2000E",
        "SS" => "2000F",
        _ => return None,
    })
}

/// The name loop an NM1 with entity code `entity` opens at HL level `level`,
/// or `None` when the entity code is not allowed there.
fn name_loop(level: &str, entity: &str) -> Option<&'static str> {
    match level {
        "20" => (entity == "X3").then_some("2010A"),
        "21" => matches!(entity, "1P" | "FA" | "X3").then_some("2010B"),
        "22" => (entity == "IL").then_some("2010C"),
        "23" => (entity == "QC").then_some("2010D"),
        "EV" => {
            if PROVIDER_ENTITIES.contains(&entity) {
                Some("2010EA")
            } else if matches!(entity, "45" | "FS" | "ND" | "PW" | "R3") {
                Some("2010EB")
            } else if entity == "X3" {
                Some("2010EC")
            } else {
                None
            }
        }
        "SS" => PROVIDER_ENTITIES.contains(&entity).then_some("2010F"),
        _ => None,
    }
}

/// Fallback name-loop id when the entity code is wrong (the data is kept).
fn default_name_loop(level: &str) -> &'static str {
    match level {
        "20" => "2010A",
        "21" => "2010B",
        "22" => "2010C",
        "23" => "2010D",
        "EV" => "2010EA",
        "SS" => "2010F",
        _ => "2010",
    }
}

/// Allowed parent levels of each HL level.
fn allowed_parents(level: &str) -> &'static [&'static str] {
    match level {
        "21" => &["20"],
        "22" => &["21"],
        "23" => &["22"],
        "EV" => &["22", "23"],
        "SS" => &["EV"],
        _ => &[],
    }
}

struct Builder<'t, 'a> {
    t: &'t Tokens<'a>,
    tx: &'t TransactionSet,
    group: usize,
    set: usize,
    out: Transaction278,
    findings: Vec<Finding>,
    hl_by_id: HashMap<String, (usize, String)>,
    current_hl: Option<usize>,
    current_name: Option<usize>,
}

impl Builder<'_, '_> {
    fn position(&self, seg: usize) -> usize {
        seg.saturating_sub(self.tx.st) + 1
    }

    fn loop_id_at(&self) -> Option<String> {
        self.current_name
            .or(self.current_hl)
            .map(|l| self.out.loops[l].id.to_owned())
    }

    fn segment_finding(
        &mut self,
        seg: usize,
        code: &'static str,
        element: Option<ElementError>,
        diag: &str,
        message: &str,
    ) {
        let s = &self.t.segments[seg];
        let span = element
            .as_ref()
            .and_then(|e| s.elements.get(e.position.saturating_sub(1)))
            .map_or(s.span, |e| e.span);
        let ack = AckCode::Segment {
            group: self.group,
            set: self.set,
            segment_id: s.id.clone(),
            position: self.position(seg),
            loop_id: self.loop_id_at(),
            code,
            element,
        };
        self.findings
            .push(Finding::error(diag, message, Some(span), ack));
    }

    /// An element error; `echo` copies the bad value into IK404 (codes only).
    #[allow(clippy::too_many_arguments)]
    fn element_error(
        &mut self,
        seg: usize,
        position: usize,
        component: Option<usize>,
        reference: u32,
        code: &'static str,
        echo: bool,
        diag: &str,
        message: &str,
    ) {
        let s = &self.t.segments[seg];
        let value = match component {
            Some(c) => self.t.component(s, position, c),
            None => self.t.element(s, position),
        };
        let bad_value = (echo && !value.is_empty()).then(|| value.chars().take(30).collect());
        self.segment_finding(
            seg,
            ik3::ELEMENT_ERRORS,
            Some(ElementError {
                position,
                component,
                reference: Some(reference),
                code,
                bad_value,
            }),
            diag,
            message,
        );
    }

    fn check_code(
        &mut self,
        seg: usize,
        position: usize,
        reference: u32,
        allowed: &[&str],
        required: bool,
    ) {
        let value = self.t.element(&self.t.segments[seg], position).into_owned();
        let id = self.t.segments[seg].id.clone();
        if value.is_empty() {
            if required {
                self.element_error(
                    seg,
                    position,
                    None,
                    reference,
                    ik4::REQUIRED_MISSING,
                    false,
                    "X039",
                    &format!("{id}{position:02} is required"),
                );
            }
        } else if !allowed.contains(&value.as_str()) {
            self.element_error(
                seg,
                position,
                None,
                reference,
                ik4::BAD_CODE,
                true,
                "X035",
                &format!("{id}{position:02} has a code not valid here"),
            );
        }
    }

    fn push_item(&mut self, item: Item) {
        match self.current_name.or(self.current_hl) {
            Some(l) => self.out.loops[l].items.push(item),
            None => self.out.top.push(item),
        }
    }

    fn new_loop(&mut self, id: &'static str, hl: Option<Hl>) -> usize {
        self.out.loops.push(Loop {
            id,
            hl,
            items: Vec::new(),
        });
        self.out.loops.len() - 1
    }

    fn on_hl(&mut self, seg: usize) {
        let s = &self.t.segments[seg];
        let hl = Hl {
            id: self.t.element(s, 1).into_owned(),
            parent: self.t.element(s, 2).into_owned(),
            level: self.t.element(s, 3).into_owned(),
        };
        self.current_name = None;
        let loop_id = hl_loop(&hl.level).unwrap_or("2000");
        let l = self.new_loop(loop_id, Some(hl.clone()));
        self.current_hl = Some(l);
        if hl_loop(&hl.level).is_none() {
            self.check_code(seg, 3, 735, &["20", "21", "22", "23", "EV", "SS"], true);
        }
        if hl.id.is_empty() {
            self.element_error(
                seg,
                1,
                None,
                628,
                ik4::REQUIRED_MISSING,
                false,
                "X039",
                "HL01 is required",
            );
        }
        let mut parent_loop = None;
        let allowed = allowed_parents(&hl.level);
        if hl.level == "20" {
            if !hl.parent.is_empty() {
                self.element_error(
                    seg,
                    2,
                    None,
                    734,
                    ik4::BAD_CODE,
                    false,
                    "X032",
                    "HL02 must be empty on the 2000A (level 20) loop",
                );
            }
        } else if hl.parent.is_empty() {
            if !allowed.is_empty() {
                self.element_error(
                    seg,
                    2,
                    None,
                    734,
                    ik4::REQUIRED_MISSING,
                    false,
                    "X032",
                    "HL02 parent id is missing",
                );
            }
        } else {
            match self.hl_by_id.get(&hl.parent) {
                Some((pl, plevel)) if allowed.contains(&plevel.as_str()) => parent_loop = Some(*pl),
                Some(_) => self.element_error(
                    seg,
                    2,
                    None,
                    734,
                    ik4::BAD_CODE,
                    false,
                    "X032",
                    "HL02 points to a level that cannot be this loop's parent",
                ),
                None => self.element_error(
                    seg,
                    2,
                    None,
                    734,
                    ik4::BAD_CODE,
                    false,
                    "X032",
                    "HL02 points to an HL id that does not precede it",
                ),
            }
        }
        if !hl.id.is_empty()
            && self
                .hl_by_id
                .insert(hl.id.clone(), (l, hl.level.clone()))
                .is_some()
        {
            self.element_error(
                seg,
                1,
                None,
                628,
                ik4::BAD_CODE,
                false,
                "X034",
                "HL01 repeats an earlier hierarchical id",
            );
        }
        self.out.loops[l].items.push(Item::Segment(seg));
        match parent_loop {
            Some(p) => self.out.loops[p].items.push(Item::Loop(l)),
            None => self.out.top.push(Item::Loop(l)),
        }
    }

    fn on_nm1(&mut self, seg: usize) {
        let Some(hl_loop) = self.current_hl else {
            self.segment_finding(
                seg,
                ik3::OUT_OF_SEQUENCE,
                None,
                "X037",
                "NM1 before the first HL",
            );
            self.out.top.push(Item::Segment(seg));
            return;
        };
        let level = self.out.loops[hl_loop]
            .hl
            .as_ref()
            .map(|h| h.level.clone())
            .unwrap_or_default();
        let entity = self.t.element(&self.t.segments[seg], 1).into_owned();
        let known = name_loop(&level, &entity);
        let id = known.unwrap_or_else(|| default_name_loop(&level));
        let l = self.new_loop(id, None);
        self.out.loops[l].items.push(Item::Segment(seg));
        self.out.loops[hl_loop].items.push(Item::Loop(l));
        self.current_name = Some(l);
        if known.is_none() {
            self.element_error(
                seg,
                1,
                None,
                98,
                if entity.is_empty() {
                    ik4::REQUIRED_MISSING
                } else {
                    ik4::BAD_CODE
                },
                true,
                "X035",
                "NM101 entity code is not valid in this loop",
            );
        }
    }

    fn check_values(&mut self, seg: usize) {
        let s = &self.t.segments[seg];
        match s.id.as_str() {
            "BHT" => {
                self.check_code(seg, 2, 353, &["11", "13"], true);
                self.check_code(seg, 6, 640, &["18", "19", "RU"], false);
                if self.t.element(s, 3).is_empty() {
                    self.check_code(seg, 3, 127, &[], true);
                }
            }
            "DTP" => {
                self.check_code(seg, 2, 1250, &["D8", "RD8"], true);
                let format = self.t.element(s, 2);
                let value = self.t.element(s, 3);
                let ok = match format.as_ref() {
                    "D8" => valid_date(&value) && value.len() == 8,
                    "RD8" => value.split_once('-').is_some_and(|(a, b)| {
                        a.len() == 8 && b.len() == 8 && valid_date(a) && valid_date(b) && a <= b
                    }),
                    _ => true,
                };
                if !ok {
                    self.element_error(
                        seg,
                        3,
                        None,
                        1251,
                        ik4::BAD_DATE,
                        false,
                        "X038",
                        "DTP03 is not a valid date for its format",
                    );
                }
            }
            "HI" => {
                for (i, element) in s.elements.iter().enumerate() {
                    for rep in &element.repetitions {
                        let Some(q) = rep.first() else { continue };
                        let qualifier = self.t.text(*q);
                        if qualifier.is_empty() && rep.len() == 1 {
                            continue;
                        }
                        if !HI_QUALIFIERS.contains(&qualifier.as_ref()) {
                            self.element_error(
                                seg,
                                i + 1,
                                Some(1),
                                1270,
                                ik4::BAD_CODE,
                                true,
                                "X035",
                                "HI code list qualifier is not a known diagnosis qualifier",
                            );
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn on_segment(&mut self, seg: usize) {
        let id = self.t.segments[seg].id.clone();
        match id.as_str() {
            "HL" => self.on_hl(seg),
            "NM1" => self.on_nm1(seg),
            _ if !SEGMENTS_278.contains(&id.as_str()) => {
                let valid_id = (2..=3).contains(&id.len())
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                let code = if valid_id {
                    ik3::NOT_IN_SET
                } else {
                    ik3::UNRECOGNIZED
                };
                self.segment_finding(
                    seg,
                    code,
                    None,
                    "X036",
                    "segment is not part of the 278 transaction set",
                );
                self.push_item(Item::Segment(seg));
            }
            "BHT" => {
                if self.current_hl.is_some() || !self.out.top.is_empty() {
                    self.segment_finding(
                        seg,
                        ik3::OUT_OF_SEQUENCE,
                        None,
                        "X037",
                        "BHT must directly follow ST",
                    );
                }
                self.out.purpose = self.t.element(&self.t.segments[seg], 2).into_owned();
                self.push_item(Item::Segment(seg));
            }
            _ => {
                if self.current_hl.is_none() {
                    self.segment_finding(
                        seg,
                        ik3::OUT_OF_SEQUENCE,
                        None,
                        "X037",
                        "segment before the first HL",
                    );
                    self.out.top.push(Item::Segment(seg));
                } else if self.current_name.is_some() && !NAME_LOOP_SEGMENTS.contains(&id.as_str())
                {
                    // A 2000-level segment after the loop's name loops: keep it
                    // in the 2000 loop, but it is out of sequence.
                    self.segment_finding(
                        seg,
                        ik3::OUT_OF_SEQUENCE,
                        None,
                        "X037",
                        "segment after a name loop belongs before it",
                    );
                    self.current_name = None;
                    self.push_item(Item::Segment(seg));
                } else {
                    self.push_item(Item::Segment(seg));
                }
            }
        }
        self.check_values(seg);
    }
}

/// Builds the loops of one 278 transaction set and checks its structure.
pub fn build_278(
    t: &Tokens<'_>,
    tx: &TransactionSet,
    group: usize,
    set: usize,
) -> (Transaction278, Vec<Finding>) {
    let mut b = Builder {
        t,
        tx,
        group,
        set,
        out: Transaction278::default(),
        findings: Vec::new(),
        hl_by_id: HashMap::new(),
        current_hl: None,
        current_name: None,
    };
    let body = tx.body.clone();
    let first_is_bht = t.segments.get(body.start).is_some_and(|s| s.id == "BHT");
    if !first_is_bht {
        let ack = AckCode::Segment {
            group,
            set,
            segment_id: "BHT".into(),
            position: 2,
            loop_id: None,
            code: ik3::REQUIRED_MISSING,
            element: None,
        };
        let span = t.segments.get(tx.st).map(|s| s.span);
        b.findings
            .push(Finding::error("X031", "BHT is missing after ST", span, ack));
    }
    for seg in body {
        if seg < t.segments.len() {
            b.on_segment(seg);
        }
    }
    if b.out.loops.iter().all(|l| l.id != "2000A") {
        let ack = AckCode::Segment {
            group,
            set,
            segment_id: "HL".into(),
            position: 3,
            loop_id: Some("2000A".into()),
            code: ik3::REQUIRED_MISSING,
            element: None,
        };
        let span = t.segments.get(tx.st).map(|s| s.span);
        b.findings.push(Finding::error(
            "X033",
            "the 2000A (UMO) loop is missing",
            span,
            ack,
        ));
    }
    (b.out, b.findings)
}

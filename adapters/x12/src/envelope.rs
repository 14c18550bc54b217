//! The ISA/GS/ST envelope: structure and control-number checks.
//!
//! The envelope is what the 999 and TA1 acknowledge, so its checks map one to
//! one onto acknowledgment codes: ISA13 = IEA02 (TA1 001), IEA01 = number of
//! groups (TA1 021), GS06 = GE02 (AK905 4), GE01 = number of sets (AK905 5),
//! ST02 = SE02 (IK502 3), SE01 = segments from ST through SE (IK502 4), and the
//! missing-trailer cases (TA1 023, AK905 3, IK502 2). Nothing here knows about
//! the 278; [`crate::loops`] builds the loops inside each set.

use std::collections::HashSet;
use std::ops::Range;

use gateway_core::Span;

use crate::codes::{AckCode, Finding, ak9, ik5, ta1};
use crate::token::{RawSegment, Tokens};

/// Facts read from the ISA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IsaHeader {
    /// ISA05 sender id qualifier.
    pub sender_qualifier: String,
    /// ISA06 sender id (trimmed).
    pub sender_id: String,
    /// ISA07 receiver id qualifier.
    pub receiver_qualifier: String,
    /// ISA08 receiver id (trimmed).
    pub receiver_id: String,
    /// ISA09 date, YYMMDD.
    pub date: String,
    /// ISA10 time, HHMM.
    pub time: String,
    /// ISA12 version.
    pub version: String,
    /// ISA13 interchange control number.
    pub control_number: String,
    /// ISA14 = 1: the sender asks for a TA1.
    pub ack_requested: bool,
    /// ISA15 usage indicator (`P` production, `T` test).
    pub usage: String,
}

/// One functional group (GS..GE).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// Index of the GS segment.
    pub gs: usize,
    /// Index of the GE segment, when present.
    pub ge: Option<usize>,
    /// GS01 functional identifier (`HI` for 278, `FA` for 999).
    pub functional_id: String,
    /// GS02 application sender code.
    pub sender: String,
    /// GS03 application receiver code.
    pub receiver: String,
    /// GS06 group control number.
    pub control_number: String,
    /// GS08 version / implementation reference.
    pub version: String,
    /// The transaction sets of the group.
    pub transactions: Vec<TransactionSet>,
}

/// One transaction set (ST..SE).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionSet {
    /// Index of the ST segment.
    pub st: usize,
    /// Index of the SE segment, when present.
    pub se: Option<usize>,
    /// ST01 (`278`, `999`).
    pub set_id: String,
    /// ST02 control number.
    pub control_number: String,
    /// ST03 implementation convention reference (`005010X217`).
    pub implementation: String,
    /// Indices of the segments strictly between ST and SE.
    pub body: Range<usize>,
}

/// The envelope of one interchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interchange {
    /// What the ISA says.
    pub header: IsaHeader,
    /// The groups, in order.
    pub groups: Vec<Group>,
    /// Index of the IEA, when present.
    pub iea: Option<usize>,
    /// Indices of TA1 segments (interchange acknowledgments sit outside groups).
    pub ta1: Vec<usize>,
}

fn isa_header(t: &Tokens<'_>) -> IsaHeader {
    let Some(isa) = t.segments.first() else {
        return IsaHeader::default();
    };
    let e = |n| t.element(isa, n).trim().to_owned();
    IsaHeader {
        sender_qualifier: e(5),
        sender_id: e(6),
        receiver_qualifier: e(7),
        receiver_id: e(8),
        date: e(9),
        time: e(10),
        version: e(12),
        control_number: e(13),
        ack_requested: e(14) == "1",
        usage: e(15),
    }
}

fn all_digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// True for a valid YYMMDD or CCYYMMDD date.
pub fn valid_date(s: &str) -> bool {
    let (year_len, ok_len) = match s.len() {
        6 => (2, true),
        8 => (4, true),
        _ => (0, false),
    };
    if !ok_len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let month: u32 = s[year_len..year_len + 2].parse().unwrap_or(0);
    let day: u32 = s[year_len + 2..year_len + 4].parse().unwrap_or(0);
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

fn valid_time(s: &str) -> bool {
    if !(s.len() == 4 || s.len() == 6 || s.len() == 8) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let hh: u32 = s[..2].parse().unwrap_or(99);
    let mm: u32 = s[2..4].parse().unwrap_or(99);
    hh < 24 && mm < 60
}

/// Checks the ISA fields (the tokenizer already validated the delimiters).
fn check_isa(t: &Tokens<'_>, h: &IsaHeader, findings: &mut Vec<Finding>) {
    let Some(isa) = t.segments.first() else {
        return;
    };
    let span_of = |n: usize| isa.elements.get(n - 1).map_or(isa.span, |e| e.span);
    let mut err = |note, message: &str, n| {
        findings.push(Finding::error(
            "X021",
            message,
            Some(span_of(n)),
            AckCode::Interchange { note },
        ));
    };
    if isa.elements.len() < 16 {
        err(
            ta1::BAD_CONTROL_STRUCTURE,
            "ISA has fewer than 16 elements",
            isa.elements.len().max(1),
        );
        return;
    }
    if h.sender_id.is_empty() {
        err(ta1::BAD_SENDER_ID, "ISA06 sender id is empty", 6);
    }
    if h.receiver_id.is_empty() {
        err(ta1::BAD_RECEIVER_ID, "ISA08 receiver id is empty", 8);
    }
    if !(h.date.len() == 6 && valid_date(&h.date)) {
        err(ta1::BAD_DATE, "ISA09 is not a valid YYMMDD date", 9);
    }
    if !(h.time.len() == 4 && valid_time(&h.time)) {
        err(ta1::BAD_TIME, "ISA10 is not a valid HHMM time", 10);
    }
    if !all_digits(&h.control_number, 9, 9) {
        err(
            ta1::BAD_CONTROL_NUMBER,
            "ISA13 is not a 9-digit control number",
            13,
        );
    }
    let ack = t.element(isa, 14);
    if !matches!(ack.trim(), "0" | "1") {
        err(ta1::BAD_ACK_REQUESTED, "ISA14 is neither 0 nor 1", 14);
    }
    if !matches!(h.usage.as_str(), "P" | "T") {
        err(ta1::BAD_TEST_INDICATOR, "ISA15 is neither P nor T", 15);
    }
    if !all_digits(&h.version, 5, 5) {
        err(ta1::BAD_VERSION, "ISA12 is not a 5-digit version", 12);
    } else if h.version != "00501" {
        findings.push(Finding::warning(
            "X021",
            "ISA12 is not 00501; read with the 005010 rules",
            Some(span_of(12)),
            AckCode::Interchange {
                note: ta1::BAD_VERSION,
            },
        ));
    }
}

struct Walker<'t, 'a> {
    t: &'t Tokens<'a>,
    findings: Vec<Finding>,
    groups: Vec<Group>,
    group: Option<Group>,
    tx: Option<TransactionSet>,
    seen_st: HashSet<String>,
}

impl Walker<'_, '_> {
    fn seg(&self, i: usize) -> &RawSegment {
        &self.t.segments[i]
    }

    fn group_index(&self) -> usize {
        self.groups.len()
    }

    fn set_index(&self) -> usize {
        self.group.as_ref().map_or(0, |g| g.transactions.len())
    }

    fn tx_error(&mut self, code: &'static str, diag: &str, message: &str, span: Span) {
        let ack = AckCode::Transaction {
            group: self.group_index(),
            set: self.set_index(),
            code,
        };
        self.findings
            .push(Finding::error(diag, message, Some(span), ack));
    }

    fn open_tx(&mut self, i: usize) {
        let st = self.seg(i);
        let set_id = self.t.element(st, 1).into_owned();
        let control_number = self.t.element(st, 2).into_owned();
        let implementation = self.t.element(st, 3).into_owned();
        let span = st.span;
        if set_id.is_empty() {
            self.tx_error(ik5::BAD_SET_ID, "X017", "ST01 is empty", span);
        }
        if !(4..=9).contains(&control_number.len()) {
            self.tx_error(
                ik5::BAD_CONTROL_NUMBER,
                "X017",
                "ST02 is not a 4 to 9 character control number",
                span,
            );
        } else if !self.seen_st.insert(control_number.clone()) {
            self.tx_error(
                ik5::CONTROL_NOT_UNIQUE,
                "X023",
                "ST02 repeats a control number already used in this group",
                span,
            );
        }
        self.tx = Some(TransactionSet {
            st: i,
            se: None,
            set_id,
            control_number,
            implementation,
            body: i + 1..i + 1,
        });
    }

    /// Closes the open set at SE index `se`, or as missing its trailer.
    fn close_tx(&mut self, se: Option<usize>, end: usize) {
        let Some(mut tx) = self.tx.take() else {
            return;
        };
        tx.body = tx.st + 1..end;
        match se {
            Some(i) => {
                tx.se = Some(i);
                let t = self.t;
                let seg = &t.segments[i];
                let count = self.t.element(seg, 1).into_owned();
                let control = self.t.element(seg, 2).into_owned();
                let span = seg.span;
                let actual = i - tx.st + 1;
                if count.parse::<usize>().ok() != Some(actual) {
                    self.tx_error(
                        ik5::COUNT_MISMATCH,
                        "X018",
                        &format!(
                            "SE01 says {} segments but ST..SE holds {actual}",
                            if count.is_empty() {
                                "no number of"
                            } else {
                                &count
                            }
                        ),
                        span,
                    );
                }
                if control != tx.control_number {
                    self.tx_error(
                        ik5::CONTROL_MISMATCH,
                        "X017",
                        "SE02 does not match ST02",
                        span,
                    );
                }
            }
            None => {
                let span = self.seg(tx.st).span;
                self.tx_error(
                    ik5::TRAILER_MISSING,
                    "X019",
                    "transaction set has no SE trailer",
                    span,
                );
            }
        }
        if let Some(g) = self.group.as_mut() {
            g.transactions.push(tx);
        }
    }

    fn open_group(&mut self, i: usize) {
        let gs = self.seg(i);
        let e = |n| self.t.element(gs, n).into_owned();
        let group = Group {
            gs: i,
            ge: None,
            functional_id: e(1),
            sender: e(2),
            receiver: e(3),
            control_number: e(6),
            version: e(8),
            transactions: Vec::new(),
        };
        let span = gs.span;
        let gi = self.group_index();
        if !all_digits(&group.control_number, 1, 9) {
            self.findings.push(Finding::error(
                "X014",
                "GS06 is not a 1 to 9 digit control number",
                Some(span),
                AckCode::Group {
                    group: gi,
                    code: ak9::BAD_CONTROL_NUMBER,
                },
            ));
        }
        if !group.version.starts_with("005010") {
            self.findings.push(Finding::error(
                "X014",
                "GS08 is not a 005010 version",
                Some(span),
                AckCode::Group {
                    group: gi,
                    code: ak9::VERSION_NOT_SUPPORTED,
                },
            ));
        }
        self.seen_st.clear();
        self.group = Some(group);
    }

    fn close_group(&mut self, ge: Option<usize>) {
        let Some(mut g) = self.group.take() else {
            return;
        };
        let gi = self.group_index();
        match ge {
            Some(i) => {
                g.ge = Some(i);
                let t = self.t;
                let seg = &t.segments[i];
                let count = self.t.element(seg, 1);
                let control = self.t.element(seg, 2);
                if count.parse::<usize>().ok() != Some(g.transactions.len()) {
                    self.findings.push(Finding::error(
                        "X015",
                        format!(
                            "GE01 does not match the {} transaction sets in the group",
                            g.transactions.len()
                        ),
                        Some(seg.span),
                        AckCode::Group {
                            group: gi,
                            code: ak9::COUNT_MISMATCH,
                        },
                    ));
                }
                if control != g.control_number.as_str() {
                    self.findings.push(Finding::error(
                        "X014",
                        "GE02 does not match GS06",
                        Some(seg.span),
                        AckCode::Group {
                            group: gi,
                            code: ak9::CONTROL_MISMATCH,
                        },
                    ));
                }
            }
            None => {
                self.findings.push(Finding::error(
                    "X016",
                    "functional group has no GE trailer",
                    self.t.segments.get(g.gs).map(|s| s.span),
                    AckCode::Group {
                        group: gi,
                        code: ak9::TRAILER_MISSING,
                    },
                ));
            }
        }
        self.groups.push(g);
    }

    fn structure_error(&mut self, message: &str, span: Span) {
        self.findings.push(Finding::error(
            "X020",
            message,
            Some(span),
            AckCode::Interchange {
                note: ta1::BAD_CONTENT,
            },
        ));
    }
}

/// Reads the envelope of a tokenized interchange and checks every control
/// number and count. Segments outside any transaction set are findings.
pub fn read_envelope(t: &Tokens<'_>) -> (Interchange, Vec<Finding>) {
    let header = isa_header(t);
    let mut w = Walker {
        t,
        findings: Vec::new(),
        groups: Vec::new(),
        group: None,
        tx: None,
        seen_st: HashSet::new(),
    };
    check_isa(t, &header, &mut w.findings);
    let mut iea = None;
    let mut ta1_segments = Vec::new();
    let mut i = 1;
    while i < t.segments.len() {
        let id = t.segments[i].id.as_str();
        match id {
            "GS" => {
                if w.tx.is_some() {
                    w.close_tx(None, i);
                }
                if w.group.is_some() {
                    w.close_group(None);
                }
                w.open_group(i);
            }
            "ST" => {
                if w.group.is_none() {
                    w.structure_error("ST outside a functional group", t.segments[i].span);
                    w.group = Some(Group {
                        gs: i,
                        ..Group::default()
                    });
                }
                if w.tx.is_some() {
                    w.close_tx(None, i);
                }
                w.open_tx(i);
            }
            "SE" if w.tx.is_some() => w.close_tx(Some(i), i),
            "GE" if w.group.is_some() => {
                if w.tx.is_some() {
                    w.close_tx(None, i);
                }
                w.close_group(Some(i));
            }
            "IEA" => {
                if w.tx.is_some() {
                    w.close_tx(None, i);
                }
                if w.group.is_some() {
                    w.close_group(None);
                }
                iea = Some(i);
                break;
            }
            _ if w.tx.is_some() => {}
            "TA1" if w.group.is_none() => ta1_segments.push(i),
            _ => {
                let message = if id == "ISA" {
                    "a second ISA: one interchange per input is supported"
                } else {
                    "segment outside a transaction set"
                };
                w.structure_error(message, t.segments[i].span);
            }
        }
        i += 1;
    }
    if w.tx.is_some() {
        w.close_tx(None, t.segments.len());
    }
    if w.group.is_some() {
        w.close_group(None);
    }
    match iea {
        Some(i) => {
            let seg = &t.segments[i];
            if t.element(seg, 1).parse::<usize>().ok() != Some(w.groups.len()) {
                w.findings.push(Finding::error(
                    "X012",
                    format!(
                        "IEA01 does not match the {} functional groups",
                        w.groups.len()
                    ),
                    Some(seg.span),
                    AckCode::Interchange {
                        note: ta1::BAD_GROUP_COUNT,
                    },
                ));
            }
            if t.element(seg, 2).trim() != header.control_number {
                w.findings.push(Finding::error(
                    "X011",
                    "IEA02 does not match ISA13",
                    Some(seg.span),
                    AckCode::Interchange {
                        note: ta1::CONTROL_MISMATCH,
                    },
                ));
            }
            if let Some(extra) = t.segments.get(i + 1) {
                w.findings.push(Finding::error(
                    "X022",
                    "data after IEA",
                    Some(extra.span),
                    AckCode::Interchange {
                        note: ta1::BAD_CONTENT,
                    },
                ));
            }
        }
        None => {
            let end = t.input.len();
            w.findings.push(Finding::error(
                "X013",
                "interchange has no IEA trailer",
                Some(Span::new(end, end)),
                AckCode::Interchange {
                    note: ta1::PREMATURE_EOF,
                },
            ));
        }
    }
    (
        Interchange {
            header,
            groups: w.groups,
            iea,
            ta1: ta1_segments,
        },
        w.findings,
    )
}

//! 999 and TA1: generated for what we receive, parsed for what we get back.
//!
//! Generation reads the [`Finding`]s of a parsed interchange, so every check in
//! the tokenizer, envelope and loop builder is answered with the code it was
//! mapped to:
//!
//! * an interchange-level **error** (TA105 note) → a TA1 with `R` and no 999
//!   (the groups were not processed);
//! * otherwise a 999 (005010X231A1) with one AK1/AK9 per received group, one
//!   AK2/IK5 per set, IK3 (+ IK4) per segment finding, IK502 codes per set
//!   finding, AK905 codes per group finding — plus a TA1 `A` when ISA14 = 1.
//!
//! IK5: `R` when the set has an error, `E` when only warnings, else `A`.
//! AK9: `R` on a group-level error or when no set was accepted, `P` when some
//! were, `E` when all were but some with warnings, else `A`.

use gateway_core::GatewayError;

use crate::codes::{AckCode, Finding};
use crate::envelope::IsaHeader;
use crate::token::{Delimiters, Tokens};
use crate::tree::{Parsed, parse_interchange};
use crate::write::{
    ControlKind, ControlNumbers, EnvelopeParams, GroupOut, Seg, SegmentWriter, Stamp, isa_control,
};

/// The 999 implementation reference.
pub const X231: &str = "005010X231A1";

/// What we send back for one received interchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acknowledgment {
    /// The TA1 interchange, when the interchange failed or ISA14 asked for one.
    pub ta1: Option<Vec<u8>>,
    /// The 999 interchange, when the interchange could be read.
    pub functional: Option<Vec<u8>>,
    /// Overall verdict: `A`, `E`, `P` or `R` (AK9 of the first group, or the TA1 code).
    pub verdict: char,
}

/// How our acknowledgments are addressed when the received ISA cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckIdentity {
    /// Our ISA05/ISA06 when the received ISA08 is unreadable.
    pub qualifier: String,
    /// Our interchange id.
    pub id: String,
    /// Write a newline after each segment terminator.
    pub newlines: bool,
}

impl Default for AckIdentity {
    fn default() -> Self {
        AckIdentity {
            qualifier: "ZZ".into(),
            id: "EHRGATEWAY".into(),
            newlines: true,
        }
    }
}

fn reply_envelope(
    h: &IsaHeader,
    me: &AckIdentity,
    d: Delimiters,
    group: Option<(&str, &str)>,
) -> EnvelopeParams {
    let pick = |v: &str, fallback: &str| {
        if v.is_empty() {
            fallback.to_owned()
        } else {
            v.to_owned()
        }
    };
    EnvelopeParams {
        sender_qualifier: pick(&h.receiver_qualifier, &me.qualifier),
        sender_id: pick(&h.receiver_id, &me.id),
        receiver_qualifier: pick(&h.sender_qualifier, "ZZ"),
        receiver_id: pick(&h.sender_id, "UNKNOWN"),
        application_sender: group.map_or_else(|| me.id.clone(), |g| pick(g.1, &me.id)),
        application_receiver: group.map_or_else(|| "UNKNOWN".into(), |g| pick(g.0, "UNKNOWN")),
        usage: if h.usage == "P" { 'P' } else { 'T' },
        ack_requested: false,
        delimiters: d,
        newlines: me.newlines,
    }
}

/// Writes a TA1 interchange (no groups, IEA01 = 0).
pub fn write_ta1(
    h: &IsaHeader,
    code: char,
    note: &str,
    me: &AckIdentity,
    d: Delimiters,
    numbers: &dyn ControlNumbers,
    stamp: &Stamp,
) -> Result<Vec<u8>, GatewayError> {
    let p = reply_envelope(h, me, d, None);
    let ctl = isa_control(numbers.next(ControlKind::Interchange)?);
    let mut w = SegmentWriter::new(d, me.newlines);
    w.isa(&p, &ctl, stamp);
    let or = |v: &str, f: &str| {
        if v.is_empty() {
            f.to_owned()
        } else {
            v.to_owned()
        }
    };
    w.segment(
        &Seg::new("TA1")
            .e(or(&h.control_number, "000000000"))
            .e(or(&h.date, &stamp.yymmdd()))
            .e(or(&h.time, &stamp.hhmm()))
            .e(code.to_string())
            .e(note),
    );
    w.segment(&Seg::new("IEA").e("0").e(&ctl));
    Ok(w.finish())
}

/// Reads whatever ISA fields exist in unparseable input (for a TA1 reply).
fn salvage_header(input: &[u8]) -> IsaHeader {
    let text = String::from_utf8_lossy(input);
    let start = text.find("ISA").unwrap_or(0);
    let rest = &text[start..];
    let Some(sep) = rest.chars().nth(3) else {
        return IsaHeader::default();
    };
    let parts: Vec<&str> = rest.split(sep).map(str::trim).collect();
    let get = |i: usize| parts.get(i).map(|s| (*s).to_owned()).unwrap_or_default();
    let digits = |s: String, n: usize| {
        if s.len() == n && s.bytes().all(|b| b.is_ascii_digit()) {
            s
        } else {
            String::new()
        }
    };
    IsaHeader {
        sender_qualifier: get(5),
        sender_id: get(6).chars().take(15).collect(),
        receiver_qualifier: get(7),
        receiver_id: get(8).chars().take(15).collect(),
        date: digits(get(9), 6),
        time: digits(get(10), 4),
        version: get(12),
        control_number: digits(get(13), 9),
        ack_requested: get(14) == "1",
        usage: get(15),
    }
}

/// Acknowledges one received interchange.
pub fn acknowledge(
    input: &[u8],
    me: &AckIdentity,
    numbers: &dyn ControlNumbers,
    stamp: &Stamp,
) -> Result<Acknowledgment, GatewayError> {
    match parse_interchange(input) {
        Ok(parsed) => acknowledge_parsed(&parsed, me, numbers, stamp),
        Err(findings) => {
            let note = findings
                .iter()
                .find_map(|f| match f.ack {
                    AckCode::Interchange { note } => Some(note),
                    _ => None,
                })
                .unwrap_or(crate::codes::ta1::BAD_CONTENT);
            let ta1 = write_ta1(
                &salvage_header(input),
                'R',
                note,
                me,
                Delimiters::default(),
                numbers,
                stamp,
            )?;
            Ok(Acknowledgment {
                ta1: Some(ta1),
                functional: None,
                verdict: 'R',
            })
        }
    }
}

/// Acknowledges an already parsed interchange.
pub fn acknowledge_parsed(
    parsed: &Parsed<'_>,
    me: &AckIdentity,
    numbers: &dyn ControlNumbers,
    stamp: &Stamp,
) -> Result<Acknowledgment, GatewayError> {
    let h = &parsed.interchange.header;
    let d = parsed.tokens.delimiters;
    let reject = parsed.findings.iter().find_map(|f| match f.ack {
        AckCode::Interchange { note } if f.is_error() => Some(note),
        _ => None,
    });
    if let Some(note) = reject {
        let ta1 = write_ta1(h, 'R', note, me, d, numbers, stamp)?;
        return Ok(Acknowledgment {
            ta1: Some(ta1),
            functional: None,
            verdict: 'R',
        });
    }
    let ta1 = if h.ack_requested {
        Some(write_ta1(h, 'A', "000", me, d, numbers, stamp)?)
    } else {
        None
    };
    // Acknowledgments are never acknowledged: FA groups (999s) are skipped.
    let groups: Vec<usize> = (0..parsed.interchange.groups.len())
        .filter(|&g| parsed.interchange.groups[g].functional_id != "FA")
        .collect();
    let Some(first) = groups.first().map(|&g| &parsed.interchange.groups[g]) else {
        return Ok(Acknowledgment {
            ta1,
            functional: None,
            verdict: 'A',
        });
    };
    let mut sets = Vec::new();
    let mut verdict = 'A';
    for (i, &gi) in groups.iter().enumerate() {
        let (body, status) = functional_body(parsed, gi);
        if i == 0 {
            verdict = status;
        }
        sets.push(body);
    }
    let p = reply_envelope(
        h,
        me,
        Delimiters::default(),
        Some((first.sender.as_str(), first.receiver.as_str())),
    );
    let (bytes, _) = crate::write::write_interchange(
        &p,
        &[GroupOut {
            functional_id: "FA".into(),
            version: X231.into(),
            set_id: "999".into(),
            sets,
        }],
        numbers,
        stamp,
    )?;
    Ok(Acknowledgment {
        ta1,
        functional: Some(bytes),
        verdict,
    })
}

/// The body of one 999 set acknowledging group `gi`, and its AK9 status.
fn functional_body(parsed: &Parsed<'_>, gi: usize) -> (Vec<Seg>, char) {
    let t: &Tokens<'_> = &parsed.tokens;
    let group = &parsed.interchange.groups[gi];
    let mut body = vec![
        Seg::new("AK1")
            .e(&group.functional_id)
            .e(&group.control_number)
            .e(&group.version),
    ];
    let mut accepted = 0usize;
    let mut any_warning = false;
    for (si, tx) in group.transactions.iter().enumerate() {
        let mut ak2 = Seg::new("AK2").e(&tx.set_id).e(&tx.control_number);
        if !tx.implementation.is_empty() {
            ak2 = ak2.e(&tx.implementation);
        }
        body.push(ak2);
        let mine: Vec<&Finding> = parsed
            .findings
            .iter()
            .filter(|f| match &f.ack {
                AckCode::Transaction { group, set, .. } | AckCode::Segment { group, set, .. } => {
                    *group == gi && *set == si
                }
                _ => false,
            })
            .collect();
        let mut segment_findings: Vec<&Finding> = mine
            .iter()
            .copied()
            .filter(|f| matches!(f.ack, AckCode::Segment { .. }))
            .collect();
        segment_findings.sort_by_key(|f| match &f.ack {
            AckCode::Segment { position, .. } => *position,
            _ => 0,
        });
        let mut segment_error = false;
        for f in &segment_findings {
            if let AckCode::Segment {
                segment_id,
                position,
                loop_id,
                code,
                element,
                ..
            } = &f.ack
            {
                segment_error |= f.is_error();
                body.push(
                    Seg::new("IK3")
                        .e(segment_id)
                        .e(position.to_string())
                        .e(loop_id.clone().unwrap_or_default())
                        .e(*code),
                );
                if let Some(e) = element {
                    let mut pos = vec![e.position.to_string()];
                    if let Some(c) = e.component {
                        pos.push(c.to_string());
                    }
                    body.push(Seg {
                        id: "IK4".into(),
                        elements: vec![
                            pos,
                            vec![e.reference.map(|r| r.to_string()).unwrap_or_default()],
                            vec![e.code.to_owned()],
                            vec![e.bad_value.clone().unwrap_or_default()],
                        ],
                    });
                }
            }
        }
        let mut codes: Vec<&str> = mine
            .iter()
            .filter_map(|f| match f.ack {
                AckCode::Transaction { code, .. } if f.is_error() => Some(code),
                _ => None,
            })
            .collect();
        if segment_error && !codes.contains(&"5") {
            codes.push("5");
        }
        codes.dedup();
        let has_error = mine.iter().any(|f| f.is_error());
        let status = if has_error {
            'R'
        } else if !mine.is_empty() {
            any_warning = true;
            'E'
        } else {
            'A'
        };
        if status != 'R' {
            accepted += 1;
        }
        let mut ik5 = Seg::new("IK5").e(status.to_string());
        for c in codes.iter().take(5) {
            ik5 = ik5.e(*c);
        }
        body.push(ik5);
    }
    let group_codes: Vec<&str> = parsed
        .findings
        .iter()
        .filter_map(|f| match f.ack {
            AckCode::Group { group, code } if group == gi && f.is_error() => Some(code),
            _ => None,
        })
        .collect();
    let received = group.transactions.len();
    let included = group
        .ge
        .and_then(|ge| t.segments.get(ge))
        .and_then(|ge| t.element(ge, 1).parse::<usize>().ok())
        .unwrap_or(received);
    let status = if !group_codes.is_empty() || (accepted == 0 && received > 0) {
        'R'
    } else if accepted < received {
        'P'
    } else if any_warning {
        'E'
    } else {
        'A'
    };
    let accepted_count = if group_codes.is_empty() { accepted } else { 0 };
    let mut ak9 = Seg::new("AK9")
        .e(status.to_string())
        .e(included.to_string())
        .e(received.to_string())
        .e(accepted_count.to_string());
    for c in group_codes.iter().take(5) {
        ak9 = ak9.e(*c);
    }
    body.push(ak9);
    (body, status)
}

/// A TA1 we received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ta1 {
    /// TA101: the ISA13 acknowledged.
    pub control_number: String,
    /// TA102 date.
    pub date: String,
    /// TA103 time.
    pub time: String,
    /// TA104: `A`, `E` or `R`.
    pub ack_code: String,
    /// TA105 note code.
    pub note_code: String,
}

/// One IK4 we received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementAck {
    /// IK401-1.
    pub position: String,
    /// IK401-2.
    pub component: Option<String>,
    /// IK402.
    pub reference: Option<String>,
    /// IK403.
    pub code: String,
    /// IK404.
    pub bad_value: Option<String>,
}

/// One IK3 (with its IK4s) we received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentAck {
    /// IK301.
    pub segment_id: String,
    /// IK302.
    pub position: String,
    /// IK303.
    pub loop_id: Option<String>,
    /// IK304.
    pub code: String,
    /// The IK4s after it.
    pub elements: Vec<ElementAck>,
}

/// One AK2..IK5 we received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAck {
    /// AK201.
    pub set_id: String,
    /// AK202: the ST02 acknowledged.
    pub control_number: String,
    /// AK203.
    pub implementation: Option<String>,
    /// IK501: `A`, `E`, `M`, `R`, `W`, `X`.
    pub status: String,
    /// IK502..IK506.
    pub codes: Vec<String>,
    /// IK3 loops.
    pub segments: Vec<SegmentAck>,
}

/// One AK1..AK9 we received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAck {
    /// AK101.
    pub functional_id: String,
    /// AK102: the GS06 acknowledged.
    pub control_number: String,
    /// AK103.
    pub version: Option<String>,
    /// The AK2 loops.
    pub sets: Vec<SetAck>,
    /// AK901: `A`, `E`, `M`, `P`, `R`, `W`, `X`.
    pub status: String,
    /// AK902 number of sets included.
    pub included: Option<u32>,
    /// AK903 number received.
    pub received: Option<u32>,
    /// AK904 number accepted.
    pub accepted: Option<u32>,
    /// AK905..AK909.
    pub codes: Vec<String>,
}

impl GroupAck {
    /// True for AK9 `A` or `E` (accepted, possibly with errors noted).
    pub fn is_accepted(&self) -> bool {
        matches!(self.status.as_str(), "A" | "E")
    }
}

/// Every acknowledgment found in one received interchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedAcks {
    /// TA1 segments.
    pub ta1: Vec<Ta1>,
    /// 999 groups (AK1..AK9), over all 999 sets.
    pub functional: Vec<GroupAck>,
    /// Envelope problems of the acknowledgment itself.
    pub findings: Vec<Finding>,
}

/// Parses 999s and TA1s from a received interchange.
pub fn parse_acks(input: &[u8]) -> Result<ReceivedAcks, Vec<Finding>> {
    let parsed = parse_interchange(input)?;
    let t = &parsed.tokens;
    let mut out = ReceivedAcks {
        findings: parsed.findings.clone(),
        ..ReceivedAcks::default()
    };
    let opt = |s: std::borrow::Cow<'_, str>| (!s.is_empty()).then(|| s.into_owned());
    for &i in &parsed.interchange.ta1 {
        let s = &t.segments[i];
        out.ta1.push(Ta1 {
            control_number: t.element(s, 1).into_owned(),
            date: t.element(s, 2).into_owned(),
            time: t.element(s, 3).into_owned(),
            ack_code: t.element(s, 4).into_owned(),
            note_code: t.element(s, 5).into_owned(),
        });
    }
    for set in parsed.sets.iter().filter(|s| s.envelope.set_id == "999") {
        let mut group: Option<GroupAck> = None;
        for i in set.envelope.body.clone() {
            let Some(s) = t.segments.get(i) else { continue };
            let e = |n| t.element(s, n).into_owned();
            match s.id.as_str() {
                "AK1" => {
                    if let Some(g) = group.take() {
                        out.functional.push(g);
                    }
                    group = Some(GroupAck {
                        functional_id: e(1),
                        control_number: e(2),
                        version: opt(t.element(s, 3)),
                        sets: Vec::new(),
                        status: String::new(),
                        included: None,
                        received: None,
                        accepted: None,
                        codes: Vec::new(),
                    });
                }
                "AK2" => {
                    if let Some(g) = group.as_mut() {
                        g.sets.push(SetAck {
                            set_id: e(1),
                            control_number: e(2),
                            implementation: opt(t.element(s, 3)),
                            status: String::new(),
                            codes: Vec::new(),
                            segments: Vec::new(),
                        });
                    }
                }
                "IK3" => {
                    if let Some(set) = group.as_mut().and_then(|g| g.sets.last_mut()) {
                        set.segments.push(SegmentAck {
                            segment_id: e(1),
                            position: e(2),
                            loop_id: opt(t.element(s, 3)),
                            code: e(4),
                            elements: Vec::new(),
                        });
                    }
                }
                "IK4" => {
                    if let Some(seg) = group
                        .as_mut()
                        .and_then(|g| g.sets.last_mut())
                        .and_then(|s| s.segments.last_mut())
                    {
                        seg.elements.push(ElementAck {
                            position: t.component(s, 1, 1).into_owned(),
                            component: opt(t.component(s, 1, 2)),
                            reference: opt(t.element(s, 2)),
                            code: e(3),
                            bad_value: opt(t.element(s, 4)),
                        });
                    }
                }
                "IK5" => {
                    if let Some(set) = group.as_mut().and_then(|g| g.sets.last_mut()) {
                        set.status = e(1);
                        set.codes = (2..=6).map(e).filter(|c| !c.is_empty()).collect();
                    }
                }
                "AK9" => {
                    if let Some(g) = group.as_mut() {
                        g.status = e(1);
                        g.included = e(2).parse().ok();
                        g.received = e(3).parse().ok();
                        g.accepted = e(4).parse().ok();
                        g.codes = (5..=9).map(e).filter(|c| !c.is_empty()).collect();
                    }
                }
                _ => {}
            }
        }
        if let Some(g) = group.take() {
            out.functional.push(g);
        }
    }
    Ok(out)
}

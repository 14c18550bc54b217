//! Writing X12: segments, the fixed-width ISA, and envelopes whose counts and
//! control numbers are always right.
//!
//! Callers build [`Seg`]s and hand whole transaction sets to
//! [`write_interchange`], which adds ST/SE (SE01 counted), GS/GE (GE01 counted),
//! ISA/IEA (IEA01 counted, ISA13 = IEA02) with control numbers from a
//! caller-supplied [`ControlNumbers`] source — in the daemon a
//! [`crate::control::Reserved`] pool allocated durably from the store (see
//! [`crate::control`]); [`MemoryControlNumbers`] serves tests and the CLI.
//!
//! X12 has no escapes: a value containing a delimiter would corrupt the
//! interchange, so the writer replaces delimiter bytes inside values with a
//! space (the data is synthetic or names/ids, where this is the conventional
//! scrub) and trailing empty elements/components are dropped as X12 requires.

use std::sync::atomic::{AtomicU64, Ordering};

use gateway_core::GatewayError;

use crate::token::Delimiters;

/// Which control number an allocation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    /// ISA13 / IEA02 (9 digits).
    Interchange,
    /// GS06 / GE02 (up to 9 digits).
    Group,
    /// ST02 / SE02 (4–9 characters).
    Transaction,
}

impl ControlKind {
    /// Lowercase name (for the store's counter table).
    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::Interchange => "interchange",
            ControlKind::Group => "group",
            ControlKind::Transaction => "transaction",
        }
    }
}

/// Hands out control numbers one at a time while an interchange is written.
/// Implementations must never hand out the same number twice for a kind (the
/// daemon's numbers come from a durable [`crate::control::reserve`]).
pub trait ControlNumbers: Send + Sync {
    /// The next number for `kind`, starting at 1.
    fn next(&self, kind: ControlKind) -> Result<u64, GatewayError>;
}

/// An in-memory allocator (tests, CLI output that is never sent).
#[derive(Debug, Default)]
pub struct MemoryControlNumbers {
    counters: [AtomicU64; 3],
}

impl MemoryControlNumbers {
    /// Counters starting at 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters that continue after `start` (the next number is `start + 1`).
    pub fn starting_after(start: u64) -> Self {
        MemoryControlNumbers {
            counters: [
                AtomicU64::new(start),
                AtomicU64::new(start),
                AtomicU64::new(start),
            ],
        }
    }
}

impl ControlNumbers for MemoryControlNumbers {
    fn next(&self, kind: ControlKind) -> Result<u64, GatewayError> {
        let i = match kind {
            ControlKind::Interchange => 0,
            ControlKind::Group => 1,
            ControlKind::Transaction => 2,
        };
        let n = self.counters[i].fetch_add(1, Ordering::SeqCst);
        Ok(n % crate::control::MAX_CONTROL_NUMBER + 1)
    }
}

/// One segment to write: an id and elements, each a list of components.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seg {
    /// Segment id.
    pub id: String,
    /// Elements; each element is its components (one for a simple element).
    pub elements: Vec<Vec<String>>,
}

impl Seg {
    /// A segment with no elements yet.
    pub fn new(id: &str) -> Self {
        Seg {
            id: id.to_owned(),
            elements: Vec::new(),
        }
    }

    /// Appends a simple element.
    pub fn e(mut self, value: impl Into<String>) -> Self {
        self.elements.push(vec![value.into()]);
        self
    }

    /// Appends a composite element.
    pub fn c(mut self, components: &[&str]) -> Self {
        self.elements
            .push(components.iter().map(|c| (*c).to_owned()).collect());
        self
    }
}

/// Interchange-level parameters of an outbound interchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeParams {
    /// ISA05.
    pub sender_qualifier: String,
    /// ISA06.
    pub sender_id: String,
    /// ISA07.
    pub receiver_qualifier: String,
    /// ISA08.
    pub receiver_id: String,
    /// GS02 application sender code.
    pub application_sender: String,
    /// GS03 application receiver code.
    pub application_receiver: String,
    /// ISA15: `P` or `T`.
    pub usage: char,
    /// ISA14: ask for a TA1.
    pub ack_requested: bool,
    /// Delimiters to write with.
    pub delimiters: Delimiters,
    /// Put a newline after each terminator (readable files; not for SOAP).
    pub newlines: bool,
}

impl Default for EnvelopeParams {
    fn default() -> Self {
        EnvelopeParams {
            sender_qualifier: "ZZ".into(),
            sender_id: "EHRGATEWAY".into(),
            receiver_qualifier: "ZZ".into(),
            receiver_id: "PAYER".into(),
            application_sender: "EHRGATEWAY".into(),
            application_receiver: "PAYER".into(),
            usage: 'T',
            ack_requested: false,
            delimiters: Delimiters::default(),
            newlines: true,
        }
    }
}

/// One functional group to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOut {
    /// GS01 (`HI`, `FA`).
    pub functional_id: String,
    /// GS08 and ST03 (`005010X217`, `005010X231A1`).
    pub version: String,
    /// ST01 of every set (`278`, `999`).
    pub set_id: String,
    /// The body of each set (between ST and SE).
    pub sets: Vec<Vec<Seg>>,
}

/// Date and time stamped into ISA09/ISA10 and GS04/GS05.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Calendar date and wall time.
    pub at: jiff::civil::DateTime,
}

impl Stamp {
    /// The current UTC time.
    pub fn now() -> Self {
        Stamp {
            at: jiff::Timestamp::now()
                .to_zoned(jiff::tz::TimeZone::UTC)
                .datetime(),
        }
    }

    /// YYMMDD.
    pub fn yymmdd(&self) -> String {
        self.at.strftime("%y%m%d").to_string()
    }

    /// CCYYMMDD.
    pub fn ccyymmdd(&self) -> String {
        self.at.strftime("%Y%m%d").to_string()
    }

    /// HHMM.
    pub fn hhmm(&self) -> String {
        self.at.strftime("%H%M").to_string()
    }
}

/// Serializes segments with one set of delimiters.
#[derive(Debug, Clone)]
pub struct SegmentWriter {
    d: Delimiters,
    newlines: bool,
    out: Vec<u8>,
}

impl SegmentWriter {
    /// A writer for `d`.
    pub fn new(d: Delimiters, newlines: bool) -> Self {
        SegmentWriter {
            d,
            newlines,
            out: Vec::with_capacity(2048),
        }
    }

    fn scrub(&self, value: &str, out: &mut Vec<u8>) {
        for &b in value.as_bytes() {
            let is_delim = b == self.d.element
                || b == self.d.component
                || b == self.d.segment
                || Some(b) == self.d.repetition
                || b == b'\r'
                || b == b'\n';
            out.push(if is_delim { b' ' } else { b });
        }
    }

    /// Writes one segment (trailing empty elements and components dropped).
    pub fn segment(&mut self, seg: &Seg) {
        let mut elements: Vec<&Vec<String>> = seg.elements.iter().collect();
        while elements
            .last()
            .is_some_and(|e| e.iter().all(|c| c.is_empty()))
        {
            elements.pop();
        }
        let mut buf = Vec::with_capacity(64);
        self.scrub(&seg.id, &mut buf);
        for e in elements {
            buf.push(self.d.element);
            let mut comps: Vec<&String> = e.iter().collect();
            while comps.len() > 1 && comps.last().is_some_and(|c| c.is_empty()) {
                comps.pop();
            }
            for (i, c) in comps.iter().enumerate() {
                if i > 0 {
                    buf.push(self.d.component);
                }
                self.scrub(c, &mut buf);
            }
        }
        self.out.extend_from_slice(&buf);
        self.terminate();
    }

    fn terminate(&mut self) {
        self.out.push(self.d.segment);
        if self.newlines && self.d.segment != b'\n' {
            self.out.push(b'\n');
        }
    }

    /// Writes a fixed-width ISA (106 bytes with its terminator).
    pub fn isa(&mut self, p: &EnvelopeParams, control: &str, stamp: &Stamp) {
        let d = self.d;
        let fixed = |s: &str, n: usize| -> String {
            let mut v: String = s.chars().filter(|c| c.is_ascii()).take(n).collect();
            while v.len() < n {
                v.push(' ');
            }
            v
        };
        let rep = d.repetition.unwrap_or(b'^') as char;
        let e = d.element as char;
        let isa = format!(
            "ISA{e}00{e}{}{e}00{e}{}{e}{}{e}{}{e}{}{e}{}{e}{}{e}{}{e}{rep}{e}00501{e}{}{e}{}{e}{}{e}{}",
            fixed("", 10),
            fixed("", 10),
            fixed(&p.sender_qualifier, 2),
            fixed(&p.sender_id, 15),
            fixed(&p.receiver_qualifier, 2),
            fixed(&p.receiver_id, 15),
            stamp.yymmdd(),
            stamp.hhmm(),
            control,
            if p.ack_requested { '1' } else { '0' },
            p.usage,
            d.component as char,
        );
        self.out.extend_from_slice(isa.as_bytes());
        self.terminate();
    }

    /// The bytes written so far.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Formats ISA13.
pub fn isa_control(n: u64) -> String {
    format!("{:09}", n % 1_000_000_000)
}

/// Formats ST02 (at least 4 digits).
pub fn st_control(n: u64) -> String {
    format!("{:04}", n % 1_000_000_000)
}

/// Writes a complete interchange: envelopes, counts and control numbers.
/// Returns the bytes and the ISA13 used.
pub fn write_interchange(
    p: &EnvelopeParams,
    groups: &[GroupOut],
    numbers: &dyn ControlNumbers,
    stamp: &Stamp,
) -> Result<(Vec<u8>, String), GatewayError> {
    let isa13 = isa_control(numbers.next(ControlKind::Interchange)?);
    let mut w = SegmentWriter::new(p.delimiters, p.newlines);
    w.isa(p, &isa13, stamp);
    for g in groups {
        let gs06 = (numbers.next(ControlKind::Group)? % 1_000_000_000).to_string();
        w.segment(
            &Seg::new("GS")
                .e(&g.functional_id)
                .e(&p.application_sender)
                .e(&p.application_receiver)
                .e(stamp.ccyymmdd())
                .e(stamp.hhmm())
                .e(&gs06)
                .e("X")
                .e(&g.version),
        );
        for body in &g.sets {
            let st02 = st_control(numbers.next(ControlKind::Transaction)?);
            w.segment(&Seg::new("ST").e(&g.set_id).e(&st02).e(&g.version));
            for seg in body {
                w.segment(seg);
            }
            w.segment(&Seg::new("SE").e((body.len() + 2).to_string()).e(&st02));
        }
        w.segment(&Seg::new("GE").e(g.sets.len().to_string()).e(&gs06));
    }
    w.segment(&Seg::new("IEA").e(groups.len().to_string()).e(&isa13));
    Ok((w.finish(), isa13))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::parse_interchange;

    #[test]
    fn envelopes_are_counted_and_parse_clean() {
        let numbers = MemoryControlNumbers::new();
        let stamp = Stamp {
            at: jiff::civil::date(2026, 11, 23).at(7, 0, 0, 0),
        };
        let body = vec![
            Seg::new("BHT")
                .e("0007")
                .e("13")
                .e("REF1")
                .e("20261123")
                .e("0700"),
            Seg::new("HL").e("1").e("").e("20").e("1"),
            Seg::new("NM1")
                .e("X3")
                .e("2")
                .e("PAYER*NAME~X")
                .e("")
                .e("")
                .e("")
                .e("")
                .e("PI")
                .e("P1"),
        ];
        let groups = [GroupOut {
            functional_id: "HI".into(),
            version: "005010X217".into(),
            set_id: "278".into(),
            sets: vec![body.clone(), body],
        }];
        let (bytes, isa13) =
            write_interchange(&EnvelopeParams::default(), &groups, &numbers, &stamp)
                .expect("writes");
        assert_eq!(isa13, "000000001");
        let text = String::from_utf8(bytes.clone()).expect("ascii");
        assert!(text.lines().next().expect("isa").len() == 106, "{text}");
        assert!(text.contains("NM1*X3*2*PAYER NAME X*****PI*P1~"));
        assert!(text.contains("SE*5*0001~"));
        assert!(text.contains("SE*5*0002~"));
        assert!(text.contains("GE*2*1~"));
        let parsed = parse_interchange(&bytes).expect("parses");
        let envelope_errors: Vec<_> = parsed
            .findings
            .iter()
            .filter(|f| {
                f.diagnostic.code.starts_with("X01") || f.diagnostic.code.starts_with("X02")
            })
            .collect();
        assert!(envelope_errors.is_empty(), "{envelope_errors:?}");
    }
}

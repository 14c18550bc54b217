//! The X12 tokenizer: delimiters from the ISA, then segments, elements,
//! repetitions and components as byte spans.
//!
//! X12 has no escape mechanism, so the delimiters are whatever the sender put at
//! the fixed ISA positions: the element separator at byte 3, the repetition
//! separator in ISA11 (byte 82, only for version 00403 and later), the component
//! separator in ISA16 (byte 104) and the segment terminator right after it
//! (byte 105). Real files break this in predictable ways (see the research notes):
//! a UTF-8 BOM, indentation, CR/LF/CRLF after terminators, a terminator that *is*
//! CR or LF, a missing final terminator, and ISAs copied out of PDFs that are not
//! padded to fixed width. The tokenizer tolerates all of them — the unpadded ISA
//! with a warning — and records everything as [`Finding`]s with byte spans.
//!
//! Values are kept as spans into the input, not copied: a tree builder or the
//! envelope checker decodes only what it reads. The tokenizer never panics; every
//! index is checked.

use std::borrow::Cow;

use gateway_core::Span;

use crate::codes::{AckCode, Finding, ta1};

/// The four X12 delimiters of one interchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    /// Element separator (ISA byte 3).
    pub element: u8,
    /// Repetition separator (ISA11), when the version uses one.
    pub repetition: Option<u8>,
    /// Component (sub-element) separator (ISA16).
    pub component: u8,
    /// Segment terminator (the byte after ISA16).
    pub segment: u8,
}

impl Default for Delimiters {
    /// `*`, `^`, `:`, `~`: the delimiters this crate writes.
    fn default() -> Self {
        Delimiters {
            element: b'*',
            repetition: Some(b'^'),
            component: b':',
            segment: b'~',
        }
    }
}

/// One data element: its span and, inside it, repetitions of components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawElement {
    /// The whole element.
    pub span: Span,
    /// Repetitions (one for a non-repeated element), each a list of component spans.
    pub repetitions: Vec<Vec<Span>>,
}

/// One segment: its id, span (without the terminator) and elements (`elements[0]` is `01`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSegment {
    /// Segment id (`ISA`, `NM1`, …) as written.
    pub id: String,
    /// The segment text without its terminator.
    pub span: Span,
    /// Elements after the id, in order.
    pub elements: Vec<RawElement>,
}

/// The tokenized interchange.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    /// The raw input the spans point into.
    pub input: &'a [u8],
    /// The delimiters found in the ISA.
    pub delimiters: Delimiters,
    /// Segments in document order, ISA first.
    pub segments: Vec<RawSegment>,
    /// What the tokenizer noticed.
    pub findings: Vec<Finding>,
}

impl<'a> Tokens<'a> {
    /// Decoded text of a span (lossy for bytes that are not UTF-8).
    pub fn text(&self, span: Span) -> Cow<'a, str> {
        slice_text(self.input, span)
    }

    /// Text of element `n` (1-based) of `segment`, or `""` when absent.
    pub fn element(&self, segment: &RawSegment, n: usize) -> Cow<'a, str> {
        match n.checked_sub(1).and_then(|i| segment.elements.get(i)) {
            Some(e) => self.text(e.span),
            None => Cow::Borrowed(""),
        }
    }

    /// Text of component `c` (1-based) of the first repetition of element `n`.
    pub fn component(&self, segment: &RawSegment, n: usize, c: usize) -> Cow<'a, str> {
        let span = n
            .checked_sub(1)
            .and_then(|i| segment.elements.get(i))
            .and_then(|e| e.repetitions.first())
            .and_then(|r| c.checked_sub(1).and_then(|ci| r.get(ci)));
        match span {
            Some(s) => self.text(*s),
            None => Cow::Borrowed(""),
        }
    }
}

/// Decoded text of `span` in `input` (empty when out of range).
pub fn slice_text(input: &[u8], span: Span) -> Cow<'_, str> {
    match input.get(span.start..span.end) {
        Some(bytes) => String::from_utf8_lossy(bytes),
        None => Cow::Borrowed(""),
    }
}

/// Why no segments could be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizeFailure {
    /// The fatal finding(s), each mapped to a TA1 note code.
    pub findings: Vec<Finding>,
}

/// Fixed ISA length including the segment terminator.
pub const ISA_LEN: usize = 106;

/// Offsets (from the `I` of `ISA`) where a fixed-width ISA has its element separators.
const ISA_SEPARATORS: [usize; 16] = [
    3, 6, 17, 20, 31, 34, 50, 53, 69, 76, 81, 83, 89, 99, 101, 103,
];

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn interchange_error(note: &'static str, code: &str, message: &str, span: Span) -> Finding {
    Finding::error(code, message, Some(span), AckCode::Interchange { note })
}

/// Tokenizes one interchange. Fails only when no delimiters can be determined
/// (no ISA, truncated ISA, invalid delimiters); everything else is a finding.
pub fn tokenize(input: &[u8]) -> Result<Tokens<'_>, TokenizeFailure> {
    let mut start = 0;
    if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
        start = 3;
    }
    while input.get(start).copied().is_some_and(is_ws) {
        start += 1;
    }
    let rest = input.get(start..).unwrap_or_default();
    if rest.len() < 3 || !rest[..3].eq_ignore_ascii_case(b"ISA") {
        let (note, message) = if rest.is_empty() || b"ISA".starts_with(&rest[..rest.len().min(3)]) {
            (
                ta1::PREMATURE_EOF,
                "input ends before a complete ISA segment",
            )
        } else {
            (ta1::BAD_CONTENT, "input does not start with an ISA segment")
        };
        return Err(TokenizeFailure {
            findings: vec![interchange_error(
                note,
                "X001",
                message,
                Span::new(start, input.len().min(start + 3)),
            )],
        });
    }
    let mut findings = Vec::new();
    let (delimiters, isa_end) = match fixed_width_isa(input, start) {
        Some(found) => found,
        None => {
            let found = fallback_isa(input, start)?;
            findings.push(Finding::warning(
                "X003",
                "ISA is not fixed width (106 bytes); delimiters were found by splitting",
                Some(Span::new(start, found.1)),
                AckCode::Interchange {
                    note: ta1::BAD_CONTROL_STRUCTURE,
                },
            ));
            found
        }
    };
    check_delimiters(&delimiters, Span::new(start, isa_end))?;

    let mut segments = Vec::new();
    // The ISA itself: split on the element separator only (ISA11 and ISA16 are
    // the repetition and component separators themselves).
    let isa_span = Span::new(start, isa_end.saturating_sub(1));
    segments.push(split_segment(input, isa_span, &delimiters, true));
    split_segments(input, isa_end, &delimiters, &mut segments, &mut findings);
    Ok(Tokens {
        input,
        delimiters,
        segments,
        findings,
    })
}

/// Delimiters from a fixed-width ISA, and the offset just past its terminator.
fn fixed_width_isa(input: &[u8], start: usize) -> Option<(Delimiters, usize)> {
    let isa = input.get(start..start + ISA_LEN)?;
    let element = isa[3];
    if !ISA_SEPARATORS.iter().all(|&i| isa[i] == element) {
        return None;
    }
    let version = &isa[84..89];
    let repetition = repetition_separator(isa[82], version);
    Some((
        Delimiters {
            element,
            repetition,
            component: isa[104],
            segment: isa[105],
        },
        start + ISA_LEN,
    ))
}

/// ISA11 is a repetition separator only from version 00403 on, and only when
/// it is not a letter or digit (4010 files carry `U` there).
fn repetition_separator(b: u8, version: &[u8]) -> Option<u8> {
    if b.is_ascii_alphanumeric() || b == b' ' || version < b"00403".as_slice() {
        None
    } else {
        Some(b)
    }
}

/// Splits an unpadded ISA on its element separator: ISA16 is the byte after the
/// 16th separator and the segment terminator the byte after that.
fn fallback_isa(input: &[u8], start: usize) -> Result<(Delimiters, usize), TokenizeFailure> {
    let truncated = |at: usize| TokenizeFailure {
        findings: vec![interchange_error(
            ta1::PREMATURE_EOF,
            "X002",
            "ISA segment is truncated: fewer than 16 elements before the end of input",
            Span::new(start, at.min(input.len())),
        )],
    };
    let Some(&element) = input.get(start + 3) else {
        return Err(truncated(input.len()));
    };
    let mut separators = Vec::with_capacity(16);
    let mut i = start + 3;
    while separators.len() < 16 {
        match input.get(i) {
            Some(&b) if b == element => separators.push(i),
            Some(_) => {}
            None => return Err(truncated(i)),
        }
        i += 1;
    }
    let last = separators[15];
    let (Some(&component), Some(&segment)) = (input.get(last + 1), input.get(last + 2)) else {
        return Err(truncated(input.len()));
    };
    let rep_byte = input.get(separators[10] + 1).copied().unwrap_or(b'U');
    let version = input
        .get(separators[11] + 1..separators[12])
        .unwrap_or_default();
    let repetition = repetition_separator(rep_byte, trim_ascii(version));
    Ok((
        Delimiters {
            element,
            repetition,
            component,
            segment,
        },
        last + 3,
    ))
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn check_delimiters(d: &Delimiters, span: Span) -> Result<(), TokenizeFailure> {
    let bad = |note, code: &str, message: &str| TokenizeFailure {
        findings: vec![interchange_error(note, code, message, span)],
    };
    if d.element.is_ascii_alphanumeric() || d.element == b' ' {
        return Err(bad(
            ta1::BAD_ELEMENT_SEPARATOR,
            "X004",
            "element separator is a letter, digit or space",
        ));
    }
    if d.component.is_ascii_alphanumeric() || d.component == d.element || d.component == b' ' {
        return Err(bad(
            ta1::BAD_COMPONENT_SEPARATOR,
            "X004",
            "component separator is a letter, digit, space or equals the element separator",
        ));
    }
    if d.segment.is_ascii_alphanumeric()
        || d.segment == d.element
        || d.segment == d.component
        || d.repetition == Some(d.segment)
    {
        return Err(bad(
            ta1::BAD_SEGMENT_TERMINATOR,
            "X004",
            "segment terminator is a letter, digit or equals another delimiter",
        ));
    }
    Ok(())
}

/// Splits everything after the ISA into segments.
fn split_segments(
    input: &[u8],
    from: usize,
    d: &Delimiters,
    segments: &mut Vec<RawSegment>,
    findings: &mut Vec<Finding>,
) {
    let trimmable = |b: u8| is_ws(b) && b != d.element && b != d.component && b != d.segment;
    let mut pos = from;
    while pos < input.len() {
        let (end, next, terminated) = match input[pos..].iter().position(|&b| b == d.segment) {
            Some(off) => (pos + off, pos + off + 1, true),
            None => (input.len(), input.len(), false),
        };
        let mut s = pos;
        let mut e = end;
        while s < e && trimmable(input[s]) {
            s += 1;
        }
        while e > s && matches!(input[e - 1], b'\r' | b'\n') && trimmable(input[e - 1]) {
            e -= 1;
        }
        if s < e {
            if !terminated {
                findings.push(Finding::warning(
                    "X005",
                    "last segment has no segment terminator",
                    Some(Span::new(s, e)),
                    AckCode::Interchange {
                        note: ta1::PREMATURE_EOF,
                    },
                ));
            }
            segments.push(split_segment(input, Span::new(s, e), d, false));
        }
        pos = next;
    }
}

/// Splits one segment's bytes into id and elements.
fn split_segment(input: &[u8], span: Span, d: &Delimiters, is_isa: bool) -> RawSegment {
    let bytes = input.get(span.start..span.end).unwrap_or_default();
    let mut parts = bytes.iter().enumerate().filter(|(_, b)| **b == d.element);
    let id_end = parts.next().map_or(bytes.len(), |(i, _)| i);
    let id = String::from_utf8_lossy(&bytes[..id_end]).trim().to_owned();
    let mut elements = Vec::new();
    let mut elem_start = id_end + 1;
    if id_end < bytes.len() {
        loop {
            let elem_end = bytes[elem_start.min(bytes.len())..]
                .iter()
                .position(|&b| b == d.element)
                .map_or(bytes.len(), |off| elem_start + off);
            let abs = Span::new(span.start + elem_start, span.start + elem_end);
            elements.push(split_element(input, abs, d, is_isa));
            if elem_end >= bytes.len() {
                break;
            }
            elem_start = elem_end + 1;
        }
    }
    RawSegment { id, span, elements }
}

fn split_element(input: &[u8], span: Span, d: &Delimiters, is_isa: bool) -> RawElement {
    let bytes = input.get(span.start..span.end).unwrap_or_default();
    if is_isa {
        return RawElement {
            span,
            repetitions: vec![vec![span]],
        };
    }
    let mut repetitions = Vec::with_capacity(1);
    let mut rep_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if Some(b) == d.repetition {
            repetitions.push(split_components(
                span.start,
                &bytes[rep_start..i],
                rep_start,
                d,
            ));
            rep_start = i + 1;
        }
    }
    repetitions.push(split_components(
        span.start,
        &bytes[rep_start..],
        rep_start,
        d,
    ));
    RawElement { span, repetitions }
}

fn split_components(base: usize, bytes: &[u8], offset: usize, d: &Delimiters) -> Vec<Span> {
    let mut out = Vec::with_capacity(1);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == d.component {
            out.push(Span::new(base + offset + start, base + offset + i));
            start = i + 1;
        }
    }
    out.push(Span::new(
        base + offset + start,
        base + offset + bytes.len(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISA: &str = "ISA*00*          *00*          *ZZ*SUBMITTER01    *ZZ*RECEIVER01     *261123*0700*^*00501*000000001*0*T*:~";

    #[test]
    fn fixed_width_isa_gives_all_delimiters() {
        assert_eq!(ISA.len(), ISA_LEN);
        let input = format!("{ISA}GS*HI*A*B*20261123*0700*1*X*005010X217~");
        let t = tokenize(input.as_bytes()).expect("tokenizes");
        assert_eq!(t.delimiters, Delimiters::default());
        assert_eq!(t.segments.len(), 2);
        assert_eq!(t.element(&t.segments[0], 13), "000000001");
        assert_eq!(t.element(&t.segments[0], 16), ":");
        assert_eq!(t.element(&t.segments[1], 8), "005010X217");
        assert!(t.findings.is_empty());
    }

    #[test]
    fn bom_indentation_and_crlf_are_tolerated() {
        let input = format!("\u{feff}  {ISA}\r\n   NM1*IL*1*DOE*JANE~\r\n  REF*SY:X*1~\r\n");
        let t = tokenize(input.as_bytes()).expect("tokenizes");
        assert_eq!(t.segments.len(), 3);
        assert_eq!(t.segments[1].id, "NM1");
        assert_eq!(t.component(&t.segments[2], 1, 2), "X");
        assert_eq!(t.text(t.segments[1].span), "NM1*IL*1*DOE*JANE");
    }

    #[test]
    fn newline_terminator_and_missing_final_terminator() {
        let isa = ISA.replace('~', "\n");
        let input = format!("{isa}ST*278*0001\nSE*2*0001");
        let t = tokenize(input.as_bytes()).expect("tokenizes");
        assert_eq!(t.delimiters.segment, b'\n');
        assert_eq!(t.segments.len(), 3);
        assert_eq!(t.findings.len(), 1);
        assert_eq!(t.findings[0].diagnostic.code, "X005");
    }

    #[test]
    fn unpadded_isa_falls_back_with_a_warning() {
        let input = "ISA*00* *00* *ZZ*SUB *ZZ*REC *261123*0700*^*00501*000000001*0*T*:~\nGS*HI~";
        let t = tokenize(input.as_bytes()).expect("tokenizes");
        assert_eq!(t.delimiters, Delimiters::default());
        assert_eq!(t.segments[1].id, "GS");
        assert_eq!(t.findings[0].diagnostic.code, "X003");
        assert!(!t.findings[0].is_error());
    }

    #[test]
    fn truncated_isa_is_premature_eof() {
        let err = tokenize(&ISA.as_bytes()[..60]).expect_err("fails");
        assert_eq!(err.findings[0].diagnostic.code, "X002");
        assert_eq!(
            err.findings[0].ack,
            AckCode::Interchange {
                note: ta1::PREMATURE_EOF
            }
        );
        let err = tokenize(b"GS*HI~").expect_err("fails");
        assert_eq!(
            err.findings[0].ack,
            AckCode::Interchange {
                note: ta1::BAD_CONTENT
            }
        );
    }

    #[test]
    fn repetitions_and_components_have_spans() {
        let input = format!("{ISA}HI*ABK:I2510^ABF:E119~");
        let t = tokenize(input.as_bytes()).expect("tokenizes");
        let hi = &t.segments[1];
        assert_eq!(hi.elements[0].repetitions.len(), 2);
        let code = hi.elements[0].repetitions[1][1];
        assert_eq!(t.text(code), "E119");
    }

    #[test]
    fn version_4010_has_no_repetition_separator() {
        let isa = ISA.replace("*^*00501*", "*U*00401*");
        let t = tokenize(isa.as_bytes()).expect("tokenizes");
        assert_eq!(t.delimiters.repetition, None);
    }
}

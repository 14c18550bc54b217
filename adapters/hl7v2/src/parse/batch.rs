//! Message boundaries: one message, an FHS/BHS batch, or bare concatenation.
//!
//! Splitting happens on raw bytes (segment ids and terminators are ASCII in
//! every charset we read), before decoding, because each message declares its
//! own MSH-18. Envelope segments (FHS, BHS, BTS, FTS) are recorded and checked
//! (BTS-1 count); anything outside a message that is not an envelope segment or
//! a blank line is reported as an error with its byte span.

use std::ops::Range;

use gateway_core::{Diagnostic, SourceDocument, Span};

use super::{codes, parse_one};

/// One message found in the input.
#[derive(Debug, Clone)]
pub struct ParsedMessage {
    /// Its bytes in the input (from `MSH` through its last segment terminator).
    /// Spans in the document are offsets into the whole input, not this slice.
    pub range: Range<usize>,
    /// The parsed document, or why none could be built.
    pub result: Result<SourceDocument, Vec<Diagnostic>>,
}

/// An envelope segment of a batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSegment {
    /// `FHS`, `BHS`, `BTS` or `FTS`.
    pub name: String,
    /// Its bytes in the input.
    pub span: Span,
}

/// Everything found in one input.
#[derive(Debug, Clone, Default)]
pub struct ParsedInput {
    /// The messages, in order.
    pub messages: Vec<ParsedMessage>,
    /// Batch envelope segments, in order (empty for a plain message).
    pub envelope: Vec<EnvelopeSegment>,
    /// Findings outside any message (BOM, junk, blank lines, batch counts).
    pub diagnostics: Vec<Diagnostic>,
}

impl ParsedInput {
    /// True for a batch file or several concatenated messages.
    pub fn is_batch(&self) -> bool {
        !self.envelope.is_empty() || self.messages.len() > 1
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Msh,
    Envelope,
    Blank,
    Other,
}

struct RawLine {
    start: usize,
    end: usize,
    next: usize,
    kind: Kind,
}

fn lines(raw: &[u8], from: usize) -> Vec<RawLine> {
    let mut out = Vec::new();
    let mut start = from;
    while start < raw.len() {
        let rel = raw[start..].iter().position(|b| *b == b'\r' || *b == b'\n');
        let (end, next) = match rel {
            Some(r) => {
                let end = start + r;
                let next = if raw[end] == b'\r' && raw.get(end + 1) == Some(&b'\n') {
                    end + 2
                } else {
                    end + 1
                };
                (end, next)
            }
            None => (raw.len(), raw.len()),
        };
        let line = &raw[start..end];
        let kind = if line.iter().all(u8::is_ascii_whitespace) {
            Kind::Blank
        } else if line.starts_with(b"MSH") && line.len() > 3 {
            Kind::Msh
        } else if [b"FHS", b"BHS", b"BTS", b"FTS"]
            .iter()
            .any(|n| line.starts_with(*n) && line.get(3).is_none_or(|b| !b.is_ascii_alphanumeric()))
        {
            Kind::Envelope
        } else {
            Kind::Other
        };
        out.push(RawLine {
            start,
            end,
            next,
            kind,
        });
        start = next;
    }
    out
}

/// Finds every message in `raw` and parses each. Never panics.
pub fn parse_input(raw: &[u8]) -> ParsedInput {
    let mut out = ParsedInput::default();
    let mut from = 0;
    if raw.starts_with(&[0xEF, 0xBB, 0xBF]) {
        out.diagnostics.push(
            Diagnostic::warning(
                codes::BOM,
                "UTF-8 byte-order mark before the message ignored",
            )
            .with_span(Span::new(0, 3)),
        );
        from = 3;
    }
    let all = lines(raw, from);
    // For every line, the index of the next non-blank line after it (one
    // backwards pass, so many blank lines stay linear).
    let mut next_content: Vec<Option<usize>> = vec![None; all.len()];
    let mut upcoming = None;
    for i in (0..all.len()).rev() {
        next_content[i] = upcoming;
        if all[i].kind != Kind::Blank {
            upcoming = Some(i);
        }
    }
    let mut ranges: Vec<Range<usize>> = Vec::new();
    let mut open: Option<Range<usize>> = None;
    let mut batch_count: usize = 0; // messages since the last BHS
    let mut seen_content = false;
    for (idx, line) in all.iter().enumerate() {
        match line.kind {
            Kind::Msh => {
                if let Some(r) = open.take() {
                    ranges.push(r);
                }
                open = Some(line.start..line.next);
                batch_count += 1;
                seen_content = true;
            }
            Kind::Envelope => {
                if let Some(r) = open.take() {
                    ranges.push(r);
                }
                let name = String::from_utf8_lossy(&raw[line.start..line.start + 3]).into_owned();
                let span = Span::new(line.start, line.end);
                if name == "BHS" {
                    batch_count = 0;
                } else if name == "BTS" {
                    check_count(raw, line, batch_count, &mut out.diagnostics);
                }
                out.envelope.push(EnvelopeSegment { name, span });
                seen_content = true;
            }
            Kind::Other => match &mut open {
                Some(r) => r.end = line.next,
                None => {
                    out.diagnostics.push(
                        Diagnostic::error(
                            codes::NOT_HL7,
                            if seen_content {
                                "text outside any message"
                            } else {
                                "text before the first MSH segment"
                            },
                        )
                        .with_span(Span::new(line.start, line.end)),
                    );
                }
            },
            Kind::Blank => {
                // Inside a message (more of its segments follow) the message
                // parser reports it; here only blank lines between messages.
                let next = next_content[idx].and_then(|i| all.get(i));
                if open.is_some() && next.is_some_and(|l| l.kind == Kind::Other) {
                    continue;
                }
                let (code, msg) = if !seen_content {
                    (codes::LEADING_BLANK, "blank line before the first segment")
                } else if next.is_none() {
                    (codes::TRAILING_BLANK, "blank line after the last segment")
                } else {
                    (codes::BLANK_LINE, "blank line between messages")
                };
                out.diagnostics.push(
                    Diagnostic::warning(code, msg).with_span(Span::new(line.start, line.next)),
                );
            }
        }
    }
    if let Some(r) = open.take() {
        ranges.push(r);
    }
    let has_bhs = out.envelope.iter().any(|e| e.name == "BHS");
    let has_bts = out.envelope.iter().any(|e| e.name == "BTS");
    if has_bhs && !has_bts {
        out.diagnostics.push(Diagnostic::warning(
            codes::BATCH,
            "batch header BHS without a BTS trailer",
        ));
    }
    for range in ranges {
        let result = parse_one(raw, range.clone());
        out.messages.push(ParsedMessage { range, result });
    }
    out
}

fn check_count(raw: &[u8], line: &RawLine, actual: usize, diags: &mut Vec<Diagnostic>) {
    let text = &raw[line.start..line.end];
    let Some(&fs) = text.get(3) else {
        return;
    };
    let declared = text[4..]
        .split(|b| *b == fs)
        .next()
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|s| s.trim().parse::<usize>().ok());
    if let Some(declared) = declared
        && declared != actual
    {
        diags.push(
            Diagnostic::warning(
                codes::BATCH,
                format!("BTS-1 declares {declared} messages, the batch holds {actual}"),
            )
            .with_span(Span::new(line.start, line.end))
            .at("BTS-1"),
        );
    }
}

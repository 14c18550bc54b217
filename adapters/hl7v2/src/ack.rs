//! HL7 v2 acknowledgements: the ACKs we send, and reading the ACKs we receive.
//!
//! An ACK has to be right even for garbage, and has to look like the message it
//! answers, so it is built from the raw bytes: [`crate::parse::header`] reads
//! MSH at the byte level and the ACK **copies** MSH-3…MSH-6 (swapped), MSH-11
//! and MSH-18 byte for byte — same charset, same escaping, same encoding
//! characters (including a v2.7 truncation character) — while everything we
//! write ourselves is escaped with [`crate::parse::escape::encode`] and encoded
//! in the message's charset.
//!
//! Mode (HL7 v2.5.1 §2.9): a message with MSH-15 or MSH-16 valued asks for
//! enhanced mode and gets a commit ACK (`CA`/`CE`/`CR`); otherwise original mode
//! (`AA`/`AE`/`AR`). Our positive ACK means "durably stored" in both modes.
//! [`AckStatus::Error`] (AE/CE) says the message itself is wrong — resending
//! cannot help; [`AckStatus::Reject`] (AR/CR) is for what the sender may retry or
//! must fix at the envelope level (unparseable, unsupported, our internal
//! failure).
//!
//! ERR segments (v2.5+ layout; ERR-1 ELD for 2.3/2.4): ERR-2 the location
//! (segment, sequence, field, repetition, component, subcomponent) taken from
//! the diagnostic's location or, failing that, from the tree node its byte span
//! falls in; ERR-3 an HL7 table 0357 code; ERR-4 severity; ERR-5 our diagnostic
//! code; ERR-7 the technical detail with byte positions; ERR-8 a user message.

use std::sync::atomic::{AtomicU64, Ordering};

use gateway_core::{Diagnostic, GatewayError, NodeId, Severity, SourceDocument, SourceTree};

use crate::parse::escape::encode;
use crate::parse::header::find_header;
use crate::parse::{Charset, Separators, codes};

/// What the ACK says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// Stored (or a recognised duplicate): AA / CA.
    Accept,
    /// The content is wrong (mapping, required field): AE / CE.
    Error,
    /// Unparseable, unsupported, or our failure: AR / CR.
    Reject,
}

/// Everything needed to build one ACK.
#[derive(Debug, Clone, Copy)]
pub struct AckRequest<'a> {
    /// The raw message being answered (any bytes; garbage gets a best-effort ACK).
    pub message: &'a [u8],
    /// The answer.
    pub status: AckStatus,
    /// The error behind a negative answer, if any.
    pub error: Option<&'a GatewayError>,
    /// Parser and mapping findings; error-severity ones become ERR segments.
    pub diagnostics: &'a [Diagnostic],
}

impl<'a> AckRequest<'a> {
    /// A positive ACK for `message`.
    pub fn accept(message: &'a [u8]) -> Self {
        AckRequest {
            message,
            status: AckStatus::Accept,
            error: None,
            diagnostics: &[],
        }
    }
}

/// The acknowledgement mode a message asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// MSH-15/16 empty: AA/AE/AR.
    Original,
    /// MSH-15 or MSH-16 valued: CA/CE/CR.
    Enhanced,
}

/// The MSA-1 code for a status in a mode.
pub fn ack_code(mode: AckMode, status: AckStatus) -> &'static str {
    match (mode, status) {
        (AckMode::Original, AckStatus::Accept) => "AA",
        (AckMode::Original, AckStatus::Error) => "AE",
        (AckMode::Original, AckStatus::Reject) => "AR",
        (AckMode::Enhanced, AckStatus::Accept) => "CA",
        (AckMode::Enhanced, AckStatus::Error) => "CE",
        (AckMode::Enhanced, AckStatus::Reject) => "CR",
    }
}

/// The mode the message in `raw` asks for (original when there is no header).
pub fn ack_mode(raw: &[u8]) -> AckMode {
    match find_header(raw) {
        Some(h) if !h.text(15, 1).is_empty() || !h.text(16, 1).is_empty() => AckMode::Enhanced,
        _ => AckMode::Original,
    }
}

/// Whether an enhanced-mode sender wants a commit ACK for this status
/// (MSH-15: `AL` always, `NE` never, `ER` on error only, `SU` on success only).
/// Original mode always gets one. Transports that must answer every frame may
/// ignore `NE`; this tells what the standard asks.
pub fn accept_ack_wanted(raw: &[u8], status: AckStatus) -> bool {
    let Some(h) = find_header(raw) else {
        return true;
    };
    match h.text(15, 1).as_str() {
        "NE" => false,
        "ER" => status != AckStatus::Accept,
        "SU" => status == AckStatus::Accept,
        _ => true,
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Builds the ACK bytes (segments ended by `\r`, no MLLP framing), stamped
/// with the current UTC time and a fresh control id.
pub fn build_ack(req: &AckRequest<'_>) -> Vec<u8> {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y%m%d%H%M%S+0000").to_string();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    let control_id = format!("A{}{n:06}", now.as_millisecond());
    build_ack_at(req, &stamp, &control_id)
}

/// Builds the ACK with a given MSH-7 timestamp and MSH-10 control id
/// (deterministic; used by [`build_ack`] and tests).
pub fn build_ack_at(req: &AckRequest<'_>, now: &str, control_id: &str) -> Vec<u8> {
    let header = find_header(req.message);
    let seps = header
        .as_ref()
        .and_then(|h| h.separators.ok())
        .unwrap_or_default();
    let charset = header
        .as_ref()
        .and_then(|h| Charset::from_msh18(&h.charset_label()))
        .unwrap_or(Charset::Utf8);
    let mode = ack_mode(req.message);
    let fs = seps.field.to_string();
    let cs = seps.component.to_string();
    let raw = |n: usize| -> Vec<u8> {
        header
            .as_ref()
            .filter(|h| h.separators.is_ok())
            .map(|h| h.field(n).to_vec())
            .unwrap_or_default()
    };
    let hdr_text = |n: usize, c: usize| header.as_ref().map(|h| h.text(n, c)).unwrap_or_default();
    let version = {
        let v = hdr_text(12, 1);
        if v.is_empty() { "2.5.1".to_owned() } else { v }
    };
    let trigger = hdr_text(9, 2);
    let mut out: Vec<u8> = Vec::with_capacity(256);
    let text = |out: &mut Vec<u8>, s: &str| out.extend(charset.encode(&encode(s, &seps)));
    // MSH
    out.extend(b"MSH");
    out.extend(fs.as_bytes());
    out.extend(seps.encoding_characters().as_bytes());
    for n in [5, 6, 3, 4] {
        out.extend(fs.as_bytes());
        out.extend(raw(n));
    }
    out.extend(fs.as_bytes());
    text(&mut out, now);
    out.extend(fs.as_bytes()); // MSH-8
    out.extend(fs.as_bytes());
    out.extend(b"ACK");
    if !trigger.is_empty() {
        out.extend(cs.as_bytes());
        text(&mut out, &trigger);
        if !version_before(&version, (2, 3, 1)) {
            out.extend(cs.as_bytes());
            out.extend(b"ACK");
        }
    }
    out.extend(fs.as_bytes());
    text(&mut out, control_id);
    out.extend(fs.as_bytes());
    let processing = raw(11);
    if processing.is_empty() {
        out.extend(b"P");
    } else {
        out.extend(processing);
    }
    out.extend(fs.as_bytes());
    text(&mut out, &version);
    let charset_field = raw(18);
    if !charset_field.is_empty() {
        for _ in 13..=18 {
            out.extend(fs.as_bytes());
        }
        out.extend(charset_field);
    }
    out.push(b'\r');
    // MSA
    let code = ack_code(mode, req.status);
    out.extend(b"MSA");
    out.extend(fs.as_bytes());
    out.extend(code.as_bytes());
    out.extend(fs.as_bytes());
    out.extend(raw(10));
    let errs = if req.status == AckStatus::Accept {
        Vec::new()
    } else {
        err_entries(req)
    };
    if let Some(first) = errs.first() {
        out.extend(fs.as_bytes());
        text(&mut out, truncate(&first.user_message, 80));
    }
    out.push(b'\r');
    if !errs.is_empty() {
        let doc = crate::parse::parse_message(req.message).ok();
        for e in errs.iter().take(10) {
            let loc = e.location.clone().or_else(|| {
                doc.as_ref()
                    .and_then(|d| e.span_start.and_then(|s| locate(d, s)))
            });
            write_err(&mut out, e, loc.as_ref(), &seps, charset, &version);
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `version < min`, comparing numeric parts (`2.3` < `2.3.1` < `2.5.1`).
fn version_before(version: &str, min: (u32, u32, u32)) -> bool {
    let mut parts = version
        .split('.')
        .map(|p| p.trim().parse::<u32>().unwrap_or(0));
    let v = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    v < min
}

/// An HL7 error location (ERL): segment, sequence, field, repetition,
/// component, subcomponent; zeros mean "not given".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorLocation {
    /// Segment id.
    pub segment: String,
    /// 1-based occurrence of that segment in the message.
    pub sequence: usize,
    /// Field number.
    pub field: usize,
    /// Repetition (1-based).
    pub repetition: usize,
    /// Component.
    pub component: usize,
    /// Subcomponent.
    pub subcomponent: usize,
}

impl ErrorLocation {
    /// Parses `PID`, `PID-3`, `IN1[2]-36`, `PID-3[2].1.2` (diagnostic locations).
    pub fn parse(location: &str) -> Option<ErrorLocation> {
        let b = location.as_bytes();
        if b.len() < 3
            || !b[..3]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return None;
        }
        let mut loc = ErrorLocation {
            segment: location[..3].to_owned(),
            sequence: 1,
            ..ErrorLocation::default()
        };
        let mut rest = &location[3..];
        if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            loc.sequence = r[..close].parse().ok()?;
            rest = &r[close + 1..];
        }
        let Some(r) = rest.strip_prefix('-') else {
            return rest.is_empty().then_some(loc);
        };
        let (num, r) = split_num(r)?;
        loc.field = num;
        loc.repetition = 1;
        let mut r = r;
        if let Some(x) = r.strip_prefix('[') {
            let close = x.find(']')?;
            loc.repetition = x[..close].parse().ok()?;
            r = &x[close + 1..];
        }
        if let Some(x) = r.strip_prefix('.') {
            let (c, x) = split_num(x)?;
            loc.component = c;
            r = x;
            if let Some(x) = r.strip_prefix('.') {
                let (s, _) = split_num(x)?;
                loc.subcomponent = s;
            }
        }
        Some(loc)
    }
}

fn split_num(s: &str) -> Option<(usize, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// The location of the deepest node whose span contains raw offset `at`.
pub fn locate(doc: &SourceDocument, at: usize) -> Option<ErrorLocation> {
    let tree = &doc.tree;
    let seg = tree
        .children(tree.root())
        .iter()
        .copied()
        .find(|n| contains(tree, *n, at))?;
    let name = tree.name(seg).to_owned();
    let sequence = tree
        .children_named(tree.root(), &name)
        .position(|n| n == seg)
        .map_or(1, |p| p + 1);
    let mut loc = ErrorLocation {
        segment: name,
        sequence,
        ..ErrorLocation::default()
    };
    if let Some(field) = tree
        .children(seg)
        .iter()
        .copied()
        .find(|n| contains(tree, *n, at))
    {
        let fname = tree.name(field).to_owned();
        loc.field = fname.parse().unwrap_or(0);
        loc.repetition = tree
            .children_named(seg, &fname)
            .position(|n| n == field)
            .map_or(1, |p| p + 1);
        if let Some(c) = child_at(tree, field, at) {
            loc.component = tree.name(c).parse().unwrap_or(0);
            if let Some(s) = child_at(tree, c, at) {
                loc.subcomponent = tree.name(s).parse().unwrap_or(0);
            }
        }
    }
    Some(loc)
}

fn child_at(tree: &SourceTree, node: NodeId, at: usize) -> Option<NodeId> {
    tree.children(node)
        .iter()
        .copied()
        .find(|n| contains(tree, *n, at))
}

fn contains(tree: &SourceTree, node: NodeId, at: usize) -> bool {
    tree.span(node)
        .is_some_and(|s| s.start <= at && at < s.end.max(s.start + 1))
}

struct ErrEntry {
    hl7_code: (u16, &'static str),
    severity: Severity,
    app_code: String,
    diagnostic: String,
    user_message: String,
    location: Option<ErrorLocation>,
    span_start: Option<usize>,
}

fn err_entries(req: &AckRequest<'_>) -> Vec<ErrEntry> {
    let mut out: Vec<ErrEntry> = req
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let mut detail = d.message.clone();
            if let Some(s) = d.span {
                detail.push_str(&format!(" (bytes {}..{})", s.start, s.end));
            }
            ErrEntry {
                hl7_code: table_0357(d, req.status),
                severity: d.severity,
                app_code: d.code.clone(),
                diagnostic: detail,
                user_message: req
                    .error
                    .map_or_else(|| d.message.clone(), |e| e.message.clone()),
                location: d.location.as_deref().and_then(ErrorLocation::parse),
                span_start: d.span.map(|s| s.start),
            }
        })
        .collect();
    if out.is_empty() {
        let message = req
            .error
            .map_or_else(|| "message not accepted".to_owned(), |e| e.message.clone());
        let internal = req
            .error
            .is_some_and(|e| e.kind == gateway_core::ErrorKind::Internal);
        out.push(ErrEntry {
            hl7_code: if internal
                || req.status == AckStatus::Reject && req.error.is_some_and(|e| e.retryable)
            {
                (207, "Application internal error")
            } else {
                classify_text(&message).unwrap_or((207, "Application internal error"))
            },
            severity: Severity::Error,
            app_code: req.error.map_or("", |e| e.kind.as_str()).to_owned(),
            diagnostic: message.clone(),
            user_message: message,
            location: None,
            span_start: None,
        });
    }
    out
}

/// HL7 table 0357 code for a diagnostic.
fn table_0357(d: &Diagnostic, status: AckStatus) -> (u16, &'static str) {
    match d.code.as_str() {
        codes::NOT_HL7 | codes::BAD_SEGMENT | codes::SECOND_MSH | codes::SEVERAL_MESSAGES => {
            (100, "Segment sequence error")
        }
        codes::BAD_SEPARATORS | codes::INVALID_BYTES | codes::BAD_ESCAPE => {
            (102, "Data type error")
        }
        codes::NO_MESSAGE_TYPE | codes::NO_CONTROL_ID => (101, "Required field missing"),
        codes::NO_VERSION => (203, "Unsupported version id"),
        _ => classify_text(&d.message).unwrap_or(if status == AckStatus::Reject {
            (207, "Application internal error")
        } else {
            (102, "Data type error")
        }),
    }
}

/// Classifies mapping-engine messages by what they say (their codes are the
/// mapping crate's; the words are stable enough for an ACK code).
fn classify_text(message: &str) -> Option<(u16, &'static str)> {
    let m = message.to_ascii_lowercase();
    if m.contains("message type") || m.contains("no mapping") || m.contains("unsupported message") {
        Some((200, "Unsupported message type"))
    } else if m.contains("event") && m.contains("unsupported") {
        Some((201, "Unsupported event code"))
    } else if m.contains("processing id") {
        Some((202, "Unsupported processing id"))
    } else if m.contains("version") {
        Some((203, "Unsupported version id"))
    } else if m.contains("required") || m.contains("missing") {
        Some((101, "Required field missing"))
    } else if m.contains("table") || m.contains("code") && m.contains("unknown") {
        Some((103, "Table value not found"))
    } else if m.contains("duplicate") {
        Some((205, "Duplicate key identifier"))
    } else {
        None
    }
}

fn write_err(
    out: &mut Vec<u8>,
    e: &ErrEntry,
    loc: Option<&ErrorLocation>,
    seps: &Separators,
    charset: Charset,
    version: &str,
) {
    let fs = seps.field.to_string();
    let cs = seps.component.to_string();
    let ss = seps.subcomponent.unwrap_or(seps.component).to_string();
    let enc = |s: &str| charset.encode(&encode(s, seps));
    let num = |n: usize| if n == 0 { String::new() } else { n.to_string() };
    out.extend(b"ERR");
    if version_before(version, (2, 5, 0)) {
        // ERR-1 ELD: segment ^ sequence ^ field ^ code&text&HL70357
        out.extend(fs.as_bytes());
        if let Some(l) = loc {
            out.extend(enc(&l.segment));
            out.extend(cs.as_bytes());
            out.extend(num(l.sequence).as_bytes());
            out.extend(cs.as_bytes());
            out.extend(num(l.field).as_bytes());
        } else {
            out.extend(cs.as_bytes());
            out.extend(cs.as_bytes());
        }
        out.extend(cs.as_bytes());
        out.extend(e.hl7_code.0.to_string().as_bytes());
        out.extend(ss.as_bytes());
        out.extend(enc(e.hl7_code.1));
        out.extend(ss.as_bytes());
        out.extend(b"HL70357");
        out.push(b'\r');
        return;
    }
    out.extend(fs.as_bytes()); // ERR-1 (deprecated) empty
    out.extend(fs.as_bytes());
    if let Some(l) = loc {
        let parts = [
            l.segment.clone(),
            num(l.sequence),
            num(l.field),
            num(l.repetition),
            num(l.component),
            num(l.subcomponent),
        ];
        let last = parts.iter().rposition(|p| !p.is_empty()).unwrap_or(0);
        for (i, p) in parts.iter().take(last + 1).enumerate() {
            if i > 0 {
                out.extend(cs.as_bytes());
            }
            out.extend(enc(p));
        }
    }
    out.extend(fs.as_bytes());
    out.extend(e.hl7_code.0.to_string().as_bytes());
    out.extend(cs.as_bytes());
    out.extend(enc(e.hl7_code.1));
    out.extend(cs.as_bytes());
    out.extend(b"HL70357");
    out.extend(fs.as_bytes());
    out.extend(match e.severity {
        Severity::Error => b"E",
        Severity::Warning => b"W",
        Severity::Info => b"I",
    });
    out.extend(fs.as_bytes());
    if !e.app_code.is_empty() {
        out.extend(enc(&e.app_code));
    }
    out.extend(fs.as_bytes()); // ERR-6
    out.extend(fs.as_bytes());
    out.extend(enc(&e.diagnostic));
    out.extend(fs.as_bytes());
    out.extend(enc(&e.user_message));
    out.push(b'\r');
}

/// An ERR segment of a received ACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceivedError {
    /// ERR-3.1 (or the code in ERR-1.4 for 2.3/2.4 ACKs).
    pub code: Option<String>,
    /// ERR-4 severity.
    pub severity: Option<String>,
    /// ERR-2 / ERR-1 location, as written (`PID^1^3`).
    pub location: Option<String>,
    /// ERR-7 diagnostic information.
    pub diagnostic: Option<String>,
    /// ERR-8 user message.
    pub user_message: Option<String>,
}

/// A received ACK, read through the guarded parser (escapes decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAck {
    /// MSA-1.
    pub code: String,
    /// MSA-2: the control id it acknowledges.
    pub acknowledged_control_id: Option<String>,
    /// MSA-3 text, when present.
    pub text: Option<String>,
    /// The ACK's own MSH-10.
    pub control_id: Option<String>,
    /// Its ERR segments.
    pub errors: Vec<ReceivedError>,
}

impl ReceivedAck {
    /// AA or CA.
    pub fn is_accept(&self) -> bool {
        matches!(self.code.as_str(), "AA" | "CA")
    }
}

/// Why a received ACK could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckParseError {
    /// Not a parseable HL7 message.
    #[error("not an HL7 message: {0}")]
    Unparseable(String),
    /// No MSA segment.
    #[error("the ACK has no MSA segment")]
    NoMsa,
    /// MSA-1 is not one of AA, AE, AR, CA, CE, CR.
    #[error("MSA-1 is not an acknowledgment code")]
    BadCode,
}

/// Reads MSA-1, MSA-2, MSA-3 and the ERR segments of an ACK we received.
pub fn parse_ack(raw: &[u8]) -> Result<ReceivedAck, AckParseError> {
    let doc = crate::parse::parse_message(raw).map_err(|d| {
        AckParseError::Unparseable(d.first().map_or_else(String::new, ToString::to_string))
    })?;
    let tree = &doc.tree;
    let root = tree.root();
    let msa = tree
        .children_named(root, "MSA")
        .next()
        .ok_or(AckParseError::NoMsa)?;
    let get = |seg: NodeId, field: &str| -> Option<String> {
        tree.children_named(seg, field)
            .next()
            .and_then(|f| tree.value(f))
            .map(str::to_owned)
    };
    let comp = |seg: NodeId, field: &str, c: &str| -> Option<String> {
        let f = tree.children_named(seg, field).next()?;
        let n = tree.children_named(f, c).next()?;
        tree.value(n).map(str::to_owned)
    };
    let code = comp(msa, "1", "1").ok_or(AckParseError::BadCode)?;
    if !matches!(code.as_str(), "AA" | "AE" | "AR" | "CA" | "CE" | "CR") {
        return Err(AckParseError::BadCode);
    }
    let errors = tree
        .children_named(root, "ERR")
        .map(|err| {
            let v25 = get(err, "3").is_some() || get(err, "2").is_some();
            if v25 {
                ReceivedError {
                    code: comp(err, "3", "1"),
                    severity: get(err, "4"),
                    location: get(err, "2"),
                    diagnostic: get(err, "7"),
                    user_message: get(err, "8"),
                }
            } else {
                ReceivedError {
                    code: comp(err, "1", "4")
                        .map(|c| c.split(['&']).next().unwrap_or("").to_owned()),
                    location: get(err, "1"),
                    ..ReceivedError::default()
                }
            }
        })
        .collect();
    Ok(ReceivedAck {
        code,
        acknowledged_control_id: get(msa, "2"),
        text: get(msa, "3"),
        control_id: doc.meta.control_id.clone(),
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let l = ErrorLocation::parse("IN1[2]-36[1].2.3").expect("parses");
        assert_eq!(
            (
                l.segment.as_str(),
                l.sequence,
                l.field,
                l.repetition,
                l.component,
                l.subcomponent
            ),
            ("IN1", 2, 36, 1, 2, 3)
        );
        assert_eq!(ErrorLocation::parse("MSH-9").map(|l| l.field), Some(9));
        assert!(ErrorLocation::parse("bogus").is_none());
    }

    #[test]
    fn version_compare() {
        assert!(version_before("2.3", (2, 3, 1)));
        assert!(!version_before("2.3.1", (2, 3, 1)));
        assert!(!version_before("2.5.1", (2, 5, 0)));
        assert!(version_before("2.4", (2, 5, 0)));
    }
}

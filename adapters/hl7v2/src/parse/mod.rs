//! The guarded HL7 v2 parser: raw bytes → [`SourceDocument`] with byte spans and
//! diagnostics. Never panics, never drops data silently.
//!
//! # Why a wrapper, and what hl7-parser does in it
//!
//! hl7-parser 0.3 was measured (when it was evaluated for this crate) to be exact
//! about byte ranges but to fail in five ways: it panics decoding escapes after
//! non-ASCII text and decodes only some escapes; its message parser silently stops
//! at a blank line, a bad segment name or LF/CRLF endings (reporting success);
//! it reads v2.7+ `^~\&#` MSH-2 as MSH-2 = `^~\&` and MSH-3 = `#`, shifting the
//! numbering; it works on `&str` only (no MSH-18 charsets); its builder
//! double-escapes. So this module does the message-level work itself:
//!
//! | step | who | module |
//! | --- | --- | --- |
//! | BOM, batches (FHS/BHS/BTS/FTS, bare concatenation), message boundaries | us, on bytes | [`batch`] |
//! | MSH-1/MSH-2 (incl. the truncation character), MSH-18 charset | us, on bytes | [`header`] |
//! | charset decoding with a decoded→raw offset map | us + encoding_rs | [`charset`] |
//! | segment lines (CR, LF, CRLF), blank lines, segment-name checks, trailing junk | us | this module |
//! | one segment line → fields/repetitions/components/subcomponents + ranges | our [`tokenize::split_own`]; hl7-parser (`parse_segment_with_separators`) as its test oracle | [`tokenize`] |
//! | escape decoding | us | [`escape`] |
//!
//! Splitting one line used to go through hl7-parser with our tokenizer as the
//! fallback. Measured (`cargo bench -p gateway-hl7v2 --bench stages`, whose
//! baseline is bare `hl7_parser::parse_message` in the same run), the guarded
//! parse cost 2.6× that baseline that way and 1.7× with our allocation-free
//! tokenizer alone (161 → 91 CPU µs per 1 KB message) — hl7-parser builds its
//! own nested vectors, which were then copied into ours. Both tokenizers
//! give the same ranges wherever hl7-parser can split a line (a differential
//! proptest, `tests/proptests.rs`), so hl7-parser now serves as the oracle
//! that keeps ours honest.
//!
//! # The tree
//!
//! Root `message` → segment nodes named by segment id (`PID`), in order → field
//! nodes named `1`, `2`, … (one node per repetition; MSH numbered per the
//! standard: MSH-1 is the field separator, MSH-2 the encoding characters, so
//! MSH-9 is the message type) → component nodes `1`… → subcomponent nodes `1`….
//! Components and subcomponents always exist for non-empty values, so `PID-8.1`
//! works on a plain `F`. Empty fields, components and subcomponents get no node
//! (names carry the position); an empty *repetition* keeps a value-less node so
//! `[2]` still means the second one.
//!
//! Values: a node with no inner structure (one component, one subcomponent)
//! holds its **decoded** text; a composite node holds its raw text (escapes
//! kept, so the separators in it stay unambiguous). The HL7 null `""` gives a
//! node without a value. Spans are byte ranges into the raw input (not the
//! decoded text) — for ISO 8859-1 and other single-byte charsets they are
//! mapped back through [`charset::OffsetMap`].

pub mod batch;
pub mod charset;
pub mod escape;
pub mod header;
pub mod tokenize;

use std::borrow::Cow;
use std::ops::Range;

use gateway_core::source::MessageMeta;
use gateway_core::{Diagnostic, NodeId, SourceDocument, SourceFormat, SourceTree, Span};

pub use batch::{ParsedInput, ParsedMessage, parse_input};
pub use charset::Charset;
pub use header::{Header, scan_header};

/// Node names of positions 1..=128 (fields, repetitions' components,
/// subcomponents), borrowed by every node instead of allocated per node.
const NUMBERS: [&str; 128] = [
    "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17",
    "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32", "33",
    "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47", "48", "49",
    "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63", "64", "65",
    "66", "67", "68", "69", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79", "80", "81",
    "82", "83", "84", "85", "86", "87", "88", "89", "90", "91", "92", "93", "94", "95", "96", "97",
    "98", "99", "100", "101", "102", "103", "104", "105", "106", "107", "108", "109", "110", "111",
    "112", "113", "114", "115", "116", "117", "118", "119", "120", "121", "122", "123", "124",
    "125", "126", "127", "128",
];

/// The node name of position `n` (1-based).
fn number_name(n: usize) -> Cow<'static, str> {
    match n.checked_sub(1).and_then(|i| NUMBERS.get(i)) {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(n.to_string()),
    }
}

/// Diagnostic codes of the HL7 parser (`H0xx`).
pub mod codes {
    /// No MSH segment where a message must start, or text before it.
    pub const NOT_HL7: &str = "H001";
    /// MSH-1/MSH-2 separators invalid (duplicated, alphanumeric, too few/many).
    pub const BAD_SEPARATORS: &str = "H002";
    /// A blank (or whitespace-only) line between segments.
    pub const BLANK_LINE: &str = "H003";
    /// A line that is not a segment: bad segment name or junk.
    pub const BAD_SEGMENT: &str = "H004";
    /// A byte-order mark before the message.
    pub const BOM: &str = "H005";
    /// MSH-18 names a charset we do not know; read as UTF-8/windows-1252.
    pub const UNKNOWN_CHARSET: &str = "H006";
    /// Bytes invalid in the declared charset.
    pub const INVALID_BYTES: &str = "H007";
    /// A malformed or unsupported escape sequence (kept as text).
    pub const BAD_ESCAPE: &str = "H008";
    /// A second MSH inside one message.
    pub const SECOND_MSH: &str = "H009";
    /// The input holds several messages where one was expected.
    pub const SEVERAL_MESSAGES: &str = "H010";
    /// Blank lines or whitespace after the last segment.
    pub const TRAILING_BLANK: &str = "H011";
    /// Batch envelope problem (count mismatch, missing trailer).
    pub const BATCH: &str = "H012";
    /// MSH-9 (message type) missing.
    pub const NO_MESSAGE_TYPE: &str = "H015";
    /// MSH-10 (control id) missing.
    pub const NO_CONTROL_ID: &str = "H016";
    /// MSH-12 (version) missing.
    pub const NO_VERSION: &str = "H017";
    /// Leading whitespace before MSH.
    pub const LEADING_BLANK: &str = "H014";
}

/// The delimiters of one message, from MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    /// Field separator (MSH-1), normally `|`.
    pub field: char,
    /// Component separator, normally `^`.
    pub component: char,
    /// Repetition separator, normally `~`.
    pub repetition: char,
    /// Escape character, normally `\`; absent when MSH-2 has only 2 characters.
    pub escape: Option<char>,
    /// Subcomponent separator, normally `&`.
    pub subcomponent: Option<char>,
    /// v2.7+ truncation character, normally `#`.
    pub truncation: Option<char>,
}

impl Default for Separators {
    fn default() -> Self {
        Separators {
            field: '|',
            component: '^',
            repetition: '~',
            escape: Some('\\'),
            subcomponent: Some('&'),
            truncation: None,
        }
    }
}

impl Separators {
    /// Separators from MSH-1 and the MSH-2 text; the error says what is wrong.
    pub fn from_msh(field: char, encoding: &str) -> Result<Self, &'static str> {
        let ok = |c: char| c.is_ascii_graphic() && !c.is_ascii_alphanumeric();
        if !ok(field) {
            return Err(
                "MSH-1 field separator must be a printable non-alphanumeric ASCII character",
            );
        }
        let chars: Vec<char> = encoding.chars().collect();
        if chars.len() < 2 || chars.len() > 5 {
            return Err("MSH-2 must hold 2 to 5 encoding characters");
        }
        for (i, c) in chars.iter().enumerate() {
            if !ok(*c) || *c == field || chars[..i].contains(c) {
                return Err(
                    "MSH-2 encoding characters must be distinct printable non-alphanumeric ASCII characters",
                );
            }
        }
        Ok(Separators {
            field,
            component: chars[0],
            repetition: chars[1],
            escape: chars.get(2).copied(),
            subcomponent: chars.get(3).copied(),
            truncation: chars.get(4).copied(),
        })
    }

    /// MSH-2 as written: component, repetition, escape, subcomponent, truncation.
    pub fn encoding_characters(&self) -> String {
        let mut s = String::new();
        s.push(self.component);
        s.push(self.repetition);
        s.extend(self.escape);
        s.extend(self.subcomponent);
        s.extend(self.truncation);
        s
    }

    /// hl7-parser's separators; `None` when MSH-2 lacks an escape or
    /// subcomponent character (hl7-parser needs all of them).
    pub(crate) fn to_hl7_parser(self) -> Option<hl7_parser::message::Separators> {
        Some(hl7_parser::message::Separators {
            field: self.field,
            component: self.component,
            subcomponent: self.subcomponent?,
            repetition: self.repetition,
            escape: self.escape?,
            lenient_newlines: false,
        })
    }
}

/// Parses input that must hold exactly one message (a batch envelope around a
/// single message is accepted). Several messages give an error that says so:
/// use [`parse_input`] for batches and concatenations.
///
/// `Err` when no tree could be built at all (no MSH, unusable separators);
/// otherwise the document, whose diagnostics may still contain errors.
pub fn parse_message(raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    let mut input = parse_input(raw);
    match input.messages.len() {
        1 => {
            let only = input.messages.remove(0);
            match only.result {
                Ok(mut doc) => {
                    let mut diags = input.diagnostics;
                    diags.append(&mut doc.diagnostics);
                    doc.diagnostics = diags;
                    Ok(doc)
                }
                Err(mut d) => {
                    input.diagnostics.append(&mut d);
                    Err(input.diagnostics)
                }
            }
        }
        0 => {
            if !input.diagnostics.iter().any(Diagnostic::is_error) {
                input.diagnostics.push(
                    Diagnostic::error(codes::NOT_HL7, "no MSH segment found")
                        .with_span(Span::new(0, raw.len().min(3))),
                );
            }
            Err(input.diagnostics)
        }
        n => {
            let mut diags = vec![
                Diagnostic::error(
                    codes::SEVERAL_MESSAGES,
                    format!("input holds {n} messages; split the batch and parse each"),
                )
                .with_span(Span::new(0, raw.len())),
            ];
            diags.append(&mut input.diagnostics);
            Err(diags)
        }
    }
}

/// Parses one message for **intake** (the MLLP responder): like
/// [`parse_message`], but a message whose segment structure is broken — a line
/// that is not a segment (`P@D|…`, junk between segments) or a second MSH
/// inside it — is refused as unparseable (`Err` with every diagnostic) rather
/// than handed on with a partial tree, so it is answered AR/CR with ERR 100 and
/// stored as rejected instead of being mapped from the segments around the
/// damage. Tools that show a partial tree (`inspect`, `map`) use
/// [`parse_message`].
pub fn parse_for_intake(raw: &[u8]) -> Result<SourceDocument, Vec<Diagnostic>> {
    let doc = parse_message(raw)?;
    if doc
        .diagnostics
        .iter()
        .any(|d| d.is_error() && STRUCTURE_ERRORS.contains(&d.code.as_str()))
    {
        return Err(doc.diagnostics);
    }
    Ok(doc)
}

/// Parser errors that mean the message's segment structure cannot be trusted.
const STRUCTURE_ERRORS: [&str; 2] = [codes::BAD_SEGMENT, codes::SECOND_MSH];

/// A decoded line: its byte range in the decoded text.
struct Line {
    start: usize,
    end: usize,
}

fn split_lines(text: &str) -> Vec<Line> {
    let bytes = text.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\r' => {
                lines.push(Line { start, end: i });
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            b'\n' => {
                lines.push(Line { start, end: i });
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push(Line {
            start,
            end: bytes.len(),
        });
    }
    lines
}

fn valid_segment_name(line: &str, field: char) -> bool {
    let b = line.as_bytes();
    b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[1..3]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && (b.len() == 3 || line[3..].starts_with(field))
}

/// Parses the one message in `raw[range]`, which starts with `MSH`. Spans are
/// offsets into `raw`.
pub(crate) fn parse_one(
    raw: &[u8],
    range: Range<usize>,
) -> Result<SourceDocument, Vec<Diagnostic>> {
    let base = range.start;
    let bytes = raw.get(range.clone()).unwrap_or(&[]);
    let mut diags = Vec::new();
    let Some(header) = scan_header(bytes) else {
        return Err(vec![
            Diagnostic::error(codes::NOT_HL7, "message does not start with an MSH segment")
                .with_span(Span::new(base, base + bytes.len().min(3))),
        ]);
    };
    let seps = match header.separators {
        Ok(s) => s,
        Err(why) => {
            return Err(vec![
                Diagnostic::error(codes::BAD_SEPARATORS, why)
                    .with_span(Span::new(base + 3, base + header.msh2_end))
                    .at("MSH-2"),
            ]);
        }
    };
    let charset = match Charset::from_msh18(&header.charset_label()) {
        Some(c) => c,
        None => {
            diags.push(
                Diagnostic::warning(
                    codes::UNKNOWN_CHARSET,
                    "MSH-18 names an unsupported charset; read as UTF-8 (windows-1252 where not valid UTF-8)",
                )
                .at("MSH-18"),
            );
            Charset::Utf8
        }
    };
    let decoded = charset::decode(bytes, base, charset);
    for at in &decoded.invalid {
        diags.push(
            Diagnostic::warning(
                codes::INVALID_BYTES,
                format!(
                    "bytes not valid {}; decoded as {}",
                    charset.name(),
                    decoded.used.name()
                ),
            )
            .with_span(Span::new(*at, at + 1)),
        );
    }
    let mut builder = TreeBuilder {
        text: &decoded.text,
        map: &decoded.map,
        seps,
        charset: decoded.used,
        tree: SourceTree::new("message"),
        diags,
    };
    // About one node per 3 bytes of a typical message (the bench's 1 KB
    // ORM^O01 makes 302), so the arena is not regrown and copied halfway;
    // capped so a huge message does not reserve more than it is likely to
    // use up front.
    builder.tree.reserve((bytes.len() / 3 + 16).min(8192));
    // Values are slices of the message (composite values repeat their
    // parts), so about twice its size; capped like the nodes.
    builder.tree.reserve_text((bytes.len() * 2).min(1 << 20));
    let root = builder.tree.root();
    builder
        .tree
        .set_span(root, Some(Span::new(base, base + bytes.len())));

    let lines = split_lines(&decoded.text);
    let last_content = lines
        .iter()
        .rposition(|l| !decoded.text[l.start..l.end].trim().is_empty());
    for (idx, line) in lines.iter().enumerate() {
        let text = &decoded.text[line.start..line.end];
        let span = builder.span(line.start..line.end);
        if text.trim().is_empty() {
            let trailing = last_content.is_none_or(|l| idx > l);
            let (code, msg) = if trailing {
                (codes::TRAILING_BLANK, "blank line after the last segment")
            } else {
                (codes::BLANK_LINE, "blank line between segments")
            };
            builder
                .diags
                .push(Diagnostic::warning(code, msg).with_span(span_or_point(
                    span,
                    builder.span(line.start..line.start + 1),
                )));
            continue;
        }
        if !valid_segment_name(text, seps.field) {
            builder.diags.push(
                Diagnostic::error(
                    codes::BAD_SEGMENT,
                    "line is not a segment (segment ids are 3 uppercase letters or digits followed by the field separator)",
                )
                .with_span(span),
            );
            continue;
        }
        let name = &text[..3];
        if idx == 0 {
            builder.msh(line.start, text, &header);
        } else if name == "MSH" {
            builder.diags.push(
                Diagnostic::error(
                    codes::SECOND_MSH,
                    "second MSH inside one message; the rest is not part of this message",
                )
                .with_span(builder.span(line.start..decoded.text.len())),
            );
            break;
        } else {
            builder.segment(line.start, text);
        }
    }
    let TreeBuilder {
        tree, mut diags, ..
    } = builder;
    let meta = meta_of(&tree, &mut diags, base);
    Ok(SourceDocument {
        format: SourceFormat::Hl7v2,
        meta,
        tree,
        diagnostics: diags,
    })
}

fn span_or_point(span: Span, point: Span) -> Span {
    if span.is_empty() { point } else { span }
}

struct TreeBuilder<'a> {
    text: &'a str,
    map: &'a charset::OffsetMap,
    seps: Separators,
    charset: Charset,
    tree: SourceTree,
    diags: Vec<Diagnostic>,
}

impl TreeBuilder<'_> {
    fn span(&self, r: Range<usize>) -> Span {
        Span::new(self.map.raw(r.start), self.map.raw(r.end))
    }

    fn msh(&mut self, start: usize, line: &str, header: &Header) {
        let root = self.tree.root();
        let seg = self.tree.push(
            root,
            "MSH",
            None,
            Some(self.span(start..start + line.len())),
        );
        let mut f1 = [0u8; 4];
        let f1: &str = self.seps.field.encode_utf8(&mut f1);
        self.tree.push_text(
            seg,
            number_name(1),
            Some(f1),
            Some(self.span(start + 3..start + 4)),
        );
        let msh2_end = header.msh2_end.min(line.len());
        let msh2 = line.get(4..msh2_end).unwrap_or("");
        if !msh2.is_empty() {
            self.tree.push_text(
                seg,
                number_name(2),
                Some(msh2),
                Some(self.span(start + 4..start + msh2_end)),
            );
        }
        if msh2_end >= line.len() {
            return;
        }
        let from = msh2_end; // the field separator
        if line.get(from..).is_none() {
            return;
        }
        self.fields(seg, start, line, from + self.seps.field.len_utf8(), 3);
    }

    fn segment(&mut self, start: usize, line: &str) {
        let root = self.tree.root();
        let name = &line[..3];
        let seg = self
            .tree
            .push(root, name, None, Some(self.span(start..start + line.len())));
        // As `tokenize::split_own` splits it, walked in place: the segment
        // name, then fields from after the first field separator.
        if line.len() > 3 {
            self.fields(seg, start, line, 3 + self.seps.field.len_utf8(), 1);
        }
    }

    /// Pushes the fields of `line` from byte `from` on, numbered from
    /// `first`: the ranges of [`tokenize::split_own`] (the differential
    /// proptest's subject), walked without building its nested vectors.
    fn fields(&mut self, seg: NodeId, start: usize, line: &str, from: usize, first: usize) {
        let seps = self.seps;
        let plain = |r: &Range<usize>, sep: Option<char>| {
            sep.is_none_or(|c| !line.get(r.clone()).unwrap_or("").contains(c))
        };
        let fields = tokenize::split_ranges(line, from..line.len(), seps.field);
        for (i, field) in fields.enumerate() {
            if field.is_empty() {
                continue;
            }
            let name = number_name(first + i);
            for rep in tokenize::split_ranges(line, field, seps.repetition) {
                let no_subs = plain(&rep, seps.subcomponent);
                let simple = no_subs && plain(&rep, Some(seps.component));
                let value = self.value(start, line, rep.clone(), simple);
                let span = Some(self.span(start + rep.start..start + rep.end));
                let rep_node = self
                    .tree
                    .push_text(seg, name.clone(), value.as_deref(), span);
                if simple {
                    // One component of one subcomponent: the same decoded
                    // text at all three levels, decoded (and its escapes
                    // reported) once.
                    if !rep.is_empty() {
                        let one = number_name(1);
                        let c = self
                            .tree
                            .push_same_value(rep_node, one.clone(), rep_node, span);
                        self.tree.push_same_value(c, one, rep_node, span);
                    }
                    continue;
                }
                let comps = tokenize::split_ranges(line, rep, seps.component);
                for (ci, crange) in comps.enumerate() {
                    if crange.is_empty() {
                        continue;
                    }
                    let leaf = no_subs || plain(&crange, seps.subcomponent);
                    let cvalue = self.value(start, line, crange.clone(), leaf);
                    let cspan = Some(self.span(start + crange.start..start + crange.end));
                    let cnode = self.tree.push_text(
                        rep_node,
                        number_name(ci + 1),
                        cvalue.as_deref(),
                        cspan,
                    );
                    // A leaf component (always one without a subcomponent
                    // separator) is its own one subcomponent.
                    match seps.subcomponent.filter(|_| !leaf) {
                        None => {
                            self.tree
                                .push_same_value(cnode, number_name(1), cnode, cspan);
                        }
                        Some(sub) => {
                            let subs = tokenize::split_ranges(line, crange, sub);
                            for (si, srange) in subs.enumerate() {
                                self.subcomponent(cnode, si, start, line, srange);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Pushes subcomponent `index` (0-based) of a component, unless empty.
    fn subcomponent(
        &mut self,
        cnode: NodeId,
        index: usize,
        start: usize,
        line: &str,
        srange: Range<usize>,
    ) {
        if srange.is_empty() {
            return;
        }
        let svalue = self.value(start, line, srange.clone(), true);
        self.tree.push_text(
            cnode,
            number_name(index + 1),
            svalue.as_deref(),
            Some(self.span(start + srange.start..start + srange.end)),
        );
    }

    /// The value of a node: decoded when `leaf`, raw otherwise; `None` for
    /// empty and for the HL7 null `""`. Borrowed from the line unless an
    /// escape had to be decoded (the tree copies it into its text).
    fn value<'l>(
        &mut self,
        start: usize,
        line: &'l str,
        r: Range<usize>,
        leaf: bool,
    ) -> Option<Cow<'l, str>> {
        let raw = line.get(r.clone())?;
        if raw.is_empty() || raw == "\"\"" {
            return None;
        }
        if !leaf {
            return Some(Cow::Borrowed(raw));
        }
        let mut issues = Vec::new();
        let decoded = escape::decode(raw, &self.seps, self.charset, &mut issues);
        for issue in issues {
            let at = start + r.start + issue.offset;
            let span = self.span(at..(at + issue.len).min(self.text.len()));
            self.diags
                .push(Diagnostic::warning(codes::BAD_ESCAPE, issue.message).with_span(span));
        }
        Some(decoded)
    }
}

/// The first value at `SEG-field.component` (component 0 = the whole first repetition).
pub fn header_value<'t>(
    tree: &'t SourceTree,
    segment: &str,
    field: usize,
    component: usize,
) -> Option<&'t str> {
    let seg = tree.children_named(tree.root(), segment).next()?;
    let f = tree.children_named(seg, &field.to_string()).next()?;
    if component == 0 {
        return tree.value(f);
    }
    let c = tree.children_named(f, &component.to_string()).next()?;
    tree.value(c)
}

fn meta_of(tree: &SourceTree, diags: &mut Vec<Diagnostic>, base: usize) -> MessageMeta {
    let msh_span = tree
        .children_named(tree.root(), "MSH")
        .next()
        .and_then(|n| tree.span(n))
        .unwrap_or(Span::new(base, base + 3));
    let code = header_value(tree, "MSH", 9, 1);
    let trigger = header_value(tree, "MSH", 9, 2);
    if code.is_none() {
        diags.push(
            Diagnostic::error(codes::NO_MESSAGE_TYPE, "MSH-9 message type is missing")
                .with_span(msh_span)
                .at("MSH-9"),
        );
    }
    let control_id = header_value(tree, "MSH", 10, 0).map(str::to_owned);
    if control_id.is_none() {
        diags.push(
            Diagnostic::error(codes::NO_CONTROL_ID, "MSH-10 message control id is missing")
                .with_span(msh_span)
                .at("MSH-10"),
        );
    }
    let version = header_value(tree, "MSH", 12, 1).map(str::to_owned);
    if version.is_none() {
        diags.push(
            Diagnostic::warning(codes::NO_VERSION, "MSH-12 version is missing")
                .with_span(msh_span)
                .at("MSH-12"),
        );
    }
    let app = header_value(tree, "MSH", 3, 1);
    let fac = header_value(tree, "MSH", 4, 1);
    let sender = match (app, fac) {
        (None, None) => None,
        (a, f) => Some(format!("{}^{}", a.unwrap_or(""), f.unwrap_or(""))),
    };
    MessageMeta {
        message_type: code.map(|c| match trigger {
            Some(t) => format!("{c}^{t}"),
            None => c.to_owned(),
        }),
        trigger: trigger.map(str::to_owned),
        version,
        control_id,
        sender,
    }
}

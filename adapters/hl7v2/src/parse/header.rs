//! Reading the MSH header at the byte level, before any charset decoding.
//!
//! The separators (MSH-1, MSH-2 with the optional v2.7+ truncation character)
//! and MSH-18 must be known before the message can be decoded, and the ACK
//! builder needs MSH-3…MSH-18 even when the rest of the message is garbage. The
//! header up to MSH-18 is ASCII in every real charset, so a byte scan is exact.
//! Fields are kept as raw bytes: an ACK echoes them byte for byte, in the
//! message's own charset and escaping.

use super::Separators;

/// The MSH segment as raw bytes, split on the field separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Byte offset of `MSH` in the scanned input.
    pub start: usize,
    /// The separators, or why MSH-1/MSH-2 are unusable.
    pub separators: Result<Separators, &'static str>,
    /// Offset (relative to `start`) one past the end of MSH-2.
    pub msh2_end: usize,
    /// Raw fields by HL7 number: index 0 is `MSH`, 1 the field separator,
    /// 2 the encoding characters, 3 MSH-3 (sending application), …
    pub fields: Vec<Vec<u8>>,
}

impl Header {
    /// Raw bytes of MSH-`n` (empty when absent).
    pub fn field(&self, n: usize) -> &[u8] {
        self.fields.get(n).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Raw bytes of component `c` (1-based) of the first repetition of MSH-`n`.
    pub fn component(&self, n: usize, c: usize) -> &[u8] {
        let field = self.field(n);
        let (rep, comp) = match &self.separators {
            Ok(s) => (s.repetition as u32, s.component as u32),
            Err(_) => (u32::from(b'~'), u32::from(b'^')),
        };
        let first = field.split(|b| u32::from(*b) == rep).next().unwrap_or(&[]);
        first
            .split(|b| u32::from(*b) == comp)
            .nth(c.saturating_sub(1))
            .unwrap_or(&[])
    }

    /// MSH-`n` component `c` as text (lossy; header fields are ASCII).
    pub fn text(&self, n: usize, c: usize) -> String {
        String::from_utf8_lossy(self.component(n, c))
            .trim()
            .to_owned()
    }

    /// The MSH-18 charset name (first repetition), trimmed; empty when absent.
    pub fn charset_label(&self) -> String {
        self.text(18, 1)
    }
}

/// Scans the MSH at the very start of `bytes`; `None` when `bytes` does not
/// start with `MSH` plus a field separator.
pub fn scan_header(bytes: &[u8]) -> Option<Header> {
    scan_at(bytes, 0)
}

/// Best effort for answering garbage: skips a BOM and whitespace, else looks
/// for the first line that starts with `MSH`.
pub fn find_header(bytes: &[u8]) -> Option<Header> {
    let mut i = if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        3
    } else {
        0
    };
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    if let Some(h) = scan_at(bytes, i) {
        return Some(h);
    }
    let mut pos = 0;
    while let Some(rel) = bytes[pos..].iter().position(|b| *b == b'\r' || *b == b'\n') {
        let next = pos + rel + 1;
        if let Some(h) = scan_at(bytes, next) {
            return Some(h);
        }
        pos = next;
        if pos >= bytes.len() {
            break;
        }
    }
    None
}

fn scan_at(bytes: &[u8], start: usize) -> Option<Header> {
    let rest = bytes.get(start..)?;
    if !rest.starts_with(b"MSH") || rest.len() < 4 {
        return None;
    }
    let line_end = rest
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(rest.len());
    let line = &rest[..line_end];
    // `MSH` alone on its line has no field separator: not a header.
    let &fs = line.get(3)?;
    let msh2_end = line[4..]
        .iter()
        .position(|b| *b == fs)
        .map_or(line.len(), |p| 4 + p);
    let mut fields = vec![b"MSH".to_vec(), vec![fs], line[4..msh2_end].to_vec()];
    if msh2_end < line.len() {
        fields.extend(line[msh2_end + 1..].split(|b| *b == fs).map(<[u8]>::to_vec));
    }
    let separators = if fs.is_ascii() {
        match std::str::from_utf8(&line[4..msh2_end]) {
            Ok(enc) => Separators::from_msh(char::from(fs), enc),
            Err(_) => Err("MSH-2 encoding characters must be ASCII"),
        }
    } else {
        Err("MSH-1 field separator must be a printable non-alphanumeric ASCII character")
    };
    Some(Header {
        start,
        separators,
        msh2_end,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v27_truncation_character_keeps_numbering() {
        let h = scan_header(
            b"MSH|^~\\&#|APP|FAC|RAPP|RFAC|20260101||ORM^O01|C1|P|2.7|||AL|NE||UNICODE UTF-8\rPID|",
        )
        .expect("header");
        let seps = h.separators.expect("valid");
        assert_eq!(seps.truncation, Some('#'));
        assert_eq!(h.field(3), b"APP");
        assert_eq!(h.text(9, 2), "O01");
        assert_eq!(h.field(10), b"C1");
        assert_eq!(h.charset_label(), "UNICODE UTF-8");
    }

    #[test]
    fn msh_without_field_separator_is_no_header() {
        // Found by the `parse` fuzz target: `MSH` alone on a line indexed past its end.
        assert!(scan_header(b"MSH\nPID|1").is_none());
        assert!(find_header(b"MSH\rMSH").is_none());
        assert!(find_header(b"x\nMSH").is_none());
    }

    #[test]
    fn find_header_skips_bom_and_junk_lines() {
        let h = find_header(b"\xEF\xBB\xBFjunk\nMSH|^~\\&|A").expect("found");
        assert_eq!(h.start, 8);
        assert_eq!(h.field(3), b"A");
        assert!(find_header(b"no header here").is_none());
    }
}

//! HL7 v2 escape sequences, decoded and encoded by us.
//!
//! hl7-parser 0.3's decoder panics on non-ASCII text before an escape (it uses a
//! char index as a byte index) and leaves `\Xhh\`, `\H\`, `\N\` undecoded; its
//! builder double-escapes. So both directions live here, work on `&str` slices
//! with byte offsets only, and never panic.
//!
//! Decoding: `\F\ \S\ \T\ \R\ \E\` give the separators back, `\P\` the v2.7+
//! truncation character, `\Xhh..\` bytes in the message's charset, `\.br\` and
//! `\.sp\` a line feed; `\H\ \N\` (highlighting) and the other formatting commands
//! (`\.in\`, `\.ti\`, `\.sk\`, `\.ce\`, `\.fi\`, `\.nf\`) are dropped; `\C..\`/`\M..\`
//! (charset switches) are dropped with a warning. Anything else (unknown,
//! unterminated, undecodable hex) is kept literally and reported as an
//! [`EscapeIssue`] so no data is lost.
//!
//! Encoding escapes the five (or six) delimiters and every control character
//! (`\r` → `\X0D\`), so `decode(encode(s)) == s` for every string (proptested).

use std::borrow::Cow;
use std::fmt::Write as _;

use super::Separators;
use super::charset::Charset;

/// A problem found while decoding, at a byte offset into the raw (escaped) text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscapeIssue {
    /// Byte offset of the escape character in the raw text.
    pub offset: usize,
    /// Length in bytes of the offending sequence.
    pub len: usize,
    /// What is wrong (no data quoted).
    pub message: &'static str,
}

/// Decodes the escape sequences in `raw` (one leaf value: a subcomponent, or a
/// whole field when it has no structure).
pub fn decode<'a>(
    raw: &'a str,
    seps: &Separators,
    charset: Charset,
    issues: &mut Vec<EscapeIssue>,
) -> Cow<'a, str> {
    let Some(esc) = seps.escape else {
        return Cow::Borrowed(raw);
    };
    if !raw.contains(esc) {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest_start = 0;
    let mut search = 0;
    while let Some(rel) = raw[search..].find(esc) {
        let start = search + rel;
        let body_start = start + esc.len_utf8();
        let Some(body_len) = raw[body_start..].find(esc) else {
            issues.push(EscapeIssue {
                offset: start,
                len: raw.len() - start,
                message: "unterminated escape sequence kept as text",
            });
            break;
        };
        let body = &raw[body_start..body_start + body_len];
        let end = body_start + body_len + esc.len_utf8();
        out.push_str(&raw[rest_start..start]);
        match decode_body(body, seps, charset) {
            Decoded::Text(t) => out.push_str(&t),
            Decoded::Char(c) => out.push(c),
            Decoded::Drop => {}
            Decoded::DropWarn(message) => issues.push(EscapeIssue {
                offset: start,
                len: end - start,
                message,
            }),
            Decoded::Keep(message) => {
                issues.push(EscapeIssue {
                    offset: start,
                    len: end - start,
                    message,
                });
                out.push_str(&raw[start..end]);
            }
        }
        rest_start = end;
        search = end;
        if search >= raw.len() {
            break;
        }
    }
    out.push_str(&raw[rest_start..]);
    Cow::Owned(out)
}

enum Decoded {
    Text(String),
    Char(char),
    Drop,
    DropWarn(&'static str),
    Keep(&'static str),
}

fn decode_body(body: &str, seps: &Separators, charset: Charset) -> Decoded {
    match body {
        "F" => return Decoded::Char(seps.field),
        "S" => return Decoded::Char(seps.component),
        "R" => return Decoded::Char(seps.repetition),
        "H" | "N" => return Decoded::Drop,
        _ => {}
    }
    if body == "T" {
        return match seps.subcomponent {
            Some(c) => Decoded::Char(c),
            None => Decoded::Keep("\\T\\ without a subcomponent separator kept as text"),
        };
    }
    if body == "E" {
        return match seps.escape {
            Some(c) => Decoded::Char(c),
            None => Decoded::Keep("\\E\\ without an escape character kept as text"),
        };
    }
    if body == "P" {
        return match seps.truncation {
            Some(c) => Decoded::Char(c),
            None => Decoded::Keep("\\P\\ without a truncation character kept as text"),
        };
    }
    if let Some(hex) = body.strip_prefix('X') {
        return match hex_bytes(hex) {
            Some(bytes) => match charset.decode_fragment(&bytes) {
                Some(text) => Decoded::Text(text),
                None => Decoded::Keep("hexadecimal escape is not valid in the message charset"),
            },
            None => Decoded::Keep("malformed hexadecimal escape kept as text"),
        };
    }
    if let Some(cmd) = body.strip_prefix('.') {
        if cmd == "br" || cmd.starts_with("sp") {
            return Decoded::Char('\n');
        }
        let known = ["in", "ti", "sk", "ce", "fi", "nf"];
        if known.iter().any(|k| cmd.starts_with(k)) {
            return Decoded::Drop;
        }
        return Decoded::Keep("unknown formatting escape kept as text");
    }
    if body.starts_with('C') || body.starts_with('M') {
        return Decoded::DropWarn("charset switching escape ignored");
    }
    Decoded::Keep("unknown escape sequence kept as text")
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.is_ascii() {
        return None;
    }
    let b = hex.as_bytes();
    b.chunks(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

/// Escapes `text` for use as one leaf value with these separators.
pub fn encode<'a>(text: &'a str, seps: &Separators) -> Cow<'a, str> {
    let needs = |c: char| {
        c == seps.field
            || c == seps.component
            || c == seps.repetition
            || Some(c) == seps.subcomponent
            || Some(c) == seps.escape
            || Some(c) == seps.truncation
            || c.is_control()
    };
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    // Without an escape character nothing can be escaped: drop what would break
    // the structure instead of emitting it raw.
    let Some(esc) = seps.escape else {
        return Cow::Owned(text.chars().filter(|c| !needs(*c)).collect());
    };
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        let code = if c == seps.field {
            Some("F")
        } else if c == seps.component {
            Some("S")
        } else if c == seps.repetition {
            Some("R")
        } else if Some(c) == seps.subcomponent {
            Some("T")
        } else if Some(c) == seps.escape {
            Some("E")
        } else if Some(c) == seps.truncation {
            Some("P")
        } else {
            None
        };
        match code {
            Some(code) => {
                out.push(esc);
                out.push_str(code);
                out.push(esc);
            }
            None if c.is_control() => {
                out.push(esc);
                out.push('X');
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).as_bytes() {
                    let _ = write!(out, "{b:02X}");
                }
                out.push(esc);
            }
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(raw: &str) -> (String, Vec<EscapeIssue>) {
        let mut issues = Vec::new();
        let s = decode(raw, &Separators::default(), Charset::Utf8, &mut issues).into_owned();
        (s, issues)
    }

    #[test]
    fn decodes_all_standard_escapes() {
        assert_eq!(dec(r"a\F\b\S\c\T\d\R\e\E\f").0, "a|b^c&d~e\\f");
        assert_eq!(dec(r"\X41\\X0D0A\x").0, "A\r\nx");
        assert_eq!(dec(r"line1\.br\line2").0, "line1\nline2");
        assert_eq!(dec(r"\H\bold\N\ text").0, "bold text");
    }

    #[test]
    fn non_ascii_before_an_escape_does_not_panic() {
        // hl7-parser 0.3 panics here ("byte index 5 is not a char boundary").
        assert_eq!(dec("ÄÖÜ\\F\\x").0, "ÄÖÜ|x");
        assert_eq!(dec("Müller \\T\\ Søn\\S\\Co").0, "Müller & Søn^Co");
    }

    #[test]
    fn malformed_escapes_are_kept_and_reported() {
        let (s, issues) = dec(r"ab\Q\cd\X4\e\F");
        assert_eq!(s, r"ab\Q\cd\X4\e\F");
        assert_eq!(issues.len(), 3);
        assert_eq!(issues[0].offset, 2);
        assert_eq!(issues[2].offset, 12);
    }

    #[test]
    fn utf8_hex_escape_and_invalid_hex() {
        assert_eq!(dec(r"\XC3A9\").0, "é");
        let (s, issues) = dec(r"\XFF\");
        assert_eq!(s, r"\XFF\");
        assert_eq!(issues.len(), 1);
    }

    #[test]
    fn encodes_delimiters_and_controls() {
        let seps = Separators::default();
        assert_eq!(
            encode("a|b^c&d~e\\f\rg\n", &seps),
            r"a\F\b\S\c\T\d\R\e\E\f\X0D\g\X0A\"
        );
        assert!(matches!(encode("plain ÄÖ", &seps), Cow::Borrowed(_)));
    }
}

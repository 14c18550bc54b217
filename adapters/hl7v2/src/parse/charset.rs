//! MSH-18 character sets: raw bytes → UTF-8 text plus a byte-offset map.
//!
//! The tree holds decoded UTF-8 text, but every span must point into the *raw*
//! bytes the store keeps. For UTF-8 input the two coincide (shifted by a BOM);
//! for single-byte charsets (ISO 8859-1, windows-1252, …) a non-ASCII byte
//! becomes a 2- or 3-byte UTF-8 sequence. [`OffsetMap`] records a checkpoint
//! after every character whose length changed, so a decoded offset maps back to
//! the raw offset with one binary search.
//!
//! ISO 8859-1 (`8859/1`) is decoded exactly here (byte = code point): the WHATWG
//! label `ISO-8859-1` that encoding_rs implements is really windows-1252, which
//! would turn the C1 controls 0x80–0x9F into curly quotes. Every other charset
//! goes through encoding_rs, one byte at a time so the map stays exact.
//! Bytes that are invalid in the declared charset are never dropped: UTF-8
//! input that is not valid UTF-8 is decoded as windows-1252 (every byte maps to
//! a character) and reported.

use encoding_rs::{DecoderResult, Encoding};

/// A character set a message can declare in MSH-18.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// UTF-8 (also the default when MSH-18 is empty or `ASCII`).
    Utf8,
    /// ISO 8859-1, decoded exactly (byte value = code point).
    Latin1,
    /// Any other charset encoding_rs knows (windows-1252, ISO 8859-x, GB 18030…).
    Other(&'static Encoding),
}

impl Charset {
    /// The charset an MSH-18 value names; `None` for unknown or unsupported
    /// (UTF-16/32 are not ASCII-compatible, so the MSH itself could not be read).
    pub fn from_msh18(value: &str) -> Option<Charset> {
        let v = value.trim().to_ascii_uppercase();
        let label = match v.as_str() {
            "" | "ASCII" | "UNICODE UTF-8" | "UTF-8" | "UTF8" | "UNICODE" => {
                return Some(Charset::Utf8);
            }
            "8859/1" | "ISO-8859-1" | "ISO8859-1" | "ISO_8859-1" | "ISO IR100" | "LATIN1" => {
                return Some(Charset::Latin1);
            }
            "WINDOWS-1252" | "CP1252" => "windows-1252",
            "8859/2" => "iso-8859-2",
            "8859/3" => "iso-8859-3",
            "8859/4" => "iso-8859-4",
            "8859/5" => "iso-8859-5",
            "8859/6" => "iso-8859-6",
            "8859/7" => "iso-8859-7",
            "8859/8" => "iso-8859-8",
            "8859/9" => "windows-1254",
            "8859/15" => "iso-8859-15",
            "GB 18030-2000" => "gb18030",
            "BIG-5" => "big5",
            "KS X 1001" => "euc-kr",
            "ISO IR87" | "ISO IR159" => "euc-jp",
            other => other,
        };
        let enc = Encoding::for_label(label.as_bytes())?;
        if enc == encoding_rs::UTF_8 {
            Some(Charset::Utf8)
        } else if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
            None
        } else {
            Some(Charset::Other(enc))
        }
    }

    /// A short name for diagnostics.
    pub fn name(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Latin1 => "ISO-8859-1",
            Charset::Other(e) => e.name(),
        }
    }

    /// Decodes a short byte string (a `\Xhh\` escape); `None` when invalid.
    pub fn decode_fragment(self, bytes: &[u8]) -> Option<String> {
        match self {
            Charset::Utf8 => String::from_utf8(bytes.to_vec()).ok(),
            Charset::Latin1 => Some(bytes.iter().map(|b| char::from(*b)).collect()),
            Charset::Other(enc) => enc
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|c| c.into_owned()),
        }
    }

    /// Encodes text for output in this charset; characters it cannot represent
    /// become `?` (our own output is ASCII; echoed values come from the message).
    pub fn encode(self, text: &str) -> Vec<u8> {
        match self {
            Charset::Utf8 => text.as_bytes().to_vec(),
            Charset::Latin1 => text
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
            Charset::Other(enc) => {
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    let mut buf = [0u8; 4];
                    let s = c.encode_utf8(&mut buf);
                    let (bytes, _, unmappable) = enc.encode(s);
                    if unmappable {
                        out.push(b'?');
                    } else {
                        out.extend_from_slice(&bytes);
                    }
                }
                out
            }
        }
    }
}

/// Maps byte offsets in the decoded UTF-8 text back to offsets in the raw input.
#[derive(Debug, Clone, Default)]
pub struct OffsetMap {
    /// `(decoded, raw)` checkpoints, ascending; between checkpoints bytes map 1:1.
    points: Vec<(usize, usize)>,
}

impl OffsetMap {
    /// The identity map shifted by `base` raw bytes.
    pub fn shifted(base: usize) -> Self {
        OffsetMap {
            points: vec![(0, base)],
        }
    }

    fn push(&mut self, decoded: usize, raw: usize) {
        self.points.push((decoded, raw));
    }

    /// The raw offset of a decoded offset (a character boundary).
    pub fn raw(&self, decoded: usize) -> usize {
        let idx = self.points.partition_point(|(d, _)| *d <= decoded);
        match idx.checked_sub(1).and_then(|i| self.points.get(i)) {
            Some((d, r)) => r + (decoded - d),
            None => decoded,
        }
    }
}

/// Text decoded from raw bytes.
#[derive(Debug, Clone)]
pub struct DecodedText {
    /// The UTF-8 text.
    pub text: String,
    /// Decoded → raw offsets.
    pub map: OffsetMap,
    /// Raw offsets of bytes that were invalid in the charset (replaced or
    /// re-read as windows-1252).
    pub invalid: Vec<usize>,
    /// The charset actually used.
    pub used: Charset,
}

/// Decodes `bytes` (which start at raw offset `base`) as `charset`.
pub fn decode(bytes: &[u8], base: usize, charset: Charset) -> DecodedText {
    match charset {
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => DecodedText {
                text: s.to_owned(),
                map: OffsetMap::shifted(base),
                invalid: Vec::new(),
                used: Charset::Utf8,
            },
            Err(e) => {
                let mut d = decode_stream(bytes, base, encoding_rs::WINDOWS_1252);
                d.invalid.push(base + e.valid_up_to());
                d
            }
        },
        Charset::Latin1 => {
            let mut text = String::with_capacity(bytes.len() + 8);
            let mut map = OffsetMap::shifted(base);
            for (i, b) in bytes.iter().enumerate() {
                text.push(char::from(*b));
                if *b >= 0x80 {
                    map.push(text.len(), base + i + 1);
                }
            }
            DecodedText {
                text,
                map,
                invalid: Vec::new(),
                used: Charset::Latin1,
            }
        }
        Charset::Other(enc) => decode_stream(bytes, base, enc),
    }
}

/// Decodes byte by byte so every character's raw length is known exactly.
fn decode_stream(bytes: &[u8], base: usize, enc: &'static Encoding) -> DecodedText {
    let mut decoder = enc.new_decoder_without_bom_handling();
    let mut text = String::with_capacity(bytes.len() + 16);
    let mut map = OffsetMap::shifted(base);
    let mut invalid = Vec::new();
    let mut buf = [0u8; 32];
    let mut pending_start = 0; // raw index where the not-yet-emitted bytes start
    for i in 0..bytes.len() {
        let last = i + 1 == bytes.len();
        let (result, _read, written) =
            decoder.decode_to_utf8_without_replacement(&bytes[i..=i], &mut buf, last);
        let emitted = std::str::from_utf8(&buf[..written]).unwrap_or("");
        let before = text.len();
        text.push_str(emitted);
        if let DecoderResult::Malformed(_, _) = result {
            invalid.push(base + i);
            text.push('\u{FFFD}');
        }
        if text.len() != before {
            let raw_len = i + 1 - pending_start;
            if text.len() - before != raw_len || raw_len != 1 {
                map.push(text.len(), base + i + 1);
            }
            pending_start = i + 1;
        }
    }
    if pending_start < bytes.len() {
        // Incomplete trailing sequence: keep it visible.
        invalid.push(base + pending_start);
        text.push('\u{FFFD}');
        map.push(text.len(), base + bytes.len());
    }
    DecodedText {
        text,
        map,
        invalid,
        used: Charset::Other(enc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_maps_offsets_back() {
        let raw = b"AB\xE9C\xFCD";
        let d = decode(raw, 10, Charset::Latin1);
        assert_eq!(d.text, "ABéCüD");
        // 'C' is at decoded 4, raw 3 (+10)
        assert_eq!(d.map.raw(4), 13);
        assert_eq!(d.map.raw(d.text.len()), 16);
        assert_eq!(d.map.raw(0), 10);
    }

    #[test]
    fn windows_1252_smart_quotes() {
        let raw = b"x\x93y\x94z";
        let d = decode(raw, 0, Charset::from_msh18("WINDOWS-1252").expect("known"));
        assert_eq!(d.text, "x\u{201C}y\u{201D}z");
        assert_eq!(d.map.raw(d.text.find('y').expect("y")), 2);
        assert_eq!(d.map.raw(d.text.len()), 5);
    }

    #[test]
    fn invalid_utf8_falls_back_without_loss() {
        let raw = b"ab\x96cd";
        let d = decode(raw, 0, Charset::Utf8);
        assert_eq!(d.text, "ab\u{2013}cd");
        assert_eq!(d.invalid, vec![2]);
        assert_eq!(d.map.raw(d.text.find('c').expect("c")), 3);
    }

    #[test]
    fn msh18_names() {
        assert_eq!(Charset::from_msh18("8859/1"), Some(Charset::Latin1));
        assert_eq!(Charset::from_msh18("UNICODE UTF-8"), Some(Charset::Utf8));
        assert_eq!(Charset::from_msh18(""), Some(Charset::Utf8));
        assert!(Charset::from_msh18("UNICODE UTF-16").is_none());
        assert!(Charset::from_msh18("KLINGON").is_none());
        assert_eq!(Charset::Latin1.encode("é€"), vec![0xE9, b'?']);
    }
}

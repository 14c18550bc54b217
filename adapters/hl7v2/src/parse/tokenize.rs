//! Splitting one segment line into fields, repetitions, components and
//! subcomponents, with byte ranges relative to the line.
//!
//! [`split_own`] is the runtime path: a lazy split on each separator in order
//! of precedence, with no buffer besides the result. [`split_with_hl7_parser`]
//! gives the same result through hl7-parser 0.3's segment parser wherever that
//! parser can take the line (not a segment without any field, nor MSH-2 with
//! fewer than four encoding characters); it is the oracle of a differential
//! proptest. Ours is primary because it was measured 1.8× cheaper per message
//! (see the parent module).

use std::ops::Range;

use super::Separators;

/// A segment line split into its parts. Ranges are byte offsets in the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSegment {
    /// The fields after the segment name (index 0 is field 1; for MSH, see the
    /// caller: it prepends MSH-1 and MSH-2).
    pub fields: Vec<RawField>,
}

/// One field with its repetitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawField {
    /// The field's bytes.
    pub range: Range<usize>,
    /// Repetitions (at least one).
    pub reps: Vec<RawComposite>,
}

/// One repetition with its components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawComposite {
    /// The repetition's bytes.
    pub range: Range<usize>,
    /// Components (at least one), each with its subcomponent ranges.
    pub comps: Vec<(Range<usize>, Vec<Range<usize>>)>,
}

/// Splits `line` (which starts with a 3-character segment name) with
/// hl7-parser; `None` when it cannot or its result does not cover the line.
pub fn split_with_hl7_parser(line: &str, seps: &Separators) -> Option<RawSegment> {
    let hseps = seps.to_hl7_parser()?;
    let seg = hl7_parser::parser::parse_segment_with_separators(line, hseps).ok()?;
    if seg.range.end != line.len() || seg.range.start != 0 {
        return None;
    }
    let fields = seg
        .fields
        .iter()
        .map(|f| RawField {
            range: f.range.clone(),
            reps: f
                .repeats
                .iter()
                .map(|r| RawComposite {
                    range: r.range.clone(),
                    comps: r
                        .components
                        .iter()
                        .map(|c| {
                            (
                                c.range.clone(),
                                c.subcomponents.iter().map(|s| s.range.clone()).collect(),
                            )
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let out = RawSegment { fields };
    well_formed(&out, line.len()).then_some(out)
}

/// Our own tokenizer: splits on the field separator, then repetition,
/// component and subcomponent separators, in that order of precedence.
pub fn split_own(line: &str, seps: &Separators) -> RawSegment {
    let mut fields = Vec::new();
    // Skip the 3-character name; `line` always starts with it (ASCII checked).
    let name_end = line.len().min(3);
    if name_end < line.len() {
        let body_start = name_end + seps.field.len_utf8();
        for range in split_ranges(line, body_start..line.len(), seps.field) {
            fields.push(split_field(line, range, seps));
        }
    }
    RawSegment { fields }
}

/// Splits the text from `from` to the end of `line` into fields (used for MSH,
/// whose field 3 starts after the encoding characters).
pub fn split_fields_from(line: &str, from: usize, seps: &Separators) -> Vec<RawField> {
    split_ranges(line, from..line.len(), seps.field)
        .map(|r| split_field(line, r, seps))
        .collect()
}

fn split_field(line: &str, range: Range<usize>, seps: &Separators) -> RawField {
    let reps = split_ranges(line, range.clone(), seps.repetition)
        .map(|r| RawComposite {
            range: r.clone(),
            comps: split_ranges(line, r, seps.component)
                .map(|c| {
                    let subs = match seps.subcomponent {
                        Some(sub) => split_ranges(line, c.clone(), sub).collect(),
                        None => vec![c.clone()],
                    };
                    (c, subs)
                })
                .collect(),
        })
        .collect();
    RawField { range, reps }
}

/// Ranges of the pieces of `line[range]` separated by `sep` (always ≥ 1 piece).
/// Lazy: no buffer is allocated (this runs for every field, repetition and
/// component of every message).
pub(crate) fn split_ranges(
    line: &str,
    range: Range<usize>,
    sep: char,
) -> impl Iterator<Item = Range<usize>> {
    let text = line.get(range.clone()).unwrap_or("");
    let mut at = range.start;
    text.split(sep).map(move |piece| {
        let piece_range = at..at + piece.len();
        at = piece_range.end + sep.len_utf8();
        piece_range
    })
}

/// Sanity check of a split: ranges nested, ordered and inside the line.
fn well_formed(seg: &RawSegment, len: usize) -> bool {
    let mut last = 0;
    for f in &seg.fields {
        if f.range.start < last || f.range.end > len || f.reps.is_empty() {
            return false;
        }
        last = f.range.end;
        for r in &f.reps {
            if r.range.start < f.range.start || r.range.end > f.range.end || r.comps.is_empty() {
                return false;
            }
            for (c, subs) in &r.comps {
                if c.start < r.range.start || c.end > r.range.end || subs.is_empty() {
                    return false;
                }
                if subs.iter().any(|s| s.start < c.start || s.end > c.end) {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tokenizers_agree_on_a_typical_segment() {
        let line = r"PID|1||E1^^^HOSP^MR~999^^^SSA^SS||DOE^JANE^Q|x&y&z^b\F\c|";
        let seps = Separators::default();
        let a = split_with_hl7_parser(line, &seps).expect("hl7-parser splits it");
        let b = split_own(line, &seps);
        assert_eq!(a, b);
        assert_eq!(a.fields.len(), 7);
        assert_eq!(&line[a.fields[2].reps[1].range.clone()], "999^^^SSA^SS");
    }

    #[test]
    fn segment_without_fields_needs_the_fallback() {
        let seps = Separators::default();
        assert!(split_with_hl7_parser("ZZZ", &seps).is_none());
        assert!(split_own("ZZZ", &seps).fields.is_empty());
    }
}

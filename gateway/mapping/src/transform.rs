//! Transforms: the steps a rule applies to its source values.
//!
//! A rule's values flow through its transform chain as a list (a path can
//! yield several values, `split` makes more, `concat` makes one), so every
//! transform is a list → list function. Transforms never fail: a value they
//! cannot handle is dropped (or kept, per the table's `miss`) and an
//! [`Issue`] is recorded, which evaluation turns into a diagnostic naming the
//! rule. Dates are parsed with `jiff`, in the profile's time zone when the
//! source carries no offset.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{Offset, TimeZone};

use crate::model::{CodeTable, DateFormat, Miss, Transform};

/// A value on its way through a chain, with the index of the source value it
/// came from (for provenance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Val {
    pub text: String,
    pub origin: Option<usize>,
}

/// Something a transform could not handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Issue {
    TableMiss {
        table: String,
        error: bool,
        /// The `otherwise` value used instead of dropping it.
        otherwise: Option<String>,
        origin: Option<usize>,
    },
    BadDate {
        datetime: bool,
        formats: String,
        origin: Option<usize>,
    },
    NotIcd10 {
        origin: Option<usize>,
    },
}

/// Parses a `date`/`datetime` format argument.
pub(crate) fn parse_date_format(text: &str) -> Result<DateFormat, String> {
    match text {
        "hl7" => Ok(DateFormat::Hl7),
        "iso" => Ok(DateFormat::Iso),
        pattern if pattern.contains('%') => {
            let sample = jiff::Timestamp::UNIX_EPOCH.to_zoned(TimeZone::UTC);
            jiff::fmt::strtime::format(pattern, &sample)
                .map(|_| DateFormat::Pattern(pattern.to_owned()))
                .map_err(|e| format!("date format `{pattern}` is invalid: {e}"))
        }
        other => Err(format!(
            "date format `{other}` is neither `hl7`, `iso` nor a pattern with `%` directives"
        )),
    }
}

/// A short description of a transform for provenance (`table sex`).
pub(crate) fn describe(t: &Transform) -> String {
    match t {
        Transform::Trim => "trim".into(),
        Transform::Upper => "upper".into(),
        Transform::Lower => "lower".into(),
        Transform::Icd10 => "icd10".into(),
        Transform::Unique => "unique".into(),
        Transform::Table { name, .. } => format!("table {name}"),
        Transform::Date(f) => format!("date {}", formats_text(f)),
        Transform::DateTime(f) => format!("datetime {}", formats_text(f)),
        Transform::Concat(s) => format!("concat {s:?}"),
        Transform::Split(s) => format!("split {s:?}"),
        Transform::Replace { from, to } => format!("replace {from:?} with {to:?}"),
        Transform::Index(i) => format!("index {i}"),
        Transform::Prefix(s) => format!("prefix {s:?}"),
        Transform::Suffix(s) => format!("suffix {s:?}"),
    }
}

fn formats_text(formats: &[DateFormat]) -> String {
    formats
        .iter()
        .map(|f| match f {
            DateFormat::Hl7 => "hl7".to_owned(),
            DateFormat::Iso => "iso".to_owned(),
            DateFormat::Pattern(p) => p.clone(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Applies one transform to the value list.
pub(crate) fn apply(
    t: &Transform,
    values: Vec<Val>,
    tables: &std::collections::BTreeMap<String, CodeTable>,
    tz: &TimeZone,
    issues: &mut Vec<Issue>,
) -> Vec<Val> {
    // Text transforms rewrite each value in place and only allocate when the
    // text changes (a trimmed value that had no padding stays as it is).
    let map = |mut values: Vec<Val>, f: &dyn Fn(&mut String)| -> Vec<Val> {
        for v in &mut values {
            f(&mut v.text);
        }
        values.retain(|v| !v.text.is_empty());
        values
    };
    match t {
        Transform::Trim => map(values, &|s| {
            if s.trim().len() != s.len() {
                *s = s.trim().to_owned();
            }
        }),
        Transform::Upper => map(values, &|s| {
            if s.is_ascii() {
                s.make_ascii_uppercase();
            } else {
                *s = s.to_uppercase();
            }
        }),
        Transform::Lower => map(values, &|s| {
            if s.is_ascii() {
                s.make_ascii_lowercase();
            } else {
                *s = s.to_lowercase();
            }
        }),
        Transform::Prefix(p) => map(values, &|s| s.insert_str(0, p)),
        Transform::Suffix(p) => map(values, &|s| s.push_str(p)),
        Transform::Replace { from, to } => map(values, &|s| {
            if s.contains(from.as_str()) {
                *s = s.replace(from.as_str(), to);
            }
        }),
        Transform::Unique => {
            let mut seen = std::collections::BTreeSet::new();
            values
                .into_iter()
                .filter(|v| seen.insert(v.text.clone()))
                .collect()
        }
        Transform::Icd10 => values
            .into_iter()
            .map(|v| match icd10(&v.text) {
                Some(code) => Val {
                    text: code,
                    origin: v.origin,
                },
                // An ICD-9 code (`428.0`) is kept as written without a
                // warning: its system comes from the coding-system component,
                // and a case labelling it ICD-10-CM is corrected (M030).
                None if gateway_core::facts::has_icd9_shape(&v.text) => v,
                None => {
                    issues.push(Issue::NotIcd10 { origin: v.origin });
                    v
                }
            })
            .collect(),
        Transform::Table {
            name,
            miss,
            otherwise,
        } => {
            let table = tables.get(name);
            values
                .into_iter()
                .filter_map(|v| match table.and_then(|t| t.entries.get(&v.text)) {
                    Some((out, _)) => Some(Val {
                        text: out.clone(),
                        origin: v.origin,
                    }),
                    None if otherwise.is_some() => {
                        issues.push(Issue::TableMiss {
                            table: name.clone(),
                            error: false,
                            otherwise: otherwise.clone(),
                            origin: v.origin,
                        });
                        otherwise.clone().map(|text| Val {
                            text,
                            origin: v.origin,
                        })
                    }
                    None => match miss {
                        Miss::Keep => Some(v),
                        Miss::Drop => None,
                        Miss::Warn | Miss::Error => {
                            issues.push(Issue::TableMiss {
                                table: name.clone(),
                                error: *miss == Miss::Error,
                                otherwise: None,
                                origin: v.origin,
                            });
                            None
                        }
                    },
                })
                .filter(|v| !v.text.is_empty())
                .collect()
        }
        Transform::Date(formats) | Transform::DateTime(formats) => {
            let datetime = matches!(t, Transform::DateTime(_));
            values
                .into_iter()
                .filter_map(|v| {
                    let parsed = formats.iter().find_map(|f| {
                        if datetime {
                            parse_datetime(f, v.text.trim(), tz)
                        } else {
                            parse_date(f, v.text.trim())
                        }
                    });
                    if parsed.is_none() {
                        issues.push(Issue::BadDate {
                            datetime,
                            formats: formats_text(formats),
                            origin: v.origin,
                        });
                    }
                    parsed.map(|text| Val {
                        text,
                        origin: v.origin,
                    })
                })
                .collect()
        }
        Transform::Concat(sep) => {
            if values.is_empty() {
                return values;
            }
            let origin = values.first().and_then(|v| v.origin);
            let text = values
                .iter()
                .map(|v| v.text.as_str())
                .collect::<Vec<_>>()
                .join(sep);
            vec![Val { text, origin }]
        }
        Transform::Split(sep) => values
            .into_iter()
            .flat_map(|v| {
                v.text
                    .split(sep.as_str())
                    .filter(|p| !p.is_empty())
                    .map(|p| Val {
                        text: p.to_owned(),
                        origin: v.origin,
                    })
                    .collect::<Vec<_>>()
            })
            .collect(),
        Transform::Index(i) => {
            let idx = if *i < 0 {
                usize::try_from(i.unsigned_abs())
                    .ok()
                    .and_then(|back| values.len().checked_sub(back))
            } else {
                usize::try_from(*i).ok()
            };
            idx.and_then(|n| values.into_iter().nth(n))
                .into_iter()
                .collect()
        }
    }
}

/// ICD-10 normalization: `i509` / `I50.9` / `I 50.9` → `I50.9`. `None` when
/// the text does not look like an ICD-10 code.
pub(crate) fn icd10(text: &str) -> Option<String> {
    let compact: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.')
        .collect::<String>()
        .to_ascii_uppercase();
    let bytes = compact.as_bytes();
    let ok = (3..=7).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes[1].is_ascii_digit()
        && bytes[2..].iter().all(u8::is_ascii_alphanumeric);
    if !ok {
        return None;
    }
    if compact.len() == 3 {
        Some(compact)
    } else {
        Some(format!("{}.{}", &compact[..3], &compact[3..]))
    }
}

/// The pieces of an HL7 DTM: date, optional time (at least HHMM), optional offset.
fn hl7_pieces(text: &str) -> Option<(Date, Option<Time>, Option<Offset>)> {
    let (body, offset) = match text.find(['+', '-']) {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let (main, fraction) = match body.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (body, None),
    };
    if !main.bytes().all(|b| b.is_ascii_digit()) || main.len() < 8 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i32> { main.get(r)?.parse().ok() };
    let date = Date::new(
        i16::try_from(num(0..4)?).ok()?,
        i8::try_from(num(4..6)?).ok()?,
        i8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let time = match main.len() {
        8 => None,
        12 | 14 => {
            let h = i8::try_from(num(8..10)?).ok()?;
            let m = i8::try_from(num(10..12)?).ok()?;
            let s = if main.len() == 14 {
                i8::try_from(num(12..14)?).ok()?
            } else {
                0
            };
            let nanos = match fraction {
                Some(f)
                    if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let padded = format!("{f:0<9}");
                    padded.parse::<i32>().ok()?
                }
                Some(_) => return None,
                None => 0,
            };
            Some(Time::new(h, m, s, nanos).ok()?)
        }
        _ => return None,
    };
    let offset = match offset {
        Some(o) if o.len() == 5 && o[1..].bytes().all(|b| b.is_ascii_digit()) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let h: i32 = o[1..3].parse().ok()?;
            let m: i32 = o[3..5].parse().ok()?;
            Some(Offset::from_seconds(sign * (h * 3600 + m * 60)).ok()?)
        }
        Some(_) => return None,
        None => None,
    };
    Some((date, time, offset))
}

fn parse_date(format: &DateFormat, text: &str) -> Option<String> {
    let date = match format {
        DateFormat::Hl7 => hl7_pieces(text)?.0,
        DateFormat::Iso => jiff::fmt::temporal::Pieces::parse(text).ok()?.date(),
        DateFormat::Pattern(p) => jiff::fmt::strtime::parse(p, text).ok()?.to_date().ok()?,
    };
    Some(date.to_string())
}

fn parse_datetime(format: &DateFormat, text: &str, tz: &TimeZone) -> Option<String> {
    let (dt, offset): (DateTime, Option<Offset>) = match format {
        DateFormat::Hl7 => {
            let (date, time, offset) = hl7_pieces(text)?;
            (date.to_datetime(time?), offset)
        }
        DateFormat::Iso => {
            let pieces = jiff::fmt::temporal::Pieces::parse(text).ok()?;
            let time = pieces.time()?;
            (pieces.date().to_datetime(time), pieces.to_numeric_offset())
        }
        DateFormat::Pattern(p) => {
            let bdt = jiff::fmt::strtime::parse(p, text).ok()?;
            (bdt.to_datetime().ok()?, bdt.offset())
        }
    };
    let zoned = match offset {
        Some(o) => dt.to_zoned(TimeZone::fixed(o)).ok()?,
        None => dt.to_zoned(tz.clone()).ok()?,
    };
    Some(zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
}

/// `*`-wildcard match (`ORM^*`, `2.5*`).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == text;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i + 1 == parts.len() {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_normalizes() {
        assert_eq!(icd10("I509").as_deref(), Some("I50.9"));
        assert_eq!(icd10("i50.9").as_deref(), Some("I50.9"));
        assert_eq!(icd10("E11").as_deref(), Some("E11"));
        assert_eq!(icd10("M54.50").as_deref(), Some("M54.50"));
        assert_eq!(icd10("12345"), None);
        assert_eq!(icd10("I5"), None);
    }

    #[test]
    fn dates_in_several_formats() {
        let chicago = TimeZone::get("America/Chicago").expect("tzdb");
        assert_eq!(
            parse_date(&DateFormat::Hl7, "19700131").as_deref(),
            Some("1970-01-31")
        );
        assert_eq!(parse_date(&DateFormat::Hl7, "197001"), None);
        assert_eq!(parse_date(&DateFormat::Hl7, "19700231"), None);
        assert_eq!(
            parse_datetime(&DateFormat::Hl7, "202612011030", &chicago).as_deref(),
            Some("2026-12-01T10:30:00-06:00")
        );
        assert_eq!(
            parse_datetime(&DateFormat::Hl7, "20260701103000.25-0400", &chicago).as_deref(),
            Some("2026-07-01T10:30:00-04:00")
        );
        assert_eq!(parse_datetime(&DateFormat::Hl7, "20261201", &chicago), None);
        let us = DateFormat::Pattern("%m/%d/%Y".into());
        assert_eq!(parse_date(&us, "01/31/1970").as_deref(), Some("1970-01-31"));
        assert_eq!(
            parse_date(&DateFormat::Iso, "2026-12-01T10:00:00Z").as_deref(),
            Some("2026-12-01")
        );
        assert_eq!(
            parse_datetime(&DateFormat::Iso, "2026-12-01T10:00:00Z", &chicago).as_deref(),
            Some("2026-12-01T10:00:00+00:00")
        );
        assert!(parse_date_format("%Y%m%d%!").is_err());
        assert!(parse_date_format("YYYYMMDD").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob("ORM^*", "ORM^O01"));
        assert!(glob("*^O01", "ORM^O01"));
        assert!(glob("2.*.1", "2.5.1"));
        assert!(!glob("ORM^*", "ADT^A01"));
        assert!(glob("a", "a") && !glob("a", "ab"));
    }
}

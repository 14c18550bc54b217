//! Context checks: is the screen about to be written on the case's patient and
//! record?
//!
//! The window-title guard makes sure keys reach the right *window*; it cannot
//! tell *whose* authorization screen that window shows. A user may have left
//! the screen open on another patient, or the EHR may switch patients while the
//! bridge types. A `check_context` step therefore reads identifying fields off
//! the screen (patient banner: MRN, name, birth date; the order or referral
//! number where shown) and compares each with the case, normalized the way the
//! read playbook's mapping (`mappings/legacy-desktop/order.toml`) turns screen
//! text into case fields:
//!
//! * `text` (default): surrounding and repeated whitespace ignored, letter
//!   case ignored (Unicode lowercase) — MRNs, order numbers;
//! * `exact`: byte for byte;
//! * `name`: a person's name as `Family, Given Middle` or `Given Middle Family`
//!   on either side, compared part by part without regard to letter case or
//!   spacing (`MÜLLER, SØREN` equals `Søren Müller`);
//! * `date:FMT`: the screen shows a date in `FMT` (`MM/DD/YYYY`; tokens `YYYY`,
//!   `MM`, `DD`, one-digit months and days accepted), the case holds an ISO
//!   date; compared as dates.
//!
//! A field that cannot be read (empty, or not a date/name in the expected
//! shape) fails the check like a differing one. Results name fields only:
//! neither the screen's values nor the case's ever reach a log or an error.

use crate::template::Template;

/// How a screen value is compared with the case's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// Whitespace-collapsed, trimmed, lowercase.
    Text,
    /// As is.
    Exact,
    /// A person's name in either order.
    Name,
    /// A date shown in this format, against an ISO date.
    Date(String),
}

impl Compare {
    /// Parses `text`, `exact`, `name` or `date:FMT`.
    pub fn parse(text: &str) -> Result<Compare, String> {
        match text.trim() {
            "text" => Ok(Compare::Text),
            "exact" => Ok(Compare::Exact),
            "name" => Ok(Compare::Name),
            other => match other.strip_prefix("date:") {
                Some(fmt) if fmt.contains("YYYY") && fmt.contains("MM") && fmt.contains("DD") => {
                    Ok(Compare::Date(fmt.to_owned()))
                }
                _ => Err(format!(
                    "`compare` is `{other}`; expected text, exact, name or date:FMT (FMT with YYYY, MM and DD)"
                )),
            },
        }
    }

    /// The name as written in playbooks.
    pub fn as_string(&self) -> String {
        match self {
            Compare::Text => "text".into(),
            Compare::Exact => "exact".into(),
            Compare::Name => "name".into(),
            Compare::Date(f) => format!("date:{f}"),
        }
    }
}

/// One identifying field a context check reads and compares.
#[derive(Debug, Clone)]
pub struct ContextField {
    /// The field's name, used in reasons (`mrn`, `patient_name`, …).
    pub name: String,
    /// Where to click to select it, relative to the window.
    pub at: (i32, i32),
    /// What the case says it should be.
    pub expect: Template,
    /// How to compare.
    pub compare: Compare,
}

/// How one field failed a context check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldFault {
    /// The screen shows something else than the case.
    Differs,
    /// The screen's field is empty or not in the expected shape.
    Unreadable,
}

impl FieldFault {
    /// `differs` or `unreadable`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldFault::Differs => "differs from the case",
            FieldFault::Unreadable => "is unreadable",
        }
    }
}

/// Compares `screen` (`None`: nothing could be copied) with `expected`.
pub fn compare(compare: &Compare, screen: Option<&str>, expected: &str) -> Option<FieldFault> {
    let Some(screen) = screen.filter(|s| !s.trim().is_empty()) else {
        return Some(FieldFault::Unreadable);
    };
    let same = match compare {
        Compare::Exact => screen == expected,
        Compare::Text => fold(screen) == fold(expected),
        Compare::Name => {
            let Some(seen) = name_parts(screen) else {
                return Some(FieldFault::Unreadable);
            };
            name_parts(expected).is_some_and(|want| want == seen)
        }
        Compare::Date(fmt) => {
            let Some(seen) = parse_date(screen.trim(), fmt) else {
                return Some(FieldFault::Unreadable);
            };
            parse_date(expected.trim().get(..10).unwrap_or(""), "YYYY-MM-DD") == Some(seen)
        }
    };
    (!same).then_some(FieldFault::Differs)
}

/// Trimmed, inner whitespace collapsed to one space, lowercase.
fn fold(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `(family, given)` folded, from `Family, Given…` or `Given… Family`.
fn name_parts(text: &str) -> Option<(String, String)> {
    let (family, given) = match text.split_once(',') {
        Some((family, given)) => (fold(family), fold(given)),
        None => {
            let words: Vec<&str> = text.split_whitespace().collect();
            let (family, given) = words.split_last()?;
            (fold(family), fold(&given.join(" ")))
        }
    };
    (!family.is_empty() && !given.is_empty()).then_some((family, given))
}

/// `(year, month, day)` from `text` laid out as `fmt`.
fn parse_date(text: &str, fmt: &str) -> Option<(u32, u32, u32)> {
    let (mut y, mut m, mut d) = (None, None, None);
    let mut rest = text;
    let mut f = fmt;
    let digits = |s: &str, min: usize, max: usize| -> Option<(u32, usize)> {
        let n = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
        if n < min {
            return None;
        }
        s[..n].parse().ok().map(|v| (v, n))
    };
    while !f.is_empty() {
        if let Some(after) = f.strip_prefix("YYYY") {
            let (v, n) = digits(rest, 4, 4)?;
            y = Some(v);
            rest = &rest[n..];
            f = after;
        } else if let Some(after) = f.strip_prefix("MM") {
            let (v, n) = digits(rest, 1, 2)?;
            m = Some(v);
            rest = &rest[n..];
            f = after;
        } else if let Some(after) = f.strip_prefix("DD") {
            let (v, n) = digits(rest, 1, 2)?;
            d = Some(v);
            rest = &rest[n..];
            f = after;
        } else {
            let c = f.chars().next()?;
            rest = rest.strip_prefix(c)?;
            f = &f[c.len_utf8()..];
        }
    }
    let (y, m, d) = (y?, m?, d?);
    (rest.is_empty() && (1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_the_read_mapping() {
        let text = Compare::Text;
        assert_eq!(compare(&text, Some(" e10001 "), "E10001"), None);
        assert_eq!(
            compare(&text, Some("E10002"), "E10001"),
            Some(FieldFault::Differs)
        );
        assert_eq!(
            compare(&Compare::Exact, Some("e10001"), "E10001"),
            Some(FieldFault::Differs)
        );
        let name = Compare::Name;
        assert_eq!(
            compare(&name, Some("MÜLLER,  SØREN"), "Müller, Søren"),
            None
        );
        assert_eq!(compare(&name, Some("Søren Müller"), "Müller, Søren"), None);
        assert_eq!(
            compare(&name, Some("Müller, Sören"), "Müller, Søren"),
            Some(FieldFault::Differs)
        );
        assert_eq!(
            compare(&name, Some("Müller"), "Müller, Søren"),
            Some(FieldFault::Unreadable)
        );
        let date = Compare::parse("date:MM/DD/YYYY").expect("format");
        assert_eq!(compare(&date, Some("01/31/1970"), "1970-01-31"), None);
        assert_eq!(compare(&date, Some("1/31/1970"), "1970-01-31"), None);
        assert_eq!(
            compare(&date, Some("01/30/1970"), "1970-01-31"),
            Some(FieldFault::Differs)
        );
        assert_eq!(
            compare(&date, Some("31.01.1970"), "1970-01-31"),
            Some(FieldFault::Unreadable)
        );
        assert_eq!(
            compare(&date, Some("13/01/1970"), "1970-01-31"),
            Some(FieldFault::Unreadable)
        );
        assert_eq!(compare(&text, None, "x"), Some(FieldFault::Unreadable));
        assert_eq!(
            compare(&text, Some("  "), "x"),
            Some(FieldFault::Unreadable)
        );
        assert!(Compare::parse("date:DD.MM").is_err());
        assert!(Compare::parse("fuzzy").is_err());
    }
}

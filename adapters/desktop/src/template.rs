//! Text templates: literal text with `{{ path | filter:arg | … }}` holes.
//!
//! Write playbooks type values taken from the decided [`gateway_core::Case`]
//! (`{{decision.authorization_number}}`) and from values captured earlier in the
//! same run (`{{captured.order_number}}`). Templates are parsed when the playbook
//! loads; rendering either yields the complete text or an error naming the
//! missing path — never a half-filled string, so nothing partial is typed.
//!
//! Paths: dotted names with `[n]` indexes into the case JSON
//! (`services[0].code.code`); a list of strings renders as its words joined by
//! spaces (`{{patient.name.given}}`). Filters: `upper`, `lower`, `trim`,
//! `date:MM/DD/YYYY` (reformat an ISO date; tokens `YYYY`, `YY`, `MM`, `DD`),
//! `table:NAME` (look up in the playbook's `[tables.NAME]`), `default:TEXT`.

use std::collections::BTreeMap;

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Hole(Hole),
}

/// One `{{ … }}` hole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    /// The path text (`decision.status`, `captured.mrn`).
    pub path: String,
    segments: Vec<Segment>,
    filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A filter applied to a hole's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Uppercase.
    Upper,
    /// Lowercase.
    Lower,
    /// Trim surrounding whitespace.
    Trim,
    /// Reformat an ISO `YYYY-MM-DD` date (or the date part of an instant).
    Date(String),
    /// Code table lookup by name.
    Table(String),
    /// Value used when the path yields nothing.
    Default(String),
}

/// A template that does not parse, with the byte offset in its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template error at offset {offset}: {message}")]
pub struct TemplateError {
    /// Byte offset into the template text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// A template that could not be rendered (no values quoted: the message names paths only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The path yields no value and the hole has no `default:`.
    #[error("no value at `{0}`")]
    Missing(String),
    /// A `date:` filter got something that is not an ISO date.
    #[error("value at `{0}` is not an ISO date")]
    NotADate(String),
    /// A `table:` lookup found no entry for the value.
    #[error("table `{table}` has no entry for the value at `{path}`")]
    NoTableEntry {
        /// The table name.
        table: String,
        /// The path whose value was looked up.
        path: String,
    },
    /// The table itself does not exist (checked at load; kept for safety).
    #[error("no table named `{0}`")]
    UnknownTable(String),
}

/// What templates render against.
#[derive(Debug, Default, Clone)]
pub struct Context {
    /// The case as JSON (`Value::Null` when there is no case).
    pub case: Value,
    /// Values captured so far in this run.
    pub captured: BTreeMap<String, String>,
    /// Code tables from the playbook.
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
}

impl Template {
    /// Parses template text.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError {
                    offset: offset + open,
                    message: "`{{` without `}}`".into(),
                });
            };
            let inner = &after[..close];
            parts.push(Part::Hole(parse_hole(inner, offset + open + 2)?));
            let consumed = open + 2 + close + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        if let Some(pos) = rest.find("}}") {
            return Err(TemplateError {
                offset: offset + pos,
                message: "`}}` without `{{`".into(),
            });
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template {
            source: text.to_owned(),
            parts,
        })
    }

    /// The template text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The holes, in order.
    pub fn holes(&self) -> impl Iterator<Item = &Hole> {
        self.parts.iter().filter_map(|p| match p {
            Part::Hole(h) => Some(h),
            Part::Literal(_) => None,
        })
    }

    /// True when the template has no holes.
    pub fn is_literal(&self) -> bool {
        self.holes().next().is_none()
    }

    /// Renders the template completely, or fails naming the first missing path.
    pub fn render(&self, ctx: &Context) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Hole(h) => out.push_str(&h.render(ctx)?),
            }
        }
        Ok(out)
    }
}

impl Hole {
    /// The captured-value name this hole reads (`captured.NAME`, where NAME may
    /// itself be dotted: `captured.order.number`), if any.
    pub fn captured_name(&self) -> Option<String> {
        let (first, rest) = self.segments.split_first()?;
        if *first != Segment::Key("captured".to_owned()) || rest.is_empty() {
            return None;
        }
        let names: Option<Vec<&str>> = rest
            .iter()
            .map(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .collect();
        names.map(|n| n.join("."))
    }

    /// True when the hole has a `default:` filter.
    pub fn has_default(&self) -> bool {
        self.filters.iter().any(|f| matches!(f, Filter::Default(_)))
    }

    /// Names of the tables this hole's filters use.
    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.filters.iter().filter_map(|f| match f {
            Filter::Table(t) => Some(t.as_str()),
            _ => None,
        })
    }

    fn lookup(&self, ctx: &Context) -> Option<String> {
        if let Some(name) = self.captured_name() {
            return ctx.captured.get(&name).cloned();
        }
        let mut current = &ctx.case;
        for segment in &self.segments {
            current = match segment {
                Segment::Key(k) => current.get(k)?,
                Segment::Index(i) => current.get(*i)?,
            };
        }
        match current {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            // A list of words (a name's `given`) reads as they are written.
            Value::Array(items) => {
                let words: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                words.map(|w| w.join(" ")).filter(|w| !w.is_empty())
            }
            Value::Null | Value::Object(_) => None,
        }
    }

    fn render(&self, ctx: &Context) -> Result<String, RenderError> {
        let mut value = self.lookup(ctx).filter(|v| !v.is_empty());
        if value.is_none() {
            value = self.filters.iter().find_map(|f| match f {
                Filter::Default(d) => Some(d.clone()),
                _ => None,
            });
            // A default is final: it is not reformatted or looked up.
            return value.ok_or_else(|| RenderError::Missing(self.path.clone()));
        }
        let mut value = value.unwrap_or_default();
        for filter in &self.filters {
            value = match filter {
                Filter::Upper => value.to_uppercase(),
                Filter::Lower => value.to_lowercase(),
                Filter::Trim => value.trim().to_owned(),
                Filter::Date(fmt) => format_date(&value, fmt)
                    .ok_or_else(|| RenderError::NotADate(self.path.clone()))?,
                Filter::Table(name) => {
                    let table = ctx
                        .tables
                        .get(name)
                        .ok_or_else(|| RenderError::UnknownTable(name.clone()))?;
                    table
                        .get(&value)
                        .cloned()
                        .ok_or_else(|| RenderError::NoTableEntry {
                            table: name.clone(),
                            path: self.path.clone(),
                        })?
                }
                Filter::Default(_) => value,
            };
        }
        Ok(value)
    }
}

fn parse_hole(inner: &str, offset: usize) -> Result<Hole, TemplateError> {
    let mut pieces = inner.split('|');
    let path = pieces.next().unwrap_or_default().trim();
    if path.is_empty() {
        return Err(TemplateError {
            offset,
            message: "empty `{{ }}`".into(),
        });
    }
    let segments = parse_path(path).ok_or_else(|| TemplateError {
        offset,
        message: format!("`{path}` is not a path (names, dots and [n] indexes)"),
    })?;
    let mut filters = Vec::new();
    for piece in pieces {
        let piece = piece.trim();
        let (name, arg) = match piece.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (piece, None),
        };
        let filter = match (name, arg) {
            ("upper", None) => Filter::Upper,
            ("lower", None) => Filter::Lower,
            ("trim", None) => Filter::Trim,
            ("date", Some(fmt)) if !fmt.is_empty() => Filter::Date(fmt.to_owned()),
            ("table", Some(t)) if !t.is_empty() => Filter::Table(t.to_owned()),
            ("default", Some(d)) => Filter::Default(d.to_owned()),
            _ => {
                return Err(TemplateError {
                    offset,
                    message: format!(
                        "unknown filter `{piece}` (upper, lower, trim, date:FMT, table:NAME, default:TEXT)"
                    ),
                });
            }
        };
        filters.push(filter);
    }
    Ok(Hole {
        path: path.to_owned(),
        segments,
        filters,
    })
}

fn parse_path(path: &str) -> Option<Vec<Segment>> {
    let mut segments = Vec::new();
    for dotted in path.split('.') {
        let (name, mut rest) = match dotted.find('[') {
            Some(i) => (&dotted[..i], &dotted[i..]),
            None => (dotted, ""),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return None;
        }
        segments.push(Segment::Key(name.to_owned()));
        while !rest.is_empty() {
            let close = rest.find(']')?;
            if !rest.starts_with('[') {
                return None;
            }
            segments.push(Segment::Index(rest[1..close].parse().ok()?));
            rest = &rest[close + 1..];
        }
    }
    Some(segments)
}

/// Reformats `YYYY-MM-DD…` using the tokens `YYYY`, `YY`, `MM`, `DD`.
fn format_date(value: &str, fmt: &str) -> Option<String> {
    let date = value.get(..10)?;
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10)) {
        return None;
    }
    let (y, m, d) = (&date[0..4], &date[5..7], &date[8..10]);
    Some(
        fmt.replace("YYYY", y)
            .replace("YY", &y[2..])
            .replace("MM", m)
            .replace("DD", d),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        let mut tables = BTreeMap::new();
        tables.insert(
            "status".to_owned(),
            BTreeMap::from([("approved".to_owned(), "APPROVED".to_owned())]),
        );
        Context {
            case: json!({
                "decision": {"status": "approved", "authorization_number": "PA|^~\\&1",
                             "effective": {"start": "2026-12-01"}},
                "services": [{"code": {"code": "78452"}}],
                "quantity": 2,
                "given": ["Søren", "Q"]
            }),
            captured: BTreeMap::from([
                ("mrn".to_owned(), "E10001".to_owned()),
                ("order.number".to_owned(), "ORD-1".to_owned()),
            ]),
            tables,
        }
    }

    #[test]
    fn renders_paths_filters_and_captures() {
        let c = ctx();
        let r = |t: &str| Template::parse(t).expect("parses").render(&c);
        assert_eq!(
            r("Auth {{decision.authorization_number}}!").as_deref(),
            Ok("Auth PA|^~\\&1!")
        );
        assert_eq!(
            r("{{ decision.status | table:status }}").as_deref(),
            Ok("APPROVED")
        );
        assert_eq!(
            r("{{decision.effective.start|date:MM/DD/YYYY}}").as_deref(),
            Ok("12/01/2026")
        );
        assert_eq!(r("{{services[0].code.code}}").as_deref(), Ok("78452"));
        assert_eq!(r("{{captured.mrn|lower}}").as_deref(), Ok("e10001"));
        assert_eq!(r("{{captured.order.number}}").as_deref(), Ok("ORD-1"));
        assert_eq!(r("{{quantity}}").as_deref(), Ok("2"));
        assert_eq!(r("{{given}}").as_deref(), Ok("Søren Q"));
        assert_eq!(r("{{decision.note|default:none}}").as_deref(), Ok("none"));
        assert_eq!(
            r("{{decision.note}}"),
            Err(RenderError::Missing("decision.note".into()))
        );
        assert!(matches!(
            r("{{decision.status|date:YYYY}}"),
            Err(RenderError::NotADate(_))
        ));
    }

    #[test]
    fn rejects_malformed_templates_with_offsets() {
        assert_eq!(Template::parse("ab {{x").expect_err("bad").offset, 3);
        assert_eq!(Template::parse("ab }}").expect_err("bad").offset, 3);
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse("{{a|shout}}").is_err());
        assert!(Template::parse("{{a..b}}").is_err());
        assert!(Template::parse("{{a[x]}}").is_err());
        assert!(Template::parse("plain").expect("ok").is_literal());
    }
}

//! The X12 path syntax: loop / segment / element / component paths over the
//! tree built by [`crate::tree`].
//!
//! ```text
//! 2010C/NM1-09                 subscriber member id (2010CA is accepted as an alias)
//! 2010CA/REF(01=SY)-02         REF whose REF01 is SY, its REF02
//! NM1(01=IL|QC)-03             qualifier selection with alternatives
//! 2000F[*]/SV1-01-2            every service line's procedure code (SV101-2)
//! 2000E/HI[*]-*                every HI composite of the event (all elements)
//! 2000E/HI-*-2                 every diagnosis code of the first HI
//! HI-01(1=ABK)-2               composite filtered by its qualifier component
//! BHT-03                       header / envelope segments are found at any depth
//! //REF(01=NT)-02              explicit "any depth" for any segment
//! decision/status              pre-computed nodes (lowercase names)
//! ../2010F/NM1-09              parent step, for relative paths in foreach items
//! ```
//!
//! Rules:
//! * A **loop id** (`2000A`…`2000F`, `2010A`…`2010F`, `2010EA`/`EB`/`EC`) matches
//!   loops at any depth below the context (loops nest by HL parent). The aliases
//!   `2010AA`, `2010BA`, `2010CA`, `2010DA`, `2010FA` name the same loops.
//! * A **segment id** matches child segments of the context node (so `REF`
//!   inside a 2000F item never reaches its 2010F's REF); as the *first* step, the
//!   envelope and header segments `ISA GS ST BHT SE GE IEA TA1` and the 999
//!   segments are searched at any depth, and `//SEG` forces that for any segment.
//! * `-NN` selects element NN (1 or 2 digits), `-*` every element; a further
//!   `-N` selects component N (`-*` every component).
//! * `[*]` keeps every match, `[n]` the n-th (0-based), `[-1]` the last; the
//!   default is the first match. On a segment, `(...)` filters come before the
//!   selection: `REF(01=SY)` is the first REF whose REF01 is SY.
//! * Filters: `(01=A|B)`, `(01!=A)`, `(03-1=ABK)`, `(01)` exists, `(!01)` missing.
//! * Lowercase names (`decision`, `status`, `line`, …) are pre-computed nodes;
//!   as a first step they are searched at any depth.
//! * `resolve()` follows a pre-computed pointer: `patient/resolve()/NM1-03` is
//!   the patient's name loop (2010D when there is a dependent, else 2010C).
//! * `./` starts a path that must stay relative (first step as a child).
//! * A path that *starts* with `-` is relative to an element or segment item:
//!   `-2` is component 2 (one digit), `-09` element 09 (two digits), e.g. in a
//!   `foreach` over `2000E/HI[*]-*` the qualifier is `-1` and the code `-2`.

use gateway_core::path::{Condition, Path, PathError, PathSyntax, Select, Step};

/// The X12 path syntax (format name `x12`).
#[derive(Debug, Clone, Copy, Default)]
pub struct X12PathSyntax;

impl PathSyntax for X12PathSyntax {
    fn name(&self) -> &'static str {
        gateway_core::SourceFormat::X12.as_str()
    }

    fn compile(&self, text: &str) -> Result<Path, PathError> {
        compile(text)
    }
}

/// Segments searched at any depth when they are the first step.
const HEADER_SEGMENTS: &[&str] = &[
    "ISA", "IEA", "GS", "GE", "ST", "SE", "BHT", "TA1", "AK1", "AK2", "AK9", "IK3", "IK4", "IK5",
];

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn error(&self, message: impl Into<String>) -> PathError {
        PathError::new(self.text, self.pos, message)
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// `[*]`, `[n]`, `[-1]`, or nothing.
    fn select(&mut self) -> Result<Option<Select>, PathError> {
        if !self.eat("[") {
            return Ok(None);
        }
        let select = if self.eat("*") {
            Select::All
        } else if self.eat("-1") {
            Select::Last
        } else {
            let digits = self.take_while(|b| b.is_ascii_digit());
            let n = digits
                .parse::<usize>()
                .map_err(|_| self.error("expected `*`, a 0-based index or `-1` in `[...]`"))?;
            Select::Index(n)
        };
        if !self.eat("]") {
            return Err(self.error("expected `]`"));
        }
        Ok(Some(select))
    }

    /// An element reference inside a filter: `01` or `03-1`.
    fn element_ref(&mut self) -> Result<Path, PathError> {
        let start = self.pos;
        let mut steps = vec![self.element_step()?];
        if self.eat("-") {
            steps.push(self.component_step()?);
        }
        Ok(Path::new(&self.text[start..self.pos], steps))
    }

    fn element_step(&mut self) -> Result<Step, PathError> {
        if self.eat("*") {
            return Ok(Step::Child {
                name: "*".into(),
                select: self.select()?.unwrap_or(Select::All),
            });
        }
        let digits = self.take_while(|b| b.is_ascii_digit());
        let n: usize = digits
            .parse()
            .ok()
            .filter(|n| (1..=99).contains(n) && digits.len() <= 2)
            .ok_or_else(|| self.error("expected an element number 01..99 or `*`"))?;
        Ok(Step::Child {
            name: format!("{n:02}"),
            select: self.select()?.unwrap_or(Select::First),
        })
    }

    fn component_step(&mut self) -> Result<Step, PathError> {
        if self.eat("*") {
            return Ok(Step::Child {
                name: "*".into(),
                select: Select::All,
            });
        }
        let digits = self.take_while(|b| b.is_ascii_digit());
        let n: usize = digits
            .parse()
            .ok()
            .filter(|n| (1..=99).contains(n))
            .ok_or_else(|| self.error("expected a component number or `*`"))?;
        Ok(Step::Child {
            name: n.to_string(),
            select: Select::First,
        })
    }

    /// `(cond&cond...)` filters.
    fn filters(&mut self, steps: &mut Vec<Step>) -> Result<bool, PathError> {
        let mut any = false;
        while self.eat("(") {
            loop {
                let negate = self.eat("!");
                let path = self.element_ref()?;
                let condition = if negate {
                    Condition::Missing
                } else if self.eat("!=") {
                    Condition::NotEquals(self.values()?)
                } else if self.eat("=") {
                    Condition::Equals(self.values()?)
                } else {
                    Condition::Exists
                };
                steps.push(Step::Where { path, condition });
                any = true;
                if !self.eat("&") {
                    break;
                }
            }
            if !self.eat(")") {
                return Err(self.error("expected `)` or `&`"));
            }
        }
        Ok(any)
    }

    fn values(&mut self) -> Result<Vec<String>, PathError> {
        let mut out = Vec::new();
        loop {
            let v = self.take_while(|b| !matches!(b, b'|' | b')' | b'&'));
            if v.is_empty() {
                return Err(self.error("expected a value"));
            }
            out.push(v.to_owned());
            if !self.eat("|") {
                return Ok(out);
            }
        }
    }
}

fn loop_alias(id: &str) -> &str {
    match id {
        "2010AA" => "2010A",
        "2010BA" => "2010B",
        "2010CA" => "2010C",
        "2010DA" => "2010D",
        "2010FA" => "2010F",
        other => other,
    }
}

fn is_loop_id(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 4
        && b.len() <= 6
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4..].iter().all(u8::is_ascii_uppercase)
}

fn is_segment_id(name: &str) -> bool {
    (2..=3).contains(&name.len())
        && name.as_bytes()[0].is_ascii_uppercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Compiles X12 path text (see the module docs).
pub fn compile(text: &str) -> Result<Path, PathError> {
    let mut p = Parser { text, pos: 0 };
    let mut steps = Vec::new();
    let mut first = true;
    let mut force_descendant = false;
    let mut force_child = false;
    if p.eat("//") {
        force_descendant = true;
    } else if p.eat("./") {
        force_child = true;
    }
    if text.trim().is_empty() {
        return Err(p.error("empty path"));
    }
    // A leading `-NN` (element) or `-N` (component): relative to a segment or
    // element item of a `foreach`.
    if p.peek() == Some(b'-') {
        while p.eat("-") {
            let digits = p.take_while(|b| b.is_ascii_digit() || b == b'*');
            let step = match digits {
                "*" => Step::Child {
                    name: "*".into(),
                    select: Select::All,
                },
                d if d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit()) => Step::Child {
                    name: d.to_owned(),
                    select: p.select()?.unwrap_or(Select::First),
                },
                d if d.len() == 1 && d.bytes().all(|b| b.is_ascii_digit()) => Step::Child {
                    name: d.to_owned(),
                    select: Select::First,
                },
                _ => return Err(p.error("expected -NN (element) or -N (component)")),
            };
            steps.push(step);
        }
        if p.peek().is_some() {
            return Err(p.error("unexpected text after a relative element path"));
        }
        return Ok(Path::new(text, steps));
    }
    loop {
        if p.eat("..") {
            steps.push(Step::Parent);
        } else if p.eat("resolve()") {
            steps.push(Step::Follow);
        } else {
            let name = p.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
            if name.is_empty() {
                return Err(p.error("expected a loop id, segment id or name"));
            }
            let descend_first = first && !force_child;
            if is_loop_id(name) {
                let select = p.select()?.unwrap_or(Select::First);
                steps.push(Step::Descendant {
                    name: loop_alias(name).to_owned(),
                    select,
                });
            } else if is_segment_id(name) {
                let descend =
                    force_descendant || (descend_first && HEADER_SEGMENTS.contains(&name));
                let mut select = p.select()?;
                let mut filtered = Vec::new();
                let has_filter = p.filters(&mut filtered)?;
                if select.is_none() {
                    select = p.select()?;
                }
                let gather = if has_filter {
                    Select::All
                } else {
                    select.unwrap_or(Select::First)
                };
                steps.push(if descend {
                    Step::Descendant {
                        name: name.to_owned(),
                        select: gather,
                    }
                } else {
                    Step::Child {
                        name: name.to_owned(),
                        select: gather,
                    }
                });
                if has_filter {
                    steps.extend(filtered);
                    match select {
                        Some(Select::All) => {}
                        Some(other) => steps.push(Step::Pick(other)),
                        None => steps.push(Step::Pick(Select::First)),
                    }
                }
                if p.eat("-") {
                    steps.push(p.element_step()?);
                    let mut component_filter = Vec::new();
                    if p.filters(&mut component_filter)? {
                        steps.extend(component_filter);
                    }
                    if p.eat("-") {
                        steps.push(p.component_step()?);
                    }
                }
            } else if name.as_bytes()[0].is_ascii_lowercase() {
                let select = p.select()?.unwrap_or(Select::First);
                steps.push(if descend_first || force_descendant {
                    Step::Descendant {
                        name: name.to_owned(),
                        select,
                    }
                } else {
                    Step::Child {
                        name: name.to_owned(),
                        select,
                    }
                });
            } else {
                p.pos -= name.len();
                return Err(p.error(format!(
                    "`{name}` is neither a loop id (2000E), a segment id (NM1) nor a lowercase name"
                )));
            }
        }
        first = false;
        force_descendant = false;
        if p.peek().is_none() {
            break;
        }
        if !p.eat("/") {
            return Err(p.error("expected `/`, `-`, `[` or `(`"));
        }
    }
    Ok(Path::new(text, steps))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_the_documented_forms() {
        for ok in [
            "2010CA/NM1-09",
            "2010CA/REF(01=SY)-02",
            "NM1(01=IL|QC)-03",
            "2000F[*]/SV1-01-2",
            "2000E/HI[*]-*",
            "2000E/HI-*-2",
            "HI-01(1=ABK)-2",
            "BHT-03",
            "//REF(01=NT)-02",
            "decision/service[*]/status",
            "../2010F/NM1-09",
            "./REF(01=BB&02)-02",
            "REF(!02)",
            "2000F[-1]/line",
            "REF(01=SY)[1]-02",
            "-2",
            "-01-1",
            "patient/resolve()/DMG-02",
        ] {
            compile(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn rejects_bad_paths_with_offsets() {
        let e = compile("2010C/NM1-").expect_err("bad");
        assert_eq!(e.offset, 10);
        let e = compile("2010C/nm1/XYZW").expect_err("bad");
        assert_eq!(e.offset, 10);
        assert!(compile("").is_err());
        assert!(compile("REF(01=").is_err());
        assert!(compile("REF[x]").is_err());
        assert!(compile("NM1-100").is_err());
    }

    #[test]
    fn alias_and_step_kinds() {
        let p = compile("2010CA/REF(01=SY)-02").expect("compiles");
        assert_eq!(
            p.steps[0],
            Step::Descendant {
                name: "2010C".into(),
                select: Select::First
            }
        );
        assert!(
            matches!(p.steps[1], Step::Child { ref name, select: Select::All } if name == "REF")
        );
        assert!(matches!(p.steps[2], Step::Where { .. }));
        assert_eq!(p.steps[3], Step::Pick(Select::First));
        let p = compile("BHT-03").expect("compiles");
        assert!(matches!(p.steps[0], Step::Descendant { .. }));
        let p = compile("SV1-01-2").expect("compiles");
        assert!(matches!(p.steps[0], Step::Child { .. }));
    }
}

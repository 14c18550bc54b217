//! The HL7 v2 path syntax for mapping profiles, compiled to
//! [`gateway_core::path`] steps over the tree built by [`crate::parse`].
//!
//! ```text
//! PID-3                  first repetition of PID-3, whole field
//! PID-3.1                component 1 of it
//! PID-3[2].1             second repetition (1-based), component 1
//! PID-3[*].1             component 1 of every repetition
//! PID-3[*](5=MR).1       repetitions whose component 5 is MR
//! PID-3(5=MR|MRN).1      same, first match only (a filter without [..] searches all)
//! PID-3(5!=SS)           component 5 is not SS (or absent)
//! PID-3(4.1=NORTH,5=MR)  both conditions (`,` is AND); `4.1` = component 4 subcomponent 1
//! PID-3(!5) / PID-3(5)   component 5 absent / present
//! OBR-4.1.2              subcomponent 2 of component 1
//! IN1[2]-36              field 36 of the second IN1 segment
//! IN1[*]                 every IN1 segment (a foreach source)
//! OBX(3.1=AUTHNUM)-5     field 5 of the first OBX whose OBX-3.1 is AUTHNUM
//! OBX[*](2=TX)           every OBX whose OBX-2 is TX (segment filters name the field)
//! >AUT-6.1               inside a foreach over PR1[*]: AUT-6.1 of this PR1's group
//! ```
//!
//! **Groups**: HL7 nests segment groups in its message grammar but sends them
//! flat, so `>SEG` (relative, inside a `foreach` over segments) selects the
//! `SEG` segments after the current one, up to the next segment of the
//! current one's kind: the `AUT` of a REF^I12 procedure (`PR1`, `AUT`, `CTD`,
//! `PR1`, …), the `NTE` of an `OBR`. `>AUT[*]`, `>AUT(1.1=X)` select as usual.
//!
//! **Relative paths** (inside a mapping `foreach`, where the engine evaluates
//! from the current item): `-36`, `-36.1`, `-3[*](5=MR).1` are relative to the
//! current *segment* (foreach over `IN1[*]`); `.1`, `.4.1` are relative to the
//! current *field repetition* (foreach over `PID-3[*]`). A path that starts
//! with a segment id (`IN1-36`) is always the absolute form: inside a foreach
//! write `-36` for "this IN1", or `IN1-36` with `scope = "root"` for the first
//! IN1 of the message.
//!
//! Segment ids are 3 characters `[A-Z][A-Z0-9]{2}`; numbers are 1-based; `[0]`
//! is an error. Filter values are literal text up to `|`, `,` or `)`.

use gateway_core::path::{Condition, Path, PathError, PathSyntax, Select, Step};

/// The HL7 v2 path syntax (format name `hl7v2`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Hl7PathSyntax;

impl PathSyntax for Hl7PathSyntax {
    fn name(&self) -> &'static str {
        gateway_core::SourceFormat::Hl7v2.as_str()
    }

    fn compile(&self, text: &str) -> Result<Path, PathError> {
        let mut p = Parser { text, pos: 0 };
        let steps = p.path()?;
        Ok(Path::new(text, steps))
    }
}

/// Compiles an HL7 path (shorthand for [`Hl7PathSyntax`]).
pub fn compile(text: &str) -> Result<Path, PathError> {
    Hl7PathSyntax.compile(text)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, message: impl Into<String>) -> PathError {
        PathError::new(self.text, self.pos, message)
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn path(&mut self) -> Result<Vec<Step>, PathError> {
        if self.text.trim().len() != self.text.len() || self.text.is_empty() {
            return Err(self.err("empty path or surrounding whitespace"));
        }
        let mut steps = Vec::new();
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                self.field(&mut steps)?;
            }
            Some(b'>') => {
                self.pos += 1;
                let first = steps.len();
                self.segment(&mut steps)?;
                if let Some(Step::Child { name, select }) = steps.get(first).cloned() {
                    steps[first] = Step::Following { name, select };
                }
                if self.eat(b'-') {
                    self.field(&mut steps)?;
                }
            }
            Some(b'.') => self.components(&mut steps)?,
            _ => {
                self.segment(&mut steps)?;
                if self.eat(b'-') {
                    self.field(&mut steps)?;
                }
            }
        }
        if self.pos != self.text.len() {
            return Err(self.err("unexpected text"));
        }
        Ok(steps)
    }

    fn segment(&mut self, steps: &mut Vec<Step>) -> Result<(), PathError> {
        let b = self.text.as_bytes();
        let ok = b.len() >= self.pos + 3
            && b[self.pos].is_ascii_uppercase()
            && b[self.pos + 1..self.pos + 3]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !ok {
            return Err(self.err(
                "expected a segment id like PID (or `-field` / `.component` for a relative path)",
            ));
        }
        let name = self.text[self.pos..self.pos + 3].to_owned();
        self.pos += 3;
        self.selected(steps, name, true)
    }

    fn field(&mut self, steps: &mut Vec<Step>) -> Result<(), PathError> {
        let n = self.number("field number")?;
        self.selected(steps, n.to_string(), false)?;
        if self.peek() == Some(b'.') {
            self.components(steps)?;
        }
        Ok(())
    }

    /// A name with an optional `[n]`/`[*]` and optional filters.
    fn selected(
        &mut self,
        steps: &mut Vec<Step>,
        name: String,
        segment: bool,
    ) -> Result<(), PathError> {
        let explicit = if self.eat(b'[') {
            let sel = if self.eat(b'*') {
                Select::All
            } else {
                let n = self.number("repetition number")?;
                Select::Index(n - 1)
            };
            if !self.eat(b']') {
                return Err(self.err("expected `]`"));
            }
            Some(sel)
        } else {
            None
        };
        let mut filters = Vec::new();
        while self.peek() == Some(b'(') {
            self.pos += 1;
            loop {
                filters.push(self.condition(segment)?);
                if self.eat(b',') {
                    continue;
                }
                if self.eat(b')') {
                    break;
                }
                return Err(self.err("expected `,` or `)`"));
            }
        }
        let select = match (explicit, filters.is_empty()) {
            (Some(s), _) => s,
            (None, true) => Select::First,
            (None, false) => Select::All,
        };
        steps.push(Step::Child { name, select });
        let pick_first = explicit.is_none() && !filters.is_empty();
        steps.extend(filters);
        if pick_first {
            steps.push(Step::Pick(Select::First));
        }
        Ok(())
    }

    fn condition(&mut self, segment: bool) -> Result<Step, PathError> {
        let negated = self.eat(b'!');
        let start = self.pos;
        let mut sub = Vec::new();
        let first = self.number(if segment {
            "field number"
        } else {
            "component number"
        })?;
        sub.push(first);
        while self.peek() == Some(b'.') && sub.len() < if segment { 3 } else { 2 } {
            self.pos += 1;
            sub.push(self.number("component number")?);
        }
        let sub_text = self.text[start..self.pos].to_owned();
        let steps = sub
            .iter()
            .map(|n| Step::Child {
                name: n.to_string(),
                select: Select::First,
            })
            .collect();
        let path = Path::new(sub_text, steps);
        if negated {
            return Ok(Step::Where {
                path,
                condition: Condition::Missing,
            });
        }
        let not = if self.text[self.pos..].starts_with("!=") {
            self.pos += 2;
            true
        } else if self.eat(b'=') {
            false
        } else {
            return Ok(Step::Where {
                path,
                condition: Condition::Exists,
            });
        };
        let mut values = Vec::new();
        loop {
            let vstart = self.pos;
            while let Some(b) = self.peek() {
                if matches!(b, b'|' | b',' | b')') {
                    break;
                }
                self.pos += 1;
            }
            if self.pos == self.text.len() {
                return Err(self.err("unterminated filter: expected `)`"));
            }
            values.push(self.text[vstart..self.pos].to_owned());
            if !self.eat(b'|') {
                break;
            }
        }
        Ok(Step::Where {
            path,
            condition: if not {
                Condition::NotEquals(values)
            } else {
                Condition::Equals(values)
            },
        })
    }

    /// `.C` or `.C.S`.
    fn components(&mut self, steps: &mut Vec<Step>) -> Result<(), PathError> {
        let mut count = 0;
        while self.eat(b'.') {
            count += 1;
            if count > 2 {
                return Err(PathError::new(
                    self.text,
                    self.pos - 1,
                    "a path ends at the subcomponent (at most `.C.S`)",
                ));
            }
            let n = self.number("component number")?;
            steps.push(Step::Child {
                name: n.to_string(),
                select: Select::First,
            });
        }
        Ok(())
    }

    fn number(&mut self, what: &str) -> Result<usize, PathError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err(format!("expected a {what}")));
        }
        match self.text[start..self.pos].parse::<usize>() {
            Ok(0) => Err(PathError::new(
                self.text,
                start,
                format!("{what}s start at 1"),
            )),
            Ok(n) if n <= 9999 => Ok(n),
            _ => Err(PathError::new(
                self.text,
                start,
                format!("{what} too large"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_with_offsets() {
        for (text, offset) in [
            ("pid-3", 0),
            ("PID-", 4),
            ("PID-0", 4),
            ("PID-3[", 6),
            ("PID-3[2", 7),
            ("PID-3(5=MR", 10),
            ("PID-3.1.2.3", 9),
            ("PID-3x", 5),
            ("", 0),
            (">", 1),
            (">aut-6", 1),
        ] {
            let e = compile(text).expect_err(text);
            assert_eq!(e.offset, offset, "{text}: {e}");
        }
    }

    #[test]
    fn compiles_the_documented_forms() {
        for ok in [
            "PID-3",
            "PID-3.1",
            "PID-3[2].1",
            "PID-3[*](5=MR).1",
            "PID-3(5=MR|MRN).1",
            "PID-3(5!=SS)",
            "PID-3(4.1=NORTH,5=MR)",
            "PID-3(!5)",
            "OBR-4.1.2",
            "IN1[2]-36",
            "IN1[*]",
            "OBX(3.1=AUTHNUM)-5",
            "-36",
            "-36.1",
            ".1",
            ".4.1",
            "MSH-9.2",
            "ZPI-2",
            ">AUT-6.1",
            ">AUT[*]",
            ">NTE(2=P)-3",
        ] {
            compile(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }
}

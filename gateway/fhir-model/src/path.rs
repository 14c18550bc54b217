//! The FHIR path syntax for mapping profiles: a FHIRPath subset that compiles to
//! gateway-core [`Step`]s over the bundle tree of [`crate::tree`].
//!
//! Integration engineers know FHIRPath, so profiles say
//! `ServiceRequest.subject.resolve().identifier.where(type.coding.code='MR').value`
//! rather than a home-grown dialect. Supported:
//!
//! * element steps `a.b.c`, each taking the first match; `name[*]` takes all
//!   (a `foreach` source such as `Coverage[*]`), `name[0]`, `name[-1]`;
//! * `where(cond)`, conditions joined by `and`; a condition is `path = 'lit'`,
//!   `path != 'lit'`, `a = 'x' or a = 'y'` (same path), `path.exists()`,
//!   `path.empty()`, `path.exists().not()`, or a bare `path` (exists). Equality
//!   holds when *any* element along the path matches, as in FHIRPath:
//!   `type.coding.code = 'MR'` looks at every coding;
//! * `resolve()` on a Reference (or its `.reference`) follows it inside the
//!   bundle; `ofType(Patient)` keeps resources of that type;
//! * `extension('url')` selects extensions by URL; `first()`, `last()`,
//!   `parent()`; a leading `Bundle.` is accepted and ignored.
//!
//! A step before `where(...)` selects all matches so the filter sees every
//! repetition. Errors carry the byte offset of the offending character.

use gateway_core::path::{Condition, Path, PathError, PathSyntax, Select, Step};

/// The FHIR path syntax (`fhir`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FhirPathSyntax;

impl PathSyntax for FhirPathSyntax {
    fn name(&self) -> &'static str {
        gateway_core::SourceFormat::Fhir.as_str()
    }

    fn compile(&self, text: &str) -> Result<Path, PathError> {
        let mut parser = Parser { text, pos: 0 };
        parser.skip_ws();
        if parser.at_end() {
            return Err(PathError::new(text, 0, "empty path"));
        }
        if parser.rest().starts_with("Bundle.") {
            parser.pos += "Bundle.".len();
        }
        let steps = parser.path(&[])?;
        parser.skip_ws();
        if !parser.at_end() {
            return Err(parser.error("unexpected text after the path"));
        }
        Ok(Path::new(text, steps))
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    fn error(&self, message: impl Into<String>) -> PathError {
        PathError::new(self.text, self.pos, message)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: &str) -> Result<(), PathError> {
        if self.eat(s) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{s}`")))
        }
    }

    fn identifier(&mut self) -> Result<&'a str, PathError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '$')
        {
            self.pos += self.peek().map_or(1, char::len_utf8);
        }
        if start == self.pos {
            return Err(self.error("expected a name"));
        }
        Ok(&self.text[start..self.pos])
    }

    /// Parses `step ('.' step)*` until end of input or one of `stops`
    /// (checked after skipping whitespace).
    fn path(&mut self, stops: &[&str]) -> Result<Vec<Step>, PathError> {
        let mut steps: Vec<Step> = Vec::new();
        loop {
            self.step(&mut steps)?;
            let before = self.pos;
            self.skip_ws();
            if self.at_end() || stops.iter().any(|s| self.rest().starts_with(s)) {
                self.pos = if self.at_end() { self.pos } else { before };
                self.skip_ws();
                return Ok(steps);
            }
            self.pos = before;
            if !self.eat(".") {
                return Err(self.error("expected `.`"));
            }
        }
    }

    fn step(&mut self, steps: &mut Vec<Step>) -> Result<(), PathError> {
        let start = self.pos;
        let name = self.identifier()?;
        if self.peek() == Some('(') {
            self.pos += 1;
            return self.function(name, start, steps);
        }
        let mut select = Select::First;
        if self.eat("[") {
            let close = self
                .rest()
                .find(']')
                .ok_or_else(|| self.error("unclosed `[`"))?;
            let inner = self.rest()[..close].trim();
            select = match inner {
                "*" => Select::All,
                "-1" => Select::Last,
                n => Select::Index(
                    n.parse()
                        .map_err(|_| self.error(format!("`{inner}` is not an index")))?,
                ),
            };
            self.pos += close + 1;
        }
        steps.push(Step::Child {
            name: name.to_owned(),
            select,
        });
        Ok(())
    }

    fn function(
        &mut self,
        name: &str,
        start: usize,
        steps: &mut Vec<Step>,
    ) -> Result<(), PathError> {
        match name {
            "resolve" => {
                self.expect(")")?;
                if !matches!(steps.last(), Some(Step::Child { name, .. }) if name == "reference") {
                    steps.push(Step::Child {
                        name: "reference".into(),
                        select: Select::First,
                    });
                }
                steps.push(Step::Follow);
            }
            "parent" => {
                self.expect(")")?;
                steps.push(Step::Parent);
            }
            "first" | "last" => {
                self.expect(")")?;
                steps.push(Step::Pick(if name == "first" {
                    Select::First
                } else {
                    Select::Last
                }));
            }
            "ofType" => {
                self.skip_ws();
                let rtype = self.identifier()?.to_owned();
                self.skip_ws();
                self.expect(")")?;
                steps.push(Step::Where {
                    path: child_path("resourceType"),
                    condition: Condition::Equals(vec![rtype]),
                });
            }
            "extension" => {
                self.skip_ws();
                let url = self.literal()?;
                self.skip_ws();
                self.expect(")")?;
                steps.push(Step::Child {
                    name: "extension".into(),
                    select: Select::All,
                });
                steps.push(Step::Where {
                    path: child_path("url"),
                    condition: Condition::Equals(vec![url]),
                });
            }
            "where" => {
                widen_last(steps);
                loop {
                    self.skip_ws();
                    steps.push(self.condition()?);
                    self.skip_ws();
                    if self.eat(")") {
                        break;
                    }
                    if !self.eat("and ") {
                        return Err(self.error("expected `and` or `)`"));
                    }
                }
            }
            other => {
                return Err(PathError::new(
                    self.text,
                    start,
                    format!("function `{other}()` is not supported"),
                ));
            }
        }
        Ok(())
    }

    /// One `where` condition, possibly `a = 'x' or a = 'y'`.
    fn condition(&mut self) -> Result<Step, PathError> {
        let sub_text_start = self.pos;
        let mut sub = self.path(&["=", "!=", " or ", " and ", ")", ".exists()", ".empty()"])?;
        let sub_text = self.text[sub_text_start..self.pos].trim().to_owned();
        if self.eat(".exists().not()") || self.eat(".empty()") {
            return Ok(Step::Where {
                path: Path::new(sub_text, sub),
                condition: Condition::Missing,
            });
        }
        if self.eat(".exists()") {
            return Ok(Step::Where {
                path: Path::new(sub_text, sub),
                condition: Condition::Exists,
            });
        }
        self.skip_ws();
        if self.eat("!=") {
            self.skip_ws();
            let value = self.literal()?;
            return Ok(Step::Where {
                path: Path::new(sub_text, std::mem::take(&mut sub)),
                condition: Condition::NotEquals(vec![value]),
            });
        }
        if self.eat("=") {
            self.skip_ws();
            let mut values = vec![self.literal()?];
            loop {
                let save = self.pos;
                self.skip_ws();
                if !self.eat("or ") {
                    self.pos = save;
                    break;
                }
                self.skip_ws();
                let other_start = self.pos;
                let other = self.path(&["="])?;
                let other_text = self.text[other_start..self.pos].trim();
                if other != sub {
                    return Err(PathError::new(
                        self.text,
                        other_start,
                        format!(
                            "`or` must compare the same path (`{sub_text}`), not `{other_text}`"
                        ),
                    ));
                }
                self.skip_ws();
                self.expect("=")?;
                self.skip_ws();
                values.push(self.literal()?);
            }
            return Ok(any_equals(sub_text, sub, values));
        }
        Ok(Step::Where {
            path: Path::new(sub_text, sub),
            condition: Condition::Exists,
        })
    }

    /// `'text'` (with `\'` and `\\` escapes), a number, `true` or `false`.
    fn literal(&mut self) -> Result<String, PathError> {
        if self.eat("'") {
            let mut out = String::new();
            let mut chars = self.rest().char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\'' => {
                        self.pos += i + 1;
                        return Ok(out);
                    }
                    '\\' => match chars.next() {
                        Some((_, e)) => out.push(e),
                        None => break,
                    },
                    c => out.push(c),
                }
            }
            return Err(self.error("unterminated string literal"));
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        {
            self.pos += 1;
        }
        let word = &self.text[start..self.pos];
        if word.is_empty() {
            return Err(self.error("expected a literal ('text', a number, true or false)"));
        }
        Ok(word.to_owned())
    }
}

/// A one-step path to a child element.
fn child_path(name: &str) -> Path {
    Path::new(
        name,
        vec![Step::Child {
            name: name.to_owned(),
            select: Select::First,
        }],
    )
}

/// A step before `where` must offer every repetition to the filter.
fn widen_last(steps: &mut [Step]) {
    if let Some(Step::Child { select, .. }) = steps.last_mut()
        && *select == Select::First
    {
        *select = Select::All;
    }
}

/// `a.b.c = v1|v2` with "any" semantics: keep the nodes for which some `a.b`
/// has a `c` equal to one of the values.
fn any_equals(text: String, mut sub: Vec<Step>, values: Vec<String>) -> Step {
    let last = sub.pop();
    match last {
        Some(Step::Child { name, select }) if !sub.is_empty() => {
            for step in &mut sub {
                if let Step::Child { select, .. } = step
                    && *select == Select::First
                {
                    *select = Select::All;
                }
            }
            sub.push(Step::Where {
                path: Path::new(
                    name.clone(),
                    vec![Step::Child {
                        name: name.clone(),
                        select,
                    }],
                ),
                condition: Condition::Equals(values),
            });
            sub.push(Step::Child {
                name,
                select: Select::First,
            });
            Step::Where {
                path: Path::new(text, sub),
                condition: Condition::Exists,
            }
        }
        Some(last) => {
            sub.push(last);
            Step::Where {
                path: Path::new(text, sub),
                condition: Condition::Equals(values),
            }
        }
        None => Step::Where {
            path: Path::new(text, sub),
            condition: Condition::Equals(values),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::build_tree;
    use serde_json::json;

    fn doc() -> gateway_core::SourceDocument {
        let b = json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1",
              "identifier": [
                {"type": {"coding": [{"system": "x", "code": "XX"}, {"code": "SS"}]}, "value": "999-00-0000"},
                {"type": {"coding": [{"code": "MR"}]}, "system": "urn:mrn", "value": "E10001"}],
              "extension": [{"url": "http://example.org/ext/pref", "valueString": "text"}],
              "name": [{"use": "old", "family": "Before"}, {"use": "official", "family": "Testperson", "given": ["Alpha", "Beta"]}]}},
            {"resource": {"resourceType": "ServiceRequest", "id": "sr1",
              "subject": {"reference": "urn:uuid:p1"},
              "reasonReference": [{"reference": "Condition/c1"}, {"reference": "Condition/c2"}],
              "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "78452"}]}}},
            {"resource": {"resourceType": "Condition", "id": "c1", "code": {"coding": [{"code": "I25.10"}]}}},
            {"resource": {"resourceType": "Condition", "id": "c2", "code": {"coding": [{"code": "R07.9"}]}}}
        ]});
        let built = build_tree(&b, &[], "ServiceRequest").expect("resource");
        assert!(built.diagnostics.is_empty());
        gateway_core::SourceDocument {
            format: gateway_core::SourceFormat::Fhir,
            meta: Default::default(),
            tree: built.tree,
            diagnostics: Vec::new(),
        }
    }

    fn values(path: &str) -> Vec<String> {
        let d = doc();
        let p = FhirPathSyntax.compile(path).expect("compiles");
        p.evaluate(&d.tree, d.tree.root())
            .into_iter()
            .filter_map(|n| d.tree.value(n).map(str::to_owned))
            .collect()
    }

    #[test]
    fn follows_references_and_filters_like_fhirpath() {
        assert_eq!(
            values(
                "ServiceRequest.subject.resolve().identifier.where(type.coding.code='MR').value"
            ),
            ["E10001"]
        );
        assert_eq!(
            values(
                "ServiceRequest.subject.reference.resolve().identifier.where(type.coding.code = 'SS').value"
            ),
            ["999-00-0000"]
        );
        assert_eq!(
            values("Bundle.Patient.name.where(use='official').given[*]"),
            ["Alpha", "Beta"]
        );
        assert_eq!(
            values("ServiceRequest.reasonReference[*].resolve().code.coding.code"),
            ["I25.10", "R07.9"]
        );
        assert_eq!(
            values("Patient.identifier.where(system='urn:mrn' and value.exists()).value"),
            ["E10001"]
        );
        assert_eq!(
            values("Patient.name.where(use = 'old' or use = 'official').family"),
            ["Before", "Testperson"]
        );
        assert_eq!(
            values("Patient.name.where(use != 'old').family"),
            ["Testperson"]
        );
        assert_eq!(
            values("Patient.extension('http://example.org/ext/pref').valueString"),
            ["text"]
        );
        assert_eq!(
            values("ServiceRequest.subject.resolve().ofType(Patient).id"),
            ["p1"]
        );
        assert_eq!(
            values("ServiceRequest.subject.resolve().ofType(Group).id"),
            Vec::<String>::new()
        );
        assert_eq!(values("Condition[-1].id"), ["c2"]);
        assert_eq!(values("Condition[*].id"), ["c1", "c2"]);
        assert_eq!(values("Patient.name[*].family.first()"), ["Before"]);
    }

    #[test]
    fn rejects_bad_paths_with_offsets() {
        for (text, offset) in [
            ("", 0),
            ("Patient..name", 8),
            ("Patient.name.where(use='x'", 26),
            ("Patient.count()", 8),
            ("Patient.name[x]", 13),
            ("Patient.name.where(use='x' or given='y')", 30),
            ("Patient.name.where(use='x)", 24),
        ] {
            let e = FhirPathSyntax.compile(text).expect_err(text);
            assert_eq!(e.offset, offset, "{text}: {e}");
        }
    }
}

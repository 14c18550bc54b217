//! `--dry-run`: the steps a playbook would take, with every value redacted.
//!
//! Operators check a playbook against a case without touching the desktop. The
//! listing shows templates as written and, when a case is given, only whether
//! each renders and how long the result is — never the value itself.

use std::fmt::Write as _;

use gateway_core::Case;

use crate::playbook::{Action, Playbook, Target, Test};
use crate::template::{Context, RenderError, Template};

fn redacted(template: &Template, ctx: Option<&Context>) -> String {
    let source = template.source();
    match ctx {
        None => format!("\"{source}\""),
        Some(c) => match template.render(c) {
            Ok(v) if template.is_literal() => format!("\"{v}\""),
            Ok(v) => format!("\"{source}\" -> [redacted, {} chars]", v.chars().count()),
            Err(RenderError::Missing(p)) if p.starts_with("captured.") => {
                format!("\"{source}\" -> [captured at run time]")
            }
            Err(e) => format!("\"{source}\" -> ERROR: {e}"),
        },
    }
}

/// One line per step; `case` (optional) is used only to check templates render.
pub fn describe(playbook: &Playbook, case: Option<&Case>) -> String {
    let ctx = case.map(|c| Context {
        case: serde_json::to_value(c).unwrap_or_default(),
        captured: Default::default(),
        tables: playbook.tables.clone(),
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "playbook `{}` ({}), {} steps, timeout {} ms{}",
        playbook.name,
        playbook.kind.as_str(),
        playbook.steps.len(),
        playbook.timeout.as_millis(),
        if case.is_some() { ", case given" } else { "" }
    );
    for step in &playbook.steps {
        let what = match &step.action {
            Action::WaitWindow { title } => format!("wait for window \"{title}\""),
            Action::Focus { title } => match title {
                Some(t) => format!("focus window \"{t}\""),
                None => "focus the current window".to_owned(),
            },
            Action::Key { chords } => format!(
                "press {}",
                chords
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Action::Type { text } => format!("type {}", redacted(text, ctx.as_ref())),
            Action::Click { x, y, clicks, .. } => format!("click ({x}, {y}) x{clicks}"),
            Action::Copy {
                at,
                capture,
                optional,
            } => format!(
                "copy field{} into `{capture}`{}",
                at.map(|(x, y)| format!(" at ({x}, {y})"))
                    .unwrap_or_default(),
                if *optional { " (optional)" } else { "" }
            ),
            Action::Verify { at, expect } => format!(
                "verify field{} equals {}",
                at.map(|(x, y)| format!(" at ({x}, {y})"))
                    .unwrap_or_default(),
                redacted(expect, ctx.as_ref())
            ),
            Action::Wait { duration } => format!("wait {} ms", duration.as_millis()),
            Action::Branch { value, test, goto } => {
                let t = match test {
                    Test::Equals(v) => format!("== \"{v}\""),
                    Test::NotEquals(v) => format!("!= \"{v}\""),
                    Test::Matches(p) => format!("matches \"{p}\""),
                };
                let g = match goto {
                    Target::End => "end".to_owned(),
                    Target::Step(i) => playbook
                        .steps
                        .get(*i)
                        .map(|s| s.id.clone())
                        .unwrap_or_default(),
                };
                format!("if \"{}\" {t} goto {g}", value.source())
            }
            Action::Fail { message } => format!("fail: {message}"),
            Action::CheckContext { fields } => format!(
                "check the screen shows the case's {}",
                fields
                    .iter()
                    .map(|f| format!(
                        "{} at ({}, {}) = {} [{}]",
                        f.name,
                        f.at.0,
                        f.at.1,
                        redacted(&f.expect, ctx.as_ref()),
                        f.compare.as_string()
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        let what = if step.commit {
            format!("{what}  <- COMMIT")
        } else {
            what
        };
        let guard = step
            .guard
            .as_ref()
            .filter(|_| step.action.is_input())
            .map(|g| format!("  [only into \"{g}\"]"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:>3}. {:<12} {:<20} {what}{guard}",
            step.index + 1,
            step.action.name(),
            step.id
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn lists_steps_without_values() {
        let pb = Playbook::parse(
            Path::new("t.toml"),
            r#"
name = "w"
kind = "write"
[[step]]
action = "wait_window"
title = "Auth*"
[[step]]
action = "check_context"
fields = [{ name = "mrn", x = 3, y = 4, expect = "{{patient.identifiers[0].value}}" }]
[[step]]
action = "type"
text = "{{decision.authorization_number}}"
[[step]]
action = "verify"
expect = "{{decision.note}}"
[[step]]
action = "check_context"
fields = [{ name = "mrn", x = 3, y = 4, expect = "{{patient.identifiers[0].value}}" }]
[[step]]
action = "key"
keys = "ctrl+s"
commit = true
"#,
        )
        .expect("parses");
        let case: Case = serde_json::from_value(serde_json::json!({
            "case_id": "c", "tenant": "t", "status": "approved",
            "source": {"adapter": "desktop", "profile": "p", "received_at": "2026-11-22T10:00:00Z"},
            "decision": {"status": "approved", "authorization_number": "PA-SECRET-1"},
            "patient": {"identifiers": [{"type": "MR", "value": "MRN-SECRET"}]}
        }))
        .expect("case");
        let text = describe(&pb, Some(&case));
        assert!(!text.contains("PA-SECRET-1"), "{text}");
        assert!(text.contains("[redacted, 11 chars]"), "{text}");
        assert!(
            text.contains("ERROR: no value at `decision.note`"),
            "{text}"
        );
        assert!(text.contains("[only into \"Auth*\"]"), "{text}");
        assert!(!text.contains("MRN-SECRET"), "{text}");
        assert!(
            text.contains("mrn at (3, 4) = \"{{patient.identifiers[0].value}}\" -> [redacted, 10 chars] [text]"),
            "{text}"
        );
        assert!(text.contains("press ctrl+s  <- COMMIT"), "{text}");
        let without_case = describe(&pb, None);
        assert!(without_case.contains("type \"{{decision.authorization_number}}\""));
    }
}

//! The `--explain` trace: for every output field, the rule that produced it,
//! the source path and position, the raw value and the transform chain.
//!
//! This output is for the integration engineer's terminal only (it contains
//! source values); the daemon never renders it.

use crate::MapOutcome;

/// Renders a readable trace of `outcome` (values appear only when the
/// outcome was produced with `MapContext::explain`).
pub fn render_explain(outcome: &MapOutcome) -> String {
    let mut out = String::new();
    match (&outcome.mapping_file, outcome.action) {
        (Some(file), Some(action)) => {
            out.push_str(&format!(
                "mapping file: {file} (action {})\n",
                action.as_str()
            ));
        }
        _ => out.push_str("mapping file: none matched\n"),
    }
    match &outcome.case {
        Some(case) => out.push_str(&format!("case: {}\n", case.case_id)),
        None => out.push_str("case: not produced\n"),
    }
    out.push('\n');
    for p in &outcome.provenance {
        match &p.value {
            Some(v) => out.push_str(&format!("{} = {v:?}\n", p.field)),
            None => out.push_str(&format!("{}\n", p.field)),
        }
        let place = if p.line > 0 {
            format!("{}:{}", p.file, p.line)
        } else {
            p.file.to_string()
        };
        out.push_str(&format!("    rule:   {} ({place})\n", p.rule));
        match (&p.source_path, &p.source_location) {
            (Some(path), Some(loc)) => {
                let span = p
                    .source_span
                    .map(|s| format!(", bytes {}..{}", s.start, s.end))
                    .unwrap_or_default();
                out.push_str(&format!("    source: {path} -> {loc}{span}\n"));
            }
            (Some(path), None) => out.push_str(&format!("    source: {path}\n")),
            (None, Some(loc)) => out.push_str(&format!("    source: {loc}\n")),
            (None, None) => out.push_str(&format!("    from:   {}\n", p.origin)),
        }
        if let Some(raw) = &p.raw {
            out.push_str(&format!("    raw:    {raw:?}\n"));
        }
        if !p.transforms.is_empty() {
            out.push_str(&format!("    steps:  {}\n", p.transforms.join(" -> ")));
        }
    }
    if !outcome.diagnostics.is_empty() {
        out.push('\n');
        out.push_str(&crate::render_all(&outcome.diagnostics));
    }
    out
}

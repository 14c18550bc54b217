//! Mapping throughput benchmark.
//!
//! ```text
//! cargo run --release -p gateway-mapping --bin mapping-bench [-- SECONDS_PER_STEP]
//! ```
//!
//! Maps a ~1.5 KB order document (`bench/order.json`) with a ~45-rule
//! profile (`bench/order-profile/`) and reports cases/s, next to baselines
//! measured in the same run on the same machine:
//!
//! * **tree**: parsing the JSON text and building the source tree (what any
//!   adapter does before mapping);
//! * **raw paths**: evaluating every rule's source path (from the root or from
//!   each foreach item) with no transforms, checks or case building — the
//!   floor any path-driven mapper pays.
//!
//! Numbers are reported as ratios to those baselines so they compare across
//! machines; absolute rates depend on the CPU.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gateway_core::json_tree::JsonPathSyntax;
use gateway_core::path::{Path, PathSyntax};
use gateway_mapping::{DefaultSyntaxes, MapContext, Profile, json_document};

/// Runs `f` repeatedly for about `budget` and returns operations per second.
fn rate(budget: Duration, mut f: impl FnMut() -> usize) -> f64 {
    // Warm up.
    for _ in 0..200 {
        black_box(f());
    }
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            black_box(f());
        }
        ops += 100;
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

/// The source paths of the bench profile's rules: (group path, item paths) and root paths.
/// Root paths, and for each foreach group its path and the item-relative paths.
type RulePaths = (Vec<Path>, Vec<(Path, Vec<Path>)>);

fn rule_paths(mapping: &str) -> anyhow_free::Result<RulePaths> {
    let doc: toml::Table = mapping.parse().map_err(|e| format!("bench profile: {e}"))?;
    let compile = |t: &str| JsonPathSyntax.compile(t).map_err(|e| e.to_string());
    let fields = doc
        .get("fields")
        .and_then(|f| f.as_table())
        .ok_or("bench profile has no [fields]")?;
    let groups = doc
        .get("foreach")
        .and_then(|f| f.as_table())
        .ok_or("bench profile has no [foreach]")?;
    let mut root = Vec::new();
    let mut per_group: Vec<(String, Path, Vec<Path>)> = Vec::new();
    for (name, path) in groups {
        let text = path.as_str().ok_or("foreach paths are strings")?;
        per_group.push((name.clone(), compile(text)?, Vec::new()));
    }
    for (key, rule) in fields {
        let texts: Vec<&str> = match rule {
            toml::Value::String(s) => vec![s.as_str()],
            toml::Value::Table(t) => {
                if let Some(p) = t.get("path").and_then(|p| p.as_str()) {
                    vec![p]
                } else if let Some(ps) = t.get("paths").and_then(|p| p.as_array()) {
                    ps.iter().filter_map(|p| p.as_str()).collect()
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        };
        let list = key.split_once("[]").map(|(list, _)| list);
        for text in texts {
            let path = compile(text)?;
            match list.and_then(|l| per_group.iter_mut().find(|g| g.0 == l)) {
                Some(group) => group.2.push(path),
                None => root.push(path),
            }
        }
    }
    Ok((
        root,
        per_group
            .into_iter()
            .map(|(_, p, items)| (p, items))
            .collect(),
    ))
}

/// A tiny result alias so the bench needs no error crate.
mod anyhow_free {
    pub type Result<T> = std::result::Result<T, String>;
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mapping-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow_free::Result<()> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| {
            s.parse()
                .map_err(|_| format!("`{s}` is not a number of seconds"))
        })
        .transpose()?
        .unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds);
    let bench = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench");
    let text = std::fs::read_to_string(bench.join("order.json")).map_err(|e| e.to_string())?;
    let mapping = std::fs::read_to_string(bench.join("order-profile/orders.toml"))
        .map_err(|e| e.to_string())?;
    let profile =
        Profile::load(&bench.join("order-profile"), &DefaultSyntaxes).map_err(|e| e.to_string())?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let doc = json_document(&value);
    let ctx = MapContext::new("2026-11-22T10:00:00Z");
    let outcome = profile.map(&doc, &ctx);
    let case = outcome
        .case
        .as_ref()
        .ok_or_else(|| format!("bench document does not map: {:?}", outcome.diagnostics))?;
    let (root_paths, groups) = rule_paths(&mapping)?;
    let path_count = root_paths.len() + groups.iter().map(|g| g.1.len()).sum::<usize>();

    println!(
        "document {} bytes; {} field rules with {} source paths; case: {} services, {} diagnoses, {} coverages, {} provenance entries; {} diagnostics",
        text.len(),
        mapping
            .lines()
            .filter(|l| l.contains(" = ") && !l.starts_with('['))
            .count(),
        path_count,
        case.services.len(),
        case.diagnoses.len(),
        case.coverages.len(),
        outcome.provenance.len(),
        outcome.diagnostics.len()
    );
    println!("{seconds} s per step; release build expected (cargo run --release)\n");

    let tree = rate(budget, || {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        json_document(&v).tree.len()
    });
    let raw = rate(budget, || {
        let t = &doc.tree;
        let mut n = 0;
        for p in &root_paths {
            n += usize::from(p.first_value(t, t.root()).is_some());
        }
        for (group, items) in &groups {
            for item in group.evaluate(t, t.root()) {
                for p in items {
                    n += usize::from(p.first_value(t, item).is_some());
                }
            }
        }
        n
    });
    let map = rate(budget, || {
        profile.map(&doc, &ctx).case.map_or(0, |c| c.services.len())
    });
    let end_to_end = rate(budget, || {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        profile
            .map(&json_document(&v), &ctx)
            .case
            .map_or(0, |c| c.services.len())
    });
    let explain_ctx = MapContext {
        explain: true,
        ..ctx.clone()
    };
    let explain = rate(budget, || profile.map(&doc, &explain_ctx).provenance.len());

    println!("{:<44} {:>12}", "step", "per second");
    println!("{:<44} {:>12.0}", "baseline: parse JSON + build tree", tree);
    println!("{:<44} {:>12.0}", "baseline: raw path evaluation", raw);
    println!("{:<44} {:>12.0}", "map (tree -> Case)", map);
    println!("{:<44} {:>12.0}", "map with explain values", explain);
    println!("{:<44} {:>12.0}", "parse + map (end to end)", end_to_end);
    println!();
    println!(
        "map costs {:.2}x raw path evaluation and {:.2}x building the tree; end to end is {:.2}x the tree build alone",
        raw / map,
        tree / map,
        tree / end_to_end
    );
    Ok(())
}

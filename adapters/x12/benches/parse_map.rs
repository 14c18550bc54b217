//! 278 parse + map throughput, as ratios against a tokenize-only baseline
//! measured in the same run (absolute numbers depend on the machine; ratios
//! say where the time goes).
//!
//! Run: `cargo bench -p gateway-x12 --no-default-features --bench parse_map`
//! (the transports are not needed and not built; optionally
//! `-- SECONDS` per stage, default 3).

use std::time::{Duration, Instant};

use gateway_core::SourceFormat;
use gateway_core::path::PathSyntax;
use gateway_mapping::{MapContext, Profile, SyntaxProvider};
use gateway_x12::X12PathSyntax;

struct Syntaxes;

impl SyntaxProvider for Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        (format == SourceFormat::X12).then_some(&X12PathSyntax as &dyn PathSyntax)
    }
}

fn measure(name: &str, seconds: f64, inputs: &[Vec<u8>], mut f: impl FnMut(&[u8]) -> usize) -> f64 {
    // Warm up.
    for input in inputs {
        std::hint::black_box(f(input));
    }
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut done = 0u64;
    let mut bytes = 0u64;
    while start.elapsed() < budget {
        for input in inputs {
            std::hint::black_box(f(input));
            bytes += input.len() as u64;
        }
        done += inputs.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = done as f64 / secs;
    println!(
        "{name:<28} {rate:>10.0} interchanges/s  {:>7.1} MB/s",
        bytes as f64 / secs / 1e6
    );
    rate
}

fn main() {
    let seconds: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3.0);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let samples = root.join("sample-messages/x12/x12-278");
    let inputs: Vec<Vec<u8>> = [
        "request.x12",
        "request-two-lines.x12",
        "response-partial.x12",
        "response-approved.x12",
        "response-aaa-subscriber.x12",
    ]
    .iter()
    .map(|n| std::fs::read(samples.join(n)).expect("sample"))
    .collect();
    let avg = inputs.iter().map(Vec::len).sum::<usize>() / inputs.len();
    let profile = Profile::load(&root.join("mappings/x12-278"), &Syntaxes).expect("profile");
    let context = MapContext::new("2026-11-24T10:00:00Z");
    println!("5 synthetic 278 interchanges, {avg} bytes on average, {seconds} s per stage\n");

    let base = measure("tokenize (baseline)", seconds, &inputs, |i| {
        gateway_x12::token::tokenize(i)
            .map(|t| t.segments.len())
            .unwrap_or(0)
    });
    let parse = measure("parse: envelope+loops", seconds, &inputs, |i| {
        gateway_x12::parse_interchange(i)
            .map(|p| p.sets.len())
            .unwrap_or(0)
    });
    let tree = measure("parse + source tree", seconds, &inputs, |i| {
        gateway_x12::parse_documents(i)
            .map(|d| d.len())
            .unwrap_or(0)
    });
    let map = measure("parse + tree + map (Case)", seconds, &inputs, |i| {
        gateway_x12::parse_documents(i)
            .map(|docs| {
                docs.iter()
                    .filter(|d| profile.map(d, &context).case.is_some())
                    .count()
            })
            .unwrap_or(0)
    });
    println!();
    for (name, rate) in [
        ("parse", parse),
        ("parse + tree", tree),
        ("parse + tree + map", map),
    ] {
        println!(
            "{name:<20} {:.2}x the time of tokenizing ({:.1}% of baseline throughput)",
            base / rate,
            100.0 * rate / base
        );
    }
}

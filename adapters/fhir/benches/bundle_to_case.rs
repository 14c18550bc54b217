//! Bundle → case throughput, as ratios against a baseline measured in the same run.
//!
//! Run: `cargo bench -p gateway-fhir --bench bundle_to_case`
//! (release profile; `BENCH_SECS=N` per measurement, default 2).
//!
//! Measured per sample bundle (`sample-messages/fhir/athenahealth/order-full.json`,
//! ~5 KB, 10 resources):
//! 1. baseline: `serde_json::from_slice::<Value>` alone;
//! 2. `parse_bundle`: JSON + source tree + reference checks;
//! 3. `parse_bundle` + `Profile::map` with `mappings/athenahealth` (the whole
//!    bundle → Case path the pipeline runs).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use gateway_core::SourceFormat;
use gateway_core::path::PathSyntax;
use gateway_fhir::FhirPathSyntax;
use gateway_mapping::{MapContext, Profile, SyntaxProvider};

struct Syntaxes;

impl SyntaxProvider for Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        (format == SourceFormat::Fhir).then_some(&FhirPathSyntax as &dyn PathSyntax)
    }
}

fn measure(name: &str, budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    println!("{name:<40} {rate:>12.0} bundles/s");
    rate
}

fn main() {
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let budget = Duration::from_secs(secs);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let raw = std::fs::read(root.join("sample-messages/fhir/athenahealth/order-full.json"))
        .expect("sample bundle");
    let profile = Profile::load(&root.join("mappings/athenahealth"), &Syntaxes).expect("profile");
    let context = MapContext::new("2026-11-23T10:00:00Z");
    println!("bundle: {} bytes", raw.len());
    let baseline = measure("serde_json::from_slice (baseline)", budget, || {
        let v: serde_json::Value = serde_json::from_slice(black_box(&raw)).expect("json");
        black_box(v);
    });
    let parse = measure("parse_bundle (JSON + tree + checks)", budget, || {
        black_box(gateway_fhir::parse_bundle(black_box(&raw)).expect("clean"));
    });
    let full = measure("parse_bundle + map (bundle -> case)", budget, || {
        let doc = gateway_fhir::parse_bundle(black_box(&raw)).expect("clean");
        let outcome = profile.map(&doc, &context);
        black_box(outcome.case.expect("case"));
    });
    println!(
        "ratio parse_bundle / baseline: {:.2}x slower",
        baseline / parse
    );
    println!(
        "ratio bundle->case / baseline: {:.2}x slower",
        baseline / full
    );
}

//! The FHIR bundle intake path as the daemon runs it, in **CPU time per
//! bundle**, against a JSON-only baseline measured in the same run (issue
//! #21, item 5).
//!
//! ```text
//! cargo bench -p gateway-fhir --bench intake                  # 2000 bundles per stage
//! cargo bench -p gateway-fhir --bench intake -- --bundles 5000
//! ```
//!
//! Every bundle is the synthetic athenahealth order
//! (`sample-messages/fhir/athenahealth/order-full.json`, 10 resources) with
//! its own ServiceRequest id, so each one is a new message and a new case.
//!
//! | stage | what runs |
//! | --- | --- |
//! | JSON (baseline) | `serde_json::from_slice::<Value>` alone |
//! | parse_bundle | JSON, source tree, reference checks |
//! | parse + map | `parse_bundle` and `Profile::map` with `mappings/athenahealth` |
//! | full path ×1 / ×16 | what the poller does with a fetched bundle: `poll::inbound_message` (parse, the sender stamped) and the pipeline (map, SQLite commit with `synchronous=FULL`) — no HTTP |
//!
//! The figures go into `docs/benches.md`.

use std::path::Path;
use std::sync::Arc;

use gateway_core::SourceFormat;
use gateway_core::adapter::{IntakeOutcome, IntakePipeline};
use gateway_core::path::PathSyntax;
use gateway_fhir::FhirPathSyntax;
use gateway_mapping::{MapContext, Profile, SyntaxProvider};
use gateway_pipeline::{Identity, Pipeline, ProfileSet};
use gateway_store::{Store, StoreOptions};
use gateway_testkit::bench::{Row, concurrent, print_table, runtime, single};

/// The daemon's allocator (`gateway/daemon/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Syntaxes;

impl SyntaxProvider for Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        (format == SourceFormat::Fhir).then_some(&FhirPathSyntax as &dyn PathSyntax)
    }
}

/// The ServiceRequest id of the sample (the case key of `mappings/athenahealth`).
const SAMPLE_ORDER_ID: &str = "sr1001";

fn args() -> usize {
    let mut n = 2000;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--bundles" {
            n = it.next().and_then(|v| v.parse().ok()).unwrap_or(n);
        }
    }
    n
}

fn main() {
    let n = args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sample =
        std::fs::read_to_string(root.join("sample-messages/fhir/athenahealth/order-full.json"))
            .expect("sample bundle");
    assert!(
        sample.contains(SAMPLE_ORDER_ID),
        "the sample's order id moved"
    );
    let batch = |offset: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                sample
                    .replace(SAMPLE_ORDER_ID, &format!("srb{}", offset + i))
                    .into_bytes()
            })
            .collect()
    };
    let inputs = batch(0);
    let profile = Profile::load(&root.join("mappings/athenahealth"), &Syntaxes).expect("profile");
    let context = MapContext::new("2026-11-23T10:00:00Z");
    println!(
        "FHIR bundle intake: {n} bundles per stage (~{} B each, 10 resources), profile athenahealth",
        inputs[0].len()
    );

    let mut rows: Vec<Row> = Vec::new();
    rows.push(single("JSON (baseline)", &inputs, |raw| {
        serde_json::from_slice::<serde_json::Value>(raw).is_ok()
    }));
    rows.push(single("parse_bundle", &inputs, |raw| {
        gateway_fhir::parse_bundle(raw).map(|d| d.tree.len()).ok()
    }));
    rows.push(single("parse + map", &inputs, |raw| {
        gateway_fhir::parse_bundle(raw)
            .map(|d| profile.map(&d, &context).case.is_some())
            .ok()
    }));

    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    rt.block_on(async {
        let store = Store::open(tmp.path().join("store.sqlite"), StoreOptions::default())
            .await
            .expect("store");
        let pipeline = Arc::new(Pipeline::new(
            store.clone(),
            ProfileSet::new([profile.clone()]),
            Identity {
                tenant: "mso-bench".into(),
                practice: None,
                site: None,
            },
        ));
        for (k, conc) in [1usize, 16].into_iter().enumerate() {
            let items = batch((k + 1) * n);
            let before = store.commit_stats();
            let pipeline = pipeline.clone();
            let name: Arc<str> = Arc::from(profile.name());
            let mut row = concurrent(
                &format!("full path ×{conc} (parse, map, commit; no HTTP)"),
                items,
                conc,
                move |raw| {
                    let pipeline = pipeline.clone();
                    let name = name.clone();
                    async move {
                        let message = gateway_fhir::poll::inbound_message(
                            &name,
                            raw,
                            "https://ehr.example.test/fhir",
                        );
                        matches!(
                            pipeline.submit(message).await,
                            Ok(IntakeOutcome::Accepted { .. })
                        )
                    }
                },
            )
            .await;
            row.note_commits(&store, before, n);
            rows.push(row);
        }
        drop(pipeline);
        store.close().await;
    });
    print_table(&rows, 0, "bundle");
}

//! The X12 278 intake path as the daemon runs it, in **CPU time per
//! interchange**, against a parse-only baseline measured in the same run
//! (issue #21, item 5).
//!
//! ```text
//! cargo bench -p gateway-x12 --bench intake                     # 2000 interchanges per stage
//! cargo bench -p gateway-x12 --bench intake -- --interchanges 5000
//! ```
//!
//! Every interchange is one of the synthetic 278 requests with its own
//! ISA13/GS06, BHT03 and TRN02, so each one is a new message and a new case
//! (a repeated one would take the cheaper duplicate path).
//!
//! | stage | what runs |
//! | --- | --- |
//! | parse (baseline) | `parse_interchange`: tokenizer, envelope checks, 278 loops |
//! | parse + tree + map | `parse_documents` and `Profile::map` with `mappings/x12-278` |
//! | 999 | `acknowledge_parsed` with numbers already reserved |
//! | full path ×1 / ×16 | `intake::receive` — what the file drop and the CORE SOAP server call: parse, pipeline (map, SQLite commit with `synchronous=FULL`), control numbers from the store (as the daemon's host allocates them), the 999 — no sockets |
//!
//! The figures go into `docs/benches.md`.

use std::path::Path;
use std::sync::Arc;

use gateway_core::adapter::{BoxFuture, IntakeOutcome};
use gateway_core::path::PathSyntax;
use gateway_core::{GatewayError, SourceFormat};
use gateway_mapping::{MapContext, Profile, SyntaxProvider};
use gateway_pipeline::{Identity, Pipeline, ProfileSet};
use gateway_store::{Store, StoreOptions};
use gateway_testkit::bench::{Row, concurrent, print_table, runtime, single};
use gateway_x12::X12PathSyntax;
use gateway_x12::ack::AckIdentity;
use gateway_x12::control::{ControlNumberAllocator, MAX_CONTROL_NUMBER, Need, reserve};
use gateway_x12::write::{ControlKind, Stamp};

/// The daemon's allocator (`gateway/daemon/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Syntaxes;

impl SyntaxProvider for Syntaxes {
    fn syntax(&self, format: SourceFormat) -> Option<&dyn PathSyntax> {
        (format == SourceFormat::X12).then_some(&X12PathSyntax as &dyn PathSyntax)
    }
}

/// Control numbers from the store's counters, as the daemon's host hands
/// them to the adapter (`HostControlNumbers` over the store's
/// `allocate_control_numbers` and, for an acknowledgment's three kinds at
/// once, `allocate_control_numbers_many`).
struct StoreNumbers(Store);

impl ControlNumberAllocator for StoreNumbers {
    fn allocate(
        &self,
        kind: ControlKind,
        count: u32,
    ) -> BoxFuture<'_, Result<Vec<u64>, GatewayError>> {
        Box::pin(async move {
            self.0
                .allocate_control_numbers(
                    &format!("x12/GATEWAY/{}", kind.as_str()),
                    count,
                    MAX_CONTROL_NUMBER,
                )
                .await
                .map_err(GatewayError::from)
        })
    }

    fn allocate_all<'a>(
        &'a self,
        requests: &'a [(ControlKind, u32)],
    ) -> BoxFuture<'a, Result<Vec<Vec<u64>>, GatewayError>> {
        Box::pin(async move {
            let scoped = requests
                .iter()
                .map(|(kind, count)| (format!("x12/GATEWAY/{}", kind.as_str()), *count))
                .collect();
            self.0
                .allocate_control_numbers_many(scoped, MAX_CONTROL_NUMBER)
                .await
                .map_err(GatewayError::from)
        })
    }
}

fn args() -> usize {
    let mut n = 2000;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--interchanges" {
            n = it.next().and_then(|v| v.parse().ok()).unwrap_or(n);
        }
    }
    n
}

/// `template` as interchange number `i`: ISA13/IEA02 (9 digits), GS06/GE02,
/// BHT03 and TRN02 made unique.
fn unique(template: &str, i: usize) -> Vec<u8> {
    let number = i % 999_999_999 + 1;
    template
        .split('~')
        .map(|segment| {
            let mut elements: Vec<String> = segment.split('*').map(str::to_owned).collect();
            let mut set = |at: usize, value: String| {
                if let Some(e) = elements.get_mut(at) {
                    *e = value;
                }
            };
            match segment.trim_start().get(..3) {
                Some("ISA") => set(13, format!("{number:09}")),
                Some("IEA") => set(2, format!("{number:09}")),
                Some("GS*") => set(6, number.to_string()),
                Some("GE*") => set(2, number.to_string()),
                Some("BHT") => set(3, format!("REQ-B{number}")),
                Some("TRN") => set(2, format!("TRACE-B{number}")),
                _ => {}
            }
            elements.join("*")
        })
        .collect::<Vec<_>>()
        .join("~")
        .into_bytes()
}

fn main() {
    let n = args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let samples = root.join("sample-messages/x12/x12-278");
    let templates: Vec<String> = ["request.x12", "request-two-lines.x12"]
        .iter()
        .map(|name| std::fs::read_to_string(samples.join(name)).expect("sample"))
        .collect();
    let batch = |offset: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| unique(&templates[i % templates.len()], offset + i))
            .collect()
    };
    let inputs = batch(0);
    let avg = inputs.iter().map(Vec::len).sum::<usize>() / inputs.len().max(1);
    let profile = Profile::load(&root.join("mappings/x12-278"), &Syntaxes).expect("profile");
    let context = MapContext::new("2026-11-24T10:00:00Z");
    println!(
        "X12 278 intake: {n} interchanges per stage (~{avg} B each, synthetic requests), profile x12-278"
    );

    let mut rows: Vec<Row> = Vec::new();
    rows.push(single("parse (baseline)", &inputs, |i| {
        gateway_x12::parse_interchange(i)
            .map(|p| p.sets.len())
            .unwrap_or(0)
    }));
    rows.push(single("parse + tree + map", &inputs, |i| {
        gateway_x12::parse_documents(i)
            .map(|docs| {
                docs.iter()
                    .filter(|d| profile.map(d, &context).case.is_some())
                    .count()
            })
            .unwrap_or(0)
    }));
    let parsed: Vec<_> = inputs
        .iter()
        .map(|i| gateway_x12::parse_interchange(i).expect("clean"))
        .collect();
    let numbers = gateway_x12::write::MemoryControlNumbers::new();
    let stamp = Stamp::now();
    let rt = runtime();
    {
        let mut k = 0;
        rows.push(single("999 (numbers reserved)", &inputs, |_| {
            let p = &parsed[k % parsed.len()];
            k += 1;
            rt.block_on(async {
                let reserved = reserve(&numbers, Need::acknowledgment(Some(p)))
                    .await
                    .expect("numbers");
                gateway_x12::ack::acknowledge_parsed(p, &AckIdentity::default(), &reserved, &stamp)
                    .map(|a| a.verdict)
                    .ok()
            })
        }));
    }
    drop(parsed);

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
        let numbers = Arc::new(StoreNumbers(store.clone()));
        for (k, conc) in [1usize, 16].into_iter().enumerate() {
            let items = batch((k + 1) * n);
            let before = store.commit_stats();
            let pipeline = pipeline.clone();
            let numbers = numbers.clone();
            let mut row = concurrent(
                &format!("full path ×{conc} (intake::receive, no sockets)"),
                items,
                conc,
                move |raw| {
                    let pipeline = pipeline.clone();
                    let numbers = numbers.clone();
                    async move {
                        let result = gateway_x12::intake::receive(
                            pipeline.as_ref(),
                            "x12-278",
                            &raw,
                            jiff::Timestamp::now(),
                            Some("127.0.0.1:40000".to_owned()),
                            &AckIdentity::default(),
                            numbers.as_ref(),
                            &Stamp::now(),
                        )
                        .await;
                        result.is_ok_and(|r| {
                            r.ack.verdict == 'A'
                                && r.outcomes
                                    .iter()
                                    .all(|o| matches!(o, IntakeOutcome::Accepted { .. }))
                        })
                    }
                },
            )
            .await;
            row.note_commits(&store, before, n);
            rows.push(row);
        }
        drop(pipeline);
        drop(numbers);
        store.close().await;
    });
    print_table(&rows, 0, "interchange");
}

//! Cost of each stage of the HL7 intake path, in **CPU time per message**, so
//! the numbers hold on a loaded machine (wall-clock rates on 2 shared cores
//! swing with whatever else runs; the CPU a stage burns does not).
//!
//! ```text
//! cargo bench -p gateway-hl7v2 --bench stages                  # 3000 messages per stage
//! cargo bench -p gateway-hl7v2 --bench stages -- --messages 10000
//! ```
//!
//! Stages, each on the same ~1 KB ORM^O01 as the `mllp` bench, every message
//! with its own control id and order number (so each one is a new case):
//!
//! | stage | what runs |
//! | --- | --- |
//! | bare hl7-parser | `hl7_parser::parse_message` — the baseline every ratio is against |
//! | guarded parse | `gateway_hl7v2::parse::parse_message` (our wrapper: tree, spans, checks) |
//! | map | `Profile::map` with `mappings/epic` |
//! | case JSON | `serde_json::to_string` of the mapped case (the store serialises it once per event) |
//! | ACK | `build_ack` of an AA |
//! | store commit ×1 / ×16 | `Store::commit_inbound` of a mapped message, 1 or 16 callers at a time |
//! | full path ×1 / ×16 | MLLP `Responder::respond`: parse, pipeline (map, commit), ACK — no sockets |
//!
//! Single-thread stages use the calling thread's CPU clock; stages that
//! involve the store writer thread and the runtime use the whole process's
//! CPU (all threads). The sockets and the load generator are measured by the
//! `mllp` bench.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;

use gateway_core::adapter::{InboundMessage, IntakeOutcome};
use gateway_hl7v2::ack::{AckRequest, build_ack};
use gateway_hl7v2::mllp::MllpFrame;
use gateway_hl7v2::mllp::respond::Responder;
use gateway_mapping::{MapContext, Profile};
use gateway_pipeline::{Identity, Pipeline, ProfileSet};
use gateway_store::{InboundOutcome, NewInbound, Store, StoreOptions};

use common::{load_profile, message};
use gateway_testkit::bench::{concurrent, print_table, runtime, single};

/// The daemon's allocator (`gateway/daemon/src/main.rs`), as in the `mllp`
/// bench: the stages allocate per node and per value, so the system
/// allocator would show costs the daemon does not have.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn args() -> usize {
    let mut n = 3000;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--messages" {
            n = it.next().and_then(|v| v.parse().ok()).unwrap_or(n);
        }
    }
    n
}

fn context() -> MapContext {
    MapContext {
        received_at: "2026-11-22T10:00:00Z".into(),
        adapter: Some("hl7v2".into()),
        tenant: Some("mso-bench".into()),
        practice: None,
        site: None,
        explain: false,
        // As the daemon's intake maps (`gateway-pipeline`).
        skip_provenance: true,
    }
}

fn inbound(profile: &Profile, raw: &[u8]) -> NewInbound {
    let doc = gateway_hl7v2::parse::parse_message(raw).expect("bench message parses");
    let outcome = profile.map(&doc, &context());
    let case = outcome.case.expect("bench message maps to a case");
    NewInbound {
        adapter: "hl7v2".into(),
        profile: profile.name().to_owned(),
        sender: doc.meta.sender.clone(),
        control_id: doc.meta.control_id.clone(),
        message_type: doc.meta.message_type.clone(),
        raw: raw.to_vec(),
        received_at: "2026-11-22T10:00:00Z".into(),
        peer: Some("127.0.0.1:40000".into()),
        outcome: InboundOutcome::Accepted {
            case: Box::new(case),
            event_type: None,
        },
        replay_of: None,
    }
}

fn main() {
    let n = args();
    let tmp = tempfile::tempdir().expect("tmp");
    let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings");
    let (profile, label) = load_profile(&mappings, tmp.path());
    let batch =
        |tag: &str| -> Vec<Vec<u8>> { (0..n).map(|i| message(&format!("{tag}{i}"))).collect() };
    let msgs = batch("S");
    println!(
        "HL7 intake stages: {n} messages per stage (~{} B each), profile {label}",
        msgs[0].len()
    );
    let mut rows = Vec::new();

    rows.push(single("bare hl7-parser (baseline)", &msgs, |m| {
        let text = std::str::from_utf8(m).unwrap_or("");
        hl7_parser::parse_message(text)
            .map(|p| p.segments.len())
            .ok()
    }));
    rows.push(single("guarded parse", &msgs, |m| {
        gateway_hl7v2::parse::parse_message(m)
            .map(|d| d.tree.len())
            .ok()
    }));
    let docs: Vec<_> = msgs
        .iter()
        .map(|m| gateway_hl7v2::parse::parse_message(m).expect("parses"))
        .collect();
    let ctx = context();
    {
        let mut i = 0;
        rows.push(single("map (Profile::map)", &msgs, |_| {
            let out = profile.map(&docs[i % docs.len()], &ctx);
            i += 1;
            out.case.is_some()
        }));
    }
    let cases: Vec<_> = docs
        .iter()
        .map(|d| profile.map(d, &ctx).case.expect("maps"))
        .collect();
    {
        let mut i = 0;
        rows.push(single("case JSON (one serialisation)", &msgs, |_| {
            let s = serde_json::to_string(&cases[i % cases.len()]).map(|s| s.len());
            i += 1;
            s.ok()
        }));
    }
    rows.push(single("ACK build (AA)", &msgs, |m| {
        build_ack(&AckRequest::accept(m)).len()
    }));
    drop(docs);
    drop(cases);

    let rt = runtime();
    rt.block_on(async {
        let store = Store::open(tmp.path().join("store.sqlite"), StoreOptions::default())
            .await
            .expect("store");
        for conc in [1usize, 16] {
            let items: Vec<NewInbound> = batch(&format!("C{conc}-"))
                .iter()
                .map(|m| inbound(&profile, m))
                .collect();
            let before = store.commit_stats();
            let s = store.clone();
            let mut row = concurrent(&format!("store commit ×{conc}"), items, conc, move |m| {
                let s = s.clone();
                async move { s.commit_inbound(m).await.is_ok() }
            })
            .await;
            row.note_commits(&store, before, n);
            rows.push(row);
        }

        let pipeline = Pipeline::new(
            store.clone(),
            ProfileSet::new([profile.clone()]),
            Identity {
                tenant: "mso-bench".into(),
                practice: None,
                site: None,
            },
        );
        let responder = Arc::new(Responder::new(
            Arc::new(pipeline.clone()),
            profile.name().to_owned(),
        ));
        for conc in [1usize, 16] {
            let items = batch(&format!("P{conc}-"));
            let before = store.commit_stats();
            let r = responder.clone();
            let mut row = concurrent(
                &format!("full path ×{conc} (no sockets)"),
                items,
                conc,
                move |m| {
                    let r = r.clone();
                    async move {
                        let ack = r
                            .respond(MllpFrame::Message(bytes::Bytes::from(m)), "127.0.0.1:40000")
                            .await;
                        ack.windows(7).any(|w| w == b"MSA|AA|" || w == b"MSA|CA|")
                    }
                },
            )
            .await;
            row.note_commits(&store, before, n);
            rows.push(row);
        }
        // One pipeline call without the responder, to split pipeline from parse+ACK.
        let items: Vec<InboundMessage> = batch("Q")
            .into_iter()
            .map(|raw| InboundMessage {
                adapter: gateway_core::adapter::AdapterName::HL7V2,
                profile: profile.name().to_owned(),
                parsed: gateway_hl7v2::parse::parse_message(&raw),
                raw,
                received_at: "2026-11-22T10:00:00Z".parse().expect("time"),
                peer: Some("127.0.0.1:40000".into()),
            })
            .collect();
        let before = store.commit_stats();
        let p = pipeline.clone();
        let mut row = concurrent("pipeline only ×16 (map + commit)", items, 16, move |m| {
            let p = p.clone();
            async move { matches!(p.process(m, None).await, Ok(IntakeOutcome::Accepted { .. })) }
        })
        .await;
        row.note_commits(&store, before, n);
        rows.push(row);
        drop(pipeline);
        drop(responder);
        store.close().await;
    });

    print_table(&rows, 0, "msg");
}

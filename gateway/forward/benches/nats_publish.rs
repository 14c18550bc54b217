//! How fast does the `nats` sink forward, against a bare `async-nats`
//! publisher of the same payloads waiting for the same acknowledgements, in
//! the same run? Real `nats-server` processes on loopback (one node, or a
//! 3-node cluster with R3 streams with `--cluster`), real stores:
//!
//! 1. **one gateway** — a store holding `--events` pending events (one per
//!    case) drained by the forwarder with the `nats` sink: events/s;
//! 2. **bare publisher** — the same payloads and subjects published by plain
//!    `async-nats` JetStream in batches of the forwarder's `batch_max`,
//!    awaiting every acknowledgement (no store): events/s, and the ratio;
//! 3. **fleet** — `--gateways` stores and forwarders (own practice and NATS
//!    connection each) at once: aggregate events/s;
//! 4. **latency** — events committed at `--rate`/s for `--secs` seconds with
//!    the forwarder running: p50/p99 from commit to JetStream acknowledgement
//!    (the instant the sink returns Delivered).
//!
//! ```text
//! cargo bench -p gateway-forward --bench nats_publish
//! cargo bench -p gateway-forward --bench nats_publish -- --cluster --events 20000 --gateways 20
//! ```
//!
//! Not run in CI (figures depend on the machine); needs `nats-server`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_core::adapter::BoxFuture;
use gateway_core::case::{CaseSource, Identifier, Patient};
use gateway_forward::nats::{self, StreamPlan};
use gateway_forward::*;
use gateway_store::*;
use gateway_testkit::nats::{NatsCluster, nats_server_or_skip};
use gateway_testkit::store::TempStore;

struct Args {
    events: u64,
    gateways: usize,
    rate: u64,
    secs: u64,
    cluster: bool,
}

fn args() -> Args {
    let mut a = Args {
        events: 10_000,
        gateways: 5,
        rate: 500,
        secs: 10,
        cluster: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |d: u64| it.next().and_then(|v| v.parse().ok()).unwrap_or(d);
        match arg.as_str() {
            "--events" => a.events = num(a.events),
            "--gateways" => a.gateways = num(a.gateways as u64) as usize,
            "--rate" => a.rate = num(a.rate),
            "--secs" => a.secs = num(a.secs),
            "--cluster" => a.cluster = true,
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    a
}

/// A synthetic case `n` of `practice` (made up; no PHI).
fn inbound(practice: &str, n: u64) -> NewInbound {
    let source = CaseSource {
        adapter: "hl7v2".to_owned(),
        profile: "epic".to_owned(),
        message_type: Some("ORM^O01".to_owned()),
        control_id: Some(format!("B{n:09}")),
        sender: Some("EPIC^TESTHOSP".to_owned()),
        received_at: "2026-11-22T10:00:00Z".to_owned(),
    };
    let mut case = gateway_core::Case::new(
        gateway_core::ids::case_id("mso-bench", &format!("{practice}:ORD{n}")),
        "mso-bench",
        source,
    );
    case.practice = Some(practice.to_owned());
    case.patient = Some(Patient {
        identifiers: vec![Identifier {
            kind: Some("MR".to_owned()),
            value: format!("E{n:08}"),
            assigner: Some("TESTHOSP".to_owned()),
        }],
        ..Patient::default()
    });
    NewInbound {
        adapter: "hl7v2".to_owned(),
        profile: "epic".to_owned(),
        sender: Some("EPIC^TESTHOSP".to_owned()),
        control_id: Some(format!("B{n:09}")),
        message_type: Some("ORM^O01".to_owned()),
        raw: format!("synthetic raw {n}").into_bytes(),
        received_at: "2026-11-22T10:00:00Z".to_owned(),
        peer: None,
        outcome: InboundOutcome::Accepted {
            case: Box::new(case),
            event_type: None,
        },
        replay_of: None,
    }
}

fn options() -> ForwarderOptions {
    ForwarderOptions {
        concurrency: 8,
        poll_interval_ms: 20,
        ..ForwarderOptions::default()
    }
}

async fn filled(practice: &str, events: u64) -> TempStore {
    let t = TempStore::new().await;
    for n in 0..events {
        t.store
            .commit_inbound(inbound(practice, n))
            .await
            .expect("commit");
    }
    t
}

async fn drained(store: &Store) {
    loop {
        if store.outbox_stats().await.expect("stats").pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sink_for(urls: &[String], practice: &str) -> Arc<NatsSink> {
    let client = nats::connect(&NatsConnectConfig::new(urls.to_vec()))
        .await
        .expect("connect");
    let subjects = Subjects::new("ehr", "mso-bench", practice).expect("subjects");
    Arc::new(NatsSink::new(client, subjects, 10_000))
}

/// Records when each event's delivery was confirmed (instrumentation around
/// the real sink).
struct Timed {
    inner: Arc<NatsSink>,
    confirmed: Mutex<HashMap<String, Instant>>,
}

impl Sink for Timed {
    fn name(&self) -> &str {
        "nats"
    }
    fn deliver<'a>(&'a self, event: &'a OutboxEvent) -> BoxFuture<'a, SinkResult> {
        Box::pin(async move {
            let r = self.inner.deliver(event).await;
            self.confirmed
                .lock()
                .expect("lock")
                .insert(event.id.clone(), Instant::now());
            r
        })
    }
    fn takes_batches(&self) -> bool {
        true
    }
    fn deliver_batch<'a>(&'a self, events: &'a [OutboxEvent]) -> BoxFuture<'a, Vec<SinkResult>> {
        Box::pin(async move {
            let r = self.inner.deliver_batch(events).await;
            let now = Instant::now();
            let mut c = self.confirmed.lock().expect("lock");
            for e in events {
                c.insert(e.id.clone(), now);
            }
            r
        })
    }
}

fn main() {
    let args = args();
    let Some(binary) = nats_server_or_skip() else {
        return;
    };
    let size = if args.cluster { 3 } else { 1 };
    let cluster = NatsCluster::start(&binary, size, &[]);
    let urls = cluster.urls();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let client = nats::connect(&NatsConnectConfig::new(urls.clone()))
            .await
            .expect("connect");
        let js = nats::jetstream_context(client.clone(), 10_000);
        let plan = StreamPlan::new("ehr", size);
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Err(e) = nats::provision(&js, &plan, None, false).await {
            assert!(Instant::now() < deadline, "provision: {e}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!(
            "nats_publish: {} node(s), R{size}, {} events per gateway",
            size, args.events
        );

        // 1. one gateway
        let t = filled("solo", args.events).await;
        let events: Vec<OutboxEvent> = t
            .store
            .read(|r| r.deliverable(usize::MAX >> 1, &Default::default()))
            .await
            .expect("read");
        let sink = sink_for(&urls, "solo").await;
        let started = Instant::now();
        let f = Forwarder::spawn(t.store.clone(), sink.clone(), options());
        drained(&t.store).await;
        let one = args.events as f64 / started.elapsed().as_secs_f64();
        f.shutdown(Duration::from_secs(5)).await;
        println!("one gateway (forwarder + nats sink): {one:.0} events/s");

        // 2. bare publisher, same payloads, subjects and batch size
        let bare = sink_for(&urls, "bare").await;
        let bare_js = nats::jetstream_context(bare.client().clone(), 10_000);
        let started = Instant::now();
        for chunk in events.chunks(options().batch_max) {
            let mut acks = Vec::with_capacity(chunk.len());
            for e in chunk {
                let mut headers = nats::async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("bare-{}", e.id).as_str());
                headers.insert(
                    "content-type",
                    "application/cloudevents+json; charset=utf-8",
                );
                acks.push(
                    bare_js
                        .publish_with_headers(
                            format!("ehr.mso-bench.bare.events.{}", e.event_type.as_str()),
                            headers,
                            e.body.clone().into(),
                        )
                        .await
                        .expect("publish"),
                );
            }
            for ack in acks {
                ack.await.expect("ack");
            }
        }
        let bare_rate = events.len() as f64 / started.elapsed().as_secs_f64();
        println!(
            "bare async-nats publisher: {bare_rate:.0} events/s; gateway/bare = {:.2}",
            one / bare_rate
        );

        // 3. fleet
        let mut stores = Vec::new();
        for g in 0..args.gateways {
            stores.push(filled(&format!("p{g}"), args.events).await);
        }
        let mut sinks = Vec::new();
        for g in 0..args.gateways {
            sinks.push(sink_for(&urls, &format!("p{g}")).await);
        }
        let started = Instant::now();
        let forwarders: Vec<Forwarder> = stores
            .iter()
            .zip(&sinks)
            .map(|(t, s)| Forwarder::spawn(t.store.clone(), s.clone(), options()))
            .collect();
        for t in &stores {
            drained(&t.store).await;
        }
        let total = args.events as f64 * args.gateways as f64;
        let fleet = total / started.elapsed().as_secs_f64();
        for f in forwarders {
            f.shutdown(Duration::from_secs(5)).await;
        }
        println!(
            "fleet of {} gateways: {fleet:.0} events/s aggregate ({:.0} per gateway)",
            args.gateways,
            fleet / args.gateways as f64
        );

        // 4. commit → acknowledgement latency at a steady rate
        let t = TempStore::new().await;
        let timed = Arc::new(Timed {
            inner: sink_for(&urls, "latency").await,
            confirmed: Mutex::new(HashMap::new()),
        });
        let f = Forwarder::spawn(t.store.clone(), timed.clone(), options());
        let mut committed: HashMap<String, Instant> = HashMap::new();
        let n = args.rate * args.secs;
        let interval = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
        let start = Instant::now();
        for i in 0..n {
            let due = start + interval * i as u32;
            tokio::time::sleep_until(due.into()).await;
            let r = t
                .store
                .commit_inbound(inbound("latency", 1_000_000 + i))
                .await
                .expect("commit");
            if let Disposition::Accepted { event_id, .. } = r.disposition {
                committed.insert(event_id, Instant::now());
            }
        }
        drained(&t.store).await;
        f.shutdown(Duration::from_secs(5)).await;
        let confirmed = timed.confirmed.lock().expect("lock");
        let mut lat: Vec<f64> = committed
            .iter()
            .filter_map(|(id, at)| {
                confirmed
                    .get(id)
                    .map(|c| c.duration_since(*at).as_secs_f64())
            })
            .collect();
        lat.sort_by(f64::total_cmp);
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] * 1e3;
        println!(
            "commit -> JetStream ack at {}/s for {} s ({} events): p50 {:.1} ms, p99 {:.1} ms",
            args.rate,
            args.secs,
            lat.len(),
            pct(0.50),
            pct(0.99)
        );
    });
}

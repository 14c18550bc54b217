//! MLLP throughput and ACK latency: our listener on the full path (guarded
//! parse, mapping with a real profile, durable SQLite commit through the real
//! pipeline and store, ACK after the commit) against stock `node-hl7-server`
//! and the python `hl7` asyncio MLLP server (which both store nothing),
//! measured in the same run by the same load generator.
//!
//! ```text
//! cargo bench -p gateway-hl7v2 --bench mllp                 # default 4000 messages per run
//! cargo bench -p gateway-hl7v2 --bench mllp -- --messages 10000
//! ```
//!
//! Needs the peers from `.ci/install.d/30-hl7-peers.sh` (skipped with a note
//! when missing). The load generator is ours: each connection sends one message,
//! waits for its ACK (checking MSA-1 and that MSA-2 is the message's MSH-10),
//! then sends the next; latency is first byte written → ACK complete.
//! `node-hl7-server` 2.5 answers the k-th message on a persistent connection with
//! k ACKs (DESIGN.md), so it is driven with one connection per message, its only
//! correct mode; our listener is measured both ways so ratios compare like
//! with like. Everything runs on the same machine: the servers share the
//! cores with the load generator.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gateway_hl7v2::mllp::codec::{MllpCodec, MllpFrame, frame_into};
use gateway_hl7v2::mllp::{ListenerConfig, MllpListener};
use gateway_mapping::{Profile, SyntaxProvider};
use gateway_pipeline::{Identity, Pipeline, ProfileSet};
use gateway_store::{Store, StoreOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

struct Hl7Syntax;

impl SyntaxProvider for Hl7Syntax {
    fn syntax(
        &self,
        format: gateway_core::SourceFormat,
    ) -> Option<&dyn gateway_core::path::PathSyntax> {
        match format {
            gateway_core::SourceFormat::Hl7v2 => Some(&gateway_hl7v2::path::Hl7PathSyntax),
            _ => None,
        }
    }
}

/// A ~1 KB ORM^O01 (synthetic: made-up names, ids and NPIs).
fn message(id: &str) -> Vec<u8> {
    let segs = [
        format!("MSH|^~\\&|EPIC|CARDIO-NORTH|GATEWAY|MSO|20261122100000||ORM^O01^ORM_O01|{id}|P|2.5.1|||AL|NE"),
        "PID|1||E10001^^^HOSP^MR~987-65-4320^^^SSA^SS||TESTPATIENT^ALPHA^Q^^^^L||19700131|F|||100 TEST LANE^^AUSTIN^TX^78701^USA^H||^PRN^PH^^1^512^5550100|||||||||||||||||||".to_string(),
        "PV1|1|O|CARD^101^1^CARDIO-NORTH||||1234567893^HEART^ANN^^^^^^NPI|||CAR||||||||||||||||||||||||||||||||||||20261122090000".to_string(),
        "IN1|1|PPO^Preferred Provider|60054^^^^PAYER|TEST HEALTH PLAN|PO BOX 1^^HARTFORD^CT^06101||||G100|||||||TESTPATIENT^ALPHA^Q|SEL|19700131|||||||||||||||||W123456789".to_string(),
        "GT1|1||TESTPATIENT^ALPHA^Q||100 TEST LANE^^AUSTIN^TX^78701|^PRN^PH^^1^512^5550100".to_string(),
        format!("ORC|NW|ORD{id}|||||^^^20261201^^R||20261122100000|||1234567893^HEART^ANN^^^^^^NPI"),
        format!("OBR|1|ORD{id}||78452^SPECT MPI^CPT4|||20261201080000||||||||1234567893^HEART^ANN^^^^^^NPI||||||||CAR|||^^^20261201^^R"),
        "DG1|1|I10|I25.10^Atherosclerotic heart disease^I10|||A".to_string(),
        "DG1|2|I10|R07.9^Chest pain, unspecified^I10|||W".to_string(),
        "NTE|1||Synthetic benchmark order; all values are made up.".to_string(),
        "ZPI|1|BENCH|IGNORED".to_string(),
    ];
    let mut out = segs.join("\r").into_bytes();
    out.push(b'\r');
    out
}

/// A small HL7 ORM profile used when `mappings/epic` is not present.
const BENCH_PROFILE: &str = r#"name = "bench-orm"
format = "hl7v2"
time_zone = "America/Chicago"

[defaults]
tenant = "mso-bench"

[tables.sex]
F = "female"
M = "male"
"#;

const BENCH_ORDERS: &str = r#"description = "Benchmark ORM^O01 mapping"

[match]
message_type = "ORM"

[case_id]
key = ["ORC-2"]

[fields]
status = { const = "requested" }
"patient.identifiers[0].value" = "PID-3[1].1"
"patient.identifiers[0].type" = { const = "MR" }
"patient.name.family" = "PID-5.1"
"patient.name.given" = { paths = ["PID-5.2", "PID-5.3"] }
"patient.birth_date" = { path = "PID-7", transforms = [{ date = "hl7" }] }
"patient.sex" = { path = "PID-8", transforms = [{ table = "sex" }] }
"references.placer_order" = "ORC-2"
"#;

struct Args {
    messages: usize,
    mappings: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        messages: 4000,
        mappings: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => {
                a.messages = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.messages)
            }
            "--mappings" => {
                if let Some(v) = it.next() {
                    a.mappings = PathBuf::from(v);
                }
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnMode {
    Persistent,
    PerMessage,
}

struct Result1 {
    msgs_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

async fn one_exchange(
    stream: &mut TcpStream,
    codec: &mut MllpCodec,
    buf: &mut BytesMut,
    out: &mut BytesMut,
    id: &str,
) -> Result<(), String> {
    let msg = message(id);
    out.clear();
    frame_into(&msg, out);
    stream.write_all(out).await.map_err(|e| e.to_string())?;
    loop {
        if let Some(frame) = codec.decode(buf).map_err(|e| e.to_string())? {
            let MllpFrame::Message(ack) = frame else {
                return Err("oversized ACK".into());
            };
            let text = String::from_utf8_lossy(&ack);
            let msa = text
                .split(['\r', '\n'])
                .find(|l| l.starts_with("MSA|"))
                .ok_or("no MSA")?;
            let f: Vec<&str> = msa.split('|').collect();
            if f.get(1) != Some(&"AA") && f.get(1) != Some(&"CA") {
                return Err(format!("MSA-1 {:?}", f.get(1)));
            }
            if f.get(2) != Some(&id) {
                return Err(format!("MSA-2 {:?} for {id}", f.get(2)));
            }
            return Ok(());
        }
        let n = stream.read_buf(buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
    }
}

async fn run_load(addr: String, conns: usize, total: usize, mode: ConnMode, tag: &str) -> Result1 {
    let per_conn = total.div_ceil(conns);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let addr = addr.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_conn);
            let mut errors = 0;
            let mut codec = MllpCodec::default();
            let mut buf = BytesMut::with_capacity(8192);
            let mut out = BytesMut::with_capacity(4096);
            let mut stream: Option<TcpStream> = None;
            for i in 0..per_conn {
                let id = format!("{tag}{c}x{i}");
                let t0 = Instant::now();
                if stream.is_none() || mode == ConnMode::PerMessage {
                    codec = MllpCodec::default();
                    buf.clear();
                    match TcpStream::connect(&addr).await {
                        Ok(s) => {
                            let _ = s.set_nodelay(true);
                            stream = Some(s);
                        }
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    }
                }
                let Some(s) = stream.as_mut() else { continue };
                match one_exchange(s, &mut codec, &mut buf, &mut out, &id).await {
                    Ok(()) => lat.push(t0.elapsed()),
                    Err(_) => {
                        errors += 1;
                        stream = None;
                    }
                }
                if mode == ConnMode::PerMessage {
                    stream = None;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            lat.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i].as_secs_f64() * 1000.0
    };
    Result1 {
        msgs_per_s: lat.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    }
}

struct Peer {
    child: tokio::process::Child,
    addr: String,
}

async fn start_peer(program: &str, script: &str) -> Option<Peer> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers");
    let mut child = tokio::process::Command::new(program)
        .arg(dir.join(script))
        .arg("--quiet")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let mut lines = BufReader::new(stdout).lines();
    let port = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(p) = line.strip_prefix("PORT ") {
                return p.trim().parse::<u16>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()?;
    Some(Peer {
        child,
        addr: format!("127.0.0.1:{port}"),
    })
}

fn load_profile(mappings: &Path, scratch: &Path) -> (Profile, String) {
    let epic = mappings.join("epic");
    if epic.join("profile.toml").is_file() {
        match Profile::load(&epic, &Hl7Syntax) {
            Ok(p) => {
                let label = format!("{} (mappings/epic)", p.name());
                return (p, label);
            }
            Err(e) => eprintln!("mappings/epic does not load ({e}); using the bench profile"),
        }
    }
    let dir = scratch.join("bench-orm");
    std::fs::create_dir_all(&dir).expect("profile dir");
    std::fs::write(dir.join("profile.toml"), BENCH_PROFILE).expect("write profile");
    std::fs::write(dir.join("orders.toml"), BENCH_ORDERS).expect("write orders");
    let p = Profile::load(&dir, &Hl7Syntax).unwrap_or_else(|e| panic!("bench profile: {e}"));
    (p, "bench-orm (built-in ORM profile)".to_string())
}

fn main() {
    let args = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench(args));
}

async fn bench(args: Args) {
    let tmp = tempfile::tempdir().expect("tmp");
    let (profile, profile_label) = load_profile(&args.mappings, tmp.path());
    let profile_name = profile.name().to_string();
    let store = Store::open(tmp.path().join("store.sqlite"), StoreOptions::default())
        .await
        .expect("store");
    let pipeline = Pipeline::new(
        store.clone(),
        ProfileSet::new([profile]),
        Identity {
            tenant: "mso-bench".into(),
            practice: None,
            site: None,
        },
    );
    let mut cfg = ListenerConfig::new("127.0.0.1:0".parse().expect("addr"), profile_name);
    cfg.max_connections = 1024;
    let listener = MllpListener::bind(cfg, Arc::new(pipeline))
        .await
        .expect("listener");
    let gw = listener.local_addr().to_string();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(listener.serve(async move {
        let _ = stop_rx.await;
    }));

    let node = start_peer("node", "node_server.js").await;
    let python = start_peer("python3", "py_server.py").await;
    if node.is_none() {
        eprintln!("note: node-hl7-server not available (run .ci/install.d/30-hl7-peers.sh)");
    }
    if python.is_none() {
        eprintln!("note: python hl7 not available (run .ci/install.d/30-hl7-peers.sh)");
    }

    println!(
        "MLLP benchmark: {} messages per run (~{} B each), profile {profile_label}, \
         store SQLite WAL synchronous=FULL (gateway-store)",
        args.messages,
        message("X").len(),
    );
    let mut targets: Vec<(&str, String, ConnMode)> = vec![
        (
            "ehr-gateway (full path), persistent",
            gw.clone(),
            ConnMode::Persistent,
        ),
        (
            "ehr-gateway (full path), conn/message",
            gw.clone(),
            ConnMode::PerMessage,
        ),
    ];
    if let Some(n) = &node {
        targets.push((
            "node-hl7-server 2.5 (no store), conn/message",
            n.addr.clone(),
            ConnMode::PerMessage,
        ));
    }
    if let Some(p) = &python {
        targets.push((
            "python hl7 asyncio (no store), persistent",
            p.addr.clone(),
            ConnMode::Persistent,
        ));
        targets.push((
            "python hl7 asyncio (no store), conn/message",
            p.addr.clone(),
            ConnMode::PerMessage,
        ));
    }

    let mut results = Vec::new();
    for (ti, (name, addr, mode)) in targets.iter().enumerate() {
        // Warm-up (connections, JIT, page cache).
        let _ = run_load(addr.clone(), 4, 200, *mode, &format!("W{ti}-")).await;
        for conns in [1usize, 16] {
            let r = run_load(
                addr.clone(),
                conns,
                args.messages,
                *mode,
                &format!("B{ti}-{conns}-"),
            )
            .await;
            results.push((name.to_string(), conns, *mode, r));
        }
    }

    println!();
    println!("| target | conns | msg/s | p50 ms | p99 ms | errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, conns, _, r) in &results {
        println!(
            "| {name} | {conns} | {:.0} | {:.2} | {:.2} | {} |",
            r.msgs_per_s, r.p50_ms, r.p99_ms, r.errors
        );
    }
    let find = |prefix: &str, conns: usize| {
        results
            .iter()
            .find(|(n, c, _, _)| n.starts_with(prefix) && *c == conns)
            .map(|(_, _, _, r)| r.msgs_per_s)
    };
    println!();
    for conns in [1usize, 16] {
        let gw_p = find("ehr-gateway (full path), persistent", conns);
        let gw_c = find("ehr-gateway (full path), conn/message", conns);
        if let (Some(node), Some(gp), Some(gc)) = (find("node-hl7-server", conns), gw_p, gw_c) {
            println!(
                "ratio vs node-hl7-server at {conns} conn(s): gateway persistent {:.2}x, gateway conn/message {:.2}x",
                gp / node,
                gc / node
            );
        }
        if let (Some(py), Some(gp)) = (
            find("python hl7 asyncio (no store), persistent", conns),
            gw_p,
        ) {
            println!(
                "ratio vs python hl7 (persistent) at {conns} conn(s): gateway persistent {:.2}x",
                gp / py
            );
        }
    }
    let stored = store_count(&store).await;
    println!("messages committed by the gateway's store during the run: {stored}");

    let _ = stop_tx.send(());
    let _ = serving.await;
    for peer in [node, python].into_iter().flatten() {
        let mut c = peer.child;
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
}

/// Case events committed (the forwarder is not running, so all are pending).
async fn store_count(store: &Store) -> String {
    match store.outbox_stats().await {
        Ok(s) => format!("{} case events", s.pending),
        Err(e) => format!("unknown ({e})"),
    }
}

//! MLLP throughput and ACK latency: our listener on the full path (guarded
//! parse, mapping with a real profile, durable SQLite commit through the real
//! pipeline and store, ACK after the commit; the forwarder delivering the
//! outbox to the file sink, as the example config runs it) against a
//! **durable ceiling** (a tokio server in this process that frames MLLP,
//! appends each raw message to a journal file, group-commits it with `fsync`
//! and only then ACKs: the least any server that stores what it acknowledges
//! must do), stock `node-hl7-server` and the python `hl7` asyncio MLLP server
//! (which both store nothing), measured in the same run by the same load
//! generator. The gateway/ceiling ratio is the figure to compare across
//! machines; the run also reports the gateway's outbox depth at the end, the
//! bytes its store holds per accepted message and the largest WAL seen.
//!
//! ```text
//! cargo bench -p gateway-hl7v2 --bench mllp                 # default 4000 messages per run
//! cargo bench -p gateway-hl7v2 --bench mllp -- --messages 10000
//! cargo bench -p gateway-hl7v2 --bench mllp -- --only gateway --group-wait-us 0
//! cargo bench -p gateway-hl7v2 --bench mllp -- --only gateway --keep-store /tmp/after.sqlite
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
//!
//! Because wall-clock rates on shared cores swing with whatever else runs, each
//! row also gives the **CPU time per message** of the server (the gateway's
//! runtime threads `gateway…` plus its `store-writer` thread; every thread of a
//! peer process) and of the load generator (its own runtime, threads
//! `loadgen…`; the ceiling's threads `ceiling…`), read from
//! `/proc/*/task/*/schedstat`. `--only gateway` skips the ceiling and the
//! peers (for profiling: `perf record -g -- <bench binary> --only gateway`).
//! Per-stage costs: the `stages` bench.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gateway_forward::{FileSink, FileSinkConfig, Forwarder, ForwarderOptions};
use gateway_hl7v2::ack::{AckRequest, build_ack};
use gateway_hl7v2::mllp::codec::{MllpCodec, MllpFrame, frame_into};
use gateway_hl7v2::mllp::{ListenerConfig, MllpListener};
use gateway_pipeline::{Identity, Pipeline, ProfileSet};
use gateway_store::{Store, StoreOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

#[path = "common/mod.rs"]
mod common;

/// The daemon's allocator (`gateway/daemon/src/main.rs`), so the gateway
/// here runs as it does in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use common::{load_profile, message};
use gateway_testkit::bench::cpu_ns;

/// The durable ceiling's row.
const CEILING: &str = "durable ceiling (frame, journal, group fsync, ACK), persistent";

struct Args {
    messages: usize,
    mappings: PathBuf,
    /// Skip the peers (`--only gateway`), e.g. to profile the gateway alone.
    gateway_only: bool,
    /// The store's group-commit wait (`--group-wait-us`, default the store's).
    group_wait: Option<Duration>,
    /// Where to copy the store file after the run (`--keep-store PATH`), to
    /// look at what it holds (e.g. `sqlite3 PATH` with the `dbstat` table).
    keep_store: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        messages: 4000,
        mappings: Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings"),
        gateway_only: false,
        group_wait: None,
        keep_store: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--messages" => {
                a.messages = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.messages)
            }
            "--only" => a.gateway_only = it.next().as_deref() == Some("gateway"),
            "--group-wait-us" => {
                a.group_wait = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .map(Duration::from_micros)
            }
            "--keep-store" => a.keep_store = it.next().map(PathBuf::from),
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
    /// CPU time the server spent per answered message (µs).
    server_cpu_us: f64,
    /// CPU time the load generator spent per answered message (µs).
    loadgen_cpu_us: f64,
    /// Bytes the server sent to storage per answered message (KB; the
    /// `write_bytes` of `/proc/PID/io`: WAL frames, checkpoints, the file
    /// sink, a journal), a figure the machine's speed does not move.
    disk_kb: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
    answered: usize,
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

/// Whose CPU time counts as "the server" for a target.
#[derive(Clone)]
enum ServerCpu {
    /// This process's gateway runtime threads and the store writer.
    Gateway,
    /// Every thread of a peer process.
    Peer(String),
    /// This process's ceiling runtime and journal threads.
    Ceiling,
}

impl ServerCpu {
    fn now(&self) -> u64 {
        match self {
            ServerCpu::Gateway => cpu_ns("self", |n| {
                n.starts_with("gateway") || n.starts_with("store-writer")
            }),
            ServerCpu::Peer(pid) => cpu_ns(pid, |_| true),
            ServerCpu::Ceiling => cpu_ns("self", |n| n.starts_with("ceiling")),
        }
    }

    /// Bytes the server's process sent to storage so far (`write_bytes`).
    fn disk_bytes(&self) -> u64 {
        let pid = match self {
            ServerCpu::Peer(pid) => pid.as_str(),
            ServerCpu::Gateway | ServerCpu::Ceiling => "self",
        };
        std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("write_bytes:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

fn loadgen_cpu() -> u64 {
    cpu_ns("self", |n| n.starts_with("loadgen"))
}

async fn run_load(
    addr: String,
    conns: usize,
    total: usize,
    mode: ConnMode,
    tag: &str,
    server: &ServerCpu,
) -> Result1 {
    let per_conn = total.div_ceil(conns);
    let server0 = server.now();
    let disk0 = server.disk_bytes();
    let gen0 = loadgen_cpu();
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
    let answered = lat.len().max(1) as f64;
    let server_cpu_us = (server.now().saturating_sub(server0)) as f64 / 1000.0 / answered;
    let loadgen_cpu_us = (loadgen_cpu().saturating_sub(gen0)) as f64 / 1000.0 / answered;
    let disk_kb = (server.disk_bytes().saturating_sub(disk0)) as f64 / 1024.0 / answered;
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
        server_cpu_us,
        loadgen_cpu_us,
        disk_kb,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
        answered: lat.len(),
    }
}

struct Peer {
    child: tokio::process::Child,
    addr: String,
    pid: String,
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
    let pid = child.id()?.to_string();
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
        pid,
    })
}

/// The gateway under test, on its own runtime (threads named `gateway…`,
/// as the daemon would run it), apart from the load generator's runtime, with
/// the forwarder delivering its outbox to the file sink as the example
/// config does.
struct Gateway {
    addr: String,
    store: Store,
    forwarder: Forwarder,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<()>,
    label: String,
}

fn start_gateway(rt: &tokio::runtime::Runtime, args: &Args, scratch: &Path) -> Gateway {
    rt.block_on(async {
        let (profile, label) = load_profile(&args.mappings, scratch);
        let profile_name = profile.name().to_string();
        let mut options = StoreOptions::default();
        if let Some(wait) = args.group_wait {
            options.group_commit_wait = wait;
        }
        let wait_us = options.group_commit_wait.as_micros();
        let store = Store::open(scratch.join("store.sqlite"), options)
            .await
            .expect("store");
        let sink = FileSink::new(FileSinkConfig {
            dir: scratch.join("sink"),
        })
        .expect("file sink");
        let forwarder =
            Forwarder::spawn(store.clone(), Arc::new(sink), ForwarderOptions::default());
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
        let addr = listener.local_addr().to_string();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(listener.serve(async move {
            let _ = stop_rx.await;
        }));
        Gateway {
            addr,
            store,
            forwarder,
            stop,
            serving,
            label: format!("{label}, group-commit wait {wait_us} µs, forwarder → file sink"),
        }
    })
}

/// A message for the ceiling's journal thread and the signal that it is on disk.
type JournalJob = (bytes::Bytes, tokio::sync::oneshot::Sender<()>);

/// The durable ceiling: frames MLLP, hands each raw message to one journal
/// thread, which appends every message that arrived while its previous
/// `fsync` ran in one write and syncs again (group commit), and ACKs a
/// message only after the sync that covers it. Threads `ceiling…`.
fn start_ceiling(rt: &tokio::runtime::Runtime, scratch: &Path) -> String {
    let (tx, rx) = std::sync::mpsc::channel::<JournalJob>();
    let path = scratch.join("ceiling.journal");
    std::thread::Builder::new()
        .name("ceiling-journal".into())
        .spawn(move || journal(&path, rx))
        .expect("journal thread");
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("ceiling bind");
        let addr = listener.local_addr().expect("ceiling addr").to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(ceiling_connection(stream, tx.clone()));
            }
        });
        addr
    })
}

fn journal(path: &Path, rx: std::sync::mpsc::Receiver<JournalJob>) {
    use std::io::Write;
    let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return; // every waiting connection sees its sender dropped
    };
    let mut buf = Vec::with_capacity(1 << 16);
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        buf.clear();
        for (raw, _) in &batch {
            buf.extend_from_slice(&(raw.len() as u32).to_le_bytes());
            buf.extend_from_slice(raw);
        }
        if file
            .write_all(&buf)
            .and_then(|()| file.sync_data())
            .is_err()
        {
            return;
        }
        for (_, done) in batch {
            let _ = done.send(());
        }
    }
}

async fn ceiling_connection(mut stream: TcpStream, journal: std::sync::mpsc::Sender<JournalJob>) {
    let _ = stream.set_nodelay(true);
    let mut codec = MllpCodec::default();
    let mut buf = BytesMut::with_capacity(8192);
    let mut out = BytesMut::with_capacity(1024);
    loop {
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            let MllpFrame::Message(raw) = frame else {
                return;
            };
            let (done, synced) = tokio::sync::oneshot::channel();
            if journal.send((raw.clone(), done)).is_err() || synced.await.is_err() {
                return;
            }
            out.clear();
            frame_into(&build_ack(&AckRequest::accept(&raw)), &mut out);
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// Samples the size of the store's WAL file until `stop`; the largest seen.
fn wal_sampler(
    wal: PathBuf,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut max = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(m) = std::fs::metadata(&wal) {
                max = max.max(m.len());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        max
    })
}

fn main() {
    let args = args();
    let keep_store = args.keep_store.clone();
    let tmp = tempfile::tempdir().expect("tmp");
    let gateway_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("gateway")
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("gateway runtime");
    let gw = start_gateway(&gateway_rt, &args, tmp.path());
    let ceiling_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("ceiling")
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("ceiling runtime");
    let ceiling = (!args.gateway_only).then(|| start_ceiling(&ceiling_rt, tmp.path()));
    let loadgen_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("loadgen")
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("load generator runtime");
    let Gateway {
        addr,
        store,
        forwarder,
        stop,
        serving,
        label,
    } = gw;
    let stop_sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = wal_sampler(tmp.path().join("store.sqlite-wal"), stop_sampling.clone());
    let acked = loadgen_rt.block_on(bench(args, addr, ceiling, label, &store));
    stop_sampling.store(true, std::sync::atomic::Ordering::Relaxed);
    let wal_max = sampler.join().unwrap_or(0);
    let _ = stop.send(());
    gateway_rt.block_on(async move {
        let _ = serving.await;
        // Storage per acknowledged message: the store after every event was
        // delivered and the WAL checkpointed into the main file.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match store.outbox_stats().await {
                Ok(s) if s.pending > 0 => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => break,
            }
        }
        println!("outbox after the drain: {}", store_count(&store).await);
        forwarder.shutdown(Duration::from_secs(5)).await;
        let _ = store.checkpoint().await;
        let db = std::fs::metadata(store.path())
            .map(|m| m.len())
            .unwrap_or(0);
        println!(
            "store: {:.0} KB for {acked} acknowledged messages = {:.0} bytes/message \
             (raw message {} B, {:.1}× raw; events, delivery attempts and cases included); \
             largest WAL seen {:.1} MB",
            db as f64 / 1024.0,
            db as f64 / acked.max(1) as f64,
            message("X").len(),
            db as f64 / acked.max(1) as f64 / message("X").len() as f64,
            wal_max as f64 / 1_048_576.0
        );
        let path = store.path().to_path_buf();
        store.close().await;
        if let Some(to) = keep_store {
            match std::fs::copy(&path, &to) {
                Ok(_) => println!("store copied to {}", to.display()),
                Err(e) => eprintln!("could not copy the store to {}: {e}", to.display()),
            }
        }
    });
}

/// Runs every target; the number of messages the gateway acknowledged.
async fn bench(
    args: Args,
    gw: String,
    ceiling: Option<String>,
    profile_label: String,
    store: &Store,
) -> usize {
    let (node, python) = if args.gateway_only {
        (None, None)
    } else {
        (
            start_peer("node", "node_server.js").await,
            start_peer("python3", "py_server.py").await,
        )
    };
    if node.is_none() && !args.gateway_only {
        eprintln!("note: node-hl7-server not available (run .ci/install.d/30-hl7-peers.sh)");
    }
    if python.is_none() && !args.gateway_only {
        eprintln!("note: python hl7 not available (run .ci/install.d/30-hl7-peers.sh)");
    }

    println!(
        "MLLP benchmark: {} messages per run (~{} B each), profile {profile_label}, \
         store SQLite WAL synchronous=FULL (gateway-store)",
        args.messages,
        message("X").len(),
    );
    let mut targets: Vec<(&str, String, ConnMode, ServerCpu)> = Vec::new();
    if let Some(c) = &ceiling {
        targets.push((CEILING, c.clone(), ConnMode::Persistent, ServerCpu::Ceiling));
    }
    targets.extend([
        (
            "ehr-gateway (full path), persistent",
            gw.clone(),
            ConnMode::Persistent,
            ServerCpu::Gateway,
        ),
        (
            "ehr-gateway (full path), conn/message",
            gw.clone(),
            ConnMode::PerMessage,
            ServerCpu::Gateway,
        ),
    ]);
    if let Some(n) = &node {
        targets.push((
            "node-hl7-server 2.5 (no store), conn/message",
            n.addr.clone(),
            ConnMode::PerMessage,
            ServerCpu::Peer(n.pid.clone()),
        ));
    }
    if let Some(p) = &python {
        targets.push((
            "python hl7 asyncio (no store), persistent",
            p.addr.clone(),
            ConnMode::Persistent,
            ServerCpu::Peer(p.pid.clone()),
        ));
        targets.push((
            "python hl7 asyncio (no store), conn/message",
            p.addr.clone(),
            ConnMode::PerMessage,
            ServerCpu::Peer(p.pid.clone()),
        ));
    }

    let mut results = Vec::new();
    let mut acked = 0;
    let mut outbox_after_load = String::new();
    // The store's group commit per gateway row (intake and forwarder writes).
    let mut group_commit: Vec<String> = Vec::new();
    for (ti, (name, addr, mode, server)) in targets.iter().enumerate() {
        // Warm-up (connections, JIT, page cache).
        let w = run_load(addr.clone(), 4, 200, *mode, &format!("W{ti}-"), server).await;
        let is_gateway = matches!(server, ServerCpu::Gateway);
        if is_gateway {
            acked += w.answered;
        }
        for conns in [1usize, 16] {
            let before = store.commit_stats();
            let r = run_load(
                addr.clone(),
                conns,
                args.messages,
                *mode,
                &format!("B{ti}-{conns}-"),
                server,
            )
            .await;
            if is_gateway {
                acked += r.answered;
                group_commit.push(format!(
                    "{name} at {conns}: {}",
                    gateway_testkit::bench::commit_note(store, before, r.answered)
                ));
            }
            results.push((name.to_string(), conns, *mode, r));
        }
        if is_gateway {
            outbox_after_load = store_count(store).await;
        }
    }

    println!();
    println!(
        "| target | conns | msg/s | p50 ms | p99 ms | errors | server CPU µs/msg | load-gen CPU µs/msg | disk KB/msg |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, conns, _, r) in &results {
        println!(
            "| {name} | {conns} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.1} |",
            r.msgs_per_s,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.server_cpu_us,
            r.loadgen_cpu_us,
            r.disk_kb
        );
    }
    let find_r = |prefix: &str, conns: usize| {
        results
            .iter()
            .find(|(n, c, _, _)| n.starts_with(prefix) && *c == conns)
            .map(|(_, _, _, r)| r)
    };
    let find = |prefix: &str, conns: usize| find_r(prefix, conns).map(|r| r.msgs_per_s);
    println!();
    for conns in [1usize, 16] {
        if let (Some(c), Some(g)) = (
            find_r(CEILING, conns),
            find_r("ehr-gateway (full path), persistent", conns),
        ) {
            println!(
                "gateway/ceiling at {conns} conn(s): {:.2}× the msg/s, p99 {:.2}× the ceiling's, \
                 server CPU {:.1}× the ceiling's per message",
                g.msgs_per_s / c.msgs_per_s,
                g.p99_ms / c.p99_ms,
                g.server_cpu_us / c.server_cpu_us.max(f64::MIN_POSITIVE)
            );
        }
    }
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
        if let (Some(node), Some(gp)) = (
            find_r("node-hl7-server", conns),
            find_r("ehr-gateway (full path), persistent", conns),
        ) {
            println!(
                "server CPU per message at {conns} conn(s): gateway persistent {:.0} µs = {:.2}x node-hl7-server's {:.0} µs",
                gp.server_cpu_us,
                gp.server_cpu_us / node.server_cpu_us.max(f64::MIN_POSITIVE),
                node.server_cpu_us
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
    println!(
        "gateway outbox right after its last run (forwarder → file sink): {outbox_after_load}"
    );
    for line in &group_commit {
        println!("store writes, {line}");
    }

    let stats = store.commit_stats();
    if stats.transactions > 0 {
        println!(
            "store group commit: {} requests in {} transactions ({:.1} per commit; {} waited for announced messages)",
            stats.requests,
            stats.transactions,
            stats.requests as f64 / stats.transactions as f64,
            stats.waited
        );
    }
    for peer in [node, python].into_iter().flatten() {
        let mut c = peer.child;
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    acked
}

/// The outbox depth: case events not yet delivered to the sink.
async fn store_count(store: &Store) -> String {
    match store.outbox_stats().await {
        Ok(s) => format!("{} events pending, {} dead", s.pending, s.dead),
        Err(e) => format!("unknown ({e})"),
    }
}

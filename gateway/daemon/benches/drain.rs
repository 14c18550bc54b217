//! Can the forwarder drain a backlog, and keep up with intake? The real daemon
//! (release build) as users run it, over real sockets, figures from one run:
//!
//! 1. **backlog** — the platform hangs (accepts connections, never answers), so
//!    the forwarder stalls while 16 MLLP connections push `--backlog` messages
//!    (default 100 000) through the epic profile; SIGTERM. Gives the MLLP
//!    intake rate with the forwarder idle, and a store holding `--backlog`
//!    pending events, all due.
//! 2. **file drain** — the daemon restarted on that store with the file sink
//!    and no traffic: events/s until the outbox is empty.
//! 3. **HTTP drain** — the same store (a copy) with the HTTP sink to a loopback
//!    CloudEvents receiver (`gateway-testkit`'s platform stand-in), batch mode.
//! 4. **sustained** — a fresh store, the file sink on, `--secs` (default 60) of
//!    16-connection MLLP load: intake rate, and the outbox depth at the end in
//!    seconds of intake.
//!
//! ```text
//! cargo bench -p ehr-gateway --bench drain
//! cargo bench -p ehr-gateway --bench drain -- --backlog 20000 --secs 20
//! ```
//!
//! Ratios are against the intake rate measured in the same run. Not run in CI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gateway_store::Reader;
use gateway_testkit::platform::PlatformReceiver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 16;

struct Args {
    backlog: u64,
    secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        backlog: 100_000,
        secs: 60,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--backlog" => a.backlog = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.backlog),
            "--secs" => a.secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.secs),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    a
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The shipped synthetic Epic order with a unique control id and order number,
/// so every message opens its own case.
fn message(template: &str, n: u64) -> Vec<u8> {
    let mut framed = vec![0x0b];
    framed.extend(
        template
            .replace("|EPIC0001|", &format!("|BENCH{n:09}|"))
            .replace("EP5001", &format!("BO{n:09}"))
            .into_bytes(),
    );
    framed.extend([0x1c, 0x0d]);
    framed
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_ehr-gateway"))
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the daemon");
        Daemon(child)
    }

    /// SIGTERM and wait for the drain to finish.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn write_config(dir: &Path, mllp: u16, forward: &str) -> PathBuf {
    std::fs::write(
        dir.join("admin.token"),
        "bench-admin-token-0123456789abcdef\n",
    )
    .expect("token");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"mappings_dir = "{mappings}"
[gateway]
tenant = "mso-bench"
practice = "cardio-north"
[admin]
listen = "127.0.0.1:0"
token_file = "{dir}/admin.token"
[store]
path = "{dir}/data"
[logging]
format = "json"
level = "warn"
[shutdown]
grace_period_ms = 2000
[[hl7v2.listeners]]
listen = "127.0.0.1:{mllp}"
profile = "epic"
{forward}
"#,
            mappings = repo_root().join("mappings").display(),
            dir = dir.display(),
        ),
    )
    .expect("config");
    config
}

fn file_sink(dir: &Path) -> String {
    format!(
        "[forward]\nsink = \"file\"\n[forward.file]\ndir = \"{}/outbox\"\n",
        dir.display()
    )
}

fn http_sink(url: &str, timeout_ms: u64, batch: bool) -> String {
    format!(
        "[forward]\nsink = \"http\"\n[forward.http]\nurl = \"{url}\"\ntimeout_ms = {timeout_ms}\nbatch = {batch}\n"
    )
}

async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the daemon never listened on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 16 connections, each: send, wait for the ACK (AA), next. Stops when `total`
/// messages were acknowledged or `until` passes; returns (acked, elapsed).
async fn load(port: u16, first: u64, total: u64, until: Duration) -> (u64, Duration) {
    let template = std::fs::read_to_string(
        repo_root().join("sample-messages/hl7v2/epic/orm-o01-v251-eap.hl7"),
    )
    .expect("sample");
    let template = Arc::new(template);
    let next = Arc::new(AtomicU64::new(first));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (template, next, acked, stop) =
            (template.clone(), next.clone(), acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut buf = vec![0u8; 4096];
            loop {
                if stop.load(Ordering::Relaxed) || started.elapsed() >= until {
                    return;
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= first + total {
                    return;
                }
                stream
                    .write_all(&message(&template, n))
                    .await
                    .expect("send");
                let mut got = Vec::new();
                while !got.ends_with(&[0x1c, 0x0d]) {
                    let k = stream.read(&mut buf).await.expect("read ack");
                    assert!(k > 0, "the daemon closed the connection");
                    got.extend_from_slice(&buf[..k]);
                }
                let ack = String::from_utf8_lossy(&got);
                assert!(ack.contains("MSA|AA|"), "not AA: {ack}");
                acked.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("load connection");
    }
    stop.store(true, Ordering::Relaxed);
    (acked.load(Ordering::Relaxed), started.elapsed())
}

fn pending(store: &Path) -> u64 {
    Reader::open(store)
        .and_then(|r| r.outbox_stats())
        .map(|s| s.pending)
        .unwrap_or(u64::MAX)
}

/// Waits until the outbox of `store` is empty; returns the time it took.
async fn drained(store: &Path, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if pending(store) == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "the outbox did not drain in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A platform that accepts connections and never answers (an outage where the
/// forwarder's attempts hang instead of failing).
async fn hanging_platform() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let root = tempfile::tempdir().expect("temp dir");
    println!(
        "drain bench: backlog {} messages, sustained {} s, {CONNECTIONS} MLLP connections",
        args.backlog, args.secs
    );

    // 1. Backlog while the platform hangs.
    let a = root.path().join("backlog");
    std::fs::create_dir_all(&a).expect("dir");
    let platform = hanging_platform().await;
    let port = free_port();
    let config = write_config(
        &a,
        port,
        &http_sink(&format!("http://{platform}/events"), 600_000, false),
    );
    let daemon = Daemon::start(&config);
    wait_for_port(port).await;
    let (acked, took) = load(port, 0, args.backlog, Duration::from_secs(3_600)).await;
    let intake_idle = acked as f64 / took.as_secs_f64();
    daemon.stop();
    let store_a = a.join("data/gateway.sqlite");
    let backlog = pending(&store_a);
    let db_bytes = std::fs::metadata(&store_a).map(|m| m.len()).unwrap_or(0);
    println!(
        "backlog: {acked} acknowledged in {:.1} s = {intake_idle:.0} msg/s (forwarder stalled); \
         {backlog} pending; store {:.1} MB",
        took.as_secs_f64(),
        db_bytes as f64 / 1e6
    );
    let b = root.path().join("backlog-http");
    copy_dir(&a, &b);

    // 2. Drain to the file sink.
    let config = write_config(&a, free_port(), &file_sink(&a));
    let daemon = Daemon::start(&config);
    let took = drained(&store_a, Duration::from_secs(3_600)).await;
    daemon.stop();
    let file_rate = backlog as f64 / took.as_secs_f64();
    let lines: usize = std::fs::read_dir(a.join("outbox"))
        .expect("outbox dir")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .map(|t| t.lines().count())
        .sum();
    println!(
        "file drain: {backlog} events in {:.1} s = {file_rate:.0} events/s ({lines} lines written)",
        took.as_secs_f64()
    );

    // 3. Drain to a loopback HTTP receiver, CloudEvents batches.
    let receiver = PlatformReceiver::start().await;
    let store_b = b.join("data/gateway.sqlite");
    let config = write_config(&b, free_port(), &http_sink(&receiver.url(), 10_000, true));
    let daemon = Daemon::start(&config);
    let took = drained(&store_b, Duration::from_secs(3_600)).await;
    daemon.stop();
    let http_rate = backlog as f64 / took.as_secs_f64();
    println!(
        "http drain (batch): {backlog} events in {:.1} s = {http_rate:.0} events/s ({} accepted, {} requests)",
        took.as_secs_f64(),
        receiver.accepted().len(),
        receiver.requests().len()
    );
    drop(receiver);

    // 4. Sustained load with the file sink on.
    let c = root.path().join("sustained");
    std::fs::create_dir_all(&c).expect("dir");
    let port = free_port();
    let config = write_config(&c, port, &file_sink(&c));
    let daemon = Daemon::start(&config);
    wait_for_port(port).await;
    let (acked, took) = load(port, 0, u64::MAX / 2, Duration::from_secs(args.secs)).await;
    let store_c = c.join("data/gateway.sqlite");
    let depth = pending(&store_c);
    daemon.stop();
    let intake_busy = acked as f64 / took.as_secs_f64();
    let wal = std::fs::metadata(c.join("data/gateway.sqlite-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "sustained: {acked} acknowledged in {:.1} s = {intake_busy:.0} msg/s with the file sink on; \
         outbox depth at the end {depth} = {:.2} s of intake; WAL after stop {:.1} MB",
        took.as_secs_f64(),
        depth as f64 / intake_busy,
        wal as f64 / 1e6
    );
    println!();
    println!("| figure | value | ratio to MLLP intake (forwarder stalled) |");
    println!("| --- | ---: | ---: |");
    println!("| MLLP intake, forwarder stalled | {intake_idle:.0} msg/s | 1.00 |");
    println!(
        "| MLLP intake, file sink on | {intake_busy:.0} msg/s | {:.2} |",
        intake_busy / intake_idle
    );
    println!(
        "| drain to file sink | {file_rate:.0} events/s | {:.2} |",
        file_rate / intake_idle
    );
    println!(
        "| drain to HTTP (batch) | {http_rate:.0} events/s | {:.2} |",
        http_rate / intake_idle
    );
    println!(
        "| outbox depth after {} s of load | {depth} events = {:.2} s of intake | |",
        args.secs,
        depth as f64 / intake_busy
    );
}

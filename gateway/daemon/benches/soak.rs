//! Chaos soak: does anything acknowledged get lost over a long run of mixed
//! traffic while the platform flaps, the daemon is killed and the disk fills?
//!
//! For `--minutes` (default 30) the release daemon takes:
//! * **HL7 v2** — 8 MLLP connections, paced to `--rate` messages/s in total
//!   (default 100), each message its own case; a message without an AA/CA
//!   (connection lost, AE/AR) is sent again with the same control id, as
//!   MLLP senders do;
//! * **X12 278** — one request file every `--x12-every` seconds (default 2)
//!   written into the file-drop folder (written aside, then renamed);
//! * **FHIR** — the loopback Medplum FHIR server the FHIR tests use
//!   (`adapters/fhir/tests/fhir-server`, installed by `.ci/install.d/40-fhir.sh`),
//!   polled every 2 s with SMART Backend Services, a new ServiceRequest loaded
//!   every 10 s (skipped, with the reason in the report, when node or its
//!   packages are missing).
//!
//! Meanwhile:
//! * the **platform** (a loopback CloudEvents receiver written here, behind a
//!   proxy that can refuse connections) cycles up 40 s → down (connection
//!   refused) 20 s → up 30 s → 401 20 s → up 30 s → 503 with `Retry-After`
//!   20 s;
//! * the daemon is **killed with SIGKILL** every `--kill-every` seconds
//!   (default 120) and started again, as systemd would; an exit the bench did
//!   not cause is restarted the same way and counted;
//! * **one disk-full episode**: the store lives on a small tmpfs
//!   (`--tmpfs-mb`, default 3072) mounted for the run; halfway through, a
//!   ballast file fills it for at least 20 s (until intake was refused, at
//!   most 60 s), then is removed. Where mounting is refused (not root, no
//!   `CAP_SYS_ADMIN`) the store is on the normal disk and the episode is
//!   skipped with the reason in the report.
//!
//! Then traffic stops, the platform stays up and the outbox drains (at most
//! `--drain-minutes`, default 10). The report — JSON (`--json FILE`) and a
//! human table on stdout — gives acknowledged vs stored vs delivered per
//! channel (by HL7 control id, X12 ST02, FHIR ServiceRequest id), duplicates
//! delivered (CloudEvents ids the platform accepted more than once), store /
//! WAL / outbox size sampled every 5 s, and ACK latency per phase. **Exit
//! status 1** when any acknowledged message is missing from the store or was
//! never delivered after the final drain.
//!
//! ```text
//! cargo bench -p ehr-gateway --bench soak                     # 30 minutes
//! cargo bench -p ehr-gateway --bench soak -- --minutes 5 --json soak.json
//! ```
//!
//! Not run in CI.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::{Daemon, Latency, file_len, framed, toml_path};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const CONNECTIONS: usize = 8;

struct Args {
    minutes: f64,
    rate: f64,
    x12_every: f64,
    kill_every: u64,
    tmpfs_mb: u64,
    drain_minutes: u64,
    json: Option<PathBuf>,
    keep: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        minutes: 30.0,
        rate: 100.0,
        x12_every: 2.0,
        kill_every: 120,
        tmpfs_mb: 3072,
        drain_minutes: 10,
        json: None,
        keep: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match arg.as_str() {
            "--minutes" => a.minutes = value().parse().unwrap_or(a.minutes),
            "--rate" => a.rate = value().parse().unwrap_or(a.rate),
            "--x12-every" => a.x12_every = value().parse().unwrap_or(a.x12_every),
            "--kill-every" => a.kill_every = value().parse().unwrap_or(a.kill_every),
            "--tmpfs-mb" => a.tmpfs_mb = value().parse().unwrap_or(a.tmpfs_mb),
            "--drain-minutes" => a.drain_minutes = value().parse().unwrap_or(a.drain_minutes),
            "--json" => a.json = Some(PathBuf::from(value())),
            "--keep" => a.keep = Some(PathBuf::from(value())),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    a
}

// ---------------------------------------------------------------------------
// Phases: what the traffic saw when an ACK came back.

const PH_UP: u8 = 0;
const PH_DOWN: u8 = 1;
const PH_401: u8 = 2;
const PH_503: u8 = 3;
const PH_RESTART: u8 = 4;
const PH_DISK_FULL: u8 = 5;
const PHASES: [&str; 6] = [
    "platform up",
    "platform down (refused)",
    "platform 401",
    "platform 503",
    "daemon restarting (30 s after a kill)",
    "disk full",
];

/// The platform's mode (the same codes as the phases 0–3).
struct Chaos {
    platform: AtomicU8,
    restarting: AtomicBool,
    disk_full: AtomicBool,
    /// Messages not accepted (refused, connection lost, no ACK), per phase,
    /// as they happen (the per-connection tallies merge only at the end).
    refused: [AtomicU64; 6],
}

impl Chaos {
    fn phase(&self) -> u8 {
        if self.disk_full.load(Ordering::Relaxed) {
            PH_DISK_FULL
        } else if self.restarting.load(Ordering::Relaxed) {
            PH_RESTART
        } else {
            self.platform.load(Ordering::Relaxed)
        }
    }
}

// ---------------------------------------------------------------------------
// The platform: a CloudEvents receiver that records ids only, behind a proxy
// that refuses connections while the platform is "down".

#[derive(Default)]
struct Received {
    /// Event id → times accepted (202).
    accepted: HashMap<String, u32>,
    /// (adapter, control id) of every accepted event.
    control_ids: HashSet<(String, String)>,
    /// Answers by status.
    statuses: BTreeMap<u16, u64>,
}

struct Platform {
    chaos: Arc<Chaos>,
    received: Mutex<Received>,
}

async fn events(
    State(platform): State<Arc<Platform>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let status = match platform.chaos.platform.load(Ordering::Relaxed) {
        PH_401 => StatusCode::UNAUTHORIZED,
        PH_503 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::ACCEPTED,
    };
    let batch = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("cloudevents-batch"));
    let parsed: Option<Vec<Value>> = serde_json::from_slice::<Value>(&body).ok().map(|v| {
        if batch {
            v.as_array().cloned().unwrap_or_default()
        } else {
            vec![v]
        }
    });
    let Some(list) = parsed else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let mut got = platform.received.lock().unwrap_or_else(|p| p.into_inner());
    *got.statuses.entry(status.as_u16()).or_default() += 1;
    if status == StatusCode::ACCEPTED {
        for event in list {
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            *got.accepted.entry(id).or_default() += 1;
            let source = &event["data"]["source"];
            if let (Some(adapter), Some(control)) =
                (source["adapter"].as_str(), source["control_id"].as_str())
            {
                got.control_ids
                    .insert((adapter.to_owned(), control.to_owned()));
            }
        }
    }
    drop(got);
    let mut response = (status, "").into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("2"));
    }
    response
}

async fn start_platform(chaos: Arc<Chaos>) -> (Arc<Platform>, SocketAddr) {
    let platform = Arc::new(Platform {
        chaos,
        received: Mutex::new(Received::default()),
    });
    let app = axum::Router::new()
        .route("/events", axum::routing::post(events))
        .with_state(platform.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (platform, addr)
}

/// Listens on `port` and forwards to `target` while `up` is true; while it
/// is false the port is closed (connection refused) and every open
/// connection is cut.
fn start_proxy(port: u16, target: SocketAddr, mut up: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            while !*up.borrow() {
                if up.changed().await.is_err() {
                    return;
                }
            }
            let listener = loop {
                match TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            };
            let (cut, _) = tokio::sync::broadcast::channel::<()>(1);
            loop {
                tokio::select! {
                    changed = up.changed() => {
                        if changed.is_err() || !*up.borrow() {
                            let _ = cut.send(());
                            break;
                        }
                    }
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        let mut cut = cut.subscribe();
                        tokio::spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                                _ = cut.recv() => {}
                            }
                        });
                    }
                }
            }
            drop(listener);
        }
    });
}

// ---------------------------------------------------------------------------
// Traffic.

#[derive(Default)]
struct Traffic {
    /// HL7 control ids acknowledged (AA/CA).
    hl7_acked: Vec<String>,
    /// ACK latency in µs, per phase.
    latency: [Vec<u64>; 6],
    /// Non-accept ACK codes / connection failures, per phase.
    refusals: [BTreeMap<String, u64>; 6],
    /// Messages sent but never acknowledged when traffic stopped.
    unacked_at_stop: u64,
}

async fn mllp_connection(
    conn: usize,
    port: u16,
    interval: Duration,
    chaos: Arc<Chaos>,
    stop: Arc<AtomicBool>,
    next: Arc<AtomicU64>,
    traffic: Arc<Mutex<Traffic>>,
) {
    let template = support::epic_template();
    let mut local = Traffic::default();
    let mut stream: Option<TcpStream> = None;
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Stagger the connections.
    tokio::time::sleep(interval.mul_f64(conn as f64 / CONNECTIONS as f64)).await;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let (control, frame) = pending.take().unwrap_or_else(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let control = format!("SOAK{n:09}");
            let frame = framed(&template, &control, &format!("SK{n:09}"));
            (control, frame)
        });
        if stream.is_none() {
            match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                Err(_) => {
                    let phase = chaos.phase() as usize;
                    chaos.refused[phase].fetch_add(1, Ordering::Relaxed);
                    *local.refusals[phase]
                        .entry("connect refused".to_owned())
                        .or_default() += 1;
                    pending = Some((control, frame));
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let sent = Instant::now();
        let result =
            tokio::time::timeout(Duration::from_secs(30), support::exchange(s, &frame)).await;
        let took = sent.elapsed().as_micros() as u64;
        let phase = chaos.phase() as usize;
        if !matches!(&result, Ok(Ok(code)) if code == "AA" || code == "CA") {
            chaos.refused[phase].fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(Ok(code)) if code == "AA" || code == "CA" => {
                local.latency[phase].push(took);
                local.hl7_acked.push(control);
            }
            Ok(Ok(code)) => {
                *local.refusals[phase].entry(code).or_default() += 1;
                pending = Some((control, frame));
            }
            Ok(Err(_)) => {
                *local.refusals[phase]
                    .entry("connection lost".to_owned())
                    .or_default() += 1;
                stream = None;
                pending = Some((control, frame));
            }
            Err(_) => {
                *local.refusals[phase]
                    .entry("no ACK in 30 s".to_owned())
                    .or_default() += 1;
                stream = None;
                pending = Some((control, frame));
            }
        }
    }
    local.unacked_at_stop = u64::from(pending.is_some());
    let mut all = traffic.lock().unwrap_or_else(|p| p.into_inner());
    all.hl7_acked.extend(local.hl7_acked);
    for i in 0..PHASES.len() {
        all.latency[i].extend(std::mem::take(&mut local.latency[i]));
        for (k, v) in std::mem::take(&mut local.refusals[i]) {
            *all.refusals[i].entry(k).or_default() += v;
        }
    }
    all.unacked_at_stop += local.unacked_at_stop;
}

/// The 278 request sample with unique envelope numbers, BHT03 and TRN, so
/// each file is its own interchange and case; ST02 is the control id.
fn x12_request(template: &str, k: u64) -> (String, String) {
    let st02 = format!("{:09}", 100_000_000 + k);
    let text = template
        .replace("*000000101*", &format!("*{:09}*", 100_000_000 + k))
        .replace("IEA*1*000000101", &format!("IEA*1*{:09}", 100_000_000 + k))
        .replace("*101*X*", &format!("*{k}*X*"))
        .replace("GE*1*101", &format!("GE*1*{k}"))
        .replace("ST*278*0001*", &format!("ST*278*{st02}*"))
        .replace("SE*26*0001", &format!("SE*26*{st02}"))
        .replace("REQ-0001", &format!("SOAKREQ{k:07}"))
        .replace("TRACE0001", &format!("SOAKTR{k:07}"));
    (st02, text)
}

async fn x12_dropper(inbound: PathBuf, every: Duration, stop: Arc<AtomicBool>) -> Vec<String> {
    let template = std::fs::read_to_string(
        support::repo_root().join("sample-messages/x12/x12-278/request.x12"),
    )
    .expect("the 278 sample");
    let mut names = Vec::new();
    let mut k = 0u64;
    let mut tick = tokio::time::interval(every);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        k += 1;
        let (st02, text) = x12_request(&template, k);
        let name = format!("soak-{st02}.x12");
        let part = inbound.join(format!(".{name}.part"));
        if std::fs::write(&part, &text).is_ok()
            && std::fs::rename(&part, inbound.join(&name)).is_ok()
        {
            names.push(st02);
        }
    }
    names
}

// ---------------------------------------------------------------------------
// The loopback FHIR server.

struct FhirServer {
    child: std::process::Child,
    port: u16,
    key: PathBuf,
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fhir(dir: &Path) -> Result<FhirServer, String> {
    use std::io::BufRead as _;
    let root = support::repo_root();
    let server_dir = root.join("adapters/fhir/tests/fhir-server");
    if !server_dir
        .join("node_modules/@medplum/fhir-router")
        .is_dir()
    {
        return Err(
            "the Medplum FHIR server packages are missing (.ci/install.d/40-fhir.sh)".into(),
        );
    }
    let key = root.join("adapters/fhir/tests/keys/test-only-es384.pem");
    let pem = std::fs::read(&key).map_err(|e| format!("test key: {e}"))?;
    let jwks = gateway_fhir::auth::public_jwks(
        &pem,
        gateway_fhir::auth::SigningAlgorithm::ES384,
        "soak-1",
    )
    .map_err(|e| format!("JWKS: {e}"))?;
    let config = dir.join("fhir-server.json");
    std::fs::write(
        &config,
        json!({"token_ttl_seconds": 300, "clients": [
            {"client_id": "ehr-gateway-soak", "auth": "private_key_jwt", "jwks": jwks}]})
        .to_string(),
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new("node")
        .arg("--experimental-websocket")
        .arg("--no-warnings")
        .arg(server_dir.join("server.mjs"))
        .arg(&config)
        .current_dir(&server_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("node: {e}"))?;
    let port = child
        .stdout
        .take()
        .and_then(|out| {
            let mut line = String::new();
            std::io::BufReader::new(out).read_line(&mut line).ok()?;
            serde_json::from_str::<Value>(&line).ok()?["port"].as_u64()
        })
        .map(|p| p as u16);
    match port {
        Some(port) => Ok(FhirServer { child, port, key }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err("the FHIR server did not start".into())
        }
    }
}

/// Loads order `k`: the athenahealth sample with a new ServiceRequest id and
/// order number, every resource stamped now (the poller reads by
/// `_lastUpdated`).
async fn load_fhir_order(client: &reqwest::Client, port: u16, bundle: &Value, k: u64) -> bool {
    let now = jiff::Timestamp::now().to_string();
    let mut entries = Vec::new();
    for entry in bundle["entry"].as_array().into_iter().flatten() {
        let mut resource = entry["resource"].clone();
        if resource["resourceType"] == "ServiceRequest" {
            resource["id"] = json!(format!("soak-sr-{k}"));
            if let Some(ids) = resource["identifier"].as_array_mut() {
                for id in ids {
                    id["value"] = json!(format!("SOAKORD{k}"));
                }
            }
        }
        resource["meta"] = json!({"lastUpdated": now, "versionId": k.to_string()});
        entries.push(json!({"resource": resource}));
    }
    client
        .post(format!("http://127.0.0.1:{port}/_control/load"))
        .body(json!({"entry": entries}).to_string())
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

// ---------------------------------------------------------------------------
// The daemon's config and supervision.

struct Setup {
    dir: PathBuf,
    data: PathBuf,
    inbound: PathBuf,
    mllp: u16,
    platform_port: u16,
    fhir: Option<(u16, PathBuf)>,
}

fn write_config(s: &Setup) -> PathBuf {
    std::fs::write(
        s.dir.join("admin.token"),
        "bench-admin-token-0123456789abcdef\n",
    )
    .expect("token");
    let fhir = match &s.fhir {
        Some((port, key)) => format!(
            r#"[fhir]
profile = "athenahealth"
base_url = "http://127.0.0.1:{port}/fhir/R4"
poll_interval_secs = 2
request_timeout_secs = 10
[fhir.auth]
style = "smart_backend"
token_url = "http://127.0.0.1:{port}/token"
client_id = "ehr-gateway-soak"
private_key_file = "{key}"
algorithm = "ES384"
kid = "soak-1"
"#,
            key = toml_path(key)
        ),
        None => String::new(),
    };
    let config = s.dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"mappings_dir = "{mappings}"
[gateway]
tenant = "mso-soak"
practice = "cardio-north"
[admin]
listen = "127.0.0.1:0"
token_file = "{dir}/admin.token"
[store]
path = "{data}"
[logging]
format = "json"
level = "warn"
[shutdown]
grace_period_ms = 3000
[[hl7v2.listeners]]
listen = "127.0.0.1:{mllp}"
profile = "epic"
[x12]
profile = "x12-278"
[x12.identity]
id = "EHRGATEWAY"
[x12.file_drop]
inbound = "{inbound}"
poll_interval_ms = 200
settle_ms = 0
[forward]
sink = "http"
[forward.http]
url = "http://127.0.0.1:{platform}/events"
timeout_ms = 5000
batch = true
[forward.delivery]
poll_interval_ms = 500
[forward.delivery.backoff]
initial_ms = 500
max_ms = 5000
{fhir}"#,
            mappings = toml_path(&support::repo_root().join("mappings")),
            dir = toml_path(&s.dir),
            data = toml_path(&s.data),
            inbound = toml_path(&s.inbound),
            mllp = s.mllp,
            platform = s.platform_port,
        ),
    )
    .expect("config");
    config
}

/// A tmpfs of `mb` MiB mounted at `at`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mb}m,mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(format!(
                "mounting a tmpfs was refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) -> u64 {
    use std::io::Write as _;
    let Ok(mut file) = std::fs::File::create(path) else {
        return 0;
    };
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while file.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    // The last partial megabyte too.
    let small = vec![0u8; 4096];
    while file.write_all(&small).is_ok() {
        written += small.len() as u64;
    }
    let _ = file.sync_all();
    written
}

#[derive(serde::Serialize, Clone)]
struct Sample {
    at_secs: f64,
    phase: &'static str,
    store_bytes: u64,
    wal_bytes: u64,
    pending: Option<u64>,
    dead: Option<u64>,
}

#[derive(serde::Serialize, Default)]
struct ChannelCount {
    acknowledged: usize,
    stored: usize,
    delivered: usize,
    /// Delivered, then pruned by retention or the size keeper (which only
    /// ever prune delivered history): not a loss.
    pruned_after_delivery: usize,
    /// Neither in the store nor delivered: lost.
    missing_from_store: Vec<String>,
    never_delivered: Vec<String>,
    /// What the store holds under the first missing control ids (any state).
    missing_detail: Vec<Value>,
}

#[derive(serde::Serialize)]
struct PhaseReport {
    phase: &'static str,
    latency: Latency,
    refusals: BTreeMap<String, u64>,
}

#[derive(serde::Serialize)]
struct Report {
    minutes: f64,
    rate_per_sec: f64,
    kills: u32,
    unexpected_exits: u32,
    disk_full: Value,
    fhir: Value,
    hl7v2: ChannelCount,
    x12: ChannelCount,
    fhir_orders: ChannelCount,
    hl7_unacked_at_stop: u64,
    events_accepted_by_platform: usize,
    duplicates_delivered: u64,
    platform_answers: BTreeMap<u16, u64>,
    outbox_after_drain: Value,
    drain_secs: f64,
    phases: Vec<PhaseReport>,
    samples: Vec<Sample>,
    passed: bool,
}

#[tokio::main]
async fn main() {
    let args = args();
    let holder = tempfile::tempdir().expect("temp dir");
    let dir = holder.path().to_path_buf();
    support::use_private_copy(&dir);
    let mount_at = dir.join("data");
    let tmpfs = Tmpfs::mount(&mount_at, args.tmpfs_mb);
    let disk_full_skipped = tmpfs.as_ref().err().cloned();
    std::fs::create_dir_all(&mount_at).expect("data dir");
    let data = mount_at.join("store");
    let inbound = dir.join("x12-inbound");
    std::fs::create_dir_all(&inbound).expect("inbound");
    let fhir = start_fhir(&dir);
    let fhir_skipped = fhir.as_ref().err().cloned();
    let setup = Setup {
        dir: dir.clone(),
        data: data.clone(),
        inbound: inbound.clone(),
        mllp: support::free_port(),
        platform_port: support::free_port(),
        fhir: fhir.as_ref().ok().map(|f| (f.port, f.key.clone())),
    };
    let config = write_config(&setup);
    let log = dir.join("daemon.log");
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let kill_every = Duration::from_secs(args.kill_every.max(10));
    let k = (total.as_secs() / 2) / kill_every.as_secs();
    let disk_full_at = kill_every * k as u32 + kill_every / 4;
    println!(
        "soak: {} min, {CONNECTIONS} MLLP connections at {} msg/s, X12 every {} s, FHIR {}, \
         kill -9 every {} s, disk full at {} s{}",
        args.minutes,
        args.rate,
        args.x12_every,
        fhir_skipped.as_deref().unwrap_or("on"),
        kill_every.as_secs(),
        disk_full_at.as_secs(),
        disk_full_skipped
            .as_deref()
            .map(|r| format!(" (skipped: {r})"))
            .unwrap_or_default()
    );

    let chaos = Arc::new(Chaos {
        platform: AtomicU8::new(PH_UP),
        restarting: AtomicBool::new(true),
        disk_full: AtomicBool::new(false),
        refused: Default::default(),
    });
    let (platform, platform_addr) = start_platform(chaos.clone()).await;
    let (proxy_up, proxy_rx) = watch::channel(true);
    start_proxy(setup.platform_port, platform_addr, proxy_rx);

    let mut daemon = Daemon::start(&config, Some(&log));
    assert!(
        support::wait_for_port(setup.mllp, Duration::from_secs(120)).await,
        "the daemon never listened"
    );
    chaos.restarting.store(false, Ordering::Relaxed);

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let next = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(CONNECTIONS as f64 / args.rate.max(0.1));
    let mut load = Vec::new();
    for conn in 0..CONNECTIONS {
        load.push(tokio::spawn(mllp_connection(
            conn,
            setup.mllp,
            interval,
            chaos.clone(),
            stop.clone(),
            next.clone(),
            traffic.clone(),
        )));
    }
    let x12 = tokio::spawn(x12_dropper(
        inbound.clone(),
        Duration::from_secs_f64(args.x12_every.max(0.1)),
        stop.clone(),
    ));
    let fhir_task = fhir.as_ref().ok().map(|f| {
        let port = f.port;
        let stop = stop.clone();
        tokio::spawn(async move {
            let bundle: Value = std::fs::read(
                support::repo_root().join("sample-messages/fhir/athenahealth/order-full.json"),
            )
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
            let client = reqwest::Client::new();
            let mut loaded = Vec::new();
            let mut k = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                k += 1;
                if load_fhir_order(&client, port, &bundle, k).await {
                    loaded.push(format!("ServiceRequest/soak-sr-{k}"));
                }
            }
            loaded
        })
    });

    // The chaos loop.
    const FLAPS: [(u8, u64); 6] = [
        (PH_UP, 40),
        (PH_DOWN, 20),
        (PH_UP, 30),
        (PH_401, 20),
        (PH_UP, 30),
        (PH_503, 20),
    ];
    let cycle: u64 = FLAPS.iter().map(|(_, s)| s).sum();
    let db = data.join("gateway.sqlite");
    let wal = data.join("gateway.sqlite-wal");
    let mut samples = Vec::new();
    let mut last_sample = Instant::now() - Duration::from_secs(10);
    let mut kills = 0u32;
    let mut unexpected_exits = 0u32;
    let mut next_kill = kill_every;
    let mut restarted_at: Option<Instant> = None;
    let mut disk_full_report = match &disk_full_skipped {
        Some(reason) => json!({"skipped": reason}),
        None => json!({"planned_at_secs": disk_full_at.as_secs()}),
    };
    let mut disk_full_since: Option<Instant> = None;
    let mut disk_full_done = disk_full_skipped.is_some();
    let ballast = mount_at.join("ballast");
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = started.elapsed();
        // The platform's mode.
        let mut at = t.as_secs() % cycle;
        let mut mode = PH_UP;
        for (m, secs) in FLAPS {
            if at < secs {
                mode = m;
                break;
            }
            at -= secs;
        }
        if chaos.platform.swap(mode, Ordering::Relaxed) != mode {
            proxy_up.send_replace(mode != PH_DOWN);
        }
        // kill -9 on schedule (not while the disk is full).
        if t >= next_kill && disk_full_since.is_none() {
            next_kill += kill_every;
            chaos.restarting.store(true, Ordering::Relaxed);
            daemon.kill9();
            kills += 1;
            println!("[{:>5.0} s] kill -9 #{kills}", t.as_secs_f64());
            tokio::time::sleep(Duration::from_millis(500)).await;
            daemon = Daemon::start(&config, Some(&log));
            restarted_at = Some(Instant::now());
        }
        if !daemon.alive() {
            unexpected_exits += 1;
            let status = daemon.child.try_wait().ok().flatten();
            println!(
                "[{:>5.0} s] the daemon exited by itself ({status:?}); starting it again",
                t.as_secs_f64()
            );
            chaos.restarting.store(true, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            daemon = Daemon::start(&config, Some(&log));
            restarted_at = Some(Instant::now());
        }
        if restarted_at.is_some_and(|r| r.elapsed() >= Duration::from_secs(30)) {
            restarted_at = None;
            chaos.restarting.store(false, Ordering::Relaxed);
        }
        // The disk-full episode.
        if !disk_full_done {
            match disk_full_since {
                None if t >= disk_full_at => {
                    let refused_before: u64 = chaos
                        .refused
                        .iter()
                        .map(|c| c.load(Ordering::Relaxed))
                        .sum();
                    let bytes = fill(&ballast);
                    chaos.disk_full.store(true, Ordering::Relaxed);
                    disk_full_since = Some(Instant::now());
                    println!(
                        "[{:>5.0} s] disk full ({} MB ballast)",
                        t.as_secs_f64(),
                        bytes >> 20
                    );
                    disk_full_report = json!({"at_secs": t.as_secs_f64(), "ballast_bytes": bytes,
                                              "refusals_before": refused_before});
                }
                Some(since) => {
                    let held = since.elapsed();
                    let refused = chaos.refused[PH_DISK_FULL as usize].load(Ordering::Relaxed);
                    if (held >= Duration::from_secs(20) && refused > 0)
                        || held >= Duration::from_secs(60)
                    {
                        let _ = std::fs::remove_file(&ballast);
                        chaos.disk_full.store(false, Ordering::Relaxed);
                        disk_full_done = true;
                        disk_full_since = None;
                        disk_full_report["held_secs"] = json!(held.as_secs_f64());
                        println!("[{:>5.0} s] space freed", t.as_secs_f64());
                    }
                }
                None => {}
            }
        }
        if last_sample.elapsed() >= Duration::from_secs(5) {
            last_sample = Instant::now();
            samples.push(sample(&db, &wal, t, chaos.phase()));
        }
    }
    let _ = std::fs::remove_file(&ballast);
    chaos.disk_full.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for task in load {
        let _ = task.await;
    }
    let x12_dropped = x12.await.unwrap_or_default();
    let fhir_loaded = match fhir_task {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    println!(
        "[{:>5.0} s] traffic stopped; draining",
        started.elapsed().as_secs_f64()
    );

    // The final drain: platform up, daemon running, until the outbox is empty
    // and the inbound folder was taken.
    chaos.platform.store(PH_UP, Ordering::Relaxed);
    proxy_up.send_replace(true);
    chaos.restarting.store(false, Ordering::Relaxed);
    let drain_started = Instant::now();
    let drain_limit = Duration::from_secs(args.drain_minutes * 60);
    let mut settled_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if !daemon.alive() {
            unexpected_exits += 1;
            daemon = Daemon::start(&config, Some(&log));
        }
        let stats = gateway_store::Reader::open(&db).and_then(|r| r.outbox_stats());
        let inbound_left = std::fs::read_dir(&inbound)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .count()
            })
            .unwrap_or(0);
        let idle = stats.as_ref().is_ok_and(|s| s.pending == 0) && inbound_left == 0;
        // Quiet for 5 s (a FHIR poll and the forwarder's next round included).
        settled_since = match (idle, settled_since) {
            (true, None) => Some(Instant::now()),
            (true, s) => s,
            (false, _) => None,
        };
        if settled_since.is_some_and(|s| s.elapsed() >= Duration::from_secs(5)) {
            break;
        }
        if drain_started.elapsed() >= drain_limit {
            println!("the outbox did not drain in {} min", args.drain_minutes);
            break;
        }
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    samples.push(sample(&db, &wal, started.elapsed(), PH_UP));
    daemon.stop();

    // Accounting.
    let stored = stored_control_ids(&db);
    let received = platform.received.lock().unwrap_or_else(|p| p.into_inner());
    let archived: HashSet<String> = std::fs::read_dir(inbound.join("archive"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("soak-")
                        .and_then(|n| n.strip_suffix(".x12"))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let traffic = traffic.lock().unwrap_or_else(|p| p.into_inner());
    let hl7 = account("hl7v2", &traffic.hl7_acked, &stored, &received.control_ids);
    let x12_acked: Vec<String> = x12_dropped
        .iter()
        .filter(|st02| archived.contains(*st02))
        .cloned()
        .collect();
    let x12 = account("x12", &x12_acked, &stored, &received.control_ids);
    // A loaded order counts once the poller stored it (there is no ACK).
    let fhir_stored: Vec<String> = fhir_loaded
        .iter()
        .filter(|c| stored.contains(&("fhir".to_owned(), (*c).clone())))
        .cloned()
        .collect();
    let mut fhir_orders = account("fhir", &fhir_stored, &stored, &received.control_ids);
    let mut hl7 = hl7;
    hl7.missing_detail = missing_detail(&db, &hl7.missing_from_store);
    fhir_orders.acknowledged = fhir_loaded.len();
    let duplicates: u64 = received
        .accepted
        .values()
        .map(|n| u64::from(n.saturating_sub(1)))
        .sum();
    let outbox = gateway_store::Reader::open(&db)
        .and_then(|r| r.outbox_stats())
        .map(|s| json!({"pending": s.pending, "dead": s.dead}))
        .unwrap_or_else(|e| json!({"error": e.to_string()}));
    let passed = hl7.missing_from_store.is_empty()
        && hl7.never_delivered.is_empty()
        && x12.missing_from_store.is_empty()
        && x12.never_delivered.is_empty()
        && fhir_orders.never_delivered.is_empty();
    let phases: Vec<PhaseReport> = PHASES
        .iter()
        .enumerate()
        .map(|(i, name)| PhaseReport {
            phase: name,
            latency: Latency::of(&traffic.latency[i]),
            refusals: traffic.refusals[i].clone(),
        })
        .collect();
    let report = Report {
        minutes: args.minutes,
        rate_per_sec: args.rate,
        kills,
        unexpected_exits,
        disk_full: disk_full_report,
        fhir: match &fhir_skipped {
            Some(reason) => json!({"skipped": reason}),
            None => json!({"orders_loaded": fhir_loaded.len()}),
        },
        hl7v2: hl7,
        x12,
        fhir_orders,
        hl7_unacked_at_stop: traffic.unacked_at_stop,
        events_accepted_by_platform: received.accepted.len(),
        duplicates_delivered: duplicates,
        platform_answers: received.statuses.clone(),
        outbox_after_drain: outbox,
        drain_secs,
        phases,
        samples,
        passed,
    };
    drop(received);
    let text = serde_json::to_string_pretty(&report).expect("report JSON");
    if let Some(path) = &args.json {
        std::fs::write(path, &text).expect("write the JSON report");
    }
    print_table(&report);
    if let Some(keep) = &args.keep {
        // The store, its WAL and the daemon's log, for a post-mortem.
        let _ = std::fs::create_dir_all(keep);
        for (from, name) in [
            (db.clone(), "gateway.sqlite"),
            (wal.clone(), "gateway.sqlite-wal"),
            (log.clone(), "daemon.log"),
        ] {
            let _ = std::fs::copy(&from, keep.join(name));
        }
    }
    drop(tmpfs);
    if !report.passed {
        eprintln!(
            "FAILED: an acknowledged message is missing from the store or was never delivered"
        );
        std::process::exit(1);
    }
}

fn sample(db: &Path, wal: &Path, t: Duration, phase: u8) -> Sample {
    let stats = gateway_store::Reader::open(db).and_then(|r| r.outbox_stats());
    Sample {
        at_secs: (t.as_secs_f64() * 10.0).round() / 10.0,
        phase: PHASES[phase as usize],
        store_bytes: file_len(db),
        wal_bytes: file_len(wal),
        pending: stats.as_ref().ok().map(|s| s.pending),
        dead: stats.as_ref().ok().map(|s| s.dead),
    }
}

/// (adapter, control id) of every accepted or duplicate message in the store.
fn stored_control_ids(db: &Path) -> HashSet<(String, String)> {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return HashSet::new();
    };
    let Ok(mut st) = conn.prepare(
        "SELECT adapter, control_id FROM messages
         WHERE state IN ('accepted', 'duplicate') AND control_id IS NOT NULL",
    ) else {
        return HashSet::new();
    };
    st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// State and reason of the messages stored under `ids` (first 20), whatever
/// their state: a missing message may be there as `error`.
fn missing_detail(db: &Path, ids: &[String]) -> Vec<Value> {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return Vec::new();
    };
    ids.iter()
        .take(20)
        .map(|id| {
            let rows: Vec<Value> = conn
                .prepare("SELECT id, state, error_reason, stored_at_ms FROM messages WHERE control_id = ?1")
                .and_then(|mut st| {
                    st.query_map([id], |r| {
                        Ok(json!({"row": r.get::<_, i64>(0)?, "state": r.get::<_, String>(1)?,
                                  "reason": r.get::<_, Option<String>>(2)?,
                                  "stored_at_ms": r.get::<_, i64>(3)?}))
                    })
                    .map(|rows| rows.filter_map(Result::ok).collect())
                })
                .unwrap_or_default();
            json!({"control_id": id, "stored_as": rows})
        })
        .collect()
}

fn account(
    adapter: &str,
    acked: &[String],
    stored: &HashSet<(String, String)>,
    delivered: &HashSet<(String, String)>,
) -> ChannelCount {
    let mut c = ChannelCount {
        acknowledged: acked.len(),
        ..ChannelCount::default()
    };
    for id in acked {
        let key = (adapter.to_owned(), id.clone());
        if stored.contains(&key) {
            c.stored += 1;
        } else if delivered.contains(&key) {
            c.pruned_after_delivery += 1;
        } else {
            c.missing_from_store.push(id.clone());
        }
        if delivered.contains(&key) {
            c.delivered += 1;
        } else {
            c.never_delivered.push(id.clone());
        }
    }
    c
}

fn print_table(r: &Report) {
    println!();
    println!(
        "soak: {} min, {} kill -9, {} unexpected exits, disk full: {}, FHIR: {}",
        r.minutes, r.kills, r.unexpected_exits, r.disk_full, r.fhir
    );
    println!();
    println!(
        "| channel | acknowledged | stored | delivered | pruned after delivery | missing from store | never delivered |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, c) in [
        ("HL7 v2 (MLLP AA/CA)", &r.hl7v2),
        ("X12 278 (file archived)", &r.x12),
        ("FHIR (orders loaded → stored)", &r.fhir_orders),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            c.acknowledged,
            c.stored,
            c.delivered,
            c.pruned_after_delivery,
            c.missing_from_store.len(),
            c.never_delivered.len()
        );
    }
    println!(
        "\nplatform accepted {} distinct events; duplicates delivered {}; answers {:?}; \
         outbox after a {:.0} s drain {}; HL7 messages unacknowledged when traffic stopped {}",
        r.events_accepted_by_platform,
        r.duplicates_delivered,
        r.platform_answers,
        r.drain_secs,
        r.outbox_after_drain,
        r.hl7_unacked_at_stop
    );
    println!();
    println!("| phase | ACKs | p50 ms | p99 ms | max ms | not accepted |");
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    for p in &r.phases {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:?} |",
            p.phase,
            p.latency.count,
            p.latency.p50_ms,
            p.latency.p99_ms,
            p.latency.max_ms,
            p.refusals
        );
    }
    println!();
    println!("| t (s) | phase | store MB | WAL MB | pending | dead |");
    println!("| ---: | --- | ---: | ---: | ---: | ---: |");
    let step = (r.samples.len() / 30).max(1);
    for (i, s) in r.samples.iter().enumerate() {
        if i % step == 0 || i + 1 == r.samples.len() {
            println!(
                "| {:.0} | {} | {:.1} | {:.1} | {} | {} |",
                s.at_secs,
                s.phase,
                s.store_bytes as f64 / 1e6,
                s.wal_bytes as f64 / 1e6,
                s.pending.map_or("?".into(), |v| v.to_string()),
                s.dead.map_or("?".into(), |v| v.to_string())
            );
        }
    }
    println!(
        "\n{}",
        if r.passed {
            "PASS: every acknowledged message is stored and was delivered"
        } else {
            "FAIL: see missing_from_store / never_delivered in the JSON report"
        }
    );
}

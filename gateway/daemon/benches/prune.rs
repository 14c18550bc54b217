//! Does retention block intake? ACK latency while the daemon prunes a million
//! expired rows, against the same load without a prune, in one run.
//!
//! 1. **seed** — a store file created by the store itself, then filled with
//!    direct SQL (one transaction, not through MLLP: seeding through intake
//!    would take longer than the bench): `--rows` (default 1 000 000)
//!    accepted HL7 messages with their delivered case events and one
//!    delivery attempt each, spread over `--rows / 10` cases, all 60 days old
//!    (past the default `retention_days = 30`).
//! 2. **baseline** — the release daemon on that store with the file sink and
//!    8 MLLP connections of steady load (send, wait for the ACK, next). The
//!    daemon's retention task first runs a minute after start: until then
//!    the load runs without a prune.
//! 3. **prune** — from the moment the first seeded message is gone until the
//!    daemon logs its retention pass done (pruned in bounded writer steps,
//!    free pages given back, WAL truncated), the same load continues.
//!
//! Reports p50 / p99 / max ACK latency of both phases and their ratio, the
//! largest WAL file seen during the prune (sampled every 100 ms), rows pruned
//! per second and the store's size before and after. Every ACK must be AA.
//!
//! ```text
//! cargo bench -p ehr-gateway --bench prune
//! cargo bench -p ehr-gateway --bench prune -- --rows 200000 --json prune.json
//! ```
//!
//! Not run in CI (minutes, gigabytes of disk).

mod support;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use support::{Daemon, Latency, file_len, framed, free_port, toml_path, wait_for_port};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 8;
/// Rows seeded per case (events of one case, seq 1..=10).
const EVENTS_PER_CASE: u64 = 10;

struct Args {
    rows: u64,
    json: Option<PathBuf>,
    keep: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        rows: 1_000_000,
        json: None,
        keep: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--rows" => a.rows = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.rows),
            "--json" => a.json = it.next().map(PathBuf::from),
            "--dir" => a.keep = it.next().map(PathBuf::from),
            _ => {} // `cargo bench` passes `--bench`
        }
    }
    a
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seeds `rows` delivered, expired messages + events + attempts into the store
/// at `db` (already created with the current schema by the store itself).
fn seed(db: &Path, rows: u64, template: &str) -> rusqlite::Result<()> {
    let mut conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA foreign_keys = ON;")?;
    let old = now_ms() - 60 * 86_400_000;
    // A realistic event body: a CloudEvent of about 1 KB.
    let filler = "x".repeat(700);
    let tx = conn.transaction()?;
    {
        let mut case = tx.prepare(
            "INSERT INTO cases (case_id, snapshot, status, profile, adapter, patient_key, last_seq,
                                created_at_ms, updated_at_ms)
             VALUES (?1, '{\"schema\":\"ehr-gateway/case/v1\"}', 'requested', 'epic', 'hl7v2', NULL, ?2, ?3, ?3)",
        )?;
        let mut message = tx.prepare(
            "INSERT INTO messages (id, adapter, profile, sender, control_id, message_type, content_hash,
                                   raw, received_at, received_at_ms, stored_at_ms, peer, state, case_id)
             VALUES (?1, 'hl7v2', 'epic', 'EPIC^HOSP', ?2, 'ORM^O01', ?3, ?4, '2026-10-01T00:00:00Z',
                     ?5, ?5, '127.0.0.1:1', 'accepted', ?6)",
        )?;
        let mut event = tx.prepare(
            "INSERT INTO events (id, case_id, seq, type, message_id, body, state, attempts,
                                 next_attempt_at_ms, created_at_ms, finished_at_ms)
             VALUES (?1, ?2, ?3, 'case.updated', ?4, ?5, 'delivered', 1, ?6, ?6, ?6)",
        )?;
        let mut attempt = tx.prepare(
            "INSERT INTO delivery_attempts (event_id, sink, at_ms, result, http_status)
             VALUES (?1, 'http', ?2, 'delivered', 202)",
        )?;
        for n in 1..=rows {
            let case_n = (n - 1) / EVENTS_PER_CASE;
            let seq = (n - 1) % EVENTS_PER_CASE + 1;
            let case_id = format!("seed-case-{case_n:08}");
            let at = old + n as i64;
            if seq == 1 {
                case.execute(params![case_id, EVENTS_PER_CASE as i64, at])?;
            }
            let control = format!("SEED{n:010}");
            let raw = framed(template, &control, &format!("SO{n:010}"));
            message.execute(params![
                n as i64,
                control,
                format!("{n:064x}"),
                &raw[1..raw.len() - 2],
                at,
                case_id
            ])?;
            let event_id = format!("seed-event-{n:010}");
            let body = format!(
                "{{\"specversion\":\"1.0\",\"id\":\"{event_id}\",\"source\":\"ehr-gateway/seed\",\
                 \"type\":\"case.updated\",\"subject\":\"{case_id}\",\"data\":{{\"filler\":\"{filler}\"}}}}"
            );
            event.execute(params![event_id, case_id, seq as i64, n as i64, body, at])?;
            attempt.execute(params![event_id, at])?;
        }
    }
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

fn write_config(dir: &Path, mllp: u16) -> PathBuf {
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
retention_days = 30
max_size_mb = 1000000
[logging]
format = "json"
level = "warn,ehr_gateway=info"
[shutdown]
grace_period_ms = 2000
[[hl7v2.listeners]]
listen = "127.0.0.1:{mllp}"
profile = "epic"
[forward]
sink = "file"
[forward.file]
dir = "{dir}/outbox"
"#,
            mappings = toml_path(&support::repo_root().join("mappings")),
            dir = toml_path(dir),
        ),
    )
    .expect("config");
    config
}

/// Phases of the run, as the load tasks tag each ACK.
const WARMUP: u8 = 0;
const BASELINE: u8 = 1;
const PRUNE: u8 = 2;
/// After the last seeded row went: free pages given back, WAL truncated.
const RECLAIM: u8 = 3;
const AFTER: u8 = 4;

#[derive(Default)]
struct Samples {
    by_phase: [Vec<u64>; 5],
}

#[derive(serde::Serialize)]
struct Report {
    rows_seeded: u64,
    seed_secs: f64,
    connections: usize,
    baseline: Latency,
    /// Row steps and reclaim together.
    prune: Latency,
    /// Row steps only (until the last seeded message is gone).
    prune_rows: Latency,
    /// Giving free pages back (`incremental_vacuum`) and the WAL truncate.
    prune_reclaim: Latency,
    after: Latency,
    prune_rows_secs: f64,
    p99_ratio: f64,
    p50_ratio: f64,
    prune_secs: f64,
    rows_per_sec: f64,
    wal_max_bytes_prune: u64,
    wal_max_bytes_baseline: u64,
    store_bytes_before: u64,
    store_bytes_after: u64,
    retention_log: Option<serde_json::Value>,
    acked: u64,
    not_aa: u64,
}

#[tokio::main]
async fn main() {
    let args = args();
    let holder;
    let root: PathBuf = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).expect("dir");
            dir.clone()
        }
        None => {
            holder = tempfile::tempdir_in(std::env::var_os("TMPDIR").unwrap_or("/tmp".into()))
                .expect("temp dir");
            holder.path().to_path_buf()
        }
    };
    support::use_private_copy(&root);
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let db = data.join("gateway.sqlite");
    println!(
        "prune bench: {} seeded rows, {CONNECTIONS} MLLP connections, store under {}",
        args.rows,
        root.display()
    );

    // 1. Seed: the schema from the store itself, rows by direct SQL.
    let started = Instant::now();
    let store = gateway_store::Store::open(&db, gateway_store::StoreOptions::default())
        .await
        .expect("create the store");
    drop(store);
    let template = support::epic_template();
    tokio::task::spawn_blocking({
        let db = db.clone();
        let rows = args.rows;
        let template = template.clone();
        move || seed(&db, rows, &template)
    })
    .await
    .expect("seed task")
    .expect("seed the store");
    let seed_secs = started.elapsed().as_secs_f64();
    let store_before = file_len(&db);
    println!(
        "seeded {} rows in {seed_secs:.1} s; store {:.0} MB",
        args.rows,
        store_before as f64 / 1e6
    );

    // 2. + 3. The daemon under steady load; retention starts a minute in.
    let port = free_port();
    let config = write_config(&root, port);
    let log = root.join("daemon.log");
    let _ = std::fs::remove_file(&log);
    let daemon = Daemon::start(&config, Some(&log));
    assert!(
        wait_for_port(port, Duration::from_secs(300)).await,
        "the daemon never listened"
    );
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Samples::default()));
    let acked = Arc::new(AtomicU64::new(0));
    let not_aa = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let template = Arc::new(template);
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (phase, stop, samples, acked, not_aa, next, template) = (
            phase.clone(),
            stop.clone(),
            samples.clone(),
            acked.clone(),
            not_aa.clone(),
            next.clone(),
            template.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut local: [Vec<u64>; 5] = Default::default();
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let frame = framed(&template, &format!("PRUNE{n:09}"), &format!("PO{n:09}"));
                let p = phase.load(Ordering::Relaxed);
                let sent = Instant::now();
                let code = support::exchange(&mut stream, &frame)
                    .await
                    .expect("MLLP exchange");
                let took = sent.elapsed().as_micros() as u64;
                if code == "AA" {
                    acked.fetch_add(1, Ordering::Relaxed);
                } else {
                    not_aa.fetch_add(1, Ordering::Relaxed);
                }
                // An exchange that straddles a phase change counts for the
                // later phase (the prune may have delayed it).
                let p = p.max(phase.load(Ordering::Relaxed));
                local[p as usize].push(took);
            }
            let mut all = samples.lock().unwrap_or_else(|p| p.into_inner());
            for (i, v) in local.into_iter().enumerate() {
                all.by_phase[i].extend(v);
            }
        }));
    }

    // The monitor: phases, WAL size, the retention log line.
    let wal = data.join("gateway.sqlite-wal");
    let reader = Connection::open(&db).expect("monitor connection");
    reader
        .busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let warmup_until = Instant::now() + Duration::from_secs(5);
    let mut wal_max_prune = 0u64;
    let mut wal_max_base = 0u64;
    let mut prune_started: Option<Instant> = None;
    let mut prune_secs = 0.0;
    let mut retention_log = None;
    let mut after_until: Option<Instant> = None;
    let mut rows_secs = 0.0;
    let hard_limit = Instant::now() + Duration::from_secs(3 * 3600);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Instant::now();
        let current = phase.load(Ordering::Relaxed);
        if current == WARMUP && now >= warmup_until {
            phase.store(BASELINE, Ordering::Relaxed);
        }
        let w = file_len(&wal);
        match phase.load(Ordering::Relaxed) {
            BASELINE => wal_max_base = wal_max_base.max(w),
            PRUNE | RECLAIM => wal_max_prune = wal_max_prune.max(w),
            _ => {}
        }
        if prune_started.is_none() {
            let first: Option<i64> = reader
                .query_row("SELECT min(id) FROM messages", [], |r| r.get(0))
                .unwrap_or(Some(1));
            if first.is_some_and(|id| id > 1) || first.is_none() {
                prune_started = Some(now);
                phase.store(PRUNE, Ordering::Relaxed);
                println!("prune started (first seeded message gone)");
            }
        } else if after_until.is_none() {
            if phase.load(Ordering::Relaxed) == PRUNE {
                let first: Option<i64> = reader
                    .query_row("SELECT min(id) FROM messages", [], |r| r.get(0))
                    .unwrap_or(Some(1));
                if first.is_none_or(|id| id > args.rows as i64) {
                    rows_secs = prune_started.map_or(0.0, |s| s.elapsed().as_secs_f64());
                    phase.store(RECLAIM, Ordering::Relaxed);
                    println!("row steps done after {rows_secs:.1} s; reclaiming");
                }
            }
            if let Some(line) = retention_done(&log) {
                prune_secs = prune_started.map_or(0.0, |s| s.elapsed().as_secs_f64());
                retention_log = Some(line);
                phase.store(AFTER, Ordering::Relaxed);
                after_until = Some(now + Duration::from_secs(10));
                println!("retention pass done after {prune_secs:.1} s");
            }
        } else if after_until.is_some_and(|t| now >= t) {
            break;
        }
        assert!(now < hard_limit, "the prune did not finish in 3 hours");
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("load task");
    }
    daemon.stop();
    let store_after = file_len(&db);
    let samples = samples.lock().unwrap_or_else(|p| p.into_inner());
    let baseline = Latency::of(&samples.by_phase[BASELINE as usize]);
    let prune_rows = Latency::of(&samples.by_phase[PRUNE as usize]);
    let prune_reclaim = Latency::of(&samples.by_phase[RECLAIM as usize]);
    let both: Vec<u64> = samples.by_phase[PRUNE as usize]
        .iter()
        .chain(&samples.by_phase[RECLAIM as usize])
        .copied()
        .collect();
    let prune = Latency::of(&both);
    let after = Latency::of(&samples.by_phase[AFTER as usize]);
    let report = Report {
        rows_seeded: args.rows,
        seed_secs,
        connections: CONNECTIONS,
        baseline,
        prune,
        prune_rows,
        prune_reclaim,
        after,
        prune_rows_secs: rows_secs,
        p99_ratio: prune.p99_ms / baseline.p99_ms.max(f64::MIN_POSITIVE),
        p50_ratio: prune.p50_ms / baseline.p50_ms.max(f64::MIN_POSITIVE),
        prune_secs,
        rows_per_sec: args.rows as f64 / prune_secs.max(f64::MIN_POSITIVE),
        wal_max_bytes_prune: wal_max_prune,
        wal_max_bytes_baseline: wal_max_base,
        store_bytes_before: store_before,
        store_bytes_after: store_after,
        retention_log,
        acked: acked.load(Ordering::Relaxed),
        not_aa: not_aa.load(Ordering::Relaxed),
    };
    let json = serde_json::to_string_pretty(&report).expect("report JSON");
    println!("{json}");
    if let Some(path) = &args.json {
        std::fs::write(path, &json).expect("write the JSON report");
    }
    println!();
    println!("| phase | ACKs | p50 ms | p99 ms | max ms | WAL max MB |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, l, w) in [
        ("no prune (baseline)", baseline, Some(wal_max_base)),
        ("prune (rows + reclaim)", prune, Some(wal_max_prune)),
        ("  row steps", prune_rows, None),
        ("  reclaim + WAL truncate", prune_reclaim, None),
        ("10 s after the prune", after, None),
    ] {
        println!(
            "| {name} | {} | {:.2} | {:.2} | {:.2} | {} |",
            l.count,
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            w.map_or("".to_owned(), |w| format!("{:.1}", w as f64 / 1e6))
        );
    }
    println!(
        "\np99 during the prune / without: {:.2}×; p50 {:.2}×; {} rows pruned in {:.1} s ({:.0} rows/s); \
         store {:.0} MB → {:.0} MB",
        report.p99_ratio,
        report.p50_ratio,
        args.rows,
        prune_secs,
        report.rows_per_sec,
        store_before as f64 / 1e6,
        store_after as f64 / 1e6
    );
    assert_eq!(report.not_aa, 0, "some ACKs were not AA");
}

/// The daemon's "Retention pass done." log line, once written.
fn retention_done(log: &Path) -> Option<serde_json::Value> {
    let file = std::fs::File::open(log).ok()?;
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains("Retention pass done"))
        .find_map(|l| serde_json::from_str(&l).ok())
}

//! Store commit throughput: sequential single commits vs. group commit.
//!
//! ```text
//! cargo run --release -p gateway-store --bin store-bench [-- --secs 3 --dir /tmp]
//! ```
//!
//! Each scenario opens a fresh store file and, for `--secs` seconds, commits
//! synthetic accepted inbound messages (~1.5 KB raw, case upsert + event, each
//! durable with `synchronous=FULL`) from N concurrent callers. The baseline is
//! sequential: one caller, `batch_max = 1` (one transaction and fsync per
//! commit). Ratios are against that baseline measured in the same run; the
//! last row (64 callers, `batch_max = 1`) shows the gain comes from grouping,
//! not from concurrency.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gateway_core::Case;
use gateway_core::case::CaseSource;
use gateway_store::{InboundOutcome, NewInbound, Store, StoreOptions};

struct Scenario {
    name: &'static str,
    writers: usize,
    batch_max: usize,
}

struct Measured {
    commits: u64,
    secs: f64,
    p50_us: u128,
    p99_us: u128,
    per_txn: f64,
}

fn main() -> std::process::ExitCode {
    let mut secs = 3.0f64;
    let mut dir = std::env::temp_dir();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secs" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => secs = v,
                None => return usage(),
            },
            "--dir" => match args.next() {
                Some(v) => dir = PathBuf::from(v),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let scenarios = [
        Scenario {
            name: "sequential, 1 caller, no grouping (baseline)",
            writers: 1,
            batch_max: 1,
        },
        Scenario {
            name: "group commit, 1 writer",
            writers: 1,
            batch_max: 256,
        },
        Scenario {
            name: "group commit, 16 writers",
            writers: 16,
            batch_max: 256,
        },
        Scenario {
            name: "group commit, 64 writers",
            writers: 64,
            batch_max: 256,
        },
        Scenario {
            name: "no grouping, 64 writers (batch_max=1)",
            writers: 64,
            batch_max: 1,
        },
    ];
    let work = dir.join(format!("store-bench-{}", std::process::id()));
    let mut results = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let path = work.join(format!("bench-{i}.db"));
        match rt.block_on(run(&path, s, Duration::from_secs_f64(secs))) {
            Ok(m) => results.push(m),
            Err(e) => {
                eprintln!("{}: {e}", s.name);
                let _ = std::fs::remove_dir_all(&work);
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let base = results[0].commits as f64 / results[0].secs;
    println!(
        "{:<48} {:>10} {:>12} {:>8} {:>10} {:>10} {:>10}",
        "scenario", "commits", "commits/s", "ratio", "p50 µs", "p99 µs", "per txn"
    );
    for (s, m) in scenarios.iter().zip(&results) {
        let rate = m.commits as f64 / m.secs;
        println!(
            "{:<48} {:>10} {:>12.0} {:>7.2}x {:>10} {:>10} {:>10.1}",
            s.name,
            m.commits,
            rate,
            rate / base,
            m.p50_us,
            m.p99_us,
            m.per_txn
        );
    }
    std::process::ExitCode::SUCCESS
}

fn usage() -> std::process::ExitCode {
    eprintln!("usage: store-bench [--secs SECONDS] [--dir DIRECTORY]");
    std::process::ExitCode::from(2)
}

fn message(writer: usize, i: u64) -> NewInbound {
    let control = format!("W{writer}-{i}");
    let source = CaseSource {
        adapter: "hl7v2".to_owned(),
        profile: "epic".to_owned(),
        message_type: Some("ORM^O01".to_owned()),
        control_id: Some(control.clone()),
        sender: Some("BENCH^TEST".to_owned()),
        received_at: "2026-11-22T10:00:00Z".to_owned(),
    };
    let key = format!("bench:{writer}:{}", i % 64);
    let case = Case::new(
        gateway_core::ids::case_id("mso-demo", &key),
        "mso-demo",
        source,
    );
    let mut raw = format!("MSH|^~\\&|BENCH|TEST|||||ORM^O01|{control}|P|2.5\r").into_bytes();
    raw.resize(1536, b'X');
    NewInbound {
        adapter: "hl7v2".to_owned(),
        profile: "epic".to_owned(),
        sender: Some("BENCH^TEST".to_owned()),
        control_id: Some(control),
        message_type: Some("ORM^O01".to_owned()),
        raw,
        received_at: "2026-11-22T10:00:00Z".to_owned(),
        peer: None,
        outcome: InboundOutcome::Accepted {
            case: Box::new(case),
            event_type: None,
        },
        replay_of: None,
    }
}

async fn run(
    path: &std::path::Path,
    scenario: &Scenario,
    duration: Duration,
) -> Result<Measured, gateway_store::StoreError> {
    let store = Store::open(
        path,
        StoreOptions {
            batch_max: scenario.batch_max,
            ..StoreOptions::default()
        },
    )
    .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..scenario.writers {
        let store = store.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                store.commit_inbound(message(w, i)).await?;
                latencies.push(t.elapsed().as_micros());
                i += 1;
            }
            Ok::<_, gateway_store::StoreError>(latencies)
        }));
    }
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => latencies.extend(l),
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                return Err(gateway_store::StoreError::Io {
                    context: "benchmark writer",
                    message: e.to_string(),
                });
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = store.commit_stats();
    store.close().await;
    latencies.sort_unstable();
    let pct = |p: f64| -> u128 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[((latencies.len() - 1) as f64 * p) as usize]
    };
    Ok(Measured {
        commits: latencies.len() as u64,
        secs,
        p50_us: pct(0.5),
        p99_us: pct(0.99),
        per_txn: stats.requests as f64 / stats.transactions.max(1) as f64,
    })
}

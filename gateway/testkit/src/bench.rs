//! Measuring helpers for the intake benches (`hl7v2` `stages`/`mllp`, `x12`
//! `parse_map`, `fhir` `bundle_to_case`), so that every adapter's figures
//! are CPU time per message taken the same way.
//!
//! CPU time rather than wall time because the benches run on 2 shared cores:
//! a stage's wall-clock rate swings with whatever else runs, the CPU it burns
//! does not. Single-thread stages read the calling thread's clock; stages
//! that involve the store writer thread and the runtime read the whole
//! process's. Linux only (`/proc`); elsewhere the CPU figures are 0.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_store::{CommitStats, Store};

/// CPU time (ns) used so far by the threads of process `pid` (`"self"` for
/// this one) whose name passes `keep`, from `/proc/PID/task/*/schedstat`.
/// Threads that already exited are not counted, so callers keep their
/// threads alive across a measurement.
pub fn cpu_ns(pid: &str, keep: impl Fn(&str) -> bool) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut total = 0;
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if keep(name.trim()) {
            total += schedstat_ns(&dir.join("schedstat"));
        }
    }
    total
}

/// CPU time (ns) of the calling thread so far.
pub fn thread_cpu_ns() -> u64 {
    schedstat_ns(std::path::Path::new("/proc/thread-self/schedstat"))
}

/// The first field of a `schedstat` file: time spent on the CPU, in ns.
fn schedstat_ns(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0)
}

/// The runtime the benches run the store and the pipeline on: two worker
/// threads named `gateway`, as the daemon's, kept alive across stages (CPU
/// is read per thread, so a thread that exited would take its time along).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("gateway")
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .expect("bench runtime")
}

/// How the store's writer batched the `items` of a stage since `before`:
/// write requests per item and per COMMIT (one fsync each).
pub fn commit_note(store: &Store, before: CommitStats, items: usize) -> String {
    let after = store.commit_stats();
    let transactions = after.transactions - before.transactions;
    let requests = after.requests - before.requests;
    if transactions == 0 {
        return String::new();
    }
    format!(
        "{:.1} store writes per item, {:.1} per commit",
        requests as f64 / items.max(1) as f64,
        requests as f64 / transactions as f64
    )
}

/// One measured stage.
#[derive(Debug, Clone)]
pub struct Row {
    /// What ran.
    pub name: String,
    /// CPU µs per item.
    pub cpu_us: f64,
    /// Items per second of wall time (noisy on a shared machine).
    pub per_s: f64,
    /// Anything to say (failures, commit batching).
    pub note: String,
}

impl Row {
    /// Appends [`commit_note`] for the stage's `items` since `before`.
    pub fn note_commits(&mut self, store: &Store, before: CommitStats, items: usize) {
        self.note = format!("{} {}", self.note, commit_note(store, before, items));
    }
}

/// Runs `f` once per item on this thread (after a warm-up on the first
/// 50); CPU µs per call from the thread's clock.
pub fn single<I, T>(name: &str, items: &[I], mut f: impl FnMut(&I) -> T) -> Row {
    for item in items.iter().take(50) {
        black_box(f(item));
    }
    let c0 = thread_cpu_ns();
    let t0 = Instant::now();
    for item in items {
        black_box(f(item));
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (thread_cpu_ns() - c0) as f64 / 1000.0;
    Row {
        name: name.to_owned(),
        cpu_us: cpu / items.len().max(1) as f64,
        per_s: items.len() as f64 / wall,
        note: String::new(),
    }
}

/// Runs every item through `f` with `conc` concurrent tasks on the current
/// tokio runtime; CPU µs per item from the whole process's clock. `f`
/// answers whether the item went through as expected; the others are
/// counted in the row's note.
pub async fn concurrent<T, F, Fut>(name: &str, items: Vec<T>, conc: usize, f: F) -> Row
where
    T: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let n = items.len();
    let conc = conc.max(1);
    let f = Arc::new(f);
    let mut chunks: Vec<Vec<T>> = (0..conc).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        chunks[i % conc].push(item);
    }
    let c0 = cpu_ns("self", |_| true);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = 0usize;
            for item in chunk {
                if !f(item).await {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += task.await.unwrap_or(1);
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ns("self", |_| true) - c0) as f64 / 1000.0;
    Row {
        name: name.to_owned(),
        cpu_us: cpu / n.max(1) as f64,
        per_s: n as f64 / wall,
        note: if failed > 0 {
            format!("{failed} failed")
        } else {
            String::new()
        },
    }
}

/// Prints `rows` as a Markdown table, each row's CPU also as a multiple of
/// the `baseline` row's (measured in the same run). `unit` names an item
/// (`msg`, `interchange`, `bundle`).
pub fn print_table(rows: &[Row], baseline: usize, unit: &str) {
    let base = rows.get(baseline).map(|r| r.cpu_us).unwrap_or(0.0);
    let base_name = rows.get(baseline).map(|r| r.name.as_str()).unwrap_or("");
    println!();
    println!("| stage | CPU µs/{unit} | × {base_name} | {unit}/s (wall, noisy) | note |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for r in rows {
        let times = if base > 0.0 { r.cpu_us / base } else { 0.0 };
        println!(
            "| {} | {:.1} | {:.1} | {:.0} | {} |",
            r.name,
            r.cpu_us,
            times,
            r.per_s,
            r.note.trim()
        );
    }
}

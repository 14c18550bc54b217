//! kill -9 at random moments loses nothing that was acknowledged.
//!
//! A child process (`store-crash-child`) appends from 16 concurrent writers and
//! prints each receipt only after its commit returned. The parent SIGKILLs it
//! at a random moment, reopens the same file and checks every printed receipt:
//! the message is there with its control id, and its case event exactly once.
//! Repeated on the same file, so recovery after recovery is exercised too.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway_store::{MessageFilter, Reader, Store, StoreOptions};
use rand::Rng;

const ITERATIONS: usize = 25;

#[test]
fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.db");
    let exe = env!("CARGO_BIN_EXE_store-crash-child");
    let mut rng = rand::rng();
    let mut total_acked = 0usize;
    let started = Instant::now();
    // Create and migrate the file first, so even a kill before the child's
    // first commit leaves a store to reopen.
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let store = Store::open(&path, StoreOptions::default())
            .await
            .expect("create");
        store.close().await;
    });
    for _ in 0..ITERATIONS {
        let mut child = Command::new(exe)
            .arg(&path)
            .arg("16")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the crash child");
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut buf = BufReader::new(stdout);
            loop {
                let mut line = String::new();
                match buf.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    // Only complete lines are receipts; a torn last line is not.
                    Ok(_) if line.ends_with('\n') => lines.push(line),
                    Ok(_) => break,
                }
            }
            lines
        });
        // Kill at a random moment: sometimes while the child is still opening
        // the store, mostly in the middle of concurrent group commits.
        std::thread::sleep(Duration::from_millis(rng.random_range(5..250)));
        // WAL: another process reads while the child writes.
        let live = Reader::open(&path).expect("read while the child writes");
        live.list_messages(&MessageFilter::default())
            .expect("list while the child writes");
        live.outbox_stats().expect("stats while the child writes");
        drop(live);
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        assert!(!status.success());
        let lines = reader.join().expect("reader thread");

        let reader = Reader::open(&path).expect("reopen after kill -9");
        for line in &lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(parts.len(), 4, "receipt line {line:?}");
            assert_eq!(parts[0], "ACK");
            let id: i64 = parts[1].parse().expect("message id");
            let message = reader
                .get_message(id)
                .expect("get")
                .unwrap_or_else(|| panic!("acknowledged message {id} lost"));
            assert_eq!(message.summary.control_id.as_deref(), Some(parts[3]));
            let events = reader.message_events(id).expect("events");
            assert_eq!(events.len(), 1, "message {id} has exactly one event");
            assert_eq!(events[0].id, parts[2]);
        }
        total_acked += lines.len();
    }
    // Every stored message has its event exactly once and sequences per case
    // are contiguous, also for commits that landed without being printed.
    let reader = Reader::open(&path).expect("open");
    let messages = reader
        .list_messages(&MessageFilter {
            after_id: Some(0),
            limit: Some(10_000),
            ..Default::default()
        })
        .expect("list");
    assert!(messages.len() >= total_acked);
    let events = reader.list_events(None, 1_000_000).expect("events");
    assert_eq!(
        events.len(),
        messages.len(),
        "one event per accepted message"
    );
    let mut per_case: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for e in &events {
        per_case
            .entry(e.case_id.clone())
            .or_default()
            .push(e.sequence);
    }
    for (c, mut seqs) in per_case {
        seqs.sort();
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "case {c}"
        );
    }
    assert!(
        total_acked > ITERATIONS,
        "the children committed work ({total_acked})"
    );
    // And the store still opens for writing.
    rt.block_on(async {
        let store = Store::open(&path, StoreOptions::default())
            .await
            .expect("open");
        store.close().await;
    });
    eprintln!(
        "kill -9: {ITERATIONS} runs, {total_acked} acknowledged commits verified in {:?}",
        started.elapsed()
    );
}

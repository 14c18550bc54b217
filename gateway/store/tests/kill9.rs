//! kill -9 at random moments loses nothing that was acknowledged.
//!
//! A child process (`store-crash-child`) appends from 16 concurrent writers and
//! prints each receipt only after its commit returned. The parent SIGKILLs it
//! at a random moment, reopens the same file and checks every printed receipt:
//! the message is there with its control id, and its case event exactly once.
//! Repeated on the same file, so recovery after recovery is exercised too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway_core::Case;
use gateway_core::case::CaseSource;
use gateway_store::{InboundOutcome, MessageFilter, NewInbound, Reader, Store, StoreOptions};
use rand::Rng;

const ITERATIONS: usize = 25;

/// Messages committed before the kill cycles when `KILL9_SEED` is set (for a
/// run that proves the final check copes with a store of any size).
fn seed_from_env() -> usize {
    std::env::var("KILL9_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

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
        seed(&store, seed_from_env(), "seed").await;
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
    // are contiguous, also for commits that landed without being printed. The
    // check visits the whole store, however many messages the children managed.
    let reader = Reader::open(&path).expect("open");
    let whole = check_whole_store(&reader).unwrap_or_else(|e| panic!("store damaged: {e}"));
    assert!(
        whole.messages >= total_acked,
        "{} messages stored, {total_acked} acknowledged",
        whole.messages
    );
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
        "kill -9: {ITERATIONS} runs, {total_acked} acknowledged commits verified in {:?}; \
         whole store: {} messages, {} events, {} cases",
        started.elapsed(),
        whole.messages,
        whole.events,
        whole.cases
    );
}

/// The final check must catch a damaged store wherever the damage is, also
/// past the 10 000 rows a single listing returns: a store of 10 050 messages
/// passes, then loses one event (then one message) after the 10 000th and must
/// fail, and passes again once the row is put back.
#[test]
fn whole_store_check_finds_damage_past_ten_thousand_rows() {
    const MESSAGES: usize = 10_050;
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.db");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    rt.block_on(async {
        let store = Store::open(&path, StoreOptions::default())
            .await
            .expect("create");
        seed(&store, MESSAGES, "damage").await;
        store.close().await;
    });
    let whole = check_whole_store(&Reader::open(&path).expect("open")).expect("intact store");
    assert_eq!(whole.messages, MESSAGES);
    assert_eq!(whole.events, MESSAGES);

    let conn = rusqlite::Connection::open(&path).expect("raw connection");
    // Damage as a lost row would: nothing cascades to the rows that refer to it.
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .expect("foreign keys off");
    let late: i64 = conn
        .query_row(
            "SELECT id FROM messages ORDER BY id LIMIT 1 OFFSET 10020",
            [],
            |r| r.get(0),
        )
        .expect("a message past the 10 000th");
    for (table, key) in [("events", "message_id"), ("messages", "id")] {
        conn.execute_batch(&format!(
            "CREATE TEMP TABLE saved AS SELECT * FROM {table} WHERE {key} = {late};
             DELETE FROM {table} WHERE {key} = {late};"
        ))
        .expect("damage");
        let damaged = check_whole_store(&Reader::open(&path).expect("open"));
        let error = damaged.expect_err("the check must fail on a store missing a row");
        eprintln!("damaged {table}: the check says {error:?}");
        assert!(
            error.contains(&format!("message {late}")),
            "the failure names message {late}: {error}"
        );
        conn.execute_batch(&format!(
            "INSERT INTO {table} SELECT * FROM saved; DROP TABLE saved;"
        ))
        .expect("restore");
        check_whole_store(&Reader::open(&path).expect("open")).expect("restored store");
    }
}

/// What the whole-store check counted.
#[derive(Debug)]
struct WholeStore {
    messages: usize,
    events: usize,
    cases: usize,
}

/// Visits every message and every event, page by page (no cap on the store's
/// size): each message has exactly one event, each event's message exists,
/// and each case's sequences run 1, 2, 3, … without a gap.
fn check_whole_store(reader: &Reader) -> Result<WholeStore, String> {
    let mut messages: HashSet<i64> = HashSet::new();
    let mut after = 0;
    loop {
        let page = reader
            .list_messages(&MessageFilter {
                after_id: Some(after),
                limit: Some(10_000),
                ..Default::default()
            })
            .map_err(|e| format!("listing messages: {e}"))?;
        let Some(last) = page.last() else { break };
        after = last.id;
        messages.extend(page.iter().map(|m| m.id));
    }
    let mut events_per_message: HashMap<i64, usize> = HashMap::new();
    let mut per_case: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut events = 0;
    let mut after: Option<String> = None;
    loop {
        let page = reader
            .events_page(after.as_deref(), 10_000)
            .map_err(|e| format!("listing events: {e}"))?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for e in &page {
            events += 1;
            let message = e
                .message_id
                .ok_or_else(|| format!("event {} has no message", e.id))?;
            if !messages.contains(&message) {
                return Err(format!(
                    "event {} names message {message}, which is missing",
                    e.id
                ));
            }
            *events_per_message.entry(message).or_default() += 1;
            per_case
                .entry(e.case_id.clone())
                .or_default()
                .push(e.sequence);
        }
    }
    for id in &messages {
        match events_per_message.get(id).copied().unwrap_or(0) {
            1 => {}
            n => return Err(format!("message {id} has {n} events, not one")),
        }
    }
    let cases = per_case.len();
    for (case, mut seqs) in per_case {
        seqs.sort_unstable();
        if seqs != (1..=seqs.len() as i64).collect::<Vec<_>>() {
            return Err(format!("case {case} has sequences {seqs:?}"));
        }
    }
    Ok(WholeStore {
        messages: messages.len(),
        events,
        cases,
    })
}

/// Commits `count` accepted messages shaped like the crash child's (a few
/// cases per writer, so sequences grow), from 32 concurrent writers.
async fn seed(store: &Store, count: usize, tag: &str) {
    const WRITERS: usize = 32;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let store = store.clone();
        let tag = tag.to_owned();
        tasks.spawn(async move {
            for i in (w..count).step_by(WRITERS) {
                let control = format!("{tag}-W{w}-{i}");
                let source = CaseSource {
                    adapter: "hl7v2".to_owned(),
                    profile: "epic".to_owned(),
                    message_type: Some("ORM^O01".to_owned()),
                    control_id: Some(control.clone()),
                    sender: Some("SEED^TEST".to_owned()),
                    received_at: "2026-11-22T10:00:00Z".to_owned(),
                };
                let key = format!("{tag}:{w}:{}", i % 4);
                let case = Case::new(
                    gateway_core::ids::case_id("mso-demo", &key),
                    "mso-demo",
                    source,
                );
                store
                    .commit_inbound(NewInbound {
                        adapter: "hl7v2".to_owned(),
                        profile: "epic".to_owned(),
                        sender: Some("SEED^TEST".to_owned()),
                        control_id: Some(control.clone()),
                        message_type: Some("ORM^O01".to_owned()),
                        raw: format!("MSH|^~\\&|SEED|TEST|||||ORM^O01|{control}|P|2.5")
                            .into_bytes(),
                        received_at: "2026-11-22T10:00:00Z".to_owned(),
                        peer: None,
                        outcome: InboundOutcome::Accepted {
                            case: Box::new(case),
                            event_type: None,
                        },
                        replay_of: None,
                    })
                    .await
                    .expect("seed commit");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("seed writer");
    }
}

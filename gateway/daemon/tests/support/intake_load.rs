//! Helpers for the store-full and outage tests: synthetic ~1.2 KB orders over
//! MLLP, the store's counted size read from the file, the whole-store check,
//! and delivery counts per CloudEvents id at the loopback platform.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use gateway_testkit::platform::PlatformReceiver;

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The shipped Epic order as a new order `n` with control id `control`,
/// padded with a synthetic note to about 1.2 KB; `enhanced` asks for
/// enhanced-mode acknowledgements (MSH-15 = AL).
pub fn order(n: u32, control: &str, enhanced: bool) -> Vec<u8> {
    let sample = String::from_utf8(super::epic_order()).expect("utf-8 sample");
    let mut text = sample
        .replace("|EPIC0001|P|2.5.1", &format!("|{control}|P|2.5.1"))
        .replace("EP5001", &format!("OUT{n:06}"));
    if enhanced {
        text = text.replacen(
            &format!("|{control}|P|2.5.1"),
            &format!("|{control}|P|2.5.1|||AL|NE"),
            1,
        );
    }
    let mut text = text.trim_end_matches(['\r', '\n']).to_owned();
    text.push_str("\rNTE|2||");
    text.push_str(&"Synthetic padding note for sizing tests. ".repeat(12));
    text.push('\r');
    text.into_bytes()
}

/// One MLLP connection to the daemon's listener.
pub struct Mllp {
    stream: TcpStream,
}

impl Mllp {
    /// Connects to `127.0.0.1:port`, retrying while the listener starts.
    pub fn connect(port: u16) -> Mllp {
        let deadline = Instant::now() + Duration::from_secs(30);
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "MLLP listener: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        Mllp { stream }
    }

    /// Sends one framed message; returns the ACK's text.
    pub fn send(&mut self, payload: &[u8]) -> String {
        let mut frame = vec![0x0B];
        frame.extend_from_slice(payload);
        frame.extend_from_slice(&[0x1C, 0x0D]);
        self.stream.write_all(&frame).expect("send");
        let mut ack = Vec::new();
        let mut chunk = [0u8; 4096];
        while !ack.ends_with(&[0x1C, 0x0D]) {
            let n = self.stream.read(&mut chunk).expect("an ACK");
            assert!(n > 0, "the connection closed without an ACK");
            ack.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&ack).into_owned()
    }
}

/// The ACK's ERR segments, joined.
pub fn err_segments(ack: &str) -> String {
    ack.split(['\r', '\n'])
        .filter(|l| l.starts_with("ERR|"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the store's size budget counts, read from the file: live pages
/// minus the audit log's (the same figure the daemon measures).
pub fn counted_bytes(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the store read-only");
    let (pages, free, size): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT page_count FROM pragma_page_count()),
                    (SELECT freelist_count FROM pragma_freelist_count()),
                    (SELECT page_size FROM pragma_page_size())",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("page counts");
    let audit: i64 = conn
        .query_row(
            "SELECT coalesce(sum(pgsize), 0) FROM dbstat
             WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name = 'audit_log')",
            [],
            |r| r.get(0),
        )
        .expect("audit pages");
    ((pages - free) * size - audit).max(0) as u64
}

/// The whole-store check: intact, every accepted message has its case event
/// and every event its case; returns the control ids of the accepted
/// messages stored.
pub fn whole_store(db: &Path) -> BTreeSet<String> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the store read-only");
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(verdict, "ok");
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages m WHERE m.state = 'accepted'
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.id)",
            [],
            |r| r.get(0),
        )
        .expect("orphans");
    assert_eq!(orphans, 0, "an accepted message without its case event");
    let caseless: i64 = conn
        .query_row(
            "SELECT count(*) FROM events e
               WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.case_id = e.case_id)",
            [],
            |r| r.get(0),
        )
        .expect("caseless");
    assert_eq!(caseless, 0, "a case event without its case");
    let mut st = conn
        .prepare("SELECT control_id FROM messages WHERE state = 'accepted'")
        .expect("prepare");
    st.query_map([], |r| r.get::<_, Option<String>>(0))
        .expect("query")
        .filter_map(|c| c.expect("row"))
        .collect()
}

/// Per CloudEvents id, how many requests carrying it the platform answered
/// 202 (single events and batches).
pub fn deliveries_per_id(platform: &PlatformReceiver) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = BTreeMap::new();
    for r in platform.requests().into_iter().filter(|r| r.status == 202) {
        let ids: Vec<String> = if r.batch.is_empty() {
            r.ce_id.into_iter().collect()
        } else {
            r.batch
                .iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect()
        };
        for id in ids {
            *out.entry(id).or_default() += 1;
        }
    }
    out
}

/// The control ids (MSH-10) of the accepted events' cases, as delivered.
pub fn delivered_controls(platform: &PlatformReceiver) -> BTreeSet<String> {
    platform
        .accepted()
        .iter()
        .filter_map(|e| {
            e["data"]["source"]["control_id"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// Polls `done` every 25 ms until it holds; panics after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Bytes per table and index (`dbstat`), largest first: what a store holds.
pub fn breakdown(db: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the store read-only");
    let mut st = conn
        .prepare("SELECT name, sum(pgsize) AS b FROM dbstat GROUP BY name ORDER BY b DESC")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

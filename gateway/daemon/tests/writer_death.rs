//! A dead store writer stops the daemon. Without this, a panic on the writer
//! thread left every later write failing with "closed" while the process —
//! and the watchdog it feeds — looked alive.
//!
//! The real daemon runs with a test hook that kills its writer thread after a
//! number of group commits. MLLP messages are sent until the daemon stops
//! answering; it must exit with status 70 (EX_SOFTWARE) on its own. Restarted
//! without the hook, it serves again and every message it acknowledged is in
//! its store.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway_store::{MessageFilter, Reader};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Sends one order with control id `control`; `Some(true)` for an AA,
/// `None` when the daemon did not answer (closed, refused).
fn send(port: u16, control: &str) -> Option<bool> {
    let text = String::from_utf8(support::epic_order())
        .expect("utf-8")
        .replace("|EPIC0001|", &format!("|{control}|"))
        .replace("EP5001", control);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let ack = support::mllp_ack(&mut stream, text.as_bytes())?;
    Some(support::msa_code(&ack) == "AA")
}

fn config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    support::write_config(
        dir,
        &format!("[[hl7v2.listeners]]\nlisten = \"127.0.0.1:{port}\"\nprofile = \"epic\"\n"),
    )
}

#[test]
fn a_dead_writer_stops_the_daemon_and_a_restart_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let config = config(dir.path(), port);
    let mut child = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("EHR_GATEWAY_TEST_WRITER_FAIL_AFTER", "5")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // Wait for the listener.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the MLLP listener never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Send until the daemon stops answering with AA.
    let mut acknowledged = BTreeSet::new();
    let mut n = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the daemon kept running");
        n += 1;
        let control = format!("WD{n:05}");
        if send(port, &control) == Some(true) {
            acknowledged.insert(control);
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(status.code(), Some(70), "exit status {status:?}");
    assert!(!acknowledged.is_empty(), "nothing was acknowledged first");

    // Restarted without the hook: it serves, and nothing acknowledged is lost.
    let daemon = support::Daemon::start(&config);
    assert_eq!(
        send(port, "WD-AFTER"),
        Some(true),
        "serves after the restart"
    );
    let reader = Reader::open(dir.path().join("data/gateway.sqlite")).expect("reader");
    let mut stored = BTreeSet::new();
    let mut after = 0;
    loop {
        let page = reader
            .list_messages(&MessageFilter {
                after_id: Some(after),
                limit: Some(1_000),
                ..Default::default()
            })
            .expect("list");
        let Some(last) = page.last() else { break };
        after = last.id;
        stored.extend(page.into_iter().filter_map(|m| m.control_id));
    }
    let lost: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    drop(daemon);
}

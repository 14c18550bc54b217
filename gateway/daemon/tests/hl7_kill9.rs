//! kill -9 during multi-connection MLLP load against the real daemon binary,
//! repeated: after every restart, each message that got an AA is in the store
//! exactly once (DESIGN.md invariant 1, nothing acknowledged is lost; invariant
//! 3, duplicates are recognised). Senders behave like real interface engines:
//! a message whose ACK never came is sent again, same bytes, after the restart.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_ehr-gateway");
const ROUNDS: usize = 8;
const CLIENTS: usize = 8;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The shared test config plus one MLLP listener for the `epic` profile.
fn write_config(dir: &Path, port: u16) -> PathBuf {
    support::write_config(
        dir,
        &format!("[[hl7v2.listeners]]\nlisten = \"127.0.0.1:{port}\"\nprofile = \"epic\"\n"),
    )
}

/// The daemon, killed with SIGKILL on drop if still running.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path, log: &Path, port: u16) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn daemon");
    let mut daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            panic!("daemon exited during start: {status}");
        }
        assert!(Instant::now() < deadline, "MLLP listener did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

/// The Epic sample order with a given MSH-10 (same bytes for the same id).
fn message(template: &[u8], id: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(template);
    let (msh, rest) = text.split_once('\r').expect("segments end with CR");
    let mut fields: Vec<&str> = msh.split('|').collect();
    fields[9] = id;
    format!("{}\r{}", fields.join("|"), rest).into_bytes()
}

/// Sends one message and reads its ACK: `Some(true)` for AA/CA acknowledging
/// `id`, `Some(false)` for another valid answer, `None` when the connection
/// broke (the daemon was killed) — then the message is in doubt.
fn exchange(stream: &mut TcpStream, payload: &[u8], id: &str) -> Option<bool> {
    let mut out = vec![0x0B];
    out.extend_from_slice(payload);
    out.extend_from_slice(&[0x1C, 0x0D]);
    stream.write_all(&out).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.ends_with(&[0x1C, 0x0D]) {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let msa = text.split(['\r', '\n']).find(|l| l.starts_with("MSA|"))?;
    let f: Vec<&str> = msa.split('|').collect();
    let code = f.get(1).copied().unwrap_or("");
    let ack_id = f.get(2).copied().unwrap_or("");
    assert_eq!(ack_id, id, "ACK for the wrong message");
    Some(code == "AA" || code == "CA")
}

#[test]
fn kill_9_under_mllp_load_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let config = write_config(dir.path(), port);
    let log = dir.path().join("daemon.log");
    let template = support::epic_order();
    let template = gateway_hl7v2::mllp::files::split_messages(&template)
        .into_iter()
        .next()
        .expect("one message");

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    // Per client: the id whose ACK never came (sent again after the restart).
    let in_doubt: Arc<Mutex<BTreeMap<usize, String>>> = Arc::default();
    let mut per_round = Vec::new();

    for round in 0..ROUNDS {
        let mut daemon = start(&config, &log, port);
        let before = acked.lock().expect("lock").len();
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let (acked, in_doubt, template) = (acked.clone(), in_doubt.clone(), template.clone());
            clients.push(std::thread::spawn(move || {
                let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut seq = 0;
                loop {
                    let resend = in_doubt.lock().expect("lock").remove(&c);
                    let id = resend.unwrap_or_else(|| {
                        seq += 1;
                        format!("K{round}C{c}N{seq}")
                    });
                    match exchange(&mut stream, &message(&template, &id), &id) {
                        Some(true) => acked.lock().expect("lock").push(id),
                        Some(false) => {}
                        None => {
                            in_doubt.lock().expect("lock").insert(c, id);
                            return;
                        }
                    }
                }
            }));
        }
        // Kill at a different instant each round, mid-load.
        std::thread::sleep(Duration::from_millis(400 + (173 * round as u64) % 600));
        daemon.0.kill().expect("kill -9");
        let _ = daemon.0.wait();
        for client in clients {
            client.join().expect("client");
        }
        per_round.push(acked.lock().expect("lock").len() - before);
    }

    // One more clean start so recovery runs, then read the store as operators do.
    drop(start(&config, &log, port));
    // Page through the whole store (a listing returns at most 10 000 rows; a
    // fast machine acknowledges more than that).
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    let mut duplicates = 0;
    let mut after = 0i64;
    loop {
        let out = Command::new(BIN)
            .args([
                "messages",
                "list",
                "--json",
                "--limit",
                "10000",
                "--after-id",
            ])
            .arg(after.to_string())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .expect("messages list");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let page = String::from_utf8_lossy(&out.stdout).into_owned();
        if page.trim().is_empty() {
            break;
        }
        for line in page.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            after = after.max(v["id"].as_i64().expect("message id"));
            let id = v["control_id"].as_str().unwrap_or("").to_string();
            if v["state"].as_str() == Some("duplicate") {
                duplicates += 1;
                continue;
            }
            *stored.entry(id).or_default() += 1;
        }
    }
    let acked = acked.lock().expect("lock").clone();
    let unique: BTreeSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "an id was acknowledged twice");
    for (round, n) in per_round.iter().enumerate() {
        assert!(
            *n > 0,
            "round {round} acknowledged nothing: the test proves nothing"
        );
    }
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    let twice: Vec<(&String, &usize)> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    eprintln!(
        "kill -9 x{ROUNDS}: {} acknowledged ({per_round:?} per round), {} stored, {duplicates} resends recognised as duplicates",
        acked.len(),
        stored.len()
    );
}

//! A full disk, end to end, with the real daemon, real MLLP senders and a
//! loopback platform that is down (503) so nothing can be delivered or pruned.
//!
//! Two ways to fill the disk:
//! * always: SQLite's `max_page_count` (the daemon's test hook
//!   `EHR_GATEWAY_TEST_MAX_PAGE_COUNT`) — page allocation fails with
//!   `SQLITE_FULL` exactly as on a full file system; space is freed by
//!   restarting without the limit;
//! * where the kernel lets an unprivileged user namespace mount one
//!   (`unshare -rm`): a real 8 MiB tmpfs holding the store, its WAL and a
//!   ballast file; space is freed by deleting the ballast while the daemon
//!   runs. Skipped with the reason printed where mounting is refused.
//!
//! Both show: MLLP gets the retryable refusal (`AR` with an ERR saying "store
//! full", never `AE`), nothing half-written remains (the whole-store check:
//! every stored accepted message has its event, stored = acknowledged),
//! intake resumes once space is freed, and every acknowledged message is
//! delivered exactly once when the platform returns.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gateway_testkit::platform::{PlatformReceiver, Reply};
use support::Daemon;
use support::intake_load::{
    Mllp, delivered_controls, deliveries_per_id, err_segments, free_port, order, wait_for,
    whole_store,
};

fn config(dir: &Path, platform: &PlatformReceiver, mllp: u16) -> PathBuf {
    let retry = support::Retry {
        poll_ms: 100,
        initial_ms: 100,
        max_ms: 1000,
    };
    support::write_http_forwarding_config(dir, &platform.url(), mllp, retry, "")
}

/// What the senders saw.
#[derive(Default)]
struct Sent {
    acked: BTreeSet<String>,
    refused: usize,
}

/// `connections` senders, each sending orders until its first refusal (or
/// `most` orders); every answer must be AA or a retryable AR saying "store
/// full".
fn send_until_refused(port: u16, tag: &str, connections: usize, most: u32) -> Sent {
    let handles: Vec<_> = (0..connections)
        .map(|c| {
            let tag = tag.to_owned();
            std::thread::spawn(move || {
                let mut mllp = Mllp::connect(port);
                let mut sent = Sent::default();
                for n in 0..most {
                    let control = format!("{tag}-{c}-{n}");
                    let ack = mllp.send(&order(n + 1000 * c as u32, &control, false));
                    match support::msa_code(&ack).as_str() {
                        "AA" => {
                            sent.acked.insert(control);
                        }
                        "AR" => {
                            let err = err_segments(&ack).to_ascii_lowercase();
                            assert!(err.contains("store full"), "ERR says why: {ack}");
                            sent.refused += 1;
                            break;
                        }
                        other => panic!("{control}: {other} is not a retryable refusal: {ack}"),
                    }
                }
                sent
            })
        })
        .collect();
    let mut all = Sent::default();
    for h in handles {
        let s = h.join().expect("sender");
        all.acked.extend(s.acked);
        all.refused += s.refused;
    }
    all
}

/// Sends fresh orders until `n` are acknowledged (refusals are retried, as a
/// sender does); panics after `limit`.
fn send_resuming(port: u16, tag: &str, n: usize, limit: Duration) -> BTreeSet<String> {
    let deadline = std::time::Instant::now() + limit;
    let mut mllp = Mllp::connect(port);
    let mut acked = BTreeSet::new();
    let mut i = 0u32;
    while acked.len() < n {
        assert!(std::time::Instant::now() < deadline, "intake never resumed");
        i += 1;
        let control = format!("{tag}-{i}");
        let ack = mllp.send(&order(500_000 + i, &control, false));
        match support::msa_code(&ack).as_str() {
            "AA" => {
                acked.insert(control);
            }
            "AR" => std::thread::sleep(Duration::from_millis(100)),
            other => panic!("{other}: {ack}"),
        }
    }
    acked
}

/// The platform returns: every acknowledged message is delivered, each
/// CloudEvents id exactly once, and nothing else.
fn assert_delivered_once(platform: &PlatformReceiver, acked: &BTreeSet<String>) {
    platform.clear_rule();
    wait_for(
        "every acknowledged message delivered",
        Duration::from_secs(180),
        || delivered_controls(platform).is_superset(acked),
    );
    let per_id = deliveries_per_id(platform);
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(&delivered_controls(platform), acked);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_page_limit_is_refused_retryably_and_nothing_acknowledged_is_lost() {
    let platform = PlatformReceiver::start().await;
    platform.set_rule(|_| Some(Reply::status(503, "platform down")));
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("data/gateway.sqlite");
    let port = free_port();
    let cfg = config(dir.path(), &platform, port);
    // ~1.2 MiB of pages: an empty store takes ~160 KiB of it.
    let daemon = Daemon::start_with_env(&cfg, &[("EHR_GATEWAY_TEST_MAX_PAGE_COUNT", "300")]);

    let sent = tokio::task::spawn_blocking(move || {
        // One sender to the limit, then eight at once against the full store.
        let mut first = send_until_refused(port, "PG", 1, 5_000);
        assert!(first.acked.len() >= 20, "{} fit", first.acked.len());
        let more = send_until_refused(port, "PG8", 8, 50);
        assert_eq!(more.refused, 8, "every sender refused");
        first.acked.extend(more.acked);
        first
    })
    .await
    .expect("senders");
    let mut acked = sent.acked;
    let stored = whole_store(&db);
    assert_eq!(stored, acked, "stored = acknowledged");

    // Space is freed (restart without the limit): intake resumes, and
    // nothing acknowledged before is lost.
    let mut daemon = daemon;
    daemon.signal("TERM");
    let (code, _) = daemon.wait_exit(Duration::from_secs(60));
    assert_eq!(code, Some(0));
    let daemon = Daemon::start(&cfg);
    let resumed = tokio::task::spawn_blocking(move || {
        send_resuming(port, "PG-AFTER", 10, Duration::from_secs(60))
    })
    .await
    .expect("sender");
    acked.extend(resumed);
    assert_eq!(whole_store(&db), acked);
    let p = &platform;
    let a = acked.clone();
    tokio::task::block_in_place(|| assert_delivered_once(p, &a));
    drop(daemon);
}

/// Mounts an 8 MiB tmpfs on the data directory in a user + mount namespace,
/// fills 3 MiB of it with `ballast`, and runs the daemon there. `Err` (with
/// the reason) where the kernel refuses or the tools are missing.
fn start_on_tmpfs(dir: &Path, cfg: &Path) -> Result<Daemon, String> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let probe = Command::new("unshare")
        .args(["-rm", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs -o size=1m tmpfs '{}'",
            data.display()
        ))
        .output()
        .map_err(|e| format!("unshare is not available: {e}"))?;
    if !probe.status.success() {
        return Err(format!(
            "unshare -rm + tmpfs refused: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    // The checks run inside the namespace with nsenter and Python's sqlite3.
    let tools = Command::new("sh")
        .args(["-c", "command -v nsenter && python3 -c 'import sqlite3'"])
        .output()
        .map_err(|e| format!("sh: {e}"))?;
    if !tools.status.success() {
        return Err("nsenter or python3 with sqlite3 is missing".to_owned());
    }
    let mut command = Command::new("unshare");
    command.args(["-rm", "sh", "-c"]).arg(format!(
        "mount -t tmpfs -o size=8m tmpfs '{data}' && \
         dd if=/dev/zero of='{data}/ballast' bs=1M count=3 2>/dev/null && \
         exec '{bin}' run --config '{cfg}'",
        data = data.display(),
        bin = support::bin(),
        cfg = cfg.display()
    ));
    Ok(Daemon::spawn_command(command))
}

/// The whole-store check of a store that only exists in the daemon's mount
/// namespace: SQLite resolves `/proc/PID/root` as a symbolic link (to our own
/// `/`), so the same queries run inside the namespace (`nsenter` + Python's
/// sqlite3). Returns the stored accepted messages' control ids.
fn whole_store_in_namespace(pid: u32, db: &Path) -> BTreeSet<String> {
    const CHECK: &str = r#"
import sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity"
assert c.execute("""SELECT count(*) FROM messages m WHERE m.state = 'accepted'
    AND NOT EXISTS (SELECT 1 FROM events e WHERE e.message_id = m.id)""").fetchone()[0] == 0,     "an accepted message without its event"
assert c.execute("""SELECT count(*) FROM events e
    WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.case_id = e.case_id)""").fetchone()[0] == 0,     "an event without its case"
for (cid,) in c.execute("SELECT control_id FROM messages WHERE state = 'accepted'"):
    print(cid)
"#;
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-U", "-m", "--preserve-credentials"])
        .args(["python3", "-c", CHECK])
        .arg(db)
        .output()
        .expect("nsenter");
    assert!(
        out.status.success(),
        "whole-store check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_full_file_system_is_refused_retryably_and_intake_resumes_when_space_is_freed() {
    let platform = PlatformReceiver::start().await;
    platform.set_rule(|_| Some(Reply::status(503, "platform down")));
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let cfg = config(dir.path(), &platform, port);
    let daemon = match start_on_tmpfs(dir.path(), &cfg) {
        Ok(d) => d,
        Err(reason) => {
            eprintln!("SKIPPED: no small file system to fill here: {reason}");
            return;
        }
    };
    // The daemon's data directory exists only in its own mount namespace.
    let pid = daemon.child.id();
    let db = dir.path().join("data/gateway.sqlite");

    let sent = tokio::task::spawn_blocking(move || {
        let mut first = send_until_refused(port, "FS", 1, 20_000);
        assert!(first.acked.len() >= 20, "{} fit", first.acked.len());
        let more = send_until_refused(port, "FS8", 8, 50);
        assert_eq!(more.refused, 8, "every sender refused");
        first.acked.extend(more.acked);
        first
    })
    .await
    .expect("senders");
    let mut acked = sent.acked;
    assert_eq!(
        whole_store_in_namespace(pid, &db),
        acked,
        "stored = acknowledged"
    );

    // Space is freed while the daemon runs: intake resumes by itself.
    let freed = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-U", "-m", "--preserve-credentials"])
        .arg("rm")
        .arg(dir.path().join("data/ballast"))
        .status()
        .expect("nsenter");
    assert!(freed.success(), "the ballast is removed");
    let resumed = tokio::task::spawn_blocking(move || {
        send_resuming(port, "FS-AFTER", 10, Duration::from_secs(60))
    })
    .await
    .expect("sender");
    acked.extend(resumed);
    assert_eq!(whole_store_in_namespace(pid, &db), acked);
    let p = &platform;
    let a = acked.clone();
    tokio::task::block_in_place(|| assert_delivered_once(p, &a));
    drop(daemon);
}

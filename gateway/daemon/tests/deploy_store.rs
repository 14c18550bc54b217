//! Deployment through the real binary: `store backup` while the daemon runs,
//! `store restore` refused under a running daemon and working after it
//! stopped, pending events of a restored (or older) store delivered at the
//! next start, and a store from a newer binary refused at `run`.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn ehr(args: &[&str]) -> Output {
    Command::new(support::bin())
        .args(args)
        .output()
        .expect("run ehr-gateway")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Waits until a file-sink JSONL line names `case_id`.
fn wait_delivered(outbox: &Path, case_id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = std::fs::read_dir(outbox)
            .map(|entries| {
                entries.flatten().any(|e| {
                    std::fs::read_to_string(e.path()).is_ok_and(|body| body.contains(case_id))
                })
            })
            .unwrap_or(false);
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the pending event of {case_id} was not delivered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn backup_while_running_restore_refused_while_running_then_restored_and_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let case_id = support::seed(&data);
    // Deliver nothing yet: the first daemon's platform is a closed loopback
    // port, so the event stays pending (retrying) in the store we back up.
    let config = support::write_config(
        dir.path(),
        "[forward]\nsink = \"http\"\n[forward.http]\nurl = \"http://127.0.0.1:9/events\"\n",
    );
    let mut daemon = support::Daemon::start(&config);

    let backup = dir.path().join("backups/gw.sqlite");
    std::fs::create_dir_all(backup.parent().expect("parent")).expect("mkdir");
    let out = ehr(&[
        "store",
        "backup",
        "--data-dir",
        p(&data),
        "--to",
        p(&backup),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sha256"), "{}", text(&out));
    let out = ehr(&["store", "verify", p(&backup)]);
    assert!(out.status.success(), "{}", text(&out));

    // Restoring under the running daemon is refused, and changes nothing.
    let out = ehr(&[
        "store",
        "restore",
        "--from",
        p(&backup),
        "--data-dir",
        p(&data),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("refusing to restore under a running daemon"),
        "{}",
        text(&out)
    );

    daemon.signal("TERM");
    let (code, _) = daemon.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0));

    // Lose the store, restore it from the backup.
    std::fs::remove_file(data.join("gateway.sqlite")).expect("rm store");
    let out = ehr(&[
        "store",
        "restore",
        "--from",
        p(&backup),
        "--data-dir",
        p(&data),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    let out = ehr(&["messages", "list", "--json", "--data-dir", p(&data)]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("MSG0001") && listed.contains("MSG0002"),
        "{listed}"
    );

    // The restored store's events are delivered by the next daemon.
    let outbox = dir.path().join("outbox-second");
    let config = support::write_config(
        dir.path(),
        &format!(
            "[forward]\nsink = \"file\"\n[forward.file]\ndir = \"{}\"\n",
            outbox.display()
        ),
    );
    let mut daemon = support::Daemon::start(&config);
    wait_delivered(&outbox, &case_id);
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));
}

#[test]
fn a_tampered_backup_is_not_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    support::seed(&data);
    let backup = dir.path().join("gw.sqlite");
    let out = ehr(&[
        "store",
        "backup",
        "--data-dir",
        p(&data),
        "--to",
        p(&backup),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let mut bytes = std::fs::read(&backup).expect("read");
    bytes[200] ^= 0x55;
    std::fs::write(&backup, bytes).expect("write");
    let target = dir.path().join("other");
    let out = ehr(&[
        "store",
        "restore",
        "--from",
        p(&backup),
        "--data-dir",
        p(&target),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("checksum mismatch"), "{}", text(&out));
    assert!(!target.join("gateway.sqlite").exists());
}

#[test]
fn a_store_from_a_newer_binary_is_refused_at_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    support::seed(&data);
    let store = data.join("gateway.sqlite");
    // A clean close checkpoints the WAL, so the header in the main file is
    // authoritative: bump `user_version` (bytes 60..64, big-endian) to 99.
    assert!(
        std::fs::metadata(data.join("gateway.sqlite-wal")).map_or(true, |m| m.len() == 0),
        "seeded store left a WAL behind"
    );
    let mut bytes = std::fs::read(&store).expect("read");
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(&store, &bytes).expect("write");

    let config = support::write_config(dir.path(), "");
    let out = ehr(&["run", "--config", p(&config)]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("store schema version 99 is newer than this binary supports"),
        "{all}"
    );
    assert!(all.contains("upgrade ehr-gateway"), "{all}");
    // Refused before touching it.
    assert_eq!(std::fs::read(&store).expect("read"), bytes);
}

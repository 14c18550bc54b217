//! Messages refused under a profile that gave them no fate are re-processed
//! in bulk after the profile is fixed: `messages replay --state rejected
//! --reason M020`. The real binary, a real MLLP listener, the real store:
//!
//! 1. a copy of `mappings/` without `hl7v2-base/ignore.toml` refuses ORU and
//!    DFT (AE, M020) and accepts an order (AA);
//! 2. the profile is fixed (the file is put back) and the daemon restarted;
//! 3. the bulk replay selects exactly the two M020 refusals, and the daemon
//!    re-processes them: both end `accepted` (kept), nothing else changes.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Daemon;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "listener not up: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream
}

use support::mllp_exchange as exchange;

fn list(data_dir: &Path) -> Vec<Value> {
    let out = Command::new(support::bin())
        .args(["messages", "list", "--json", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn state_of(rows: &[Value], control_id: &str) -> String {
    rows.iter()
        .find(|r| r["control_id"] == control_id)
        .and_then(|r| r["state"].as_str())
        .unwrap_or_else(|| panic!("{control_id} not stored: {rows:?}"))
        .to_owned()
}

#[test]
fn refused_kinds_are_replayed_in_bulk_after_the_profile_fix() {
    let dir = tempfile::tempdir().expect("tmp");
    let mappings = dir.path().join("mappings");
    let repo = support::repo_root();
    for profile in ["hl7v2-base", "epic"] {
        copy_dir(
            &repo.join("mappings").join(profile),
            &mappings.join(profile),
        );
    }
    let ignore = mappings.join("hl7v2-base/ignore.toml");
    let ignore_text = std::fs::read(&ignore).expect("ignore.toml");
    std::fs::remove_file(&ignore).expect("remove");

    let port = free_port();
    let config = support::write_config(
        dir.path(),
        &format!("[[hl7v2.listeners]]\nlisten = \"127.0.0.1:{port}\"\nprofile = \"epic\"\n"),
    );
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(
        &format!("mappings_dir = \"{}\"", repo.join("mappings").display()),
        &format!("mappings_dir = \"{}\"", mappings.display()),
    );
    assert!(text.contains(&mappings.display().to_string()), "{text}");
    std::fs::write(&config, text).expect("config");
    let data_dir = dir.path().join("data");

    let samples = repo.join("sample-messages/hl7v2/hl7v2-base");
    let oru = std::fs::read(samples.join("oru-r01-unsupported.hl7")).expect("oru");
    let kept = gateway_hl7v2::mllp::files::split_messages(
        &std::fs::read(samples.join("dft-p03-mdm-t02-kept.hl7")).expect("dft"),
    );
    let order = gateway_hl7v2::mllp::files::split_messages(
        &std::fs::read(samples.join("orm-o01-provider-ids.hl7")).expect("orm"),
    );

    // 1. Without a fate for ORU and DFT: refused.
    {
        let mut daemon = Daemon::start(&config);
        let mut stream = connect(port);
        assert_eq!(exchange(&mut stream, &oru), "AE");
        assert_eq!(exchange(&mut stream, &kept[0]), "AE");
        assert_eq!(exchange(&mut stream, &order[0]), "AA");
        drop(stream);
        daemon.signal("TERM");
        let (code, _) = daemon.wait_exit(Duration::from_secs(30));
        assert_eq!(code, Some(0));
    }
    let rows = list(&data_dir);
    assert_eq!(state_of(&rows, "BASE0006"), "rejected");
    assert_eq!(state_of(&rows, "FID0011"), "rejected");
    assert_eq!(state_of(&rows, "FID0001"), "accepted");

    // 2. The profile is fixed; the daemon restarts with it.
    std::fs::write(&ignore, ignore_text).expect("restore");
    let _daemon = Daemon::start(&config);

    // 3. Bulk replay of the M020 refusals.
    let out = Command::new(support::bin())
        .args([
            "messages",
            "replay",
            "--state",
            "rejected",
            "--reason",
            "M020",
            "--data-dir",
        ])
        .arg(&data_dir)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 message(s) in state rejected match reason M020"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("queued").count(), 2, "{stdout}");

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = list(&data_dir);
        let done = ["BASE0006", "FID0011"]
            .iter()
            .all(|c| state_of(&rows, c) == "accepted");
        if done {
            assert_eq!(state_of(&rows, "FID0001"), "accepted");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replayed messages not re-processed: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

//! Files as an edge, through the real `ehr-gateway` binary under umask 022:
//! the data directory it creates is 0700; `gateway.sqlite`, its WAL and SHM
//! files and a `store backup` are 0600; a symbolic link dropped into the X12
//! inbound folder is moved to `error/` as a link and never read (its target
//! is a FIFO: opening it would hang the file drop, and a regular file beside
//! it is still processed afterwards, which proves the poll went on).
#![cfg(unix)]

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Daemon;

const HANG_GUARD: Duration = Duration::from_secs(60);

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `ehr-gateway ARGS…` run through `sh` with umask 022.
fn umask_022(args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022 && exec \"$@\"")
        .arg("sh")
        .arg(support::bin())
        .args(args);
    cmd
}

fn start_under_umask(config: &Path) -> Daemon {
    use std::io::BufRead as _;
    let child = umask_022(&["run", "--config", &config.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut daemon = Daemon {
        child,
        admin: std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
        lines: rx,
    };
    let stderr = daemon.child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = daemon
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("daemon did not report its admin address");
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(addr) = value.get("admin_addr").and_then(|a| a.as_str())
        {
            daemon.admin = addr.parse().expect("admin addr");
            return daemon;
        }
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !done() {
        assert!(Instant::now() < deadline, "hang guard: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn under_umask_022_phi_files_are_owner_only_and_inbound_links_are_never_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let inbound = dir.path().join("x12-inbound");
    std::fs::create_dir_all(&inbound).expect("inbound");
    let config = support::write_config(
        dir.path(),
        &format!(
            "[x12]\nprofile = \"x12-278\"\n[x12.identity]\nid = \"EHRGATEWAY\"\n\
             [x12.file_drop]\ninbound = \"{}\"\npoll_interval_ms = 100\nsettle_ms = 0\n",
            inbound.display()
        ),
    );
    // The data directory does not exist yet: the daemon creates it.
    let data = dir.path().join("data");
    assert!(!data.exists());

    // A link to a FIFO outside the folder: following it would block the poll
    // on open; reading it never completes.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside");
    let fifo = outside.join("patient-fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    std::os::unix::fs::symlink(&fifo, inbound.join("a-link.x12")).expect("symlink");
    // And a link to a valid 278 request: following it would create a case.
    let request =
        std::fs::read(support::repo_root().join("sample-messages/x12/x12-278/request.x12"))
            .expect("sample");
    let target = outside.join("request.x12");
    std::fs::write(&target, &request).expect("target");
    std::os::unix::fs::symlink(&target, inbound.join("b-link.x12")).expect("symlink");

    let daemon = start_under_umask(&config);
    let store = data.join("gateway.sqlite");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&store), 0o600, "gateway.sqlite");
    for side in ["gateway.sqlite-wal", "gateway.sqlite-shm"] {
        let path = data.join(side);
        assert!(path.exists(), "{side} exists while the daemon runs");
        assert_eq!(mode(&path), 0o600, "{side}");
    }

    // Both links end up in error/, still links, their targets untouched.
    let error = inbound.join("error");
    wait_for("the links moved to error/", || {
        error.join("a-link.x12").symlink_metadata().is_ok()
            && error.join("b-link.x12").symlink_metadata().is_ok()
    });
    for name in ["a-link.x12", "b-link.x12"] {
        let moved = error.join(name);
        assert!(
            moved
                .symlink_metadata()
                .expect("moved")
                .file_type()
                .is_symlink(),
            "{name} is still a link"
        );
        assert!(
            !error.join(format!("{name}.999")).exists(),
            "{name} got an acknowledgment, so it was read"
        );
    }
    assert!(fifo.exists());
    assert_eq!(std::fs::read(&target).expect("target"), request);
    // The poll went on: a regular file dropped now is processed.
    std::fs::write(inbound.join("c-request.x12"), &request).expect("drop");
    wait_for("the regular file archived", || {
        inbound.join("archive/c-request.x12").exists()
    });
    // Only that file made a case: the linked request was never read.
    let cases = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            support::get_json(
                &reqwest::Client::new(),
                daemon.url("/api/v1/messages?adapter=x12"),
                support::TOKEN,
            )
            .await
        })
    };
    assert_eq!(cases["total"], 1, "{cases}");

    // A backup taken by the CLI under the same umask is owner-only too.
    let backup = dir.path().join("backup.sqlite");
    let out = umask_022(&[
        "store",
        "backup",
        "--data-dir",
        &data.display().to_string(),
        "--to",
        &backup.display().to_string(),
    ])
    .output()
    .expect("backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&backup), 0o600, "backup");
    drop(daemon);
}

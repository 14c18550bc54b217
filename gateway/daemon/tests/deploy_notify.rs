//! sd_notify through the real binary: a fake service manager (a Unix datagram
//! socket bound by the test, named in `NOTIFY_SOCKET`) receives `READY=1`
//! with the daemon's pid once it is up, `WATCHDOG=1` pings at half of
//! `WATCHDOG_USEC`, and `STOPPING=1` on SIGTERM.
#![cfg(unix)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn recv(socket: &UnixDatagram) -> Option<String> {
    let mut buffer = [0u8; 4096];
    match socket.recv(&mut buffer) {
        Ok(n) => Some(String::from_utf8_lossy(&buffer[..n]).into_owned()),
        Err(_) => None,
    }
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let config = support::write_config(dir.path(), "");
    let mut child = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();

    let first = recv(&socket).expect("no notification within 30 s");
    assert_eq!(first, format!("READY=1\nMAINPID={pid}"));
    // The data directory is locked and the store exists by then.
    assert!(dir.path().join("data/gateway.sqlite").exists());

    let start = Instant::now();
    let mut pings = 0;
    while pings < 3 {
        let message = recv(&socket).expect("watchdog ping");
        assert_eq!(message, "WATCHDOG=1");
        pings += 1;
    }
    // Three pings at ~100 ms: well under the 200 ms watchdog each.
    assert!(start.elapsed() < Duration::from_secs(5));

    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stopping = false;
    while Instant::now() < deadline {
        match recv(&socket) {
            Some(m) if m == "STOPPING=1" => {
                stopping = true;
                break;
            }
            Some(m) => assert_eq!(m, "WATCHDOG=1"),
            None => break,
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    let code = child.wait().expect("wait").code();
    assert_eq!(code, Some(0));
}

#[test]
fn without_a_watchdog_only_ready_and_stopping_are_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let config = support::write_config(dir.path(), "");
    let mut child = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env_remove("WATCHDOG_USEC")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    assert_eq!(
        recv(&socket).expect("ready"),
        format!("READY=1\nMAINPID={pid}")
    );
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert_eq!(recv(&socket).expect("stopping"), "STOPPING=1");
    assert_eq!(child.wait().expect("wait").code(), Some(0));
}

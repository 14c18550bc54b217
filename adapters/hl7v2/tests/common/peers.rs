//! Real third-party MLLP peers run as child processes on loopback: the python
//! `hl7` package and npm `node-hl7-server` / `node-hl7-client` (installed by
//! `.ci/install.d/30-hl7-peers.sh`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// Whether a peer is installed; when it is not, fails under CI and otherwise
/// prints why the test is skipped.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} is not installed (run .ci/install.d/30-hl7-peers.sh)");
    }
    eprintln!("SKIPPED: {what} is not installed (run .ci/install.d/30-hl7-peers.sh)");
    false
}

pub fn have_node_peers() -> bool {
    let ok = std::process::Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && peers_dir().join("node_modules/node-hl7-server").is_dir()
        && peers_dir().join("node_modules/node-hl7-client").is_dir();
    require("node + node-hl7-server/node-hl7-client", ok)
}

pub fn have_python_hl7() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import hl7.mllp"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require("python3 package hl7", ok)
}

pub fn have_mllp_send() -> bool {
    let ok = std::process::Command::new("mllp_send")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require("mllp_send (python hl7)", ok)
}

/// A peer server process: prints `PORT n` when ready and `RECV id` per message.
/// Killed on drop; its stdin is held open (closing it stops the peer).
pub struct PeerServer {
    pub port: u16,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl PeerServer {
    pub async fn start(program: &str, script: &str) -> PeerServer {
        let mut child = Command::new(program)
            .arg(peers_dir().join(script))
            .current_dir(peers_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program} {script}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.expect("peer stdout") {
                if let Some(p) = line.strip_prefix("PORT ") {
                    return p.trim().parse::<u16>().expect("port");
                }
            }
            panic!("{script} exited before listening");
        })
        .await
        .unwrap_or_else(|_| panic!("{script} did not start listening"));
        PeerServer { port, child, lines }
    }

    pub async fn node() -> PeerServer {
        Self::start("node", "node_server.js").await
    }

    pub async fn python() -> PeerServer {
        Self::start("python3", "py_server.py").await
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The next `n` control ids the peer reports receiving.
    pub async fn received(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while out.len() < n {
                match self.lines.next_line().await {
                    Ok(Some(line)) => {
                        if let Some(id) = line.strip_prefix("RECV ") {
                            out.push(id.trim().to_string());
                        }
                    }
                    _ => break,
                }
            }
        })
        .await;
        out
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

//! Harness shared by the `prune` and `soak` benches: the release daemon as a
//! child process, its config, an MLLP client that times every ACK, and
//! percentiles. Kept apart from the benches so each reads as its scenario.

#![allow(dead_code)] // each bench uses a different part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The synthetic Epic order (`sample-messages/hl7v2/epic/orm-o01-v251-eap.hl7`).
pub fn epic_template() -> String {
    std::fs::read_to_string(repo_root().join("sample-messages/hl7v2/epic/orm-o01-v251-eap.hl7"))
        .expect("the epic sample")
}

/// The sample with control id `control` and order number `order` (so each
/// message opens its own case), framed for MLLP.
pub fn framed(template: &str, control: &str, order: &str) -> Vec<u8> {
    let mut out = vec![0x0b];
    out.extend(
        template
            .replace("|EPIC0001|", &format!("|{control}|"))
            .replace("EP5001", order)
            .into_bytes(),
    );
    out.extend([0x1c, 0x0d]);
    out
}

static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Runs the daemon from a copy of the release binary in `dir` from now on, so
/// a rebuild during a long run cannot swap the binary between two restarts.
pub fn use_private_copy(dir: &Path) {
    let copy = dir.join("ehr-gateway-under-test");
    std::fs::copy(env!("CARGO_BIN_EXE_ehr-gateway"), &copy).expect("copy the daemon binary");
    let _ = BINARY.set(copy);
}

fn binary() -> PathBuf {
    BINARY
        .get()
        .cloned()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ehr-gateway")))
}

/// The daemon child; killed (SIGKILL) when dropped.
pub struct Daemon {
    pub child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    /// `ehr-gateway run --config CONFIG`; stderr (the JSON log) appended to
    /// `log` when given.
    pub fn start(config: &Path, log: Option<&Path>) -> Daemon {
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("daemon log file"),
            ),
            None => Stdio::null(),
        };
        let child = Command::new(binary())
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn the daemon");
        Daemon { child }
    }

    /// SIGTERM and wait for the drain to finish.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// kill -9, as a power cut would.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

pub async fn wait_for_port(port: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// One MLLP round trip: send `frame`, read up to the end of block; returns
/// the ACK's MSA-1 code (`AA`, `AE`, `AR`, `CA`, …).
pub async fn exchange(stream: &mut TcpStream, frame: &[u8]) -> std::io::Result<String> {
    stream.write_all(frame).await?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(&[0x1c, 0x0d]) {
        let k = stream.read(&mut buf).await?;
        if k == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection",
            ));
        }
        got.extend_from_slice(&buf[..k]);
    }
    let text = String::from_utf8_lossy(&got);
    let code = text
        .split(['\r', '\n'])
        .find(|seg| seg.starts_with("MSA|"))
        .and_then(|msa| msa.split('|').nth(1))
        .unwrap_or("")
        .to_owned();
    Ok(code)
}

/// p-th percentile (0–100) of `values` in microseconds, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50 / p99 / max of ACK latencies in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(values: &[u64]) -> Latency {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        Latency {
            count: sorted.len(),
            p50_ms: percentile(&sorted, 50.0) as f64 / 1000.0,
            p99_ms: percentile(&sorted, 99.0) as f64 / 1000.0,
            max_ms: sorted.last().copied().unwrap_or(0) as f64 / 1000.0,
        }
    }
}

/// Size of a file, 0 when absent.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// A path as a TOML basic string body.
pub fn toml_path(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

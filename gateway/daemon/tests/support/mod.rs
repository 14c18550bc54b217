//! Shared helpers for the daemon's integration tests: run the real binary
//! with a config in a temp dir, learn its admin address from its JSON log,
//! seed a store with a case, signal it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod core_payer;
#[cfg(unix)]
pub mod desktop;
pub mod intake_load;
pub mod pas;

use gateway_core::case::Case;
use gateway_store::{InboundOutcome, NewInbound, Store, StoreOptions};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ehr-gateway")
}

/// The admin token every test config uses (from a file).
pub const TOKEN: &str = "test-admin-token-synthetic-00000001";

/// A config for `dir`: admin on a free port, token file, file sink, JSON logs.
/// How fast the forwarder retries in a test config (milliseconds).
#[allow(dead_code)]
pub struct Retry {
    pub poll_ms: u64,
    pub initial_ms: u64,
    pub max_ms: u64,
}

/// A config that forwards over HTTP to the loopback platform at `url` (with
/// a bearer token file) and listens for HL7 on `127.0.0.1:{mllp}` with the
/// epic profile; `extra` is appended.
#[allow(dead_code)]
pub fn write_http_forwarding_config(
    dir: &Path,
    url: &str,
    mllp: u16,
    retry: Retry,
    extra: &str,
) -> PathBuf {
    let token = dir.join("platform.token");
    std::fs::write(&token, "platform-token-0001\n").expect("token");
    write_config(
        dir,
        &format!(
            r#"[forward]
sink = "http"
[forward.http]
url = "{url}"
timeout_ms = 2000
bearer_token_file = "{token}"
[forward.delivery]
poll_interval_ms = {poll}
[forward.delivery.backoff]
initial_ms = {initial}
max_ms = {max}
[[hl7v2.listeners]]
listen = "127.0.0.1:{mllp}"
profile = "epic"
{extra}"#,
            token = token.display(),
            poll = retry.poll_ms,
            initial = retry.initial_ms,
            max = retry.max_ms,
        ),
    )
}

pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let token = dir.join("admin.token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"mappings_dir = "{mappings}"
[gateway]
tenant = "mso-test"
practice = "cardio-north"
[admin]
listen = "127.0.0.1:0"
token_file = "{token}"
[store]
path = "{data}"
[logging]
format = "json"
level = "info"
{extra}
"#,
            mappings = repo_root().join("mappings").display(),
            token = token.display(),
            data = dir.join("data").display(),
        ),
    )
    .expect("config");
    config
}

/// `GET url` with a bearer `token`, as JSON (panics on a transport error or
/// a body that is not JSON: the test fails there).
pub async fn get_json(http: &reqwest::Client, url: String, token: &str) -> serde_json::Value {
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json")
}

/// Sends `payload` MLLP-framed on `stream` and reads one ACK frame back;
/// returns its text. `None` when the connection fails or closes first (the
/// stream's read timeout is the caller's hang guard).
pub fn mllp_ack(stream: &mut std::net::TcpStream, payload: &[u8]) -> Option<String> {
    use std::io::{Read, Write};
    let mut frame = vec![0x0B];
    frame.extend_from_slice(payload);
    frame.extend_from_slice(&[0x1C, 0x0D]);
    stream.write_all(&frame).ok()?;
    let mut ack = Vec::new();
    let mut chunk = [0u8; 1024];
    while !ack.ends_with(&[0x1C, 0x0D]) {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        ack.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&ack).into_owned())
}

/// Sends one framed message and returns the ACK's MSA-1 code (panics when no
/// ACK comes back).
pub fn mllp_exchange(stream: &mut std::net::TcpStream, payload: &[u8]) -> String {
    let ack = mllp_ack(stream, payload).expect("an ACK before the connection closed");
    msa_code(&ack)
}

/// MSA-1 (AA, AE, AR, CA, …) of an ACK's text.
pub fn msa_code(ack: &str) -> String {
    let msa = ack
        .split(['\r', '\n'])
        .find(|l| l.starts_with("MSA|"))
        .expect("MSA segment");
    msa.split('|').nth(1).unwrap_or("").to_owned()
}

/// The repository root (holds `mappings/` and `sample-messages/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A real synthetic Epic order from `sample-messages/`.
pub fn epic_order() -> Vec<u8> {
    std::fs::read(repo_root().join("sample-messages/hl7v2/epic/orm-o01-v251-eap.hl7"))
        .expect("sample message")
}

/// A running daemon child process.
pub struct Daemon {
    pub child: Child,
    pub admin: SocketAddr,
    pub lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// Starts `ehr-gateway run --config config` and waits for its admin address.
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    /// Like [`Daemon::start`], with extra environment variables for the child
    /// only (e.g. `DISPLAY` for the desktop adapter).
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(bin());
        command
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied());
        Daemon::spawn(command).0
    }

    /// Like [`Daemon::start`], with the daemon's open-file limit lowered to
    /// `limit` first (through `sh`; `exec` keeps the pid, so the guard still
    /// kills it); also the log lines printed before the admin address.
    #[cfg(unix)]
    pub fn start_with_fd_limit(config: &Path, limit: u32) -> (Daemon, Vec<String>) {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(
                "ulimit -n {limit} && exec \"$0\" run --config \"$1\""
            ))
            .arg(bin())
            .arg(config);
        Daemon::spawn(command)
    }

    /// Spawns `command` (a daemon run, e.g. through `unshare`) and waits for
    /// its admin address.
    pub fn spawn_command(command: Command) -> Daemon {
        Daemon::spawn(command).0
    }

    /// Spawns `command` (a daemon run) and waits for its admin address; the
    /// daemon and the log lines printed before the address.
    fn spawn(mut command: Command) -> (Daemon, Vec<String>) {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        let (tx, rx) = mpsc::channel();
        // Owned by `Daemon` at once, so its Drop kills and reaps the child on
        // every path, panics included.
        let mut daemon = Daemon {
            child,
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
            lines: rx,
        };
        let stderr = daemon.child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut before = Vec::new();
        loop {
            let line = daemon
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("daemon did not report its admin address");
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = value.get("admin_addr").and_then(|a| a.as_str())
            {
                daemon.admin = addr.parse().expect("admin addr");
                return (daemon, before);
            }
            before.push(line);
        }
    }

    /// `http://ADDR`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code and how long it took.
    pub fn wait_exit(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status.code(), start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "daemon did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every log line printed so far (non-blocking).
    pub fn drain_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A synthetic case (made-up patient) with id `case_id`.
pub fn case(case_id: &str) -> Case {
    serde_json::from_value(serde_json::json!({
        "schema": "ehr-gateway/case/v1",
        "case_id": case_id,
        "tenant": "mso-test",
        "source": {"adapter": "hl7v2", "profile": "epic", "message_type": "ORM^O01",
                   "control_id": "MSG0001", "sender": "EPIC^TEST", "received_at": "2026-11-22T10:00:00Z"},
        "status": "requested",
        "patient": {"identifiers": [{"type": "MR", "value": "E10001"}],
                    "name": {"family": "Testpatient", "given": ["Jane"]}},
        // A payer, member id and requesting provider: what a 278 request for
        // the case needs (the writer refuses a case without them).
        "coverages": [{"sequence": 1, "payer": {"id": "60054", "name": "DEMO PLAN"},
                       "member_id": "W000000077"}],
        "providers": [{"role": "requester", "npi": "1234567893", "organization": "TEST CLINIC"}],
        "services": [{"line": 1, "code": {"system": "CPT", "code": "78452"}}]
    }))
    .expect("case json")
}

/// Stores one accepted message with its case, and one rejected message, in
/// the store of `data_dir`; returns the case id.
pub fn seed(data_dir: &Path) -> String {
    // Its own thread and runtime, so async tests can call it too.
    let data_dir = data_dir.to_path_buf();
    std::thread::spawn(move || seed_blocking(&data_dir))
        .join()
        .expect("seed thread")
}

fn seed_blocking(data_dir: &Path) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let store = Store::open(data_dir.join("gateway.sqlite"), StoreOptions::default())
            .await
            .expect("store");
        let case_id = "case-0123456789abcdef01234567".to_owned();
        let message = |control: &str, raw: Vec<u8>, outcome| NewInbound {
            adapter: "hl7v2".to_owned(),
            profile: "epic".to_owned(),
            sender: Some("EPIC^TEST".to_owned()),
            control_id: Some(control.to_owned()),
            message_type: Some("ORM^O01".to_owned()),
            raw,
            received_at: "2026-11-22T10:00:00Z".to_owned(),
            peer: Some("127.0.0.1:40000".to_owned()),
            outcome,
            replay_of: None,
        };
        store
            .commit_inbound(message(
                "MSG0001",
                b"MSH|^~\\&|EPIC|TEST|||20261122||ORM^O01|MSG0001|P|2.5.1\r".to_vec(),
                InboundOutcome::Accepted {
                    case: Box::new(case(&case_id)),
                    event_type: None,
                },
            ))
            .await
            .expect("commit");
        store
            .commit_inbound(message(
                "MSG0002",
                // A real order, rejected as if its mapping had been missing:
                // a replay maps it with the current `epic` profile.
                epic_order(),
                InboundOutcome::Rejected {
                    reason: "unsupported message type ORM^O01".to_owned(),
                    diagnostics: vec![],
                },
            ))
            .await
            .expect("commit");
        store.close().await;
        case_id
    })
}

/// One operation of the admin API's `openapi.yaml`.
#[derive(Debug, Clone)]
pub struct ApiOperation {
    /// `get`, `post`, …
    pub method: String,
    /// The path template.
    pub path: String,
    /// `x-required-role`; `None` for `security: []` (open); `Some("")` when
    /// the operation says neither.
    pub role: Option<String>,
}

/// The operations of `openapi.yaml`. The file is ours and block-structured:
/// paths at indent 2, methods at indent 4, their keys at indent 6.
pub fn openapi_operations() -> Vec<ApiOperation> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml"))
        .expect("openapi.yaml");
    assert!(text.starts_with("openapi: 3.1"), "not an OpenAPI 3.1 file");
    let mut in_paths = false;
    let mut path = None;
    let mut out: Vec<ApiOperation> = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  ")
            && !rest.starts_with(' ')
            && let Some(p) = rest.strip_suffix(':')
        {
            path = Some(p.to_owned());
        } else if let Some(rest) = line.strip_prefix("    ")
            && !rest.starts_with(' ')
            && let Some(method) = rest.strip_suffix(':')
            && ["get", "post", "put", "patch", "delete"].contains(&method)
        {
            out.push(ApiOperation {
                method: method.to_owned(),
                path: path.clone().expect("a method outside a path"),
                role: Some(String::new()),
            });
        } else if let Some(rest) = line.strip_prefix("      ")
            && let Some(last) = out.last_mut()
        {
            if let Some(role) = rest.strip_prefix("x-required-role:") {
                last.role = Some(role.trim().trim_matches('"').to_owned());
            } else if rest.trim() == "security: []" {
                last.role = None;
            }
        }
    }
    out
}

/// Polls `f` every 50 ms until it gives a value; panics naming `what` after
/// `limit` (a bound for a hung daemon, not a timing assertion).
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_for`] inside a tokio test: sleeps without blocking the runtime.
pub async fn wait_until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The files of `dir` whose name starts with `prefix`, sorted.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

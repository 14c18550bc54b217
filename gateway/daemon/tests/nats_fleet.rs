//! The real daemon binary forwarding to a real 3-node JetStream cluster on
//! loopback (issue #20), with a platform-side consumer written for the test.
//!
//! * `one_gateway_survives_a_node_kill_and_its_own_kill_9`: an R3 stream made
//!   by `ehr-gateway nats provision`; MLLP messages in three bursts; one NATS
//!   node killed after the first and restarted after the second; the gateway
//!   killed with -9 right after the second burst and restarted at once (well
//!   within the 2-minute duplicate window). Every event in the store is
//!   delivered and in the stream exactly once (no CloudEvents id twice), in
//!   per-case order. Then decisions come back over JetStream: one committed,
//!   its redelivery (the platform publishing it again with the same
//!   idempotency key) answered without a second event, a malformed one and
//!   one for an unknown case terminated with a `decision_refused` event.
//! * `five_gateways_publish_at_once_and_get_their_decisions_back`: five
//!   gateways (own data dir and practice id each) at once; completeness and
//!   order per case; one decision per gateway comes back exactly once and is
//!   written back by its HL7 adapter (one ORU each at a loopback MLLP
//!   receiver). `EHR_FLEET_GATEWAYS=20` runs the same with 20 gateways:
//!   `EHR_FLEET_GATEWAYS=20 cargo test -p ehr-gateway --test nats_fleet five -- --nocapture`.
//! * `readyz_and_metrics_show_the_jetstream_connection_and_the_outbox_holds`:
//!   the only node killed — `/readyz` stays ready with a `sink: NATS …`
//!   warning, `ehr_gateway_nats_connected` drops to 0, an accepted message
//!   waits in the outbox; the node back — reconnected by itself, delivered.
//!
//! Skips with a printed reason when nats-server is missing (fails under CI).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_forward::nats::async_nats;
use gateway_forward::nats::async_nats::jetstream;
use gateway_testkit::nats::{NatsCluster, nats_server_or_skip};

mod support;

const TENANT: &str = "mso-test";

fn write_config(dir: &Path, practice: &str, servers: &[String]) -> PathBuf {
    write_config_with(dir, practice, servers, "")
}

/// The gateway's config. Its MLLP listener binds port 0 and the test reads
/// the bound address from the daemon's log (`start`): a port picked ahead
/// (bound, released, then handed to the daemon) is only free until
/// something else takes it, and the tests beside this one restart NATS nodes
/// on their old ports. A gateway whose port a NATS node took found its own
/// bind refused, while the test connected to NATS and read no ACK.
fn write_config_with(dir: &Path, practice: &str, servers: &[String], extra: &str) -> PathBuf {
    let token = dir.join("admin.token");
    std::fs::write(&token, format!("{}\n", support::TOKEN)).expect("token");
    let config = dir.join("gateway.toml");
    let servers: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    std::fs::write(
        &config,
        format!(
            r#"mappings_dir = "{mappings}"
[gateway]
tenant = "{TENANT}"
practice = "{practice}"
[admin]
listen = "127.0.0.1:0"
token_file = "{token}"
[store]
path = "{data}"
[logging]
format = "json"
level = "info"
[forward]
sink = "nats"
[forward.delivery]
poll_interval_ms = 50
[forward.delivery.backoff]
initial_ms = 50
max_ms = 500
[forward.nats]
servers = [{servers}]
ack_timeout_ms = 3000
replicas = 3
[[hl7v2.listeners]]
listen = "127.0.0.1:0"
profile = "epic"
{extra}
"#,
            mappings = support::repo_root().join("mappings").display(),
            token = token.display(),
            data = dir.join("data").display(),
            servers = servers.join(", "),
        ),
    )
    .expect("config");
    config
}

/// The daemon; SIGKILLed on drop.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A started daemon: the process, the address its MLLP listener bound and
/// its admin address.
struct Started {
    /// Held for its `Drop`, which kills the daemon.
    _gateway: Gateway,
    mllp: SocketAddr,
    admin: SocketAddr,
}

impl Started {
    /// `http://ADMIN{path}`.
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }
}

/// Starts the daemon with its log appended to `log`; returns it once it has
/// started, with the addresses read from its log.
fn start(config: &Path, log: &Path) -> Started {
    let from = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log");
    let child = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("spawn daemon");
    let mut gateway = Gateway(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = log_since(log, from);
        let mllp = logged_address(&lines, "MLLP listener accepting", "addr");
        let admin = logged_address(&lines, "Daemon started.", "admin_addr");
        if let (Some(mllp), Some(admin)) = (mllp, admin) {
            return Started {
                _gateway: gateway,
                mllp,
                admin,
            };
        }
        if let Ok(Some(status)) = gateway.0.try_wait() {
            panic!(
                "daemon exited during start: {status}\n{}",
                log_tail(log, from)
            );
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not start\n{}",
            log_tail(log, from)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The text `log` holds after byte `from` (this start's lines: a restart
/// appends to the same log).
fn log_since(log: &Path, from: u64) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let since = usize::try_from(from)
        .ok()
        .and_then(|f| text.get(f..))
        .unwrap_or(&[]);
    String::from_utf8_lossy(since).into_owned()
}

/// The address in field `field` of the first JSON log line of `lines` with
/// message `message`.
fn logged_address(lines: &str, message: &str, field: &str) -> Option<SocketAddr> {
    lines.lines().find_map(|line| {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        if value["message"] != message {
            return None;
        }
        value[field].as_str()?.parse().ok()
    })
}

/// The last log lines written after byte `from`, for a failure message: the
/// test data is synthetic and the daemon logs no PHI.
fn log_tail(log: &Path, from: u64) -> String {
    let text = log_since(log, from);
    let lines: Vec<&str> = text.lines().collect();
    let keep = lines.len().saturating_sub(60);
    format!("--- daemon log ---\n{}", lines[keep..].join("\n"))
}

/// The Epic sample order with MSH-10 = `id` and the placer order number
/// suffixed with `order` (one case per order).
fn message(template: &str, id: &str, order: usize) -> Vec<u8> {
    let mut segments: Vec<String> = template.split('\r').map(str::to_owned).collect();
    for segment in &mut segments {
        let mut fields: Vec<String> = segment.split('|').map(str::to_owned).collect();
        if fields[0] == "MSH" && fields.len() > 9 {
            fields[9] = id.to_owned();
        }
        if (fields[0] == "ORC" || fields[0] == "OBR") && fields.len() > 2 {
            let placer = fields[2].split('^').next().unwrap_or("").to_owned();
            fields[2] = format!("{placer}F{order}");
        }
        *segment = fields.join("|");
    }
    segments.join("\r").into_bytes()
}

/// Sends messages `ids` (each with its order) over one connection to the
/// gateway at `addr`; the ids that got AA. A failure prints the tail of the
/// gateway's `log`.
fn send(addr: SocketAddr, log: &Path, template: &str, ids: &[(String, usize)]) -> Vec<String> {
    let fail = |what: String| -> ! { panic!("{what}\n{}", log_tail(log, 0)) };
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| fail(format!("connect MLLP {addr}: {e}")));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut acked = Vec::new();
    for (id, order) in ids {
        let mut out = vec![0x0B];
        out.extend_from_slice(&message(template, id, *order));
        out.extend_from_slice(&[0x1C, 0x0D]);
        if let Err(e) = stream.write_all(&out) {
            fail(format!("send {id} to {addr}: {e}"));
        }
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.ends_with(&[0x1C, 0x0D]) {
            match stream.read(&mut chunk) {
                Ok(0) => fail(format!(
                    "{addr} closed the connection before the ACK of {id}; it had sent {:?}",
                    String::from_utf8_lossy(&buf)
                )),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => fail(format!("reading the ACK of {id} from {addr}: {e}")),
            }
        }
        let code = support::msa_code(&String::from_utf8_lossy(&buf));
        assert_eq!(code, "AA", "message {id} not accepted");
        acked.push(id.clone());
    }
    acked
}

/// The store's events: id → (case, seq, state).
fn store_events(dir: &Path) -> HashMap<String, (String, i64, String)> {
    let path = dir.join("data").join("gateway.sqlite");
    let db = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open store read-only");
    db.busy_timeout(Duration::from_secs(10)).expect("busy");
    let mut statement = db
        .prepare("SELECT id, case_id, seq, state FROM events")
        .expect("prepare");
    statement
        .query_map([], |row| {
            Ok((row.get(0)?, (row.get(1)?, row.get(2)?, row.get(3)?)))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn wait_delivered(dir: &Path, at_least: usize) -> HashMap<String, (String, i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let events = store_events(dir);
        if events.len() >= at_least && events.values().all(|(_, _, s)| s == "delivered") {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "events not all delivered within 120 s: {} events, states {:?}",
            events.len(),
            events.values().map(|e| e.2.clone()).collect::<HashSet<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One message seen by the platform consumer.
#[derive(Debug, Clone)]
struct Seen {
    subject: String,
    id: String,
    case_id: String,
    seq: i64,
    body: serde_json::Value,
}

/// Every message of the events stream for `filter`, in stream order.
/// Creating the reading consumer is a JetStream API request; while a
/// restarted cluster elects its leaders it may time out, so it is retried
/// until a generous deadline (the cluster's recovery time is not ours to
/// assume).
async fn platform_read(js: &jetstream::Context, filter: &str) -> Vec<Seen> {
    use futures_util::StreamExt;
    let deadline = Instant::now() + Duration::from_secs(120);
    let (consumer, total) = loop {
        let attempt = async {
            let stream = js
                .get_stream("EHR_EVENTS")
                .await
                .map_err(|e| format!("events stream: {e}"))?;
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::Config {
                    filter_subject: filter.to_owned(),
                    deliver_policy: jetstream::consumer::DeliverPolicy::All,
                    ack_policy: jetstream::consumer::AckPolicy::None,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("platform consumer: {e}"))?;
            let mut info = consumer.clone();
            let total = info
                .info()
                .await
                .map_err(|e| format!("consumer info: {e}"))?
                .num_pending as usize;
            Ok::<_, String>((consumer, total))
        };
        match attempt.await {
            Ok(found) => break found,
            Err(e) => {
                assert!(Instant::now() < deadline, "{e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let mut out = Vec::new();
    let mut messages = consumer.messages().await.expect("messages");
    while out.len() < total {
        let m = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("message within 30 s")
            .expect("open")
            .expect("message");
        let body: serde_json::Value = serde_json::from_slice(&m.payload).expect("CloudEvent");
        let headers = m.headers.clone().unwrap_or_default();
        let text = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
        let id = text("Nats-Msg-Id").expect("Nats-Msg-Id");
        assert_eq!(body["id"].as_str(), Some(id.as_str()), "Nats-Msg-Id = id");
        out.push(Seen {
            subject: m.subject.to_string(),
            id,
            case_id: text("Ehr-Case-Id").unwrap_or_default(),
            seq: text("Ehr-Sequence")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            body,
        });
    }
    out
}

/// Asserts the stream holds exactly the store's events, once each, in order per case.
fn assert_exactly_once(
    seen: &[Seen],
    events: &HashMap<String, (String, i64, String)>,
) -> HashSet<String> {
    let case_events: Vec<&Seen> = seen
        .iter()
        .filter(|s| !s.subject.ends_with(".decision_refused"))
        .collect();
    let ids: HashSet<&str> = case_events.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), case_events.len(), "a CloudEvents id twice");
    assert_eq!(case_events.len(), events.len(), "each stored event once");
    let mut last: HashMap<&str, i64> = HashMap::new();
    for s in &case_events {
        let (case_id, seq, _) = events.get(&s.id).expect("event from the store");
        assert_eq!((&s.case_id, s.seq), (case_id, *seq));
        let prev = last.insert(case_id.as_str(), *seq).unwrap_or(0);
        assert_eq!(*seq, prev + 1, "case {case_id}: order kept");
    }
    last.keys().map(|k| (*k).to_owned()).collect()
}

async fn connect(urls: &[String]) -> jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(
            urls.iter()
                .map(|u| u.parse::<async_nats::ServerAddr>().expect("server URL"))
                .collect::<Vec<_>>(),
        )
        .await
        .expect("platform connects");
    let mut js = jetstream::new(client);
    js.set_timeout(Duration::from_secs(10));
    js
}

/// Publishes a decision the way the platform does.
async fn publish_decision(
    js: &jetstream::Context,
    practice: &str,
    case_id: &str,
    key: &str,
    msg_id: &str,
    body: &str,
) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Ehr-Case-Id", case_id);
    headers.insert("Idempotency-Key", key);
    headers.insert("Nats-Msg-Id", msg_id);
    let subject = format!("ehr.{TENANT}.{practice}.decisions");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = match js
            .publish_with_headers(subject.clone(), headers.clone(), body.to_owned().into())
            .await
        {
            Ok(ack) => ack.await.map(|_| ()),
            Err(e) => Err(e),
        };
        match attempt {
            Ok(()) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "decision not stored: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A loopback MLLP receiver standing for the EHR's inbound interface: answers
/// AA to every frame and counts them (the ORU write-backs of decisions).
fn writeback_receiver() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk) else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(2).position(|w| w == [0x1C, 0x0D]) {
                        let frame: Vec<u8> = buf.drain(..end + 2).collect();
                        let text = String::from_utf8_lossy(&frame).into_owned();
                        let id = text
                            .trim_start_matches('\u{b}')
                            .split('\r')
                            .next()
                            .and_then(|msh| msh.split('|').nth(9))
                            .unwrap_or("")
                            .to_owned();
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let ack = format!(
                            "\u{b}MSH|^~\\&|EHR|SITE|GW|MSO|20261122100000||ACK|A{id}|P|2.5.1\rMSA|AA|{id}\r\u{1c}\r"
                        );
                        if stream.write_all(ack.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, count)
}

/// The decisions' write-back states in a gateway's store.
fn writeback_states(dir: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open_with_flags(
        dir.join("data").join("gateway.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("store");
    db.busy_timeout(Duration::from_secs(10)).expect("busy");
    let mut statement = db
        .prepare("SELECT writeback_state FROM decisions")
        .expect("prepare");
    statement
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Waits until the practice's decisions consumer has handled every message.
async fn wait_consumer_idle(js: &jetstream::Context, practice: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stream = js.get_stream("EHR_DECISIONS").await.expect("stream");
        if let Ok(mut consumer) = stream
            .get_consumer::<jetstream::consumer::pull::Config>(&format!("gw_{TENANT}_{practice}"))
            .await
        {
            let info = consumer.info().await.expect("info");
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{practice}: decisions not handled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `ehr-gateway nats provision`, retried while the cluster elects its leader.
fn provision(config: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new(support::bin())
            .args(["nats", "provision", "--config"])
            .arg(config)
            .output()
            .expect("provision");
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(text.contains("stream EHR_EVENTS"), "{text}");
            let check = Command::new(support::bin())
                .args(["nats", "provision", "--check", "--config"])
                .arg(config)
                .output()
                .expect("provision --check");
            let report = String::from_utf8_lossy(&check.stdout).into_owned();
            assert!(check.status.success(), "{report}");
            assert!(report.contains("stream EHR_EVENTS: ok"), "{report}");
            assert!(report.contains("stream EHR_DECISIONS: ok"), "{report}");
            return;
        }
        assert!(
            Instant::now() < deadline && out.status.code() != Some(2),
            "provision failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn template() -> String {
    let raw = support::epic_order();
    let first = gateway_hl7v2::mllp::files::split_messages(&raw)
        .into_iter()
        .next()
        .expect("one message");
    String::from_utf8(first).expect("ASCII sample")
}

/// Waits until the events stream holds `n` messages under `filter`.
async fn wait_stream(js: &jetstream::Context, filter: &str, n: usize) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = platform_read(js, filter).await;
        if seen.len() >= n {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{filter}: {} of {n} messages",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn one_gateway_survives_a_node_kill_and_its_own_kill_9() {
    let Some(binary) = nats_server_or_skip() else {
        return;
    };
    let mut cluster = NatsCluster::start(&binary, 3, &[]);
    let urls = cluster.urls();
    let dir = tempfile::tempdir().expect("tmp");
    let practice = "cardio-north";
    let config = write_config(dir.path(), practice, &urls);
    let log = dir.path().join("daemon.log");
    provision(&config);
    let template = template();
    let burst = |round: usize| -> Vec<(String, usize)> {
        (0..12).map(|i| (format!("R{round}N{i}"), i % 4)).collect()
    };

    let gateway = start(&config, &log);
    let mllp = gateway.mllp;
    let mut acked = send(mllp, &log, &template, &burst(0));
    cluster.nodes[0].kill();
    acked.extend(send(mllp, &log, &template, &burst(1)));
    // kill -9 while the last burst may still be in flight to JetStream, and
    // restart at once: within the duplicate window.
    drop(gateway);
    cluster.nodes[0].start();
    let gateway = start(&config, &log);
    let mllp = gateway.mllp;
    acked.extend(send(mllp, &log, &template, &burst(2)));
    assert_eq!(acked.len(), 36);
    let events = wait_delivered(dir.path(), 4);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let js = connect(&urls).await;
        let filter = format!("ehr.{TENANT}.{practice}.events.>");
        let seen = wait_stream(&js, &filter, events.len()).await;
        let cases = assert_exactly_once(&seen, &events);
        assert_eq!(cases.len(), 4, "one case per order");

        // Decisions back: one committed, its redelivery under the same key,
        // a malformed one and one for an unknown case.
        let case_id = cases.iter().next().expect("a case").clone();
        let decision = r#"{"status":"approved","note":"synthetic"}"#;
        publish_decision(&js, practice, &case_id, "key-1", "d-1", decision).await;
        publish_decision(&js, practice, &case_id, "key-1", "d-1-again", decision).await;
        publish_decision(&js, practice, &case_id, "key-2", "d-2", "{not json").await;
        publish_decision(&js, practice, "no-such-case", "key-3", "d-3", decision).await;
        let want = events.len() + 1 + 2;
        let seen = wait_stream(&js, &filter, want).await;
        // Nothing more arrives: wait for the consumer to have handled all four.
        wait_consumer_idle(&js, practice).await;
        let seen_after = platform_read(&js, &filter).await;
        assert_eq!(seen_after.len(), seen.len(), "no extra event");
        let decided: Vec<&Seen> = seen_after
            .iter()
            .filter(|s| s.subject.ends_with(".events.decided"))
            .collect();
        assert_eq!(
            decided.len(),
            1,
            "the redelivered decision made no second event"
        );
        assert_eq!(decided[0].case_id, case_id);
        let refused: Vec<&Seen> = seen_after
            .iter()
            .filter(|s| s.subject.ends_with(".events.decision_refused"))
            .collect();
        assert_eq!(refused.len(), 2, "malformed and unknown case are refused");
        let reasons: Vec<&str> = refused
            .iter()
            .map(|s| s.body["data"]["reason"].as_str().unwrap_or(""))
            .collect();
        assert!(
            reasons.iter().any(|r| r.starts_with("malformed-json")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.starts_with("unknown-case")),
            "{reasons:?}"
        );
    });
    let events = wait_delivered(dir.path(), 4);
    drop(gateway);
    // The decision is in the store once, with the consumer as audit actor.
    let db =
        rusqlite::Connection::open(dir.path().join("data").join("gateway.sqlite")).expect("store");
    let decisions: i64 = db
        .query_row("SELECT count(*) FROM decisions", [], |r| r.get(0))
        .expect("count");
    assert_eq!(decisions, 1);
    let actor: String = db
        .query_row(
            "SELECT actor FROM audit_log WHERE action = 'decision.record'",
            [],
            |r| r.get(0),
        )
        .expect("audit row");
    assert_eq!(actor, format!("nats:gw_{TENANT}_{practice}"));
    assert!(events.values().any(|(_, _, s)| s == "delivered"));
}

#[test]
fn five_gateways_publish_at_once_and_get_their_decisions_back() {
    let Some(binary) = nats_server_or_skip() else {
        return;
    };
    let cluster = NatsCluster::start(&binary, 3, &[]);
    let urls = cluster.urls();
    let template = template();
    let (ehr_port, written_back) = writeback_receiver();
    let writeback = format!(
        "[[hl7v2.writeback]]\nprofile = \"epic\"\n[hl7v2.writeback.sender]\naddress = \"127.0.0.1:{ehr_port}\"\n"
    );
    // 5 in CI; `EHR_FLEET_GATEWAYS=20` for the documented 20-gateway run.
    let size: usize = std::env::var("EHR_FLEET_GATEWAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut fleet = Vec::new();
    for g in 0..size {
        let dir = tempfile::tempdir().expect("tmp");
        let practice = format!("practice-{g}");
        let config = write_config_with(dir.path(), &practice, &urls, &writeback);
        fleet.push((dir, practice, config));
    }
    provision(&fleet[0].2);
    let started = Instant::now();
    let gateways: Vec<Started> = fleet
        .iter()
        .map(|(dir, _, config)| start(config, &dir.path().join("daemon.log")))
        .collect();
    let senders: Vec<_> = fleet
        .iter()
        .zip(&gateways)
        .map(|((dir, practice, _), gateway)| {
            let (mllp, log) = (gateway.mllp, dir.path().join("daemon.log"));
            let (practice, template) = (practice.clone(), template.clone());
            std::thread::spawn(move || {
                let ids: Vec<(String, usize)> = (0..15)
                    .map(|i| (format!("{practice}-N{i}"), i % 3))
                    .collect();
                send(mllp, &log, &template, &ids)
            })
        })
        .collect();
    for sender in senders {
        assert_eq!(sender.join().expect("sender").len(), 15);
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let js = connect(&urls).await;
        let mut total = 0;
        for (dir, _, _) in &fleet {
            total += wait_delivered(dir.path(), 3).len();
        }
        // A figure for the bench notes, never asserted.
        println!(
            "fleet of {size}: {total} events acknowledged by JetStream {:.1} s after the gateways started",
            started.elapsed().as_secs_f64()
        );
        for (dir, practice, _) in &fleet {
            let events = wait_delivered(dir.path(), 3);
            let filter = format!("ehr.{TENANT}.{practice}.events.>");
            let seen = wait_stream(&js, &filter, events.len()).await;
            let cases = assert_exactly_once(&seen, &events);
            assert_eq!(cases.len(), 3);
            let case_id = cases.iter().next().expect("case").clone();
            let decision = r#"{"status":"approved"}"#;
            let key = format!("{practice}-k");
            publish_decision(&js, practice, &case_id, &key, &format!("{key}-1"), decision).await;
            publish_decision(&js, practice, &case_id, &key, &format!("{key}-2"), decision).await;
        }
        for (dir, practice, _) in &fleet {
            wait_consumer_idle(&js, practice).await;
            let events = wait_delivered(dir.path(), 4);
            let decided: Vec<_> = events.values().filter(|(_, seq, _)| *seq > 0).collect();
            assert!(!decided.is_empty());
            let filter = format!("ehr.{TENANT}.{practice}.events.decided");
            let seen = wait_stream(&js, &filter, 1).await;
            assert_eq!(seen.len(), 1, "{practice}: one decided event");
        }
    });
    // Each gateway's decision is written back by its HL7 adapter, once.
    for (dir, practice, _) in &fleet {
        let deadline = Instant::now() + Duration::from_secs(60);
        while writeback_states(dir.path()) != ["done"] {
            assert!(
                Instant::now() < deadline,
                "{practice}: write-back {:?}",
                writeback_states(dir.path())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert_eq!(
        written_back.load(std::sync::atomic::Ordering::SeqCst),
        size,
        "one ORU per gateway's decision"
    );
    // Each gateway holds its decision once.
    drop(gateways);
    for (dir, practice, _) in &fleet {
        let db = rusqlite::Connection::open(dir.path().join("data").join("gateway.sqlite"))
            .expect("store");
        let n: i64 = db
            .query_row("SELECT count(*) FROM decisions", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 1, "{practice}: the decision once");
    }
}

/// `GET url` as text (a transport error fails the test).
async fn get_text(url: String) -> (u16, String) {
    let r = reqwest::get(url).await.expect("send");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[test]
fn readyz_and_metrics_show_the_jetstream_connection_and_the_outbox_holds() {
    let Some(binary) = nats_server_or_skip() else {
        return;
    };
    let mut cluster = NatsCluster::start(&binary, 1, &[]);
    let urls = cluster.urls();
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(dir.path(), "cardio-north", &urls);
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, text.replace("replicas = 3", "replicas = 1")).expect("config");
    provision(&config);
    let log = dir.path().join("daemon.log");
    let daemon = start(&config, &log);
    let mllp = daemon.mllp;
    let template = template();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let wait_for = |what: &str, cond: &dyn Fn(u16, &serde_json::Value, &str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = runtime.block_on(get_text(daemon.url("/readyz")));
            let (_, metrics) = runtime.block_on(get_text(daemon.url("/metrics")));
            let body: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            if cond(status, &body, &metrics) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let warnings = |body: &serde_json::Value| {
        body["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default()
    };
    wait_for("connected", &|status, body, metrics| {
        status == 200
            && !warnings(body).contains("NATS")
            && metrics.contains("ehr_gateway_nats_connected 1")
    });
    send(mllp, &log, &template, &[("UP-1".to_owned(), 0)]);
    wait_delivered(dir.path(), 1);

    // The cluster goes away: still ready (intake works), says why, gauge 0;
    // an accepted message waits in the outbox.
    cluster.nodes[0].kill();
    wait_for("disconnected", &|status, body, metrics| {
        status == 200
            && body["status"] == "ready"
            && warnings(body).contains("sink: NATS")
            && metrics.contains("ehr_gateway_nats_connected 0")
    });
    send(mllp, &log, &template, &[("DOWN-1".to_owned(), 0)]);
    let pending = store_events(dir.path())
        .values()
        .filter(|(_, _, s)| s == "pending")
        .count();
    assert_eq!(pending, 1, "the event waits in the outbox");

    // Back: reconnected by itself, the waiting event delivered.
    cluster.nodes[0].start();
    wait_for("reconnected", &|status, body, metrics| {
        status == 200
            && !warnings(body).contains("NATS")
            && metrics.contains("ehr_gateway_nats_connected 1")
    });
    let events = wait_delivered(dir.path(), 2);
    assert_eq!(events.len(), 2);
    let (_, metrics) = runtime.block_on(get_text(daemon.url("/metrics")));
    assert!(
        metrics.contains("ehr_gateway_nats_publish_seconds_count"),
        "publish latency histogram"
    );
    // The dashboard's figures show the same link: JetStream, connected, and
    // the publish → acknowledgement latency of the publishes so far.
    let http = reqwest::Client::new();
    let stats = runtime.block_on(support::get_json(
        &http,
        daemon.url("/api/v1/stats"),
        support::TOKEN,
    ));
    let platform = &stats["platform"];
    assert_eq!(platform["sink"], "nats", "{platform}");
    assert_eq!(platform["connected"], true, "{platform}");
    assert!(
        platform["publishes"].as_u64().is_some_and(|n| n >= 2),
        "{platform}"
    );
    assert!(platform["publish_p99_seconds"].is_number(), "{platform}");
}

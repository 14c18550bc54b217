//! Isolation between practices (issue #20 item 3) on a real `nats-server`
//! with the per-practice permissions documented in docs/fleet.md: the real
//! gateway of practice A, running with A's user, publishes its events and
//! takes its decisions; practice B's credentials can use B's own consumer
//! (so they are not simply broken) but can neither read A's events, nor
//! fetch A's decisions, nor publish events as A. Also: `check-config` names
//! the file and key of a missing credentials file, a bad URL and an unknown
//! key, and never prints a password. Skips with a printed reason when
//! nats-server is missing (fails under CI).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_forward::nats::async_nats;
use gateway_forward::nats::async_nats::jetstream;
use gateway_testkit::nats::{NatsCluster, NatsUser, nats_server_or_skip};

mod support;

const TENANT: &str = "mso-test";
const PASSWORD_A: &str = "synthetic-password-practice-a";
const PASSWORD_B: &str = "synthetic-password-practice-b";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The documented permissions of one practice's user.
fn practice_user(practice: &str, password: &str) -> NatsUser {
    let consumer = format!("gw_{TENANT}_{practice}");
    NatsUser {
        user: practice.to_owned(),
        password: password.to_owned(),
        publish: vec![
            format!("ehr.{TENANT}.{practice}.events.>"),
            format!("$JS.API.CONSUMER.INFO.EHR_DECISIONS.{consumer}"),
            format!("$JS.API.CONSUMER.CREATE.EHR_DECISIONS.{consumer}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.EHR_DECISIONS.{consumer}"),
            format!("$JS.ACK.EHR_DECISIONS.{consumer}.>"),
        ],
        subscribe: vec![format!("_INBOX_{TENANT}_{practice}.>")],
    }
}

fn config(
    dir: &Path,
    practice: &str,
    user: &str,
    password: &str,
    servers: &str,
    extra: &str,
) -> PathBuf {
    let password_file = dir.join(format!("{user}.password"));
    std::fs::write(&password_file, format!("{password}\n")).expect("password");
    let mllp = free_port();
    let path = support::write_config(
        dir,
        &format!(
            r#"[forward]
sink = "nats"
[forward.delivery]
poll_interval_ms = 50
[forward.nats]
servers = [{servers}]
user = "{user}"
password_file = "{password}"
replicas = 1
ack_timeout_ms = 3000
{extra}
[[hl7v2.listeners]]
listen = "127.0.0.1:{mllp}"
profile = "epic"
"#,
            password = password_file.display(),
        ),
    );
    // support::write_config writes practice `cardio-north`; set ours.
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replacen(
        "practice = \"cardio-north\"",
        &format!("practice = \"{practice}\""),
        1,
    );
    std::fs::write(&path, text).expect("config");
    path
}

fn mllp_port(config: &Path) -> u16 {
    let text = std::fs::read_to_string(config).expect("config");
    let line = text
        .lines()
        .find(|l| l.starts_with("listen = \"127.0.0.1:") && !l.contains(":0\""))
        .expect("MLLP listen line");
    line.trim_end_matches('"')
        .rsplit(':')
        .next()
        .expect("port")
        .parse()
        .expect("port number")
}

fn send_one(port: u16, id: &str) {
    let raw = support::epic_order();
    let first = gateway_hl7v2::mllp::files::split_messages(&raw)
        .into_iter()
        .next()
        .expect("one message");
    let text = String::from_utf8(first).expect("ASCII");
    let (msh, rest) = text.split_once('\r').expect("segments");
    let mut fields: Vec<&str> = msh.split('|').collect();
    fields[9] = id;
    let payload = format!("{}\r{}", fields.join("|"), rest);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) => {
                assert!(Instant::now() < deadline, "MLLP listener did not come up");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let ack = support::mllp_ack(&mut stream, payload.as_bytes()).expect("ACK");
    assert_eq!(support::msa_code(&ack), "AA");
}

/// A client as practice `user`, with its inbox prefix; server errors
/// (permission violations) are collected.
async fn client_as(
    url: &str,
    user: &str,
    password: &str,
    practice: &str,
) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = errors.clone();
    let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .custom_inbox_prefix(format!("_INBOX_{TENANT}_{practice}"))
        .event_callback(move |event| {
            let seen = seen.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    seen.lock().expect("lock").push(e.to_string());
                }
            }
        })
        .connect(url)
        .await
        .expect("connect");
    (client, errors)
}

fn events_in_stream(store_dir: &Path) -> i64 {
    let db = rusqlite::Connection::open_with_flags(
        store_dir.join("data").join("gateway.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("store");
    db.query_row(
        "SELECT count(*) FROM events WHERE state = 'delivered'",
        [],
        |r| r.get(0),
    )
    .expect("count")
}

#[test]
fn practice_b_cannot_read_or_write_practice_a() {
    let Some(binary) = nats_server_or_skip() else {
        return;
    };
    let admin = NatsUser {
        user: "mso-admin".to_owned(),
        password: "synthetic-admin-password".to_owned(),
        publish: vec![">".to_owned()],
        subscribe: vec![">".to_owned()],
    };
    let cluster = NatsCluster::start(
        &binary,
        1,
        &[
            admin.clone(),
            practice_user("practice-a", PASSWORD_A),
            practice_user("practice-b", PASSWORD_B),
        ],
    );
    let url = cluster.urls()[0].clone();
    let servers = format!("{url:?}");
    let dir_a = tempfile::tempdir().expect("tmp");
    let dir_b = tempfile::tempdir().expect("tmp");
    let dir_admin = tempfile::tempdir().expect("tmp");
    let config_a = config(
        dir_a.path(),
        "practice-a",
        "practice-a",
        PASSWORD_A,
        &servers,
        "",
    );
    let config_b = config(
        dir_b.path(),
        "practice-b",
        "practice-b",
        PASSWORD_B,
        &servers,
        "",
    );
    // The MSO's admin provisions the streams and each practice's consumer
    // (a practice's user may not read stream definitions).
    let dir_admin_b = tempfile::tempdir().expect("tmp");
    let admin_a = config(
        dir_admin.path(),
        "practice-a",
        &admin.user,
        &admin.password,
        &servers,
        "",
    );
    let admin_b = config(
        dir_admin_b.path(),
        "practice-b",
        &admin.user,
        &admin.password,
        &servers,
        "",
    );
    for config in [&admin_a, &admin_b] {
        let out = Command::new(support::bin())
            .args(["nats", "provision", "--config"])
            .arg(config)
            .output()
            .expect("provision");
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A practice's own user cannot even read the stream definitions.
    let out = Command::new(support::bin())
        .args(["nats", "provision", "--check", "--config"])
        .arg(&config_b)
        .output()
        .expect("provision --check");
    assert!(
        !out.status.success(),
        "practice B read the stream definitions"
    );

    // A's gateway works with A's user: events out, a decision in.
    let gateway_a = support::Daemon::start(&config_a);
    send_one(mllp_port(&config_a), "ISO-A-1");
    let deadline = Instant::now() + Duration::from_secs(60);
    while events_in_stream(dir_a.path()) < 1 {
        assert!(Instant::now() < deadline, "A's event not delivered");
        std::thread::sleep(Duration::from_millis(100));
    }

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (admin_client, _) = client_as(&url, &admin.user, &admin.password, "admin").await;
        let admin_js = jetstream::new(admin_client);
        let count = |js: jetstream::Context, filter: String| async move {
            let stream = js.get_stream("EHR_EVENTS").await.expect("stream");
            let mut c = stream
                .create_consumer(jetstream::consumer::pull::Config {
                    filter_subject: filter,
                    ack_policy: jetstream::consumer::AckPolicy::None,
                    ..Default::default()
                })
                .await
                .expect("consumer");
            c.info().await.expect("info").num_pending
        };
        let a_events = count(
            admin_js.clone(),
            format!("ehr.{TENANT}.practice-a.events.>"),
        )
        .await;
        assert!(a_events >= 1, "A's event is in the stream");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Idempotency-Key", "iso-key-a");
        headers.insert("Ehr-Case-Id", "no-such-case");
        admin_js
            .publish_with_headers(
                format!("ehr.{TENANT}.practice-a.decisions"),
                headers,
                r#"{"status":"approved"}"#.into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stored");
        // A's consumer handled it (a refusal event shows it read the message).
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(
            admin_js.clone(),
            format!("ehr.{TENANT}.practice-a.events.decision_refused"),
        )
        .await
            < 1
        {
            assert!(
                Instant::now() < deadline,
                "A's gateway did not take its decision"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // B with B's credentials: its own consumer answers (positive control).
        let (b, b_errors) = client_as(&url, "practice-b", PASSWORD_B, "practice-b").await;
        let mut b_js = jetstream::new(b.clone());
        b_js.set_timeout(Duration::from_secs(2));
        let own: Result<jetstream::consumer::PullConsumer, _> = b_js
            .get_consumer_from_stream(format!("gw_{TENANT}_practice-b"), "EHR_DECISIONS")
            .await;
        assert!(own.is_ok(), "B reaches its own consumer: {:?}", own.err());

        // …but not A's consumer,
        let theirs: Result<jetstream::consumer::PullConsumer, _> = b_js
            .get_consumer_from_stream(format!("gw_{TENANT}_practice-a"), "EHR_DECISIONS")
            .await;
        assert!(theirs.is_err(), "B must not reach A's decisions consumer");
        // …nor A's events or decisions by subscription,
        use futures_util::StreamExt;
        let mut sniff = b
            .subscribe(format!("ehr.{TENANT}.practice-a.>"))
            .await
            .expect("subscribe call");
        b.flush().await.expect("flush");
        admin_js
            .publish(
                format!("ehr.{TENANT}.practice-a.decisions"),
                r#"{"status":"denied"}"#.into(),
            )
            .await
            .expect("publish")
            .await
            .expect("stored");
        let got = tokio::time::timeout(Duration::from_secs(2), sniff.next()).await;
        assert!(
            !matches!(got, Ok(Some(_))),
            "B received a message on A's subjects"
        );
        // …nor publish events as A.
        let forged = b_js
            .publish(
                format!("ehr.{TENANT}.practice-a.events.created"),
                r#"{"forged":true}"#.into(),
            )
            .await;
        let stored = match forged {
            Ok(ack) => ack.await.is_ok(),
            Err(_) => false,
        };
        assert!(!stored, "B's forged event for A must not be stored");
        let deadline = Instant::now() + Duration::from_secs(10);
        while b_errors.lock().expect("lock").is_empty() {
            assert!(
                Instant::now() < deadline,
                "no permissions violation reported"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let errors = b_errors.lock().expect("lock").clone();
        assert!(
            errors
                .iter()
                .all(|e| e.to_lowercase().contains("permissions violation")),
            "{errors:?}"
        );
        let after = count(
            admin_js.clone(),
            format!("ehr.{TENANT}.practice-a.events.created"),
        )
        .await;
        assert_eq!(after, 1, "A's stream holds only A's event");
    });

    // The gateway's log never carries its password.
    let log = gateway_a.drain_lines().join("\n");
    assert!(log.contains("NATS connected"), "{log}");
    assert!(!log.contains(PASSWORD_A), "the password was logged");
    drop(gateway_a);
}

#[test]
fn check_config_names_file_and_key_and_never_prints_a_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(
        dir.path(),
        &format!(
            r#"[forward]
sink = "nats"
[forward.nats]
servers = ["http://nats.mso.example:4222", "nats://nats.mso.example:4222"]
credentials_file = "{missing}"
colour = "blue"
"#,
            missing = dir.path().join("missing.creds").display()
        ),
    );
    let out = Command::new(support::bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("check-config");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("colour"), "unknown key named: {text}");
    assert!(
        text.contains(&config.display().to_string()),
        "file named: {text}"
    );

    // Without the unknown key the semantic checks run.
    let text_config = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, text_config.replace("colour = \"blue\"\n", "")).expect("write");
    let out = Command::new(support::bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("check-config");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("key `forward.nats.servers[0]`"),
        "bad URL: {text}"
    );
    assert!(
        text.contains("key `forward.nats.credentials_file`"),
        "missing creds: {text}"
    );
    assert!(text.contains("missing.creds"), "{text}");
    assert!(
        text.contains("key `forward.nats.servers`"),
        "plaintext to a remote host: {text}"
    );

    // A password from a variable is never printed, whatever else is wrong.
    let secret = "synthetic-secret-value-7731";
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).expect("read").replace(
            &format!(
                "credentials_file = \"{}\"",
                dir.path().join("missing.creds").display()
            ),
            "user = \"u\"\npassword_env = \"FLEET_TEST_NATS_PASSWORD\"",
        ),
    )
    .expect("write");
    let out = Command::new(support::bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .env("FLEET_TEST_NATS_PASSWORD", secret)
        .output()
        .expect("check-config");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(!all.contains(secret), "the password was printed: {all}");
}

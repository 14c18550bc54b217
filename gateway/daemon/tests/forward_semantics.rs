//! What the forwarder does with the platform's refusals, end to end: the real
//! daemon receives orders over MLLP and forwards them to a loopback platform.
//!
//! * The platform answers 401 for a while (its token rotated first), then
//!   202: nothing is dead-lettered and every case arrives in order.
//! * The platform answers 422 for one event: that event is dead-lettered, its
//!   case's later events wait behind it (other cases go on), and a replay
//!   through the admin API releases them in order.
//!
//! Every wait polls a condition with a generous deadline.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gateway_store::Reader;
use gateway_testkit::platform::{PlatformReceiver, Reply};
use serde_json::Value;
use support::Daemon;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Sends the shipped Epic order as order `order` with control id `control`
/// and checks the AA.
fn send(port: u16, order: &str, control: &str) {
    let text = String::from_utf8(support::epic_order())
        .expect("utf-8 sample")
        .replace("|EPIC0001|", &format!("|{control}|"))
        .replace("EP5001", order);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "MLLP listener: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let code = support::mllp_exchange(&mut stream, text.as_bytes());
    assert_eq!(code, "AA");
}

fn placer(event: &Value) -> String {
    event["data"]["references"]["placer_order"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn sequence(event: &Value) -> i64 {
    event["sequence"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("sequence extension")
}

/// Accepted events per placer order, as their sequences in arrival order.
fn arrivals(platform: &PlatformReceiver) -> BTreeMap<String, Vec<i64>> {
    let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in platform.accepted() {
        out.entry(placer(&e)).or_default().push(sequence(&e));
    }
    out
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn start(dir: &std::path::Path, platform: &PlatformReceiver, mllp: u16) -> Daemon {
    let retry = support::Retry {
        poll_ms: 50,
        initial_ms: 50,
        max_ms: 200,
    };
    let config = support::write_http_forwarding_config(dir, &platform.url(), mllp, retry, "");
    Daemon::start(&config)
}

fn outbox(dir: &std::path::Path) -> (u64, u64) {
    let stats = Reader::open(dir.join("data/gateway.sqlite"))
        .and_then(|r| r.outbox_stats())
        .expect("outbox stats");
    (stats.pending, stats.dead)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_is_retried_until_the_platform_takes_the_token() {
    let platform = PlatformReceiver::start().await;
    // The platform rotated first: our token is refused for now.
    platform.require_token("platform-token-0002");
    let dir = tempfile::tempdir().expect("tmp");
    let mllp = free_port();
    let daemon = start(dir.path(), &platform, mllp);
    for (order, control) in [
        ("PA1", "A1-1"),
        ("PA2", "A2-1"),
        ("PA1", "A1-2"),
        ("PA3", "A3-1"),
        ("PA2", "A2-2"),
        ("PA1", "A1-3"),
    ] {
        tokio::task::spawn_blocking(move || send(mllp, order, control))
            .await
            .expect("send");
    }
    wait_for("several 401 answers", Duration::from_secs(30), || {
        platform
            .requests()
            .iter()
            .filter(|r| r.status == 401)
            .count()
            >= 4
    })
    .await;
    assert_eq!(outbox(dir.path()).1, 0, "a 401 dead-letters nothing");
    // The platform accepts our token again (the rotation completed).
    platform.require_token("platform-token-0001");
    wait_for("every event", Duration::from_secs(60), || {
        platform.accepted().len() >= 6
    })
    .await;
    wait_for("an empty outbox", Duration::from_secs(30), || {
        outbox(dir.path()) == (0, 0)
    })
    .await;
    let got = arrivals(&platform);
    assert_eq!(got["PA1"], [1, 2, 3], "{got:?}");
    assert_eq!(got["PA2"], [1, 2], "{got:?}");
    assert_eq!(got["PA3"], [1], "{got:?}");
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_422_holds_its_case_back_until_a_replay_releases_it_in_order() {
    let platform = PlatformReceiver::start().await;
    // The first delivery of order PB1's first event is refused as bad data.
    platform.set_rule(|req| {
        let event = req.event.as_ref()?;
        (placer(event) == "PB1" && sequence(event) == 1 && req.attempt == 1)
            .then(|| Reply::status(422, "data.services[0].code: unknown code system"))
    });
    let dir = tempfile::tempdir().expect("tmp");
    let mllp = free_port();
    let daemon = start(dir.path(), &platform, mllp);
    for (order, control) in [
        ("PB1", "B1-1"),
        ("PB1", "B1-2"),
        ("PB2", "B2-1"),
        ("PB1", "B1-3"),
        ("PB2", "B2-2"),
    ] {
        tokio::task::spawn_blocking(move || send(mllp, order, control))
            .await
            .expect("send");
    }
    // The other case is delivered; PB1's first event is dead and the two
    // after it wait.
    wait_for(
        "PB2 delivered and PB1 held",
        Duration::from_secs(60),
        || platform.accepted().len() >= 2 && outbox(dir.path()) == (2, 1),
    )
    .await;
    let got = arrivals(&platform);
    assert_eq!(got.get("PB2").map(Vec::as_slice), Some(&[1, 2][..]));
    assert!(
        !got.contains_key("PB1"),
        "nothing of PB1 delivered: {got:?}"
    );
    let reader = Reader::open(dir.path().join("data/gateway.sqlite")).expect("reader");
    let dead = reader.dead_letters(10).expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].sequence, 1);
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("HTTP 422")),
        "{:?}",
        dead[0].last_error
    );
    // An operator replays it through the admin API: PB1 follows in order.
    let http = reqwest::Client::new();
    let response = http
        .post(daemon.url(&format!("/api/v1/dead-letters/{}/replay", dead[0].id)))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .expect("replay");
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    wait_for("PB1 delivered", Duration::from_secs(60), || {
        platform.accepted().len() >= 5
    })
    .await;
    let got = arrivals(&platform);
    assert_eq!(got["PB1"], [1, 2, 3], "{got:?}");
    wait_for("an empty outbox", Duration::from_secs(30), || {
        outbox(dir.path()) == (0, 0)
    })
    .await;
    drop(daemon);
}

//! SIGTERM drains (in-flight deliveries finish within the grace period),
//! SIGINT stops at once (the in-flight delivery is abandoned and stays
//! pending for the next start). The central platform is a slow loopback
//! HTTP receiver.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::post;

/// Receives events, answering each after `delay`; counts answered requests.
async fn slow_platform(
    delay: Duration,
) -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let arrived = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let (a, b) = (arrived.clone(), answered.clone());
    let app = Router::new().route(
        "/events",
        post(move || {
            let (a, b) = (a.clone(), b.clone());
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                b.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, arrived, answered)
}

async fn wait_for(counter: &AtomicUsize, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while counter.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the platform"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn setup(addr: std::net::SocketAddr, grace_ms: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(
        dir.path(),
        &format!(
            "[forward]\nsink = \"http\"\n[forward.http]\nurl = \"http://{addr}/events\"\ntimeout_ms = 10000\n[shutdown]\ngrace_period_ms = {grace_ms}\n"
        ),
    );
    support::seed(&dir.path().join("data"));
    (dir, config)
}

fn event_state(dir: &std::path::Path) -> String {
    let reader = gateway_store::Reader::open(dir.join("data/gateway.sqlite")).expect("reader");
    let events = reader
        .case_events("case-0123456789abcdef01234567")
        .expect("events");
    events[0].state.as_str().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_the_in_flight_delivery() {
    let (addr, arrived, answered) = slow_platform(Duration::from_millis(1500)).await;
    let (dir, config) = setup(addr, 8000);
    let mut daemon = support::Daemon::start(&config);
    wait_for(&arrived, 1).await;
    daemon.signal("TERM");
    let (code, took) = tokio::task::spawn_blocking(move || {
        let r = daemon.wait_exit(Duration::from_secs(15));
        (r, daemon.drain_lines())
    })
    .await
    .expect("join")
    .0;
    assert_eq!(code, Some(0));
    assert_eq!(answered.load(Ordering::SeqCst), 1, "the delivery finished");
    assert!(
        took >= Duration::from_millis(500),
        "waited for the in-flight delivery ({took:?})"
    );
    assert_eq!(event_state(dir.path()), "delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_stops_without_waiting() {
    let (addr, arrived, answered) = slow_platform(Duration::from_secs(5)).await;
    let (dir, config) = setup(addr, 8000);
    let mut daemon = support::Daemon::start(&config);
    wait_for(&arrived, 1).await;
    daemon.signal("INT");
    let (code, took) =
        tokio::task::spawn_blocking(move || daemon.wait_exit(Duration::from_secs(15)))
            .await
            .expect("join");
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(3), "fast stop took {took:?}");
    assert_eq!(answered.load(Ordering::SeqCst), 0);
    assert_eq!(
        event_state(dir.path()),
        "pending",
        "unsent event kept for the next start"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_is_bounded_by_the_grace_period() {
    let (addr, arrived, _answered) = slow_platform(Duration::from_secs(30)).await;
    let (dir, config) = setup(addr, 1000);
    let mut daemon = support::Daemon::start(&config);
    wait_for(&arrived, 1).await;
    daemon.signal("TERM");
    let (code, took) =
        tokio::task::spawn_blocking(move || daemon.wait_exit(Duration::from_secs(15)))
            .await
            .expect("join");
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(5),
        "grace period of 1 s exceeded: {took:?}"
    );
    assert_eq!(event_state(dir.path()), "pending");
}

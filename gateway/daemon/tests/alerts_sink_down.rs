//! The sink-down alert end to end: the real daemon forwards to a loopback
//! platform that answers 503 until told otherwise; a loopback webhook counts
//! what the daemon posts. Exactly one `firing` after the debounce, none more
//! while the platform stays down, exactly one `resolved` once it recovers.
//! Every wait polls a condition with a deadline.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use gateway_testkit::platform::{PlatformReceiver, Reply};
use serde_json::Value;
use support::Daemon;

/// One webhook post: when, its `Authorization` header, its body.
type Post = (Instant, Option<String>, Value);

/// A loopback alert webhook answering 200 to every JSON post.
struct Hook {
    url: String,
    posts: Arc<Mutex<Vec<Post>>>,
}

impl Hook {
    async fn start() -> Hook {
        let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(posts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hook {
            url: format!("http://{addr}/hook"),
            posts,
        }
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().expect("lock").clone()
    }

    fn count(&self, status: &str) -> usize {
        self.posts()
            .iter()
            .filter(|(_, _, body)| body["status"] == status)
            .count()
    }
}

async fn receive(
    State(posts): State<Arc<Mutex<Vec<Post>>>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> &'static str {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    posts
        .lock()
        .expect("lock")
        .push((Instant::now(), auth, body));
    "ok"
}

/// Polls `done` every 50 ms until it holds, failing with `what` after `limit`.
async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn alerts_api(daemon_url: &str) -> Value {
    reqwest::Client::new()
        .get(daemon_url)
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .expect("GET /api/v1/alerts")
        .error_for_status()
        .expect("2xx")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_stays_down_fires_once_and_resolves_once() {
    let platform = PlatformReceiver::start().await;
    platform.set_rule(|_| Some(Reply::status(503, "platform down for maintenance")));
    let hook = Hook::start().await;

    let dir = tempfile::tempdir().expect("tmp");
    // One accepted message with its case: one event waits in the outbox.
    support::seed(&dir.path().join("data"));
    let hook_token = dir.path().join("hook.token");
    std::fs::write(&hook_token, "hook-secret-0001\n").expect("hook token");
    let config = support::write_config(
        dir.path(),
        &format!(
            r#"[forward]
sink = "http"
[forward.http]
url = "{platform}"
timeout_ms = 1000
[forward.delivery]
poll_interval_ms = 50
[forward.delivery.backoff]
initial_ms = 100
max_ms = 200
[alerts]
interval = "100ms"
[alerts.webhook]
url = "{hook}"
bearer_token_file = "{token}"
backoff_initial = "100ms"
[alerts.sink_down]
failures = 2
for = "1s"
"#,
            platform = platform.url(),
            hook = hook.url,
            token = hook_token.display(),
        ),
    );
    let daemon = tokio::task::spawn_blocking(move || Daemon::start(&config))
        .await
        .expect("start");
    let alerts_url = daemon.url("/api/v1/alerts");

    // Down: exactly one `firing` per alert — sink_down, and
    // platform_unreachable (the platform answers 503) — no earlier than the
    // debounce allows.
    wait_for("the firing posts", Duration::from_secs(15), || {
        hook.count("firing") >= 2
    })
    .await;
    let posts = hook.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    let mut fired: Vec<&str> = posts.iter().filter_map(|p| p.2["alert"].as_str()).collect();
    fired.sort_unstable();
    assert_eq!(fired, ["platform_unreachable", "sink_down"]);
    let (fired_at, auth, body) = posts
        .iter()
        .find(|p| p.2["alert"] == "sink_down")
        .expect("sink_down post");
    let unreachable = &posts
        .iter()
        .find(|p| p.2["alert"] == "platform_unreachable")
        .expect("platform_unreachable post")
        .2;
    assert!(
        unreachable["summary"]
            .as_str()
            .is_some_and(|s| s.contains("HTTP 503")),
        "{unreachable}"
    );
    assert_eq!(auth.as_deref(), Some("Bearer hook-secret-0001"));
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alert"], "sink_down");
    assert_eq!(body["labels"]["sink"], "http");
    assert_eq!(body["threshold"], 2.0);
    assert!(body["value"].as_f64().expect("value") >= 2.0, "{body}");
    assert!(body["ended_at"].is_null());
    assert_eq!(body["gateway"]["tenant"], "mso-test");
    let requests = platform.requests();
    assert!(requests.len() >= 2, "fired before two failed attempts");
    assert!(
        fired_at.duration_since(requests[1].at) >= Duration::from_secs(1),
        "fired before the condition held for 1s"
    );
    let api = alerts_api(&alerts_url).await;
    let active: Vec<&str> = api["active"]
        .as_array()
        .expect("active")
        .iter()
        .filter(|a| a["phase"] == "firing")
        .filter_map(|a| a["alert"].as_str())
        .collect();
    assert!(active.contains(&"sink_down"), "{api}");

    // Still down for many more attempts and evaluations: no repeat.
    let seen = platform.arrivals();
    wait_for("more failed deliveries", Duration::from_secs(10), || {
        platform.arrivals() >= seen + 8
    })
    .await;
    assert_eq!(hook.posts().len(), 2, "repeated while down");

    // Recovers: the event is delivered and exactly one `resolved` follows.
    platform.clear_rule();
    wait_for("the resolved posts", Duration::from_secs(15), || {
        hook.count("resolved") >= 2
    })
    .await;
    assert_eq!(platform.accepted().len(), 1);
    let resolved = hook
        .posts()
        .into_iter()
        .find(|(_, _, b)| b["status"] == "resolved" && b["alert"] == "sink_down")
        .expect("resolved")
        .2;
    assert_eq!(resolved["alert"], "sink_down");
    assert_eq!(resolved["started_at"], body["started_at"]);
    assert!(resolved["ended_at"].is_string());
    // The daemon's own view agrees: nothing active, two transitions.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let api = alerts_api(&alerts_url).await;
        if api["active"].as_array().is_some_and(Vec::is_empty) {
            let recent = api["recent"].as_array().expect("recent");
            let statuses: Vec<&str> = recent.iter().filter_map(|e| e["status"].as_str()).collect();
            assert_eq!(statuses, ["resolved", "resolved", "firing", "firing"]);
            break;
        }
        assert!(Instant::now() < deadline, "alert still active: {api}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(hook.count("firing"), 2);
    assert_eq!(hook.count("resolved"), 2);
    drop(daemon);
}

//! Access control of the admin server over real HTTP against the real
//! binary: every endpoint refuses the unknown (401) and the under-privileged
//! (403) with problem bodies and admits its role; PHI is redacted without
//! `phi:read`; PHI reads and replays land in the audit log and replays in
//! the manual-intervention counter; browser login → cookie → API, CSRF on
//! cookie-authenticated changes, logout, failed-login audit and rate limit;
//! no token ever appears in the daemon's log.

mod support;

use std::path::Path;

use reqwest::StatusCode;
use serde_json::Value;

const VIEWER: &str = "viewer-token-synthetic-000000000001";
const OPERATOR: &str = "operator-token-synthetic-00000000002";
const PHI: &str = "phi-token-synthetic-00000000000003";

/// Named tokens in files next to the config, plus `extra`.
fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let mut toml = String::new();
    for (name, token, roles) in [
        ("view-desk", VIEWER, r#"["viewer"]"#),
        ("ops-desk", OPERATOR, r#"["viewer", "operator"]"#),
        ("chart-reader", PHI, r#"["phi:read"]"#),
    ] {
        let file = dir.join(format!("{name}.token"));
        std::fs::write(&file, format!("{token}\n")).expect("token file");
        toml.push_str(&format!(
            "[[admin.tokens]]\nname = \"{name}\"\ntoken_file = \"{}\"\nroles = {roles}\n",
            file.display()
        ));
    }
    toml.push_str(extra);
    support::write_config(dir, &toml)
}

/// Seeds the store (one accepted message with its case, one rejected) and
/// dead-letters the case's first event; returns (case id, event id).
fn seed_with_dead_letter(data_dir: &Path) -> (String, String) {
    let case_id = support::seed(data_dir);
    let path = data_dir.join("gateway.sqlite");
    let id = case_id.clone();
    let event_id = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let store = gateway_store::Store::open(&path, gateway_store::StoreOptions::default())
                .await
                .expect("store");
            let event = store
                .read(move |r| r.case_events(&id))
                .await
                .expect("events")
                .into_iter()
                .next()
                .expect("one event");
            store
                .record_attempt(gateway_store::DeliveryAttempt {
                    event_id: event.id.clone(),
                    sink: "http".to_owned(),
                    http_status: Some(400),
                    outcome: gateway_store::AttemptOutcome::Dead {
                        error: "HTTP 400 from the platform".to_owned(),
                    },
                })
                .await
                .expect("dead-letter");
            store.close().await;
            event.id
        })
    })
    .join()
    .expect("seed thread");
    (case_id, event_id)
}

async fn assert_problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "{}", response.url());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["status"], status.as_u16());
    body
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Need {
    Viewer,
    Operator,
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_per_endpoint_redaction_audit_and_counters() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config(dir.path(), "");
    // One wrong bearer per endpoint from this address: above the default
    // per-minute limit (the limit has its own test).
    admin_key(&config, "login_failures_per_minute = 1000");
    let (case_id, event_id) = seed_with_dead_letter(&dir.path().join("data"));
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::new();

    let endpoints: Vec<(&str, String, Need)> = vec![
        ("GET", "/api/v1/messages".into(), Need::Viewer),
        ("GET", "/api/v1/messages/2".into(), Need::Viewer),
        ("GET", format!("/api/v1/cases/{case_id}"), Need::Viewer),
        ("GET", "/api/v1/dead-letters".into(), Need::Viewer),
        ("GET", "/api/v1/adapters".into(), Need::Viewer),
        ("GET", "/api/v1/audit".into(), Need::Operator),
        ("POST", "/api/v1/messages/2/replay".into(), Need::Operator),
        (
            "POST",
            format!("/api/v1/dead-letters/{event_id}/replay"),
            Need::Operator,
        ),
        (
            "POST",
            format!("/api/v1/cases/{case_id}/decision"),
            Need::Operator,
        ),
    ];
    let mut replays = 0;
    for (method, path, need) in &endpoints {
        for (who, token) in [
            ("none", None),
            ("wrong", Some("not-a-token")),
            ("viewer", Some(VIEWER)),
            ("operator", Some(OPERATOR)),
            ("phi", Some(PHI)),
        ] {
            let mut request = match *method {
                "GET" => http.get(daemon.url(path)),
                _ => http
                    .post(daemon.url(path))
                    .header("content-type", "application/json")
                    .body("{}"),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("send");
            let allowed = match (who, need) {
                ("none" | "wrong", _) => false,
                (_, Need::Viewer) => true,
                ("operator", Need::Operator) => true,
                _ => false,
            };
            match who {
                "none" | "wrong" => {
                    let body = assert_problem(response, StatusCode::UNAUTHORIZED).await;
                    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
                }
                _ if !allowed => {
                    let body = assert_problem(response, StatusCode::FORBIDDEN).await;
                    assert_eq!(
                        body["required_role"], "operator",
                        "{method} {path} as {who}"
                    );
                }
                _ => {
                    let status = response.status();
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{method} {path} as {who}: {status}"
                    );
                    if path.ends_with("/replay") && status == StatusCode::ACCEPTED {
                        replays += 1;
                    }
                }
            }
        }
    }
    // Message 2 (rejected) replayed once by the operator; the dead letter
    // once (a second attempt would be 409: it is pending now).
    assert_eq!(replays, 2);
    let again = http
        .post(daemon.url(&format!("/api/v1/dead-letters/{event_id}/replay")))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .expect("send");
    assert_problem(again, StatusCode::CONFLICT).await;

    // PHI: redacted for a viewer, shown (and audited) for phi:read.
    let get = |path: String, token: &'static str| {
        let http = http.clone();
        let url = daemon.url(&path);
        async move {
            let r = http.get(url).bearer_auth(token).send().await.expect("send");
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.expect("text")
        }
    };
    let text = get("/api/v1/messages/2".into(), VIEWER).await;
    assert!(
        !text.contains("MSH|"),
        "raw bytes leaked to a viewer: {text}"
    );
    let shown: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(shown["raw"]["redacted"], true);
    assert_eq!(shown["parsed"]["redacted"], true);
    assert_eq!(shown["message"]["control_id"], "MSG0002");
    let shown: Value =
        serde_json::from_str(&get("/api/v1/messages/2".into(), PHI).await).expect("json");
    assert!(
        shown["raw"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("MSH|")),
        "{shown}"
    );
    assert!(
        shown["parsed"]["tree"]
            .as_str()
            .is_some_and(|t| t.contains("PID"))
    );
    let text = get(format!("/api/v1/cases/{case_id}"), VIEWER).await;
    assert!(
        !text.contains("Testpatient") && !text.contains("E10001"),
        "{text}"
    );
    let case: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(case["case"]["patient"]["redacted"], true);
    assert!(
        case["redacted"].as_array().is_some_and(
            |r| r.iter().any(|p| p == "/patient") && r.iter().any(|p| p == "/services")
        ),
        "{case}"
    );
    // Services are clinical content: PHI since issue 15 (gateway_core::phi).
    assert_eq!(case["case"]["services"]["redacted"], true, "{case}");
    assert!(!text.contains("78452"), "{text}");
    assert_eq!(case["case"]["source"]["control_id"], "MSG0001");
    let case: Value =
        serde_json::from_str(&get(format!("/api/v1/cases/{case_id}"), PHI).await).expect("json");
    assert_eq!(case["case"]["patient"]["name"]["family"], "Testpatient");

    // Search: by control id, state, time range; paging.
    let list: Value =
        serde_json::from_str(&get("/api/v1/messages?control_id=MSG0001".into(), VIEWER).await)
            .expect("json");
    assert_eq!(list["total"], 1);
    assert_eq!(list["messages"][0]["id"], 1);
    let list: Value = serde_json::from_str(
        &get(
            "/api/v1/messages?status=accepted&control_id=MSG0001&since=2026-11-22T09:00:00Z&until=2026-11-22T11:00:00Z"
                .into(),
            VIEWER,
        )
        .await,
    )
    .expect("json");
    assert_eq!(list["total"], 1);
    assert_eq!(list["messages"][0]["control_id"], "MSG0001");
    let empty: Value = serde_json::from_str(
        &get("/api/v1/messages?until=2026-11-22T09:00:00Z".into(), VIEWER).await,
    )
    .expect("json");
    assert_eq!(empty["total"], 0);
    let list: Value =
        serde_json::from_str(&get("/api/v1/messages?limit=1".into(), VIEWER).await).expect("json");
    assert_eq!(list["total"], 2);
    assert_eq!(list["next_before_id"], 2);
    let bad = http
        .get(daemon.url("/api/v1/messages?since=yesterday"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("send");
    assert_problem(bad, StatusCode::BAD_REQUEST).await;
    // Forward paging filters by state, control id and time only: other
    // filters are refused by name instead of being dropped silently.
    let forward: Value = serde_json::from_str(
        &get(
            "/api/v1/messages?after_id=0&control_id=MSG0002".into(),
            VIEWER,
        )
        .await,
    )
    .expect("json");
    assert_eq!(forward["messages"][0]["control_id"], "MSG0002", "{forward}");
    assert_eq!(forward["messages"].as_array().map(Vec::len), Some(1));
    let bad = http
        .get(daemon.url("/api/v1/messages?after_id=0&adapter=hl7v2&case_id=x"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .expect("send");
    let problem = assert_problem(bad, StatusCode::BAD_REQUEST).await;
    assert!(
        problem.to_string().contains("adapter, case_id"),
        "{problem}"
    );
    let dead: Value =
        serde_json::from_str(&get("/api/v1/dead-letters".into(), VIEWER).await).expect("json");
    assert_eq!(
        dead["total"], 0,
        "the replayed dead letter is pending again"
    );

    // The audit log has every PHI read and every replay, with the case.
    let audit: Value =
        serde_json::from_str(&get("/api/v1/audit?limit=100".into(), OPERATOR).await).expect("json");
    let entries = audit["entries"].as_array().expect("entries");
    let has = |action: &str, actor: &str, target: &str, case: Option<&str>| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["actor"] == actor
                && e["target"] == target
                && case.is_none_or(|c| e["case_id"] == c)
        })
    };
    assert!(
        has("phi.read", "chart-reader", "message:2", None),
        "{audit}"
    );
    assert!(
        has(
            "phi.read",
            "chart-reader",
            &format!("case:{case_id}"),
            Some(&case_id)
        ),
        "{audit}"
    );
    assert!(
        has("message.replay", "ops-desk", "message:2", None),
        "{audit}"
    );
    assert!(
        has(
            "event.replay",
            "ops-desk",
            &format!("event:{event_id}"),
            Some(&case_id)
        ),
        "{audit}"
    );
    assert!(
        !entries
            .iter()
            .any(|e| e["action"] == "phi.read" && e["actor"] == "view-desk"),
        "a redacted read is not a PHI read: {audit}"
    );
    let replay_only: Value =
        serde_json::from_str(&get("/api/v1/audit?action=event.replay".into(), OPERATOR).await)
            .expect("json");
    assert_eq!(replay_only["entries"].as_array().map(Vec::len), Some(1));

    // Replays are manual interventions.
    let metrics = http
        .get(daemon.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("ehr_gateway_manual_interventions_total{reason=\"replay\"} 2\n"),
        "{metrics}"
    );

    // No token in the log.
    let log = daemon.drain_lines().join("\n");
    for token in [VIEWER, OPERATOR, PHI, support::TOKEN, "not-a-token"] {
        assert!(!log.contains(token), "token {token} in the log");
    }
}

/// Adds `line` to the config's `[admin]` table.
fn admin_key(config: &Path, line: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = text.replacen("[admin]\n", &format!("[admin]\n{line}\n"), 1);
    std::fs::write(config, text).expect("config");
}

fn session_cookie(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("set-cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} missing in {set}");
    }
    let pair = set.split(';').next().expect("pair").trim().to_owned();
    assert!(pair.starts_with("ehr_gateway_session="), "{set}");
    assert_eq!(pair.len(), "ehr_gateway_session=".len() + 64);
    pair
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_login_cookie_csrf_logout_and_failed_logins() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config(dir.path(), "");
    admin_key(&config, "login_failures_per_minute = 3");
    support::seed(&dir.path().join("data"));
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = |body: String| {
        http.post(daemon.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };

    // Without a session the API refuses the browser.
    let r = http
        .get(daemon.url("/api/v1/messages"))
        .send()
        .await
        .expect("send");
    assert_problem(r, StatusCode::UNAUTHORIZED).await;

    // The login page: a form, no external assets.
    let r = http.get(daemon.url("/login")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = r.text().await.expect("html");
    assert!(
        page.contains("<form method=\"post\" action=\"/login\">"),
        "{page}"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );

    // A wrong token: 401, no cookie.
    let r = form("token=wrong-token-1".into()).await.expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("set-cookie").is_none());

    // The operator logs in: 303 to `next`, a session cookie.
    let r = form(format!("token={OPERATOR}&next=%2Fapi%2Fv1%2Fsession"))
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/api/v1/session");
    let cookie = session_cookie(&r);
    let r = form(format!("token={OPERATOR}&next=https://evil.example/"))
        .await
        .expect("send");
    assert_eq!(r.headers()["location"], "/", "no open redirect");

    // The cookie works for GETs; the session tells the CSRF token.
    let me: Value = http
        .get(daemon.url("/api/v1/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(me["name"], "ops-desk");
    let csrf = me["csrf_token"].as_str().expect("csrf").to_owned();
    let r = http
        .get(daemon.url("/api/v1/messages"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);

    // A cookie-authenticated POST needs the CSRF header.
    let replay = daemon.url("/api/v1/messages/2/replay");
    let r = http
        .post(&replay)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = http
        .post(&replay)
        .header("cookie", &cookie)
        .header("x-csrf-token", "0".repeat(64))
        .send()
        .await
        .expect("send");
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = http
        .post(&replay)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Logout needs the token too, then the cookie is dead.
    let r = http
        .post(daemon.url("/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = http
        .post(daemon.url("/logout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={csrf}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login");
    let r = http
        .get(daemon.url("/api/v1/messages"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_problem(r, StatusCode::UNAUTHORIZED).await;

    // Failed logins are limited per address: 3 a minute, then 429.
    for i in 0..3 {
        let r = form(format!("token=wrong-token-{i}")).await.expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let r = form(format!("token={OPERATOR}")).await.expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    assert!(
        r.headers().get("set-cookie").is_none(),
        "no login while locked"
    );

    // Logins and failures are audited, without the presented value.
    let audit: Value = http
        .get(daemon.url("/api/v1/audit?limit=100"))
        .bearer_auth(support::TOKEN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let entries = audit["entries"].as_array().expect("entries");
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("login"), 2, "{audit}");
    assert_eq!(count("login.failed"), 4, "{audit}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "message.replay" && e["actor"] == "ops-desk"),
        "{audit}"
    );
    let text = audit.to_string();
    assert!(
        !text.contains("wrong-token") && !text.contains(OPERATOR),
        "{text}"
    );

    let log = daemon.drain_lines().join("\n");
    for secret in [
        OPERATOR,
        "wrong-token",
        csrf.as_str(),
        &cookie["ehr_gateway_session=".len()..],
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_metrics_token_and_open_health() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("metrics.token");
    std::fs::write(&file, "metrics-token-synthetic-000000000000\n").expect("token");
    let config = support::write_config(dir.path(), "");
    admin_key(
        &config,
        &format!("metrics_token_file = \"{}\"", file.display()),
    );
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/api/v1/openapi.yaml"] {
        let r = http.get(daemon.url(path)).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = http.get(daemon.url("/metrics")).send().await.expect("send");
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let r = http
        .get(daemon.url("/metrics"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("send");
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    for token in ["metrics-token-synthetic-000000000000", support::TOKEN] {
        let r = http
            .get(daemon.url("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::OK);
    }
    // The metrics token is not an API token.
    let r = http
        .get(daemon.url("/api/v1/messages"))
        .bearer_auth("metrics-token-synthetic-000000000000")
        .send()
        .await
        .expect("send");
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
}

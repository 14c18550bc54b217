//! Admin access hardening on the real binary: `check-config` (and `run`)
//! refuse a token shorter than 32 characters and name the key it came from
//! (`token_file` or `token_env`, as configured); failed bearer attempts are
//! limited per client address (429 with `Retry-After`, also for a valid token
//! from that address, until the minute has passed); the CSRF token belongs to
//! the browser session, not to the principal.

mod support;

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

fn check_config(config: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(support::bin())
        .current_dir(support::repo_root())
        .args(["check-config", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .expect("run binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_refuses_a_ten_character_token_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let short = "short-tokn";
    assert_eq!(short.len(), 10);
    let file = dir.path().join("ops.token");
    std::fs::write(&file, format!("{short}\n")).expect("token");
    let config = support::write_config(
        dir.path(),
        &format!(
            "[[admin.tokens]]\nname = \"ops\"\ntoken_file = \"{}\"\nroles = [\"viewer\"]\n\
             [[admin.tokens]]\nname = \"bus\"\ntoken_env = \"SYN_BUS_TOKEN\"\nroles = [\"operator\"]\n",
            file.display()
        ),
    );
    let (code, stderr) = check_config(&config, &[("SYN_BUS_TOKEN", "0123456789")]);
    assert_eq!(code, Some(2), "{stderr}");
    for key in ["admin.tokens[0].token_file", "admin.tokens[1].token_env"] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("`{key}`")) && l.contains("shorter than 32")),
            "{key} not named: {stderr}"
        );
    }
    assert!(
        !stderr.contains(short),
        "a token value in the output: {stderr}"
    );

    // The legacy single token from the environment: the key says token_env.
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[gateway]\ntenant = \"t\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"SYN_ADMIN_TOKEN\"\n",
    )
    .expect("config");
    let (code, stderr) = check_config(&config, &[("SYN_ADMIN_TOKEN", "0123456789")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`admin.token_env`") && !stderr.contains("admin.token_file"),
        "{stderr}"
    );
    let (code, stderr) = check_config(&config, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("`admin.token_env`") && stderr.contains("SYN_ADMIN_TOKEN is not set"),
        "an unset variable is named under token_env: {stderr}"
    );
    let (code, stderr) = check_config(
        &config,
        &[("SYN_ADMIN_TOKEN", "synthetic-admin-token-00000000000000")],
    );
    assert_eq!(code, Some(0), "{stderr}");

    // The example config says what happens without its variable: refused,
    // naming admin.token_env.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local.toml");
    let text = std::fs::read_to_string(&example).expect("example");
    assert!(text.contains("name the key `admin.token_env`"), "{text}");
    let (code, stderr) = check_config(&example, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`admin.token_env`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_bearer_attempts_are_limited_per_address() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(dir.path(), "");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replacen("[admin]\n", "[admin]\nlogin_failures_per_minute = 3\n", 1),
    )
    .expect("config");
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::new();
    let get = |token: &str| {
        http.get(daemon.url("/api/v1/messages"))
            .bearer_auth(token)
            .send()
    };
    // A valid token does not count.
    assert_eq!(
        get(support::TOKEN).await.expect("send").status(),
        StatusCode::OK
    );
    for i in 0..3 {
        let r = get(&format!("wrong-token-synthetic-{i:020}"))
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    for token in ["wrong-token-synthetic-again-000000", support::TOKEN] {
        let r = get(token).await.expect("send");
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().get("retry-after").is_some());
        let body: Value = r.json().await.expect("problem");
        assert_eq!(body["status"], 429);
    }
    // Health needs no token and is not limited.
    let r = http.get(daemon.url("/healthz")).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let log = daemon.drain_lines().join("\n");
    assert!(!log.contains("wrong-token-synthetic"), "a token in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_csrf_token_belongs_to_the_session() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(dir.path(), "");
    support::seed(&dir.path().join("data"));
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = || async {
        let r = http
            .post(daemon.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", support::TOKEN))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("cookie")
            .to_owned();
        let me: Value = http
            .get(daemon.url("/api/v1/session"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        let csrf = me["csrf_token"].as_str().expect("csrf").to_owned();
        (cookie, csrf)
    };
    let (cookie_a, csrf_a) = login().await;
    let (cookie_b, csrf_b) = login().await;
    assert_ne!(
        csrf_a, csrf_b,
        "one principal, two sessions, one CSRF token"
    );

    // A bearer caller gets no CSRF token: it needs none.
    let me = support::get_json(&http, daemon.url("/api/v1/session"), support::TOKEN).await;
    assert!(me["csrf_token"].is_null(), "{me}");

    let replay = daemon.url("/api/v1/messages/2/replay");
    let r = http
        .post(&replay)
        .header("cookie", &cookie_b)
        .header("x-csrf-token", &csrf_a)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "session A's token in session B"
    );
    let r = http
        .post(&replay)
        .header("cookie", &cookie_b)
        .header("x-csrf-token", &csrf_b)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Logging out of A leaves B's token valid and A's dead.
    let r = http
        .post(daemon.url("/logout"))
        .header("cookie", &cookie_a)
        .header("x-csrf-token", &csrf_a)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = http
        .get(daemon.url("/api/v1/messages"))
        .header("cookie", &cookie_a)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(daemon.url("/api/v1/messages"))
        .header("cookie", &cookie_b)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
}

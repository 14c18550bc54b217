//! `openapi.yaml` and the router agree: every `/api/v1` route registered in
//! the daemon's sources is documented with its methods, and every documented
//! path and method is answered by the running daemon (not the "no such
//! endpoint" fallback, not 405).

mod support;

use std::collections::BTreeSet;
use std::path::Path;

/// `(method, path)` pairs under `paths:` of the OpenAPI file. The file is
/// ours and block-structured: paths at indent 2, methods at indent 4.
fn documented() -> BTreeSet<(String, String)> {
    support::openapi_operations()
        .into_iter()
        .map(|op| (op.method, op.path))
        .collect()
}

/// `(method, path)` of every `.route("/api/v1/…", get(…).post(…))` in the
/// daemon's sources.
fn routed() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut files = Vec::new();
    collect(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let trimmed = rest.trim_start();
            let Some(literal) = trimmed.strip_prefix('"') else {
                continue;
            };
            let Some(end) = literal.find('"') else { break };
            let path = &literal[..end];
            if !path.starts_with("/api/v1") {
                continue;
            }
            // The method routers up to the next route (or a short window).
            let after = &literal[end..];
            let stop = after.find(".route(").unwrap_or(after.len()).min(400);
            let window = &after[..stop];
            let mut any = false;
            for method in ["get", "post", "put", "patch", "delete"] {
                let needle = format!("{method}(");
                let found = window.match_indices(&needle).any(|(i, _)| {
                    i == 0
                        || !window.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && window.as_bytes()[i - 1] != b'_'
                });
                if found {
                    out.insert((method.to_owned(), path.to_owned()));
                    any = true;
                }
            }
            assert!(
                any,
                "no method router found for {path} in {}",
                file.display()
            );
        }
    }
    out
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let documented = documented();
    let routed = routed();
    assert!(
        routed.len() >= 10,
        "route scan found too little: {routed:?}"
    );
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.yaml: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "openapi.yaml documents routes the router lacks: {unrouted:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_is_answered_by_the_daemon() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(dir.path(), "");
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::new();
    let served = http
        .get(daemon.url("/api/v1/openapi.yaml"))
        .send()
        .await
        .expect("send");
    assert_eq!(served.status(), reqwest::StatusCode::OK);
    let served = served.text().await.expect("text");
    let on_disk =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml"))
            .expect("file");
    assert_eq!(served, on_disk);
    for (method, path) in documented() {
        let concrete = path
            .replace("{id}", "999999")
            .replace("{case_id}", "case-ffffffffffffffffffffffff")
            .replace("{event_id}", "00000000-0000-7000-8000-000000000000");
        assert!(!concrete.contains('{'), "unknown parameter in {path}");
        let request = match method.as_str() {
            "get" => http.get(daemon.url(&concrete)),
            "post" => http
                .post(daemon.url(&concrete))
                .header("content-type", "application/json")
                .body("{}"),
            other => panic!("untested method {other}"),
        };
        let response = request
            .bearer_auth(support::TOKEN)
            .send()
            .await
            .expect("send");
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert_ne!(
            status,
            reqwest::StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(
            !body.contains("no such endpoint"),
            "{method} {path} fell through to the fallback: {status} {body}"
        );
    }
}

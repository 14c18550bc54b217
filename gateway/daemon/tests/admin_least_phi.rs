//! Least PHI over every route the admin server serves, on the real binary.
//!
//! The routes are not a hand-written list: the `/api/v1` operations come from
//! `openapi.yaml` (with their `x-required-role`, or `security: []` when
//! public), the non-API pages from [`PAGES`], and both are checked against
//! the `.route(...)` calls in the daemon's sources — the test fails when they
//! disagree, so a route added to the router (e.g. by another adapter) is
//! walked here too. Each route is called without credentials (401 for every
//! protected operation) and with a viewer token (403 where the role is not
//! viewer); no string of a PHI-classified field (`gateway_core::phi`) of the
//! seeded case — notes, decision note, diagnoses, services, member ids,
//! references — appears in any viewer answer. A `phi:read` token's reads of
//! the case and the raw message each leave a `phi.read` row naming it.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use gateway_core::case::Case;
use gateway_core::phi::{Class, classify};
use gateway_store::{InboundOutcome, NewEvidence, NewInbound, Store, StoreOptions};
use reqwest::StatusCode;
use serde_json::Value;

const VIEWER: &str = "viewer-token-synthetic-000000000201";
const PHI: &str = "phi-token-synthetic-00000000000203";

/// The admin server's routes outside `/api/v1`: HTML pages, login, health,
/// metrics. `(method, path, public)`; a protected page redirects to `/login`.
const PAGES: &[(&str, &str, bool)] = &[
    ("get", "/", false),
    ("get", "/messages", false),
    ("get", "/login", true),
    ("post", "/login", true),
    ("post", "/logout", true),
    ("get", "/healthz", true),
    ("get", "/readyz", true),
    ("get", "/metrics", true),
];

use support::ApiOperation as Operation;

/// The operations of `openapi.yaml`, each with its required role.
fn documented() -> Vec<Operation> {
    let out = support::openapi_operations();
    for op in &out {
        assert!(
            op.role.as_deref() != Some(""),
            "{} {} has neither x-required-role nor `security: []`",
            op.method,
            op.path
        );
    }
    out
}

/// `(method, path)` of every `.route("…", get(…).post(…))` in `dir`'s sources
/// whose path `keep` accepts.
fn routed(dir: &Path, keep: &dyn Fn(&str) -> bool) -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    collect(dir, &mut files);
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        let mut rest = text.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let Some(literal) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some(end) = literal.find('"') else { break };
            let path = &literal[..end];
            if !keep(path) {
                continue;
            }
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
            assert!(any, "no method router for {path} in {}", file.display());
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

/// Every route: the documented operations plus the pages, checked against
/// the router's sources both ways.
fn all_routes() -> Vec<Operation> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut served = routed(&src, &|p| p.starts_with("/api/v1"));
    served.extend(routed(&src.join("admin"), &|p| !p.starts_with("/api/v1")));
    let mut operations = documented();
    operations.extend(PAGES.iter().map(|(method, path, public)| Operation {
        method: (*method).to_owned(),
        path: (*path).to_owned(),
        role: (!public).then(|| "page".to_owned()),
    }));
    let listed: BTreeSet<(String, String)> = operations
        .iter()
        .map(|o| (o.method.clone(), o.path.clone()))
        .collect();
    let unlisted: Vec<_> = served.difference(&listed).collect();
    let unserved: Vec<_> = listed.difference(&served).collect();
    assert!(
        unlisted.is_empty(),
        "served but neither in openapi.yaml nor in PAGES: {unlisted:?}"
    );
    assert!(
        unserved.is_empty(),
        "listed but not found in the router: {unserved:?}"
    );
    assert!(
        served.len() >= 20,
        "the route scan found too little: {served:?}"
    );
    operations
}

/// A case with synthetic PHI in every PHI-classified field.
fn rich_case(case_id: &str) -> Case {
    serde_json::from_value(serde_json::json!({
        "schema": "ehr-gateway/case/v1",
        "case_id": case_id,
        "tenant": "mso-test",
        "practice": "cardio-north",
        "source": {"adapter": "hl7v2", "profile": "epic", "message_type": "ORM^O01",
                   "control_id": "CTRL-SYN-0042", "sender": "EPIC^TEST",
                   "received_at": "2026-11-22T10:00:00Z"},
        "status": "requested",
        "urgency": "urgent",
        "patient": {
            "identifiers": [{"type": "MR", "value": "MRN-SYN-558812", "assigner": "HOSP-SYN-A"}],
            "name": {"family": "Zzyxtestpatient", "given": ["Quillonia"]},
            "birth_date": "1931-04-17",
            "sex": "female",
            "address": {"lines": ["77 Synthetic Lane"], "city": "Faketown",
                        "state": "ZZ", "postal_code": "99999-0001"},
            "phone": "555-0100-7788"
        },
        "coverages": [{"sequence": 1, "payer": {"id": "PAYER-OPEN-1", "name": "Open Payer Co"},
                       "member_id": "MEMBER-SYN-99887", "group_number": "GROUP-SYN-4455",
                       "plan_name": "Open Plan Gold", "subscriber_relationship": "spouse"}],
        "providers": [{"role": "ordering", "npi": "1234567893",
                       "name": {"family": "Doctorsyn", "given": ["Ada"]}}],
        "services": [{"line": 1, "code": {"system": "CPT", "code": "78452",
                      "display": "Myocardial perfusion imaging synthetic"},
                      "quantity": 1, "service_date": {"start": "2031-02-03"}}],
        "diagnoses": [{"code": {"system": "ICD-10-CM", "code": "I20.9",
                       "display": "Angina pectoris synthetic"}, "primary": true}],
        "decision": {"status": "pended", "authorization_number": "AUTHNUM-SYN-3141",
                     "effective": {"start": "2031-05-06", "end": "2031-08-09"},
                     "payer_trace": ["TRACE-SYN-2718"], "note": "Decision note synthetic text"},
        "attachments": [{"kind": "clinical-note", "reference": "ATTACH-SYN-1618",
                         "title": "Attachment title synthetic"}],
        "references": {"placer_order": "PLACER-SYN-1414"},
        "notes": ["Free text note synthetic: chest pain on exertion"]
    }))
    .expect("case json")
}

/// Every string (and number) under a PHI-classified path of `value`.
fn phi_strings(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                phi_strings(v, &p, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                phi_strings(item, &format!("{path}[]"), out);
            }
        }
        Value::String(s) if classify(path) != Some(Class::Open) => {
            out.insert(s.clone());
        }
        _ => {}
    }
}

/// Seeds the store: the rich case from an accepted message whose raw bytes
/// carry the same PHI, and one evidence item; returns (case id, message id,
/// evidence id).
fn seed(data_dir: &Path) -> (String, i64, i64) {
    let data_dir = data_dir.to_path_buf();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            std::fs::create_dir_all(&data_dir).expect("data dir");
            let store = Store::open(data_dir.join("gateway.sqlite"), StoreOptions::default())
                .await
                .expect("store");
            let case_id = "case-5a1e0000000000000000beef".to_owned();
            let raw = b"MSH|^~\\&|EPIC|TEST|||20261122||ORM^O01|CTRL-SYN-0042|P|2.5.1\r\
                PID|1||MRN-SYN-558812^^^HOSP-SYN-A^MR||Zzyxtestpatient^Quillonia||19310417|F\r\
                NTE|1||Free text note synthetic: chest pain on exertion\r"
                .to_vec();
            let receipt = store
                .commit_inbound(NewInbound {
                    adapter: "hl7v2".to_owned(),
                    profile: "epic".to_owned(),
                    sender: Some("EPIC^TEST".to_owned()),
                    control_id: Some("CTRL-SYN-0042".to_owned()),
                    message_type: Some("ORM^O01".to_owned()),
                    raw,
                    received_at: "2026-11-22T10:00:00Z".to_owned(),
                    peer: Some("127.0.0.1:40000".to_owned()),
                    outcome: InboundOutcome::Accepted {
                        case: Box::new(rich_case(&case_id)),
                        event_type: None,
                    },
                    replay_of: None,
                })
                .await
                .expect("commit");
            let evidence = store
                .put_evidence(NewEvidence {
                    adapter: "desktop".to_owned(),
                    kind: "abort-screenshot".to_owned(),
                    case_id: Some(case_id.clone()),
                    content_type: "image/png".to_owned(),
                    body: b"Zzyxtestpatient screenshot bytes".to_vec(),
                    detail: Some("playbook step 3".to_owned()),
                })
                .await
                .expect("evidence");
            store.close().await;
            (case_id, receipt.receipt.message_id, evidence)
        })
    })
    .join()
    .expect("seed thread")
}

fn config(dir: &Path) -> std::path::PathBuf {
    let mut toml = String::new();
    for (name, token, roles) in [
        ("view-desk", VIEWER, r#"["viewer"]"#),
        ("chart-reader", PHI, r#"["phi:read"]"#),
    ] {
        let file = dir.join(format!("{name}.token"));
        std::fs::write(&file, format!("{token}\n")).expect("token file");
        toml.push_str(&format!(
            "[[admin.tokens]]\nname = \"{name}\"\ntoken_file = \"{}\"\nroles = {roles}\n",
            file.display()
        ));
    }
    support::write_config(dir, &toml)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_strangers_and_shows_a_viewer_no_phi() {
    let operations = all_routes();
    let dir = tempfile::tempdir().expect("tmp");
    let config = config(dir.path());
    let (case_id, message_id, evidence_id) = seed(&dir.path().join("data"));
    let daemon = support::Daemon::start(&config);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let mut secrets = BTreeSet::new();
    let case_json = serde_json::to_value(rich_case(&case_id)).expect("json");
    phi_strings(&case_json, "", &mut secrets);
    for must in [
        "Free text note synthetic: chest pain on exertion",
        "Decision note synthetic text",
        "78452",
        "I20.9",
        "MEMBER-SYN-99887",
        "PLACER-SYN-1414",
        "Zzyxtestpatient",
    ] {
        assert!(secrets.contains(must), "{must} not collected: {secrets:?}");
    }

    let mut walked = 0;
    for op in &operations {
        let concrete = op
            .path
            .replace("{case_id}", &case_id)
            .replace("{event_id}", "00000000-0000-7000-8000-000000000000")
            .replace(
                "{id}",
                &if op.path.starts_with("/api/v1/evidence") {
                    evidence_id.to_string()
                } else {
                    message_id.to_string()
                },
            );
        assert!(!concrete.contains('{'), "unknown parameter in {}", op.path);
        for who in ["none", "viewer"] {
            let request = match op.method.as_str() {
                "get" => http.get(daemon.url(&concrete)),
                "post" => http
                    .post(daemon.url(&concrete))
                    .header("content-type", "application/json")
                    .body(r#"{"status": "approved"}"#),
                other => panic!("untested method {other}"),
            };
            let request = if who == "viewer" {
                request.bearer_auth(VIEWER)
            } else {
                request
            };
            let response = request.send().await.expect("send");
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let what = format!("{} {} as {who}: {status} {body}", op.method, op.path);
            match (who, op.role.as_deref()) {
                // Public: pages and health answer; the login form refuses
                // a missing token with its own page.
                (_, None) if op.method == "get" => assert!(status.is_success(), "{what}"),
                (_, None) => assert!(!status.is_server_error(), "{what}"),
                ("none", Some("page")) => {
                    assert_eq!(status, StatusCode::SEE_OTHER, "{what}");
                }
                ("none", Some(_)) => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                    assert!(body.contains("\"status\":401"), "{what}");
                }
                ("viewer", Some("viewer" | "any" | "page")) => {
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{what}"
                    );
                }
                ("viewer", Some(role)) => {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
                    let problem: Value = serde_json::from_str(&body).expect("problem json");
                    assert_eq!(problem["required_role"], role, "{what}");
                }
                _ => unreachable!(),
            }
            if who == "viewer" {
                for secret in &secrets {
                    assert!(
                        !body.contains(secret.as_str()),
                        "PHI `{secret}` reached a viewer: {what}"
                    );
                }
            }
            walked += 1;
        }
    }
    assert_eq!(walked, operations.len() * 2);

    // The viewer's case is the least-PHI view; the phi:read caller gets the
    // PHI, and each such read is on record with its name.
    let viewed = support::get_json(
        &http,
        daemon.url(&format!("/api/v1/cases/{case_id}")),
        VIEWER,
    )
    .await;
    assert_eq!(viewed["case"]["notes"]["redacted"], true, "{viewed}");
    assert_eq!(viewed["case"]["decision"]["note"]["redacted"], true);
    assert_eq!(viewed["case"]["decision"]["status"], "pended");
    assert_eq!(
        viewed["case"]["coverages"][0]["payer"]["name"],
        "Open Payer Co"
    );
    let shown =
        support::get_json(&http, daemon.url(&format!("/api/v1/cases/{case_id}")), PHI).await;
    assert_eq!(
        shown["case"]["notes"][0],
        "Free text note synthetic: chest pain on exertion"
    );
    let raw = support::get_json(
        &http,
        daemon.url(&format!("/api/v1/messages/{message_id}")),
        PHI,
    )
    .await;
    assert!(
        raw["raw"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("Zzyxtestpatient")),
        "{raw}"
    );
    let audit = support::get_json(
        &http,
        daemon.url("/api/v1/audit?action=phi.read&limit=100"),
        support::TOKEN,
    )
    .await;
    let entries = audit["entries"].as_array().expect("entries");
    for target in [format!("case:{case_id}"), format!("message:{message_id}")] {
        assert!(
            entries
                .iter()
                .any(|e| e["actor"] == "chart-reader" && e["target"] == target.as_str()),
            "no phi.read for {target}: {audit}"
        );
    }
    assert!(
        !entries.iter().any(|e| e["actor"] == "view-desk"),
        "a viewer read no PHI: {audit}"
    );
}

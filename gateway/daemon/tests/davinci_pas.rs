//! Da Vinci PAS through the real binary over real sockets: an EHR (the test's
//! [`PasClient`], mutual TLS) registers subscriptions and submits a request →
//! pended (A4) after the commit; a second `$submit` of the same Claim creates
//! nothing; a decision posted to the admin API reaches the EHR's rest-hook
//! endpoint as R4-backport notifications (full-resource and id-only, the
//! first attempt refused and retried by the write-back worker) and `$inquire`
//! answers A1 with the authorization number as `preAuthRef`. Malformed input
//! gets a specific OperationOutcome and HTTP status, and the store keeps its
//! raw bytes with the reason.

mod support;

use std::time::Duration;

use gateway_store::{MessageFilter, Reader};
use serde_json::{Value, json};
use support::pas::{
    PasClient, PasPki, SubscriptionEndpoint, actions, claim_response, free_port, pas_section,
};
use support::{Daemon, TOKEN, repo_root, wait_until, write_config};

const CLIENT_SAN: &str = "ehr.cardio-north.example.test";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join(format!("sample-messages/fhir/davinci-pas/{name}.json")))
        .expect("sample")
}

/// Starts a daemon with the PAS server; returns it, its data dir, the
/// client and the PKI.
fn start(dir: &std::path::Path, max_body_kb: usize) -> (Daemon, u16, PasPki) {
    let pki = PasPki::generate(CLIENT_SAN);
    let files = pki.write_to(dir);
    let port = free_port();
    let config = write_config(
        dir,
        &format!(
            r#"[forward]
sink = "file"
[forward.delivery.backoff]
initial_ms = 200
max_ms = 400
{}"#,
            pas_section(port, &files, CLIENT_SAN, max_body_kb)
        ),
    );
    (Daemon::start(&config), port, pki)
}

fn client(port: u16, pki: &PasPki) -> PasClient {
    PasClient::new(
        &format!("https://127.0.0.1:{port}/fhir"),
        &pki.ca,
        Some((&pki.client_cert, &pki.client_key)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn submit_pends_a_decision_notifies_and_inquire_answers_a1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (daemon, port, pki) = start(dir.path(), 1024);
    let ehr = client(port, &pki);
    let endpoint = SubscriptionEndpoint::start().await;

    // The EHR registers two subscriptions: full-resource and id-only.
    let full = ehr
        .subscribe(
            &endpoint.url("/hooks/full"),
            "full-resource",
            "hook-token-full",
        )
        .await;
    assert_eq!(full.status, 201, "{:?}", full.body);
    assert_eq!(full.body["status"], "active");
    let id_only = ehr
        .subscribe(&endpoint.url("/hooks/id-only"), "id-only", "hook-token-id")
        .await;
    assert_eq!(id_only.status, 201, "{:?}", id_only.body);

    // $submit → pended, answered after the commit.
    let answer = ehr.submit(&sample("home-care")).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert!(answer.content_type.starts_with("application/fhir+json"));
    assert_eq!(answer.body["type"], "collection");
    assert_eq!(claim_response(&answer.body)["outcome"], "queued");
    assert_eq!(
        actions(&answer.body),
        [(1, "A4".to_owned(), None), (2, "A4".to_owned(), None)],
        "every Claim.item.sequence echoed, pended"
    );
    let case_id = claim_response(&answer.body)["id"]
        .as_str()
        .expect("case id")
        .to_owned();

    // The same Claim again: same answer, nothing new stored.
    let again = ehr.submit(&sample("home-care")).await;
    assert_eq!(again.status, 200);
    assert_eq!(claim_response(&again.body)["id"], case_id.as_str());
    let store_file = dir.path().join("data/gateway.sqlite");
    let reader = Reader::open(&store_file).expect("reader");
    let messages = reader
        .list_messages(&MessageFilter::default())
        .expect("messages");
    let pas: Vec<_> = messages
        .iter()
        .filter(|m| m.adapter == "davinci-pas")
        .collect();
    assert_eq!(pas.len(), 1, "a repeated $submit stores nothing");
    assert_eq!(reader.case_events(&case_id).expect("events").len(), 1);
    assert_eq!(pas[0].sender.as_deref(), Some("ehr-one"));

    // The first notification attempt is refused; the write-back retries.
    endpoint.set_failing(true);
    let http = reqwest::Client::new();
    let posted = http
        .post(daemon.url(&format!("/api/v1/cases/{case_id}/decision")))
        .bearer_auth(TOKEN)
        .json(&json!({
            "status": "approved",
            "authorization_number": "SYNAUTH-E2E-1",
            "effective": {"start": "2026-12-05", "end": "2027-01-04"}
        }))
        .send()
        .await
        .expect("decision");
    assert_eq!(posted.status(), 202);
    let decision_id = posted.json::<Value>().await.expect("json")["decision_id"]
        .as_i64()
        .expect("decision id");
    wait_until(
        "a failed first notification",
        Duration::from_secs(30),
        || {
            reader
                .writeback_state(decision_id)
                .expect("state")
                .filter(|(_, e)| e.is_some())
        },
    )
    .await;
    endpoint.set_failing(false);
    let received = endpoint.wait_for(2, Duration::from_secs(30)).await;

    let full_note = received
        .iter()
        .find(|n| n.path == "/hooks/full")
        .expect("full-resource notification");
    assert_eq!(
        full_note.authorization.as_deref(),
        Some("Bearer hook-token-full")
    );
    assert_eq!(full_note.body["type"], "history");
    let status = &full_note.body["entry"][0]["resource"];
    assert_eq!(status["resourceType"], "Parameters");
    let param = |name: &str| {
        status["parameter"]
            .as_array()
            .and_then(|p| p.iter().find(|x| x["name"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        param("topic")["valueCanonical"],
        gateway_davinci_pas::urls::TOPIC
    );
    assert_eq!(param("type")["valueCode"], "event-notification");
    let focus = &full_note.body["entry"][1];
    assert_eq!(focus["resource"]["resourceType"], "ClaimResponse");
    assert_eq!(focus["resource"]["preAuthRef"], "SYNAUTH-E2E-1");
    let id_note = received
        .iter()
        .find(|n| n.path == "/hooks/id-only")
        .expect("id-only notification");
    assert!(id_note.body["entry"][1].get("resource").is_none());
    assert!(
        id_note.body["entry"][1]["fullUrl"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/ClaimResponse/{case_id}")))
    );

    // The id-only notification's focus is readable by the submitting client.
    let focus_url = id_note.body["entry"][1]["fullUrl"].as_str().expect("focus");
    let read = ehr
        .get(focus_url.trim_start_matches(&format!("{}/", ehr.base)))
        .await;
    assert_eq!(read.status, 200, "{focus_url}: {:?}", read.body);
    assert_eq!(read.body["preAuthRef"], "SYNAUTH-E2E-1");

    // $inquire answers from the stored case: A1 with the authorization number.
    let inquiry = ehr.inquire(&inquiry_for("PA-HOME-0001")).await;
    assert_eq!(inquiry.status, 200, "{:?}", inquiry.body);
    let cr = claim_response(&inquiry.body);
    assert_eq!(cr["preAuthRef"], "SYNAUTH-E2E-1");
    assert_eq!(cr["outcome"], "complete");
    assert_eq!(
        actions(&inquiry.body),
        [
            (1, "A1".to_owned(), Some("SYNAUTH-E2E-1".to_owned())),
            (2, "A1".to_owned(), Some("SYNAUTH-E2E-1".to_owned()))
        ]
    );

    // Another registered client can neither read nor reuse this request.
    let other = PasClient::new(&ehr.base, &pki.ca, Some((&pki.other_cert, &pki.other_key)));
    assert_eq!(
        other.inquire(&inquiry_for("PA-HOME-0001")).await.status,
        404
    );
    assert_eq!(
        other.get(&format!("ClaimResponse/{case_id}")).await.status,
        404
    );
    let reuse = other.submit(&sample("home-care")).await;
    assert_eq!(reuse.status, 409, "{:?}", reuse.body);
    assert_eq!(reuse.body["issue"][0]["code"], "conflict");

    // A certificate from the same CA that is not on the allowlist: 403.
    let stranger = PasClient::new(
        &ehr.base,
        &pki.ca,
        Some((&pki.stranger_cert, &pki.stranger_key)),
    );
    let refused = stranger.inquire(&inquiry_for("PA-HOME-0001")).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["issue"][0]["code"], "forbidden");
    // No client certificate: the TLS handshake fails.
    let anonymous = PasClient::new(&ehr.base, &pki.ca, None);
    assert!(
        anonymous
            .post(
                "Claim/$inquire",
                "application/fhir+json",
                inquiry_for("PA-HOME-0001")
            )
            .await
            .is_err()
    );
    drop(daemon);
}

/// The inquiry sample re-pointed at `claim_id`.
fn inquiry_for(claim_id: &str) -> Vec<u8> {
    let mut inquiry: Value = serde_json::from_slice(&sample("inquiry")).expect("json");
    inquiry["entry"][0]["resource"]["identifier"][0]["value"] = json!(claim_id);
    serde_json::to_vec(&inquiry).expect("json")
}

/// One malformed `$submit` and what it must get.
struct Refused {
    what: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    issue: &'static str,
    expression: Option<&'static str>,
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_specific_outcomes_and_are_kept_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (daemon, port, pki) = start(dir.path(), 16);
    let ehr = client(port, &pki);

    let oversized = {
        let mut bundle: Value = serde_json::from_slice(&sample("referral")).expect("json");
        bundle["entry"][0]["resource"]["text"] =
            json!({"status": "generated", "div": "x".repeat(20 * 1024)});
        serde_json::to_vec(&bundle).expect("json")
    };
    let cases = vec![
        Refused {
            what: "no Claim",
            content_type: "application/fhir+json",
            body: sample("malformed-no-claim"),
            status: 422,
            code: "P010",
            issue: "required",
            expression: Some("Bundle.entry[0].resource"),
        },
        Refused {
            what: "use = claim",
            content_type: "application/fhir+json",
            body: sample("malformed-use-claim"),
            status: 422,
            code: "P011",
            issue: "value",
            expression: Some("Bundle.entry[0].resource.use"),
        },
        Refused {
            what: "unresolvable reference",
            content_type: "application/fhir+json",
            body: sample("malformed-unresolvable-reference"),
            status: 422,
            code: "P012",
            issue: "not-found",
            expression: Some("Bundle.entry[0].resource.insurance[0].coverage.reference"),
        },
        Refused {
            what: "not a Bundle",
            content_type: "application/fhir+json",
            body: sample("malformed-not-a-bundle"),
            status: 400,
            code: "P003",
            issue: "structure",
            expression: Some("Bundle"),
        },
        Refused {
            what: "not JSON",
            content_type: "application/fhir+json",
            body: b"{\"resourceType\": \"Bundle\", ".to_vec(),
            status: 400,
            code: "F001",
            issue: "structure",
            expression: None,
        },
        Refused {
            what: "wrong content type",
            content_type: "text/plain",
            body: sample("referral"),
            status: 415,
            code: "P001",
            issue: "not-supported",
            expression: None,
        },
        Refused {
            what: "oversized body",
            content_type: "application/fhir+json",
            body: oversized,
            status: 413,
            code: "P002",
            issue: "too-costly",
            expression: None,
        },
    ];
    for Refused {
        what,
        content_type,
        body,
        status,
        code,
        issue,
        expression,
    } in &cases
    {
        let answer = ehr
            .post("Claim/$submit", content_type, body.clone())
            .await
            .expect(what);
        assert_eq!(answer.status, *status, "{what}: {:?}", answer.body);
        assert_eq!(answer.body["resourceType"], "OperationOutcome", "{what}");
        let first = &answer.body["issue"][0];
        assert_eq!(first["code"], *issue, "{what}: {first}");
        assert!(
            first["diagnostics"]
                .as_str()
                .is_some_and(|d| d.starts_with(code)),
            "{what}: {first}"
        );
        if let Some(expression) = expression {
            assert_eq!(first["expression"][0], *expression, "{what}");
        }
    }

    // Every refused body is kept, rejected, with its reason and diagnostics.
    let reader = Reader::open(dir.path().join("data/gateway.sqlite")).expect("reader");
    let messages = reader
        .list_messages(&MessageFilter::default())
        .expect("messages");
    let kept: Vec<_> = messages
        .iter()
        .filter(|m| m.adapter == "davinci-pas")
        .collect();
    assert_eq!(kept.len(), cases.len(), "one kept message per refusal");
    for Refused {
        what, body, code, ..
    } in &cases
    {
        let found = kept.iter().find_map(|m| {
            let stored = reader.get_message(m.id).expect("get")?;
            stored
                .diagnostics
                .iter()
                .any(|d| d.code == *code)
                .then_some(stored)
        });
        let stored = found.unwrap_or_else(|| panic!("{what}: no message kept with {code}"));
        assert_eq!(stored.summary.case_id, None, "{what}: no case");
        assert!(
            stored
                .summary
                .error_reason
                .as_deref()
                .is_some_and(|r| r.contains(code)),
            "{what}: reason {:?}",
            stored.summary.error_reason
        );
        if *code == "P002" {
            assert_eq!(
                stored.raw.len(),
                16 * 1024,
                "the first max_body_kb KiB are kept"
            );
            assert_eq!(&stored.raw[..], &body[..16 * 1024]);
        } else {
            assert_eq!(&stored.raw, body, "{what}: raw bytes kept");
        }
    }
    drop(daemon);
}

#[test]
fn check_config_names_every_unsafe_pas_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        r#"[davinci_pas]
listen = "0.0.0.0:9443"
allow_plaintext = true
[[davinci_pas.clients]]
name = "ehr-one"
fingerprints = ["not-hex"]
"#,
    );
    let out = std::process::Command::new(support::bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{text}");
    for key in [
        "davinci_pas.allow_plaintext",
        "davinci_pas.clients[0].fingerprints",
        "davinci_pas.plaintext_client",
    ] {
        assert!(text.contains(key), "{key} missing in {text}");
    }
}

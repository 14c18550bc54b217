//! Live mode: each input goes over the real transport to a running daemon,
//! and the resulting case is read back through the daemon's admin API.
//!
//! The runner asks the daemon where its inbound endpoints are
//! (`GET /api/v1/adapters`), picks the one serving the suite's profile, sends
//! each input there (HL7 v2 over MLLP today), reads the acknowledgement, then
//! finds the stored message by its control id (`GET /api/v1/messages`) and
//! its case (`GET /api/v1/cases/{id}`), and applies the same checks as
//! offline. A deployed gateway keeps its store, so re-sent inputs come back as
//! duplicates: live mode accepts `duplicate` wherever `accepted` is expected.
//! Suites whose adapter has no push transport (FHIR polling, desktop) are
//! skipped with that reason.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use gateway_hl7v2::mllp::{MllpCodec, MllpFrame};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::compare;
use crate::harness::hl7v2::ack_facts;
use crate::result::CaseResult;
use crate::suite::{CaseSpec, Mode, Suite};

/// A running daemon to test.
#[derive(Debug, Clone)]
pub struct LiveTarget {
    /// Admin base URL, e.g. `http://127.0.0.1:8080`.
    pub admin: String,
    /// Bearer token for `/api/v1/`.
    pub token: Option<String>,
}

impl LiveTarget {
    /// A target from `ADDR` (`host:port` or a URL) and an optional token.
    pub fn new(addr: &str, token: Option<String>) -> Self {
        let admin = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_owned()
        } else {
            format!("http://{addr}")
        };
        LiveTarget { admin, token }
    }
}

struct Client {
    http: reqwest::Client,
    target: LiveTarget,
}

impl Client {
    async fn get(&self, path: &str) -> Result<Value, String> {
        let mut request = self.http.get(format!("{}{path}", self.target.admin));
        if let Some(token) = &self.target.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {path}: {status}: {body}"));
        }
        Ok(body)
    }
}

/// Runs one suite against the daemon.
pub async fn run_suite(
    target: &LiveTarget,
    suite: &Suite,
    on_case_done: &(dyn Fn(&CaseResult) + Sync),
) -> Vec<CaseResult> {
    let client = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default(),
        target: target.clone(),
    };
    let profile = suite.name.clone();
    let endpoint = match client.get("/api/v1/adapters").await {
        Ok(body) => body["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| {
                e["profile"].as_str() == Some(profile.as_str())
                    && e["transport"].as_str() == Some("mllp")
            })
            .and_then(|e| e["address"].as_str().map(str::to_owned)),
        Err(e) => {
            return suite
                .cases
                .iter()
                .map(|spec| {
                    let r =
                        CaseResult::failed(suite, spec, vec![format!("daemon unreachable: {e}")]);
                    on_case_done(&r);
                    r
                })
                .collect();
        }
    };
    let mut results = Vec::new();
    for spec in &suite.cases {
        let started = std::time::Instant::now();
        let mut result = match (&endpoint, spec.file.mode, &spec.file.skip) {
            (_, _, Some(reason)) => CaseResult::skipped(suite, spec, reason.clone()),
            (_, Mode::Writeback, _) => {
                CaseResult::skipped(suite, spec, "write-back cases run offline only".to_owned())
            }
            (_, Mode::Inquiry, _) => {
                CaseResult::skipped(suite, spec, "inquiry cases run offline only".to_owned())
            }
            (None, _, _) => CaseResult::skipped(
                suite,
                spec,
                format!("the daemon has no push listener (MLLP) for profile `{profile}`"),
            ),
            (Some(address), Mode::Inbound, None) => run_case(&client, address, suite, spec).await,
        };
        result.duration = started.elapsed();
        on_case_done(&result);
        results.push(result);
    }
    results
}

async fn run_case(client: &Client, address: &str, suite: &Suite, spec: &CaseSpec) -> CaseResult {
    let mut failures = Vec::new();
    let mut last_ack = None;
    let mut last_control_id = None;
    let mut last_hash = String::new();
    let mut labels = Vec::new();
    for input in &spec.inputs {
        let raw = match std::fs::read(input) {
            Ok(raw) => raw,
            Err(e) => {
                return CaseResult::failed(suite, spec, vec![format!("{}: {e}", input.display())]);
            }
        };
        let ack = match exchange(address, &raw).await {
            Ok(ack) => ack,
            Err(e) => return CaseResult::failed(suite, spec, vec![format!("MLLP {address}: {e}")]),
        };
        let facts = ack_facts(&ack);
        labels.push(match facts.code.as_deref() {
            Some("AA" | "CA") => "accepted",
            _ => "rejected",
        });
        last_control_id = gateway_hl7v2::parse::parse_message(&raw)
            .ok()
            .and_then(|d| d.meta.control_id);
        last_hash = gateway_core::ids::content_hash(&raw);
        last_ack = Some(facts);
    }
    let expect = &spec.file.expect;
    let expected_labels: Vec<&str> = if expect.outcomes.is_empty() {
        vec!["accepted"; labels.len()]
    } else {
        expect
            .outcomes
            .iter()
            .map(|o| {
                if o == "duplicate" {
                    "accepted"
                } else {
                    o.as_str()
                }
            })
            .collect()
    };
    if labels != expected_labels {
        failures.push(format!(
            "outcomes (from ACK codes): expected {expected_labels:?}, got {labels:?}"
        ));
    }
    let ack = last_ack.unwrap_or_default();
    if let Some(code) = &expect.ack
        && ack.code.as_deref() != Some(code.as_str())
    {
        failures.push(format!(
            "acknowledgement: expected {code}, got {}\n{}",
            ack.code.as_deref().unwrap_or("(none)"),
            ack.text
        ));
    }
    for code in &expect.ack_errors {
        if !ack.errors.contains(code) {
            failures.push(format!(
                "acknowledgement: expected error code {code}, got {:?}",
                ack.errors
            ));
        }
    }

    let no_case = expect.no_case || labels.last() == Some(&"rejected");
    let mut result_case = None;
    let mut diffs = Vec::new();
    if !no_case {
        match read_back_case(client, &suite.name, last_control_id.as_deref(), &last_hash).await {
            Ok(case) => {
                if let Some(path) = &spec.expected_case {
                    match std::fs::read_to_string(path)
                        .map_err(|e| e.to_string())
                        .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
                    {
                        Ok(expected) => {
                            let found = compare::compare(&expected, &case, &live_rules(spec));
                            if !found.is_empty() {
                                failures.push(format!(
                                    "case differs from expected.case.json in {} field(s)",
                                    found.len()
                                ));
                                diffs = found;
                            }
                        }
                        Err(e) => failures.push(format!("{}: {e}", path.display())),
                    }
                }
                result_case = Some(case);
            }
            Err(e) => failures.push(e),
        }
    }
    let mut result = CaseResult::finished(suite, spec, failures);
    result.diffs = diffs;
    result.actual_case = result_case;
    result.ack = Some(ack);
    result
}

/// The case's rules, plus: the deployed gateway's identity is its own, so
/// the identity-derived fields are not compared unless the case says so.
fn live_rules(spec: &CaseSpec) -> compare::Rules {
    ["case_id", "tenant", "practice", "site"]
        .into_iter()
        .fold(spec.rules.clone(), |rules, field| {
            rules.with_default(field, compare::Rule::Ignore)
        })
}

/// One MLLP round trip on a fresh connection.
async fn exchange(address: &str, message: &[u8]) -> Result<Vec<u8>, String> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(address))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut framed = Framed::new(stream, MllpCodec::new(16 * 1024 * 1024));
    framed
        .send(Bytes::copy_from_slice(message))
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(Duration::from_secs(10), framed.next()).await {
        Err(_) => Err("no ACK within 10 s".to_owned()),
        Ok(None) => Err("connection closed without an ACK".to_owned()),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(Some(Ok(MllpFrame::Message(ack)))) => Ok(ack.to_vec()),
        Ok(Some(Ok(MllpFrame::Oversized { len, .. }))) => {
            Err(format!("ACK of {len} bytes is over the limit"))
        }
    }
}

async fn read_back_case(
    client: &Client,
    profile: &str,
    control_id: Option<&str>,
    content_hash: &str,
) -> Result<Value, String> {
    let control_id = control_id.ok_or("the input has no MSH-10 to find it by")?;
    let list = client
        .get(&format!(
            "/api/v1/messages?control_id={}&limit=50",
            urlencode(control_id)
        ))
        .await?;
    let messages = list["messages"].as_array().cloned().unwrap_or_default();
    let of_profile: Vec<&Value> = messages
        .iter()
        .filter(|m| m["profile"].as_str() == Some(profile))
        .collect();
    // Other inputs may reuse the control id: prefer the stored message with
    // exactly these bytes, else the newest with the control id.
    let same_bytes: Vec<&Value> = of_profile
        .iter()
        .copied()
        .filter(|m| m["content_hash"].as_str() == Some(content_hash))
        .collect();
    let candidates = if same_bytes.is_empty() {
        of_profile
    } else {
        same_bytes
    };
    let newest = candidates
        .into_iter()
        .max_by_key(|m| m["id"].as_i64().unwrap_or(0))
        .ok_or_else(|| {
            format!("no stored message with control id {control_id} for profile {profile}")
        })?;
    let case_id = match newest["case_id"].as_str() {
        Some(id) => id.to_owned(),
        None => {
            let original = newest["duplicate_of"]
                .as_i64()
                .ok_or("the stored message has no case")?;
            let detail = client.get(&format!("/api/v1/messages/{original}")).await?;
            detail["message"]["case_id"]
                .as_str()
                .ok_or("the original message has no case")?
                .to_owned()
        }
    };
    let body = client.get(&format!("/api/v1/cases/{case_id}")).await?;
    Ok(body["case"].clone())
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

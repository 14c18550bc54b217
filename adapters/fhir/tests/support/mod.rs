//! Test support: the Medplum-based FHIR server on loopback, synthetic orders,
//! and a recording intake pipeline.
#![allow(dead_code, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::GatewayError;
use gateway_core::adapter::{
    BoxFuture, CommitReceipt, InboundMessage, IntakeOutcome, IntakePipeline,
};
use gateway_fhir::auth::{AuthConfig, SigningAlgorithm, TokenProvider, public_jwks};
use gateway_fhir::client::{ClientSettings, FhirClient, http_client};
use serde_json::{Value, json};

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn key_path(name: &str) -> PathBuf {
    crate_dir().join("tests/keys").join(name)
}

pub fn repo_root() -> PathBuf {
    crate_dir().join("../..")
}

/// The loopback FHIR server (Medplum router + SMART token endpoint).
pub struct FhirServer {
    child: Child,
    pub port: u16,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why the server cannot run here, if it cannot.
fn missing_tools(server_dir: &Path) -> Option<String> {
    if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return Some("node is not installed".into());
    }
    if !server_dir
        .join("node_modules/@medplum/fhir-router")
        .is_dir()
    {
        return Some("npm packages missing (run .ci/install.d/40-fhir.sh)".into());
    }
    None
}

pub const ES_CLIENT: &str = "gateway-es384";
pub const RS_CLIENT: &str = "gateway-rs384";
pub const BASIC_CLIENT: &str = "gateway-basic";
pub const POST_CLIENT: &str = "gateway-post";
pub const SECRET: &str = "test-only-secret";
/// An ES384 client whose tokens live two seconds (token expiry scenarios).
pub const SHORT_CLIENT: &str = "gateway-short-lived";

impl FhirServer {
    /// Starts the server; `None` (after printing why) when node or the npm
    /// packages are missing and `CI` is unset. Under CI that is a failure.
    pub fn start() -> Option<FhirServer> {
        let server_dir = crate_dir().join("tests/fhir-server");
        if let Some(why) = missing_tools(&server_dir) {
            if std::env::var_os("CI").is_some() {
                panic!("FHIR test server cannot start under CI: {why}");
            }
            eprintln!("SKIPPED: FHIR test server unavailable: {why}");
            return None;
        }
        let es = public_jwks(
            &std::fs::read(key_path("test-only-es384.pem")).expect("es key"),
            SigningAlgorithm::ES384,
            "es-1",
        )
        .expect("jwks");
        let rs = public_jwks(
            &std::fs::read(key_path("test-only-rs384.pem")).expect("rs key"),
            SigningAlgorithm::RS384,
            "rs-1",
        )
        .expect("jwks");
        let config = json!({
            "token_ttl_seconds": 300,
            "clients": [
                {"client_id": ES_CLIENT, "auth": "private_key_jwt", "jwks": es},
                {"client_id": SHORT_CLIENT, "auth": "private_key_jwt", "jwks": es, "token_ttl_seconds": 2},
                {"client_id": RS_CLIENT, "auth": "private_key_jwt", "jwks": rs},
                {"client_id": BASIC_CLIENT, "auth": "client_secret_basic", "secret": SECRET},
                {"client_id": POST_CLIENT, "auth": "client_secret_post", "secret": SECRET},
            ]
        });
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = dir.path().join("server.json");
        std::fs::write(&cfg, serde_json::to_vec(&config).expect("json")).expect("write cfg");
        let mut child = Command::new("node")
            .arg("--experimental-websocket")
            .arg("--no-warnings")
            .arg(server_dir.join("server.mjs"))
            .arg(&cfg)
            .current_dir(&server_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read port");
        let port = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("server did not report a port: {line:?}"));
        Some(FhirServer {
            child,
            port,
            http: reqwest::Client::new(),
            _dir: dir,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/fhir/R4", self.port)
    }

    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    async fn control(&self, what: &str, body: Value) -> Value {
        self.http
            .post(format!("http://127.0.0.1:{}/_control/{what}", self.port))
            .body(body.to_string())
            .send()
            .await
            .expect("control request")
            .json()
            .await
            .expect("control json")
    }

    /// Loads resources keeping their meta (lastUpdated, versionId).
    pub async fn load(&self, resources: Vec<Value>) {
        let entry: Vec<Value> = resources
            .into_iter()
            .map(|r| json!({"resource": r}))
            .collect();
        let n = entry.len() as u64;
        let answer = self.control("load", json!({"entry": entry})).await;
        assert_eq!(answer["loaded"].as_u64(), Some(n));
    }

    pub async fn fault(&self, fault: Value) {
        self.control("fault", fault).await;
    }

    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("http://127.0.0.1:{}/_control/stats", self.port))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    /// Empties the EHR: data, tokens, faults and counters.
    pub async fn reset(&self) {
        self.control("reset", json!({})).await;
    }

    pub async fn expire_tokens(&self) {
        self.control("expire-tokens", json!({})).await;
    }

    pub fn smart_auth(&self, alg: SigningAlgorithm) -> AuthConfig {
        let (client, key, kid) = match alg {
            SigningAlgorithm::ES384 => (ES_CLIENT, "test-only-es384.pem", "es-1"),
            SigningAlgorithm::RS384 => (RS_CLIENT, "test-only-rs384.pem", "rs-1"),
        };
        AuthConfig::SmartBackend {
            token_url: self.token_url(),
            client_id: client.into(),
            private_key_file: key_path(key),
            algorithm: alg,
            kid: kid.into(),
            scopes: Some(vec![
                "system/ServiceRequest.read".into(),
                "system/Task.write".into(),
            ]),
        }
    }

    /// The ES384 client whose tokens live two seconds.
    pub fn smart_auth_short(&self) -> AuthConfig {
        match self.smart_auth(SigningAlgorithm::ES384) {
            AuthConfig::SmartBackend {
                token_url,
                private_key_file,
                algorithm,
                kid,
                scopes,
                ..
            } => AuthConfig::SmartBackend {
                token_url,
                client_id: SHORT_CLIENT.into(),
                private_key_file,
                algorithm,
                kid,
                scopes,
            },
            other => other,
        }
    }

    /// A client with fast retries, authorizing with `auth`.
    pub fn client(&self, auth: &AuthConfig) -> FhirClient {
        self.client_limited(auth, 4)
    }

    /// As [`FhirServer::client`], with at most `max_concurrency` requests in flight.
    pub fn client_limited(&self, auth: &AuthConfig, max_concurrency: usize) -> FhirClient {
        let http = http_client(Duration::from_secs(10)).expect("http");
        let provider = TokenProvider::new(auth, &[], http.clone()).expect("provider");
        let mut settings = ClientSettings::new(self.base_url().parse().expect("url"));
        settings.backoff = Duration::from_millis(50);
        settings.max_wait = Duration::from_secs(3);
        settings.request_timeout = Duration::from_secs(2);
        settings.max_concurrency = max_concurrency;
        FhirClient::new(http, settings, Arc::new(provider))
    }
}

/// Synthetic, obviously fake order `n` with everything a case needs; its
/// ServiceRequest is stamped `last_updated`, version `version`.
pub fn order(n: u32, last_updated: &str, version: &str) -> Vec<Value> {
    let stamp = |v: &str| json!({"lastUpdated": last_updated, "versionId": v});
    let p = format!("pat-{n}");
    vec![
        json!({"resourceType": "Patient", "id": p, "meta": stamp("1"),
               "identifier": [{"type": {"coding": [{"code": "MR"}]},
                               "system": "urn:example:athenahealth:enterprise-id", "value": format!("E{}", 10000 + n)}],
               "name": [{"family": "Testpatient", "given": [format!("Alpha{n}")]}],
               "birthDate": "1970-01-31", "gender": "female"}),
        json!({"resourceType": "Organization", "id": format!("payer-{n}"), "meta": stamp("1"),
               "identifier": [{"system": "urn:example:payer-id", "value": "60054"}],
               "name": "Example Health Plan"}),
        json!({"resourceType": "Coverage", "id": format!("cov-{n}"), "meta": stamp("1"), "status": "active",
               "beneficiary": {"reference": format!("Patient/{p}")},
               "payor": [{"reference": format!("Organization/payer-{n}")}],
               "subscriberId": format!("W{:09}", n), "order": 1}),
        json!({"resourceType": "Condition", "id": format!("cond-{n}"), "meta": stamp("1"),
               "subject": {"reference": format!("Patient/{p}")},
               "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I25.10"}]}}),
        json!({"resourceType": "Practitioner", "id": format!("doc-{n}"), "meta": stamp("1"),
               "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
               "name": [{"family": "Heartdoc", "given": ["Testy"]}]}),
        json!({"resourceType": "PractitionerRole", "id": format!("role-{n}"), "meta": stamp("1"),
               "practitioner": {"reference": format!("Practitioner/doc-{n}")}}),
        json!({"resourceType": "ServiceRequest", "id": format!("sr-{n}"), "meta": stamp(version),
               "status": "active", "intent": "order",
               "subject": {"reference": format!("Patient/{p}")},
               "requester": {"reference": format!("PractitionerRole/role-{n}")},
               "insurance": [{"reference": format!("Coverage/cov-{n}")}],
               "reasonReference": [{"reference": format!("Condition/cond-{n}")}],
               "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "78452"}]}}),
    ]
}

/// What the recording pipeline does on each submit.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Commit everything.
    Commit,
    /// Commit this many, then never answer again (a crash mid-commit).
    HangAfter(usize),
    /// Commit this many, then refuse every message as a full store does:
    /// `Err` with a retryable internal error, nothing committed.
    FullAfter(usize),
}

/// An intake pipeline that records what was committed. It follows the real
/// pipeline's contract: parse failures are kept and answered `Rejected`.
pub struct Recorder {
    behaviour: Behaviour,
    pub committed: Mutex<Vec<InboundMessage>>,
}

impl Recorder {
    pub fn new(behaviour: Behaviour) -> Arc<Recorder> {
        Arc::new(Recorder {
            behaviour,
            committed: Mutex::new(Vec::new()),
        })
    }

    /// Control ids + versions of committed messages, in order.
    pub fn keys(&self) -> Vec<String> {
        self.committed
            .lock()
            .expect("lock")
            .iter()
            .map(|m| {
                let bundle: Value = serde_json::from_slice(&m.raw).expect("raw json");
                let sr = &bundle["entry"][0]["resource"];
                format!(
                    "{}@{}",
                    sr["id"].as_str().unwrap_or("?"),
                    sr["meta"]["versionId"].as_str().unwrap_or("?")
                )
            })
            .collect()
    }
}

impl IntakePipeline for Recorder {
    fn submit(
        &self,
        message: InboundMessage,
    ) -> BoxFuture<'_, Result<IntakeOutcome, GatewayError>> {
        Box::pin(async move {
            let n = self.committed.lock().expect("lock").len();
            if let Behaviour::HangAfter(limit) = self.behaviour
                && n >= limit
            {
                std::future::pending::<()>().await;
            }
            if let Behaviour::FullAfter(limit) = self.behaviour
                && n >= limit
            {
                return Err(GatewayError::internal(
                    true,
                    "store full: the store reached its size budget; retry later",
                ));
            }
            let receipt = CommitReceipt {
                message_id: i64::try_from(n).unwrap_or(0) + 1,
            };
            let outcome = match &message.parsed {
                Ok(_) => IntakeOutcome::Accepted {
                    receipt,
                    case_id: format!("case-{n}"),
                    warnings: vec![],
                },
                Err(diagnostics) => IntakeOutcome::Rejected {
                    receipt,
                    error: GatewayError::sender("bundle cannot make a case"),
                    diagnostics: diagnostics.clone(),
                },
            };
            self.committed.lock().expect("lock").push(message);
            Ok(outcome)
        })
    }
}

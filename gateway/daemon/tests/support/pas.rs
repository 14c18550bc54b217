//! Da Vinci PAS test peers, reusable by any daemon test (the end-to-end test
//! with the 278 leg uses them too): a throw-away PKI for the PAS server's
//! mutual TLS, a [`PasClient`] that talks to `[base]/Claim/$submit`,
//! `$inquire` and `Subscription` as an EHR does, and a
//! [`SubscriptionEndpoint`] — the EHR's rest-hook receiver on loopback that
//! records every notification.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};

/// PEM material for the PAS server and one EHR client.
pub struct PasPki {
    /// CA certificate (trust anchor of both sides).
    pub ca: String,
    /// Server certificate for `127.0.0.1`/`localhost`.
    pub server_cert: String,
    /// Server key.
    pub server_key: String,
    /// Client certificate with SAN `client_san`.
    pub client_cert: String,
    /// Client key.
    pub client_key: String,
    /// A second client certificate from the same CA, SAN `stranger.example.test`.
    pub stranger_cert: String,
    /// Its key.
    pub stranger_key: String,
    /// A second registered EHR client's certificate, SAN `ehr-two.example.test`
    /// (see [`pas_section`]).
    pub other_cert: String,
    /// Its key.
    pub other_key: String,
}

/// Files written by [`PasPki::write_to`].
pub struct PasPkiFiles {
    /// CA file.
    pub ca: PathBuf,
    /// Server certificate file.
    pub cert: PathBuf,
    /// Server key file (0600).
    pub key: PathBuf,
}

fn leaf(issuer: &Issuer<'_, KeyPair>, names: &[&str], cn: &str) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, issuer).expect("cert");
    (cert.pem(), key.serialize_pem())
}

impl PasPki {
    /// A fresh CA, server certificate and client certificates; the EHR
    /// client's certificate is valid for `client_san`.
    pub fn generate(client_san: &str) -> PasPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "PAS test CA (synthetic)");
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let (server_cert, server_key) = leaf(&issuer, &["localhost", "127.0.0.1"], "pas-server");
        let (client_cert, client_key) = leaf(&issuer, &[client_san], "ehr-client");
        let (stranger_cert, stranger_key) = leaf(&issuer, &["stranger.example.test"], "stranger");
        let (other_cert, other_key) = leaf(&issuer, &["ehr-two.example.test"], "ehr-two");
        PasPki {
            ca: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
            stranger_cert,
            stranger_key,
            other_cert,
            other_key,
        }
    }

    /// Writes the CA and the server's certificate and key into `dir`.
    pub fn write_to(&self, dir: &Path) -> PasPkiFiles {
        let files = PasPkiFiles {
            ca: dir.join("pas-ca.pem"),
            cert: dir.join("pas-server.pem"),
            key: dir.join("pas-server.key"),
        };
        std::fs::write(&files.ca, &self.ca).expect("ca");
        std::fs::write(&files.cert, &self.server_cert).expect("cert");
        std::fs::write(&files.key, &self.server_key).expect("key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600))
                .expect("key mode");
        }
        files
    }
}

/// An EHR's PAS client.
pub struct PasClient {
    http: reqwest::Client,
    /// `https://127.0.0.1:PORT/fhir`.
    pub base: String,
}

/// One answer: HTTP status and JSON body (`Value::Null` when not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The body as JSON.
    pub body: Value,
}

impl PasClient {
    /// A client presenting `cert`/`key` (None: no client certificate),
    /// trusting `ca`.
    pub fn new(base: &str, ca: &str, identity: Option<(&str, &str)>) -> PasClient {
        let trust = reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca");
        let mut builder = reqwest::Client::builder()
            .tls_certs_only(vec![trust])
            .timeout(Duration::from_secs(30));
        if let Some((cert, key)) = identity {
            let pem = format!("{cert}\n{key}");
            builder =
                builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
        }
        PasClient {
            http: builder.build().expect("client"),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// POSTs `body` to `[base]/{path}` with `content_type`.
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Answer, reqwest::Error> {
        let response = self
            .http
            .post(format!("{}/{path}", self.base))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = response.bytes().await?;
        Ok(Answer {
            status,
            content_type,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// `GET [base]/{path}`.
    pub async fn get(&self, path: &str) -> Answer {
        let response = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await
            .expect("GET");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        Answer {
            status,
            content_type: String::new(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// `Claim/$submit` with a PAS Request Bundle.
    pub async fn submit(&self, bundle: &[u8]) -> Answer {
        self.post("Claim/$submit", "application/fhir+json", bundle.to_vec())
            .await
            .expect("$submit")
    }

    /// `Claim/$inquire`.
    pub async fn inquire(&self, bundle: &[u8]) -> Answer {
        self.post("Claim/$inquire", "application/fhir+json", bundle.to_vec())
            .await
            .expect("$inquire")
    }

    /// Registers a rest-hook subscription on the PAS topic to `endpoint`
    /// with `payload` (`id-only`, `full-resource`) and a bearer header.
    pub async fn subscribe(&self, endpoint: &str, payload: &str, token: &str) -> Answer {
        let subscription = json!({
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "synthetic test subscription",
            "criteria": gateway_davinci_pas::urls::TOPIC,
            "channel": {
                "type": "rest-hook",
                "endpoint": endpoint,
                "payload": "application/fhir+json",
                "_payload": {"extension": [{"url": gateway_davinci_pas::urls::BACKPORT_PAYLOAD, "valueCode": payload}]},
                "header": [format!("Authorization: Bearer {token}")]
            }
        });
        self.post(
            "Subscription",
            "application/fhir+json",
            subscription.to_string().into_bytes(),
        )
        .await
        .expect("subscribe")
    }
}

/// The ClaimResponse of a PAS Response Bundle.
pub fn claim_response(bundle: &Value) -> &Value {
    &bundle["entry"][0]["resource"]
}

/// `(itemSequence, review action code, number)` of each ClaimResponse item.
pub fn actions(bundle: &Value) -> Vec<(u64, String, Option<String>)> {
    gateway_davinci_pas::response::item_actions(claim_response(bundle))
}

/// One notification the endpoint received.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The request path.
    pub path: String,
    /// `Authorization` header.
    pub authorization: Option<String>,
    /// The Bundle.
    pub body: Value,
}

/// The EHR's rest-hook receiver: records every POST and answers 200
/// (or 503 while `failing` is set).
#[derive(Clone)]
pub struct SubscriptionEndpoint {
    /// Its address.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Notification>>>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl SubscriptionEndpoint {
    /// Starts on `127.0.0.1:0`.
    pub async fn start() -> SubscriptionEndpoint {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode, Uri};
        type Shared = (
            Arc<Mutex<Vec<Notification>>>,
            Arc<std::sync::atomic::AtomicBool>,
        );
        async fn hook(
            State((received, failing)): State<Shared>,
            uri: Uri,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> StatusCode {
            if failing.load(std::sync::atomic::Ordering::SeqCst) {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            let notification = Notification {
                path: uri.path().to_owned(),
                authorization: headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            };
            received.lock().expect("lock").push(notification);
            StatusCode::OK
        }
        let received = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(hook))
            .with_state((Arc::clone(&received), Arc::clone(&failing)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        SubscriptionEndpoint {
            addr,
            received,
            failing,
            _stop: Arc::new(stop),
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer 503 (true) or 200 (false) from now on.
    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Notification> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until `n` notifications arrived (bounded by `limit`).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Notification> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} notifications (got {})",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    probe.local_addr().expect("addr").port()
}

/// The `[davinci_pas]` section for a daemon test config: mutual TLS with
/// `files`, client `ehr-one` allowed by SAN `client_san` and client `ehr-two`
/// by `ehr-two.example.test` ([`PasPki::other_cert`]), `http://`
/// notification endpoints on loopback allowed, bodies up to `max_body_kb`.
pub fn pas_section(port: u16, files: &PasPkiFiles, client_san: &str, max_body_kb: usize) -> String {
    format!(
        r#"[davinci_pas]
profile = "davinci-pas"
listen = "127.0.0.1:{port}"
max_body_kb = {max_body_kb}
allow_plaintext_notifications = true
[davinci_pas.tls]
cert = "{cert}"
key = "{key}"
client_ca = "{ca}"
[[davinci_pas.clients]]
name = "ehr-one"
san = ["{client_san}"]
[[davinci_pas.clients]]
name = "ehr-two"
san = ["ehr-two.example.test"]
"#,
        cert = files.cert.display(),
        key = files.key.display(),
        ca = files.ca.display(),
    )
}

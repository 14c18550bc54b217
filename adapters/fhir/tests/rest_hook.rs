//! The rest-hook listener as a network edge, over real loopback sockets and
//! HTTPS: a token is required by the configuration (none, or one shorter than
//! 32 characters, is refused), a missing or wrong token gets 401, the right
//! one 200, and plain HTTP on the TLS port is not served.
//!
//! The EHR base URL is a closed loopback port: the polls a notification
//! triggers fail, so nothing reaches the pipeline (which refuses, should it
//! ever be called).
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gateway_core::GatewayError;
use gateway_core::adapter::{BoxFuture, InboundMessage, IntakeOutcome, IntakePipeline};
use gateway_fhir::poll::{FileWatermarkStore, WatermarkStore};
use gateway_fhir::{FhirAdapter, FhirConfig};
use support::repo_root;

const TOKEN: &str = "hook-token-0123456789abcdefghijklmnop";

/// Counts submissions and refuses them: no notification carries data.
#[derive(Default)]
struct Refusing(AtomicUsize);

impl IntakePipeline for Refusing {
    fn submit(
        &self,
        _message: InboundMessage,
    ) -> BoxFuture<'_, Result<IntakeOutcome, GatewayError>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Err(GatewayError::internal(true, "not expected in this test")) })
    }
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(subscription: &str) -> Result<FhirAdapter, String> {
    let text = format!(
        "profile = \"{}\"\nbase_url = \"http://127.0.0.1:{}/fhir\"\npoll_interval_secs = 3600\n\
         [auth]\nstyle = \"none\"\n{subscription}",
        repo_root().join("mappings/athenahealth").display(),
        closed_port()
    );
    let config: FhirConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
    FhirAdapter::new(config).map_err(|e| e.to_string())
}

#[test]
fn the_rest_hook_needs_a_long_enough_token() {
    let missing = config("[subscription]\nlisten = \"127.0.0.1:0\"\n")
        .err()
        .unwrap();
    assert!(missing.contains("token"), "{missing}");
    let short = config("[subscription]\nlisten = \"127.0.0.1:0\"\ntoken = \"0123456789\"\n")
        .err()
        .unwrap();
    assert!(short.contains("at least 32"), "{short}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hook.token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    assert!(
        config(&format!(
            "[subscription]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
            file.display()
        ))
        .is_ok()
    );
}

#[tokio::test]
async fn notifications_over_https_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let pki = generate_pki(dir.path());
    let token_file = dir.path().join("hook.token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let adapter = config(&format!(
        "[subscription]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n\
         [subscription.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
         [subscription.limits]\nmax_connections = 8\n",
        token_file.display(),
        dir.path().join("hook.pem").display(),
        dir.path().join("hook.key").display()
    ))
    .unwrap();
    let pipeline = Arc::new(Refusing::default());
    let store: Arc<dyn WatermarkStore> =
        Arc::new(FileWatermarkStore::new(dir.path().join("watermarks")));
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let submitted = pipeline.clone();
    let task = tokio::spawn(async move {
        adapter
            .serve(
                submitted,
                store,
                async {
                    let _ = stop_rx.await;
                },
                |addr| {
                    let _ = addr_tx.send(addr);
                },
            )
            .await
    });
    let addr: SocketAddr = addr_rx.await.unwrap().unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.as_bytes()).unwrap()])
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/fhir/notify", addr.port());
    let bundle = r#"{"resourceType":"Bundle","type":"history","entry":[]}"#;
    let none = http.post(&url).body(bundle).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = http
        .post(&url)
        .bearer_auth(format!("{}x", &TOKEN[..TOKEN.len() - 1]))
        .body(bundle)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = http
        .post(&url)
        .bearer_auth(TOKEN)
        .body(bundle)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    // Plain HTTP on the HTTPS port is not served.
    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/fhir/notify", addr.port()))
        .bearer_auth(TOKEN)
        .body(bundle)
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
    let _ = stop_tx.send(());
    task.await.unwrap().unwrap();
    assert_eq!(pipeline.0.load(Ordering::SeqCst), 0);
}

/// A CA and a `localhost` certificate signed by it; writes `hook.pem` and
/// `hook.key` into `dir`; returns the CA's PEM.
fn generate_pki(dir: &std::path::Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("hook.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("hook.key"), key.serialize_pem()).unwrap();
    ca.pem()
}

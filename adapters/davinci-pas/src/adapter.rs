//! The Da Vinci PAS adapter's facade on the seam ([`DavinciPas`], a
//! [`gateway_seam::Adapter`]): the `[davinci_pas]` section ([`PasConfig`]),
//! starting the PAS HTTPS server and its write-back (subscription
//! notifications), and the loopback demo.
//!
//! Stored cases are read through the host ([`HostDirectory`], the seam's
//! [`Host`] over the daemon's store); the adapter never sees the store.

use std::path::PathBuf;
use std::sync::Arc;

use gateway_core::adapter::{BoxFuture, WriteBack};
use gateway_core::{Case, GatewayError, SourceFormat};
use gateway_seam::{
    Adapter, AdapterContext, AdapterSpec, Demo, DemoEnv, DemoState, Endpoint, Host, Paths, Problem,
    StartError, Started, Transport, add_secret,
};

use crate::auth::Authenticator;
use crate::config::{ClientConfig, PasConfig};
use crate::server::{PasServer, router};
use crate::subscription::{Notifier, SubscriptionStore};
use crate::writeback::PasWriteBack;
use crate::{ADAPTER, CaseDirectory};

/// This adapter's registry entry.
pub const SPEC: AdapterSpec = AdapterSpec {
    name: ADAPTER,
    section: "davinci_pas",
    metrics_label: ADAPTER,
    formats: &[SourceFormat::DavinciPas],
    transports: &[Transport::FhirApi, Transport::WriteBack],
    acknowledges: false,
};

/// The `[davinci_pas]` section: see [`PasConfig`].
pub type Section = PasConfig;

/// The Da Vinci PAS adapter.
pub struct DavinciPas;

/// Cases of the PAS adapter, read through the host.
pub struct HostDirectory {
    host: Arc<dyn Host>,
}

impl HostDirectory {
    /// A directory over `host`.
    pub fn new(host: Arc<dyn Host>) -> Self {
        HostDirectory { host }
    }
}

impl CaseDirectory for HostDirectory {
    fn case_by_id<'a>(
        &'a self,
        case_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>> {
        self.host.case(case_id)
    }

    fn case_by_reference<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>> {
        self.host.case_by_reference(ADAPTER, name, value)
    }

    fn case_of_message(
        &self,
        message_id: i64,
    ) -> BoxFuture<'_, Result<Option<Case>, GatewayError>> {
        self.host.case_of_message(message_id)
    }
}

/// The profile's name: the folder name of a path, or the name itself.
fn profile_name(profile: &std::path::Path) -> String {
    profile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ADAPTER.to_owned())
}

/// Reads each client's JWKS file.
fn read_jwks(section: &PasConfig) -> Result<Vec<(String, Vec<u8>)>, StartError> {
    let mut out = Vec::new();
    for client in &section.clients {
        if let Some(path) = &client.jwks_file {
            let bytes = std::fs::read(path).map_err(|e| {
                StartError::new(
                    format!(
                        "davinci_pas.clients `{}`: jwks_file {}",
                        client.name,
                        path.display()
                    ),
                    e,
                )
            })?;
            out.push((client.name.clone(), bytes));
        }
    }
    Ok(out)
}

fn message(text: String) -> StartError {
    StartError::other(std::io::Error::other(text))
}

impl Adapter for DavinciPas {
    type Section = Section;

    fn spec(&self) -> &'static AdapterSpec {
        &SPEC
    }

    fn secret_files(&self, section: &Section) -> Vec<(String, PathBuf)> {
        let mut files = Vec::new();
        add_secret(
            &mut files,
            "davinci_pas.tls.key".to_owned(),
            section.tls.as_ref().map(|t| t.key.as_path()),
        );
        files
    }

    fn inline_secrets(&self, _section: &Section) -> Vec<&'static str> {
        Vec::new()
    }

    fn profiles(&self, section: &Section) -> Vec<String> {
        vec![profile_name(&section.profile)]
    }

    fn check(&self, section: &Section, paths: &Paths, problems: &mut Vec<Problem>) {
        for (key, text) in section.problems() {
            problems.push(paths.problem(format!("davinci_pas.{key}"), text));
        }
        for (i, client) in section.clients.iter().enumerate() {
            if let Some(path) = &client.jwks_file
                && !path.is_file()
            {
                problems.push(paths.problem(
                    format!("davinci_pas.clients[{i}].jwks_file"),
                    format!("{} is not a readable file", path.display()),
                ));
            }
        }
    }

    fn start<'a>(
        &'a self,
        section: &'a Section,
        context: AdapterContext,
    ) -> BoxFuture<'a, Result<Started, StartError>> {
        Box::pin(async move {
            if let Some((key, text)) = section.problems().into_iter().next() {
                return Err(message(format!("davinci_pas.{key}: {text}")));
            }
            let tls = match &section.tls {
                Some(files) => Some(
                    gateway_http_listener::tls::server_config(files)
                        .map_err(|e| StartError::new("davinci_pas.tls", e))?,
                ),
                None => None,
            };
            let auth = Authenticator::new(section, &read_jwks(section)?)
                .map_err(|e| message(format!("davinci_pas: {e}")))?;
            let subscriptions = Arc::new(
                SubscriptionStore::open(context.data_dir.join("davinci-pas/subscriptions.json"))
                    .map_err(|e| StartError::new("davinci_pas subscriptions", e))?,
            );
            let notifier = Arc::new(
                Notifier::new(
                    Arc::clone(&subscriptions),
                    section.base_url(),
                    section.notification_timeout_secs,
                )
                .map_err(|e| message(format!("davinci_pas: {e}")))?,
            );
            let profile = profile_name(&section.profile);
            let server = Arc::new(PasServer {
                auth,
                pipeline: Arc::clone(&context.pipeline),
                directory: Arc::new(HostDirectory::new(Arc::clone(&context.host))),
                subscriptions,
                profile: profile.clone(),
                tls: tls.is_some(),
                max_body: section.max_body_kb.saturating_mul(1024),
                allow_http_endpoints: section.allow_plaintext_notifications,
            });
            let listener = tokio::net::TcpListener::bind(&section.listen)
                .await
                .map_err(|e| {
                    StartError::new(format!("davinci_pas.listen {}", section.listen), e)
                })?;
            let addr = listener
                .local_addr()
                .map_err(|e| StartError::new("davinci_pas.listen", e))?;
            let options = gateway_http_listener::Options {
                name: "davinci-pas",
                tls: tls.clone(),
                limits: section.limits,
            };
            let app = router(server, &section.base_path);
            let shutdown = context.shutdown.clone();
            let mut started = Started::default();
            started.tasks.push(tokio::spawn(async move {
                if let Err(e) =
                    gateway_http_listener::serve(listener, app, options, shutdown.cancelled_owned())
                        .await
                {
                    tracing::warn!(error = %e, "PAS server stopped");
                }
            }));
            started.writebacks.push((
                Arc::new(PasWriteBack::new(notifier)) as Arc<dyn WriteBack>,
                Some(profile.clone()),
            ));
            started.endpoints.push(Endpoint {
                transport: Transport::FhirApi,
                description: format!(
                    "Da Vinci PAS server {}{} ({})",
                    addr,
                    section.base_path,
                    if tls.is_some() {
                        "mutual TLS"
                    } else {
                        "plain HTTP, loopback"
                    }
                ),
                addr: Some(addr),
                profile: Some(profile),
            });
            Ok(started)
        })
    }

    fn demo_configure(&self, _env: &DemoEnv) -> Result<Demo<Section>, String> {
        // Loopback only, plain HTTP: the demo's own client is the EHR. A real
        // deployment uses mutual TLS (docs/davinci-pas.md).
        Ok(Demo {
            section: PasConfig {
                profile: PathBuf::from("davinci-pas"),
                listen: "127.0.0.1:0".to_owned(),
                base_path: "/fhir".to_owned(),
                public_base_url: None,
                tls: None,
                allow_plaintext: true,
                plaintext_client: Some("demo-ehr".to_owned()),
                max_body_kb: 1024,
                limits: Default::default(),
                clients: vec![ClientConfig {
                    name: "demo-ehr".to_owned(),
                    san: Vec::new(),
                    fingerprints: Vec::new(),
                    jwks_file: None,
                    client_id: None,
                }],
                notification_timeout_secs: 5,
                allow_plaintext_notifications: true,
            },
            state: Box::new(()),
        })
    }

    fn demo_traffic<'a>(
        &'a self,
        started: &'a Started,
        _state: &'a mut DemoState,
        _host: Arc<dyn Host>,
        env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let Some(addr) = started.endpoints.iter().find_map(|e| e.addr) else {
                return Err("the PAS server did not start".to_owned());
            };
            let http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?;
            let samples = env.repo_root.join("sample-messages/fhir/davinci-pas");
            let (mut sent, mut pended) = (0, 0);
            for name in ["referral", "medical-services", "home-care", "surgical"] {
                let body = std::fs::read(samples.join(format!("{name}.json")))
                    .map_err(|e| format!("PAS sample {name}: {e}"))?;
                sent += 1;
                let answer = http
                    .post(format!("http://{addr}/fhir/Claim/$submit"))
                    .header("Content-Type", "application/fhir+json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("PAS $submit: {e}"))?;
                if !answer.status().is_success() {
                    return Err(format!(
                        "PAS $submit of {name} answered {}",
                        answer.status()
                    ));
                }
                let bundle: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
                let claim_response = &bundle["entry"][0]["resource"];
                if crate::response::item_actions(claim_response)
                    .iter()
                    .all(|(_, code, _)| code == "A4")
                {
                    pended += 1;
                }
            }
            Ok(format!(
                "davinci-pas: {sent} PAS requests posted to Claim/$submit at http://{addr}/fhir (loopback demo, plain HTTP), {pended} answered pended (A4)"
            ))
        })
    }
}

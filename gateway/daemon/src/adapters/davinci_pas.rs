//! Da Vinci PAS wiring: the `[davinci_pas]` config section, starting the PAS
//! HTTPS server (`Claim/$submit`, `Claim/$inquire`, `Subscription`) and its
//! write-back (subscription notifications), and the store-backed
//! [`CaseDirectory`] the server answers from.
//!
//! The daemon reads the files (TLS material, each client's JWKS) and hands
//! values to the adapter; the adapter never sees the store — only
//! [`StoreDirectory`], which reads cases the PAS adapter owns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use gateway_core::adapter::{BoxFuture, WriteBack};
use gateway_core::{Case, GatewayError};
use gateway_davinci_pas::auth::Authenticator;
use gateway_davinci_pas::server::{PasServer, router};
use gateway_davinci_pas::subscription::{Notifier, SubscriptionStore};
use gateway_davinci_pas::writeback::PasWriteBack;
use gateway_davinci_pas::{CaseDirectory, PasConfig};
use gateway_store::Store;

use super::{Adapter, AdapterContext, DemoEnv, Endpoint, Started};
use crate::settings::{Problem, Settings};

/// The `[davinci_pas]` section: see [`PasConfig`].
pub type Section = PasConfig;

/// The Da Vinci PAS adapter.
pub struct DavinciPas;

/// Cases of the PAS adapter, read from the store.
pub struct StoreDirectory {
    store: Store,
}

impl StoreDirectory {
    /// A directory over `store`.
    pub fn new(store: Store) -> Self {
        StoreDirectory { store }
    }
}

impl CaseDirectory for StoreDirectory {
    fn case_by_id<'a>(
        &'a self,
        case_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>> {
        Box::pin(async move { Ok(self.store.get_case(case_id).await?.map(|r| r.case)) })
    }

    fn case_by_reference<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> BoxFuture<'a, Result<Option<Case>, GatewayError>> {
        Box::pin(async move {
            Ok(self
                .store
                .case_by_reference(gateway_davinci_pas::ADAPTER, name, value)
                .await?
                .map(|r| r.case))
        })
    }

    fn case_of_message(
        &self,
        message_id: i64,
    ) -> BoxFuture<'_, Result<Option<Case>, GatewayError>> {
        Box::pin(async move {
            Ok(self
                .store
                .case_of_message(message_id)
                .await?
                .map(|r| r.case))
        })
    }
}

/// The profile's name: the folder name of a path, or the name itself.
fn profile_name(profile: &Path) -> String {
    profile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| gateway_davinci_pas::ADAPTER.to_owned())
}

/// Reads each client's JWKS file.
fn read_jwks(section: &PasConfig) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for client in &section.clients {
        if let Some(path) = &client.jwks_file {
            let bytes = std::fs::read(path).with_context(|| {
                format!(
                    "davinci_pas.clients `{}`: jwks_file {}",
                    client.name,
                    path.display()
                )
            })?;
            out.push((client.name.clone(), bytes));
        }
    }
    Ok(out)
}

impl Adapter for DavinciPas {
    fn spec(&self) -> &'static gateway_registry::AdapterSpec {
        &gateway_registry::DAVINCI_PAS
    }

    fn secret_files(&self, settings: &Settings) -> Vec<(String, PathBuf)> {
        let mut files = Vec::new();
        if let Some(section) = &settings.davinci_pas {
            super::add_secret(
                &mut files,
                "davinci_pas.tls.key".to_owned(),
                &section.tls.as_ref().map(|t| t.key.clone()),
            );
        }
        files
    }

    fn inline_secrets(&self, _settings: &Settings) -> Vec<&'static str> {
        Vec::new()
    }

    fn configured(&self, settings: &Settings) -> bool {
        settings.davinci_pas.is_some()
    }

    fn profiles(&self, settings: &Settings) -> Vec<String> {
        settings
            .davinci_pas
            .iter()
            .map(|s| profile_name(&s.profile))
            .collect()
    }

    fn check(&self, settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>) {
        let Some(section) = &settings.davinci_pas else {
            return;
        };
        for (key, message) in section.problems() {
            problems.push(Problem {
                origin: config_file.display().to_string(),
                key: Some(format!("davinci_pas.{key}")),
                message,
            });
        }
        for (i, client) in section.clients.iter().enumerate() {
            if let Some(path) = &client.jwks_file
                && !path.is_file()
            {
                problems.push(Problem {
                    origin: config_file.display().to_string(),
                    key: Some(format!("davinci_pas.clients[{i}].jwks_file")),
                    message: format!("{} is not a readable file", path.display()),
                });
            }
        }
    }

    fn start<'a>(
        &'a self,
        settings: &'a Settings,
        context: AdapterContext,
    ) -> BoxFuture<'a, anyhow::Result<Started>> {
        Box::pin(async move {
            let Some(section) = &settings.davinci_pas else {
                return Ok(Started::default());
            };
            if let Some((key, message)) = section.problems().into_iter().next() {
                anyhow::bail!("davinci_pas.{key}: {message}");
            }
            let tls = match &section.tls {
                Some(files) => Some(
                    gateway_http_listener::tls::server_config(files).context("davinci_pas.tls")?,
                ),
                None => None,
            };
            let auth = Authenticator::new(section, &read_jwks(section)?)
                .map_err(|e| anyhow::anyhow!("davinci_pas: {e}"))?;
            let subscriptions = Arc::new(
                SubscriptionStore::open(context.data_dir.join("davinci-pas/subscriptions.json"))
                    .context("davinci_pas subscriptions")?,
            );
            let notifier = Arc::new(
                Notifier::new(
                    Arc::clone(&subscriptions),
                    section.base_url(),
                    section.notification_timeout_secs,
                )
                .map_err(|e| anyhow::anyhow!("davinci_pas: {e}"))?,
            );
            let profile = profile_name(&section.profile);
            let server = Arc::new(PasServer {
                auth,
                pipeline: Arc::clone(&context.pipeline),
                directory: Arc::new(StoreDirectory::new(context.store.clone())),
                subscriptions,
                profile: profile.clone(),
                tls: tls.is_some(),
                max_body: section.max_body_kb.saturating_mul(1024),
                allow_http_endpoints: section.allow_plaintext_notifications,
            });
            let listener = tokio::net::TcpListener::bind(&section.listen)
                .await
                .with_context(|| format!("davinci_pas.listen {}", section.listen))?;
            let addr = listener.local_addr()?;
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
                transport: gateway_registry::Transport::FhirApi,
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

    fn demo_configure(&self, settings: &mut Settings, _env: &DemoEnv) -> Result<(), String> {
        // Loopback only, plain HTTP: the demo's own client is the EHR. A real
        // deployment uses mutual TLS (docs/davinci-pas.md).
        settings.davinci_pas = Some(PasConfig {
            profile: PathBuf::from("davinci-pas"),
            listen: "127.0.0.1:0".to_owned(),
            base_path: "/fhir".to_owned(),
            public_base_url: None,
            tls: None,
            allow_plaintext: true,
            plaintext_client: Some("demo-ehr".to_owned()),
            max_body_kb: 1024,
            limits: Default::default(),
            clients: vec![gateway_davinci_pas::config::ClientConfig {
                name: "demo-ehr".to_owned(),
                san: Vec::new(),
                fingerprints: Vec::new(),
                jwks_file: None,
                client_id: None,
            }],
            notification_timeout_secs: 5,
            allow_plaintext_notifications: true,
        });
        Ok(())
    }

    fn demo_traffic<'a>(
        &'a self,
        started: &'a Started,
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
                if gateway_davinci_pas::response::item_actions(claim_response)
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

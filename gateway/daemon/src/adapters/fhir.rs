//! FHIR adapter wiring: the `[fhir]` config section (one cloud EHR), starting
//! the poller (plus the optional rest-hook) and the write-back, and the demo
//! against the loopback Medplum FHIR server when node and its npm packages
//! are installed (`.ci/install.d/40-fhir.sh`).
//!
//! The demo never pretends: without node or the packages it says it skipped
//! the FHIR adapter and why.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use gateway_core::adapter::{BoxFuture, WriteBack};
use gateway_fhir::auth::{AuthConfig, SigningAlgorithm, public_jwks};
use gateway_fhir::poll::{FileWatermarkStore, WatermarkStore};
use gateway_fhir::service::profile_name;
use gateway_fhir::{FhirAdapter, FhirConfig};

use super::{Adapter, AdapterContext, DemoEnv, Endpoint, Started};
use crate::settings::{Problem, Settings};

/// The `[fhir]` section: see [`FhirConfig`]. `profile` is a profile name
/// under `mappings_dir` or a profile folder path.
pub type Section = FhirConfig;

/// The FHIR adapter.
pub struct Fhir;

/// The loopback FHIR server the demo started (killed after the demo traffic).
struct DemoServer {
    child: Child,
    base_url: String,
    orders: usize,
}

static DEMO: Mutex<Option<DemoServer>> = Mutex::new(None);

fn demo_state() -> std::sync::MutexGuard<'static, Option<DemoServer>> {
    DEMO.lock().unwrap_or_else(|p| p.into_inner())
}

/// The section with `profile` resolved against `mappings_dir` when it names a
/// profile rather than a folder.
fn resolved(section: &FhirConfig, settings: &Settings) -> FhirConfig {
    let mut section = section.clone();
    if !section.profile.join("profile.toml").is_file() {
        section.profile = settings.mappings_dir.join(&section.profile);
    }
    section
}

impl Adapter for Fhir {
    fn spec(&self) -> &'static gateway_registry::AdapterSpec {
        &gateway_registry::FHIR
    }

    fn secret_files(&self, settings: &Settings) -> Vec<(String, std::path::PathBuf)> {
        let mut files = Vec::new();
        let Some(fhir) = &settings.fhir else {
            return files;
        };
        match &fhir.auth {
            AuthConfig::SmartBackend {
                private_key_file, ..
            } => super::add_secret(
                &mut files,
                "fhir.auth.private_key_file".to_owned(),
                &Some(private_key_file.clone()),
            ),
            AuthConfig::ClientSecret {
                client_secret_file, ..
            } => super::add_secret(
                &mut files,
                "fhir.auth.client_secret_file".to_owned(),
                client_secret_file,
            ),
            AuthConfig::None => {}
        }
        if let Some(sub) = &fhir.subscription {
            super::add_secret(
                &mut files,
                "fhir.subscription.token_file".to_owned(),
                &sub.token_file,
            );
            super::add_secret(
                &mut files,
                "fhir.subscription.tls.key".to_owned(),
                &sub.tls.as_ref().map(|tls| tls.key.clone()),
            );
        }
        files
    }

    fn inline_secrets(&self, settings: &Settings) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let Some(fhir) = &settings.fhir else {
            return keys;
        };
        if let AuthConfig::ClientSecret {
            client_secret: Some(_),
            ..
        } = &fhir.auth
        {
            keys.push("fhir.auth.client_secret");
        }
        if fhir
            .subscription
            .as_ref()
            .is_some_and(|s| s.token.is_some())
        {
            keys.push("fhir.subscription.token");
        }
        keys
    }

    fn configured(&self, settings: &Settings) -> bool {
        settings.fhir.is_some()
    }

    fn profiles(&self, settings: &Settings) -> Vec<String> {
        settings
            .fhir
            .iter()
            .map(|s| profile_name(&s.profile))
            .collect()
    }

    fn check(&self, settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>) {
        let Some(section) = &settings.fhir else {
            return;
        };
        // Building the adapter loads the vendor file and the credentials.
        if let Err(e) = FhirAdapter::new(resolved(section, settings)) {
            problems.push(Problem {
                origin: config_file.display().to_string(),
                key: Some("fhir".to_owned()),
                message: e.to_string(),
            });
        }
    }

    fn start<'a>(
        &'a self,
        settings: &'a Settings,
        context: AdapterContext,
    ) -> BoxFuture<'a, anyhow::Result<Started>> {
        Box::pin(async move {
            let Some(section) = &settings.fhir else {
                return Ok(Started::default());
            };
            let adapter = Arc::new(FhirAdapter::new(resolved(section, settings))?);
            let store: Arc<dyn WatermarkStore> = Arc::new(FileWatermarkStore::new(
                context.data_dir.join("fhir-watermarks"),
            ));
            let mut started = Started::default();
            started.writebacks.push((
                Arc::new(adapter.write_back()) as Arc<dyn WriteBack>,
                Some(adapter.profile_name().to_owned()),
            ));
            let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
            let serving = Arc::clone(&adapter);
            let pipeline = Arc::clone(&context.pipeline);
            let shutdown = context.shutdown.clone();
            started.tasks.push(tokio::spawn(async move {
                let result = serving
                    .serve(pipeline, store, shutdown.cancelled_owned(), |addr| {
                        let _ = addr_tx.send(addr);
                    })
                    .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, "FHIR adapter stopped");
                }
            }));
            let hook = addr_rx.await.ok().flatten();
            started.endpoints.push(Endpoint {
                transport: gateway_registry::Transport::Poll,
                description: format!(
                    "FHIR poller {} every {} s",
                    section.base_url, section.poll_interval_secs
                ),
                addr: None,
                profile: Some(adapter.profile_name().to_owned()),
            });
            if let Some(addr) = hook {
                started.endpoints.push(Endpoint {
                    transport: gateway_registry::Transport::RestHook,
                    description: "FHIR subscription rest-hook".to_owned(),
                    addr: Some(addr),
                    profile: Some(adapter.profile_name().to_owned()),
                });
            }
            Ok(started)
        })
    }

    fn demo_configure(&self, settings: &mut Settings, env: &DemoEnv) -> Result<(), String> {
        let skipped = "skipped the FHIR adapter";
        let server_dir = env.repo_root.join("adapters/fhir/tests/fhir-server");
        let node = Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !node {
            return Err(format!(
                "{skipped}: node is not installed (needed for the loopback FHIR server)"
            ));
        }
        if !server_dir
            .join("node_modules/@medplum/fhir-router")
            .is_dir()
        {
            return Err(format!(
                "{skipped}: the Medplum FHIR server packages are missing (run .ci/install.d/40-fhir.sh)"
            ));
        }
        let key = env
            .repo_root
            .join("adapters/fhir/tests/keys/test-only-es384.pem");
        let pem = std::fs::read(&key).map_err(|e| format!("{skipped}: demo key: {e}"))?;
        let jwks = public_jwks(&pem, SigningAlgorithm::ES384, "demo-1")
            .map_err(|e| format!("{skipped}: demo JWKS: {e}"))?;
        let server_config = env.temp_dir.join("fhir-server.json");
        let config = serde_json::json!({"token_ttl_seconds": 300, "clients": [
            {"client_id": "ehr-gateway-demo", "auth": "private_key_jwt", "jwks": jwks}]});
        std::fs::write(&server_config, config.to_string())
            .map_err(|e| format!("{skipped}: {e}"))?;
        let mut child = Command::new("node")
            .arg("--experimental-websocket")
            .arg("--no-warnings")
            .arg(server_dir.join("server.mjs"))
            .arg(&server_config)
            .current_dir(&server_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{skipped}: cannot start node: {e}"))?;
        let port = child
            .stdout
            .take()
            .and_then(|out| {
                let mut line = String::new();
                BufReader::new(out).read_line(&mut line).ok()?;
                serde_json::from_str::<serde_json::Value>(&line).ok()?["port"].as_u64()
            })
            .ok_or_else(|| format!("{skipped}: the FHIR server did not start"));
        let port = match port {
            Ok(p) => p,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let base_url = format!("http://127.0.0.1:{port}/fhir/R4");
        // The synthetic athenahealth bundles become the EHR's data.
        let mut resources = Vec::new();
        let mut orders = 0;
        let samples = env.repo_root.join("sample-messages/fhir/athenahealth");
        for name in ["order-full.json", "order-urgent-reasoncode.json"] {
            let bundle: serde_json::Value = std::fs::read(samples.join(name))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                if entry["resource"]["resourceType"] == "ServiceRequest" {
                    orders += 1;
                }
                resources.push(serde_json::json!({"resource": entry["resource"]}));
            }
        }
        let load = serde_json::json!({"entry": resources}).to_string();
        let loaded = std::process::Command::new("node")
            .arg("-e")
            .arg(format!(
                "fetch('http://127.0.0.1:{port}/_control/load',{{method:'POST',body:process.argv[1]}}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
            ))
            .arg(&load)
            .status()
            .is_ok_and(|s| s.success());
        if !loaded {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{skipped}: could not load the synthetic orders"));
        }
        settings.fhir = Some(FhirConfig {
            profile: env.repo_root.join("mappings/athenahealth"),
            base_url: base_url.clone(),
            auth: AuthConfig::SmartBackend {
                token_url: format!("http://127.0.0.1:{port}/token"),
                client_id: "ehr-gateway-demo".to_owned(),
                private_key_file: key,
                algorithm: SigningAlgorithm::ES384,
                kid: "demo-1".to_owned(),
                scopes: None,
            },
            poll_interval_secs: 5,
            overlap_secs: 0,
            max_concurrency: None,
            page_size: None,
            request_timeout_secs: 10,
            max_response_mb: 32,
            subscription: None,
        });
        *demo_state() = Some(DemoServer {
            child,
            base_url,
            orders,
        });
        Ok(())
    }

    fn demo_traffic<'a>(
        &'a self,
        _started: &'a Started,
        _env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let state = demo_state()
                .as_ref()
                .map(|s| (s.base_url.clone(), s.orders));
            let Some((base_url, orders)) = state else {
                return Err("the FHIR demo was not configured".to_owned());
            };
            // The poller's first pass runs at start; give it a moment.
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            Ok(format!(
                "fhir: {orders} synthetic orders served by the loopback Medplum FHIR server at {base_url}, polled with SMART Backend Services (ES384)"
            ))
        })
    }
}

/// Stops the loopback FHIR server the demo started, if any, and waits for it.
/// The demo calls this on every exit path (the server would also exit once
/// its stdin closes, but only after this process is gone).
pub fn stop_demo_server() {
    drop(demo_state().take());
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

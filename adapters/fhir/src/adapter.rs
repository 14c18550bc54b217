//! The FHIR adapter's facade on the seam ([`Fhir`], a
//! [`gateway_seam::Adapter`]): the `[fhir]` config section (one cloud EHR),
//! starting the poller (plus the optional rest-hook) and the write-back, and
//! the demo against the loopback Medplum FHIR server when node and its npm
//! packages are installed (`.ci/install.d/40-fhir.sh`).
//!
//! The demo never pretends: without node or the packages it says it skipped
//! the FHIR adapter and why. The server it starts is owned by the demo's
//! [`DemoState`] and stopped when that is dropped (no global).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use gateway_core::SourceFormat;
use gateway_core::adapter::{BoxFuture, WriteBack};
use gateway_seam::{
    Adapter, AdapterContext, AdapterSpec, Demo, DemoEnv, DemoState, Endpoint, Host, Paths, Problem,
    StartError, Started, Transport, add_secret,
};

use crate::auth::{AuthConfig, SigningAlgorithm, public_jwks};
use crate::poll::{FileWatermarkStore, WatermarkStore};
use crate::service::profile_name;
use crate::{FhirAdapter, FhirConfig};

/// This adapter's registry entry.
pub const SPEC: AdapterSpec = AdapterSpec {
    name: crate::poll::ADAPTER,
    section: "fhir",
    metrics_label: crate::poll::ADAPTER,
    formats: &[SourceFormat::Fhir],
    transports: &[Transport::Poll, Transport::RestHook, Transport::WriteBack],
    acknowledges: false,
};

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

/// The section with `profile` resolved against `mappings_dir` when it names a
/// profile rather than a folder.
fn resolved(section: &FhirConfig, mappings_dir: &Path) -> FhirConfig {
    let mut section = section.clone();
    if !section.profile.join("profile.toml").is_file() {
        section.profile = mappings_dir.join(&section.profile);
    }
    section
}

impl Adapter for Fhir {
    type Section = Section;

    fn spec(&self) -> &'static AdapterSpec {
        &SPEC
    }

    fn secret_files(&self, fhir: &Section) -> Vec<(String, PathBuf)> {
        let mut files = Vec::new();
        match &fhir.auth {
            AuthConfig::SmartBackend {
                private_key_file, ..
            } => add_secret(
                &mut files,
                "fhir.auth.private_key_file".to_owned(),
                Some(private_key_file),
            ),
            AuthConfig::ClientSecret {
                client_secret_file, ..
            } => add_secret(
                &mut files,
                "fhir.auth.client_secret_file".to_owned(),
                client_secret_file.as_deref(),
            ),
            AuthConfig::None => {}
        }
        if let Some(sub) = &fhir.subscription {
            add_secret(
                &mut files,
                "fhir.subscription.token_file".to_owned(),
                sub.token_file.as_deref(),
            );
            add_secret(
                &mut files,
                "fhir.subscription.tls.key".to_owned(),
                sub.tls.as_ref().map(|tls| tls.key.as_path()),
            );
        }
        files
    }

    fn inline_secrets(&self, fhir: &Section) -> Vec<&'static str> {
        let mut keys = Vec::new();
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

    fn profiles(&self, section: &Section) -> Vec<String> {
        vec![profile_name(&section.profile)]
    }

    fn check(&self, section: &Section, paths: &Paths, problems: &mut Vec<Problem>) {
        // Building the adapter loads the vendor file and the credentials.
        if let Err(e) = FhirAdapter::new(resolved(section, &paths.mappings_dir)) {
            problems.push(paths.problem("fhir", e.to_string()));
        }
    }

    fn start<'a>(
        &'a self,
        section: &'a Section,
        context: AdapterContext,
    ) -> BoxFuture<'a, Result<Started, StartError>> {
        Box::pin(async move {
            let adapter = FhirAdapter::new(resolved(section, &context.paths.mappings_dir))
                .map_err(StartError::other)?;
            let adapter = Arc::new(adapter);
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
                transport: Transport::Poll,
                description: format!(
                    "FHIR poller {} every {} s",
                    section.base_url, section.poll_interval_secs
                ),
                addr: None,
                profile: Some(adapter.profile_name().to_owned()),
            });
            if let Some(addr) = hook {
                started.endpoints.push(Endpoint {
                    transport: Transport::RestHook,
                    description: "FHIR subscription rest-hook".to_owned(),
                    addr: Some(addr),
                    profile: Some(adapter.profile_name().to_owned()),
                });
            }
            Ok(started)
        })
    }

    fn demo_configure(&self, env: &DemoEnv) -> Result<Demo<Section>, String> {
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
        let section = FhirConfig {
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
        };
        Ok(Demo {
            section,
            state: Box::new(DemoServer {
                child,
                base_url,
                orders,
            }),
        })
    }

    fn demo_traffic<'a>(
        &'a self,
        _started: &'a Started,
        state: &'a mut DemoState,
        _host: Arc<dyn Host>,
        _env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            // Stopped when the demo drops its state, at exit.
            let Some(server) = state.downcast_ref::<DemoServer>() else {
                return Err("the FHIR demo was not configured".to_owned());
            };
            let (base_url, orders) = (server.base_url.clone(), server.orders);
            // The poller's first pass runs at start; give it a moment.
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            Ok(format!(
                "fhir: {orders} synthetic orders served by the loopback Medplum FHIR server at {base_url}, polled with SMART Backend Services (ES384)"
            ))
        })
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

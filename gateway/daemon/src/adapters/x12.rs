//! X12 wiring: the `[x12]` section's host side. The adapter's transports,
//! write-back and outbound request routes are assembled by its own facade
//! (`gateway_x12::start`); what this file adds is what needs the daemon's
//! store: durable control numbers ([`StoreControlNumbers`]), audit rows of
//! refused CORE SOAP requests, and the submission worker of the outbound 278
//! request path (`requests`, over the store's queue). Plus the loopback demo
//! (sample 278s dropped into the inbound folder, and a 278 request sent over
//! HTTPS with our own CORE client to our own server).
//!
//! Control numbers of everything the adapter writes (999, TA1, 278 requests
//! and responses) are allocated from the store: each allocation is committed
//! before the number is used, so none is reused after a crash or restart.
//! Scopes are per ISA sender id (`x12/<ISA06>/interchange|group|transaction`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::GatewayError;
use gateway_core::adapter::BoxFuture;
use gateway_store::Store;
use gateway_x12::config::{
    FileDropConfig, PartnerConfig, ServerTlsConfig, SoapServerConfig, WriteBackConfig, X12Config,
};
use gateway_x12::control::{ControlNumberAllocator, MAX_CONTROL_NUMBER};
use gateway_x12::soap::client::{CoreClient, CoreReply};
use gateway_x12::soap::server::{Refusal, RefusalAudit};
use gateway_x12::start::EndpointKind;
use gateway_x12::write::ControlKind;

use super::{Adapter, AdapterContext, DemoEnv, Endpoint, Started};
use crate::settings::{Problem, Settings};

mod requests;

/// The `[x12]` section: see [`X12Config`].
pub type Section = X12Config;

/// The X12 adapter.
pub struct X12;

/// X12 control numbers allocated durably from the store.
pub struct StoreControlNumbers {
    store: Store,
    sender_id: String,
}

impl StoreControlNumbers {
    /// Allocator for interchanges we send as `sender_id` (ISA06).
    pub fn new(store: Store, sender_id: &str) -> Self {
        StoreControlNumbers {
            store,
            sender_id: sender_id.to_owned(),
        }
    }

    fn scope(&self, kind: ControlKind) -> String {
        format!("x12/{}/{}", self.sender_id, kind.as_str())
    }
}

impl ControlNumberAllocator for StoreControlNumbers {
    fn allocate(
        &self,
        kind: ControlKind,
        count: u32,
    ) -> BoxFuture<'_, Result<Vec<u64>, GatewayError>> {
        Box::pin(async move {
            self.store
                .allocate_control_numbers(&self.scope(kind), count, MAX_CONTROL_NUMBER)
                .await
                .map_err(GatewayError::from)
        })
    }
}

/// SOAP refusals as audit rows (`x12.soap.refused`): actor the peer (and the
/// partner its credentials matched, if any), detail the CORE code, HTTP
/// status, reason and the hash of the claimed SenderID — no PHI.
struct StoreRefusalAudit {
    store: Store,
}

/// The audit action of a refused CORE SOAP request.
pub const SOAP_REFUSED: &str = "x12.soap.refused";

impl RefusalAudit for StoreRefusalAudit {
    fn refused(&self, refusal: Refusal) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let actor = match &refusal.partner {
                Some(partner) => format!("x12-soap:{partner}@{}", refusal.peer),
                None => format!("x12-soap:{}", refusal.peer),
            };
            let entry = gateway_store::AuditEntry {
                actor,
                action: SOAP_REFUSED.to_owned(),
                target: None,
                detail: Some(format!(
                    "{} {}: {} (SenderID sha256 {})",
                    refusal.status, refusal.code, refusal.reason, refusal.sender_id_hash
                )),
                case_id: None,
            };
            if let Err(e) = self.store.audit(entry).await {
                tracing::error!(error = %e, "x12 soap refusal not audited");
            }
        })
    }
}

/// The demo's files, all under the demo's temporary directory: derived
/// from it again when sending traffic, so nothing is kept between
/// configuring and sending (no global).
struct DemoPaths {
    base: PathBuf,
    inbound: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

const DEMO_SOAP_PATH: &str = "/core/realtime";

impl DemoPaths {
    fn new(env: &DemoEnv) -> Self {
        let base = env.temp_dir.join("x12");
        DemoPaths {
            inbound: base.join("inbound"),
            cert: base.join("soap-cert.pem"),
            key: base.join("soap-key.pem"),
            base,
        }
    }

    fn file_drop(&self) -> FileDropConfig {
        FileDropConfig {
            inbound: self.inbound.clone(),
            archive: None,
            error: None,
            poll_interval_ms: 200,
            settle_ms: 0,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Adapter for X12 {
    fn spec(&self) -> &'static gateway_registry::AdapterSpec {
        &gateway_registry::X12
    }

    fn secret_files(&self, settings: &Settings) -> Vec<(String, std::path::PathBuf)> {
        settings
            .x12
            .as_ref()
            .map(gateway_x12::start::secret_files)
            .unwrap_or_default()
    }

    fn inline_secrets(&self, _settings: &Settings) -> Vec<&'static str> {
        Vec::new()
    }

    fn configured(&self, settings: &Settings) -> bool {
        settings.x12.is_some()
    }

    fn profiles(&self, settings: &Settings) -> Vec<String> {
        settings.x12.iter().map(|s| s.profile.clone()).collect()
    }

    fn check(&self, settings: &Settings, config_file: &Path, problems: &mut Vec<Problem>) {
        let Some(section) = &settings.x12 else {
            return;
        };
        for (key, message) in gateway_x12::start::problems(section, &settings.mappings_dir) {
            problems.push(Problem {
                origin: config_file.display().to_string(),
                key: Some(key),
                message,
            });
        }
    }

    fn start<'a>(
        &'a self,
        settings: &'a Settings,
        context: AdapterContext,
    ) -> BoxFuture<'a, anyhow::Result<Started>> {
        Box::pin(async move {
            let Some(section) = settings.x12.as_ref() else {
                return Ok(Started::default());
            };
            let numbers: Arc<dyn ControlNumberAllocator> = Arc::new(StoreControlNumbers::new(
                context.store.clone(),
                &section.identity.id,
            ));
            let x12 = gateway_x12::start::start(
                section,
                gateway_x12::start::Context {
                    pipeline: Arc::clone(&context.pipeline),
                    shutdown: context.shutdown.clone(),
                    numbers: Arc::clone(&numbers),
                    audit: Some(Arc::new(StoreRefusalAudit {
                        store: context.store.clone(),
                    })),
                    mappings_dir: settings.mappings_dir.clone(),
                },
            )
            .await?;
            let mut started = Started {
                tasks: x12.tasks,
                ..Started::default()
            };
            if let Some(writeback) = x12.writeback {
                started.writebacks.push((writeback, None));
            }
            started.endpoints = x12
                .endpoints
                .into_iter()
                .map(|e| Endpoint {
                    transport: match e.kind {
                        EndpointKind::FileDrop => gateway_registry::Transport::FileDrop,
                        EndpointKind::Soap => gateway_registry::Transport::Soap,
                    },
                    description: e.description,
                    addr: e.addr,
                    profile: Some(e.profile),
                })
                .collect();
            if let Some(path) = x12.requests {
                let worker = requests::SubmissionWorker {
                    store: context.store.clone(),
                    routes: path.routes,
                    writer: path.writer,
                    numbers,
                    pipeline: Arc::clone(&context.pipeline),
                    profile: section.profile.clone(),
                    ack_identity: section.identity.ack_identity(false),
                    backoff: gateway_store::backoff::BackoffPolicy {
                        initial_ms: path.retry_initial_ms,
                        max_ms: path.retry_max_ms,
                        multiplier: 2.0,
                    },
                    poll: path.poll,
                };
                started
                    .tasks
                    .push(tokio::spawn(worker.run(context.shutdown.clone())));
            }
            Ok(started)
        })
    }

    fn demo_configure(&self, settings: &mut Settings, env: &DemoEnv) -> Result<(), String> {
        let paths = DemoPaths::new(env);
        std::fs::create_dir_all(&paths.inbound).map_err(|e| format!("x12 demo folder: {e}"))?;
        let (cert, key) = gateway_x12::soap::tls::self_signed(&["localhost", "127.0.0.1"])
            .map_err(|e| format!("x12 demo certificate: {e}"))?;
        std::fs::write(&paths.cert, cert).map_err(|e| format!("x12 demo certificate: {e}"))?;
        std::fs::write(&paths.key, key).map_err(|e| format!("x12 demo key: {e}"))?;
        let file_drop = paths.file_drop();
        let soap_path = DEMO_SOAP_PATH.to_owned();
        let (cert_path, key_path, base) = (paths.cert, paths.key, paths.base);
        settings.x12 = Some(X12Config {
            profile: "x12-278".into(),
            identity: Default::default(),
            file_drop: Some(file_drop),
            soap_server: Some(SoapServerConfig {
                listen: "127.0.0.1:0".into(),
                path: soap_path,
                tls: ServerTlsConfig {
                    cert: cert_path,
                    key: key_path,
                },
                core_rule_version: "2.2.0".into(),
                max_body_bytes: 4 * 1024 * 1024,
                // Loopback only: the demo's own client posts without partner
                // authentication.
                client_ca: None,
                partners: Vec::new(),
                handshake_timeout_ms: 10_000,
                max_connections: 64,
                header_read_timeout_secs: 10,
                body_timeout_secs: 30,
                idle_timeout_secs: 60,
            }),
            partners: Vec::new(),
            // Decisions on x12 cases become 278 responses in `outbound/`.
            writeback: Some(WriteBackConfig {
                outbound: Some(base.join("outbound")),
                partner: None,
                template: None,
                receiver_qualifier: "ZZ".into(),
            }),
            requests: None,
        });
        Ok(())
    }

    fn demo_traffic<'a>(
        &'a self,
        started: &'a Started,
        env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let paths = DemoPaths::new(env);
            let file_drop = paths.file_drop();
            let (archive, error) = (file_drop.archive_dir(), file_drop.error_dir());
            let samples = env.repo_root.join("sample-messages/x12/x12-278");
            let mut dropped = 0;
            let mut names: Vec<PathBuf> = std::fs::read_dir(&samples)
                .map_err(|e| format!("x12 samples: {e}"))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let n = p
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (n.starts_with("request")
                        || n.starts_with("response")
                        || n.starts_with("multi"))
                        && n.ends_with(".x12")
                })
                .collect();
            names.sort();
            for path in &names {
                let Some(name) = path.file_name() else {
                    continue;
                };
                // Write under a temporary name, then rename: the drop never sees half a file.
                let tmp = paths.inbound.join(format!(".{}", name.to_string_lossy()));
                std::fs::copy(path, &tmp).map_err(|e| format!("x12 demo copy: {e}"))?;
                std::fs::rename(&tmp, paths.inbound.join(name))
                    .map_err(|e| format!("x12 demo copy: {e}"))?;
                dropped += 1;
            }
            let until = Instant::now() + Duration::from_secs(30);
            let count = |dir: &Path| {
                std::fs::read_dir(dir)
                    .map(|d| {
                        d.filter_map(Result::ok)
                            .filter(|e| e.path().extension().is_some_and(|x| x == "x12"))
                            .count()
                    })
                    .unwrap_or(0)
            };
            while count(&archive) + count(&error) < dropped {
                if Instant::now() > until {
                    return Err(format!(
                        "x12 file drop processed only {} of {dropped} files",
                        count(&archive) + count(&error)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (archived, rejected) = (count(&archive), count(&error));
            let Some(addr) = started.endpoints.iter().find_map(|e| e.addr) else {
                return Err("the x12 SOAP server did not start".into());
            };
            let client = CoreClient::new(PartnerConfig {
                name: "demo-loopback".into(),
                endpoint: format!("https://localhost:{}{}", addr.port(), DEMO_SOAP_PATH),
                sender_id: "CARDIONORTH".into(),
                receiver_id: "EHRGATEWAY".into(),
                isa_receiver_id: None,
                isa_receiver_qualifier: "ZZ".into(),
                core_rule_version: "2.2.0".into(),
                processing_mode: Default::default(),
                request_payload_type: gateway_x12::soap::PAYLOAD_278_REQUEST.into(),
                ca_file: Some(paths.cert.clone()),
                ca_only: true,
                client_identity: None,
                timeout_ms: 20_000,
            })
            .map_err(|e| e.to_string())?;
            let request = std::fs::read(samples.join("request-two-lines.x12"))
                .map_err(|e| format!("x12 sample: {e}"))?;
            let exchange = client
                .send(&request)
                .await
                .map_err(|e| format!("x12 SOAP exchange failed: {e}"))?;
            let answer = match exchange.reply {
                CoreReply::Response278(_) => "a 278 response".to_owned(),
                CoreReply::Acknowledgment { acks, .. } => format!(
                    "a 999 ({})",
                    acks.functional
                        .first()
                        .map(|g| g.status.clone())
                        .unwrap_or_else(|| "TA1".into())
                ),
            };
            Ok(format!(
                "x12: {dropped} sample interchanges dropped ({archived} archived, {rejected} in error/ with their 999), CORE SOAP request over HTTPS answered with {answer}"
            ))
        })
    }
}

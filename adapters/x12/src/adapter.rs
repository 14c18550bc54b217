//! The X12 adapter's facade on the seam ([`X12`], a
//! [`gateway_seam::Adapter`]): the `[x12]` config section ([`X12Config`]),
//! starting it through this crate's [`crate::start`] facade with what the
//! host provides, and the loopback demo (sample 278s dropped into the
//! inbound folder, and a 278 request sent over HTTPS with our own CORE
//! client to our own server).
//!
//! What must be durable comes from the seam's [`Host`], never a store:
//! control numbers of everything the adapter writes (999, TA1, 278 requests
//! and responses) through [`HostControlNumbers`] (`Host::allocate`, each
//! allocation committed before the number is used, so none is reused after
//! a crash; scopes per ISA sender id, `x12/<ISA06>/interchange|group|transaction`),
//! and refused CORE SOAP requests as audit rows (`Host::audit`,
//! [`SOAP_REFUSED`]).
//!
//! The outbound 278 request path (`[x12.requests]`) is handed back as a
//! [`RequestPath`] in [`Started::handles`]: its durable half — which cases
//! are due, recording the trace before sending, retries — is a queue in the
//! host's store, so the host's submission worker drives it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::adapter::BoxFuture;
use gateway_core::{GatewayError, SourceFormat};
use gateway_seam::{
    Adapter, AdapterContext, AdapterSpec, AuditRecord, Demo, DemoEnv, DemoState, Host, Paths,
    Problem, StartError, Started, Transport,
};

use crate::config::{
    FileDropConfig, PartnerConfig, ServerTlsConfig, SoapServerConfig, WriteBackConfig, X12Config,
};
use crate::control::{ControlNumberAllocator, MAX_CONTROL_NUMBER};
use crate::soap::client::{CoreClient, CoreReply};
use crate::soap::server::{Refusal, RefusalAudit};
use crate::start::{Context, RequestPath};
use crate::write::ControlKind;

/// This adapter's registry entry.
pub const SPEC: AdapterSpec = AdapterSpec {
    name: gateway_core::adapter::name::X12,
    section: "x12",
    metrics_label: gateway_core::adapter::name::X12,
    formats: &[SourceFormat::X12],
    transports: &[Transport::FileDrop, Transport::Soap, Transport::WriteBack],
    acknowledges: true,
};

/// The `[x12]` section: see [`X12Config`].
pub type Section = X12Config;

/// The X12 adapter.
pub struct X12;

/// X12 control numbers allocated durably from the host's counters.
pub struct HostControlNumbers {
    host: Arc<dyn Host>,
    sender_id: String,
}

impl HostControlNumbers {
    /// Allocator for interchanges we send as `sender_id` (ISA06).
    pub fn new(host: Arc<dyn Host>, sender_id: &str) -> Self {
        HostControlNumbers {
            host,
            sender_id: sender_id.to_owned(),
        }
    }

    fn scope(&self, kind: ControlKind) -> String {
        format!("x12/{}/{}", self.sender_id, kind.as_str())
    }
}

impl ControlNumberAllocator for HostControlNumbers {
    fn allocate(
        &self,
        kind: ControlKind,
        count: u32,
    ) -> BoxFuture<'_, Result<Vec<u64>, GatewayError>> {
        Box::pin(async move {
            self.host
                .allocate(&self.scope(kind), count, MAX_CONTROL_NUMBER)
                .await
        })
    }

    fn allocate_all<'a>(
        &'a self,
        requests: &'a [(ControlKind, u32)],
    ) -> BoxFuture<'a, Result<Vec<Vec<u64>>, GatewayError>> {
        Box::pin(async move {
            let scoped: Vec<(String, u32)> = requests
                .iter()
                .map(|(kind, count)| (self.scope(*kind), *count))
                .collect();
            self.host.allocate_many(&scoped, MAX_CONTROL_NUMBER).await
        })
    }
}

/// The audit action of a refused CORE SOAP request.
pub const SOAP_REFUSED: &str = "x12.soap.refused";

/// SOAP refusals as audit rows ([`SOAP_REFUSED`]): actor the peer (and the
/// partner its credentials matched, if any), detail the CORE code, HTTP
/// status, reason and the hash of the claimed SenderID — no PHI.
struct HostRefusalAudit {
    host: Arc<dyn Host>,
}

impl RefusalAudit for HostRefusalAudit {
    fn refused(&self, refusal: Refusal) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let actor = match &refusal.partner {
                Some(partner) => format!("x12-soap:{partner}@{}", refusal.peer),
                None => format!("x12-soap:{}", refusal.peer),
            };
            let entry = AuditRecord {
                actor,
                action: SOAP_REFUSED.to_owned(),
                target: None,
                detail: Some(format!(
                    "{} {}: {} (SenderID sha256 {})",
                    refusal.status, refusal.code, refusal.reason, refusal.sender_id_hash
                )),
                case_id: None,
            };
            if let Err(e) = self.host.audit(entry).await {
                tracing::error!(error = %e, "x12 soap refusal not audited");
            }
        })
    }
}

/// What the demo keeps between configuring and sending traffic.
struct X12Demo {
    inbound: PathBuf,
    archive: PathBuf,
    error: PathBuf,
    ca_file: PathBuf,
    soap_path: String,
}

impl Adapter for X12 {
    type Section = Section;

    fn spec(&self) -> &'static AdapterSpec {
        &SPEC
    }

    fn secret_files(&self, section: &Section) -> Vec<(String, PathBuf)> {
        crate::start::secret_files(section)
    }

    fn inline_secrets(&self, _section: &Section) -> Vec<&'static str> {
        Vec::new()
    }

    fn profiles(&self, section: &Section) -> Vec<String> {
        vec![section.profile.clone()]
    }

    fn check(&self, section: &Section, paths: &Paths, problems: &mut Vec<Problem>) {
        for (key, message) in crate::start::problems(section, &paths.mappings_dir) {
            problems.push(paths.problem(key, message));
        }
    }

    fn start<'a>(
        &'a self,
        section: &'a Section,
        context: AdapterContext,
    ) -> BoxFuture<'a, Result<Started, StartError>> {
        Box::pin(async move {
            let numbers: Arc<dyn ControlNumberAllocator> = Arc::new(HostControlNumbers::new(
                Arc::clone(&context.host),
                &section.identity.id,
            ));
            let x12 = crate::start::start(
                section,
                Context {
                    pipeline: Arc::clone(&context.pipeline),
                    shutdown: context.shutdown.clone(),
                    numbers,
                    audit: Some(Arc::new(HostRefusalAudit {
                        host: Arc::clone(&context.host),
                    })),
                    mappings_dir: context.paths.mappings_dir.clone(),
                },
            )
            .await
            .map_err(StartError::other)?;
            let mut started = Started {
                tasks: x12.tasks,
                endpoints: x12.endpoints,
                ..Started::default()
            };
            if let Some(writeback) = x12.writeback {
                started.writebacks.push((writeback, None));
            }
            if let Some(requests) = x12.requests {
                let requests: Arc<RequestPath> = Arc::new(requests);
                started.handles.push(requests);
            }
            Ok(started)
        })
    }

    fn demo_configure(&self, env: &DemoEnv) -> Result<Demo<Section>, String> {
        let base = env.temp_dir.join("x12");
        let inbound = base.join("inbound");
        std::fs::create_dir_all(&inbound).map_err(|e| format!("x12 demo folder: {e}"))?;
        let (cert, key) = crate::soap::tls::self_signed(&["localhost", "127.0.0.1"])
            .map_err(|e| format!("x12 demo certificate: {e}"))?;
        let cert_path = base.join("soap-cert.pem");
        let key_path = base.join("soap-key.pem");
        std::fs::write(&cert_path, cert).map_err(|e| format!("x12 demo certificate: {e}"))?;
        std::fs::write(&key_path, key).map_err(|e| format!("x12 demo key: {e}"))?;
        let file_drop = FileDropConfig {
            inbound: inbound.clone(),
            archive: None,
            error: None,
            poll_interval_ms: 200,
            settle_ms: 0,
            max_bytes: 16 * 1024 * 1024,
        };
        let soap_path = "/core/realtime".to_owned();
        let state = X12Demo {
            inbound: inbound.clone(),
            archive: file_drop.archive_dir(),
            error: file_drop.error_dir(),
            ca_file: cert_path.clone(),
            soap_path: soap_path.clone(),
        };
        let section = X12Config {
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
        };
        Ok(Demo {
            section,
            state: Box::new(state),
        })
    }

    fn demo_traffic<'a>(
        &'a self,
        started: &'a Started,
        state: &'a mut DemoState,
        _host: Arc<dyn Host>,
        env: &'a DemoEnv,
    ) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let Some(state) = state.downcast_ref::<X12Demo>() else {
                return Err("the x12 demo was not configured".to_owned());
            };
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
                let tmp = state.inbound.join(format!(".{}", name.to_string_lossy()));
                std::fs::copy(path, &tmp).map_err(|e| format!("x12 demo copy: {e}"))?;
                std::fs::rename(&tmp, state.inbound.join(name))
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
            while count(&state.archive) + count(&state.error) < dropped {
                if Instant::now() > until {
                    return Err(format!(
                        "x12 file drop processed only {} of {dropped} files",
                        count(&state.archive) + count(&state.error)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let (archived, rejected) = (count(&state.archive), count(&state.error));
            let Some(addr) = started.endpoints.iter().find_map(|e| e.addr) else {
                return Err("the x12 SOAP server did not start".into());
            };
            let client = CoreClient::new(PartnerConfig {
                name: "demo-loopback".into(),
                endpoint: format!("https://localhost:{}{}", addr.port(), state.soap_path),
                sender_id: "CARDIONORTH".into(),
                receiver_id: "EHRGATEWAY".into(),
                isa_receiver_id: None,
                isa_receiver_qualifier: "ZZ".into(),
                core_rule_version: "2.2.0".into(),
                processing_mode: Default::default(),
                request_payload_type: crate::soap::PAYLOAD_278_REQUEST.into(),
                ca_file: Some(state.ca_file.clone()),
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

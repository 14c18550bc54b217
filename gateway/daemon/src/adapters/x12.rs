//! X12 wiring: the `[x12]` config section, starting the file drop and the
//! CAQH CORE real-time SOAP server, the decision write-back (278 responses to
//! the requester), and the loopback demo (sample 278s dropped into the inbound
//! folder, and a 278 request sent over HTTPS with our own CORE client to our
//! own server).
//!
//! Control numbers of everything the adapter writes (999, TA1, 278 responses)
//! are allocated from the host's durable counters ([`HostControlNumbers`],
//! the store in the daemon): each allocation is committed before the number
//! is used, so none is reused after a crash or restart. Scopes are per ISA
//! sender id (`x12/<ISA06>/interchange|group|transaction`).
//!
//! This file implements [`gateway_seam::Adapter`] daemon-side until the x12
//! crate carries its own facade.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::GatewayError;
use gateway_core::adapter::{BoxFuture, WriteBack};
use gateway_registry::seam::{
    Adapter, AdapterContext, AuditRecord, Demo, DemoEnv, DemoState, Endpoint, Host, Paths, Problem,
    StartError, Started, add_secret,
};
use gateway_x12::config::{
    FileDropConfig, PartnerConfig, ServerTlsConfig, SoapServerConfig, WriteBackConfig, X12Config,
};
use gateway_x12::control::{ControlNumberAllocator, MAX_CONTROL_NUMBER};
use gateway_x12::filedrop::FileDrop;
use gateway_x12::outbound::ResponseTemplate;
use gateway_x12::soap::auth::{self, Authenticator};
use gateway_x12::soap::client::{CoreClient, CoreReply};
use gateway_x12::soap::server::{
    ListenerTls, Refusal, RefusalAudit, SoapServerState, limit_problems, listener_limits,
    serve_with,
};
use gateway_x12::write::ControlKind;
use gateway_x12::writeback::X12WriteBack;

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
}

/// SOAP refusals as audit rows (`x12.soap.refused`): actor the peer (and the
/// partner its credentials matched, if any), detail the CORE code, HTTP
/// status, reason and the hash of the claimed SenderID — no PHI.
struct HostRefusalAudit {
    host: Arc<dyn Host>,
}

/// The audit action of a refused CORE SOAP request.
pub const SOAP_REFUSED: &str = "x12.soap.refused";

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

/// The UsernameToken passwords of the SOAP partners, in partner order,
/// from `password_file` (first line) or `password_env`.
fn soap_passwords(soap: &SoapServerConfig) -> Result<Vec<Option<String>>, (String, String)> {
    soap.partners
        .iter()
        .enumerate()
        .map(|(i, partner)| {
            if partner.username.is_none() {
                return Ok(None);
            }
            let secret = match (&partner.password_file, &partner.password_env) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .map(|text| text.lines().next().unwrap_or("").trim().to_owned())
                    .map_err(|e| {
                        (
                            format!("x12.soap_server.partners[{i}].password_file"),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?,
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    (
                        format!("x12.soap_server.partners[{i}].password_env"),
                        format!("environment variable `{var}` is not set"),
                    )
                })?,
                (None, None) => String::new(),
            };
            if secret.is_empty() {
                return Err((
                    format!("x12.soap_server.partners[{i}]"),
                    "the UsernameToken password is empty".to_owned(),
                ));
            }
            Ok(Some(secret))
        })
        .collect()
}

/// The response template the write-back uses.
fn response_template_path(mappings_dir: &Path, section: &X12Config) -> Option<PathBuf> {
    let writeback = section.writeback.as_ref()?;
    Some(writeback.template.clone().unwrap_or_else(|| {
        mappings_dir
            .join(&section.profile)
            .join("outbound/response.toml")
    }))
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

    fn spec(&self) -> &'static gateway_registry::AdapterSpec {
        &gateway_registry::X12
    }

    fn secret_files(&self, x12: &Section) -> Vec<(String, std::path::PathBuf)> {
        let mut files = Vec::new();
        if let Some(soap) = &x12.soap_server {
            add_secret(
                &mut files,
                "x12.soap_server.tls.key".to_owned(),
                Some(&soap.tls.key),
            );
            for (i, partner) in soap.partners.iter().enumerate() {
                add_secret(
                    &mut files,
                    format!("x12.soap_server.partners[{i}].password_file"),
                    partner.password_file.as_deref(),
                );
            }
        }
        for (i, partner) in x12.partners.iter().enumerate() {
            add_secret(
                &mut files,
                format!("x12.partners[{i}].client_identity"),
                partner.client_identity.as_deref(),
            );
        }
        files
    }

    fn inline_secrets(&self, _section: &Section) -> Vec<&'static str> {
        Vec::new()
    }

    fn profiles(&self, section: &Section) -> Vec<String> {
        vec![section.profile.clone()]
    }

    fn check(&self, section: &Section, paths: &Paths, problems: &mut Vec<Problem>) {
        let mut problem = |key: &str, message: String| problems.push(paths.problem(key, message));
        if section.identity.id.is_empty() || section.identity.id.len() > 15 {
            problem(
                "x12.identity.id",
                "must be 1 to 15 characters (ISA06)".into(),
            );
        }
        if !matches!(section.identity.usage, 'T' | 'P') {
            problem("x12.identity.usage", "must be T or P (ISA15)".into());
        }
        if section.file_drop.is_none()
            && section.soap_server.is_none()
            && section.partners.is_empty()
        {
            problem(
                "x12",
                "configure `file_drop`, `soap_server` or `partners`".into(),
            );
        }
        if let Some(soap) = &section.soap_server {
            if soap.listen.parse::<std::net::SocketAddr>().is_err() {
                problem(
                    "x12.soap_server.listen",
                    format!("`{}` is not HOST:PORT", soap.listen),
                );
            }
            for (key, path) in [
                ("x12.soap_server.tls.cert", &soap.tls.cert),
                ("x12.soap_server.tls.key", &soap.tls.key),
            ] {
                if !path.is_file() {
                    problem(key, format!("{} does not exist", path.display()));
                }
            }
            if !soap.path.starts_with('/') {
                problem("x12.soap_server.path", "must start with `/`".into());
            }
            if let Some(ca) = &soap.client_ca
                && !ca.is_file()
            {
                problem(
                    "x12.soap_server.client_ca",
                    format!("{} does not exist", ca.display()),
                );
            }
            for (key, message) in limit_problems(soap) {
                problem(&key, message);
            }
            for e in auth::check(soap)
                .into_iter()
                .chain(auth::check_exposure(soap))
            {
                problem(&e.key, e.message);
            }
            if let Err((key, message)) = soap_passwords(soap) {
                problem(&key, message);
            }
        }
        if let Some(writeback) = &section.writeback {
            if writeback.outbound.is_none() && writeback.partner.is_none() {
                problem(
                    "x12.writeback",
                    "configure `outbound` (a folder) and/or `partner`".into(),
                );
            }
            if let Some(name) = &writeback.partner
                && !section.partners.iter().any(|p| &p.name == name)
            {
                problem(
                    "x12.writeback.partner",
                    format!("no [[x12.partners]] entry is named `{name}`"),
                );
            }
            if let Some(path) = response_template_path(&paths.mappings_dir, section)
                && let Err(e) = ResponseTemplate::load(&path)
            {
                problem("x12.writeback.template", e.to_string());
            }
        }
        for (i, partner) in section.partners.iter().enumerate() {
            if !partner.endpoint.starts_with("https://") {
                problem(
                    &format!("x12.partners[{i}].endpoint"),
                    "must be an https:// URL".into(),
                );
            }
            if let Err(e) = CoreClient::new(partner.clone()) {
                problem(&format!("x12.partners[{i}]"), e.to_string());
            }
        }
    }

    fn start<'a>(
        &'a self,
        section: &'a Section,
        context: AdapterContext,
    ) -> BoxFuture<'a, Result<Started, StartError>> {
        Box::pin(async move {
            start(section.clone(), context)
                .await
                .map_err(StartError::other)
        })
    }

    fn demo_configure(&self, env: &DemoEnv) -> Result<Demo<Section>, String> {
        let base = env.temp_dir.join("x12");
        let inbound = base.join("inbound");
        std::fs::create_dir_all(&inbound).map_err(|e| format!("x12 demo folder: {e}"))?;
        let (cert, key) = gateway_x12::soap::tls::self_signed(&["localhost", "127.0.0.1"])
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
                request_payload_type: gateway_x12::soap::PAYLOAD_278_REQUEST.into(),
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

/// Starts the file drop, the SOAP server and the write-back of `section`.
async fn start(section: X12Config, context: AdapterContext) -> anyhow::Result<Started> {
    let numbers: Arc<dyn ControlNumberAllocator> = Arc::new(HostControlNumbers::new(
        Arc::clone(&context.host),
        &section.identity.id,
    ));
    let mut started = Started::default();
    if let Some(writeback) = &section.writeback {
        let path = response_template_path(&context.paths.mappings_dir, &section)
            .ok_or_else(|| anyhow::anyhow!("x12 write-back template"))?;
        let template = ResponseTemplate::load(&path)?;
        let partner = match &writeback.partner {
            Some(name) => {
                let config = section
                    .partners
                    .iter()
                    .find(|p| &p.name == name)
                    .ok_or_else(|| anyhow::anyhow!("x12 partner `{name}` is not configured"))?;
                Some(CoreClient::new(config.clone())?)
            }
            None => None,
        };
        let writeback: Arc<dyn WriteBack> = Arc::new(X12WriteBack::new(
            writeback,
            template,
            section.identity.clone(),
            partner,
            Arc::clone(&numbers),
        ));
        started.writebacks.push((writeback, None));
    }
    if let Some(drop_cfg) = section.file_drop.clone() {
        let worker = FileDrop::new(
            drop_cfg.clone(),
            section.profile.clone(),
            Arc::clone(&context.pipeline),
            section.identity.ack_identity(true),
            Arc::clone(&numbers),
        )?;
        started.tasks.push(tokio::spawn(
            worker.run(context.shutdown.clone().cancelled_owned()),
        ));
        started.endpoints.push(Endpoint {
            transport: gateway_registry::Transport::FileDrop,
            description: format!(
                "X12 file drop {} (every {} ms)",
                drop_cfg.inbound.display(),
                drop_cfg.poll_interval_ms
            ),
            addr: None,
            profile: Some(section.profile.clone()),
        });
    }
    if let Some(soap) = section.soap_server.clone() {
        let cert = std::fs::read(&soap.tls.cert)?;
        let key = std::fs::read(&soap.tls.key)?;
        let client_ca = soap.client_ca.as_ref().map(std::fs::read).transpose()?;
        let passwords =
            soap_passwords(&soap).map_err(|(key, message)| anyhow::anyhow!("{key}: {message}"))?;
        let authenticator = Authenticator::new(&soap, &passwords)?;
        if !authenticator.enforced() {
            tracing::warn!(listen = %soap.listen, "x12 CORE SOAP server without partner authentication (loopback only): any local process may post");
        }
        let state = Arc::new(SoapServerState {
            pipeline: Arc::clone(&context.pipeline),
            profile: section.profile.clone(),
            identity: section.identity.ack_identity(false),
            numbers: Arc::clone(&numbers),
            core_rule_version: soap.core_rule_version.clone(),
            responder: None,
            auth: Arc::new(authenticator),
            audit: Some(Arc::new(HostRefusalAudit {
                host: Arc::clone(&context.host),
            })),
        });
        let tls = ListenerTls {
            cert_pem: &cert,
            key_pem: &key,
            client_ca_pem: client_ca.as_deref(),
            limits: listener_limits(&soap),
        };
        let server = serve_with(
            &soap.listen,
            tls,
            &soap.path,
            soap.max_body_bytes,
            state,
            context.shutdown.clone().cancelled_owned(),
        )
        .await?;
        started.endpoints.push(Endpoint {
            transport: gateway_registry::Transport::Soap,
            description: format!(
                "X12 CORE SOAP server https://{}{}",
                server.local_addr, soap.path
            ),
            addr: Some(server.local_addr),
            profile: Some(section.profile.clone()),
        });
        started.tasks.push(tokio::spawn(server.join()));
    }
    Ok(started)
}

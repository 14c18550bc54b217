//! The HL7 v2 adapter's facade on the seam ([`Hl7v2`], a
//! [`gateway_seam::Adapter`]): the `[hl7v2]` config section (MLLP listeners
//! and decision write-back senders), starting them, and the demo that sends
//! `sample-messages/hl7v2/<profile>/**` to a loopback listener per profile.
//!
//! ```toml
//! [[hl7v2.listeners]]
//! listen = "127.0.0.1:2575"
//! profile = "epic"
//! # max_frame_bytes, max_connections, idle_timeout_ms, frame_timeout_ms,
//! # write_timeout_ms, [hl7v2.listeners.tls] cert/key/client_ca/allowed_peers
//!
//! [[hl7v2.writeback]]
//! profile = "epic"                 # template: mappings/epic/outbound/decision.toml
//! [hl7v2.writeback.sender]
//! address = "10.0.0.5:6661"        # the practice's interface engine
//! ```

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gateway_core::SourceFormat;
use gateway_core::adapter::{BoxFuture, WriteBack};
use gateway_seam::{
    Adapter, AdapterContext, AdapterSpec, Demo, DemoEnv, DemoState, Endpoint, Host, Paths, Problem,
    StartError, Started, Transport, add_secret,
};
use serde::Deserialize;

use crate::mllp::files::split_messages;
use crate::mllp::tls::{PeerAllowlist, client_config, server_config};
use crate::mllp::{
    ListenerConfig, MllpListener, MllpSender, MllpWriteBack, SendError, SenderConfig,
};
use crate::outbound::OutboundTemplate;

/// This adapter's registry entry.
pub const SPEC: AdapterSpec = AdapterSpec {
    name: crate::mllp::metrics::ADAPTER,
    section: "hl7v2",
    metrics_label: crate::mllp::metrics::ADAPTER,
    formats: &[SourceFormat::Hl7v2],
    transports: &[Transport::Mllp, Transport::WriteBack],
    acknowledges: true,
};

/// The `[hl7v2]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// MLLP listeners (`[[hl7v2.listeners]]`).
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    /// Decision write-back per profile (`[[hl7v2.writeback]]`).
    #[serde(default)]
    pub writeback: Vec<WriteBackSection>,
}

/// One decision write-back target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBackSection {
    /// The profile whose cases this target receives decisions for; its
    /// outbound template is `<mappings_dir>/<profile>/outbound/decision.toml`
    /// unless `template` says otherwise.
    pub profile: String,
    /// Path of the outbound template, when not the profile's default.
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// The receiving interface engine.
    pub sender: SenderConfig,
}

/// The HL7 v2 adapter.
pub struct Hl7v2;

fn template_path(section: &WriteBackSection, mappings_dir: &Path) -> PathBuf {
    section.template.clone().unwrap_or_else(|| {
        mappings_dir
            .join(&section.profile)
            .join("outbound/decision.toml")
    })
}

impl Adapter for Hl7v2 {
    type Section = Section;

    fn spec(&self) -> &'static AdapterSpec {
        &SPEC
    }

    fn secret_files(&self, hl7v2: &Section) -> Vec<(String, PathBuf)> {
        let mut files = Vec::new();
        for (i, listener) in hl7v2.listeners.iter().enumerate() {
            let key = listener.tls.as_ref().map(|tls| tls.key.clone());
            add_secret(
                &mut files,
                format!("hl7v2.listeners[{i}].tls.key"),
                key.as_deref(),
            );
        }
        for (i, writeback) in hl7v2.writeback.iter().enumerate() {
            let key = writeback
                .sender
                .tls
                .as_ref()
                .and_then(|tls| tls.key.as_deref());
            add_secret(
                &mut files,
                format!("hl7v2.writeback[{i}].sender.tls.key"),
                key,
            );
        }
        files
    }

    fn inline_secrets(&self, _section: &Section) -> Vec<&'static str> {
        Vec::new()
    }

    fn profiles(&self, section: &Section) -> Vec<String> {
        let names: BTreeSet<String> = section
            .listeners
            .iter()
            .map(|l| l.profile.clone())
            .chain(section.writeback.iter().map(|w| w.profile.clone()))
            .collect();
        names.into_iter().collect()
    }

    fn check(&self, section: &Section, paths: &Paths, problems: &mut Vec<Problem>) {
        let mut push = |key: String, message: String| problems.push(paths.problem(key, message));
        let mut seen = BTreeSet::new();
        for (i, l) in section.listeners.iter().enumerate() {
            let key = |k: &str| format!("hl7v2.listeners[{i}].{k}");
            if l.listen.port() != 0 && !seen.insert(l.listen) {
                push(
                    key("listen"),
                    format!("{} is used by two listeners", l.listen),
                );
            }
            if l.max_connections == 0 {
                push(key("max_connections"), "must be at least 1".into());
            }
            for (name, v) in [
                ("idle_timeout_ms", l.idle_timeout_ms),
                ("frame_timeout_ms", l.frame_timeout_ms),
                ("write_timeout_ms", l.write_timeout_ms),
            ] {
                if v == 0 {
                    push(key(name), "must be greater than 0".into());
                }
            }
            if l.max_frame_bytes < 64 {
                push(key("max_frame_bytes"), "must be at least 64 bytes".into());
            }
            if let Some(tls) = &l.tls {
                if let Err(e) = server_config(tls) {
                    push(key("tls"), e.to_string());
                }
                if !tls.allowed_peers.is_empty() && tls.client_ca.is_none() {
                    push(
                        key("tls.allowed_peers"),
                        "needs tls.client_ca (peers are identified by their client certificate)"
                            .into(),
                    );
                }
                if let Err(e) = PeerAllowlist::new(&tls.allowed_peers) {
                    push(key("tls.allowed_peers"), e.to_string());
                }
            }
        }
        for (i, w) in section.writeback.iter().enumerate() {
            let key = |k: &str| format!("hl7v2.writeback[{i}].{k}");
            let path = template_path(w, &paths.mappings_dir);
            if let Err(e) = OutboundTemplate::load(&path) {
                push(key("template"), e.to_string());
            }
            if let Some(tls) = &w.sender.tls
                && let Err(e) = client_config(tls)
            {
                push(key("sender.tls"), e.to_string());
            }
            if w.sender.max_attempts == 0 {
                push(key("sender.max_attempts"), "must be at least 1".into());
            }
        }
    }

    fn start<'a>(
        &'a self,
        section: &'a Section,
        context: AdapterContext,
    ) -> BoxFuture<'a, Result<Started, StartError>> {
        Box::pin(async move {
            let mut started = Started::default();
            for l in &section.listeners {
                let listener = MllpListener::bind(l.clone(), Arc::clone(&context.pipeline))
                    .await
                    .map_err(|e| {
                        StartError::new(format!("starting the MLLP listener on {}", l.listen), e)
                    })?;
                let addr = listener.local_addr();
                if l.tls.is_none() && !addr.ip().is_loopback() {
                    // Allowed on purpose (interface engines on a practice LAN
                    // speak plain MLLP), but said once per listener.
                    tracing::warn!(
                        %addr,
                        profile = %l.profile,
                        "MLLP listener on a non-loopback address without TLS: \
                         HL7 messages (PHI) cross the network in clear; configure tls \
                         (and client_ca) on this listener unless the network is trusted."
                    );
                }
                let shutdown = context.shutdown.clone();
                started
                    .tasks
                    .push(tokio::spawn(listener.serve(shutdown.cancelled_owned())));
                started.endpoints.push(Endpoint {
                    transport: Transport::Mllp,
                    description: format!(
                        "MLLP listener{} (profile {})",
                        if l.tls.is_some() { " with TLS" } else { "" },
                        l.profile
                    ),
                    addr: Some(addr),
                    profile: Some(l.profile.clone()),
                });
            }
            for w in &section.writeback {
                let path = template_path(w, &context.paths.mappings_dir);
                let template = OutboundTemplate::load(&path)
                    .map_err(|e| StartError::new(format!("loading {}", path.display()), e))?;
                let writeback = MllpWriteBack::new(template, w.sender.clone())
                    .map_err(|e| StartError::new("setting up the HL7 write-back sender", e))?;
                started.writebacks.push((
                    Arc::new(writeback) as Arc<dyn WriteBack>,
                    Some(w.profile.clone()),
                ));
                started.endpoints.push(Endpoint {
                    transport: Transport::WriteBack,
                    description: format!("HL7 decision write-back to {}", w.sender.address),
                    addr: None,
                    profile: Some(w.profile.clone()),
                });
            }
            Ok(started)
        })
    }

    fn demo_configure(&self, env: &DemoEnv) -> Result<Demo<Section>, String> {
        let samples = env.repo_root.join("sample-messages/hl7v2");
        let mut listeners = Vec::new();
        for profile in demo_profiles(&samples, &env.mappings_dir) {
            listeners.push(ListenerConfig::new(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                profile,
            ));
        }
        if listeners.is_empty() {
            return Err(
                "skipped the HL7 v2 adapter: no profile has both mappings/<profile> and sample-messages/hl7v2/<profile>"
                    .to_owned(),
            );
        }
        Ok(Demo {
            section: Section {
                listeners,
                writeback: Vec::new(),
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
            let samples = env.repo_root.join("sample-messages/hl7v2");
            let (mut sent, mut accepted, mut negative, mut failed) = (0, 0, 0, 0);
            for endpoint in &started.endpoints {
                let (Some(addr), Some(profile)) = (endpoint.addr, &endpoint.profile) else {
                    continue;
                };
                let mut config = SenderConfig::new(addr.to_string());
                config.max_attempts = 1;
                config.response_timeout_ms = 10_000;
                let mut sender = MllpSender::new(config).map_err(|e| e.to_string())?;
                for file in sample_files(&samples.join(profile)) {
                    let Ok(raw) = std::fs::read(&file) else {
                        continue;
                    };
                    for message in split_messages(&raw) {
                        sent += 1;
                        match sender.send_once(&message).await {
                            Ok(_) => accepted += 1,
                            Err(SendError::Negative(_)) => negative += 1,
                            Err(e) => {
                                failed += 1;
                                tracing::warn!(file = %file.display(), error = %e, "demo message not acknowledged");
                            }
                        }
                    }
                }
                sender.disconnect().await;
            }
            if failed > 0 {
                return Err(format!(
                    "sent {sent} HL7 v2 messages over MLLP: {accepted} AA/CA, {negative} AE/AR, {failed} without a valid ACK"
                ));
            }
            Ok(format!(
                "sent {sent} HL7 v2 messages over MLLP: {accepted} accepted (AA/CA), {negative} answered AE/AR with ERR"
            ))
        })
    }
}

/// Profiles with a mapping folder and a samples folder, sorted.
fn demo_profiles(samples: &Path, mappings: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(samples) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| mappings.join(name).join("profile.toml").is_file())
        .collect();
    out.sort();
    out
}

/// Every file under `dir`, recursively, sorted (so the demo is repeatable).
fn sample_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

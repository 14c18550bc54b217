//! The `[davinci_pas]` section: where the PAS server listens, its TLS, its
//! limits and the EHR clients allowed to call it.
//!
//! Values only: the daemon reads the files (certificates, JWKS) and passes
//! them in; nothing here reads the environment.

use std::path::PathBuf;

use gateway_http_listener::Limits;
use gateway_http_listener::tls::TlsFiles;
use serde::Deserialize;

/// The adapter's config section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasConfig {
    /// The mapping profile (a name under `mappings_dir`, or a folder).
    #[serde(default = "default_profile")]
    pub profile: PathBuf,
    /// `host:port` to listen on.
    pub listen: String,
    /// The FHIR base path: `POST {base_path}/Claim/$submit`. Default `/fhir`.
    #[serde(default = "default_base_path")]
    pub base_path: String,
    /// The base URL clients use (audience of SMART client assertions, and the
    /// `fullUrl`s of notifications). Default `https://{listen}{base_path}`.
    #[serde(default)]
    pub public_base_url: Option<String>,
    /// Server certificate and key; `client_ca` is required (mutual TLS).
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Serve plain HTTP. Refused unless `listen` is a loopback address (tests,
    /// the demo); requests are then attributed to the client named
    /// `plaintext_client`.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// The client plaintext requests are attributed to.
    #[serde(default)]
    pub plaintext_client: Option<String>,
    /// Largest accepted request body in KiB (413 above). Default 1024.
    #[serde(default = "default_max_body_kb")]
    pub max_body_kb: usize,
    /// Connection cap and timeouts.
    #[serde(default)]
    pub limits: Limits,
    /// The EHR clients allowed to call.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Timeout of one notification POST, in seconds. Default 10.
    #[serde(default = "default_notify_timeout")]
    pub notification_timeout_secs: u64,
    /// Allow `http://` notification endpoints on loopback (tests). Default false.
    #[serde(default)]
    pub allow_plaintext_notifications: bool,
}

/// One EHR client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Our name for it (logs, audit, case `source.sender`).
    pub name: String,
    /// DNS names, one of which its client certificate must be valid for.
    #[serde(default)]
    pub san: Vec<String>,
    /// SHA-256 fingerprints (hex, `:` allowed) of accepted client certificates.
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// SMART Backend Services: the client's registered JWKS (file). When set,
    /// every request must also carry `Authorization: Bearer <client assertion>`
    /// signed by one of its keys.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// SMART `client_id` (the assertion's `iss` and `sub`). Default: `name`.
    #[serde(default)]
    pub client_id: Option<String>,
}

fn default_profile() -> PathBuf {
    PathBuf::from("davinci-pas")
}

fn default_base_path() -> String {
    "/fhir".to_owned()
}

fn default_max_body_kb() -> usize {
    1024
}

fn default_notify_timeout() -> u64 {
    10
}

impl PasConfig {
    /// Every problem of the section, as `(key, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let loopback = self
            .listen
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(false);
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            out.push((
                "listen".to_owned(),
                "must be host:port with an IP address".to_owned(),
            ));
        }
        match &self.tls {
            Some(tls) if tls.client_ca.is_none() => out.push((
                "tls.client_ca".to_owned(),
                "is required: EHR clients authenticate with certificates (mutual TLS)".to_owned(),
            )),
            Some(_) => {}
            None if self.allow_plaintext && loopback => {}
            None if self.allow_plaintext => out.push((
                "allow_plaintext".to_owned(),
                "plain HTTP is allowed only on a loopback address".to_owned(),
            )),
            None => out.push(("tls".to_owned(), "is required (mutual TLS)".to_owned())),
        }
        if self.tls.is_some() && self.clients.is_empty() {
            out.push((
                "clients".to_owned(),
                "at least one EHR client must be registered".to_owned(),
            ));
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.san.is_empty() && c.fingerprints.is_empty() && self.tls.is_some() {
                out.push((
                    format!("clients[{i}]"),
                    "needs `san` or `fingerprints`".to_owned(),
                ));
            }
            for f in &c.fingerprints {
                if crate::auth::parse_fingerprint(f).is_none() {
                    out.push((
                        format!("clients[{i}].fingerprints"),
                        "must be 64 hex digits (`:` allowed)".to_owned(),
                    ));
                }
            }
        }
        if self.allow_plaintext && self.tls.is_none() {
            match &self.plaintext_client {
                Some(name) if self.clients.iter().any(|c| &c.name == name) => {}
                _ => out.push((
                    "plaintext_client".to_owned(),
                    "must name a registered client when serving plain HTTP".to_owned(),
                )),
            }
        }
        if !self.base_path.starts_with('/')
            || self.base_path.ends_with('/') && self.base_path.len() > 1
        {
            out.push((
                "base_path".to_owned(),
                "must start with `/` and not end with one".to_owned(),
            ));
        }
        if self.max_body_kb == 0 {
            out.push(("max_body_kb".to_owned(), "must be at least 1".to_owned()));
        }
        for (field, message) in self.limits.problems() {
            out.push((format!("limits.{field}"), message));
        }
        out
    }

    /// The base URL clients use.
    pub fn base_url(&self) -> String {
        match &self.public_base_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                format!(
                    "{scheme}://{}{}",
                    self.listen,
                    self.base_path.trim_end_matches('/')
                )
            }
        }
    }
}

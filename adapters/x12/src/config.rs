//! Configuration of the X12 adapter, embedded by the daemon in its settings
//! (`[x12]` section). Every struct rejects unknown keys so a typo fails loudly.

use std::path::PathBuf;

use serde::Deserialize;

use crate::ack::AckIdentity;

/// The `[x12]` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct X12Config {
    /// Mapping profile for what this adapter receives (normally `x12-278`).
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Our interchange identity (ISA05/ISA06 of what we send).
    #[serde(default)]
    pub identity: IdentityConfig,
    /// The file drop, when enabled.
    #[serde(default)]
    pub file_drop: Option<FileDropConfig>,
    /// The CAQH CORE real-time SOAP server, when enabled.
    #[serde(default)]
    pub soap_server: Option<SoapServerConfig>,
    /// CORE SOAP partners (payers, clearinghouses, requesters' endpoints).
    #[serde(default)]
    pub partners: Vec<PartnerConfig>,
    /// Decisions sent back as 278 responses, when enabled.
    #[serde(default)]
    pub writeback: Option<WriteBackConfig>,
    /// Cases sent to payers as 278 requests (`[x12.requests]`), when enabled.
    #[serde(default)]
    pub requests: Option<RequestsConfig>,
}

/// The outbound 278 request path (`[x12.requests]`): which cases leave the
/// gateway as a 278 request, to whom, and how.
///
/// A case is *due* when it is in `requested` status and a route matches it
/// (its first coverage's payer id, optionally its source adapter and profile)
/// and no request was written for it on that route yet. The daemon's
/// submission worker writes the 278 with the profile's outbound request
/// template, records its trace on the case (so the payer's 278 response is
/// adopted, G003) and only then sends it: to the route's CORE SOAP partner
/// (whose synchronous 278 response is taken in like any received 278) or into
/// the route's outbound folder.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RequestsConfig {
    /// The request template (default `<mappings_dir>/<profile>/outbound/request.toml`).
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// How often the worker looks for newly due cases and retries, in
    /// milliseconds (default 1000).
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Delay before the first retry of a transport failure (default 1000 ms);
    /// doubles per failure up to `retry_max_ms`.
    #[serde(default = "default_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest delay between retries (default 300 000 ms = 5 min).
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// The routes, first match wins (`[[x12.requests.routes]]`).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

fn default_retry_initial_ms() -> u64 {
    1000
}

fn default_retry_max_ms() -> u64 {
    300_000
}

/// One payer route (`[[x12.requests.routes]]`): the cases it takes and where
/// their 278 requests go — exactly one of `partner` (CORE SOAP) or `outbound`
/// (a folder).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Our name for the route (unique; recorded with every request it writes,
    /// in logs, metrics labels and audit rows).
    pub name: String,
    /// Payer ids the route takes (the case's `coverages[0].payer.id`); `*`
    /// takes any case that names a payer.
    pub payer_ids: Vec<String>,
    /// Only cases received through these adapters (`hl7v2`, `fhir`, `x12`,
    /// `desktop`, …); empty: any.
    #[serde(default)]
    pub adapters: Vec<String>,
    /// Only cases mapped with these profiles; empty: any.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Name of the `[[x12.partners]]` entry the requests are sent to over
    /// CORE SOAP (endpoint, CORE ids, TLS and client certificate are the
    /// partner's).
    #[serde(default)]
    pub partner: Option<String>,
    /// Folder the requests are written to instead, each atomically (temporary
    /// name, fsync, rename).
    #[serde(default)]
    pub outbound: Option<PathBuf>,
    /// ISA08 / GS03 of the requests (default: the partner's `isa_receiver_id`,
    /// else the case's payer id).
    #[serde(default)]
    pub receiver_id: Option<String>,
    /// ISA07 qualifier of `receiver_id` (default: the partner's
    /// `isa_receiver_qualifier`, else `ZZ`).
    #[serde(default)]
    pub receiver_qualifier: Option<String>,
}

impl RouteConfig {
    /// True when this route takes a case with these facts.
    pub fn takes(&self, payer_id: Option<&str>, adapter: &str, profile: &str) -> bool {
        let Some(payer_id) = payer_id.filter(|p| !p.is_empty()) else {
            return false;
        };
        self.payer_ids.iter().any(|p| p == "*" || p == payer_id)
            && (self.adapters.is_empty() || self.adapters.iter().any(|a| a == adapter))
            && (self.profiles.is_empty() || self.profiles.iter().any(|p| p == profile))
    }
}

impl RequestsConfig {
    /// The first route that takes the case, if any.
    pub fn route_for(
        &self,
        payer_id: Option<&str>,
        adapter: &str,
        profile: &str,
    ) -> Option<&RouteConfig> {
        self.routes
            .iter()
            .find(|r| r.takes(payer_id, adapter, profile))
    }

    /// Problems beyond serde, each with its key under `x12.requests`
    /// (`partners` are the section's `[[x12.partners]]`).
    pub fn problems(&self, partners: &[PartnerConfig]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.routes.is_empty() {
            out.push((
                "x12.requests.routes".to_owned(),
                "configure at least one `[[x12.requests.routes]]`".to_owned(),
            ));
        }
        if self.poll_interval_ms == 0 {
            out.push((
                "x12.requests.poll_interval_ms".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            out.push((
                "x12.requests.retry_initial_ms".to_owned(),
                "must be at least 1 and at most `retry_max_ms`".to_owned(),
            ));
        }
        for (i, route) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("x12.requests.routes[{i}].{k}");
            if route.name.is_empty() || route.name.len() > 64 {
                out.push((key("name"), "must be 1 to 64 characters".to_owned()));
            }
            if self.routes[..i].iter().any(|r| r.name == route.name) {
                out.push((key("name"), format!("`{}` names two routes", route.name)));
            }
            if route.payer_ids.is_empty() || route.payer_ids.iter().any(String::is_empty) {
                out.push((
                    key("payer_ids"),
                    "list at least one payer id (or `*`), none empty".to_owned(),
                ));
            }
            match (&route.partner, &route.outbound) {
                (Some(_), Some(_)) | (None, None) => out.push((
                    format!("x12.requests.routes[{i}]"),
                    "configure exactly one of `partner` (CORE SOAP) and `outbound` (a folder)"
                        .to_owned(),
                )),
                (Some(name), None) if !partners.iter().any(|p| &p.name == name) => out.push((
                    key("partner"),
                    format!("no [[x12.partners]] entry is named `{name}`"),
                )),
                _ => {}
            }
            if let Some(id) = &route.receiver_id
                && (id.is_empty() || id.len() > 15 || !id.is_ascii())
            {
                out.push((
                    key("receiver_id"),
                    "must be 1 to 15 ASCII characters (ISA08)".to_owned(),
                ));
            }
            if let Some(q) = &route.receiver_qualifier
                && (q.len() != 2 || !q.is_ascii())
            {
                out.push((
                    key("receiver_qualifier"),
                    "must be 2 ASCII characters (ISA07)".to_owned(),
                ));
            }
        }
        out
    }
}

/// Where a decision on a case this adapter received goes: a 278 response for
/// the requester, written to an outbound folder and/or sent to a CORE partner.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WriteBackConfig {
    /// Folder the 278 responses are written to (the requester's pickup folder),
    /// each atomically (temporary name, fsync, rename).
    #[serde(default)]
    pub outbound: Option<PathBuf>,
    /// Name of the `partners` entry the 278 responses are sent to over CORE SOAP
    /// (PayloadType `X12_278_Response_005010X217E1_2`).
    #[serde(default)]
    pub partner: Option<String>,
    /// The response template (default `<mappings_dir>/<profile>/outbound/response.toml`).
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// ISA07 of the responses when no partner names one (the requester's ISA06
    /// from the request becomes ISA08).
    #[serde(default = "default_qualifier")]
    pub receiver_qualifier: String,
}

fn default_profile() -> String {
    "x12-278".into()
}

/// Our ISA sender identity.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// ISA05 qualifier (`ZZ` mutually defined, `30` federal tax id, …).
    #[serde(default = "default_qualifier")]
    pub qualifier: String,
    /// ISA06 / GS02 id (at most 15 characters).
    #[serde(default = "default_id")]
    pub id: String,
    /// ISA15: `T` test or `P` production.
    #[serde(default = "default_usage")]
    pub usage: char,
}

fn default_qualifier() -> String {
    "ZZ".into()
}

fn default_id() -> String {
    "EHRGATEWAY".into()
}

fn default_usage() -> char {
    'T'
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            qualifier: default_qualifier(),
            id: default_id(),
            usage: default_usage(),
        }
    }
}

impl IdentityConfig {
    /// The identity used to address acknowledgments.
    pub fn ack_identity(&self, newlines: bool) -> AckIdentity {
        AckIdentity {
            qualifier: self.qualifier.clone(),
            id: self.id.clone(),
            newlines,
        }
    }
}

/// The inbound file drop.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileDropConfig {
    /// Directory watched for inbound interchanges.
    pub inbound: PathBuf,
    /// Where processed files go (default `<inbound>/archive`).
    #[serde(default)]
    pub archive: Option<PathBuf>,
    /// Where rejected files go (default `<inbound>/error`).
    #[serde(default)]
    pub error: Option<PathBuf>,
    /// Poll interval in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// A file is picked up only when unchanged for this long (still being written otherwise).
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Largest file accepted, in bytes (larger ones go to `error/`).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_poll_ms() -> u64 {
    1000
}

fn default_settle_ms() -> u64 {
    500
}

fn default_max_bytes() -> u64 {
    16 * 1024 * 1024
}

impl FileDropConfig {
    /// The archive directory.
    pub fn archive_dir(&self) -> PathBuf {
        self.archive
            .clone()
            .unwrap_or_else(|| self.inbound.join("archive"))
    }

    /// The error directory.
    pub fn error_dir(&self) -> PathBuf {
        self.error
            .clone()
            .unwrap_or_else(|| self.inbound.join("error"))
    }
}

/// TLS material for the SOAP server.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The CAQH CORE real-time SOAP server (HTTPS).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SoapServerConfig {
    /// Listen address, e.g. `127.0.0.1:8443`.
    pub listen: String,
    /// URL path of the endpoint.
    #[serde(default = "default_soap_path")]
    pub path: String,
    /// Server certificate and key.
    pub tls: ServerTlsConfig,
    /// CORERuleVersion we accept and answer with.
    #[serde(default = "default_rule_version")]
    pub core_rule_version: String,
    /// Largest request body in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// PEM bundle of the CAs that issue partners' client certificates: with
    /// it the server asks for a client certificate (mutual TLS) and verifies
    /// the chain; a connection without one may still authenticate with a
    /// WS-Security UsernameToken, when its partner uses one.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// The partners allowed to post (`[[x12.soap_server.partners]]`). With
    /// none, anyone who can connect may post: allowed on a loopback address
    /// only (the daemon refuses to start otherwise).
    #[serde(default)]
    pub partners: Vec<SoapPartnerConfig>,
    /// A TLS handshake not finished within this many milliseconds is dropped
    /// (the listener counts whole seconds: rounded up, at least 1 s).
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// Connections served at once (TLS handshakes included); further
    /// connections are closed at once until one ends.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds from a request header's first byte to its end; a slower
    /// header closes the connection. Default 10, as `[admin.limits]`.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Seconds from the end of a request header to the end of its body (the
    /// whole body, not each read); a slower body is answered 408 and the
    /// connection closed. Default 30, as `[admin.limits]`.
    #[serde(default = "default_body_timeout_secs")]
    pub body_timeout_secs: u64,
    /// Seconds a connection may stay open with no request running and no
    /// byte moved. Default 60, as `[admin.limits]`.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
}

/// A partner allowed to post to the CORE SOAP server, and how it proves it:
/// a client certificate valid for one of `certificate_names` or with one of
/// the `certificate_sha256` fingerprints, and/or a WS-Security UsernameToken
/// (`username` with the password from `password_file` or `password_env`).
/// When both are configured both are required. The CORE `SenderID` of every
/// envelope it posts must be one of `sender_ids`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SoapPartnerConfig {
    /// Our name for the partner (audit rows and logs).
    pub name: String,
    /// The CORE SenderIDs this partner may use.
    pub sender_ids: Vec<String>,
    /// DNS names / IP addresses its client certificate must be valid for
    /// (subject alternative names; needs `client_ca`).
    #[serde(default)]
    pub certificate_names: Vec<String>,
    /// SHA-256 fingerprints (hex, `:` allowed) of its client certificates
    /// (needs `client_ca`).
    #[serde(default)]
    pub certificate_sha256: Vec<String>,
    /// WS-Security UsernameToken user name.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the UsernameToken password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the UsernameToken password.
    #[serde(default)]
    pub password_env: Option<String>,
}

fn default_handshake_timeout_ms() -> u64 {
    10_000
}

fn default_max_connections() -> usize {
    64
}

fn default_header_read_timeout_secs() -> u64 {
    10
}

fn default_body_timeout_secs() -> u64 {
    30
}

fn default_idle_timeout_secs() -> u64 {
    60
}

fn default_soap_path() -> String {
    "/core/realtime".into()
}

fn default_rule_version() -> String {
    "2.2.0".into()
}

fn default_max_body() -> usize {
    4 * 1024 * 1024
}

/// A payer or clearinghouse we send 278 requests to over CORE SOAP.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// Our name for the partner.
    pub name: String,
    /// HTTPS endpoint URL.
    pub endpoint: String,
    /// Our CORE SenderID.
    pub sender_id: String,
    /// Their CORE ReceiverID.
    pub receiver_id: String,
    /// Their ISA08 receiver id (and qualifier) for the 278s we write.
    #[serde(default)]
    pub isa_receiver_id: Option<String>,
    /// ISA07 qualifier for `isa_receiver_id`.
    #[serde(default = "default_qualifier")]
    pub isa_receiver_qualifier: String,
    /// CORERuleVersion this partner expects (`2.2.0`, `v2.2.0`, …).
    #[serde(default = "default_rule_version")]
    pub core_rule_version: String,
    /// ProcessingMode of the envelopes we send this partner: `RealTime`
    /// (default) or `Batch`, the two modes CORE defines. Only the
    /// `ProcessingMode` element changes: the exchange is still one request
    /// answered in the same HTTP response (`COREEnvelopeRealTimeRequest`); the
    /// CORE batch submission/retrieval envelopes are not implemented.
    #[serde(default)]
    pub processing_mode: ProcessingMode,
    /// PayloadType of the requests we send.
    #[serde(default = "default_request_payload")]
    pub request_payload_type: String,
    /// Extra PEM CA certificates to trust (for partners with private CAs).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the platform roots.
    #[serde(default)]
    pub ca_only: bool,
    /// PEM file holding our client certificate and key, for mutual TLS.
    #[serde(default)]
    pub client_identity: Option<PathBuf>,
    /// Request timeout in milliseconds (CORE real time: answer within 20 s).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// CORE ProcessingMode (the `ProcessingMode` element of the SOAP envelope).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ProcessingMode {
    /// `RealTime`: the answer comes back in the same exchange (the default).
    #[default]
    RealTime,
    /// `Batch`.
    Batch,
}

impl ProcessingMode {
    /// The element value, as CORE spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessingMode::RealTime => "RealTime",
            ProcessingMode::Batch => "Batch",
        }
    }
}

fn default_request_payload() -> String {
    "X12_278_Request_005010X217E1_2".into()
}

fn default_timeout_ms() -> u64 {
    20_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(text: &str) -> RequestsConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("requests: {e}"))
    }

    #[test]
    fn routes_match_on_payer_then_adapter_and_profile_first_match_wins() {
        let r = requests(
            r#"
[[routes]]
name = "acme-hl7"
payer_ids = ["60054"]
adapters = ["hl7v2"]
partner = "acme"
[[routes]]
name = "any"
payer_ids = ["*"]
outbound = "/tmp/out"
"#,
        );
        let name = |p, a, f| r.route_for(p, a, f).map(|r| r.name.as_str());
        assert_eq!(name(Some("60054"), "hl7v2", "epic"), Some("acme-hl7"));
        assert_eq!(name(Some("60054"), "fhir", "epic"), Some("any"));
        assert_eq!(name(Some("99999"), "hl7v2", "epic"), Some("any"));
        assert_eq!(name(None, "hl7v2", "epic"), None, "no payer id: no route");
        assert_eq!(name(Some(""), "hl7v2", "epic"), None);
    }

    #[test]
    fn route_problems_name_their_key() {
        let partner = partner("").expect("partner");
        let r = requests(
            r#"
poll_interval_ms = 0
[[routes]]
name = "a"
payer_ids = []
[[routes]]
name = "a"
payer_ids = ["1"]
partner = "nobody"
receiver_id = "MUCH-TOO-LONG-FOR-ISA08"
receiver_qualifier = "Z"
"#,
        );
        let keys: Vec<String> = r.problems(&[partner]).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "x12.requests.poll_interval_ms",
                "x12.requests.routes[0].payer_ids",
                "x12.requests.routes[0]",
                "x12.requests.routes[1].name",
                "x12.requests.routes[1].partner",
                "x12.requests.routes[1].receiver_id",
                "x12.requests.routes[1].receiver_qualifier",
            ]
        );
        let e = toml::from_str::<RequestsConfig>(
            "[[routes]]\nname = \"a\"\npayer_ids = [\"1\"]\npayer = \"x\"\n",
        )
        .expect_err("unknown key");
        assert!(e.to_string().contains("payer"), "{e}");
    }

    fn partner(extra: &str) -> Result<PartnerConfig, toml::de::Error> {
        toml::from_str(&format!(
            "name = \"p\"\nendpoint = \"https://p.invalid/core\"\nsender_id = \"A\"\nreceiver_id = \"B\"\n{extra}"
        ))
    }

    #[test]
    fn processing_mode_is_per_partner_and_real_time_by_default() {
        let p = partner("").expect("parses");
        assert_eq!(p.processing_mode, ProcessingMode::RealTime);
        assert_eq!(p.processing_mode.as_str(), "RealTime");
        let p = partner("processing_mode = \"Batch\"").expect("parses");
        assert_eq!(p.processing_mode.as_str(), "Batch");
        let e = partner("processing_mode = \"batch\"").expect_err("CORE spelling only");
        assert!(e.to_string().contains("RealTime"), "{e}");
    }
}

//! Configuration of MLLP listeners and senders, embedded by the daemon under
//! `[[hl7v2.listeners]]` / `[hl7v2.sender]`.
//!
//! Every struct denies unknown fields, so a typo in the config file is an error
//! naming the key rather than a silently ignored setting. Durations are whole
//! milliseconds (`*_ms`) so the TOML stays unambiguous and env-overridable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::codec::DEFAULT_MAX_FRAME;

/// One MLLP listener (`[[hl7v2.listeners]]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address to listen on, e.g. `127.0.0.1:2575` (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The mapping profile messages on this listener are mapped with (`epic`).
    pub profile: String,
    /// Largest accepted MLLP payload in bytes; larger frames get an AR.
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// Most simultaneous connections; further connections are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A connection with no complete frame for this long is closed.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// A frame must complete within this long after its first byte (no slowloris).
    #[serde(default = "default_frame_timeout_ms")]
    pub frame_timeout_ms: u64,
    /// Writing one ACK must finish within this long.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
    /// TLS (and optionally mutual TLS); plaintext when absent.
    #[serde(default)]
    pub tls: Option<TlsServerConfig>,
}

impl ListenerConfig {
    /// A plaintext listener with default limits.
    pub fn new(listen: SocketAddr, profile: impl Into<String>) -> Self {
        ListenerConfig {
            listen,
            profile: profile.into(),
            max_frame_bytes: default_max_frame(),
            max_connections: default_max_connections(),
            idle_timeout_ms: default_idle_timeout_ms(),
            frame_timeout_ms: default_frame_timeout_ms(),
            write_timeout_ms: default_write_timeout_ms(),
            tls: None,
        }
    }

    /// Idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// Frame completion deadline as a duration.
    pub fn frame_timeout(&self) -> Duration {
        Duration::from_millis(self.frame_timeout_ms)
    }

    /// ACK write deadline as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }
}

/// Server-side TLS files.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsServerConfig {
    /// PEM certificate chain presented to clients.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA bundle; when set, clients must present a certificate it signed (mTLS).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// When non-empty (mTLS only), the client certificate must be valid for one of
    /// these DNS names or IP addresses (subject alternative names).
    #[serde(default)]
    pub allowed_peers: Vec<String>,
    /// The TLS handshake must finish within this long.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

/// Client-side TLS files (sender and `send mllp --tls`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsClientConfig {
    /// PEM CA bundle that signed the receiver's certificate.
    pub ca: PathBuf,
    /// Our PEM client certificate chain, for mutual TLS.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// Our PEM private key, for mutual TLS.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Name to verify the receiver's certificate against (default: the host part
    /// of the address).
    #[serde(default)]
    pub server_name: Option<String>,
}

/// The outbound MLLP sender (`[hl7v2.sender]`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SenderConfig {
    /// The receiver, `host:port`.
    pub address: String,
    /// Connecting must finish within this long.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// An ACK must arrive within this long after the message was written.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// Attempts per message before the failure is reported to the caller.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt up to `backoff_max_ms`.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Largest retry delay.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Open a new connection per message (for receivers that misbehave on
    /// persistent connections); persistent by default.
    #[serde(default)]
    pub connection_per_message: bool,
    /// Largest accepted ACK payload.
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// TLS towards the receiver; plaintext when absent.
    #[serde(default)]
    pub tls: Option<TlsClientConfig>,
}

impl SenderConfig {
    /// A plaintext sender with default timeouts and retries.
    pub fn new(address: impl Into<String>) -> Self {
        SenderConfig {
            address: address.into(),
            connect_timeout_ms: default_connect_timeout_ms(),
            response_timeout_ms: default_response_timeout_ms(),
            max_attempts: default_max_attempts(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            connection_per_message: false,
            max_frame_bytes: default_max_frame(),
            tls: None,
        }
    }

    /// The delay before retry number `attempt` (1-based), exponential and capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(20);
        let ms = self
            .backoff_initial_ms
            .saturating_mul(1u64 << shift)
            .min(self.backoff_max_ms);
        Duration::from_millis(ms)
    }
}

fn default_max_frame() -> usize {
    DEFAULT_MAX_FRAME
}
fn default_max_connections() -> usize {
    256
}
fn default_idle_timeout_ms() -> u64 {
    600_000
}
fn default_frame_timeout_ms() -> u64 {
    30_000
}
fn default_write_timeout_ms() -> u64 {
    10_000
}
fn default_handshake_timeout_ms() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_response_timeout_ms() -> u64 {
    30_000
}
fn default_max_attempts() -> u32 {
    5
}
fn default_backoff_initial_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    30_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_from_toml_with_defaults() {
        let cfg: ListenerConfig =
            toml::from_str("listen = \"127.0.0.1:2575\"\nprofile = \"epic\"\n").expect("parse");
        assert_eq!(
            cfg,
            ListenerConfig::new("127.0.0.1:2575".parse().expect("addr"), "epic")
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = toml::from_str::<ListenerConfig>(
            "listen = \"127.0.0.1:2575\"\nprofile = \"epic\"\nmax_conections = 3\n",
        )
        .expect_err("typo must fail");
        assert!(err.to_string().contains("max_conections"), "{err}");
        let err = toml::from_str::<ListenerConfig>(
            "listen = \"127.0.0.1:2575\"\nprofile = \"epic\"\n[tls]\ncert = \"a\"\nkey = \"b\"\nclient_cert = \"c\"\n",
        )
        .expect_err("typo in tls must fail");
        assert!(err.to_string().contains("client_cert"), "{err}");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut s = SenderConfig::new("127.0.0.1:1");
        s.backoff_initial_ms = 100;
        s.backoff_max_ms = 1000;
        assert_eq!(s.backoff(1), Duration::from_millis(100));
        assert_eq!(s.backoff(2), Duration::from_millis(200));
        assert_eq!(s.backoff(4), Duration::from_millis(800));
        assert_eq!(s.backoff(5), Duration::from_millis(1000));
        assert_eq!(s.backoff(100), Duration::from_millis(1000));
    }
}

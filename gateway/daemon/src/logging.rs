//! Installs the tracing subscriber: JSON lines or pretty text, filtered by
//! the configured level. Only the daemon does this (libraries just emit).
//!
//! PHI rule: events carry ids, types, hashes and positions, never payload
//! values; that is a property of the call sites, reviewed with them. This
//! module only decides format and destination (stderr, so stdout stays free
//! for command output such as `messages list --json`).

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LoggingSettings};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the level.
/// Installing twice is harmless (the second call is ignored).
pub fn init(settings: &LoggingSettings) {
    init_with(settings, std::io::stderr);
}

/// [`init`] with another destination (the Windows service's log file, see
/// `service::logfile`).
pub fn init_with<W>(settings: &LoggingSettings, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|value| value.parse::<EnvFilter>().ok())
        .or_else(|| settings.level.parse::<EnvFilter>().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // `try_init` fails only when a subscriber is already installed.
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.with_ansi(false).compact().try_init(),
    };
}

//! The daemon's life under a host: load and check the config, set up logs,
//! start, tell the host it is ready, wait for the host's stop request, drain.
//!
//! *Why one function for every host*: `ehr-gateway run` (a terminal, systemd,
//! a container) and the Windows service must start and stop the daemon the
//! same way — same config checks, same secret-file warnings, same drain — and
//! differ only in who asks them to stop (SIGTERM/SIGINT or Ctrl-C, versus the
//! service control manager's Stop/Shutdown) and whom they tell that they are
//! ready (`sd_notify` versus `SERVICE_RUNNING`). That difference is the
//! [`Host`] trait; everything else is here, once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::daemon::{self, Options, Stop};
use crate::{logging, settings};

/// Exit status after a drain that a second stop request cut short.
pub const CUT_SHORT: u8 = 130;

/// Exit status when the store's writer thread died: nothing more can be
/// committed, so the daemon stops and its supervisor (systemd, the Windows
/// service manager) restarts it (EX_SOFTWARE).
pub const WRITER_DIED: u8 = 70;

/// Who runs the daemon: the source of stop requests and the receiver of
/// readiness.
pub(crate) trait Host {
    /// Waits for the next stop request. Called once before draining (with the
    /// configured grace period) and once during it (a second request: stop
    /// without finishing the drain). Requests that arrive during start-up are
    /// kept, not lost.
    async fn next_stop(&mut self, grace: Duration) -> Stop;

    /// The daemon is up: store open, every listener bound.
    fn ready(&mut self);

    /// A stop was requested; the drain takes at most `stop`'s grace period.
    fn stopping(&mut self, stop: Stop);
}

/// Where the logs go.
pub enum Logs {
    /// stderr: the terminal, journald under systemd, the container runtime.
    Stderr,
    /// A size-rotated file (the Windows service has no console).
    #[cfg_attr(not(windows), allow(dead_code))]
    File(PathBuf),
}

/// Runs the daemon under a host until it is stopped. `make_host` runs inside
/// the async runtime before the daemon starts (signal handlers need the
/// runtime and must exist before start-up, see [`daemon::Signals`]).
///
/// Returns the exit status: 0 after a clean stop, [`CUT_SHORT`] when a second
/// stop request cut the drain short, [`WRITER_DIED`] when the store's writer
/// thread died. Configuration problems are returned as
/// [`settings::ConfigError`] (exit 2 in `main`), other failures as errors.
pub(crate) fn serve<H, F>(
    config: &Path,
    data_dir: Option<PathBuf>,
    logs: Logs,
    make_host: F,
) -> anyhow::Result<u8>
where
    H: Host,
    F: FnOnce() -> anyhow::Result<H>,
{
    let loaded = settings::load(config);
    let warnings = loaded.warnings.clone();
    let settings = loaded.into_result()?;
    let mut problems = Vec::new();
    crate::adapters::check_all(&settings, config, &mut problems);
    if !problems.is_empty() {
        return Err(settings::ConfigError { problems }.into());
    }
    match logs {
        Logs::Stderr => logging::init(&settings.logging),
        Logs::File(path) => {
            let file = super::logfile::RotatingFile::open(
                &path,
                super::logfile::DEFAULT_MAX_BYTES,
                super::logfile::DEFAULT_KEEP,
            )
            .with_context(|| format!("cannot open the log file {}", path.display()))?;
            logging::init_with(&settings.logging, file);
        }
    }
    crate::secrets::warn_loose_permissions(&settings, config);
    for warning in warnings {
        tracing::warn!(%warning, "Configuration warning.");
    }
    let data_dir = data_dir.unwrap_or_else(|| settings.store.path.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut host = make_host()?;
        let running = daemon::start(
            &settings,
            Options {
                data_dir,
                admin_token: None,
            },
        )
        .await?;
        host.ready();
        let store = running.store.clone();
        let stop = tokio::select! {
            stop = host.next_stop(settings.shutdown.grace_period()) => stop,
            why = store.writer_died() => {
                tracing::error!(
                    reason = %why,
                    "The store writer died: nothing more can be committed. Stopping so the \
                     service manager restarts the daemon."
                );
                host.stopping(Stop::Fast);
                running.shutdown(Stop::Fast).await;
                return Ok(WRITER_DIED);
            }
        };
        host.stopping(stop);
        tokio::select! {
            () = running.shutdown(stop) => Ok(0),
            _ = host.next_stop(Duration::ZERO) => {
                tracing::warn!("Second stop request: stopping without finishing the drain.");
                Ok(CUT_SHORT)
            }
        }
    })
}

/// The host of `ehr-gateway run`: signals (SIGTERM drains, SIGINT stops; on
/// Windows Ctrl-Break/close/logoff drain, Ctrl-C stops) and systemd's
/// `sd_notify` readiness and watchdog (no-ops without `$NOTIFY_SOCKET`).
pub(crate) struct Console {
    signals: daemon::Signals,
    watchdog: Option<tokio_util::sync::DropGuard>,
}

impl Console {
    /// Installs the signal handlers (inside the runtime).
    pub(crate) fn install() -> anyhow::Result<Console> {
        Ok(Console {
            signals: daemon::Signals::install()?,
            watchdog: None,
        })
    }
}

impl Host for Console {
    async fn next_stop(&mut self, grace: Duration) -> Stop {
        self.signals.next(grace).await
    }

    fn ready(&mut self) {
        crate::notify::ready();
        let watchdog = tokio_util::sync::CancellationToken::new();
        self.watchdog = Some(watchdog.clone().drop_guard());
        crate::notify::spawn_watchdog(watchdog);
    }

    fn stopping(&mut self, _stop: Stop) {
        crate::notify::stopping();
    }
}

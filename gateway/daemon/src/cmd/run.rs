//! `run --config FILE [--data-dir DIR]`: the daemon.
//!
//! Exit codes: 0 after a clean stop, 2 for configuration problems, 1 for
//! runtime failures (e.g. the admin port is taken), 130 when a second signal
//! cut a drain short.

use std::path::PathBuf;
use std::process::ExitCode;

use std::time::Duration;

use anyhow::Context as _;

use crate::daemon::{self, Options};
use crate::{logging, settings};

/// Run the daemon from a TOML config file.
#[derive(clap::Args)]
pub struct Args {
    /// The TOML config file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Data directory (store file, file sink); overrides `[store] path`.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Loads the config, starts the daemon and runs until SIGTERM or SIGINT.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = settings::load(&args.config);
    let warnings = loaded.warnings.clone();
    let settings = loaded.into_result()?;
    let mut problems = Vec::new();
    crate::adapters::check_all(&settings, &args.config, &mut problems);
    if !problems.is_empty() {
        return Err(settings::ConfigError { problems }.into());
    }
    logging::init(&settings.logging);
    crate::secrets::warn_loose_permissions(&settings);
    for warning in warnings {
        tracing::warn!(%warning, "Configuration warning.");
    }
    let data_dir = args.data_dir.unwrap_or_else(|| settings.store.path.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut signals = daemon::Signals::install()?;
        let running = daemon::start(
            &settings,
            Options {
                data_dir,
                admin_token: None,
            },
        )
        .await?;
        // Store open, listeners bound: tell systemd (Type=notify), ping its watchdog.
        crate::notify::ready();
        let watchdog = tokio_util::sync::CancellationToken::new();
        let _watchdog_guard = watchdog.clone().drop_guard();
        crate::notify::spawn_watchdog(watchdog);
        let stop = signals.next(settings.shutdown.grace_period()).await;
        crate::notify::stopping();
        tokio::select! {
            () = running.shutdown(stop) => Ok(ExitCode::SUCCESS),
            _ = signals.next(Duration::ZERO) => {
                tracing::warn!("Second signal: stopping without finishing the drain.");
                Ok(ExitCode::from(130))
            }
        }
    })
}

//! `run --config FILE [--data-dir DIR]`: the daemon.
//!
//! Exit codes: 0 after a clean stop, 2 for configuration problems, 1 for
//! runtime failures (e.g. the admin port is taken), 130 when a second signal
//! cut a drain short.

use std::path::PathBuf;
use std::process::ExitCode;

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

/// Loads the config, starts the daemon and runs until SIGTERM or SIGINT
/// (the same start and drain as the Windows service, see `service::host`).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let code = crate::service::host::serve(
        &args.config,
        args.data_dir,
        crate::service::host::Logs::Stderr,
        crate::service::host::Console::install,
    )?;
    Ok(ExitCode::from(code))
}

//! Running the daemon under an operating system's service manager.
//!
//! *Why*: the gateway is installed beside a practice's EHR and left running
//! for years, on Linux (systemd, see `packaging/ehr-gateway.service`) or on a
//! Windows server the practice's IT owns. Both hosts share one start/stop path
//! ([`host::serve`]); this module adds what Windows needs:
//!
//! * `ehr-gateway service install` registers the binary with the service
//!   control manager (SCM): automatic (delayed) start, restart on failure,
//!   the virtual account `NT SERVICE\ehr-gateway`, and the layout of
//!   [`paths::Layout`] (`%ProgramData%\ehr-gateway\config.toml`, `…\data`,
//!   `…\logs`);
//! * `ehr-gateway service uninstall` stops and removes it;
//! * `ehr-gateway service run …` (hidden) is what the SCM starts: it reports
//!   `START_PENDING`, starts the daemon, reports `RUNNING` only once the store
//!   is open and every listener is bound, and maps Stop / Shutdown /
//!   Preshutdown to the same drain as SIGTERM.
//!
//! The SCM code (`windows.rs`) is compiled only on Windows; on other systems
//! the subcommand is hidden and says to use the systemd unit. The layout,
//! the launch command line and the log file rotation are plain code tested
//! on every platform.

use std::path::PathBuf;
use std::process::ExitCode;

pub mod host;
// Used by the Windows service only, tested everywhere.
#[cfg_attr(not(windows), allow(dead_code))]
pub mod logfile;
#[cfg_attr(not(windows), allow(dead_code))]
pub mod paths;
#[cfg(windows)]
mod windows;

/// Install, remove or run the Windows service.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

/// `service` subcommands.
#[derive(clap::Subcommand)]
enum Action {
    /// Register the Windows service (run as Administrator).
    Install(InstallArgs),
    /// Stop and remove the Windows service (run as Administrator).
    Uninstall(NameArgs),
    /// The service's entry point, started by the service control manager.
    #[command(hide = true)]
    Run(RunArgs),
}

/// `service install`.
#[derive(clap::Args)]
#[cfg_attr(not(windows), allow(dead_code))]
struct InstallArgs {
    /// Service name (and folder under `%ProgramData%`); several gateways on
    /// one machine need different names.
    #[arg(long, default_value = paths::SERVICE_NAME)]
    name: String,
    /// Config file [default: %ProgramData%\<name>\config.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory [default: %ProgramData%\<name>\data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log directory [default: %ProgramData%\<name>\logs].
    #[arg(long, value_name = "DIR")]
    logs_dir: Option<PathBuf>,
    /// Account to run as [default: the virtual account NT SERVICE\<name>];
    /// `LocalSystem` is accepted but not recommended.
    #[arg(long)]
    account: Option<String>,
    /// Register with manual start instead of automatic (delayed) start.
    #[arg(long)]
    manual: bool,
}

/// `service uninstall`.
#[derive(clap::Args)]
#[cfg_attr(not(windows), allow(dead_code))]
struct NameArgs {
    /// Service name.
    #[arg(long, default_value = paths::SERVICE_NAME)]
    name: String,
}

/// `service run` (what the SCM starts; see [`paths::launch_arguments`]).
#[derive(clap::Args, Clone)]
#[cfg_attr(not(windows), allow(dead_code))]
struct RunArgs {
    /// Service name, as registered.
    #[arg(long, default_value = paths::SERVICE_NAME)]
    name: String,
    /// The config file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The data directory.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Where `ehr-gateway.log` is written.
    #[arg(long, value_name = "DIR")]
    logs_dir: PathBuf,
}

/// Runs a `service` subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    #[cfg(windows)]
    {
        match args.action {
            Action::Install(install) => windows::install(install),
            Action::Uninstall(names) => windows::uninstall(&names.name),
            Action::Run(run) => windows::run(run),
        }
    }
    #[cfg(not(windows))]
    {
        let _ = args.action;
        anyhow::bail!(
            "`ehr-gateway service` manages a Windows service and works only on Windows; \
             on Linux install gateway/daemon/packaging/ehr-gateway.service (systemd), \
             see README \"Install at a practice\""
        )
    }
}

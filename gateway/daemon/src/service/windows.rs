//! The Windows service: registration with the service control manager (SCM)
//! and the service entry point (`windows-service` crate).
//!
//! *Why this shape*: the SCM starts `ehr-gateway.exe service run --name …
//! --config … --data-dir … --logs-dir …` and calls our service main on a
//! thread of its dispatcher. The launch arguments are parsed by clap before
//! the dispatcher starts and handed over in a `OnceLock` (the FFI entry point
//! takes no context). The control handler only forwards Stop / Shutdown /
//! Preshutdown into a channel that [`ServiceHost::next_stop`] reads, so the
//! drain is exactly the SIGTERM drain of [`super::host::serve`].
//!
//! Status protocol: `START_PENDING` (no controls accepted) while the store
//! opens and listeners bind, `RUNNING` (Stop, Shutdown, Preshutdown accepted)
//! only after [`super::host::Host::ready`], `STOP_PENDING` with a wait hint
//! of the grace period plus a margin while draining, and `STOPPED` with exit
//! code 0, or a service-specific code (2 configuration, 1 runtime failure,
//! 130 drain cut short) that the SCM records in the System event log and that
//! triggers the restart-on-failure actions set at install.

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{
    self, ServiceControlHandlerResult, ServiceStatusHandle,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::host::{self, Host, Logs};
use super::paths::{self, Layout};
use super::{InstallArgs, RunArgs};
use crate::daemon::Stop;

/// Room beyond the drain's grace period before the SCM gives up on us.
const STOP_MARGIN: Duration = Duration::from_secs(10);
/// How long a start may take (store migrations, profiles, listeners).
const START_WAIT_HINT: Duration = Duration::from_secs(60);
/// Time the SCM grants on system shutdown (Preshutdown), like systemd's
/// `TimeoutStopSec=60s`: keep `[shutdown] grace_period_ms` below ~50 s.
const PRESHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
const SERVICE_TYPE: ServiceType = ServiceType::OWN_PROCESS;

/// `service install`.
pub(super) fn install(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let layout = Layout::from_env(&args.name);
    let config = args.config.unwrap_or(layout.config.clone());
    let data_dir = args.data_dir.unwrap_or(layout.data_dir.clone());
    let logs_dir = args.logs_dir.unwrap_or(layout.logs_dir.clone());
    let account = args
        .account
        .unwrap_or_else(|| paths::virtual_account(&args.name));
    for dir in [&layout.root, &data_dir, &logs_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .context("cannot connect to the service control manager (run as Administrator)")?;
    let executable = std::env::current_exe().context("locating ehr-gateway.exe")?;
    let info = ServiceInfo {
        name: OsString::from(&args.name),
        display_name: OsString::from(if args.name == paths::SERVICE_NAME {
            paths::DISPLAY_NAME.to_owned()
        } else {
            format!("{} ({})", paths::DISPLAY_NAME, args.name)
        }),
        service_type: SERVICE_TYPE,
        start_type: if args.manual {
            ServiceStartType::OnDemand
        } else {
            ServiceStartType::AutoStart
        },
        error_control: ServiceErrorControl::Normal,
        executable_path: executable,
        launch_arguments: paths::launch_arguments(&args.name, &config, &data_dir, &logs_dir),
        dependencies: vec![],
        account_name: (!account.eq_ignore_ascii_case("LocalSystem"))
            .then(|| OsString::from(&account)),
        account_password: None,
    };
    let service = manager
        .create_service(
            &info,
            ServiceAccess::CHANGE_CONFIG | ServiceAccess::QUERY_STATUS,
        )
        .with_context(|| format!("cannot register the service {}", args.name))?;
    service.set_description(paths::DESCRIPTION)?;
    if !args.manual {
        // After the network and the EHR's own services are up.
        service.set_delayed_auto_start(true)?;
    }
    service.set_preshutdown_timeout(PRESHUTDOWN_TIMEOUT)?;
    // Like systemd's Restart=on-failure, RestartSec=5s: restart after a crash
    // and after a non-zero exit; the failure count resets after a day.
    let restart = ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(5),
    };
    service.update_failure_actions(ServiceFailureActions {
        reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(86_400)),
        reboot_msg: None,
        command: None,
        actions: Some(vec![restart.clone(), restart.clone(), restart]),
    })?;
    service.set_failure_actions_on_non_crash_failures(true)?;
    println!(
        "Registered the Windows service `{}` (runs as {account}).",
        args.name
    );
    println!("  config:   {}", config.display());
    println!("  data dir: {}", data_dir.display());
    println!(
        "  logs:     {}",
        logs_dir
            .join(format!("{}.log", paths::SERVICE_NAME))
            .display()
    );
    println!("Grant the account its rights, then start it:");
    println!(
        "  icacls \"{}\" /inheritance:r /grant:r \"Administrators:(OI)(CI)F\" \"SYSTEM:(OI)(CI)F\" \"{account}:(OI)(CI)RX\"",
        layout.root.display()
    );
    for dir in [&data_dir, &logs_dir] {
        println!(
            "  icacls \"{}\" /grant \"{account}:(OI)(CI)M\"",
            dir.display()
        );
    }
    println!("  sc.exe start {}", args.name);
    Ok(ExitCode::SUCCESS)
}

/// `service uninstall`: stop (waiting up to a minute for the drain), delete.
pub(super) fn uninstall(name: &str) -> anyhow::Result<ExitCode> {
    let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)
        .context("cannot connect to the service control manager (run as Administrator)")?;
    let service = manager
        .open_service(
            name,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .with_context(|| format!("no service named {name}"))?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        service.stop().context("stopping the service")?;
        let deadline = std::time::Instant::now() + PRESHUTDOWN_TIMEOUT;
        while service.query_status()?.current_state != ServiceState::Stopped
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    service.delete().context("deleting the service")?;
    println!("Removed the Windows service `{name}`; config, data and logs are kept.");
    Ok(ExitCode::SUCCESS)
}

/// The launch arguments, for the service main.
static LAUNCH: OnceLock<RunArgs> = OnceLock::new();

/// `service run`: hands the thread to the SCM dispatcher until the service stops.
pub(super) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let name = args.name.clone();
    let _ = LAUNCH.set(args);
    ffi::dispatch(&name).with_context(|| {
        format!("`service run` is started by the Windows service manager (service {name}); use `ehr-gateway run` in a terminal")
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The FFI entry point the SCM calls (generated by the crate's macro, whose
/// expansion dereferences the raw argument vector the SCM passes).
#[allow(unsafe_code)]
mod ffi {
    windows_service::define_windows_service!(ffi_service_main, service_main);

    fn service_main(_arguments: Vec<std::ffi::OsString>) {
        super::service_main();
    }

    /// Connects this thread to the SCM; returns when the service has stopped.
    pub(super) fn dispatch(name: &str) -> windows_service::Result<()> {
        windows_service::service_dispatcher::start(name, ffi_service_main)
    }
}

fn status(
    state: ServiceState,
    accept: ServiceControlAccept,
    exit: ServiceExitCode,
    wait: Duration,
    checkpoint: u32,
) -> ServiceStatus {
    ServiceStatus {
        service_type: SERVICE_TYPE,
        current_state: state,
        controls_accepted: accept,
        exit_code: exit,
        checkpoint,
        wait_hint: wait,
        process_id: None,
    }
}

fn service_main() {
    let Some(args) = LAUNCH.get().cloned() else {
        return;
    };
    let log_file = paths::log_file(&args.logs_dir);
    let (stops, requests) = mpsc::unbounded_channel();
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown | ServiceControl::Preshutdown => {
            let _ = stops.send(());
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = match service_control_handler::register(&args.name, handler) {
        Ok(handle) => handle,
        Err(error) => {
            super::logfile::append_line(
                &log_file,
                &format!("error: cannot register the service control handler: {error}"),
            );
            return;
        }
    };
    let _ = handle.set_service_status(status(
        ServiceState::StartPending,
        ServiceControlAccept::empty(),
        ServiceExitCode::NO_ERROR,
        START_WAIT_HINT,
        1,
    ));
    let result = host::serve(
        &args.config,
        Some(args.data_dir.clone()),
        Logs::File(log_file.clone()),
        || Ok(ServiceHost { handle, requests }),
    );
    let exit = match result {
        Ok(0) => ServiceExitCode::NO_ERROR,
        Ok(code) => ServiceExitCode::ServiceSpecific(u32::from(code)),
        Err(error) => {
            super::logfile::append_line(&log_file, &format!("error: {error:#}"));
            let code = if error
                .downcast_ref::<crate::settings::ConfigError>()
                .is_some()
            {
                2
            } else {
                1
            };
            ServiceExitCode::ServiceSpecific(code)
        }
    };
    let _ = handle.set_service_status(status(
        ServiceState::Stopped,
        ServiceControlAccept::empty(),
        exit,
        Duration::ZERO,
        0,
    ));
}

/// The SCM as the daemon's host.
struct ServiceHost {
    handle: ServiceStatusHandle,
    requests: mpsc::UnboundedReceiver<()>,
}

impl Host for ServiceHost {
    async fn next_stop(&mut self, grace: Duration) -> Stop {
        match self.requests.recv().await {
            Some(()) => Stop::Drain(grace),
            // The handler is gone (never while registered): wait forever.
            None => std::future::pending().await,
        }
    }

    fn ready(&mut self) {
        let accepted = ServiceControlAccept::STOP
            | ServiceControlAccept::SHUTDOWN
            | ServiceControlAccept::PRESHUTDOWN;
        if let Err(error) = self.handle.set_service_status(status(
            ServiceState::Running,
            accepted,
            ServiceExitCode::NO_ERROR,
            Duration::ZERO,
            0,
        )) {
            tracing::warn!(%error, "Cannot report RUNNING to the service manager.");
        }
    }

    fn stopping(&mut self, stop: Stop) {
        let grace = match stop {
            Stop::Drain(grace) => grace,
            Stop::Fast => Duration::ZERO,
        };
        if let Err(error) = self.handle.set_service_status(status(
            ServiceState::StopPending,
            ServiceControlAccept::empty(),
            ServiceExitCode::NO_ERROR,
            grace + STOP_MARGIN,
            1,
        )) {
            tracing::warn!(%error, "Cannot report STOP_PENDING to the service manager.");
        }
    }
}

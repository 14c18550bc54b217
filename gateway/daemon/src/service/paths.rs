//! Where a Windows installation keeps its files, and how the service manager
//! starts the binary.
//!
//! *Why a module of its own*: the layout is a contract with the integration
//! engineer (README "Install at a practice") and the same on every machine:
//! `%ProgramData%\ehr-gateway\config.toml`, the store in `…\data`, the log
//! files in `…\logs`. Keeping it in pure functions lets the Linux CI test the
//! exact paths and the exact command line the service is registered with,
//! although the service itself only exists on Windows.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The service name registered with the service control manager (also the
/// folder under `%ProgramData%`).
pub const SERVICE_NAME: &str = "ehr-gateway";

/// The name shown in `services.msc`.
pub const DISPLAY_NAME: &str = "EHR integration gateway";

/// What `services.msc` shows as the description.
pub const DESCRIPTION: &str = "Receives orders from the practice EHR (HL7 v2, FHIR, X12, desktop), \
     stores them durably and forwards prior-authorization cases to the central platform.";

/// Used when `%ProgramData%` is not set (it always is on a real Windows).
const DEFAULT_PROGRAM_DATA: &str = r"C:\ProgramData";

/// The file layout of one installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `%ProgramData%\ehr-gateway`: readable by the service account and
    /// Administrators only.
    pub root: PathBuf,
    /// `…\config.toml`, the one config file.
    pub config: PathBuf,
    /// `…\data`, the data directory (store, file sink); the service account
    /// needs modify rights here.
    pub data_dir: PathBuf,
    /// `…\logs`, where the service writes `ehr-gateway.log` (it has no console).
    pub logs_dir: PathBuf,
}

impl Layout {
    /// The layout under a given `%ProgramData%` folder and service name.
    pub fn under(program_data: &Path, name: &str) -> Layout {
        let root = program_data.join(name);
        Layout {
            config: root.join("config.toml"),
            data_dir: root.join("data"),
            logs_dir: root.join("logs"),
            root,
        }
    }

    /// The layout under this machine's `%ProgramData%`.
    pub fn from_env(name: &str) -> Layout {
        let program_data = std::env::var_os("ProgramData")
            .filter(|value| !value.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PROGRAM_DATA));
        Layout::under(&program_data, name)
    }
}

/// The log file the service writes in `logs_dir`.
pub fn log_file(logs_dir: &Path) -> PathBuf {
    logs_dir.join(format!("{SERVICE_NAME}.log"))
}

/// The arguments the service control manager starts the binary with: the
/// hidden `service run` entry point with explicit paths, so the service never
/// depends on its working directory (`C:\Windows\System32` for services).
pub fn launch_arguments(
    name: &str,
    config: &Path,
    data_dir: &Path,
    logs_dir: &Path,
) -> Vec<OsString> {
    vec![
        "service".into(),
        "run".into(),
        "--name".into(),
        name.into(),
        "--config".into(),
        config.as_os_str().to_owned(),
        "--data-dir".into(),
        data_dir.as_os_str().to_owned(),
        "--logs-dir".into(),
        logs_dir.as_os_str().to_owned(),
    ]
}

/// The virtual service account (`NT SERVICE\<name>`) the service runs as by
/// default: its own identity without a password, no rights beyond the ACLs
/// the installer grants it.
pub fn virtual_account(name: &str) -> String {
    format!(r"NT SERVICE\{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_lives_under_program_data() {
        let layout = Layout::under(Path::new(r"C:\ProgramData"), SERVICE_NAME);
        let root = Path::new(r"C:\ProgramData").join("ehr-gateway");
        assert_eq!(layout.config, root.join("config.toml"));
        assert_eq!(layout.data_dir, root.join("data"));
        assert_eq!(layout.logs_dir, root.join("logs"));
        assert_eq!(
            log_file(&layout.logs_dir),
            root.join("logs").join("ehr-gateway.log")
        );
        assert_eq!(layout.root, root);
    }

    #[test]
    fn the_service_is_started_with_explicit_paths() {
        let layout = Layout::under(Path::new(r"D:\Data"), "gw-east");
        let args = launch_arguments(
            "gw-east",
            &layout.config,
            &layout.data_dir,
            &layout.logs_dir,
        );
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[..4], ["service", "run", "--name", "gw-east"]);
        let value = |flag: &str| {
            let at = args.iter().position(|a| a == flag).expect(flag);
            PathBuf::from(&args[at + 1])
        };
        assert_eq!(value("--config"), layout.config);
        assert_eq!(value("--data-dir"), layout.data_dir);
        assert_eq!(value("--logs-dir"), layout.logs_dir);
        assert_eq!(virtual_account("gw-east"), r"NT SERVICE\gw-east");
    }
}

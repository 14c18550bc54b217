//! `ehr-gateway service …` manages the Windows service. Elsewhere it is
//! hidden from `--help` and refuses with a pointer to the systemd unit,
//! rather than pretending (the SCM side is checked by
//! `cargo check --target x86_64-pc-windows-gnu`, see `.ci/run`).
#![cfg(not(windows))]

use std::process::Command;

#[test]
fn the_service_command_is_hidden_and_points_to_systemd_off_windows() {
    let bin = env!("CARGO_BIN_EXE_ehr-gateway");
    let help = Command::new(bin).arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("check-config"), "{help}");
    assert!(
        !help.lines().any(|l| l.trim_start().starts_with("service ")),
        "{help}"
    );

    for action in [&["install"][..], &["uninstall"], &["install", "--manual"]] {
        let out = Command::new(bin)
            .arg("service")
            .args(action)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("works only on Windows"), "{stderr}");
        assert!(stderr.contains("ehr-gateway.service (systemd)"), "{stderr}");
    }
    // The hidden entry point the service manager uses still parses its
    // arguments (the command line `service install` registers).
    let out = Command::new(bin)
        .args([
            "service",
            "run",
            "--config",
            "c.toml",
            "--data-dir",
            "d",
            "--logs-dir",
            "l",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let out = Command::new(bin)
        .args(["service", "run", "--config", "c.toml"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "missing --data-dir is a usage error"
    );
}

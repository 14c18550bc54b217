//! The systemd unit in `packaging/` is accepted by `systemd-analyze verify`
//! without a single warning, and carries the settings the deployment relies on.

use std::path::Path;
use std::process::Command;

fn unit_text() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/ehr-gateway.service"),
    )
    .expect("unit file")
}

#[test]
fn the_unit_has_the_required_settings() {
    let unit = unit_text();
    for line in [
        "Type=notify",
        "WatchdogSec=30s",
        "Restart=on-failure",
        "User=ehr-gateway",
        "StateDirectory=ehr-gateway",
        "ConfigurationDirectory=ehr-gateway",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "StandardOutput=journal",
        "ExecStart=/usr/local/bin/ehr-gateway run --config /etc/ehr-gateway/gateway.toml --data-dir /var/lib/ehr-gateway",
    ] {
        assert!(
            unit.lines().any(|l| l.trim() == line),
            "missing `{line}` in the unit"
        );
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_without_warnings() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "systemd-analyze missing in CI (.ci/install.d/60-deploy.sh installs systemd)"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // verify checks that ExecStart's binary exists: point it at the built one.
    let unit = unit_text().replace(
        "/usr/local/bin/ehr-gateway",
        env!("CARGO_BIN_EXE_ehr-gateway"),
    );
    let path = dir.path().join("ehr-gateway.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 even on unparseable settings ("…, ignoring"): any
    // message about our unit counts as a failure.
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ehr-gateway.service"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

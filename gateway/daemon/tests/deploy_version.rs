//! `ehr-gateway --version` names the version, the git revision, the cargo
//! features, the adapters, the build profile and the panic strategy.

use std::process::Command;

#[test]
fn version_names_revision_features_and_adapters() {
    let out = Command::new(env!("CARGO_BIN_EXE_ehr-gateway"))
        .arg("--version")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.trim();
    let prefix = format!("ehr-gateway {} (git ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&prefix), "{line}");
    let rev = line[prefix.len()..].split(';').next().unwrap_or_default();
    assert!(
        rev == "unknown" || (rev.len() == 12 && rev.bytes().all(|b| b.is_ascii_hexdigit())),
        "git revision `{rev}` in {line}"
    );
    let profile = if cfg!(debug_assertions) {
        "; profile: debug"
    } else {
        "; profile: release"
    };
    for part in [
        "; features: ",
        "adapters: hl7v2, fhir, x12, desktop, davinci-pas",
        profile,
        "; panic: unwind)",
    ] {
        assert!(line.contains(part), "`{part}` missing in {line}");
    }
}

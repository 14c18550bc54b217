//! Configuration errors through the real binary: each names the file (or the
//! environment variable) and the key, and exits with code 2.

mod support;

use std::process::Command;

fn run(args: &[&str], config: &std::path::Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(support::bin());
    // Relative paths in configs (the example's `mappings`) are relative to
    // the repository root, where operators run the binary.
    cmd.current_dir(support::repo_root());
    cmd.args(args).arg("--config").arg(config);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_with(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, body).expect("write");
    path
}

#[test]
fn unknown_key_names_file_and_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_with(
        dir.path(),
        "[gateway]\ntenant = \"t\"\n[admin]\nlisten_addr = \"127.0.0.1:1\"\n",
    );
    for command in ["check-config", "run"] {
        let (code, stderr) = run(&[command], &config, &[]);
        assert_eq!(code, Some(2), "{command}: {stderr}");
        assert!(stderr.contains(&config.display().to_string()), "{stderr}");
        assert!(stderr.contains("key `admin.listen_addr`"), "{stderr}");
        assert!(stderr.contains("unknown field `listen_addr`"), "{stderr}");
    }
}

#[test]
fn wrong_type_names_file_and_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_with(
        dir.path(),
        "[gateway]\ntenant = \"t\"\n[store]\nretention_days = \"thirty\"\n",
    );
    let (code, stderr) = run(&["check-config"], &config, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: key `store.retention_days`", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("invalid type"), "{stderr}");
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("nope.toml");
    for command in ["check-config", "run"] {
        let (code, stderr) = run(&[command], &config, &[]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(&config.display().to_string()), "{stderr}");
        assert!(stderr.contains("cannot read config file"), "{stderr}");
    }
}

#[test]
fn bad_env_vars_name_the_variable_and_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_with(dir.path(), "[gateway]\ntenant = \"t\"\n");
    // A misspelt key is an error, not silently ignored.
    let (code, stderr) = run(
        &["check-config"],
        &config,
        &[("GATEWAY__ADMIN__LISTN", "127.0.0.1:9")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("environment variable GATEWAY__ADMIN__LISTN: key `admin.listn`"),
        "{stderr}"
    );
    // A wrong value too.
    let (code, stderr) = run(
        &["check-config"],
        &config,
        &[("GATEWAY__ADMIN__LISTEN", "not-an-address")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("environment variable GATEWAY__ADMIN__LISTEN: key `admin.listen`"),
        "{stderr}"
    );
    // One underscore is not an override: warned about, not fatal.
    let (code, stderr) = run(&["check-config"], &config, &[("GATEWAY_ADMIN_LISTEN", "x")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: environment variable GATEWAY_ADMIN_LISTEN is ignored"),
        "{stderr}"
    );
}

#[test]
fn check_config_lists_every_problem_and_accepts_a_valid_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_with(
        dir.path(),
        "[gateway]\ntenant = \"t\"\ncolour = \"red\"\n[admin]\nlisten = 12\ntoken_file = \"/nonexistent/token\"\n[forward]\nsink = \"http\"\n[logging]\nformat = \"xml\"\n",
    );
    let (code, stderr) = run(&["check-config"], &config, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    for key in ["gateway.colour", "admin.listen", "logging.format"] {
        assert!(
            stderr.contains(&format!("key `{key}`")),
            "{key} missing in {stderr}"
        );
    }

    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local.toml");
    let (code, stderr) = run(
        &["check-config"],
        &example,
        &[(
            "EHR_GATEWAY_ADMIN_TOKEN",
            "synthetic-example-token-000000000001",
        )],
    );
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn check_config_reports_a_referenced_profile_that_does_not_exist() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = config_with(
        dir.path(),
        &format!(
            "mappings_dir = \"{}\"\n[gateway]\ntenant = \"t\"\n[[hl7v2.listeners]]\nlisten = \"127.0.0.1:0\"\nprofile = \"no-such-profile\"\n",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../mappings")
                .display()
        ),
    );
    let (code, stderr) = run(&["check-config"], &config, &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("mapping profile `no-such-profile` is referenced but not found"),
        "{stderr}"
    );
}

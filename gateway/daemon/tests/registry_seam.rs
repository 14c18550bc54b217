//! The CLI's formats and the admin API's adapter list come from the
//! registry (`gateway-registry`): `inspect --format` offers exactly the
//! registry's formats, `map` parses with the registry's parser of the
//! profile's format, and every endpoint `GET /api/v1/adapters` lists belongs
//! to a registered adapter and uses a transport it declares.

use std::path::Path;
use std::process::Command;

use ehr_gateway::daemon::{self, Options, Stop};
use ehr_gateway::settings::{self, Secret};

const TOKEN: &str = "synthetic-admin-token";

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn inspect_offers_the_registry_s_formats() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("input.txt");
    std::fs::write(&file, "synthetic").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ehr-gateway"))
        .args(["inspect", "--format", "no-such-format"])
        .arg(&file)
        .output()
        .expect("run inspect");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let offered = format!(
        "(one of {})",
        gateway_registry::formats::format_names().join(", ")
    );
    assert!(stderr.contains(&offered), "{stderr}");
    // Every registered format is accepted by name.
    for name in gateway_registry::formats::format_names() {
        let out = Command::new(env!("CARGO_BIN_EXE_ehr-gateway"))
            .args(["inspect", "--format", name])
            .arg(&file)
            .output()
            .expect("run inspect");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("unknown format"), "{name}: {stderr}");
    }
}

#[test]
fn map_parses_with_the_registry_s_parser_of_the_profile_s_format() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("input.txt");
    std::fs::write(&file, "synthetic, in no format").expect("write");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("mappings")).expect("mappings") {
        let profile = entry.expect("entry").path();
        let Ok(text) = std::fs::read_to_string(profile.join("profile.toml")) else {
            continue;
        };
        let Some(format) = text
            .lines()
            .find_map(|l| l.strip_prefix("format = \""))
            .and_then(|rest| rest.strip_suffix('"'))
        else {
            continue;
        };
        let spec = gateway_registry::formats::FORMATS
            .iter()
            .find(|s| s.format.as_str() == format)
            .expect("a profile's format is a registered one");
        // The registry's own parser refuses the input, with these diagnostics…
        let diagnostics = (spec.parse)(b"synthetic, in no format").expect_err("not parseable");
        let out = Command::new(env!("CARGO_BIN_EXE_ehr-gateway"))
            .arg("map")
            .arg("--profile")
            .arg(&profile)
            .arg(&file)
            .output()
            .expect("run map");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        // …and `map` reports exactly those, naming the registry's format.
        for d in &diagnostics {
            assert!(stderr.contains(&d.to_string()), "{format}: {d} in {stderr}");
        }
        assert!(
            stderr.contains(&format!("not a valid `{format}` document")),
            "{stderr}"
        );
        seen.push(format.to_owned());
    }
    seen.sort();
    seen.dedup();
    assert!(
        seen.len() >= 4,
        "profiles of every adapter format: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_lists_registered_adapters_with_declared_transports() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"mappings_dir = "{mappings}"
[gateway]
tenant = "mso-test"
practice = "cardio-north"
[admin]
listen = "127.0.0.1:0"
[logging]
format = "json"
level = "info"
[[hl7v2.listeners]]
listen = "127.0.0.1:0"
profile = "epic"
"#,
            mappings = repo_root().join("mappings").display(),
        ),
    )
    .expect("config");
    let loaded = settings::load(&config);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let settings = loaded.settings.expect("settings");
    let running = daemon::start(
        &settings,
        Options {
            data_dir: dir.path().join("data"),
            admin_token: Some(Secret::new(TOKEN)),
        },
    )
    .await
    .expect("start");
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/api/v1/adapters", running.admin_addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    running.shutdown(Stop::Fast).await;
    let endpoints = body["endpoints"].as_array().expect("endpoints");
    assert!(!endpoints.is_empty(), "{body}");
    for endpoint in endpoints {
        let name = endpoint["adapter"].as_str().expect("adapter");
        let spec = gateway_registry::adapter(name).expect("a registered adapter");
        let transport = endpoint["transport"].as_str().expect("transport");
        assert!(
            spec.transports.iter().any(|t| t.as_str() == transport),
            "{name} does not declare {transport}"
        );
    }
    assert_eq!(endpoints[0]["adapter"], "hl7v2");
    assert_eq!(endpoints[0]["transport"], "mllp");
}

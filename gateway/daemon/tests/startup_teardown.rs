//! `daemon::start` in-process: a start that fails at its last stage (the
//! admin port is taken) stops what had already started before returning —
//! the MLLP listener's port is free again, the store is closed and the
//! instance lock released, so the next start in the same data directory
//! succeeds.

use std::net::SocketAddr;
use std::path::Path;

use ehr_gateway::daemon::{self, Options, Stop};
use ehr_gateway::settings::{self, Settings};

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn settings(dir: &Path, admin: SocketAddr, mllp: SocketAddr) -> Settings {
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"mappings_dir = "{mappings}"
[gateway]
tenant = "mso-test"
practice = "cardio-north"
[admin]
listen = "{admin}"
[logging]
format = "json"
level = "info"
[[hl7v2.listeners]]
listen = "{mllp}"
profile = "epic"
"#,
            mappings = repo_root().join("mappings").display(),
        ),
    )
    .expect("config");
    let loaded = settings::load(&config);
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded.settings.expect("settings")
}

/// A port nobody listens on right now.
fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_admin_bind_stops_the_adapters_workers_and_forwarder_that_started() {
    let dir = tempfile::tempdir().expect("tmp");
    let data_dir = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let admin = taken.local_addr().expect("addr");
    let mllp = free_port();
    let settings = settings(dir.path(), admin, mllp);
    let options = Options {
        data_dir: data_dir.clone(),
        admin_token: None,
    };

    let error = match daemon::start(&settings, options.clone()).await {
        Ok(_) => panic!("the admin port is taken: the start must fail"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains(&admin.to_string()), "{error}");

    // The MLLP listener that had started before the admin bind is closed
    // (Linux refuses a second listener on a port even with SO_REUSEADDR).
    let again = tokio::net::TcpListener::bind(mllp).await;
    assert!(again.is_ok(), "the MLLP port is still held: {again:?}");
    drop(again);

    // The store is closed and the instance lock released: with the admin
    // port free, the same data directory starts.
    drop(taken);
    let running = daemon::start(&settings, options)
        .await
        .expect("the second start");
    assert!(
        running.adapters.iter().any(|(name, _)| *name == "hl7v2"),
        "the hl7v2 adapter runs"
    );
    running.shutdown(Stop::Fast).await;
}

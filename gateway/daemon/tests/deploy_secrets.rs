//! Secrets never reach the logs: the real binary at `trace` level (every
//! crate), with a known admin token used by authorised and refused requests,
//! prints neither the token, the platform bearer token nor an adapter's secret
//! (the private key of an HL7 MLLP TLS listener, which a client handshakes
//! with) on stdout or stderr, and warns (naming key, file and mode only) about
//! group/world-readable secret files: the admin token and the adapter key.
#![cfg(unix)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "synthetic-admin-token-7f3a9c21d04e5b68";
const PLATFORM_TOKEN: &str = "synthetic-platform-token-55e0b4d8";

fn request(addr: &str, token: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET /api/v1/adapters HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

#[test]
fn tokens_never_appear_in_trace_logs_and_loose_files_are_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).expect("token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let platform_file = dir.path().join("platform.token");
    std::fs::write(&platform_file, PLATFORM_TOKEN).expect("token");
    std::fs::set_permissions(&platform_file, std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    // An adapter secret: the MLLP listener's TLS key, left world-readable.
    let pki = gateway_testkit::tls::TestPki::generate();
    let server_cert = dir.path().join("mllp-server.pem");
    std::fs::write(&server_cert, &pki.server_cert_pem).expect("cert");
    let server_key = dir.path().join("mllp-server.key");
    std::fs::write(&server_key, &pki.server_key_pem).expect("key");
    std::fs::set_permissions(&server_key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let pki_files = pki.write_to(dir.path());
    let mllp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"mappings_dir = "{mappings}"
[gateway]
tenant = "mso-test"
[admin]
listen = "127.0.0.1:0"
token_file = "{token}"
[store]
path = "{data}"
[logging]
format = "json"
level = "trace"
[forward]
sink = "http"
[forward.http]
url = "http://127.0.0.1:9/events"
bearer_token_file = "{platform}"
[[hl7v2.listeners]]
listen = "127.0.0.1:{mllp_port}"
profile = "epic"
[hl7v2.listeners.tls]
cert = "{server_cert}"
key = "{server_key}"
"#,
            mappings = support::repo_root().join("mappings").display(),
            token = token_file.display(),
            platform = platform_file.display(),
            data = dir.path().join("data").display(),
            server_cert = server_cert.display(),
            server_key = server_key.display(),
        ),
    )
    .expect("config");
    support::seed(&dir.path().join("data"));

    let stdout_path = dir.path().join("stdout.log");
    let stderr_path = dir.path().join("stderr.log");
    let mut child = Command::new(support::bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(
            std::fs::File::create(&stdout_path).expect("file"),
        ))
        .stderr(Stdio::from(
            std::fs::File::create(&stderr_path).expect("file"),
        ))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let found = log.lines().find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            value.get("admin_addr")?.as_str().map(str::to_owned)
        });
        if let Some(addr) = found {
            break addr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no admin address in the log");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let ok = request(&addr, ADMIN_TOKEN);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let refused = request(&addr, "wrong-synthetic-token");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    // A real TLS client sends an order over MLLP: the listener uses its key.
    let sample = support::repo_root().join("sample-messages/hl7v2/epic/orm-o01-v251-eap.hl7");
    let sent = Command::new(support::bin())
        .args([
            "send",
            "mllp",
            &format!("127.0.0.1:{mllp_port}"),
            "--tls",
            "--ca",
        ])
        .arg(&pki_files.ca_cert)
        .arg(&sample)
        .output()
        .expect("send over TLS");
    let ack = String::from_utf8_lossy(&sent.stdout);
    assert!(
        ack.contains("AA"),
        "no AA over TLS: {ack} {}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // Let the forwarder try (and fail) to deliver the seeded event with the
    // platform token at least once.
    std::thread::sleep(Duration::from_millis(1500));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let _ = child.wait();

    let logs = format!(
        "{}{}",
        std::fs::read_to_string(&stdout_path).expect("stdout"),
        std::fs::read_to_string(&stderr_path).expect("stderr")
    );
    assert!(
        logs.lines().count() > 20,
        "trace logging produced too little: {logs}"
    );
    assert!(
        !logs.contains(ADMIN_TOKEN),
        "admin token leaked into the logs"
    );
    assert!(
        !logs.contains(PLATFORM_TOKEN),
        "platform token leaked into the logs"
    );
    assert!(
        !logs.contains("Testpatient"),
        "patient data leaked into the logs"
    );
    // Not one line of the key's base64 body.
    for line in pki
        .server_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
    {
        assert!(
            !logs.contains(line),
            "the MLLP TLS key leaked into the logs"
        );
    }
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("Secret file is readable by other users."))
        .collect();
    for key in ["admin.token_file", "hl7v2.listeners[0].tls.key"] {
        let warning = warnings
            .iter()
            .find(|l| l.contains(&format!("\"{key}\"")))
            .unwrap_or_else(|| panic!("no warning about {key}: {warnings:?}"));
        assert!(warning.contains("0644"), "{warning}");
    }
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        !logs.contains("forward.http.bearer_token_file\""),
        "the 0600 file was flagged"
    );
}

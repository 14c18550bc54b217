//! The admin listener as a network edge, through the real `ehr-gateway`
//! binary over real loopback sockets:
//!
//! * more idle admin connections than its cap, with the daemon's descriptor
//!   limit below their number: the extra connections are closed and an MLLP
//!   message still gets its AA (without the cap the descriptors run out and
//!   the MLLP listener cannot accept);
//! * a request body trickled one byte a second, over ten times the body
//!   timeout, is cut off with 408 before it completes;
//! * `[admin.tls]`: HTTPS (plain HTTP gets no answer), the certificate's
//!   expiry on `/metrics` and the `certificate_expiry` alert firing for a
//!   certificate that expires in ten days;
//! * `check-config` refuses a non-loopback admin address without TLS and
//!   names the key, and accepts it with `allow_plaintext = true`;
//! * a plain MLLP listener beyond loopback is served and warned about once.
//!
//! Waits are for events under generous hang guards; no elapsed time is
//! asserted.

mod support;

use std::io::{Read, Write};
// Some helpers are Unix-only (descriptor limits through `sh`).
#[cfg_attr(not(unix), allow(unused_imports))]
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::Daemon;

const HANG_GUARD: Duration = Duration::from_secs(60);

#[cfg(unix)]
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Reads until the peer closes or resets; what arrived.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("hang guard: the connection was neither answered nor closed")
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("hang guard: the connection was neither answered nor closed")
            }
            Err(_) => return all,
        }
    }
}

#[cfg(unix)]
/// One keep-alive `GET path`; the status line.
fn get_keep_alive(stream: &mut TcpStream, path: &str) -> String {
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).expect("answer");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[cfg(unix)]
/// Sends one framed HL7 message; the ACK's MSA-1.
fn mllp_exchange(addr: SocketAddr, payload: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("MLLP connect");
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    support::mllp_exchange(&mut stream, payload)
}

#[cfg(unix)]
#[test]
fn idle_admin_connections_beyond_the_cap_leave_mllp_answering() {
    const CAP: usize = 16;
    // More than the daemon may have open at all: without the cap these
    // connections alone would exhaust its descriptors.
    const EXTRA: usize = 300;
    const FD_LIMIT: u32 = 256;
    let dir = tempfile::tempdir().expect("tmp");
    let mllp_port = free_port();
    let config = support::write_config(
        dir.path(),
        &format!(
            "[admin.limits]\nmax_connections = {CAP}\n\
             [[hl7v2.listeners]]\nlisten = \"127.0.0.1:{mllp_port}\"\nprofile = \"epic\"\n"
        ),
    );
    let (daemon, _) = Daemon::start_with_fd_limit(&config, FD_LIMIT);
    // The cap's worth of connections, each proven to hold a slot by an
    // answer, then left idle.
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut stream = TcpStream::connect(daemon.admin).expect("connect");
        assert_eq!(get_keep_alive(&mut stream, "/healthz"), "HTTP/1.1 200 OK");
        held.push(stream);
    }
    // Every further connection is closed by the daemon without an answer.
    let mut extras = Vec::new();
    for _ in 0..EXTRA {
        let stream = TcpStream::connect(daemon.admin).expect("connect");
        extras.push(stream);
    }
    for stream in &mut extras {
        let answer = read_to_close(stream);
        assert!(
            answer.is_empty(),
            "served over the cap: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    // With every admin slot taken and the rest turned away, MLLP answers.
    let ack = mllp_exchange(
        SocketAddr::from(([127, 0, 0, 1], mllp_port)),
        &support::epic_order(),
    );
    assert_eq!(ack, "AA");
    // The held connections still work, and a freed slot is served again.
    assert_eq!(get_keep_alive(&mut held[0], "/healthz"), "HTTP/1.1 200 OK");
    drop(held);
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let mut stream = TcpStream::connect(daemon.admin).expect("connect");
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        if read_to_close(&mut stream).starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "freed slots were never reused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(unix)]
#[test]
fn a_plaintext_mllp_listener_beyond_loopback_is_warned_about_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let (exposed, local) = (free_port(), free_port());
    let config = support::write_config(
        dir.path(),
        &format!(
            "[[hl7v2.listeners]]\nlisten = \"0.0.0.0:{exposed}\"\nprofile = \"epic\"\n\
             [[hl7v2.listeners]]\nlisten = \"127.0.0.1:{local}\"\nprofile = \"epic\"\n"
        ),
    );
    let (daemon, lines) = Daemon::start_with_fd_limit(&config, 1024);
    let warnings: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("MLLP listener on a non-loopback address without TLS"))
        .collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(
        warnings[0].contains(&format!(":{exposed}")),
        "{}",
        warnings[0]
    );
    assert!(
        !warnings[0].contains(&format!(":{local}")),
        "{}",
        warnings[0]
    );
    // Plain MLLP beyond loopback is still served.
    let ack = mllp_exchange(
        SocketAddr::from(([127, 0, 0, 1], exposed)),
        &support::epic_order(),
    );
    assert_eq!(ack, "AA");
    drop(daemon);
}

#[test]
fn a_body_trickled_to_the_admin_server_is_cut_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(dir.path(), "[admin.limits]\nbody_timeout_secs = 1\n");
    let daemon = Daemon::start(&config);
    // 15 bytes at one a second: at least 14 s, over ten times the timeout.
    const BODY: &[u8] = b"token=abcdefghi";
    let mut stream = TcpStream::connect(daemon.admin).expect("connect");
    write!(
        stream,
        "POST /login HTTP/1.1\r\nHost: t\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        BODY.len()
    )
    .expect("head");
    let mut writer = stream.try_clone().expect("clone");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let trickle = std::thread::spawn(move || {
        for byte in BODY {
            if writer.write_all(&[*byte]).is_err() {
                return;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer (hang guard or reset): {e}"),
        }
    }
    let sent_when_answered = sent.load(std::sync::atomic::Ordering::SeqCst);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = trickle.join();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        sent_when_answered < BODY.len(),
        "answered only after the whole body"
    );
}

/// A CA and a server certificate for `localhost`/127.0.0.1 valid for `days`
/// more days; writes `ca.pem`, `admin.pem`, `admin.key` into `dir`.
fn write_admin_pki(dir: &Path, days: i64) -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params");
    let end = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * days))
        .expect("date")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    params.not_after = rcgen::date_time_ymd(
        i32::from(end.year()),
        u8::try_from(end.month()).expect("month"),
        u8::try_from(end.day()).expect("day"),
    );
    let cert = params.signed_by(&key, &issuer).expect("cert");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("ca");
    std::fs::write(dir.join("admin.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.join("admin.key"), key.serialize_pem()).expect("key");
    ca_cert.pem()
}

#[tokio::test]
async fn admin_over_tls_reports_its_certificate_expiry_and_alerts_before_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = write_admin_pki(dir.path(), 10);
    let config = support::write_config(
        dir.path(),
        &format!(
            "[admin.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
             [alerts]\ninterval = \"1s\"\n[alerts.certificate_expiry]\nthreshold = \"720h\"\nfor = \"0s\"\n",
            dir.path().join("admin.pem").display(),
            dir.path().join("admin.key").display()
        ),
    );
    let daemon = Daemon::start(&config);
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca")])
        .resolve("localhost", daemon.admin)
        .build()
        .expect("client");
    let base = format!("https://localhost:{}", daemon.admin.port());
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(health.status(), 200);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("ehr_gateway_tls_certificate_expiry_seconds{listener=\"admin\"}"))
        .unwrap_or_else(|| panic!("no expiry gauge in:\n{metrics}"));
    let left: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("value");
    // Valid until the end of a day ten days from now (rcgen dates are days).
    assert!(left > 9.0 * 86_400.0 && left <= 11.0 * 86_400.0, "{left}");
    // The alert fires while the certificate is still valid.
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let alerts =
            support::get_json(&http, format!("{base}/api/v1/alerts"), support::TOKEN).await;
        let firing = alerts["active"].as_array().into_iter().flatten().any(|a| {
            a["alert"] == "certificate_expiry"
                && a["labels"]["listener"] == "admin"
                && a["phase"] == "firing"
        });
        if firing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate_expiry alert: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Plain HTTP on the HTTPS port is not served.
    let mut plain = TcpStream::connect(daemon.admin).expect("connect");
    write!(plain, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    assert!(!read_to_close(&mut plain).starts_with(b"HTTP/1.1 200"));
}

fn check_config(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(support::bin())
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn check_config_refuses_a_non_loopback_admin_address_without_tls() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = support::write_config(dir.path(), "");
    let text = std::fs::read_to_string(&config).expect("read");
    let exposed = text.replace("listen = \"127.0.0.1:0\"", "listen = \"0.0.0.0:8080\"");
    std::fs::write(&config, &exposed).expect("write");
    let (code, output) = check_config(&config);
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("key `admin.listen`"), "{output}");
    assert!(output.contains("admin.allow_plaintext"), "{output}");
    assert!(output.contains("[admin.tls]"), "{output}");
    // Opting in to plaintext (TLS terminated in front) is accepted.
    let opted = exposed.replace("[admin]\n", "[admin]\nallow_plaintext = true\n");
    std::fs::write(&config, &opted).expect("write");
    let (code, output) = check_config(&config);
    assert_eq!(code, Some(0), "{output}");
    // So is TLS.
    write_admin_pki(dir.path(), 90);
    let tls = exposed.replace(
        "[store]\n",
        &format!(
            "[admin.tls]\ncert = \"{}\"\nkey = \"{}\"\n[store]\n",
            dir.path().join("admin.pem").display(),
            dir.path().join("admin.key").display()
        ),
    );
    std::fs::write(&config, &tls).expect("write");
    let (code, output) = check_config(&config);
    assert_eq!(code, Some(0), "{output}");
}

//! The CAQH CORE SOAP server as a network edge under load from a hostile
//! peer, through the real `ehr-gateway` binary over real loopback sockets
//! (the same approach as `edge_listeners.rs` for the admin server):
//!
//! * more idle SOAP connections than `[x12.soap_server] max_connections`,
//!   with the daemon's descriptor limit below their number: the extra
//!   connections are closed and an MLLP message to the same daemon still gets
//!   its AA (without the cap the descriptors run out and MLLP cannot accept);
//!   freed slots serve SOAP again;
//! * a SOAP request body trickled one byte a second over TLS, taking at least
//!   ten times `body_timeout_secs`, is cut off with 408 before it completes;
//! * a TLS connection that sends no request is closed after
//!   `idle_timeout_secs`.
//!
//! Waits are for events under generous hang guards; no elapsed time is
//! asserted. The server certificate and the X12 sample are synthetic.

mod support;

// The cap test and its helpers are Unix-only (descriptor limits through `sh`).
#[cfg_attr(not(unix), allow(unused_imports))]
use std::io::Read;
#[cfg_attr(not(unix), allow(unused_imports))]
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
#[cfg(unix)]
use std::time::Instant;

use gateway_x12::soap::PAYLOAD_278_REQUEST;
use gateway_x12::soap::envelope::{CoreFields, write_request};
use support::{Daemon, repo_root};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const HANG_GUARD: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A daemon config with the SOAP server on `soap_port` (loopback, no
/// partners: anyone local may post) and `limits` (TOML lines of
/// `[x12.soap_server]`), plus `extra` sections; the server certificate PEM.
fn soap_config(dir: &Path, soap_port: u16, limits: &str, extra: &str) -> (String, String) {
    let (cert, key) =
        gateway_x12::soap::tls::self_signed(&["localhost", "127.0.0.1"]).expect("server cert");
    std::fs::write(dir.join("soap-cert.pem"), &cert).expect("cert");
    std::fs::write(dir.join("soap-key.pem"), key).expect("key");
    let config = support::write_config(
        dir,
        &format!(
            r#"[x12]
profile = "x12-278"
[x12.identity]
id = "EHRGATEWAY"
[x12.soap_server]
listen = "127.0.0.1:{soap_port}"
{limits}
[x12.soap_server.tls]
cert = "{cert}"
key = "{key}"
{extra}
"#,
            cert = dir.join("soap-cert.pem").display(),
            key = dir.join("soap-key.pem").display(),
        ),
    );
    (config.display().to_string(), cert)
}

/// A CORE envelope carrying the synthetic 278 request sample.
fn envelope() -> String {
    let x12 = std::fs::read_to_string(repo_root().join("sample-messages/x12/x12-278/request.x12"))
        .expect("sample");
    write_request(&CoreFields {
        payload_type: PAYLOAD_278_REQUEST.into(),
        processing_mode: "RealTime".into(),
        payload_id: "f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into(),
        timestamp: "2026-12-06T10:00:00Z".into(),
        sender_id: "PMSYSTEM".into(),
        receiver_id: "EHRGATEWAY".into(),
        core_rule_version: "2.2.0".into(),
        payload: x12,
        error_code: None,
        error_message: None,
    })
    .expect("envelope")
}

#[cfg(unix)]
/// Posts the sample envelope over HTTPS; the status, or the transport error.
fn post(port: u16, server_cert: &str) -> Result<u16, String> {
    let trust = reqwest::Certificate::from_pem(server_cert.as_bytes()).expect("trust");
    let http = reqwest::Client::builder()
        .tls_certs_only(vec![trust])
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        http.post(format!("https://localhost:{port}/core/realtime"))
            .header("content-type", "application/soap+xml; charset=utf-8")
            .body(envelope())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    })
}

#[cfg(unix)]
/// Waits (hang guard) until the server closes `stream`: true when it did
/// (EOF or reset), false when it sent something or the guard ran out.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[cfg(unix)]
/// Sends one framed HL7 message; the ACK's MSA-1.
fn mllp_exchange(addr: SocketAddr, payload: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).expect("MLLP connect");
    stream.set_read_timeout(Some(HANG_GUARD)).expect("timeout");
    support::mllp_exchange(&mut stream, payload)
}

/// A TLS connection to the SOAP server that trusts `server_cert`.
async fn tls_connect(
    port: u16,
    server_cert: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in gateway_x12::soap::tls::certs_from_pem(server_cert.as_bytes()).expect("pem") {
        roots.add(cert).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(
        HANG_GUARD,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("handshake (hang guard)")
    .expect("handshake")
}

#[cfg(unix)]
#[test]
fn idle_soap_connections_beyond_the_cap_leave_mllp_answering() {
    const CAP: usize = 16;
    // More than the daemon may have open at all: without the cap these
    // connections alone would exhaust its descriptors.
    const EXTRA: usize = 300;
    const FD_LIMIT: u32 = 256;
    let dir = tempfile::tempdir().expect("tmp");
    let (soap_port, mllp_port) = (free_port(), free_port());
    // Handshakes may take long: the silent connections hold their slots.
    let (config, server_cert) = soap_config(
        dir.path(),
        soap_port,
        &format!("max_connections = {CAP}\nhandshake_timeout_ms = 600000"),
        &format!("[[hl7v2.listeners]]\nlisten = \"127.0.0.1:{mllp_port}\"\nprofile = \"epic\"\n"),
    );
    let (daemon, _) = Daemon::start_with_fd_limit(Path::new(&config), FD_LIMIT);
    let soap = SocketAddr::from(([127, 0, 0, 1], soap_port));
    // The cap's worth of connections that never start their handshake.
    let mut held: Vec<TcpStream> = (0..CAP)
        .map(|_| TcpStream::connect(soap).expect("connect"))
        .collect();
    // Every further connection is closed by the daemon.
    let mut extras: Vec<TcpStream> = (0..EXTRA)
        .map(|_| TcpStream::connect(soap).expect("connect"))
        .collect();
    for stream in &mut extras {
        assert!(
            closed_by_server(stream),
            "a connection over the cap was kept"
        );
    }
    // With every SOAP slot taken and the rest turned away, MLLP answers.
    let ack = mllp_exchange(
        SocketAddr::from(([127, 0, 0, 1], mllp_port)),
        &support::epic_order(),
    );
    assert_eq!(ack, "AA");
    // The held connections are still open (their handshake may take long).
    held[0].set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    let still_open = matches!(
        held[0].read(&mut byte),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    assert!(still_open, "a connection under the cap was closed");
    // Freed slots serve SOAP again.
    drop(held);
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match post(soap_port, &server_cert) {
            Ok(200) => break,
            other => {
                assert!(Instant::now() < deadline, "never served again: {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soap_body_trickled_one_byte_a_second_is_cut_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let soap_port = free_port();
    let (config, server_cert) = soap_config(dir.path(), soap_port, "body_timeout_secs = 1", "");
    let daemon = Daemon::start(Path::new(&config));
    let body = envelope().into_bytes();
    // 15 bytes at one a second would take at least 14 s, over ten times the
    // timeout; the whole envelope far longer.
    const TRICKLED: usize = 15;
    assert!(body.len() > TRICKLED);
    let tls = tls_connect(soap_port, &server_cert).await;
    let (mut reader, mut writer) = tokio::io::split(tls);
    writer
        .write_all(
            format!(
                "POST /core/realtime HTTP/1.1\r\nHost: localhost\r\n\
                 Content-Type: application/soap+xml; charset=utf-8\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .expect("head");
    writer.flush().await.expect("flush");
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let trickle = tokio::spawn(async move {
        for byte in body.iter().take(TRICKLED) {
            if writer.write_all(&[*byte]).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(HANG_GUARD, reader.read(&mut buf)).await {
            Err(_) => panic!("hang guard: the body was neither cut off nor answered"),
            Ok(Ok(0)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("no answer (reset): {e}"),
        }
    }
    let sent_when_answered = sent.load(std::sync::atomic::Ordering::SeqCst);
    trickle.abort();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        sent_when_answered < TRICKLED,
        "answered only after {sent_when_answered} trickled bytes"
    );
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_soap_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().expect("tmp");
    let soap_port = free_port();
    let (config, server_cert) = soap_config(
        dir.path(),
        soap_port,
        "idle_timeout_secs = 1\nheader_read_timeout_secs = 1",
        "",
    );
    let daemon = Daemon::start(Path::new(&config));
    // Handshake done, then silence: the server closes the connection.
    let mut tls = tls_connect(soap_port, &server_cert).await;
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(HANG_GUARD, tls.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "an idle connection was kept open (hang guard) or answered: {read:?}"
    );
    // A request that starts its header and never ends it is closed too.
    let mut slow = tls_connect(soap_port, &server_cert).await;
    slow.write_all(b"POST /core/realtime HTTP/1.1\r\nHost: loc")
        .await
        .expect("partial header");
    slow.flush().await.expect("flush");
    let read = tokio::time::timeout(HANG_GUARD, slow.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a header that never ends was kept open (hang guard) or answered: {read:?}"
    );
    drop(daemon);
}

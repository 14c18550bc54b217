//! The listener's limits over real loopback sockets: a trickled body and a
//! trickled header are cut off, idle connections and stalled TLS handshakes
//! are closed, connections beyond the cap are closed while the listener keeps
//! serving, and TLS with client certificates hands the chain to handlers.
//!
//! No elapsed time is asserted: each test waits for an event (an answer, an
//! end of stream) under a generous hang guard and checks what happened first.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use gateway_http_listener::{Limits, Options, PeerCertificates, serve, tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const HANG_GUARD: Duration = Duration::from_secs(60);

fn router() -> Router {
    Router::new()
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/certs",
            get(
                |certs: Option<axum::Extension<PeerCertificates>>| async move {
                    certs.map_or(0, |c| c.0.0.len()).to_string()
                },
            ),
        )
}

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(options: Options) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(serve(listener, router(), options, async move {
            shutdown.cancelled().await
        }));
        Server { addr, stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(HANG_GUARD, self.task)
            .await
            .expect("the listener stops")
            .unwrap()
            .unwrap();
    }
}

fn options(limits: Limits) -> Options {
    Options {
        name: "test",
        tls: None,
        limits,
    }
}

/// Reads until the peer closes (or resets) the connection; returns what came.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

/// One request on a keep-alive connection; returns the status line.
async fn request(stream: &mut TcpStream, path: &str) -> String {
    let text = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    // The small bodies here arrive with the head.
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_body_trickled_one_byte_a_second_is_cut_off_with_408() {
    let limits = Limits {
        body_timeout_secs: 1,
        ..Limits::default()
    };
    let server = Server::start(options(limits)).await;
    // 15 bytes at one a second: at least 14 s, over ten times the timeout.
    const LEN: usize = 15;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {LEN}\r\n\r\n");
    wr.write_all(head.as_bytes()).await.unwrap();
    let (sent_tx, sent_rx) = tokio::sync::watch::channel(0usize);
    let writer = tokio::spawn(async move {
        for i in 0..LEN {
            if wr.write_all(b"x").await.is_err() {
                return;
            }
            let _ = sent_tx.send(i + 1);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(HANG_GUARD, async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server answers or closes");
    let sent = *sent_rx.borrow();
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 408"),
        "expected 408, got {text:?}"
    );
    assert!(
        sent < LEN,
        "the answer came only after the whole body ({sent} of {LEN} bytes)"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_body_in_time_is_served() {
    let server = Server::start(options(Limits::default())).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        .await
        .unwrap();
    let answer = tokio::time::timeout(HANG_GUARD, read_to_close(&mut stream))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("hello"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_header_trickled_one_byte_a_second_is_cut_off() {
    let limits = Limits {
        header_read_timeout_secs: 1,
        ..Limits::default()
    };
    let server = Server::start(options(limits)).await;
    let header = b"GET /peer HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaa\r\n\r\n";
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let (sent_tx, sent_rx) = tokio::sync::watch::channel(0usize);
    let writer = tokio::spawn(async move {
        for (i, byte) in header.iter().enumerate() {
            if wr.write_all(&[*byte]).await.is_err() {
                return;
            }
            let _ = sent_tx.send(i + 1);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(HANG_GUARD, rd.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the connection was not closed");
    let sent = *sent_rx.borrow();
    writer.abort();
    assert!(sent < header.len(), "closed only after the whole header");
    assert!(buf.is_empty(), "no answer to a half header: {buf:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let limits = Limits {
        idle_timeout_secs: 1,
        ..Limits::default()
    };
    let server = Server::start(options(limits)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // Served once, then idle on keep-alive.
    assert_eq!(request(&mut stream, "/peer").await, "HTTP/1.1 200 OK");
    let rest = tokio::time::timeout(HANG_GUARD, read_to_close(&mut stream))
        .await
        .expect("the idle connection is closed");
    assert!(rest.is_empty() || !rest.starts_with(b"HTTP"), "{rest:?}");
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_the_listener_keeps_serving() {
    const CAP: usize = 4;
    let limits = Limits {
        max_connections: CAP,
        ..Limits::default()
    };
    let server = Server::start(options(limits)).await;
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // An answer proves the connection holds a slot; it then idles.
        assert_eq!(request(&mut stream, "/peer").await, "HTTP/1.1 200 OK");
        held.push(stream);
    }
    for _ in 0..3 {
        let mut extra = TcpStream::connect(server.addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /peer HTTP/1.1\r\nHost: t\r\n\r\n")
            .await;
        let answer = tokio::time::timeout(HANG_GUARD, read_to_close(&mut extra))
            .await
            .expect("a connection over the cap is closed");
        assert!(answer.is_empty(), "served over the cap: {answer:?}");
    }
    // The held connections still work.
    assert_eq!(request(&mut held[0], "/peer").await, "HTTP/1.1 200 OK");
    // A freed slot serves a new connection (once the server saw the close).
    drop(held.pop());
    let served = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            let _ = stream
                .write_all(b"GET /peer HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .await;
            let answer = read_to_close(&mut stream).await;
            if answer.starts_with(b"HTTP/1.1 200") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "a freed slot was never reused");
    drop(held);
    server.stop().await;
}

fn write_pki(dir: &std::path::Path) -> (gateway_testkit::tls::TestPki, tls::TlsFiles) {
    let pki = gateway_testkit::tls::TestPki::generate();
    pki.write_to(dir);
    std::fs::write(dir.join("server.pem"), &pki.server_cert_pem).unwrap();
    std::fs::write(dir.join("server.key"), &pki.server_key_pem).unwrap();
    let files = tls::TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca: Some(dir.join("ca.pem")),
    };
    (pki, files)
}

#[tokio::test]
async fn mutual_tls_serves_verified_clients_and_hands_over_their_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (pki, files) = write_pki(dir.path());
    let config = tls::server_config(&files).unwrap();
    let server = Server::start(Options {
        name: "test",
        tls: Some(config),
        limits: Limits::default(),
    })
    .await;
    let ca = reqwest::Certificate::from_pem(pki.ca_cert_pem.as_bytes()).unwrap();
    let identity = reqwest::Identity::from_pem(
        format!("{}{}", pki.client_cert_pem, pki.client_key_pem).as_bytes(),
    )
    .unwrap();
    let url = format!("https://localhost:{}/certs", server.addr.port());
    let client = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .identity(identity)
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    let body = client.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(body, "1");
    // Without a client certificate the handshake fails.
    let anonymous = reqwest::Client::builder()
        .tls_certs_only([ca])
        .resolve("localhost", server.addr)
        .build()
        .unwrap();
    assert!(anonymous.get(&url).send().await.is_err());
    // Plain HTTP on the TLS port gets no answer.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    let _ = plain
        .write_all(b"GET /certs HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let answer = tokio::time::timeout(HANG_GUARD, read_to_close(&mut plain))
        .await
        .unwrap();
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (_pki, mut files) = write_pki(dir.path());
    files.client_ca = None;
    let server = Server::start(Options {
        name: "test",
        tls: Some(tls::server_config(&files).unwrap()),
        limits: Limits {
            tls_handshake_timeout_secs: 1,
            ..Limits::default()
        },
    })
    .await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let got = tokio::time::timeout(HANG_GUARD, read_to_close(&mut stream))
        .await
        .expect("a silent TLS client is disconnected");
    assert!(got.is_empty());
    server.stop().await;
}

#[test]
fn the_certificate_expiry_is_read_from_the_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let (_pki, files) = write_pki(dir.path());
    let not_after = tls::not_after(&files.cert).unwrap();
    // rcgen's default validity ends in 4096.
    assert!(not_after > 4_000_000_000, "{not_after}");
    assert!(tls::not_after(&files.key).is_err());
}

#[test]
fn zero_limits_are_problems() {
    let limits = Limits {
        max_connections: 0,
        body_timeout_secs: 0,
        ..Limits::default()
    };
    let fields: Vec<_> = limits.problems().into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["max_connections", "body_timeout_secs"]);
    assert!(Limits::default().problems().is_empty());
}

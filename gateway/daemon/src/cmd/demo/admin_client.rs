//! The demo as a client of its own admin server: it posts the decision the
//! central platform would post, and checks whether the dashboard is served.
//!
//! Plain HTTP/1.1 over loopback TCP, one request per connection — the admin
//! server is ours and on 127.0.0.1, so no HTTP client crate is pulled into
//! the binary for this.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use gateway_store::{Reader, WriteBackState};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::daemon;

/// The demo's decision: a synthetic approval.
pub const DECISION: &str = r#"{"status":"approved","authorization_number":"DEMO-AUTH-0001","effective":{"start":"2026-12-01","end":"2027-02-28"},"note":"demo decision"}"#;

/// Sends one request; returns the status code.
async fn request(
    admin: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<u16> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(admin)
        .await
        .context("connecting to the admin server")?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .context("the admin server did not answer")??;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .context("no HTTP status in the answer")
}

/// Posts [`DECISION`] for `case_id`; fails unless the answer is 202.
pub async fn post_decision(admin: SocketAddr, token: &str, case_id: &str) -> anyhow::Result<u16> {
    let status = request(
        admin,
        "POST",
        &format!("/api/v1/cases/{case_id}/decision"),
        Some(token),
        DECISION,
    )
    .await?;
    if status != 202 {
        anyhow::bail!("the admin API answered {status}");
    }
    Ok(status)
}

/// True when `GET /` is served (the dashboard answers or redirects to its
/// login page); false on 404 or no answer.
pub async fn dashboard_served(admin: SocketAddr) -> bool {
    request(admin, "GET", "/", None, "")
        .await
        .is_ok_and(|status| status != 404 && status < 500)
}

/// The write-back state of the newest decision of `case_id`, after giving the
/// owning adapter up to 8 s.
pub async fn writeback_state(data_dir: &Path, case_id: &str) -> String {
    let file = daemon::store_file(data_dir);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let mut last = "unknown".to_owned();
    while tokio::time::Instant::now() < deadline {
        let state = Reader::open(&file).ok().and_then(|r| {
            let decision_id = r
                .case_events(case_id)
                .ok()?
                .iter()
                .rev()
                .find_map(|e| e.decision_id)?;
            r.writeback_state(decision_id).ok().flatten()
        });
        if let Some((state, error)) = state {
            last = match (state, error) {
                (WriteBackState::Done, _) => return "done".to_owned(),
                (WriteBackState::Failed, e) => {
                    return format!("failed ({})", e.unwrap_or_default());
                }
                (WriteBackState::Pending, Some(e)) => format!("pending, retrying ({e})"),
                (WriteBackState::Pending, None) => "pending".to_owned(),
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    last
}

//! Browser sessions: `GET /login` (a small form), `POST /login` (the token
//! in the form body) and `POST /logout`.
//!
//! *Why server-side sessions rather than the token in a cookie:* the token is
//! long-lived and shared with scripts; a session id is random (32 bytes from
//! the OS), expires, dies on logout and restart, and is useless anywhere but
//! this process. The cookie `ehr_gateway_session` is `HttpOnly` (no script
//! reads it), `SameSite=Strict` (no other site's page makes the browser send
//! it) and `Secure` (only over HTTPS — browsers treat `http://localhost` as a
//! secure context, so it works on the admin listener's loopback address when
//! reached as `localhost`). The map is keyed by the SHA-256 of the id, so a
//! lookup's timing says nothing about valid ids.
//!
//! Failed logins are audited (`login.failed`, with the client address, never
//! the presented value) and limited per client address
//! ([`LoginLimiter`]): past the limit `/login` answers 429 until the minute
//! has passed.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AdminState;
use super::access::{self, Principal};
use super::audit;
use super::problem::Problem;

/// The session cookie's name.
pub const COOKIE: &str = "ehr_gateway_session";

/// Most sessions kept at once; the one closest to expiry is dropped beyond.
const MAX_SESSIONS: usize = 1024;

/// Fills `buf` from the operating system's random source.
pub fn fill_random(buf: &mut [u8]) -> Result<(), rand::rand_core::OsError> {
    use rand::TryRngCore as _;
    rand::rngs::OsRng.try_fill_bytes(buf)
}

struct Session {
    principal: Principal,
    expires: Instant,
}

/// The live browser sessions of this process.
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Sessions that live `ttl` from login.
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session for `principal`; returns its id (64 hex digits).
    pub fn create(&self, principal: Principal) -> Result<String, Problem> {
        let mut raw = [0u8; 32];
        fill_random(&mut raw).map_err(|_| {
            Problem::unavailable("the OS random source failed; no session was started")
        })?;
        let id = hex::encode(raw);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > now);
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            key(&id),
            Session {
                principal,
                expires: now + self.ttl,
            },
        );
        Ok(id)
    }

    /// The principal of a live session.
    pub fn get(&self, id: &str) -> Option<Principal> {
        let k = key(id);
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&k) {
            Some(s) if s.expires > Instant::now() => Some(s.principal.clone()),
            Some(_) => {
                map.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Ends a session; returns its principal when it was live.
    pub fn remove(&self, id: &str) -> Option<Principal> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&key(id))
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.principal)
    }
}

fn key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The session id from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session.
fn set_cookie(id: &str, ttl: Duration) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age={}",
        ttl.as_secs()
    )
}

/// `Set-Cookie` that removes the session cookie.
fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age=0")
}

/// Failed logins per client address in a sliding minute.
pub struct LoginLimiter {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl LoginLimiter {
    /// At most `per_minute` failures per address per minute.
    pub fn new(per_minute: u32) -> LoginLimiter {
        LoginLimiter {
            per_minute: per_minute.max(1),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` while `ip` is over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = map.get_mut(&ip) else {
            return Ok(());
        };
        while list
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            list.pop_front();
        }
        if list.len() >= self.per_minute as usize {
            let oldest = list.front().copied().unwrap_or(now);
            Err(WINDOW.saturating_sub(now.duration_since(oldest)))
        } else {
            Ok(())
        }
    }

    /// Records a failure; true when it reached the limit.
    pub fn failed(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, l| l.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let list = map.entry(ip).or_default();
        list.push_back(now);
        list.len() >= self.per_minute as usize
    }

    /// Forgets `ip`'s failures after a successful login.
    pub fn succeeded(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&ip);
    }
}

/// The client address, when the server was started with connect info.
fn client_ip(connect: Option<&ConnectInfo<SocketAddr>>) -> IpAddr {
    connect
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// `GET /login`.
pub async fn login_page(query: axum::extract::RawQuery) -> Response {
    let next = query
        .0
        .as_deref()
        .and_then(|q| form_value(q.as_bytes(), "next"))
        .and_then(|n| local_path(&n));
    page(StatusCode::OK, None, next.as_deref())
}

/// `POST /login`: the token from the form body; on success a session cookie
/// and a redirect to `next` (a local path) or `/`.
pub async fn login(
    State(state): State<AdminState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Response {
    let ip = client_ip(connect.as_ref().map(|e| &e.0));
    let next = form_value(&body, "next").and_then(|n| local_path(&n));
    let access = &state.access;
    if let Err(wait) = access.limiter.check(ip) {
        let mut response = page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed logins from this address. Wait a minute and try again."),
            next.as_deref(),
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return response;
    }
    let presented = form_value(&body, "token").unwrap_or_default();
    let Some(principal) = access.authenticate(presented.trim()) else {
        let locked = access.limiter.failed(ip);
        tracing::warn!(client = %ip, locked, "Failed admin login.");
        let detail = if locked {
            "unknown token; further attempts from this address refused for a minute"
        } else {
            "unknown token"
        };
        // record_raw logs when the entry cannot be stored; the login is
        // refused either way.
        let _ = audit::record_raw(
            &state,
            &format!("login:{ip}"),
            audit::LOGIN_FAILED,
            None,
            None,
            Some(detail.to_owned()),
        )
        .await;
        return page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid."),
            next.as_deref(),
        );
    };
    access.limiter.succeeded(ip);
    if let Err(problem) = audit::record_raw(
        &state,
        &principal.name,
        audit::LOGIN,
        None,
        None,
        Some(format!("browser session from {ip}")),
    )
    .await
    {
        return problem.into_response();
    }
    tracing::info!(principal = %principal.name, client = %ip, "Admin login.");
    let id = match access.sessions.create(principal) {
        Ok(id) => id,
        Err(problem) => return problem.into_response(),
    };
    let mut response = redirect(next.as_deref().unwrap_or("/"));
    if let Ok(value) = HeaderValue::from_str(&set_cookie(&id, access.sessions.ttl())) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`: ends the session (the CSRF token in `X-CSRF-Token` or the
/// form field `csrf_token`), clears the cookie, redirects to `/login`.
pub async fn logout(State(state): State<AdminState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(id) = cookie(&headers)
        && let Some(principal) = state.access.sessions.get(id)
    {
        let form_token = form_value(&body, "csrf_token");
        let ok = access::csrf_matches(&headers, id)
            || form_token.is_some_and(|t| access::csrf_value_matches(&t, id));
        if !ok {
            return Problem::forbidden(
                "logging out needs the session's CSRF token (X-CSRF-Token or the csrf_token field)",
            )
            .into_response();
        }
        state.access.sessions.remove(id);
        tracing::info!(principal = %principal.name, "Admin logout.");
    }
    let mut response = redirect("/login");
    if let Ok(value) = HeaderValue::from_str(&clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /api/v1/session` (any role): who the caller is, its roles and the
/// CSRF token of its browser session for changing requests (`null` for a
/// bearer caller, which needs none).
pub async fn whoami(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    match access::authenticate(&state, &headers) {
        Ok(principal) => {
            let csrf = if headers.contains_key(header::AUTHORIZATION) {
                None
            } else {
                access::session_csrf(&state, &headers)
            };
            let mut response = axum::Json(serde_json::json!({
                "name": principal.name,
                "roles": principal.roles,
                "csrf_token": csrf,
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(problem) => problem.into_response(),
    }
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `next` only when it is a path on this server (no `//host`, no scheme).
fn local_path(next: &str) -> Option<String> {
    (next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control))
    .then(|| next.to_owned())
}

/// One field of an `application/x-www-form-urlencoded` body or query.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The login page: one form, inline style, no script, no external asset.
fn page(status: StatusCode, error: Option<&str>, next: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let next = next
        .map(|n| {
            format!(
                "<input type=\"hidden\" name=\"next\" value=\"{}\">",
                escape(n)
            )
        })
        .unwrap_or_default();
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · EHR gateway</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; }}
main {{ max-width: 22rem; margin: 12vh auto; background: #fff; padding: 2rem;
        border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 1.25rem; margin-top: 0; }}
label {{ display: block; margin-bottom: .4rem; }}
input[type=password] {{ width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem; }}
button {{ margin-top: 1rem; padding: .5rem 1.2rem; font-size: 1rem; }}
.error {{ color: #a00; }}
</style>
</head>
<body>
<main>
<h1>EHR gateway admin</h1>
{error}
<form method="post" action="/login">
<label for="token">Access token</label>
<input type="password" id="token" name="token" autocomplete="current-password" required autofocus>
{next}
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"#
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::access::Role;

    fn principal() -> Principal {
        Principal {
            name: "ops".into(),
            roles: vec![Role::Viewer],
        }
    }

    #[test]
    fn sessions_live_until_removed_or_expired() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.create(principal()).expect("id");
        assert_eq!(id.len(), 64);
        assert_eq!(sessions.get(&id), Some(principal()));
        assert_eq!(sessions.get("nope"), None);
        assert_eq!(sessions.remove(&id), Some(principal()));
        assert_eq!(sessions.get(&id), None);

        let short = Sessions::new(Duration::ZERO);
        let id = short.create(principal()).expect("id");
        assert_eq!(short.get(&id), None, "expired at once");
    }

    #[test]
    fn ids_are_distinct() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let a = sessions.create(principal()).expect("a");
        let b = sessions.create(principal()).expect("b");
        assert_ne!(a, b);
    }

    #[test]
    fn cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; ehr_gateway_session=abc ; b=2"),
        );
        assert_eq!(cookie(&headers), Some("abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("x_ehr_gateway_session=abc"),
        );
        assert_eq!(cookie(&headers), None);
    }

    #[test]
    fn limiter_locks_after_the_limit() {
        let limiter = LoginLimiter::new(2);
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert!(limiter.check(ip).is_ok());
        assert!(!limiter.failed(ip));
        assert!(limiter.failed(ip));
        assert!(limiter.check(ip).is_err());
        let other = IpAddr::from([127, 0, 0, 2]);
        assert!(limiter.check(other).is_ok());
        limiter.succeeded(ip);
        assert!(limiter.check(ip).is_ok());
    }

    #[test]
    fn next_must_be_local() {
        assert_eq!(local_path("/messages"), Some("/messages".into()));
        assert_eq!(local_path("//evil.example"), None);
        assert_eq!(local_path("https://evil.example"), None);
        assert_eq!(local_path("/\\evil"), None);
    }
}

//! Who may use the admin server, and as what.
//!
//! *Why a module of its own:* every `/api/v1` handler and the dashboard ask
//! the same question — "is this request allowed to do X?" — and must get the
//! same answer, with the same problem bodies: 401 when the caller is not
//! known (no credentials, a wrong token, an expired session), 403 when the
//! caller is known but lacks the role. [`require`] is that one answer.
//!
//! Credentials are either an `Authorization: Bearer <token>` header (scripts,
//! the central platform, Prometheus) or the `ehr_gateway_session` cookie a
//! browser gets from `POST /login` (see [`super::session`]). Tokens are
//! configured by name with roles (`[[admin.tokens]]`); the single legacy
//! `admin.token_file`/`token_env` is the full-access token named `admin`.
//! Only SHA-256 digests of the tokens are kept in memory, and a presented
//! token is compared with **every** configured digest without an early exit
//! (`subtle`'s constant-time equality), so the answer time depends neither on
//! which token matched nor on how many leading bytes were right. Tokens are at
//! least [`MIN_TOKEN_CHARS`](crate::settings::admin_tokens::MIN_TOKEN_CHARS) characters (`check-config` and start refuse
//! shorter ones, naming the key). Failed bearer attempts are limited per
//! client address like failed logins ([`bearer_limit`]): past it every
//! bearer request from that address is 429 until the minute has passed, so a
//! token cannot be guessed faster through the API than through `/login`.
//!
//! Cookies are sent by the browser on their own, so a cookie-authenticated
//! request that changes something (any method but GET/HEAD/OPTIONS) must also
//! carry `X-CSRF-Token` with [`csrf_token`]'s value for **its session** (an
//! HMAC of the session id, `hmac` crate), which a page of ours can read and
//! another site cannot; a token seen in one session is worthless in another.
//! [`csrf_guard`] enforces that for the whole router, so a handler written
//! later cannot forget it.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::AdminState;
use super::problem::Problem;
use super::session::{self, LoginLimiter, Sessions};
pub use crate::settings::admin_tokens::{LEGACY_TOKEN_NAME, Role, source_key};
use crate::settings::admin_tokens::{digest, metrics_source};
use crate::settings::{self, AdminSettings, Secret};

/// The header a cookie-authenticated changing request must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who made a request, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's configured name (the audit actor).
    pub name: String,
    /// Its roles, as configured.
    pub roles: Vec<Role>,
}

impl Principal {
    /// Whether the principal may act as `role`: operator and phi:read each
    /// imply viewer.
    pub fn has(&self, role: Role) -> bool {
        match role {
            Role::Viewer => !self.roles.is_empty(),
            other => self.roles.contains(&other),
        }
    }
}

/// One configured token: its name, the SHA-256 of its value, its roles.
struct TokenEntry {
    name: String,
    digest: [u8; 32],
    roles: Vec<Role>,
}

/// The configured tokens plus the browser sessions and the login limiter.
pub struct Access {
    tokens: Vec<TokenEntry>,
    metrics: Option<[u8; 32]>,
    /// Browser sessions started at `POST /login`.
    pub sessions: Sessions,
    /// Failed-login rate limit per client address.
    pub limiter: LoginLimiter,
    /// Failed bearer attempts per client address (the same limit, counted
    /// apart, so a locked login form does not lock out a script's token).
    pub bearer_limiter: LoginLimiter,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field(
                "tokens",
                &self.tokens.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .field("metrics_token", &self.metrics.is_some())
            .finish()
    }
}

/// One token to configure: name, value, roles.
#[derive(Debug, Clone)]
pub struct NamedToken {
    /// Audit name.
    pub name: String,
    /// The token.
    pub secret: Secret,
    /// Its roles.
    pub roles: Vec<Role>,
}

impl Access {
    /// Access with `tokens`, an optional `/metrics` token, sessions living
    /// `session_ttl`, and at most `login_failures_per_minute` failed logins
    /// per client address per minute.
    pub fn new(
        tokens: Vec<NamedToken>,
        metrics: Option<Secret>,
        session_ttl: Duration,
        login_failures_per_minute: u32,
    ) -> Access {
        Access {
            tokens: tokens
                .into_iter()
                .map(|t| TokenEntry {
                    name: t.name,
                    digest: digest(t.secret.expose()),
                    roles: t.roles,
                })
                .collect(),
            metrics: metrics.map(|m| digest(m.expose())),
            sessions: Sessions::new(session_ttl),
            limiter: LoginLimiter::new(login_failures_per_minute),
            bearer_limiter: LoginLimiter::new(login_failures_per_minute),
        }
    }

    /// Reads every configured token. `admin_token` (the demo's generated
    /// token) replaces the legacy `admin.token_file`/`token_env`. The errors
    /// name keys and files, never values.
    pub fn load(
        admin: &AdminSettings,
        admin_token: Option<Secret>,
    ) -> Result<Access, Vec<settings::Problem>> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| {
            problems.push(settings::Problem {
                origin: "admin".to_owned(),
                key: Some(key),
                message,
            });
        };
        let mut tokens = Vec::new();
        let legacy = match admin_token {
            Some(token) => Some(token),
            None => admin.token_source().read().unwrap_or_else(|message| {
                problem(source_key("admin.", &admin.token_source()), message);
                None
            }),
        };
        if let Some(secret) = legacy {
            tokens.push(NamedToken {
                name: LEGACY_TOKEN_NAME.to_owned(),
                secret,
                roles: vec![Role::Viewer, Role::Operator, Role::PhiRead],
            });
        }
        for (i, token) in admin.tokens.iter().enumerate() {
            match token.token_source().read() {
                Ok(Some(secret)) => tokens.push(NamedToken {
                    name: token.name.clone(),
                    secret,
                    roles: token.roles.clone(),
                }),
                Ok(None) => problem(
                    format!("admin.tokens[{i}].token_file"),
                    "set token_file or token_env".to_owned(),
                ),
                Err(message) => problem(
                    source_key(&format!("admin.tokens[{i}]."), &token.token_source()),
                    message,
                ),
            }
        }
        let metrics = metrics_source(admin).read().unwrap_or_else(|message| {
            problem(
                source_key("admin.metrics_", &metrics_source(admin)),
                message,
            );
            None
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Access::new(
            tokens,
            metrics,
            Duration::from_secs(admin.session_ttl_secs),
            admin.login_failures_per_minute,
        ))
    }

    /// No token configured: the API refuses everyone.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The names of the configured tokens (for the start-up log).
    pub fn names(&self) -> Vec<&str> {
        self.tokens.iter().map(|t| t.name.as_str()).collect()
    }

    /// The principal whose token `presented` is, comparing with every
    /// configured token in constant time.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let presented = digest(presented);
        let mut found = None;
        for token in &self.tokens {
            if bool::from(presented.ct_eq(&token.digest)) && found.is_none() {
                found = Some(Principal {
                    name: token.name.clone(),
                    roles: token.roles.clone(),
                });
            }
        }
        found
    }

    /// Whether `/metrics` needs a token.
    pub fn metrics_protected(&self) -> bool {
        self.metrics.is_some()
    }

    /// Whether `presented` is the metrics token.
    fn is_metrics_token(&self, presented: &str) -> bool {
        self.metrics
            .as_ref()
            .is_some_and(|m| bool::from(digest(presented).ct_eq(m)))
    }
}

/// Authenticates the request (bearer token first, else the session cookie)
/// and checks it may act as `need`: 401 problem when the caller is unknown,
/// 403 when it lacks the role.
pub(crate) async fn require(
    state: &AdminState,
    headers: &HeaderMap,
    need: Role,
) -> Result<Principal, Problem> {
    let principal = authenticate(state, headers)?;
    if principal.has(need) {
        Ok(principal)
    } else {
        Err(Problem::forbidden(format!(
            "`{}` lacks the `{}` role this needs",
            principal.name,
            need.as_str()
        ))
        .with_extra(serde_json::json!({ "required_role": need.as_str() })))
    }
}

/// Who is asking, without a role check.
pub(crate) fn authenticate(state: &AdminState, headers: &HeaderMap) -> Result<Principal, Problem> {
    let access = &state.access;
    if access.is_empty() {
        return Err(Problem::unauthorized(
            "the admin API is disabled: no admin token is configured",
        ));
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let presented = bearer(value).ok_or_else(|| {
            Problem::unauthorized("the Authorization header is not a bearer token")
        })?;
        return access
            .authenticate(presented)
            .ok_or_else(|| Problem::unauthorized("invalid bearer token"));
    }
    if let Some(id) = session::cookie(headers) {
        return access.sessions.get(id).ok_or_else(|| {
            Problem::unauthorized("the session has expired or is unknown: log in again at /login")
        });
    }
    Err(Problem::unauthorized("missing bearer token"))
}

fn bearer(value: &axum::http::HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value a request authenticated by the session cookie `session_id`
/// must send in `X-CSRF-Token` to change something: an HMAC-SHA256, under a
/// key drawn from the OS at process start, of the session id. Pages of ours
/// embed it; another site can neither read nor compute it, and it dies with
/// its session (a token from another session, even of the same principal,
/// is refused).
pub fn csrf_token(session_id: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(csrf_key())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(b"ehr-gateway csrf v2\0");
    mac.update(session_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The CSRF token of the request's live session, if it has one (bearer
/// callers need none).
pub(crate) fn session_csrf(state: &AdminState, headers: &HeaderMap) -> Option<String> {
    let id = session::cookie(headers)?;
    state.access.sessions.get(id).map(|_| csrf_token(id))
}

/// The per-process CSRF key (32 bytes from the OS).
fn csrf_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        if session::fill_random(&mut key).is_err() {
            // Practically unreachable on the supported systems; a key from
            // time and pid is guessable in principle, so say so loudly.
            tracing::error!("The OS random source failed; CSRF tokens are weak until restart.");
            key = digest(&format!(
                "{:?}{}",
                std::time::SystemTime::now(),
                std::process::id()
            ));
        }
        key
    })
}

/// Router-wide CSRF check: a request authenticated only by the session
/// cookie, with a method other than GET/HEAD/OPTIONS, must carry
/// `X-CSRF-Token` = [`csrf_token`] of its session, else 403. `/login` has no
/// session yet and `/logout` checks the token itself (a plain form cannot set
/// headers). Requests without a valid session pass on to their handler,
/// which answers 401.
pub(crate) async fn csrf_guard(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let path = request.uri().path();
    if safe
        || path == "/login"
        || path == "/logout"
        || request.headers().contains_key(header::AUTHORIZATION)
    {
        return next.run(request).await;
    }
    if let Some(id) = session::cookie(request.headers())
        && state.access.sessions.get(id).is_some()
        && !csrf_matches(request.headers(), id)
    {
        return Problem::forbidden(format!(
            "a cookie-authenticated {} needs the X-CSRF-Token header of this session",
            request.method()
        ))
        .into_response();
    }
    next.run(request).await
}

/// Whether the request's `X-CSRF-Token` is session `session_id`'s.
pub(crate) fn csrf_matches(headers: &HeaderMap, session_id: &str) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| csrf_value_matches(v, session_id))
}

/// Whether `presented` is session `session_id`'s CSRF token (constant time).
pub(crate) fn csrf_value_matches(presented: &str, session_id: &str) -> bool {
    bool::from(
        presented
            .trim()
            .as_bytes()
            .ct_eq(csrf_token(session_id).as_bytes()),
    )
}

/// Router-wide limit on bearer guessing: a request with an `Authorization`
/// header from an address over the failed-authentication limit (the one
/// `/login` uses, `admin.login_failures_per_minute`, counted apart) is 429
/// with `Retry-After`; a presented token that is neither an admin nor the
/// metrics token counts as a failure. The handler still authenticates and
/// answers 401 itself.
pub(crate) async fn bearer_limit(
    State(state): State<AdminState>,
    connect: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return next.run(request).await;
    };
    let ip = connect
        .map(|c| c.0.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let access = &state.access;
    if let Err(wait) = access.bearer_limiter.check(ip) {
        return Problem::too_many(
            "too many failed authentications from this address; wait and retry",
            wait.as_secs(),
        )
        .into_response();
    }
    let known = bearer(value)
        .is_some_and(|t| access.authenticate(t).is_some() || access.is_metrics_token(t));
    if !known {
        let locked = access.bearer_limiter.failed(ip);
        if locked {
            tracing::warn!(client = %ip, "Failed bearer attempts over the limit; refusing this address for a minute.");
        }
    }
    next.run(request).await
}

/// `/metrics` guard: open unless a metrics token is configured; then the
/// metrics token or any admin token (bearer) is needed.
pub(crate) async fn metrics_guard(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let access = &state.access;
    if !access.metrics_protected() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(bearer);
    match presented {
        Some(token) if access.is_metrics_token(token) || access.authenticate(token).is_some() => {
            next.run(request).await
        }
        Some(_) => Problem::unauthorized("invalid metrics token").into_response(),
        None => Problem::unauthorized("/metrics needs the metrics bearer token").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::new(
            vec![
                NamedToken {
                    name: "ops-desk".to_owned(),
                    secret: Secret::new("tok-ops"),
                    roles: vec![Role::Viewer, Role::Operator],
                },
                NamedToken {
                    name: "auditor".to_owned(),
                    secret: Secret::new("tok-phi"),
                    roles: vec![Role::PhiRead],
                },
            ],
            None,
            Duration::from_secs(3600),
            5,
        )
    }

    #[test]
    fn tokens_resolve_to_their_principal() {
        let a = access();
        assert_eq!(
            a.authenticate("tok-ops").map(|p| p.name),
            Some("ops-desk".into())
        );
        assert_eq!(
            a.authenticate("tok-phi").map(|p| p.name),
            Some("auditor".into())
        );
        assert!(a.authenticate("tok-op").is_none());
        assert!(a.authenticate("").is_none());
    }

    #[test]
    fn roles_imply_viewer_only() {
        let ops = access().authenticate("tok-ops").expect("ops");
        assert!(ops.has(Role::Viewer) && ops.has(Role::Operator) && !ops.has(Role::PhiRead));
        let phi = access().authenticate("tok-phi").expect("phi");
        assert!(phi.has(Role::Viewer) && phi.has(Role::PhiRead) && !phi.has(Role::Operator));
    }

    #[test]
    fn csrf_tokens_differ_per_session_and_verify() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let p = Principal {
            name: "a".into(),
            roles: vec![Role::Viewer],
        };
        let one = sessions.create(p.clone()).expect("one");
        let two = sessions.create(p).expect("two");
        assert_ne!(
            csrf_token(&one),
            csrf_token(&two),
            "same principal, two sessions"
        );
        assert!(csrf_value_matches(&csrf_token(&one), &one));
        assert!(!csrf_value_matches(&csrf_token(&two), &one));
        assert_eq!(csrf_token(&one).len(), 64);
    }

    fn settings_with(dir: &std::path::Path, tokens: &str) -> crate::settings::Loaded {
        let path = dir.join("gateway.toml");
        std::fs::write(
            &path,
            format!("[gateway]\ntenant = \"t\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{tokens}"),
        )
        .expect("write");
        crate::settings::load_with_env(&path, Vec::<(String, String)>::new())
    }

    #[test]
    fn token_config_problems_name_their_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = dir.path().join("a.token");
        let b = dir.path().join("b.token");
        std::fs::write(&a, "same-token\n").expect("a");
        std::fs::write(&b, "same-token").expect("b");
        let loaded = settings_with(
            dir.path(),
            &format!(
                "[[admin.tokens]]\nname = \"ops\"\ntoken_file = \"{a}\"\nroles = [\"viewer\"]\n\
                 [[admin.tokens]]\nname = \"ops\"\ntoken_file = \"{b}\"\nroles = []\n\
                 [[admin.tokens]]\nname = \"bad name\"\nroles = [\"viewer\"]\n",
                a = a.display(),
                b = b.display()
            ),
        );
        let rendered: Vec<String> = loaded.problems.iter().map(ToString::to_string).collect();
        for expected in [
            "admin.tokens[1].name`: `ops` is already used",
            "admin.tokens[1].roles`: list at least one",
            "admin.tokens[1].token_file`: the same token as admin.tokens[0].token_file",
            "admin.tokens[2].name`: must be 1 to 64",
            "admin.tokens[2].token_file`: set token_file or token_env",
        ] {
            assert!(
                rendered.iter().any(|p| p.contains(expected)),
                "{expected} not in {rendered:?}"
            );
        }
        assert!(
            !rendered.iter().any(|p| p.contains("same-token")),
            "a token value in a problem: {rendered:?}"
        );
    }

    #[test]
    fn an_unknown_role_is_a_config_problem() {
        let dir = tempfile::tempdir().expect("tmp");
        let loaded = settings_with(
            dir.path(),
            "[[admin.tokens]]\nname = \"x\"\ntoken_env = \"X\"\nroles = [\"root\"]\n",
        );
        assert!(
            loaded.problems.iter().any(|p| p
                .key
                .as_deref()
                .is_some_and(|k| k.starts_with("admin.tokens[0].roles"))),
            "{:?}",
            loaded.problems
        );
    }

    #[test]
    fn legacy_token_is_full_access_admin() {
        let admin = AdminSettings::default();
        let access = Access::load(&admin, Some(Secret::new("legacy"))).expect("load");
        let p = access.authenticate("legacy").expect("principal");
        assert_eq!(p.name, LEGACY_TOKEN_NAME);
        assert!(p.has(Role::Operator) && p.has(Role::PhiRead) && p.has(Role::Viewer));
        let none = Access::load(&admin, None).expect("load");
        assert!(none.is_empty());
    }

    #[test]
    fn bearer_parsing() {
        let v = |s: &str| axum::http::HeaderValue::from_str(s).expect("value");
        assert_eq!(bearer(&v("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&v("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(&v("Basic abc")), None);
        assert_eq!(bearer(&v("Bearer ")), None);
    }
}

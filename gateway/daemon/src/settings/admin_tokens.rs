//! The admin server's access settings as configuration: the roles a token
//! may hold, the shortest token accepted, and the `check-config` checks of
//! `[admin]`'s tokens.
//!
//! *Why here and not in `admin::access`*: settings name roles and check
//! tokens while loading, and `admin::access` reads the settings; keeping the
//! configuration half under `settings` makes the dependency one-way
//! (`admin::access` → `settings`), where it used to be a cycle.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AdminSettings, Secret, SecretSource};

/// The name the legacy single `admin.token_file`/`token_env` token gets.
pub const LEGACY_TOKEN_NAME: &str = "admin";

/// The shortest token accepted (32 characters, e.g. 16 random bytes in hex).
pub const MIN_TOKEN_CHARS: usize = 32;

/// The key naming where a secret comes from: `{prefix}token_env` when it is
/// an environment variable, `{prefix}token_file` otherwise.
pub fn source_key(prefix: &str, source: &SecretSource) -> String {
    if source.env.is_some() && source.file.is_none() {
        format!("{prefix}token_env")
    } else {
        format!("{prefix}token_file")
    }
}

/// A problem when `secret` is shorter than [`MIN_TOKEN_CHARS`] (no value shown).
fn too_short(secret: &Secret) -> Option<String> {
    (secret.expose().chars().count() < MIN_TOKEN_CHARS).then(|| {
        format!(
            "the token is shorter than {MIN_TOKEN_CHARS} characters; use a random one \
             (e.g. `openssl rand -hex 32`)"
        )
    })
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// Read operational data: messages (metadata), cases without patient
    /// fields, dead letters, adapters, stats, alerts.
    #[serde(rename = "viewer")]
    Viewer,
    /// Act: replay messages and dead letters, post decisions, read the audit
    /// log. Implies viewer.
    #[serde(rename = "operator")]
    Operator,
    /// Read PHI: raw message bytes, the parsed message, a case's patient
    /// fields. Every such read is audited. Implies viewer.
    #[serde(rename = "phi:read")]
    PhiRead,
}

impl Role {
    /// The role's name in config and problem bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::PhiRead => "phi:read",
        }
    }
}

pub(crate) fn metrics_source(admin: &AdminSettings) -> SecretSource {
    SecretSource {
        file: admin.metrics_token_file.clone(),
        env: admin.metrics_token_env.clone(),
    }
}

/// Semantic checks of the `[admin]` access keys for `check-config`: each
/// named token's name, roles and source; no two tokens alike; the metrics
/// token readable; sane session and login limits. Returns `(key, message)`.
pub fn check_settings(admin: &AdminSettings) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut seen_names: Vec<&str> = Vec::new();
    let mut seen_digests: Vec<(String, [u8; 32])> = Vec::new();
    if let Ok(Some(secret)) = admin.token_source().read() {
        let key = source_key("admin.", &admin.token_source());
        if let Some(message) = too_short(&secret) {
            problems.push((key.clone(), message));
        }
        seen_names.push(LEGACY_TOKEN_NAME);
        seen_digests.push((key, digest(secret.expose())));
    }
    for (i, token) in admin.tokens.iter().enumerate() {
        let key = format!("admin.tokens[{i}]");
        let name_ok = !token.name.is_empty()
            && token.name.len() <= 64
            && token
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            problems.push((
                format!("{key}.name"),
                "must be 1 to 64 of A-Z a-z 0-9 . _ -".to_owned(),
            ));
        } else if seen_names.contains(&token.name.as_str()) {
            problems.push((
                format!("{key}.name"),
                format!(
                    "`{}` is already used{}",
                    token.name,
                    if token.name == LEGACY_TOKEN_NAME {
                        " by admin.token_file/token_env"
                    } else {
                        ""
                    }
                ),
            ));
        } else {
            seen_names.push(&token.name);
        }
        if token.roles.is_empty() {
            problems.push((
                format!("{key}.roles"),
                "list at least one of viewer, operator, phi:read".to_owned(),
            ));
        }
        let source_key = source_key(&format!("{key}."), &token.token_source());
        match token.token_source().read() {
            Ok(Some(secret)) => {
                if let Some(message) = too_short(&secret) {
                    problems.push((source_key.clone(), message));
                }
                let d = digest(secret.expose());
                if let Some((other, _)) = seen_digests.iter().find(|(_, o)| *o == d) {
                    problems.push((
                        source_key,
                        format!("the same token as {other}: every token must be distinct"),
                    ));
                } else {
                    seen_digests.push((source_key, d));
                }
            }
            Ok(None) => problems.push((
                format!("{key}.token_file"),
                "set token_file or token_env".to_owned(),
            )),
            Err(message) => problems.push((source_key, message)),
        }
    }
    match metrics_source(admin).read() {
        Ok(Some(secret)) => {
            if let Some(message) = too_short(&secret) {
                problems.push((
                    source_key("admin.metrics_", &metrics_source(admin)),
                    message,
                ));
            }
        }
        Ok(None) => {}
        Err(message) => {
            problems.push((
                source_key("admin.metrics_", &metrics_source(admin)),
                message,
            ));
        }
    }
    if admin.session_ttl_secs < 60 {
        problems.push((
            "admin.session_ttl_secs".to_owned(),
            "must be at least 60".to_owned(),
        ));
    }
    if admin.login_failures_per_minute == 0 {
        problems.push((
            "admin.login_failures_per_minute".to_owned(),
            "must be at least 1".to_owned(),
        ));
    }
    problems
}

/// SHA-256 of a token.
pub(crate) fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

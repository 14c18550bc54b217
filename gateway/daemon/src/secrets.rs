//! Start-up check of secret files' permissions.
//!
//! *Why*: secrets (admin and metrics tokens, the alert webhook token, the
//! platform bearer token and client TLS key, the adapters' TLS keys, FHIR
//! private keys and client secrets, X12 partner client identities) are never
//! meant to be in the config itself, only the file or variable that holds
//! them (see `settings`), but a file readable by other local users leaks them
//! all the same. At
//! start-up every configured secret file is checked and a warning names the
//! key, the file and its mode — never the content — when group or others can
//! read it. Secrets an adapter section still accepts inline (a FHIR
//! `client_secret`, a FHIR subscription `token`) get a warning naming the key,
//! and the config file itself is then checked like a secret file. On Windows,
//! ACLs decide and no mode check is made.

use std::path::{Path, PathBuf};

use crate::settings::Settings;

/// The configured secret files, each with the key that names it.
pub fn secret_files(settings: &Settings) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    let mut add = |key: String, path: &Option<PathBuf>| {
        if let Some(path) = path {
            files.push((key, path.clone()));
        }
    };
    let admin = &settings.admin;
    add("admin.token_file".to_owned(), &admin.token_file);
    add(
        "admin.metrics_token_file".to_owned(),
        &admin.metrics_token_file,
    );
    add(
        "admin.tls.key".to_owned(),
        &admin.tls.as_ref().map(|tls| tls.key.clone()),
    );
    for (i, token) in admin.tokens.iter().enumerate() {
        add(format!("admin.tokens[{i}].token_file"), &token.token_file);
    }
    if let Some(webhook) = &settings.alerts.webhook {
        add(
            "alerts.webhook.bearer_token_file".to_owned(),
            &webhook.bearer_token_file,
        );
    }
    if let Some(http) = &settings.forward.http {
        add(
            "forward.http.bearer_token_file".to_owned(),
            &http.bearer_token_file,
        );
        add("forward.http.client_key".to_owned(), &http.client_key);
    }
    if let Some(nats) = &settings.forward.nats {
        add(
            "forward.nats.credentials_file".to_owned(),
            &nats.credentials_file,
        );
        add(
            "forward.nats.nkey_seed_file".to_owned(),
            &nats.nkey_seed_file,
        );
        add("forward.nats.password_file".to_owned(), &nats.password_file);
        add("forward.nats.client_key".to_owned(), &nats.client_key);
    }
    // Each adapter declares its own (`Adapter::secret_files`).
    for adapter in crate::adapters::all() {
        if adapter.configured(settings) {
            files.extend(adapter.secret_files(settings));
        }
    }
    files
}

/// Keys whose secret is written in the config file itself (accepted by an
/// adapter section for compatibility, but the file then holds a secret).
pub fn inline_secrets(settings: &Settings) -> Vec<&'static str> {
    crate::adapters::all()
        .into_iter()
        .filter(|a| a.configured(settings))
        .flat_map(|a| a.inline_secrets(settings))
        .collect()
}

/// Why `path` is too open, or `None` when only its owner can read it (or it
/// cannot be inspected: a missing file is reported by the config checks).
#[cfg(unix)]
pub fn loose_permissions(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "mode {mode:04o} lets group or others read it; run `chmod 600 {}` \
             and make the service user its owner",
            path.display()
        )
    })
}

/// Windows: ACLs, not modes, decide; they are not inspected here (the
/// caller says so once, see [`warn_loose_permissions`]).
#[cfg(not(unix))]
pub fn loose_permissions(_path: &Path) -> Option<String> {
    None
}

/// Logs one warning per secret file that group or others can read, and per
/// secret written inline in `config_file` (which is then checked too).
pub fn warn_loose_permissions(settings: &Settings, config_file: &Path) {
    let mut files = secret_files(settings);
    let inline = inline_secrets(settings);
    for key in &inline {
        tracing::warn!(
            key,
            file = %config_file.display(),
            "A secret is written in the config file; move it to a file or an environment variable."
        );
    }
    if !inline.is_empty() {
        files.push((
            "config file (holds inline secrets)".to_owned(),
            config_file.to_owned(),
        ));
    }
    #[cfg(not(unix))]
    if !files.is_empty() {
        tracing::info!(
            files = files.len(),
            "Secret files are not checked on Windows: who may read them is decided by \
             their ACLs, which this check cannot verify. Make sure only the service \
             account and administrators can read each configured secret file."
        );
    }
    for (key, path) in files {
        if let Some(reason) = loose_permissions(&path) {
            tracing::warn!(
                key,
                file = %path.display(),
                %reason,
                "Secret file is readable by other users."
            );
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn group_or_world_readable_files_are_flagged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "synthetic-token").expect("write");
        for (mode, flagged) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true)] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
            assert_eq!(loose_permissions(&file).is_some(), flagged, "mode {mode:o}");
        }
        assert!(loose_permissions(&dir.path().join("missing")).is_none());
    }
}

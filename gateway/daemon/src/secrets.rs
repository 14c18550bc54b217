//! Start-up check of secret files' permissions.
//!
//! *Why*: secrets (admin token, platform bearer token, client TLS key) are
//! never in the config itself, only the file or variable that holds them
//! (see `settings`), but a file readable by other local users leaks them all
//! the same. At start-up every configured secret file is checked and a
//! warning names the key and file (never the content) when its mode lets
//! group or others read it. On Windows, ACLs decide and no check is made.

use std::path::{Path, PathBuf};

use crate::settings::Settings;

/// The configured secret files, each with the key that names it.
pub fn secret_files(settings: &Settings) -> Vec<(&'static str, PathBuf)> {
    let mut files = Vec::new();
    if let Some(path) = &settings.admin.token_file {
        files.push(("admin.token_file", path.clone()));
    }
    if let Some(http) = &settings.forward.http {
        if let Some(path) = &http.bearer_token_file {
            files.push(("forward.http.bearer_token_file", path.clone()));
        }
        if let Some(path) = &http.client_key {
            files.push(("forward.http.client_key", path.clone()));
        }
    }
    files
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

/// Windows: ACLs, not modes, decide; nothing is checked.
#[cfg(not(unix))]
pub fn loose_permissions(_path: &Path) -> Option<String> {
    None
}

/// Logs one warning per secret file that group or others can read.
pub fn warn_loose_permissions(settings: &Settings) {
    for (key, path) in secret_files(settings) {
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

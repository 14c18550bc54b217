//! Loads the mapping profiles under `mappings_dir` for the pipeline.
//!
//! Every folder with a `profile.toml` is loaded with the path syntaxes of the
//! formats wired into this build. A profile an adapter section names must
//! load, or the daemon refuses to start (a config problem, exit 2); other
//! broken profiles are logged and skipped so one half-written profile does not
//! take down a site.

use std::collections::BTreeSet;
use std::path::Path;

use gateway_mapping::Profile;

use crate::settings::Problem;

/// The profiles that loaded, and the problems with required ones.
pub struct Loaded {
    /// Loaded profiles.
    pub profiles: Vec<Profile>,
    /// Problems with profiles the configuration requires.
    pub problems: Vec<Problem>,
}

/// Loads every profile in `dir`; `required` names must be among them.
pub fn load(dir: &Path, required: &BTreeSet<String>) -> Loaded {
    let mut profiles = Vec::new();
    let mut problems = Vec::new();
    let origin = dir.display().to_string();
    let mut folders: Vec<_> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("profile.toml").is_file())
            .collect(),
        Err(e) => {
            if !required.is_empty() {
                problems.push(Problem {
                    origin: origin.clone(),
                    key: Some("mappings_dir".to_owned()),
                    message: format!("cannot read the mappings directory: {e}"),
                });
            }
            return Loaded { profiles, problems };
        }
    };
    folders.sort();
    for folder in folders {
        let folder_name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match Profile::load(&folder, &crate::formats::Syntaxes) {
            Ok(profile) => {
                tracing::info!(
                    profile = profile.name(),
                    format = profile.format().as_str(),
                    "Mapping profile loaded."
                );
                profiles.push(profile);
            }
            Err(error) if required.contains(&folder_name) => problems.push(Problem {
                origin: folder.display().to_string(),
                key: None,
                message: format!(
                    "required mapping profile `{folder_name}` does not load:\n{error}"
                ),
            }),
            Err(error) => tracing::warn!(
                profile = %folder_name,
                errors = error.error_count(),
                "Mapping profile skipped: it does not load (run `ehr-gateway lint --profile` on it)."
            ),
        }
    }
    for name in required {
        if !profiles.iter().any(|p| p.name() == name)
            && !problems
                .iter()
                .any(|p| p.message.contains(&format!("`{name}`")))
        {
            problems.push(Problem {
                origin: origin.clone(),
                key: Some("mappings_dir".to_owned()),
                message: format!("mapping profile `{name}` is referenced but not found"),
            });
        }
    }
    Loaded { profiles, problems }
}

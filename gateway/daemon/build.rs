//! Build script: embeds the git revision for `ehr-gateway --version`.
//!
//! `EHR_GATEWAY_GIT_REV` in the environment wins (release pipelines and
//! container builds without `.git`); otherwise `git rev-parse --short=12 HEAD`
//! falling back to `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=EHR_GATEWAY_GIT_REV");
    let rev = match std::env::var("EHR_GATEWAY_GIT_REV") {
        Ok(rev) if !rev.trim().is_empty() => rev.trim().to_owned(),
        _ => match git(&["rev-parse", "--short=12", "HEAD"]).filter(|r| !r.is_empty()) {
            Some(rev) => rev,
            None => "unknown".to_owned(),
        },
    };
    // Rebuild when HEAD moves (a commit or a checkout).
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={git_dir}/HEAD");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={git_dir}/{branch}");
        }
    }
    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(k, _)| {
            k.strip_prefix("CARGO_FEATURE_")
                .map(|f| f.to_lowercase().replace('_', "-"))
        })
        .collect();
    features.sort();
    let features = if features.is_empty() {
        "none".to_owned()
    } else {
        features.join(",")
    };
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=EHR_GATEWAY_GIT_REV={rev}");
    println!("cargo:rustc-env=EHR_GATEWAY_FEATURES={features}");
    println!("cargo:rustc-env=EHR_GATEWAY_PROFILE={profile}");
    let panic = std::env::var("CARGO_CFG_PANIC").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=EHR_GATEWAY_PANIC={panic}");
}

//! The X12 file drop made visible: after the sample interchanges, the demo
//! drops one malformed interchange (from the conformance suite) so the
//! `error/` folder and a rejecting 999 appear too, then lists what the file
//! drop left in `archive/` and `error/` — each interchange with the 999
//! written beside it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gateway_x12::config::FileDropConfig;

/// The malformed interchange (SE01 segment count wrong → 999 with IK5*R).
const MALFORMED: &str = "conformance/suites/x12-278/malformed-se01/input.x12";
/// Its name in the inbound folder.
const MALFORMED_NAME: &str = "demo-malformed-se01.x12";

/// Drops the malformed interchange into the inbound folder (write, then
/// rename) and waits up to 10 s for the file drop to move it to `error/`.
pub async fn drop_malformed(config: &FileDropConfig, repo_root: &Path) -> Result<(), String> {
    let bytes = std::fs::read(repo_root.join(MALFORMED))
        .map_err(|e| format!("reading {MALFORMED}: {e}"))?;
    let tmp = config.inbound.join(format!(".{MALFORMED_NAME}"));
    std::fs::write(&tmp, bytes).map_err(|e| format!("x12 demo drop: {e}"))?;
    std::fs::rename(&tmp, config.inbound.join(MALFORMED_NAME))
        .map_err(|e| format!("x12 demo drop: {e}"))?;
    let landed = |dir: PathBuf| dir.join(MALFORMED_NAME).is_file();
    let until = Instant::now() + Duration::from_secs(10);
    while !landed(config.error_dir()) && !landed(config.archive_dir()) {
        if Instant::now() > until {
            return Err("the file drop did not pick up the malformed interchange in 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// One folder's content: interchanges, 999s and TA1s.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FolderCount {
    /// `*.x12` files.
    pub interchanges: usize,
    /// `*.999` files.
    pub functional_acks: usize,
    /// `*.ta1` files.
    pub ta1: usize,
}

/// Counts `dir`'s files by kind (all zero when it does not exist).
pub fn count(dir: &Path) -> FolderCount {
    let mut c = FolderCount::default();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.path().extension().and_then(|e| e.to_str()) {
            Some("x12") => c.interchanges += 1,
            Some("999") => c.functional_acks += 1,
            Some("ta1") => c.ta1 += 1,
            _ => {}
        }
    }
    c
}

/// Lines describing the inbound, archive and error folders.
pub fn describe(config: &FileDropConfig) -> Vec<String> {
    let mut lines = Vec::new();
    for (label, dir) in [
        ("archive/", config.archive_dir()),
        ("error/  ", config.error_dir()),
    ] {
        let c = count(&dir);
        lines.push(format!(
            "{label} {} interchange(s), {} 999(s), {} TA1(s) beside them: {}",
            c.interchanges,
            c.functional_acks,
            c.ta1,
            dir.display()
        ));
    }
    let rejected = config.error_dir().join(format!("{MALFORMED_NAME}.999"));
    if rejected.is_file() {
        let verdict = std::fs::read_to_string(&rejected)
            .ok()
            .and_then(|text| {
                text.split(['~', '\n'])
                    .find(|s| s.trim_start().starts_with("IK5"))
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_else(|| "see the file".to_owned());
        lines.push(format!(
            "the malformed interchange's 999 ({verdict}): {}",
            rejected.display()
        ));
    }
    lines
}

//! The file-drop transport: an inbound folder, polled.
//!
//! Practice-management systems and clearinghouses commonly exchange X12 through
//! a shared folder, often an SMB/NFS mount. **Polling** (default every second)
//! is used instead of inotify/FSEvents because change notifications are not
//! delivered for writes made by other hosts on network file systems, and a
//! poll also naturally implements the "settle" rule: a file is taken only when
//! its size and modification time have not changed for `settle_ms`, so a file
//! still being copied in is never read half-written. Names starting with `.`
//! or ending in `.tmp`/`.part` are ignored (the usual write-then-rename
//! convention of senders).
//!
//! For each file: read → [`crate::intake::receive`] (one pipeline submission
//! per transaction set, committed before anything else happens) → the 999 (and
//! TA1) are written next to where the file goes, as `<name>.999` / `<name>.ta1`
//! (written to a temporary name and renamed, so readers never see a partial
//! acknowledgment) → the file is **renamed** into `archive/` when accepted or
//! `error/` when rejected (raw bytes kept unchanged for replay). If the pipeline
//! cannot commit, the file stays in the inbound folder and is retried on the
//! next poll, with no acknowledgment written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway_core::adapter::IntakePipeline;

use crate::ack::AckIdentity;
use crate::config::FileDropConfig;
use crate::control::ControlNumberAllocator;
use crate::intake::receive;
use crate::write::Stamp;

/// Why the file drop could not run.
#[derive(Debug, thiserror::Error)]
pub enum FileDropError {
    /// A folder could not be created or read.
    #[error("file drop folder {path}: {source}")]
    Folder {
        /// The folder.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The 999 and TA1 bytes to write beside a file.
type AckFiles = (Option<Vec<u8>>, Option<Vec<u8>>);

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Accepted; moved to the archive (path given), acknowledgment beside it.
    Archived(PathBuf),
    /// Rejected; moved to the error folder (path given), acknowledgment beside it.
    Rejected(PathBuf),
    /// The pipeline could not commit; left in place for the next poll.
    Retry(PathBuf),
}

/// The file-drop worker.
pub struct FileDrop {
    config: FileDropConfig,
    profile: String,
    pipeline: Arc<dyn IntakePipeline>,
    identity: AckIdentity,
    numbers: Arc<dyn ControlNumberAllocator>,
    seen: HashMap<PathBuf, (u64, SystemTime, SystemTime)>,
}

impl FileDrop {
    /// A worker for `config`; creates the archive and error folders.
    pub fn new(
        config: FileDropConfig,
        profile: String,
        pipeline: Arc<dyn IntakePipeline>,
        identity: AckIdentity,
        numbers: Arc<dyn ControlNumberAllocator>,
    ) -> Result<Self, FileDropError> {
        for dir in [
            config.inbound.clone(),
            config.archive_dir(),
            config.error_dir(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| FileDropError::Folder {
                path: dir.display().to_string(),
                source,
            })?;
        }
        Ok(FileDrop {
            config,
            profile,
            pipeline,
            identity,
            numbers,
            seen: HashMap::new(),
        })
    }

    /// Polls until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let interval = Duration::from_millis(self.config.poll_interval_ms.max(10));
        loop {
            if let Err(e) = self.poll().await {
                tracing::warn!(error = %e, "x12 file drop poll failed");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One poll: processes every settled file, in name order.
    pub async fn poll(&mut self) -> Result<Vec<FileOutcome>, FileDropError> {
        let inbound = self.config.inbound.clone();
        let entries = std::fs::read_dir(&inbound).map_err(|source| FileDropError::Folder {
            path: inbound.display().to_string(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && !ignored(p))
            .collect();
        files.sort();
        let now = SystemTime::now();
        let settle = Duration::from_millis(self.config.settle_ms);
        let mut out = Vec::new();
        let mut still_here = HashMap::new();
        for path in files {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let modified = meta.modified().unwrap_or(now);
            let key = (meta.len(), modified);
            // Settled: unchanged since we first saw it, for at least `settle`.
            let first_seen = match self.seen.get(&path) {
                Some((len, m, since)) if (*len, *m) == key => *since,
                _ => now,
            };
            still_here.insert(path.clone(), (key.0, key.1, first_seen));
            let age = now.duration_since(modified).unwrap_or_default();
            let stable_for = now.duration_since(first_seen).unwrap_or_default();
            if age < settle && stable_for < settle {
                continue;
            }
            out.push(self.process(&path, meta.len()).await);
            still_here.remove(&path);
        }
        self.seen = still_here;
        Ok(out)
    }

    async fn process(&self, path: &Path, len: u64) -> FileOutcome {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "unnamed".into());
        let raw = if len > self.config.max_bytes {
            tracing::warn!(file = %name, len, "x12 file exceeds max_bytes; moved to error");
            // The pipeline never sees it, so it is counted here (once).
            metrics::counter!("ehr_gateway_messages_total", "adapter" => "x12",
                "profile" => self.profile.clone(), "outcome" => "rejected")
            .increment(1);
            return self.move_to(
                path,
                &self.config.error_dir(),
                &name,
                None,
                FileOutcome::Rejected,
            );
        } else {
            match std::fs::read(path) {
                Ok(raw) => raw,
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "x12 file unreadable; retried next poll");
                    return FileOutcome::Retry(path.to_owned());
                }
            }
        };
        let received_at = jiff::Timestamp::now().to_string();
        let started = std::time::Instant::now();
        let result = receive(
            self.pipeline.as_ref(),
            &self.profile,
            &raw,
            &received_at,
            Some(format!("file:{name}")),
            &self.identity,
            self.numbers.as_ref(),
            &Stamp::now(),
        )
        .await;
        match result {
            Ok(result) => {
                let accepted = result.accepted();
                tracing::info!(file = %name, verdict = %result.ack.verdict, messages = result.outcomes.len(), accepted, "x12 file processed");
                let ack = (result.ack.functional, result.ack.ta1);
                let moved = if accepted {
                    self.move_to(
                        path,
                        &self.config.archive_dir(),
                        &name,
                        Some(ack),
                        FileOutcome::Archived,
                    )
                } else {
                    self.move_to(
                        path,
                        &self.config.error_dir(),
                        &name,
                        Some(ack),
                        FileOutcome::Rejected,
                    )
                };
                // From read to the 999/TA1 file written next to the moved file.
                metrics::histogram!("ehr_gateway_ack_latency_seconds", "adapter" => "x12")
                    .record(started.elapsed().as_secs_f64());
                moved
            }
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "x12 intake not committed; retried next poll");
                FileOutcome::Retry(path.to_owned())
            }
        }
    }

    fn move_to(
        &self,
        path: &Path,
        dir: &Path,
        name: &str,
        ack: Option<AckFiles>,
        outcome: fn(PathBuf) -> FileOutcome,
    ) -> FileOutcome {
        let target = free_name(dir, name);
        let target_name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_owned());
        if let Some((functional, ta1)) = ack {
            for (bytes, ext) in [(functional, "999"), (ta1, "ta1")] {
                if let Some(bytes) = bytes
                    && let Err(e) = write_atomic(&dir.join(format!("{target_name}.{ext}")), &bytes)
                {
                    tracing::warn!(file = %name, error = %e, "cannot write x12 acknowledgment");
                }
            }
        }
        match std::fs::rename(path, &target) {
            Ok(()) => outcome(target),
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "cannot move x12 file");
                FileOutcome::Retry(path.to_owned())
            }
        }
    }
}

fn ignored(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part")
}

/// `dir/name`, or `dir/name.N` when that exists.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

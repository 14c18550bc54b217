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
//!
//! **Hostile folder contents.** The folder is often writable by other hosts,
//! so nothing in it is trusted: a symbolic link (to a file or anywhere else)
//! is never followed and never read — it is moved, as a link, into `error/`;
//! other non-regular entries (FIFOs, sockets, devices) likewise, since opening
//! a FIFO would block the poll. A regular file is opened, checked to be the
//! very file that was inspected (device and inode, so a file swapped for a
//! link in between is refused), and read through a `max_bytes + 1` bound, so a
//! file growing after its size was taken cannot make the read unbounded. File
//! names may carry PHI (senders name files after patients) and are chosen by
//! the sender, so logs show only a hash of the name ([`crate::log_safe`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway_core::adapter::IntakePipeline;

use crate::ack::AckIdentity;
use crate::config::FileDropConfig;
use crate::control::ControlNumberAllocator;
use crate::intake::receive;
use crate::log_safe;
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
        let mut files = Vec::new();
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            // `file_type` does not follow symbolic links.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() || ignored(&path) {
                continue;
            }
            if kind.is_file() {
                files.push(path);
            } else {
                out.push(self.refuse_special(&path, kind.is_symlink()));
            }
        }
        files.sort();
        let now = SystemTime::now();
        let settle = Duration::from_millis(self.config.settle_ms);
        let mut still_here = HashMap::new();
        for path in files {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if !meta.file_type().is_file() {
                // Replaced by a link or something else since it was listed.
                out.push(self.refuse_special(&path, meta.file_type().is_symlink()));
                continue;
            }
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
            out.push(self.process(&path, &meta).await);
            still_here.remove(&path);
        }
        self.seen = still_here;
        Ok(out)
    }

    /// A symbolic link or other non-regular entry: moved into `error/` as it
    /// is (a link stays a link; its target is never opened), no 999.
    fn refuse_special(&self, path: &Path, link: bool) -> FileOutcome {
        let name = file_name(path);
        tracing::warn!(
            file = %log_safe::hashed(&name),
            kind = if link { "symbolic link" } else { "not a regular file" },
            "x12 inbound entry is not a regular file; moved to error unread"
        );
        self.count_rejected();
        self.move_to(
            path,
            &self.config.error_dir(),
            &name,
            None,
            FileOutcome::Rejected,
        )
    }

    /// A file the pipeline never sees is counted here (once).
    fn count_rejected(&self) {
        metrics::counter!(gateway_core::metrics::MESSAGES_TOTAL, "adapter" => gateway_core::adapter::name::X12,
            "profile" => self.profile.clone(), "outcome" => "rejected")
        .increment(1);
    }

    async fn process(&self, path: &Path, inspected: &std::fs::Metadata) -> FileOutcome {
        let name = file_name(path);
        let file_ref = log_safe::hashed(&name);
        let len = inspected.len();
        let raw = if len > self.config.max_bytes {
            tracing::warn!(file = %file_ref, len, "x12 file exceeds max_bytes; moved to error");
            self.count_rejected();
            return self.move_to(
                path,
                &self.config.error_dir(),
                &name,
                None,
                FileOutcome::Rejected,
            );
        } else {
            match read_bounded(path, inspected, self.config.max_bytes) {
                Ok(Read::Bytes(raw)) => raw,
                Ok(Read::Swapped) => return self.refuse_special(path, true),
                Ok(Read::TooLarge) => {
                    tracing::warn!(file = %file_ref, "x12 file grew beyond max_bytes; moved to error");
                    self.count_rejected();
                    return self.move_to(
                        path,
                        &self.config.error_dir(),
                        &name,
                        None,
                        FileOutcome::Rejected,
                    );
                }
                Err(e) => {
                    tracing::warn!(file = %file_ref, error = %e.kind(), "x12 file unreadable; retried next poll");
                    return FileOutcome::Retry(path.to_owned());
                }
            }
        };
        let received_at = jiff::Timestamp::now();
        let started = std::time::Instant::now();
        let result = receive(
            self.pipeline.as_ref(),
            &self.profile,
            &raw,
            received_at,
            Some(format!("file:{name}")),
            &self.identity,
            self.numbers.as_ref(),
            &Stamp::now(),
        )
        .await;
        match result {
            Ok(result) => {
                let accepted = result.accepted();
                tracing::info!(file = %file_ref, verdict = %result.ack.verdict, messages = result.outcomes.len(), accepted, "x12 file processed");
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
                metrics::histogram!(gateway_core::metrics::ACK_LATENCY_SECONDS, "adapter" => gateway_core::adapter::name::X12)
                    .record(started.elapsed().as_secs_f64());
                moved
            }
            Err(e) => {
                tracing::warn!(file = %file_ref, error = %e, "x12 intake not committed; retried next poll");
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
                    tracing::warn!(file = %log_safe::hashed(name), error = %e.kind(), "cannot write x12 acknowledgment");
                }
            }
        }
        match std::fs::rename(path, &target) {
            Ok(()) => outcome(target),
            Err(e) => {
                tracing::warn!(file = %log_safe::hashed(name), error = %e.kind(), "cannot move x12 file");
                FileOutcome::Retry(path.to_owned())
            }
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unnamed".into())
}

/// What a bounded read found.
enum Read {
    /// The whole file, at most `max_bytes`.
    Bytes(Vec<u8>),
    /// More than `max_bytes` (it grew after it was inspected).
    TooLarge,
    /// The opened file is not the one inspected (swapped for a link).
    Swapped,
}

/// Opens `path`, makes sure it is the regular file `inspected` described,
/// and reads at most `max_bytes + 1` bytes of it.
fn read_bounded(
    path: &Path,
    inspected: &std::fs::Metadata,
    max_bytes: u64,
) -> std::io::Result<Read> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let opened = file.metadata()?;
    if !opened.file_type().is_file() || !same_file(inspected, &opened) {
        return Ok(Read::Swapped);
    }
    let mut raw = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut raw)?;
    if raw.len() as u64 > max_bytes {
        return Ok(Read::TooLarge);
    }
    Ok(Read::Bytes(raw))
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Off Unix the listing's `symlink_metadata` check stands alone.
#[cfg(not(unix))]
fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    true
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
    // `symlink_metadata`: a dangling link is taken, not overwritten.
    let taken = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let first = dir.join(name);
    if !taken(&first) {
        return first;
    }
    (1..)
        .map(|n| dir.join(format!("{name}.{n}")))
        .find(|p| !taken(p))
        .unwrap_or(first)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

//! Online backup and atomic restore of the store file.
//!
//! *Why here*: the store owns its file format, so it also owns how a copy of it
//! is taken and put back. The daemon's `ehr-gateway store backup|restore`
//! commands are thin wrappers.
//!
//! * [`backup`] uses SQLite's online backup API in **one step** (all pages
//!   copied under one read transaction), so the copy is a consistent snapshot
//!   even while the daemon keeps committing (WAL readers never block the
//!   writer). The copy is checked with `PRAGMA integrity_check`, then a
//!   SHA-256 sidecar `FILE.sha256` is written in `sha256sum` format
//!   (`<hex>  <file name>`), so operators can also check it with coreutils.
//! * [`verify`] recomputes the checksum, compares it with the sidecar, checks
//!   the file's integrity and that its schema is not newer than this binary.
//! * [`restore`] verifies, copies the backup to a temporary file beside the
//!   store, fsyncs it, moves the current store (and its `-wal`/`-shm`) aside
//!   as `*.pre-restore-<unix ms>` (a way back, and no stale WAL can be applied
//!   to the restored file), then renames the copy into place and fsyncs the
//!   directory. Refusing to restore under a running daemon is the caller's
//!   job (the daemon holds an instance lock on its data directory).

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::StepResult;
use rusqlite::{Connection, OpenFlags};
use sha2::{Digest as _, Sha256};

use crate::error::{Result, StoreError};
use crate::schema;

/// What a backup or verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The backup file.
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// File size in bytes.
    pub bytes: u64,
    /// The schema version recorded in the file.
    pub schema_version: i64,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The verified backup that was restored.
    pub backup: BackupInfo,
    /// Where the previous store was moved (absent when there was none).
    pub previous: Option<PathBuf>,
}

/// The checksum sidecar of a backup file: `FILE.sha256`.
pub fn sidecar_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::Io {
        context,
        message: e.to_string(),
    }
}

/// Copies the store file `store` to `to` with the online backup API (safe
/// while the daemon runs), checks the copy and writes the checksum sidecar.
/// Refuses to overwrite an existing `to`.
pub fn backup(store: &Path, to: &Path) -> Result<BackupInfo> {
    if !store.exists() {
        return Err(StoreError::Missing(store.display().to_string()));
    }
    if to.exists() {
        return Err(StoreError::InvalidState(format!(
            "{} already exists; choose a new backup file name",
            to.display()
        )));
    }
    let source = Connection::open_with_flags(
        store,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::sql("opening the store for backup"))?;
    source
        .busy_timeout(Duration::from_secs(10))
        .map_err(StoreError::sql("setting the busy timeout"))?;
    schema::check_not_newer(&source)?;
    // Write to a temporary name first: a half-written backup never carries
    // the final name.
    let partial = with_suffix(to, ".partial");
    let _ = std::fs::remove_file(&partial);
    let result = (|| {
        // A backup holds all the PHI of the store: owner-only from the start.
        crate::private_files::create_private_file(&partial)
            .map_err(io("creating the backup file"))?;
        let mut dest =
            Connection::open(&partial).map_err(StoreError::sql("creating the backup file"))?;
        {
            let copy = rusqlite::backup::Backup::new(&source, &mut dest)
                .map_err(StoreError::sql("starting the backup"))?;
            // -1: every page in one step, i.e. one consistent snapshot
            // (`run_to_completion` insists on a positive page count).
            let mut waits = 0;
            loop {
                match copy
                    .step(-1)
                    .map_err(StoreError::sql("copying the store"))?
                {
                    StepResult::Done => break,
                    StepResult::More => {}
                    StepResult::Busy | StepResult::Locked => {
                        waits += 1;
                        if waits > 200 {
                            return Err(StoreError::InvalidState(
                                "the store stayed locked for 10 s; backup abandoned".to_owned(),
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    _ => {}
                }
            }
        }
        // The copy inherits WAL mode from the header; a backup is a single
        // self-contained file, so switch it to a rollback journal.
        dest.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
            .map_err(StoreError::sql("making the backup self-contained"))?;
        integrity(&dest)?;
        dest.close()
            .map_err(|(_, e)| StoreError::sql("closing the backup")(e))?;
        File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io("syncing the backup"))?;
        std::fs::rename(&partial, to).map_err(io("naming the backup"))?;
        sync_parent(to)?;
        let (sha256, bytes) = sha256_file(to)?;
        write_sidecar(to, &sha256)?;
        Ok(BackupInfo {
            path: to.to_path_buf(),
            sha256,
            bytes,
            schema_version: file_version(to)?,
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Checks a backup: its sidecar checksum, SQLite integrity, and that its
/// schema is not newer than this binary.
pub fn verify(backup: &Path) -> Result<BackupInfo> {
    let sidecar = sidecar_path(backup);
    let text = std::fs::read_to_string(&sidecar).map_err(|e| StoreError::Io {
        context: "reading the checksum file",
        message: format!("{}: {e}", sidecar.display()),
    })?;
    let expected = text
        .split_whitespace()
        .next()
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            StoreError::InvalidState(format!(
                "{} does not start with a SHA-256 hex digest",
                sidecar.display()
            ))
        })?
        .to_ascii_lowercase();
    let (sha256, bytes) = sha256_file(backup)?;
    if sha256 != expected {
        return Err(StoreError::InvalidState(format!(
            "checksum mismatch for {}: the file hashes to {sha256}, {} says {expected}",
            backup.display(),
            sidecar.display()
        )));
    }
    let conn = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(StoreError::sql("opening the backup"))?;
    let schema_version = schema::check_not_newer(&conn)?;
    integrity(&conn)?;
    Ok(BackupInfo {
        path: backup.to_path_buf(),
        sha256,
        bytes,
        schema_version,
    })
}

/// Verifies `from` and atomically installs it as the store file `store`.
/// The caller must make sure no daemon has the store open.
pub fn restore(from: &Path, store: &Path) -> Result<RestoreReport> {
    let info = verify(from)?;
    if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private_files::create_private_dir(dir).map_err(io("creating the data directory"))?;
    }
    let staged = with_suffix(store, ".restoring");
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(from, &staged).map_err(io("copying the backup into the data directory"))?;
    File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing the restored copy"))?;
    // The copy must still be the verified bytes.
    let (copied, _) = sha256_file(&staged)?;
    if copied != info.sha256 {
        let _ = std::fs::remove_file(&staged);
        return Err(StoreError::InvalidState(
            "the copied backup does not match its checksum (disk error?)".to_owned(),
        ));
    }
    let mut previous = None;
    if store.exists() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let aside = with_suffix(store, &format!(".pre-restore-{stamp}"));
        for extra in ["-wal", "-shm"] {
            let from = with_suffix(store, extra);
            if from.exists() {
                std::fs::rename(&from, with_suffix(&aside, extra))
                    .map_err(io("moving the previous store aside"))?;
            }
        }
        std::fs::rename(store, &aside).map_err(io("moving the previous store aside"))?;
        previous = Some(aside);
    } else {
        for extra in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(store, extra));
        }
    }
    std::fs::rename(&staged, store).map_err(io("installing the restored store"))?;
    sync_parent(store)?;
    Ok(RestoreReport {
        backup: info,
        previous,
    })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn integrity(conn: &Connection) -> Result<()> {
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(StoreError::sql("checking integrity"))?;
    if verdict != "ok" {
        return Err(StoreError::InvalidState(format!(
            "integrity check failed: {verdict}"
        )));
    }
    Ok(())
}

fn file_version(path: &Path) -> Result<i64> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(StoreError::sql("opening the backup"))?;
    schema::version(&conn)
}

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(|e| StoreError::Io {
        context: "reading a backup",
        message: format!("{}: {e}", path.display()),
    })?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io("reading a backup"))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buffer[..n]);
    }
    let digest = hasher.finalize();
    let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, total))
}

fn write_sidecar(backup: &Path, sha256: &str) -> Result<()> {
    let name = backup
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sidecar = sidecar_path(backup);
    let mut file = File::create(&sidecar).map_err(io("writing the checksum file"))?;
    writeln!(file, "{sha256}  {name}").map_err(io("writing the checksum file"))?;
    file.sync_all().map_err(io("syncing the checksum file"))?;
    Ok(())
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the directory"))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> Result<()> {
    // Windows has no directory fsync; NTFS journals the rename itself.
    Ok(())
}

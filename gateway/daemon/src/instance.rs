//! The instance lock: one running daemon per data directory.
//!
//! *Why*: `store restore` must never swap the store file under a running
//! daemon, and two daemons on one data directory would fight over listeners
//! and the outbox. The daemon holds an advisory lock (`flock` on Unix,
//! `LockFileEx` on Windows, via `std::fs::File::try_lock`) on
//! `DATA_DIR/gateway.lock` for its whole life; the OS releases it when the
//! process ends, even after kill -9, so a stale lock file never blocks a start.
//! Read-only tools (`messages list`, `store backup`) do not take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// The lock file inside a data directory.
pub const LOCK_FILE: &str = "gateway.lock";

/// Held while the daemon runs; dropping it releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

fn open(data_dir: &Path) -> std::io::Result<(File, PathBuf)> {
    let path = data_dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    Ok((file, path))
}

/// Takes the lock, failing when another process holds it.
pub fn acquire(data_dir: &Path) -> anyhow::Result<InstanceLock> {
    let (file, path) = open(data_dir)
        .map_err(|e| anyhow::anyhow!("cannot open the lock file in {}: {e}", data_dir.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(InstanceLock { _file: file }),
        Err(TryLockError::WouldBlock) => anyhow::bail!(
            "another ehr-gateway daemon is running with the data directory {} (it holds {})",
            data_dir.display(),
            path.display()
        ),
        Err(TryLockError::Error(e)) => {
            anyhow::bail!("cannot lock {}: {e}", path.display())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = acquire(dir.path()).expect("first");
        let error = acquire(dir.path()).expect_err("second");
        assert!(error.to_string().contains("another ehr-gateway daemon"));
        drop(first);
        acquire(dir.path()).expect("free again");
    }
}

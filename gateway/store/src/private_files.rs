//! Owner-only permissions for the files that hold PHI: the data directory
//! (0700), the store file with its WAL and shared-memory files, and backups
//! (0600), whatever the process's umask.
//!
//! *Why*: under the common umask 022 a new directory is 0755 and a new file
//! 0644, so every local user could read the store. Files are created 0600
//! before SQLite opens them (SQLite gives the `-wal` and `-shm` files the
//! main file's mode), and an existing store file is tightened when opened.
//! A directory is given 0700 only when this code creates it: an existing
//! directory may be shared on purpose (or be `/tmp`), so it is reported by
//! the caller instead of changed. On Windows, ACLs decide; nothing is done.

use std::io;
use std::path::{Path, PathBuf};

/// The SQLite side files of `store` (`-wal`, `-shm`, `-journal`).
fn side_files(store: &Path) -> [PathBuf; 3] {
    ["-wal", "-shm", "-journal"].map(|suffix| {
        let mut name = store.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Creates `dir` and its missing parents; the ones created get mode 0700.
/// Returns whether `dir` was created.
pub fn create_private_dir(dir: &Path) -> io::Result<bool> {
    if dir.is_dir() {
        return Ok(false);
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    // The umask may only remove bits; set the mode exactly all the same.
    set_mode(dir, 0o700)?;
    Ok(true)
}

/// Whether group or others may access `path` (always false off Unix).
pub fn is_shared(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Creates `path` empty with mode 0600 when it does not exist yet, so the
/// file never exists with a wider mode.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => set_mode(path, 0o600),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Sets mode 0600 on the store file `store` and on those of its SQLite side
/// files that exist.
pub fn restrict_store_files(store: &Path) -> io::Result<()> {
    if store.exists() {
        set_mode(store, 0o600)?;
    }
    for side in side_files(store) {
        // A side file may vanish between any check and the chmod (SQLite
        // deletes the WAL when another connection to the file closes last):
        // a missing one has nothing to restrict.
        match set_mode(&side, 0o600) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}

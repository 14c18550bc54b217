//! A size-rotated log file, the log destination of the Windows service.
//!
//! *Why*: a Windows service has no console, so stderr goes nowhere; the
//! daemon runs for years, so an ever-growing file would fill the disk. The
//! file is `ehr-gateway.log`; when it reaches `max_bytes` it becomes
//! `ehr-gateway.log.1` (the older ones shift to `.2` … `.keep`, the oldest is
//! dropped) and a new file starts. Rotation happens between events (the
//! tracing formatter writes one event per `make_writer`), never inside a line.
//! The file is closed before it is renamed, which Windows requires.
//!
//! The service manager itself records start, stop and failures (with our
//! exit code) in the Windows System event log; this file holds the daemon's
//! own JSON or text lines — the same lines as journald on Linux.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Rotate at 10 MiB by default.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Keep five rotated files by default (60 MiB at most in all).
pub const DEFAULT_KEEP: usize = 5;

struct State {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    max_bytes: u64,
    keep: usize,
}

/// The log file; clone it freely (one shared file).
#[derive(Clone)]
pub struct RotatingFile {
    state: Arc<Mutex<State>>,
}

impl RotatingFile {
    /// Opens (appending) `path`, creating its directory.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = append(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            state: Arc::new(Mutex::new(State {
                path: path.to_owned(),
                file: Some(file),
                written,
                max_bytes: max_bytes.max(1),
                keep: keep.max(1),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `ehr-gateway.log.N`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl State {
    fn rotate(&mut self) -> io::Result<()> {
        // Close first: Windows cannot rename an open file.
        self.file = None;
        let _ = std::fs::remove_file(numbered(&self.path, self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = Some(append(&self.path)?);
        self.written = 0;
        Ok(())
    }

    fn write_event(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written >= self.max_bytes || self.file.is_none() {
            // A failed rotation keeps logging into whatever file is open (or
            // reopens the current one) rather than losing lines.
            if self.rotate().is_err() && self.file.is_none() {
                self.file = Some(append(&self.path)?);
            }
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))?;
        let n = file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
}

/// One event's writer, holding the file for the whole event.
pub struct EventWriter<'a> {
    state: MutexGuard<'a, State>,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.state.write_event(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.state.file.as_mut() {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter { state: self.lock() }
    }
}

/// Appends one line to `path` outside of tracing (start-up failures before
/// logging is set up); errors are ignored — there is nowhere else to report
/// them, and the service manager still records the exit code.
pub fn append_line(path: &Path, line: &str) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut file) = append(path) {
        let _ = writeln!(file, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter as _;

    #[test]
    fn rotates_between_events_and_keeps_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ehr-gateway.log");
        let log = RotatingFile::open(&path, 100, 2).expect("open");
        let line = format!("{}\n", "x".repeat(39)); // 40 bytes
        for _ in 0..20 {
            log.make_writer().write_all(line.as_bytes()).expect("write");
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["ehr-gateway.log", "ehr-gateway.log.1", "ehr-gateway.log.2"]
        );
        for name in &names {
            let text = std::fs::read_to_string(dir.path().join(name)).expect("read");
            // Whole lines only; at most one event past the limit.
            assert!(text.len() <= 120, "{name}: {} bytes", text.len());
            assert!(text.lines().all(|l| l.len() == 39), "{name}: {text:?}");
        }
        // 3 lines (120 bytes) per file: 20 lines are 6 full files and 2
        // lines; the current file (2) and two rotated ones (3 + 3) survive.
        let total: usize = names
            .iter()
            .map(|n| {
                std::fs::read_to_string(dir.path().join(n))
                    .expect("read")
                    .lines()
                    .count()
            })
            .sum();
        assert_eq!(total, 8);
    }

    #[test]
    fn reopening_appends_and_counts_the_existing_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/ehr-gateway.log");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "a".repeat(94) + "\n").expect("seed"); // 95 bytes
        let log = RotatingFile::open(&path, 100, 3).expect("open");
        log.make_writer().write_all(b"second\n").expect("write");
        assert!(!numbered(&path, 1).exists());
        log.make_writer().write_all(b"third\n").expect("write");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "third\n",
            "the file over the limit was rotated before the next event"
        );
        assert!(
            std::fs::read_to_string(numbered(&path, 1))
                .expect("rotated")
                .ends_with("second\n")
        );
        append_line(&path, "error: synthetic failure");
        assert!(
            std::fs::read_to_string(&path)
                .expect("read")
                .ends_with("error: synthetic failure\n")
        );
    }
}

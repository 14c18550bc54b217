//! What the legacy-EHR test application needs on this machine.
//!
//! The application (`adapters/desktop/tests/legacy_ehr_app.py`, a python3-tk
//! program standing in for a legacy EHR) serves the desktop tests, the
//! benchmarks and the demo. Each of them checks the same thing before starting
//! it, so the check lives here once. Not X11-specific: compiled everywhere.

use std::process::{Command, Stdio};

/// True when `python3` can import tkinter (Debian: `python3-tk`).
pub fn python_tk_available() -> bool {
    Command::new("python3")
        .args(["-c", "import tkinter"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

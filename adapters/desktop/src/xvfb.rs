//! A private virtual X display (Xvfb) for tests, benchmarks and the demo.
//!
//! Started with `-displayfd 1`: the server picks a free display number itself and
//! writes it to stdout once it accepts connections, so there is no race over
//! display numbers between concurrent test binaries and no polling for a socket.
//! The server is killed when the [`VirtualDisplay`] is dropped.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Why a virtual display could not be started.
#[derive(Debug, thiserror::Error)]
pub enum XvfbError {
    /// `Xvfb` is not installed (not on `PATH`).
    #[error("Xvfb is not installed (apt-get install xvfb)")]
    NotInstalled,
    /// It started but never reported a display.
    #[error("Xvfb did not become ready: {0}")]
    NotReady(String),
}

/// A running Xvfb server; killed on drop.
#[derive(Debug)]
pub struct VirtualDisplay {
    child: Child,
    display: String,
}

impl VirtualDisplay {
    /// Starts `Xvfb -screen 0 WIDTHxHEIGHTx24` on a free display and waits until
    /// it accepts connections (at most `timeout`).
    pub fn start(width: u32, height: u32, timeout: Duration) -> Result<VirtualDisplay, XvfbError> {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-noreset",
                "-screen",
                "0",
            ])
            .arg(format!("{width}x{height}x24"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => XvfbError::NotInstalled,
                _ => XvfbError::NotReady(e.to_string()),
            })?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(XvfbError::NotReady("no stdout".into()));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(result);
        });
        let number = match rx.recv_timeout(timeout) {
            Ok(Ok(line)) => line.trim().parse::<u32>().ok(),
            _ => None,
        };
        match number {
            Some(n) => Ok(VirtualDisplay {
                child,
                display: format!(":{n}"),
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(XvfbError::NotReady(
                    "no display number within the timeout".into(),
                ))
            }
        }
    }

    /// The display name (`:99`) to put into `DISPLAY`.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The server's process id (tests stop it with SIGSTOP to simulate a hung
    /// display server).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for VirtualDisplay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

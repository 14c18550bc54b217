//! A private X display for the demo's desktop bridge.
//!
//! Why a re-run: the desktop adapter's demo hook reads `DISPLAY` from the
//! environment, and a running process cannot set its own environment safely.
//! So when `DISPLAY` is unset but `Xvfb` and python3-tk are installed, the
//! demo starts `Xvfb` on a free display number, runs itself again with
//! `DISPLAY` pointing at it, forwards SIGTERM/SIGINT, and stops `Xvfb` when
//! the inner demo ends. `Xvfb` runs under a small `sh` watchdog that stops it
//! as soon as its stdin (a pipe from this process) closes, so even a killed
//! demo leaves no X server behind.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// Set in the inner demo to the display the outer one started.
pub const OWN_DISPLAY_ENV: &str = "EHR_GATEWAY_DEMO_XVFB";

/// Starts Xvfb (display number chosen by Xvfb itself with `-displayfd`),
/// waits for the stdin pipe to close, then stops it.
const WATCHDOG: &str = "Xvfb -displayfd 1 -nolisten tcp -screen 0 1280x1024x24 </dev/null 2>/dev/null & x=$!; read _; kill $x 2>/dev/null; wait $x 2>/dev/null";

/// What the demo can do for the desktop bridge's display.
pub enum Plan {
    /// `DISPLAY` is set; `ours` when the outer demo started it.
    Existing {
        /// The display name.
        display: String,
        /// Started by the outer demo (a private Xvfb).
        ours: bool,
    },
    /// No display and none can be started: why.
    Unavailable(String),
    /// Start Xvfb and run the demo again under it.
    StartXvfb,
}

/// Decides from `DISPLAY`, `Xvfb` on `PATH` and python3-tk.
pub fn plan() -> Plan {
    if let Some(display) = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty()) {
        let ours = std::env::var_os(OWN_DISPLAY_ENV).is_some();
        return Plan::Existing { display, ours };
    }
    if !on_path("Xvfb") {
        return Plan::Unavailable(
            "no X display: DISPLAY is not set and Xvfb is not installed (apt-get install xvfb python3-tk)"
                .to_owned(),
        );
    }
    let tk = gateway_desktop::legacy_app::python_tk_available();
    if !tk {
        return Plan::Unavailable(
            "python3 with tkinter (python3-tk) is missing for the legacy-EHR test application"
                .to_owned(),
        );
    }
    Plan::StartXvfb
}

/// True when `program` is an executable file in a `PATH` directory.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt as _;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

/// A started Xvfb behind its watchdog; stopped when dropped.
struct Xvfb {
    watchdog: std::process::Child,
    display: String,
}

impl Xvfb {
    fn start() -> Result<Xvfb, String> {
        let mut watchdog = Command::new("sh")
            .args(["-c", WATCHDOG])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Xvfb: {e}"))?;
        let stdout = watchdog.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(out) = stdout {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        let number = rx
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .and_then(|line| line.trim().parse::<u32>().ok());
        let mut xvfb = Xvfb {
            watchdog,
            display: String::new(),
        };
        match number {
            Some(n) => {
                xvfb.display = format!(":{n}");
                Ok(xvfb)
            }
            None => {
                xvfb.stop();
                Err("Xvfb did not start within 10 s".to_owned())
            }
        }
    }

    fn stop(&mut self) {
        // Closing stdin makes the watchdog stop Xvfb and wait for it.
        drop(self.watchdog.stdin.take());
        for _ in 0..50 {
            if matches!(self.watchdog.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(40));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts Xvfb and runs this demo again under it; returns the inner demo's
/// exit code, or why Xvfb could not be used (the caller then runs the demo
/// itself with the desktop bridge skipped).
pub fn supervise() -> anyhow::Result<Result<ExitCode, String>> {
    let xvfb = match Xvfb::start() {
        Ok(x) => x,
        Err(reason) => return Ok(Err(reason)),
    };
    let exe = std::env::current_exe().context("locating the ehr-gateway binary")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let status = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut child = tokio::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("DISPLAY", &xvfb.display)
            .env(OWN_DISPLAY_ENV, &xvfb.display)
            // The inner demo stops when this pipe closes (see `parent_gone`).
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("running the demo under Xvfb")?;
        let pid = child.id();
        // Held open until the inner demo ends (`wait` would close it first).
        let _pipe = child.stdin.take();
        loop {
            tokio::select! {
                status = child.wait() => return status.context("waiting for the demo"),
                _ = term.recv() => forward(pid, "TERM"),
                _ = int.recv() => forward(pid, "INT"),
            }
        }
    });
    drop(xvfb);
    let status = status?;
    let code = status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1);
    Ok(Ok(ExitCode::from(code)))
}

/// In the inner demo: resolves when the outer demo is gone (its stdin pipe
/// closed), so a killed outer demo never leaves the inner one serving.
/// `None` when this is not an inner demo.
pub fn parent_gone() -> Option<tokio::sync::oneshot::Receiver<()>> {
    std::env::var_os(OWN_DISPLAY_ENV)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    Some(rx)
}

/// Sends `signal` to the inner demo (`kill` keeps this crate free of libc).
fn forward(pid: Option<u32>, signal: &str) {
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

//! Hard time bounds on every desktop call: [`BoundedDriver`] runs any
//! [`Driver`] on a dedicated thread and waits for each call's answer with a
//! deadline.
//!
//! *Why a thread and not socket timeouts:* a playbook talks to the display
//! server over several connections that are not ours to configure (x11rb for
//! windows and screenshots, enigo's XTEST connection for input, arboard's
//! clipboard connection and its selection-serving thread). A stopped (SIGSTOP)
//! or wedged X server makes any of them block in a read forever; a vanished one
//! may make the clipboard wait for a selection answer that never comes. Running
//! the whole driver on its own thread bounds all of them the same way, and
//! works for any future driver (Windows) too.
//!
//! When a call misses its deadline the wrapper gives up on the driver for good:
//! that call and every later one fail at once with a
//! [`DriverError::is_timeout`] error, so the engine aborts the playbook
//! promptly (its screenshot and clipboard clean-up fail fast instead of hanging
//! too) and the bridge connects a fresh driver for the next run. The stuck
//! thread is left behind; it ends by itself when the server answers or its
//! connection breaks (the wrapper no longer holds its channel).

use std::sync::mpsc;
use std::time::Duration;

use crate::driver::{Driver, DriverError, MouseButton, Screenshot, WindowId, WindowInfo};
use crate::keys::Chord;

/// How long a desktop call may take before the run is aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Any single call, connecting included (default 5 s).
    pub call: Duration,
    /// Added to `call` for each character of a `type_text` (default 25 ms):
    /// typing sends several X requests per character.
    pub per_char: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            call: Duration::from_secs(5),
            per_char: Duration::from_millis(25),
        }
    }
}

type Job = Box<dyn FnOnce(&mut dyn Driver) + Send>;

/// A [`Driver`] whose every call returns within its [`Bounds`].
pub struct BoundedDriver {
    name: &'static str,
    jobs: Option<mpsc::Sender<Job>>,
    bounds: Bounds,
    /// Why the driver was given up on (the first missed deadline).
    broken: Option<DriverError>,
}

impl std::fmt::Debug for BoundedDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedDriver")
            .field("name", &self.name)
            .field("bounds", &self.bounds)
            .field("broken", &self.broken)
            .finish()
    }
}

impl BoundedDriver {
    /// Starts a driver thread, makes the driver there with `connect` and waits
    /// at most `bounds.call` for it (connecting to a hung server blocks too).
    pub fn spawn<F>(connect: F, bounds: Bounds) -> Result<BoundedDriver, DriverError>
    where
        F: FnOnce() -> Result<Box<dyn Driver>, DriverError> + Send + 'static,
    {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("desktop-driver".into())
            .spawn(move || {
                let mut driver = match connect() {
                    Ok(d) => {
                        let _ = ready_tx.send(Ok(d.name()));
                        d
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                // Ends when the wrapper is dropped (or gives up on us).
                while let Ok(job) = queue.recv() {
                    job(driver.as_mut());
                }
            })
            .map_err(|e| DriverError::new(format!("cannot start the driver thread: {e}")))?;
        match ready.recv_timeout(bounds.call) {
            Ok(Ok(name)) => Ok(BoundedDriver {
                name,
                jobs: Some(jobs),
                bounds,
                broken: None,
            }),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(DriverError::timeout("connect", bounds.call))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(DriverError::new("the driver thread died while connecting"))
            }
        }
    }

    /// The bounds in force.
    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// True once a call missed its deadline (every later call fails at once).
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    fn call<R, F>(&mut self, what: &'static str, bound: Duration, f: F) -> Result<R, DriverError>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Driver) -> Result<R, DriverError> + Send + 'static,
    {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let Some(jobs) = &self.jobs else {
            return Err(DriverError::new("the driver thread is gone"));
        };
        let (answer_tx, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |d| {
            let _ = answer_tx.send(f(d));
        });
        if jobs.send(job).is_err() {
            self.jobs = None;
            return Err(DriverError::new("the driver thread is gone"));
        }
        match answer.recv_timeout(bound) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let e = DriverError::timeout(what, bound);
                tracing::error!(
                    call = what,
                    bound_ms = bound.as_millis() as u64,
                    "desktop call timed out; giving up on this driver"
                );
                self.broken = Some(e.clone());
                // Dropping the sender lets the stuck thread end once unblocked.
                self.jobs = None;
                Err(e)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.jobs = None;
                Err(DriverError::new(format!(
                    "the driver thread died during `{what}`"
                )))
            }
        }
    }
}

impl Driver for BoundedDriver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn windows(&mut self) -> Result<Vec<WindowInfo>, DriverError> {
        self.call("windows", self.bounds.call, |d| d.windows())
    }

    fn active_window(&mut self) -> Result<Option<WindowInfo>, DriverError> {
        self.call("active_window", self.bounds.call, |d| d.active_window())
    }

    fn focus(&mut self, window: WindowId) -> Result<(), DriverError> {
        self.call("focus", self.bounds.call, move |d| d.focus(window))
    }

    fn type_text(&mut self, text: &str) -> Result<(), DriverError> {
        let chars = u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
        let bound = self
            .bounds
            .call
            .saturating_add(self.bounds.per_char.saturating_mul(chars));
        let text = text.to_owned();
        self.call("type_text", bound, move |d| d.type_text(&text))
    }

    fn key_chord(&mut self, chord: &Chord) -> Result<(), DriverError> {
        let chord = chord.clone();
        self.call("key_chord", self.bounds.call, move |d| d.key_chord(&chord))
    }

    fn click(
        &mut self,
        window: WindowId,
        x: i32,
        y: i32,
        button: MouseButton,
        clicks: u8,
    ) -> Result<(), DriverError> {
        self.call("click", self.bounds.call, move |d| {
            d.click(window, x, y, button, clicks)
        })
    }

    fn clipboard_get(&mut self) -> Result<Option<String>, DriverError> {
        self.call("clipboard_get", self.bounds.call, |d| d.clipboard_get())
    }

    fn clipboard_set(&mut self, text: &str) -> Result<(), DriverError> {
        let text = text.to_owned();
        self.call("clipboard_set", self.bounds.call, move |d| {
            d.clipboard_set(&text)
        })
    }

    fn screenshot(&mut self, window: Option<WindowId>) -> Result<Screenshot, DriverError> {
        self.call("screenshot", self.bounds.call, move |d| {
            d.screenshot(window)
        })
    }
}

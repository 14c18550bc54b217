//! The X11 driver: enigo (XTEST via its pure-Rust x11rb backend) for input,
//! x11rb for finding, focusing and photographing windows, arboard for the
//! clipboard.
//!
//! Works with and without a window manager. With an EWMH window manager
//! (`_NET_SUPPORTED` lists `_NET_CLIENT_LIST`) windows come from
//! `_NET_CLIENT_LIST` and focus is requested with a `_NET_ACTIVE_WINDOW` client
//! message; without one, top-level windows are found by walking the window tree
//! and focus is set with `SetInputFocus`. The focused window is always read from
//! the X server's input focus (where XTEST key events really go), walked up to its
//! titled top-level, falling back to `_NET_ACTIVE_WINDOW` when the focus sits on a
//! window-manager frame.
//!
//! arboard connects to `$DISPLAY` and keeps one process-wide connection, so the
//! driver refuses a display other than `$DISPLAY`. The `arboard::Clipboard` is
//! kept alive for the driver's lifetime: X11 clipboard contents exist only while
//! their owner serves them.

mod screenshot;
mod windows;

use enigo::{Button, Coordinate, Direction, Enigo, Keyboard as _, Mouse as _};
use x11rb::connection::Connection as _;
use x11rb::rust_connection::RustConnection;

use crate::driver::{Driver, DriverError, MouseButton, Screenshot, WindowId, WindowInfo};
use crate::keys::Chord;

pub(crate) fn err<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> DriverError {
    move |e| DriverError::new(format!("{context}: {e}"))
}

/// The X11 desktop driver.
pub struct X11Driver {
    display: String,
    conn: RustConnection,
    root: u32,
    atoms: windows::Atoms,
    enigo: Enigo,
    clipboard: arboard::Clipboard,
}

impl std::fmt::Debug for X11Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X11Driver")
            .field("display", &self.display)
            .finish_non_exhaustive()
    }
}

impl X11Driver {
    /// Connects to `display` (`:99`), or to `$DISPLAY` when `None`.
    ///
    /// Fails when no X server answers, when `display` differs from `$DISPLAY`
    /// (the clipboard library only follows `$DISPLAY`), or when XTEST is missing.
    pub fn connect(display: Option<&str>) -> Result<X11Driver, DriverError> {
        let env_display = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
        let display = match (display, env_display.as_deref()) {
            (Some(d), Some(env)) if d == env => d.to_owned(),
            (Some(d), Some(env)) => {
                return Err(DriverError::new(format!(
                    "display {d} differs from DISPLAY={env}: the clipboard follows DISPLAY; set DISPLAY={d}"
                )));
            }
            (Some(d), None) => {
                return Err(DriverError::new(format!(
                    "DISPLAY is not set: the clipboard follows DISPLAY; set DISPLAY={d}"
                )));
            }
            (None, Some(env)) => env.to_owned(),
            (None, None) => return Err(DriverError::new("DISPLAY is not set: no X display")),
        };
        let (conn, screen) =
            x11rb::connect(Some(&display)).map_err(err("cannot connect to the X server"))?;
        let root = conn
            .setup()
            .roots
            .get(screen)
            .ok_or_else(|| DriverError::new("the X server reported no such screen"))?
            .root;
        let atoms = windows::Atoms::intern(&conn)?;
        let settings = enigo::Settings {
            x11_display: Some(display.clone()),
            ..enigo::Settings::default()
        };
        let enigo = Enigo::new(&settings).map_err(err("cannot start XTEST input"))?;
        let clipboard = arboard::Clipboard::new().map_err(err("cannot open the clipboard"))?;
        Ok(X11Driver {
            display,
            conn,
            root,
            atoms,
            enigo,
            clipboard,
        })
    }

    /// The display this driver is connected to.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// True when an EWMH window manager is running.
    pub fn has_window_manager(&mut self) -> Result<bool, DriverError> {
        windows::wm_supports(
            &self.conn,
            self.root,
            &self.atoms,
            self.atoms.net_client_list,
        )
    }
}

impl Driver for X11Driver {
    fn name(&self) -> &'static str {
        "x11"
    }

    fn windows(&mut self) -> Result<Vec<WindowInfo>, DriverError> {
        windows::list(&self.conn, self.root, &self.atoms)
    }

    fn active_window(&mut self) -> Result<Option<WindowInfo>, DriverError> {
        windows::active(&self.conn, self.root, &self.atoms)
    }

    fn focus(&mut self, window: WindowId) -> Result<(), DriverError> {
        windows::focus(&self.conn, self.root, &self.atoms, window)
    }

    fn type_text(&mut self, text: &str) -> Result<(), DriverError> {
        self.enigo.text(text).map_err(err("typing failed"))
    }

    fn key_chord(&mut self, chord: &Chord) -> Result<(), DriverError> {
        crate::input::key_chord(&mut self.enigo, chord)
    }

    fn click(
        &mut self,
        window: WindowId,
        x: i32,
        y: i32,
        button: MouseButton,
        clicks: u8,
    ) -> Result<(), DriverError> {
        let (rx, ry) = windows::to_root(&self.conn, self.root, window, x, y)?;
        self.enigo
            .move_mouse(rx, ry, Coordinate::Abs)
            .map_err(err("mouse move failed"))?;
        let b = match button {
            MouseButton::Left => Button::Left,
            MouseButton::Middle => Button::Middle,
            MouseButton::Right => Button::Right,
        };
        for _ in 0..clicks {
            self.enigo
                .button(b, Direction::Click)
                .map_err(err("mouse click failed"))?;
        }
        Ok(())
    }

    fn clipboard_get(&mut self) -> Result<Option<String>, DriverError> {
        match self.clipboard.get_text() {
            Ok(text) => Ok(Some(text)),
            Err(arboard::Error::ContentNotAvailable) => Ok(None),
            Err(e) => Err(DriverError::new(format!("clipboard read failed: {e}"))),
        }
    }

    fn clipboard_set(&mut self, text: &str) -> Result<(), DriverError> {
        self.clipboard
            .set_text(text)
            .map_err(err("clipboard write failed"))
    }

    fn screenshot(&mut self, window: Option<WindowId>) -> Result<Screenshot, DriverError> {
        screenshot::capture(&self.conn, self.root, window)
    }
}

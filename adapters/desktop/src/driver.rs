//! The seam between the playbook engine and a desktop: the [`Driver`] trait.
//!
//! The engine knows windows only as opaque [`WindowId`]s with a title and a
//! geometry, keys only as [`Chord`]s, and images only as PNG bytes. Everything
//! platform specific (X11 atoms, XTEST, selections) lives behind this trait, so a
//! Windows driver is one more module implementing it, and the engine stays free of
//! X11 types.

use crate::keys::Chord;

/// An opaque window handle, meaningful only to the driver that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowId(pub u64);

/// A top-level window as the driver sees it. The geometry is the area the
/// application draws — the X11 client window, the Win32 client rectangle
/// (without title bar and borders) — which playbook coordinates are relative to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowInfo {
    /// The handle.
    pub id: WindowId,
    /// The title (`_NET_WM_NAME`, falling back to `WM_NAME` on X11; the
    /// window text on Windows).
    pub title: String,
    /// Left edge in screen coordinates.
    pub x: i32,
    /// Top edge in screen coordinates.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseButton {
    /// The primary button.
    Left,
    /// The middle button (X11 primary-selection paste).
    Middle,
    /// The context-menu button.
    Right,
}

/// A captured image of (part of) the screen, PNG encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Screenshot {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The PNG file bytes.
    pub png: Vec<u8>,
}

impl std::fmt::Debug for Screenshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Screens show patient data: never print pixels, only the size.
        f.debug_struct("Screenshot")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("png_bytes", &self.png.len())
            .finish()
    }
}

/// A failure inside a driver (connection lost, request refused, no answer in time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("desktop driver: {message}")]
pub struct DriverError {
    message: String,
    timed_out: bool,
}

impl DriverError {
    /// A driver error with a message (no PHI).
    pub fn new(message: impl Into<String>) -> Self {
        DriverError {
            message: message.into(),
            timed_out: false,
        }
    }

    /// The desktop did not answer `call` within `bound` (a hung or vanished
    /// display server).
    pub fn timeout(call: &str, bound: std::time::Duration) -> Self {
        DriverError {
            message: format!(
                "`{call}` got no answer from the desktop within {:.1} s: the display server is hung or gone",
                bound.as_secs_f64()
            ),
            timed_out: true,
        }
    }

    /// True when the desktop did not answer in time.
    pub fn is_timeout(&self) -> bool {
        self.timed_out
    }

    /// The message (no PHI).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What the engine needs from a desktop. Input methods act on whatever window has
/// the keyboard focus: the engine checks [`Driver::active_window`] right before
/// each of them.
pub trait Driver: Send {
    /// A short name for logs (`x11`, `windows`).
    fn name(&self) -> &'static str;

    /// All top-level windows that have a title, in stacking or client-list order.
    fn windows(&mut self) -> Result<Vec<WindowInfo>, DriverError>;

    /// The window that has the keyboard focus, resolved to its titled top-level.
    fn active_window(&mut self) -> Result<Option<WindowInfo>, DriverError>;

    /// Raises `window` and gives it the keyboard focus (asynchronous on most
    /// desktops: the engine polls [`Driver::active_window`] afterwards).
    fn focus(&mut self, window: WindowId) -> Result<(), DriverError>;

    /// Types `text` (any Unicode) into the focused window.
    fn type_text(&mut self, text: &str) -> Result<(), DriverError>;

    /// Presses a key chord (modifiers held while the key is clicked).
    fn key_chord(&mut self, chord: &Chord) -> Result<(), DriverError>;

    /// Clicks `clicks` times at (`x`, `y`) relative to the top-left corner of
    /// `window`'s drawn area (see [`WindowInfo`]).
    fn click(
        &mut self,
        window: WindowId,
        x: i32,
        y: i32,
        button: MouseButton,
        clicks: u8,
    ) -> Result<(), DriverError>;

    /// The clipboard's text, `None` when it holds no text.
    fn clipboard_get(&mut self) -> Result<Option<String>, DriverError>;

    /// Puts `text` on the clipboard (the driver keeps serving it).
    fn clipboard_set(&mut self, text: &str) -> Result<(), DriverError>;

    /// A PNG of `window` (or the whole screen when `None`).
    fn screenshot(&mut self, window: Option<WindowId>) -> Result<Screenshot, DriverError>;
}

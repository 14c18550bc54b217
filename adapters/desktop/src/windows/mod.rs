//! The Windows driver: Win32 window enumeration and activation (windows-sys),
//! enigo's `SendInput` backend for keyboard and mouse, arboard for the
//! clipboard, GDI for screenshots.
//!
//! *Coordinates.* A playbook's `x`/`y` are relative to the window's **client
//! area** on Windows — the part the application draws, without title bar and
//! borders — which is what they are relative to on X11 too (an X11 client
//! window has no decorations; the window manager's frame is another window).
//! [`WindowInfo`] geometry is therefore the client rectangle in screen
//! coordinates, and the same playbook files drive both platforms.
//!
//! *Focus.* Keyboard input from `SendInput` goes to the foreground window's
//! focused control. [`Driver::active_window`] reports the top-level that owns
//! the focus (the foreground thread's focus window, walked up to its root;
//! the foreground window when no control has the focus), read fresh on every
//! call; the engine calls it right before every input, as on X11. Windows
//! refuses `SetForegroundWindow` to a process that is not in the foreground
//! (the foreground lock); [`WindowsDriver::focus`] attaches its thread's input
//! to the current foreground thread for the duration of the request, which the
//! rules allow, and never sends a key to unlock it (that key would reach the
//! wrong window). The engine then polls for the result as on X11.
//!
//! *Clipboard.* arboard over the Win32 clipboard. UI Automation could read a
//! field's value without the clipboard; it is not used yet (see the crate
//! README's playbook notes): `copy`/`verify` go through select-all + copy, so
//! the playbooks stay the same on both platforms.
//!
//! Every Win32 call here is made from the one thread that owns the driver
//! ([`crate::bounded::BoundedDriver`] runs it on its own thread), which the
//! thread-affine calls (`AttachThreadInput`, the clipboard) rely on.

#![allow(unsafe_code)] // FFI to user32/gdi32; each block documents what it hands over.

mod screenshot;

use enigo::{Button, Coordinate, Direction, Enigo, Keyboard as _, Mouse as _};
use windows_sys::Win32::Foundation::{HWND, LPARAM, POINT, RECT};
use windows_sys::Win32::Graphics::Gdi::ClientToScreen;
use windows_sys::Win32::System::DataExchange::GetClipboardSequenceNumber;
use windows_sys::Win32::System::RemoteDesktop::ProcessIdToSessionId;
use windows_sys::Win32::System::Threading::{
    AttachThreadInput, GetCurrentProcessId, GetCurrentThreadId,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    BringWindowToTop, EnumWindows, GA_ROOT, GUITHREADINFO, GetAncestor, GetClientRect,
    GetForegroundWindow, GetGUIThreadInfo, GetWindowTextLengthW, GetWindowTextW,
    GetWindowThreadProcessId, IsIconic, IsWindow, IsWindowVisible, SW_RESTORE, SetForegroundWindow,
    ShowWindow,
};

use crate::driver::{Driver, DriverError, MouseButton, Screenshot, WindowId, WindowInfo};
use crate::keys::Chord;

fn err<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> DriverError {
    move |e| DriverError::new(format!("{context}: {e}"))
}

/// The Windows desktop driver, for the interactive session it runs in.
pub struct WindowsDriver {
    enigo: Enigo,
    clipboard: arboard::Clipboard,
    /// The clipboard's text as of a sequence number: polling an unchanged
    /// clipboard must not open it (below).
    known: Option<(u32, Option<String>)>,
}

impl std::fmt::Debug for WindowsDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowsDriver").finish_non_exhaustive()
    }
}

impl WindowsDriver {
    /// Opens input and the clipboard on the calling thread's desktop.
    ///
    /// Refuses to start in session 0, where Windows services run: that session
    /// has no interactive desktop, so the EHR's windows are not there to find
    /// and input would go nowhere. The desktop adapter runs in the logged-in
    /// user's session (see the crate README, "Windows").
    pub fn connect() -> Result<WindowsDriver, DriverError> {
        let mut session = u32::MAX;
        // SAFETY: out-pointer to a live local.
        let known = unsafe { ProcessIdToSessionId(GetCurrentProcessId(), &mut session) } != 0;
        if known && session == 0 {
            return Err(DriverError::new(
                "running in session 0 (a Windows service), which has no interactive desktop: \
                 run the desktop adapter in the session that shows the EHR",
            ));
        }
        let enigo = Enigo::new(&enigo::Settings::default()).map_err(err("cannot start input"))?;
        let clipboard = arboard::Clipboard::new().map_err(err("cannot open the clipboard"))?;
        Ok(WindowsDriver {
            enigo,
            clipboard,
            known: None,
        })
    }
}

pub(crate) fn hwnd(id: WindowId) -> HWND {
    id.0 as usize as HWND
}

fn id(hwnd: HWND) -> WindowId {
    WindowId(hwnd as usize as u64)
}

fn title(hwnd: HWND) -> String {
    // SAFETY: the buffer is as long as the length handed over; a window gone
    // meanwhile yields 0 characters.
    unsafe {
        let len = usize::try_from(GetWindowTextLengthW(hwnd)).unwrap_or(0);
        if len == 0 {
            return String::new();
        }
        let mut buf = vec![0u16; len + 1];
        let n = GetWindowTextW(
            hwnd,
            buf.as_mut_ptr(),
            i32::try_from(buf.len()).unwrap_or(0),
        );
        let n = usize::try_from(n).unwrap_or(0).min(len);
        String::from_utf16_lossy(&buf[..n])
    }
}

/// The client rectangle in screen coordinates, `None` for a vanished window.
fn info(hwnd: HWND, title: String) -> Option<WindowInfo> {
    let mut rect = RECT {
        left: 0,
        top: 0,
        right: 0,
        bottom: 0,
    };
    let mut origin = POINT { x: 0, y: 0 };
    // SAFETY: out-pointers to live locals.
    let ok =
        unsafe { GetClientRect(hwnd, &mut rect) != 0 && ClientToScreen(hwnd, &mut origin) != 0 };
    ok.then(|| WindowInfo {
        id: id(hwnd),
        title,
        x: origin.x,
        y: origin.y,
        width: u32::try_from(rect.right - rect.left).unwrap_or(0),
        height: u32::try_from(rect.bottom - rect.top).unwrap_or(0),
    })
}

/// The clipboard's sequence number (0 when this session may not see it).
fn clipboard_sequence() -> u32 {
    // SAFETY: no arguments; reads a counter.
    unsafe { GetClipboardSequenceNumber() }
}

unsafe extern "system" fn collect(hwnd: HWND, lparam: LPARAM) -> i32 {
    // SAFETY: `lparam` is the `&mut Vec<HWND>` that `windows()` passes and
    // outlives the synchronous EnumWindows call.
    let found = unsafe { &mut *(lparam as *mut Vec<HWND>) };
    found.push(hwnd);
    1
}

impl Driver for WindowsDriver {
    fn name(&self) -> &'static str {
        "windows"
    }

    fn windows(&mut self) -> Result<Vec<WindowInfo>, DriverError> {
        let mut found: Vec<HWND> = Vec::new();
        // SAFETY: the callback only pushes into `found`, alive for the call.
        let ok = unsafe { EnumWindows(Some(collect), &mut found as *mut Vec<HWND> as LPARAM) };
        if ok == 0 {
            return Err(DriverError::new("EnumWindows failed"));
        }
        Ok(found
            .into_iter()
            // SAFETY: plain queries on a handle; a stale one answers false.
            .filter(|h| unsafe { IsWindowVisible(*h) != 0 })
            .filter_map(|h| {
                let t = title(h);
                if t.is_empty() { None } else { info(h, t) }
            })
            .collect())
    }

    fn active_window(&mut self) -> Result<Option<WindowInfo>, DriverError> {
        // SAFETY: queries with out-pointers to live locals.
        let top = unsafe {
            let foreground = GetForegroundWindow();
            if foreground.is_null() {
                return Ok(None);
            }
            let thread = GetWindowThreadProcessId(foreground, std::ptr::null_mut());
            let mut gui: GUITHREADINFO = std::mem::zeroed();
            gui.cbSize = u32::try_from(std::mem::size_of::<GUITHREADINFO>()).unwrap_or(0);
            let focus = if GetGUIThreadInfo(thread, &mut gui) != 0 && !gui.hwndFocus.is_null() {
                GetAncestor(gui.hwndFocus, GA_ROOT)
            } else {
                std::ptr::null_mut()
            };
            if focus.is_null() { foreground } else { focus }
        };
        let t = title(top);
        if t.is_empty() {
            return Ok(None);
        }
        Ok(info(top, t))
    }

    fn focus(&mut self, window: WindowId) -> Result<(), DriverError> {
        let target = hwnd(window);
        // SAFETY: handle checks and activation requests; the input attachment
        // is undone before returning.
        unsafe {
            if IsWindow(target) == 0 {
                return Err(DriverError::new("the window is gone"));
            }
            if IsIconic(target) != 0 {
                ShowWindow(target, SW_RESTORE);
            }
            let me = GetCurrentThreadId();
            let foreground = GetForegroundWindow();
            let fg_thread = if foreground.is_null() {
                0
            } else {
                GetWindowThreadProcessId(foreground, std::ptr::null_mut())
            };
            let target_thread = GetWindowThreadProcessId(target, std::ptr::null_mut());
            let attach_fg = fg_thread != 0 && fg_thread != me;
            let attach_target =
                target_thread != 0 && target_thread != me && target_thread != fg_thread;
            if attach_fg {
                AttachThreadInput(me, fg_thread, 1);
            }
            if attach_target {
                AttachThreadInput(me, target_thread, 1);
            }
            BringWindowToTop(target);
            SetForegroundWindow(target);
            if attach_target {
                AttachThreadInput(me, target_thread, 0);
            }
            if attach_fg {
                AttachThreadInput(me, fg_thread, 0);
            }
        }
        Ok(())
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
        let mut point = POINT { x, y };
        // SAFETY: out-pointer to a live local.
        if unsafe { ClientToScreen(hwnd(window), &mut point) } == 0 {
            return Err(DriverError::new("the window is gone"));
        }
        self.enigo
            .move_mouse(point.x, point.y, Coordinate::Abs)
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
        // The engine polls the clipboard right after sending the copy chord.
        // Opening it then can make the application's own copy fail: an edit
        // control's WM_COPY gives up when another process holds the
        // clipboard open (seen under Wine as "nothing copied"; the same rule
        // holds on Windows). The sequence number changes with every change
        // and is read without opening anything.
        let seq = clipboard_sequence();
        if let Some((known_seq, text)) = &self.known
            && seq != 0
            && *known_seq == seq
        {
            return Ok(text.clone());
        }
        let text = match self.clipboard.get_text() {
            Ok(text) => Some(text),
            Err(arboard::Error::ContentNotAvailable) => None,
            Err(e) => return Err(DriverError::new(format!("clipboard read failed: {e}"))),
        };
        self.known = Some((seq, text.clone()));
        Ok(text)
    }

    fn clipboard_set(&mut self, text: &str) -> Result<(), DriverError> {
        self.known = None;
        self.clipboard
            .set_text(text)
            .map_err(err("clipboard write failed"))?;
        self.known = Some((clipboard_sequence(), Some(text.to_owned())));
        Ok(())
    }

    fn screenshot(&mut self, window: Option<WindowId>) -> Result<Screenshot, DriverError> {
        screenshot::capture(window.map(hwnd))
    }
}

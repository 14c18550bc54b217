//! Screenshots with GDI: the window's rectangle copied from the screen
//! (`BitBlt` from the screen DC), read back as 32-bit pixels and encoded with
//! the crate's PNG writer.
//!
//! Copying from the screen rather than asking the window to paint itself
//! (`PrintWindow`) captures what the operator would have seen, including a
//! dialog covering the window — the usual cause of an aborted run — as the
//! X11 driver does. The whole window (title bar included) is captured, so the
//! evidence shows which window it was.

use windows_sys::Win32::Foundation::{HWND, RECT};
use windows_sys::Win32::Graphics::Gdi::{
    BI_RGB, BITMAPINFO, BITMAPINFOHEADER, BitBlt, CreateCompatibleBitmap, CreateCompatibleDC,
    DIB_RGB_COLORS, DeleteDC, DeleteObject, GetDC, GetDIBits, HGDIOBJ, ReleaseDC, SRCCOPY,
    SelectObject,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    GetSystemMetrics, GetWindowRect, SM_CXVIRTUALSCREEN, SM_CYVIRTUALSCREEN, SM_XVIRTUALSCREEN,
    SM_YVIRTUALSCREEN,
};

use crate::driver::{DriverError, Screenshot};

/// The screen area of `window` (clipped to the screen), or the whole virtual
/// screen when `None` or when the window is gone.
fn area(window: Option<HWND>) -> (i32, i32, i32, i32) {
    // SAFETY: metric queries and an out-pointer to a live local.
    unsafe {
        let sx = GetSystemMetrics(SM_XVIRTUALSCREEN);
        let sy = GetSystemMetrics(SM_YVIRTUALSCREEN);
        let sw = GetSystemMetrics(SM_CXVIRTUALSCREEN);
        let sh = GetSystemMetrics(SM_CYVIRTUALSCREEN);
        let screen = (sx, sy, sw, sh);
        let Some(w) = window else { return screen };
        let mut r = RECT {
            left: 0,
            top: 0,
            right: 0,
            bottom: 0,
        };
        if GetWindowRect(w, &mut r) == 0 {
            return screen;
        }
        let (x0, y0) = (r.left.max(sx), r.top.max(sy));
        let (x1, y1) = (r.right.min(sx + sw), r.bottom.min(sy + sh));
        if x1 > x0 && y1 > y0 {
            (x0, y0, x1 - x0, y1 - y0)
        } else {
            screen
        }
    }
}

pub(crate) fn capture(window: Option<HWND>) -> Result<Screenshot, DriverError> {
    let (x, y, w, h) = area(window);
    let (width, height) = match (usize::try_from(w), usize::try_from(h)) {
        (Ok(a), Ok(b)) if a > 0 && b > 0 => (a, b),
        _ => return Err(DriverError::new("no screen to capture")),
    };
    let mut bgra = vec![0u8; width * height * 4];
    // SAFETY: GDI objects are created, selected and released in this block;
    // GetDIBits writes at most `h` rows of `w` 32-bit pixels into `bgra`,
    // which is exactly that long.
    let rows = unsafe {
        let screen = GetDC(std::ptr::null_mut());
        if screen.is_null() {
            return Err(DriverError::new("no screen device context"));
        }
        let memory = CreateCompatibleDC(screen);
        let bitmap = CreateCompatibleBitmap(screen, w, h);
        let old: HGDIOBJ = SelectObject(memory, bitmap as HGDIOBJ);
        let copied = BitBlt(memory, 0, 0, w, h, screen, x, y, SRCCOPY);
        SelectObject(memory, old);
        let mut bmi: BITMAPINFO = std::mem::zeroed();
        bmi.bmiHeader = BITMAPINFOHEADER {
            biSize: u32::try_from(std::mem::size_of::<BITMAPINFOHEADER>()).unwrap_or(40),
            biWidth: w,
            biHeight: -h, // top-down rows
            biPlanes: 1,
            biBitCount: 32,
            biCompression: BI_RGB,
            ..std::mem::zeroed()
        };
        let rows = if copied != 0 {
            GetDIBits(
                memory,
                bitmap,
                0,
                u32::try_from(h).unwrap_or(0),
                bgra.as_mut_ptr().cast(),
                &mut bmi,
                DIB_RGB_COLORS,
            )
        } else {
            0
        };
        DeleteObject(bitmap as HGDIOBJ);
        DeleteDC(memory);
        ReleaseDC(std::ptr::null_mut(), screen);
        rows
    };
    if usize::try_from(rows).ok() != Some(height) {
        return Err(DriverError::new("the screen could not be copied"));
    }
    let mut rgb = Vec::with_capacity(width * height * 3);
    for px in bgra.chunks_exact(4) {
        rgb.extend_from_slice(&[px[2], px[1], px[0]]);
    }
    let (pw, ph) = (width as u32, height as u32);
    let png = crate::png::encode_rgb(pw, ph, &rgb).map_err(DriverError::new)?;
    Ok(Screenshot {
        width: pw,
        height: ph,
        png,
    })
}

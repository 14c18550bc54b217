//! Screenshots with `GetImage` on the root window, converted to RGB and PNG.
//!
//! Reading from the root (cropped to the window's rectangle) captures what the
//! operator would have seen, including any dialog covering the window — the
//! usual cause of an aborted run.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder, Window};
use x11rb::rust_connection::RustConnection;

use super::err;
use crate::driver::{DriverError, Screenshot, WindowId};

pub(crate) fn capture(
    conn: &RustConnection,
    root: Window,
    window: Option<WindowId>,
) -> Result<Screenshot, DriverError> {
    let root_geo = conn
        .get_geometry(root)
        .map_err(err("get geometry"))?
        .reply()
        .map_err(err("get geometry"))?;
    let (sw, sh) = (i32::from(root_geo.width), i32::from(root_geo.height));
    let (mut x, mut y, mut w, mut h) = (0, 0, sw, sh);
    if let Some(id) = window.and_then(|id| u32::try_from(id.0).ok()) {
        // A vanished window falls back to the whole screen.
        if let (Ok(Ok(g)), Ok(Ok(o))) = (
            conn.get_geometry(id).map(|c| c.reply()),
            conn.translate_coordinates(id, root, 0, 0)
                .map(|c| c.reply()),
        ) {
            let (x0, y0) = (i32::from(o.dst_x).max(0), i32::from(o.dst_y).max(0));
            let x1 = (i32::from(o.dst_x) + i32::from(g.width)).min(sw);
            let y1 = (i32::from(o.dst_y) + i32::from(g.height)).min(sh);
            if x1 > x0 && y1 > y0 {
                (x, y, w, h) = (x0, y0, x1 - x0, y1 - y0);
            }
        }
    }
    let to16 = |v: i32| i16::try_from(v).map_err(|_| DriverError::new("screen too large"));
    let tou16 = |v: i32| u16::try_from(v).map_err(|_| DriverError::new("screen too large"));
    let image = conn
        .get_image(
            ImageFormat::Z_PIXMAP,
            root,
            to16(x)?,
            to16(y)?,
            tou16(w)?,
            tou16(h)?,
            !0,
        )
        .map_err(err("get image"))?
        .reply()
        .map_err(err("get image"))?;
    let setup = conn.setup();
    let bpp = setup
        .pixmap_formats
        .iter()
        .find(|f| f.depth == image.depth)
        .map(|f| usize::from(f.bits_per_pixel))
        .ok_or_else(|| DriverError::new("unknown pixmap format"))?;
    let visual = setup
        .roots
        .iter()
        .flat_map(|s| s.allowed_depths.iter())
        .flat_map(|d| d.visuals.iter())
        .find(|v| v.visual_id == image.visual)
        .ok_or_else(|| DriverError::new("unknown visual"))?;
    if bpp != 32 && bpp != 24 {
        return Err(DriverError::new(format!(
            "unsupported {bpp} bits per pixel"
        )));
    }
    let big_endian = setup.image_byte_order == ImageOrder::MSB_FIRST;
    let (w, h) = (w as usize, h as usize);
    let bytes_pp = bpp / 8;
    let pad = usize::from(setup.bitmap_format_scanline_pad).max(8) / 8;
    let stride = (w * bytes_pp).div_ceil(pad) * pad;
    if image.data.len() < stride * h {
        return Err(DriverError::new("short image reply"));
    }
    let channel = |pixel: u32, mask: u32| -> u8 {
        if mask == 0 {
            return 0;
        }
        let shift = mask.trailing_zeros();
        let max = mask >> shift;
        (u64::from((pixel & mask) >> shift) * 255 / u64::from(max)) as u8
    };
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in 0..h {
        let line = &image.data[row * stride..row * stride + w * bytes_pp];
        for px in line.chunks_exact(bytes_pp) {
            let mut b = [0u8; 4];
            b[..bytes_pp].copy_from_slice(px);
            let pixel = if big_endian {
                let mut v = 0u32;
                for byte in &px[..bytes_pp] {
                    v = (v << 8) | u32::from(*byte);
                }
                v
            } else {
                u32::from_le_bytes(b)
            };
            rgb.push(channel(pixel, visual.red_mask));
            rgb.push(channel(pixel, visual.green_mask));
            rgb.push(channel(pixel, visual.blue_mask));
        }
    }
    let png = crate::png::encode_rgb(w as u32, h as u32, &rgb).map_err(DriverError::new)?;
    Ok(Screenshot {
        width: w as u32,
        height: h as u32,
        png,
    })
}

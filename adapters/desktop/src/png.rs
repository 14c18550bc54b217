//! PNG encoding of screenshots (driver-neutral).
//!
//! Drivers hand over 8-bit RGB rows; this module turns them into the PNG bytes an
//! [`crate::driver::Screenshot`] carries to the store. Fast compression: the
//! evidence is for a human, size matters less than not stalling an abort.

/// Encodes `rgb` (`width * height * 3` bytes, rows top to bottom) as PNG.
pub fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, String> {
    let expected = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(3))
        .ok_or("image too large")?;
    if rgb.len() != expected || width == 0 || height == 0 {
        return Err(format!(
            "pixel buffer has {} bytes, expected {expected} for {width}x{height}",
            rgb.len()
        ));
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(rgb).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_valid_png_and_rejects_bad_sizes() {
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
        let png = encode_rgb(4, 3, &rgb).expect("encodes");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().expect("decodes");
        assert_eq!((reader.info().width, reader.info().height), (4, 3));
        assert!(encode_rgb(4, 3, &rgb[1..]).is_err());
        assert!(encode_rgb(0, 0, &[]).is_err());
    }
}

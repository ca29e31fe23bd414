//! The QR code of an `otpauth://` URI as a PNG, for the pairing screen of a front end.

/// Pixels per QR module, and the quiet zone in modules (the QR specification asks for 4).
const SCALE: usize = 6;
const BORDER: usize = 4;

/// Renders `text` as a black-on-white PNG. None only if the text is too long for a QR code.
pub fn png(text: &str) -> Option<Vec<u8>> {
    let code = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium).ok()?;
    let modules = usize::try_from(code.size()).ok()?;
    let side = (modules + 2 * BORDER) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for y in 0..modules {
        for x in 0..modules {
            // Both coordinates are below size(), which fits in i32.
            if code.get_module(x as i32, y as i32) {
                for dy in 0..SCALE {
                    let row = ((y + BORDER) * SCALE + dy) * side;
                    let start = row + (x + BORDER) * SCALE;
                    pixels[start..start + SCALE].fill(0);
                }
            }
        }
    }
    let mut out = Vec::new();
    {
        let side = u32::try_from(side).ok()?;
        let mut encoder = png::Encoder::new(&mut out, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().ok()?;
        writer.write_image_data(&pixels).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn draws_a_png() {
        let png = super::png("otpauth://totp/rssp:ana?secret=JBSWY3DPEHPK3PXP&issuer=rssp").unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    }
}

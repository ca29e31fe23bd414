//! The copy of an identity document a person uploads with a rekey: it must be what its type says,
//! checked beyond the magic bytes. Images are decoded whole (a truncated or corrupt file is refused);
//! a PDF gets a structural check of its trailer (there is no PDF parser among the dependencies): a
//! `%PDF-` header, a final `%%EOF`, and a `startxref` offset that points at a cross-reference table
//! (`xref` with a well-formed first entry and a `trailer`) or a cross-reference stream object.

/// The document types accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentType {
    Pdf,
    Jpeg,
    Png,
}

impl DocumentType {
    pub fn parse(content_type: &str) -> Option<DocumentType> {
        match content_type {
            "application/pdf" => Some(DocumentType::Pdf),
            "image/jpeg" => Some(DocumentType::Jpeg),
            "image/png" => Some(DocumentType::Png),
            _ => None,
        }
    }
}

/// Most memory an image may decode into (a small file can claim huge dimensions).
const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

/// Checks that `data` is a well-formed file of the type; the error says what is wrong.
pub fn check(kind: DocumentType, data: &[u8]) -> Result<(), String> {
    match kind {
        DocumentType::Pdf => check_pdf(data),
        DocumentType::Png => check_png(data),
        DocumentType::Jpeg => check_jpeg(data),
    }
}

fn check_png(data: &[u8]) -> Result<(), String> {
    let limits = png::Limits { bytes: MAX_DECODED_BYTES };
    let decoder = png::Decoder::new_with_limits(std::io::Cursor::new(data), limits);
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG image: {e}"))?;
    let size = reader.output_buffer_size().ok_or("not a PNG image: too large")?;
    if size > MAX_DECODED_BYTES {
        return Err("the PNG image is too large".into());
    }
    let mut buffer = vec![0; size];
    reader.next_frame(&mut buffer).map_err(|e| format!("not a PNG image: {e}"))?;
    Ok(())
}

fn check_jpeg(data: &[u8]) -> Result<(), String> {
    let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(data));
    decoder.set_max_decoding_buffer_size(MAX_DECODED_BYTES);
    let pixels = decoder.decode().map_err(|e| format!("not a JPEG image: {e}"))?;
    if pixels.is_empty() {
        return Err("not a JPEG image: no pixels".into());
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn skip_whitespace(data: &[u8], mut at: usize) -> usize {
    while data.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// Reads an unsigned decimal number at `at`; returns it and where it ends.
fn number(data: &[u8], at: usize) -> Option<(u64, usize)> {
    let end = at + data[at.min(data.len())..].iter().take_while(|b| b.is_ascii_digit()).count();
    if end == at || end - at > 12 {
        return None;
    }
    let value = std::str::from_utf8(&data[at..end]).ok()?.parse().ok()?;
    Some((value, end))
}

fn check_pdf(data: &[u8]) -> Result<(), String> {
    let bad = |what: &str| Err(format!("not a PDF document: {what}"));
    let version_ok = data.len() > 8
        && data.starts_with(b"%PDF-")
        && matches!(data[5], b'1' | b'2')
        && data[6] == b'.'
        && data[7].is_ascii_digit();
    if !version_ok {
        return bad("no %PDF-n.n header");
    }
    // The file ends with %%EOF (and at most some whitespace after it).
    let tail_start = data.len().saturating_sub(1024);
    let Some(eof) = rfind(&data[tail_start..], b"%%EOF").map(|i| tail_start + i) else {
        return bad("no %%EOF at the end");
    };
    if !data[eof + 5..].iter().all(u8::is_ascii_whitespace) {
        return bad("data after the last %%EOF");
    }
    let Some(startxref) = rfind(&data[tail_start..eof], b"startxref").map(|i| tail_start + i) else {
        return bad("no startxref before %%EOF");
    };
    let at = skip_whitespace(data, startxref + "startxref".len());
    let Some((offset, end)) = number(data, at) else {
        return bad("startxref has no offset");
    };
    if skip_whitespace(data, end) != eof {
        return bad("startxref is malformed");
    }
    let offset = usize::try_from(offset).ok().filter(|o| *o >= 8 && *o < startxref);
    let Some(offset) = offset else {
        return bad("startxref points outside the file");
    };
    let section = &data[offset..startxref];
    if section.starts_with(b"xref") {
        // A classic table: `xref`, a subsection `first count`, then 20-byte entries `oooooooooo ggggg n`.
        let at = skip_whitespace(section, 4);
        let Some((_, end)) = number(section, at) else {
            return bad("xref table without a subsection");
        };
        let at = skip_whitespace(section, end);
        let Some((count, end)) = number(section, at) else {
            return bad("xref table without a subsection");
        };
        let at = skip_whitespace(section, end);
        let entry = section.get(at..at + 18).unwrap_or_default();
        let entry_ok = count > 0
            && entry.len() == 18
            && entry[..10].iter().all(u8::is_ascii_digit)
            && entry[10] == b' '
            && entry[11..16].iter().all(u8::is_ascii_digit)
            && entry[16] == b' '
            && matches!(entry[17], b'n' | b'f');
        if !entry_ok {
            return bad("malformed xref table");
        }
        if find(section, b"trailer").is_none() {
            return bad("no trailer after the xref table");
        }
        return Ok(());
    }
    // A cross-reference stream: `n g obj << /Type /XRef ... >> stream`.
    let object = number(section, 0)
        .map(|(_, end)| skip_whitespace(section, end))
        .and_then(|at| number(section, at))
        .map(|(_, end)| skip_whitespace(section, end));
    let is_xref_stream = object.is_some_and(|at| {
        section[at..].starts_with(b"obj")
            && find(&section[at..], b"/XRef").is_some()
            && find(&section[at..], b"stream").is_some()
    });
    if !is_xref_stream {
        return bad("startxref does not point at a cross-reference table or stream");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid PDF with a correct xref table, built the way a writer would.
    pub fn tiny_pdf() -> Vec<u8> {
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let catalog = pdf.len();
        pdf.extend_from_slice(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n");
        let pages = pdf.len();
        pdf.extend_from_slice(b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n");
        let xref = pdf.len();
        pdf.extend_from_slice(
            format!(
                "xref\n0 3\n0000000000 65535 f \n{catalog:010} 00000 n \n{pages:010} 00000 n \n\
                 trailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
            )
            .as_bytes(),
        );
        pdf
    }

    #[test]
    fn pdf_structure() {
        let pdf = tiny_pdf();
        assert_eq!(check(DocumentType::Pdf, &pdf), Ok(()));
        assert!(check(DocumentType::Pdf, b"%PDF-1.4\n%id card\n%%EOF\n").is_err());
        assert!(check(DocumentType::Pdf, b"%PDF-1.4\nstartxref\n0\n%%EOF\n").is_err());
        let mut truncated = pdf.clone();
        truncated.truncate(pdf.len() - 8);
        assert!(check(DocumentType::Pdf, &truncated).is_err());
        let wrong_offset = String::from_utf8(pdf.clone()).unwrap().replace("startxref\n", "startxref\n1");
        assert!(check(DocumentType::Pdf, wrong_offset.as_bytes()).is_err());
    }

    #[test]
    fn images_must_decode() {
        assert!(check(DocumentType::Png, b"\x89PNG\r\n\x1a\njunk").is_err());
        assert!(check(DocumentType::Jpeg, &[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]).is_err());
        let mut png = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut png, 2, 2);
            encoder.set_color(png::ColorType::Grayscale);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&[0, 255, 255, 0]).unwrap();
        }
        assert_eq!(check(DocumentType::Png, &png), Ok(()));
        assert!(check(DocumentType::Png, &png[..png.len() - 14]).is_err(), "truncated PNG");
        let jpeg = include_bytes!("../../tests/data/tiny.jpg");
        assert_eq!(check(DocumentType::Jpeg, jpeg), Ok(()));
        assert!(check(DocumentType::Jpeg, &jpeg[..jpeg.len() / 2]).is_err(), "truncated JPEG");
    }
}

#[cfg(test)]
mod proptests;

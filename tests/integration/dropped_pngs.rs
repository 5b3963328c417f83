//! Settings read from PNGs: compressed text is inflated only up to a limit, and a PNG whose
//! settings cannot be read says so instead of silently becoming the image to edit.

use std::io::Cursor;

use hidream_studio::store::{MAX_INFLATED_TEXT, RECORD_KEY, png_texts, read_stored_record};

/// A 4×4 PNG whose text chunks are written as given (compressed or not).
fn png_with_chunks(chunks: &[(&str, String, bool)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(Cursor::new(&mut bytes), 4, 4);
    encoder.set_color(png::ColorType::Rgb);
    let mut writer = encoder.write_header().unwrap();
    for (key, text, utf8) in chunks {
        if *utf8 {
            let mut chunk = png::text_metadata::ITXtChunk::new(*key, text.clone());
            chunk.compressed = true;
            chunk.compress_text().unwrap();
            writer.write_text_chunk(&chunk).unwrap();
        } else {
            let mut chunk = png::text_metadata::ZTXtChunk::new(*key, text.clone());
            chunk.compress_text().unwrap();
            writer.write_text_chunk(&chunk).unwrap();
        }
    }
    writer.write_image_data(&[0; 4 * 4 * 3]).unwrap();
    writer.finish().unwrap();
    bytes
}

#[test]
fn compressed_text_is_inflated_only_up_to_a_limit() {
    // 16 MiB of spaces compress to a few KiB: a small file that would take a lot of memory.
    for utf8 in [false, true] {
        let bomb = png_with_chunks(&[(RECORD_KEY, " ".repeat(16 << 20), utf8)]);
        assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
        let error = read_stored_record(&bomb).unwrap_err().to_string();
        assert!(error.contains("`hidream-studio` text"), "{error}");
        assert!(error.contains("within 1 MiB"), "{error}");
    }
    // The limit holds for all chunks together, not for each.
    let part = "x".repeat(MAX_INFLATED_TEXT * 3 / 4);
    let two = png_with_chunks(&[("a", part.clone(), false), ("b", part.clone(), true)]);
    assert!(png_texts(&two).is_err());
    // Text within the limit reads as it was written.
    let texts = png_texts(&png_with_chunks(&[("a", part.clone(), false)])).unwrap();
    assert_eq!(texts, vec![("a".to_string(), part)]);
}

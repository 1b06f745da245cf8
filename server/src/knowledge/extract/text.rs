//! Plain text: decoding whatever encoding a text file is likely to be in, and paragraphs.

use super::{Block, ExtractError, Extracted, Format, MAX_TEXT_BYTES, squeeze};

/// Text from bytes: UTF-8 (with or without a BOM), UTF-16 with a BOM, or, failing UTF-8,
/// Windows-1252, which is what older office text files are. Bytes that look like a binary
/// format (NULs, many control characters) are refused rather than indexed as noise.
pub fn decode(bytes: &[u8]) -> Result<String, ExtractError> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return utf8(rest);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes);
    }
    let head = &bytes[..bytes.len().min(8192)];
    let controls = head.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0C)).count();
    if head.contains(&0) || controls * 20 > head.len() {
        return Err(ExtractError::Unsupported(
            "the file is neither text nor a document format that can be read here (PDF, DOCX, PPTX, XLSX, CSV, HTML, Markdown, text)".into(),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => Ok(bytes.iter().map(|&b| windows_1252(b)).collect()),
    }
}

fn utf8(bytes: &[u8]) -> Result<String, ExtractError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|e| ExtractError::Corrupt(format!("invalid UTF-8 after a UTF-8 mark: {e}")))
}

fn utf16(bytes: &[u8], read: fn([u8; 2]) -> u16) -> Result<String, ExtractError> {
    let units = bytes.chunks_exact(2).map(|p| read([p[0], p[1]]));
    char::decode_utf16(units)
        .map(|c| c.map_err(|e| ExtractError::Corrupt(format!("invalid UTF-16: {e}"))))
        .collect()
}

fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
        '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9F => HIGH[(b - 0x80) as usize],
        _ => b as char,
    }
}

/// Paragraphs are separated by blank lines; the first short line is taken as the title.
pub fn extract(text: &str) -> Extracted {
    let mut blocks = Vec::new();
    let mut bytes = 0;
    for para in text.split("\n\n").flat_map(|p| p.split("\r\n\r\n")) {
        let para = squeeze(para);
        if para.is_empty() || bytes >= MAX_TEXT_BYTES {
            continue;
        }
        bytes += para.len();
        blocks.push(Block { heading: String::new(), page: None, text: para });
    }
    let title = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .filter(|l| l.chars().count() <= 120)
        .map(str::to_string);
    Extracted { format: Format::Text, title, pages: None, blocks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_decoded() {
        assert_eq!(decode("café".as_bytes()).unwrap(), "café");
        assert_eq!(decode(b"\xEF\xBB\xBFcaf\xC3\xA9").unwrap(), "café");
        assert_eq!(decode(b"caf\xE9 \x93ok\x94").unwrap(), "café “ok”");
        let utf16: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("hé".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(decode(&utf16).unwrap(), "hé");
    }

    #[test]
    fn paragraphs_split_on_blank_lines() {
        let e = extract("Title line\n\nFirst  para\ncontinues.\n\n\nSecond.");
        let texts: Vec<_> = e.blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(texts, ["Title line", "First para continues.", "Second."]);
        assert_eq!(e.title.as_deref(), Some("Title line"));
    }
}

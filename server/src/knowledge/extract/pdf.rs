//! PDF: the text layer, page by page, so that every passage knows its page. A scanned PDF
//! without a text layer has nothing to index and says so. Encrypted PDFs that need a password
//! are refused; those encrypted with an empty user password (permissions only) are read.

use super::{Block, ExtractError, Extracted, Format, MAX_TEXT_BYTES, squeeze};

/// More pages than any document worth citing; a file claiming more is refused before its pages
/// are read.
pub const MAX_PAGES: usize = 5000;

pub fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut doc = lopdf::Document::load_mem(bytes)
        .map_err(|e| ExtractError::Corrupt(format!("unreadable PDF: {e}")))?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(ExtractError::Unsupported(
            "the PDF is password-protected; remove the password and add it again".into(),
        ));
    }
    let pages = doc.get_pages();
    if pages.len() > MAX_PAGES {
        return Err(ExtractError::TooLarge(format!(
            "it has {} pages; at most {MAX_PAGES} are read",
            pages.len()
        )));
    }
    let title = info_title(&doc);
    let mut blocks = Vec::new();
    let mut bytes_out = 0usize;
    for &number in pages.keys() {
        let mut text = String::new();
        {
            let mut output = pdf_extract::PlainTextOutput::new(&mut text);
            if let Err(e) = pdf_extract::output_doc_page(&doc, &mut output, number) {
                return Err(ExtractError::Corrupt(format!("page {number}: {e}")));
            }
        }
        for para in text.split("\n\n") {
            let para = squeeze(para);
            if para.is_empty() {
                continue;
            }
            bytes_out += para.len();
            if bytes_out > MAX_TEXT_BYTES {
                return Err(ExtractError::TooLarge(format!("its text passes {} MiB", MAX_TEXT_BYTES >> 20)));
            }
            blocks.push(Block { heading: String::new(), page: Some(number), text: para });
        }
    }
    if blocks.is_empty() {
        return Err(ExtractError::Unsupported(
            "the PDF has no text layer (a scan?); text in images is not read".into(),
        ));
    }
    Ok(Extracted { format: Format::Pdf, title, pages: Some(pages.len() as u32), blocks })
}

fn info_title(doc: &lopdf::Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let dict = match info {
        lopdf::Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        lopdf::Object::Dictionary(d) => d,
        _ => return None,
    };
    let raw = dict.get(b"Title").ok()?.as_str().ok()?;
    let text = match raw {
        [0xFE, 0xFF, rest @ ..] => {
            char::decode_utf16(rest.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]])))
                .filter_map(Result::ok)
                .collect()
        }
        _ => raw.iter().map(|&b| b as char).collect::<String>(),
    };
    Some(squeeze(&text)).filter(|t| !t.is_empty())
}

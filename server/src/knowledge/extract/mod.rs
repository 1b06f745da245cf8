//! From a file's bytes to text with the structure that helps answers: the heading each passage
//! sits under, the page it is on, table rows as text. The format is decided by the content
//! (magic bytes, then whether it is text at all); the file's extension only tells Markdown and
//! CSV apart from plain text, which no content test can do reliably.
//!
//! Every extractor is bounded by the size of what it is given: the caller refuses files over
//! `knowledge.max_file_mib`, and the text an extractor produces may not grow past
//! [`MAX_TEXT_BYTES`].

mod html;
pub mod isolate;
mod markdown;
mod ooxml;
mod pdf;
mod table;
mod text;
mod xml;

use serde::{Deserialize, Serialize};

/// The most text one document may yield, whatever its format.
pub const MAX_TEXT_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Pdf,
    Docx,
    Pptx,
    Xlsx,
    Csv,
    Html,
    Markdown,
    Text,
    /// A recording, transcribed (see `knowledge::audio`).
    Audio,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Pptx => "pptx",
            Format::Xlsx => "xlsx",
            Format::Csv => "csv",
            Format::Html => "html",
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Audio => "audio",
        }
    }
}

/// One run of text under one heading (and on one page, where the format has pages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The heading path, outermost first, joined with " › "; empty before the first heading.
    pub heading: String,
    pub page: Option<u32>,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extracted {
    pub format: Format,
    /// The document's own title (an HTML `<title>`, a first heading), if it has one.
    pub title: Option<String>,
    pub pages: Option<u32>,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ExtractError {
    #[error("{0}")]
    Unsupported(String),
    #[error("the file is damaged or not what it claims to be: {0}")]
    Corrupt(String),
    #[error("the file is too large to extract: {0}")]
    TooLarge(String),
    #[error("the file holds no text to index")]
    Empty,
}

/// Extracts `bytes`, named `source` (a file name or path, for the extension hint): binary
/// formats in an isolated process where the binary allows it (see [`isolate`]).
pub fn extract(bytes: &[u8], source: &str) -> Result<Extracted, ExtractError> {
    isolate::extract(bytes, source)
}

/// Where a PDF's header starts: the format allows a little junk before it.
fn pdf_offset(bytes: &[u8]) -> Option<usize> {
    bytes[..bytes.len().min(1024)].windows(5).position(|w| w == b"%PDF-")
}

/// Extracts in this process.
fn extract_here(bytes: &[u8], source: &str) -> Result<Extracted, ExtractError> {
    let ext = extension(source);
    let extracted = if pdf_offset(bytes).is_some() {
        guarded(|| pdf::extract(bytes))?
    } else if bytes.starts_with(b"PK\x03\x04") {
        match ooxml::sniff(bytes) {
            Some(Format::Docx) => guarded(|| ooxml::docx(bytes))?,
            Some(Format::Pptx) => guarded(|| ooxml::pptx(bytes))?,
            Some(Format::Xlsx) => guarded(|| ooxml::xlsx(bytes))?,
            _ => {
                return Err(ExtractError::Unsupported(
                    "a ZIP archive that is not a Word, PowerPoint or Excel document cannot be added".into(),
                ));
            }
        }
    } else if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        // Office keeps a password-protected DOCX, XLSX or PPTX in this older container.
        let marker: Vec<u8> = "EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes).collect();
        return Err(ExtractError::Unsupported(if bytes.windows(marker.len()).any(|w| w == marker) {
            "the document is password-protected; remove the password and add it again".into()
        } else {
            "legacy Office files (.doc, .xls, .ppt) cannot be read; save the file as DOCX, XLSX or PPTX"
                .into()
        }));
    } else {
        let text = text::decode(bytes)?;
        if html::looks_like_html(&text) {
            html::extract(&text)
        } else if matches!(ext.as_str(), "csv" | "tsv") {
            table::extract(&text)?
        } else if matches!(ext.as_str(), "md" | "markdown" | "mdown" | "mkd")
            || markdown::looks_like_markdown(&text)
        {
            markdown::extract(&text)
        } else {
            text::extract(&text)
        }
    };
    if extracted.blocks.iter().all(|b| b.text.trim().is_empty()) {
        return Err(ExtractError::Empty);
    }
    Ok(extracted)
}

/// Runs a third-party parser, turning a panic on a malformed file into that file's failure.
fn guarded(
    parse: impl FnOnce() -> Result<Extracted, ExtractError> + std::panic::UnwindSafe,
) -> Result<Extracted, ExtractError> {
    std::panic::catch_unwind(parse)
        .unwrap_or_else(|_| Err(ExtractError::Corrupt("the reader failed on it (malformed file)".into())))
}

fn extension(source: &str) -> String {
    let name = source.rsplit(['/', '\\']).next().unwrap_or(source);
    name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default()
}

/// Collects blocks under a heading path, joining whitespace and dropping empty runs; shared by
/// the extractors that walk a tree of headings (Markdown, HTML).
#[derive(Default)]
pub(crate) struct Outline {
    headings: Vec<(u8, String)>,
    blocks: Vec<Block>,
    bytes: usize,
    pub(crate) title: Option<String>,
}

impl Outline {
    /// Sets the heading of `level` (1 for the outermost), forgetting any deeper ones.
    pub(crate) fn heading(&mut self, level: u8, text: &str) {
        let text = squeeze(text);
        if text.is_empty() {
            return;
        }
        if self.title.is_none() && level == 1 {
            self.title = Some(text.clone());
        }
        self.headings.retain(|(l, _)| *l < level);
        self.headings.push((level, text));
    }

    /// Adds a run of text under the current heading. `keep_lines` keeps line breaks (code,
    /// preformatted text); otherwise all whitespace becomes single spaces.
    pub(crate) fn text(&mut self, text: &str, keep_lines: bool) {
        let text = if keep_lines { text.trim_matches('\n').trim_end().to_string() } else { squeeze(text) };
        if text.is_empty() || self.bytes >= MAX_TEXT_BYTES {
            return;
        }
        self.bytes += text.len();
        let heading = self.headings.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>().join(" › ");
        self.blocks.push(Block { heading, page: None, text });
    }

    pub(crate) fn finish(self, format: Format) -> Extracted {
        Extracted { format, title: self.title, pages: None, blocks: self.blocks }
    }
}

/// Collapses every run of whitespace to one space and trims the ends.
pub(crate) fn squeeze(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_content_before_extension() {
        let html = extract(b"<!DOCTYPE html><title>T</title><p>Hello there</p>", "notes.txt").unwrap();
        assert_eq!(html.format, Format::Html);
        let md = extract(b"# Leave\n\nTwenty days a year.\n", "leave.md").unwrap();
        assert_eq!(md.format, Format::Markdown);
        let txt = extract(b"Just some words.\n", "a.txt").unwrap();
        assert_eq!(txt.format, Format::Text);
        let pdf = extract(b"%PDF-1.7\n...", "report.txt").unwrap_err();
        assert!(matches!(pdf, ExtractError::Corrupt(_)), "read as a PDF, whatever its name: {pdf}");
        let bin = extract(&[0u8, 1, 2, 3, 0, 0, 255, 254, 0, 7], "x.md").unwrap_err();
        assert!(matches!(bin, ExtractError::Unsupported(_)), "{bin}");
        let doc = extract(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0], "old.doc").unwrap_err();
        assert!(doc.to_string().contains("DOCX"), "{doc}");
        assert_eq!(extract(b"  \n\n ", "empty.txt").unwrap_err(), ExtractError::Empty);
    }
}

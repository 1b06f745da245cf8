//! Word, PowerPoint and Excel files (Office Open XML: a ZIP of XML parts). Every part read is
//! bounded: the archive may list at most [`MAX_ENTRIES`] files and expand to at most
//! [`MAX_EXPANDED`] bytes in all, counted as they are inflated rather than trusted from the
//! archive's directory, so a ZIP bomb stops at the bound.

use super::xml::{self, Node};
use super::{Block, ExtractError, Extracted, Format, MAX_TEXT_BYTES, squeeze};
use std::io::{Cursor, Read};

const MAX_ENTRIES: usize = 20_000;
const MAX_EXPANDED: u64 = 512 * 1024 * 1024;
const MAX_SHEET_CELLS: usize = 2_000_000;

struct Package<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    left: u64,
}

impl<'a> Package<'a> {
    fn open(bytes: &'a [u8]) -> Result<Package<'a>, ExtractError> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| ExtractError::Corrupt(format!("not a readable ZIP archive: {e}")))?;
        if zip.len() > MAX_ENTRIES {
            return Err(ExtractError::TooLarge(format!("the archive lists {} files", zip.len())));
        }
        Ok(Package { zip, left: MAX_EXPANDED })
    }

    fn has(&self, name: &str) -> bool {
        self.zip.index_for_name(name).is_some()
    }

    fn names(&self) -> Vec<String> {
        self.zip.file_names().filter_map(Result::ok).map(|n| n.into_owned()).collect()
    }

    /// A part as text, or `None` if the archive has no such part.
    fn read(&mut self, name: &str) -> Result<Option<String>, ExtractError> {
        let Some(index) = self.zip.index_for_name(name) else { return Ok(None) };
        let entry = self.zip.by_index(index).map_err(|e| match e {
            zip::result::ZipError::UnsupportedArchive(m) if m.contains("assword") => {
                ExtractError::Unsupported(
                    "the document is password-protected; remove the password and add it again".into(),
                )
            }
            e => ExtractError::Corrupt(format!("{name}: {e}")),
        })?;
        let mut out = Vec::new();
        entry
            .take(self.left + 1)
            .read_to_end(&mut out)
            .map_err(|e| ExtractError::Corrupt(format!("{name}: {e}")))?;
        if out.len() as u64 > self.left {
            return Err(ExtractError::TooLarge(format!(
                "the archive expands to more than {} MiB (a ZIP bomb?)",
                MAX_EXPANDED >> 20
            )));
        }
        self.left -= out.len() as u64;
        String::from_utf8(out)
            .map(Some)
            .map_err(|_| ExtractError::Corrupt(format!("{name} is not UTF-8 XML")))
    }
}

/// Which Office format a ZIP archive is, by the parts it holds.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    let p = Package::open(bytes).ok()?;
    if p.has("word/document.xml") {
        Some(Format::Docx)
    } else if p.has("ppt/presentation.xml") {
        Some(Format::Pptx)
    } else if p.has("xl/workbook.xml") {
        Some(Format::Xlsx)
    } else {
        None
    }
}

/// The title in the document's properties, if it has one.
fn core_title(p: &mut Package<'_>) -> Result<Option<String>, ExtractError> {
    let Some(core) = p.read("docProps/core.xml")? else { return Ok(None) };
    let (mut inside, mut title) = (false, String::new());
    xml::walk(&core, "docProps/core.xml", |n| match n {
        Node::Open("title", _) => inside = true,
        Node::Close("title") => inside = false,
        Node::Text(t) if inside => title.push_str(t),
        _ => {}
    })?;
    Ok(Some(squeeze(&title)).filter(|t| !t.is_empty()))
}

/// Collects blocks, bounded like every extractor's output.
#[derive(Default)]
struct Out {
    blocks: Vec<Block>,
    bytes: usize,
}

impl Out {
    fn push(&mut self, heading: &str, page: Option<u32>, text: &str) -> Result<(), ExtractError> {
        let text = squeeze(text);
        if text.is_empty() {
            return Ok(());
        }
        self.bytes += text.len();
        if self.bytes > MAX_TEXT_BYTES {
            return Err(ExtractError::TooLarge(format!("its text passes {} MiB", MAX_TEXT_BYTES >> 20)));
        }
        self.blocks.push(Block { heading: heading.to_string(), page, text });
        Ok(())
    }
}

/// Word: paragraphs, headings from the paragraph styles (Heading 1–9, Title), tables as rows;
/// the page is counted from the page breaks Word recorded when it last laid the document out.
pub fn docx(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut p = Package::open(bytes)?;
    let body =
        p.read("word/document.xml")?.ok_or_else(|| ExtractError::Corrupt("no word/document.xml".into()))?;
    let mut out = Out::default();
    let mut headings: Vec<(u8, String)> = Vec::new();
    let (mut para, mut row, mut style) = (String::new(), Vec::<String>::new(), None::<u8>);
    let (mut in_text, mut table_depth, mut page) = (false, 0usize, 1u32);
    let mut title = None;
    let mut failed = None;
    let mut flush = |out: &mut Out, text: &str, headings: &[(u8, String)], page: u32| {
        let h = headings.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(" › ");
        if let Err(e) = out.push(&h, Some(page), text) {
            failed.get_or_insert(e);
        }
    };
    xml::walk(&body, "word/document.xml", |n| match n {
        Node::Open("t", _) => in_text = true,
        Node::Close("t") => in_text = false,
        Node::Text(t) if in_text => para.push_str(t),
        Node::Open("tab", _) => para.push(' '),
        Node::Open("br", e) => {
            if xml::attr(e, "type").as_deref() == Some("page") {
                page += 1;
            }
            para.push(' ');
        }
        Node::Open("lastRenderedPageBreak", _) => page += 1,
        Node::Open("pStyle", e) => style = xml::attr(e, "val").and_then(|v| heading_level(&v)),
        Node::Open("p", _) => {
            para.clear();
            style = None;
        }
        Node::Close("p") => {
            if table_depth > 0 {
                let cell = squeeze(&para);
                if let Some(last) = row.last_mut() {
                    if !last.is_empty() && !cell.is_empty() {
                        last.push(' ');
                    }
                    last.push_str(&cell);
                }
            } else if let Some(level) = style {
                let text = squeeze(&para);
                if !text.is_empty() {
                    if title.is_none() && level <= 1 {
                        title = Some(text.clone());
                    }
                    headings.retain(|(l, _)| *l < level);
                    headings.push((level, text));
                }
            } else {
                flush(&mut out, &para, &headings, page);
            }
            para.clear();
        }
        Node::Open("tbl", _) => table_depth += 1,
        Node::Close("tbl") => table_depth = table_depth.saturating_sub(1),
        Node::Open("tr", _) => row.clear(),
        Node::Open("tc", _) => row.push(String::new()),
        Node::Close("tr") if table_depth == 1 => {
            let line = row.iter().map(|c| c.trim()).collect::<Vec<_>>().join(" | ");
            if row.iter().any(|c| !c.trim().is_empty()) {
                flush(&mut out, &line, &headings, page);
            }
        }
        _ => {}
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let title = core_title(&mut p)?.or(title);
    Ok(Extracted { format: Format::Docx, title, pages: Some(page), blocks: out.blocks })
}

/// "Heading1" … "Heading9" (and "Title") as levels; any other style is body text.
fn heading_level(style: &str) -> Option<u8> {
    let lower = style.to_ascii_lowercase();
    if lower == "title" {
        return Some(1);
    }
    let n = lower.strip_prefix("heading")?.trim_start_matches(' ');
    n.parse::<u8>().ok().filter(|n| (1..=9).contains(n))
}

/// PowerPoint: each slide is a page; its title placeholder is the heading of its text.
pub fn pptx(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut p = Package::open(bytes)?;
    let mut slides: Vec<(u32, String)> = p
        .names()
        .into_iter()
        .filter_map(|n| {
            let num = n.strip_prefix("ppt/slides/slide")?.strip_suffix(".xml")?.parse().ok()?;
            Some((num, n))
        })
        .collect();
    slides.sort();
    let mut out = Out::default();
    let mut first_title = None;
    for (number, name) in &slides {
        let Some(xml_text) = p.read(name)? else { continue };
        let mut shapes: Vec<(bool, Vec<String>)> = Vec::new(); // (is title, paragraphs)
        let (mut in_text, mut para) = (false, String::new());
        xml::walk(&xml_text, name, |n| match n {
            Node::Open("sp", _) => shapes.push((false, Vec::new())),
            Node::Open("ph", e) => {
                if matches!(xml::attr(e, "type").as_deref(), Some("title" | "ctrTitle"))
                    && let Some(s) = shapes.last_mut()
                {
                    s.0 = true;
                }
            }
            Node::Open("t", _) => in_text = true,
            Node::Close("t") => in_text = false,
            Node::Text(t) if in_text => para.push_str(t),
            Node::Open("br", _) => para.push(' '),
            Node::Close("p") => {
                if let Some(s) = shapes.last_mut() {
                    s.1.push(std::mem::take(&mut para));
                }
                para.clear();
            }
            _ => {}
        })?;
        let title = shapes.iter().find(|s| s.0).map(|s| squeeze(&s.1.join(" "))).unwrap_or_default();
        if first_title.is_none() && !title.is_empty() {
            first_title = Some(title.clone());
        }
        let heading = if title.is_empty() { format!("Slide {number}") } else { title.clone() };
        for (_, paras) in shapes.iter().filter(|s| !s.0) {
            for para in paras {
                out.push(&heading, Some(*number), para)?;
            }
        }
        if shapes.iter().all(|s| s.0 || s.1.iter().all(|p| p.trim().is_empty())) && !title.is_empty() {
            out.push(&heading, Some(*number), &title)?;
        }
    }
    let title = core_title(&mut p)?.or(first_title);
    let pages = slides.last().map(|(n, _)| *n);
    Ok(Extracted { format: Format::Pptx, title, pages, blocks: out.blocks })
}

/// Excel: each sheet under its name; rows as "column: value" pairs, the first row naming the
/// columns, as for CSV. Formulas count by their cached values.
pub fn xlsx(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut p = Package::open(bytes)?;
    let shared = match p.read("xl/sharedStrings.xml")? {
        Some(x) => shared_strings(&x)?,
        None => Vec::new(),
    };
    let workbook =
        p.read("xl/workbook.xml")?.ok_or_else(|| ExtractError::Corrupt("no xl/workbook.xml".into()))?;
    let rels = p.read("xl/_rels/workbook.xml.rels")?.unwrap_or_default();
    let mut targets = std::collections::HashMap::new();
    xml::walk(&rels, "xl/_rels/workbook.xml.rels", |n| {
        if let Node::Open("Relationship", e) = n
            && let (Some(id), Some(target)) = (xml::attr(e, "Id"), xml::attr(e, "Target"))
        {
            let target = target.trim_start_matches('/');
            let path = if target.starts_with("xl/") { target.to_string() } else { format!("xl/{target}") };
            targets.insert(id, path);
        }
    })?;
    let mut sheets = Vec::new();
    xml::walk(&workbook, "xl/workbook.xml", |n| {
        if let Node::Open("sheet", e) = n
            && let (Some(name), Some(id)) = (xml::attr(e, "name"), xml::attr(e, "id"))
        {
            sheets.push((name, id));
        }
    })?;
    let mut out = Out::default();
    let mut cells = 0usize;
    for (sheet, id) in &sheets {
        let Some(path) = targets.get(id) else { continue };
        let Some(x) = p.read(path)? else { continue };
        let rows = sheet_rows(&x, path, &shared, &mut cells)?;
        let mut iter = rows.into_iter();
        let header = iter.next().unwrap_or_default();
        for row in iter {
            let line = row
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(i, v)| match header.get(i).map(|h| h.trim()).filter(|h| !h.is_empty()) {
                    Some(h) => format!("{h}: {}", v.trim()),
                    None => v.trim().to_string(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            out.push(sheet, None, &line)?;
        }
        if out.blocks.iter().all(|b| &b.heading != sheet) {
            out.push(sheet, None, &header.join("; "))?;
        }
    }
    let title = core_title(&mut p)?;
    Ok(Extracted { format: Format::Xlsx, title, pages: None, blocks: out.blocks })
}

fn shared_strings(x: &str) -> Result<Vec<String>, ExtractError> {
    let (mut strings, mut current, mut in_text) = (Vec::new(), String::new(), false);
    xml::walk(x, "xl/sharedStrings.xml", |n| match n {
        Node::Open("si", _) => current.clear(),
        Node::Close("si") => strings.push(std::mem::take(&mut current)),
        Node::Open("t", _) => in_text = true,
        Node::Close("t") => in_text = false,
        Node::Text(t) if in_text => current.push_str(t),
        _ => {}
    })?;
    Ok(strings)
}

/// The rows of a worksheet, each cell placed at its column (`r="C7"`), empty cells empty.
fn sheet_rows(
    x: &str,
    part: &str,
    shared: &[String],
    cells: &mut usize,
) -> Result<Vec<Vec<String>>, ExtractError> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let (mut kind, mut col, mut value, mut in_value) = (String::new(), 0usize, String::new(), false);
    let mut too_many = false;
    xml::walk(x, part, |n| match n {
        Node::Open("row", _) => rows.push(Vec::new()),
        Node::Open("c", e) => {
            kind = xml::attr(e, "t").unwrap_or_default();
            col = xml::attr(e, "r").map_or_else(|| rows.last().map_or(0, Vec::len), |r| column(&r));
            value.clear();
        }
        Node::Open("v" | "t", _) => in_value = true,
        Node::Close("v" | "t") => in_value = false,
        Node::Text(t) if in_value => value.push_str(t),
        Node::Close("c") => {
            *cells += 1;
            if *cells > MAX_SHEET_CELLS || col > 16_384 {
                too_many = true;
                return;
            }
            let text = match kind.as_str() {
                "s" => value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| shared.get(i))
                    .cloned()
                    .unwrap_or_default(),
                "b" => {
                    if value.trim() == "1" {
                        "TRUE".into()
                    } else {
                        "FALSE".into()
                    }
                }
                _ => value.clone(),
            };
            if let Some(row) = rows.last_mut() {
                if row.len() <= col {
                    row.resize(col + 1, String::new());
                }
                row[col] = text;
            }
        }
        _ => {}
    })?;
    if too_many {
        return Err(ExtractError::TooLarge(format!("the workbook has more than {MAX_SHEET_CELLS} cells")));
    }
    Ok(rows)
}

/// The zero-based column of a cell reference: "A1" → 0, "AB12" → 27.
fn column(reference: &str) -> usize {
    reference
        .bytes()
        .take_while(u8::is_ascii_alphabetic)
        .fold(0usize, |n, b| {
            n.saturating_mul(26).saturating_add((b.to_ascii_uppercase() - b'A' + 1) as usize)
        })
        .saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_styles() {
        assert_eq!((column("A1"), column("Z9"), column("AA3"), column("AB12")), (0, 25, 26, 27));
        assert_eq!(heading_level("Heading2"), Some(2));
        assert_eq!(heading_level("Title"), Some(1));
        assert_eq!(heading_level("BodyText"), None);
    }
}

//! The logo and favicon admins upload: PNG checked for what it claims to be and its size, SVG
//! refused when it could run a script or reach outside the page (an SVG is a document, and a
//! logo is served from our own origin). Refused, never cleaned: an admin learns what is wrong
//! with the file instead of seeing a different picture than the one they chose.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

pub const MAX_BYTES: usize = 512 * 1024;
/// Wider or taller than this is no logo; it is a photo someone picked by mistake.
pub const MAX_PNG_SIDE: u32 = 2048;
const MAX_DEPTH: usize = 64;

pub const SVG: &str = "image/svg+xml";
pub const PNG: &str = "image/png";

/// Checks an image for `what` ("logo", "favicon") and answers its content type.
pub fn check(what: &str, content_type: &str, bytes: &[u8]) -> Result<&'static str, String> {
    if bytes.is_empty() {
        return Err(format!("the {what} file is empty"));
    }
    if bytes.len() > MAX_BYTES {
        return Err(format!("the {what} is larger than 512 KiB"));
    }
    match content_type {
        SVG => svg(bytes).map(|()| SVG).map_err(|e| format!("the {what} (SVG) is refused: {e}")),
        PNG => png(bytes).map(|()| PNG).map_err(|e| format!("the {what} (PNG) is refused: {e}")),
        other => {
            Err(format!("the {what} must be an SVG (image/svg+xml) or a PNG (image/png), not {other:?}"))
        }
    }
}

/// The content type a file's name suggests, for `ayushctl theme set --logo FILE`.
pub fn type_of_file(path: &std::path::Path) -> Result<&'static str, String> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("svg") => Ok(SVG),
        Some("png") => Ok(PNG),
        _ => Err(format!("{}: a logo or favicon must be a .svg or a .png file", path.display())),
    }
}

fn png(bytes: &[u8]) -> Result<(), String> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(SIGNATURE) {
        return Err("it does not start with the PNG signature".into());
    }
    // The first chunk is always IHDR: length 13, then width and height, big-endian.
    let ihdr = bytes.get(8..8 + 8 + 13).ok_or("it ends before its header")?;
    if &ihdr[4..8] != b"IHDR" || ihdr[..4] != [0, 0, 0, 13] {
        return Err("its first chunk is not the image header".into());
    }
    let side = |at: usize| u32::from_be_bytes([ihdr[at], ihdr[at + 1], ihdr[at + 2], ihdr[at + 3]]);
    let (width, height) = (side(8), side(12));
    if width == 0 || height == 0 {
        return Err("it has no pixels".into());
    }
    if width > MAX_PNG_SIDE || height > MAX_PNG_SIDE {
        return Err(format!("it is {width}×{height} pixels; at most {MAX_PNG_SIDE} on a side"));
    }
    if !bytes.ends_with(b"IEND\xaeB`\x82") {
        return Err("it is cut short (no end chunk)".into());
    }
    Ok(())
}

/// Elements that run code or embed another document.
const REFUSED_ELEMENTS: &[&str] =
    &["script", "foreignObject", "iframe", "embed", "object", "handler", "listener", "animation"];

fn svg(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let mut reader = Reader::from_str(text);
    let (mut depth, mut root_seen, mut in_style) = (0usize, false, false);
    loop {
        match reader.read_event().map_err(|e| format!("it is not well-formed XML ({e})"))? {
            Event::DocType(_) => return Err("it has a DOCTYPE (entities can reach outside the file)".into()),
            Event::PI(_) => return Err("it has a processing instruction".into()),
            Event::Start(e) => {
                element(&e, &mut root_seen)?;
                in_style = e.local_name().as_ref() == "style";
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("it nests elements deeper than {MAX_DEPTH} levels"));
                }
            }
            Event::Empty(e) => element(&e, &mut root_seen)?,
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                in_style = false;
            }
            Event::Text(t) if in_style => style(&t.xml10_content())?,
            Event::CData(t) if in_style => style(&t.xml10_content())?,
            Event::Eof if root_seen => return Ok(()),
            Event::Eof => return Err("it has no <svg> element".into()),
            _ => {}
        }
    }
}

fn element(e: &BytesStart<'_>, root_seen: &mut bool) -> Result<(), String> {
    let name = e.local_name();
    let name = name.as_ref();
    if !*root_seen {
        if name != "svg" {
            return Err(format!("its root element is <{name}>, not <svg>"));
        }
        *root_seen = true;
    }
    if REFUSED_ELEMENTS.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(format!("it has a <{name}> element"));
    }
    for attribute in e.attributes() {
        let attribute = attribute.map_err(|e| format!("an attribute of <{name}> is malformed ({e})"))?;
        let key = attribute.key.local_name();
        let key = key.as_ref().to_ascii_lowercase();
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| format!("an attribute of <{name}> is malformed ({e})"))?;
        if key.starts_with("on") {
            return Err(format!("<{name}> has an event handler ({key})"));
        }
        if key == "href" && !value.trim_start().starts_with('#') {
            return Err(format!("<{name}> refers outside the file ({value:?}); only #fragments are allowed"));
        }
        if key == "style" {
            style(&value)?;
        }
        if reaches_out(&value) {
            return Err(format!("<{name} {key}> refers outside the file ({value:?})"));
        }
    }
    Ok(())
}

/// A stylesheet inside the SVG may only point at the file's own fragments.
fn style(css: &str) -> Result<(), String> {
    let lower = css.to_ascii_lowercase();
    if lower.contains("@import") {
        return Err("its style imports another stylesheet".into());
    }
    if reaches_out(css) {
        return Err("its style refers outside the file".into());
    }
    Ok(())
}

/// `javascript:` anywhere, or a `url(...)` that is not `url(#...)`.
fn reaches_out(value: &str) -> bool {
    let lower: String = value.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    if lower.contains("javascript:") {
        return true;
    }
    let mut rest = lower.as_str();
    while let Some(at) = rest.find("url(") {
        rest = &rest[at + 4..];
        let target = rest.trim_start_matches(['"', '\'']);
        if !target.starts_with('#') {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r##"<?xml version="1.0"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10">
  <defs><linearGradient id="g"><stop offset="0" stop-color="#123"/></linearGradient></defs>
  <style>.a { fill: url(#g) }</style>
  <rect class="a" width="10" height="10" fill="url(#g)"/><use xlink:href="#g"/>
</svg>"##;

    fn refused(svg: &str) -> String {
        check("logo", SVG, svg.as_bytes()).unwrap_err()
    }

    #[test]
    fn a_plain_svg_passes() {
        assert_eq!(check("logo", SVG, GOOD.as_bytes()).unwrap(), SVG);
    }

    #[test]
    fn scripts_handlers_and_outside_references_are_refused() {
        let svg = |inner: &str| format!(r#"<svg xmlns="http://www.w3.org/2000/svg">{inner}</svg>"#);
        assert!(refused(&svg("<script>alert(1)</script>")).contains("<script>"));
        assert!(refused(&svg(r#"<rect onclick="x()"/>"#)).contains("event handler"));
        assert!(
            refused(r#"<svg xmlns="http://www.w3.org/2000/svg" onload="x()"/>"#).contains("event handler")
        );
        assert!(refused(&svg(r#"<image href="https://evil.example/x.png"/>"#)).contains("outside"));
        assert!(refused(&svg(r#"<use xlink:href="other.svg#a"/>"#)).contains("outside"));
        assert!(refused(&svg(r#"<a href="javascript:alert(1)"><rect/></a>"#)).contains("outside"));
        assert!(refused(&svg(r#"<rect style="fill: url( 'https://x/y' )"/>"#)).contains("outside"));
        assert!(refused(&svg("<style>@import url(https://x/y.css);</style>")).contains("imports"));
        assert!(refused(&svg("<foreignObject><div/></foreignObject>")).contains("foreignObject"));
        assert!(
            refused(r#"<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg>&x;</svg>"#)
                .contains("DOCTYPE")
        );
        assert!(refused("<html><svg/></html>").contains("root element"));
        assert!(refused("<svg><rect></svg>").contains("well-formed"));
    }

    fn png_of(width: u32, height: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        out.extend(width.to_be_bytes());
        out.extend(height.to_be_bytes());
        out.extend([8, 6, 0, 0, 0, 0, 0, 0, 0]);
        out.extend(b"\0\0\0\0IEND\xaeB`\x82");
        out
    }

    #[test]
    fn pngs_are_checked_for_their_header_and_size() {
        assert_eq!(check("favicon", PNG, &png_of(32, 32)).unwrap(), PNG);
        assert!(check("logo", PNG, &png_of(4096, 10)).unwrap_err().contains("4096×10"));
        assert!(check("logo", PNG, b"GIF89a....").unwrap_err().contains("signature"));
        assert!(check("logo", PNG, &png_of(32, 32)[..40]).unwrap_err().contains("cut short"));
        assert!(check("logo", "image/gif", b"GIF89a").unwrap_err().contains("SVG"));
        assert!(check("logo", PNG, &vec![0; MAX_BYTES + 1]).unwrap_err().contains("512 KiB"));
    }
}

//! HTML by a tolerant scan rather than a full parser: the text of the body, broken into blocks at
//! block-level elements, headings (h1–h6) as the path each block sits under, table cells joined
//! with " | " per row, the `<title>` as the title. Scripts, styles, navigation and templates are
//! skipped, and so is page chrome that documentation generators repeat on every page (see
//! [`is_chrome`]): indexed, it would be a passage of every page. The scan is linear in the input
//! and keeps no element stack, so nesting depth costs nothing.

use super::{Extracted, Format, Outline};

/// Whether text is an HTML document rather than text that mentions tags.
pub fn looks_like_html(text: &str) -> bool {
    let head: String = text.trim_start_matches('\u{feff}').trim_start().chars().take(1024).collect();
    let lower = head.to_ascii_lowercase();
    lower.starts_with("<!doctype html")
        || lower.starts_with("<html")
        || ((lower.starts_with("<?xml") || lower.starts_with("<!--")) && lower.contains("<html"))
        || (lower.starts_with('<') && (lower.contains("<head") || lower.contains("<body")))
}

const SKIPPED: [&str; 7] = ["script", "style", "noscript", "template", "nav", "svg", "iframe"];
/// ARIA landmarks that are never a page's content.
const CHROME_ROLES: [&str; 4] = ["navigation", "banner", "contentinfo", "search"];
/// Classes of chrome: Sphinx's "related" bars and sidebar, DocBook's navigation header and
/// footer, heading permalinks (¶), and the common names of breadcrumbs, nav bars and footers.
const CHROME_CLASSES: [&str; 10] = [
    "related",
    "sphinxsidebar",
    "headerlink",
    "navheader",
    "navfooter",
    "breadcrumb",
    "breadcrumbs",
    "navbar",
    "footer",
    "site-footer",
];
const BLOCKS: [&str; 30] = [
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "main",
    "aside",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "tr",
    "thead",
    "tbody",
    "br",
    "hr",
    "pre",
    "blockquote",
    "form",
    "figure",
    "figcaption",
    "caption",
    "body",
    "address",
    "details",
    "summary",
];

pub fn extract(html: &str) -> Extracted {
    let mut out = Outline::default();
    let mut buf = String::new();
    let mut title: Option<String> = None;
    let mut in_title = false;
    let mut heading: Option<u8> = None;
    let mut pre = 0usize;
    let mut cells = 0usize;
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            buf.push_str(&decode_entities(rest));
            break;
        };
        let text = &rest[..lt];
        if in_title {
            title.get_or_insert_with(String::new).push_str(&decode_entities(text));
        } else {
            buf.push_str(&decode_entities(text));
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let Some(tag) = Tag::parse(rest) else {
            buf.push('<');
            rest = &rest[1..];
            continue;
        };
        let raw = &rest[..tag.len];
        rest = &rest[tag.len..];
        let name = tag.name.as_str();
        if !tag.closing && SKIPPED.contains(&name) {
            rest = skip_element(rest, name);
            continue;
        }
        if !tag.closing && is_chrome(name, raw) {
            rest = skip_balanced(rest, name);
            continue;
        }
        match name {
            "title" => in_title = !tag.closing,
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                let level = name.as_bytes()[1] - b'0';
                if tag.closing {
                    if let Some(l) = heading.take() {
                        out.heading(l, &buf);
                    }
                    buf.clear();
                } else {
                    out.text(&buf, pre > 0);
                    buf.clear();
                    heading = Some(level);
                }
            }
            "td" | "th" if !tag.closing => {
                if cells > 0 {
                    buf.push_str(" | ");
                }
                cells += 1;
            }
            "tr" => {
                out.text(&buf, false);
                buf.clear();
                cells = 0;
            }
            "pre" => {
                out.text(&buf, pre > 0);
                buf.clear();
                pre = if tag.closing { pre.saturating_sub(1) } else { pre + 1 };
            }
            _ if BLOCKS.contains(&name) && heading.is_none() => {
                out.text(&buf, pre > 0);
                buf.clear();
            }
            _ => {}
        }
    }
    out.text(&buf, pre > 0);
    let mut extracted = out.finish(Format::Html);
    if let Some(t) = title.map(|t| super::squeeze(&t)).filter(|t| !t.is_empty()) {
        extracted.title = Some(t);
    }
    extracted
}

struct Tag {
    name: String,
    closing: bool,
    /// Bytes from '<' to just past '>'.
    len: usize,
}

impl Tag {
    /// A start or end tag at the start of `s`, or a declaration (`<!DOCTYPE>`, `<?xml?>`) as a
    /// nameless tag; `None` when the '<' is text.
    fn parse(s: &str) -> Option<Tag> {
        let bytes = s.as_bytes();
        let mut i = 1;
        if matches!(bytes.get(1), Some(b'!' | b'?')) {
            let end = s.find('>')?;
            return Some(Tag { name: String::new(), closing: false, len: end + 1 });
        }
        let closing = bytes.get(1) == Some(&b'/');
        if closing {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == start || !bytes[start].is_ascii_alphabetic() {
            return None;
        }
        let name = s[start..i].to_ascii_lowercase();
        // To the closing '>', past quoted attribute values that may hold one.
        let mut quote = None;
        while i < bytes.len() {
            match (quote, bytes[i]) {
                (None, b'>') => return Some(Tag { name, closing, len: i + 1 }),
                (None, q @ (b'"' | b'\'')) => quote = Some(q),
                (Some(q), b) if b == q => quote = None,
                _ => {}
            }
            i += 1;
        }
        Some(Tag { name, closing, len: bytes.len() })
    }
}

/// Whether the element `<name …>` (its start tag `raw`) is page chrome rather than content.
fn is_chrome(name: &str, raw: &str) -> bool {
    if name == "footer" {
        return true;
    }
    if attr(raw, "role").is_some_and(|r| CHROME_ROLES.contains(&r.trim().to_ascii_lowercase().as_str())) {
        return true;
    }
    if attr(raw, "id").is_some_and(|id| id.eq_ignore_ascii_case("footer")) {
        return true;
    }
    attr(raw, "class").is_some_and(|c| c.split_ascii_whitespace().any(|c| CHROME_CLASSES.contains(&c)))
}

/// The value of attribute `name` in a start tag, quoted or not.
fn attr<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let bytes = raw.as_bytes();
    let mut from = 0;
    while let Some(i) = raw[from..].find(name).map(|i| i + from) {
        from = i + name.len();
        let before_ok = i > 0 && bytes[i - 1].is_ascii_whitespace();
        let rest = raw[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let value = rest[1..].trim_start();
        return Some(match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split(|c: char| c.is_ascii_whitespace() || c == '>').next().unwrap_or(""),
        });
    }
    None
}

/// Past the end tag that closes an element `name` whose start tag was just read, counting the
/// same elements nested inside it (a sidebar of divs in divs).
fn skip_balanced<'a>(mut rest: &'a str, name: &str) -> &'a str {
    let mut depth = 1usize;
    while let Some(lt) = rest.find('<') {
        rest = &rest[lt..];
        let Some(tag) = Tag::parse(rest) else {
            rest = &rest[1..];
            continue;
        };
        let self_closing = rest[..tag.len].ends_with("/>");
        rest = &rest[tag.len..];
        if tag.name == name {
            if tag.closing {
                depth -= 1;
                if depth == 0 {
                    return rest;
                }
            } else if !self_closing {
                depth += 1;
            }
        }
    }
    ""
}

/// Past the end tag of an element whose content is not text (`</script>` and the like),
/// matched without regard to case and without copying the rest of the document.
fn skip_element<'a>(rest: &'a str, name: &str) -> &'a str {
    let mut from = 0;
    while let Some(i) = rest[from..].find("</") {
        let after = &rest[from + i + 2..];
        if after.len() >= name.len() && after.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes()) {
            return after.find('>').map_or("", |j| &after[j + 1..]);
        }
        from += i + 2;
    }
    ""
}

/// Character references: numeric ones and the named ones documents actually use.
fn decode_entities(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '#')).map(|i| i + 1);
        let decoded = end
            .filter(|&e| e > 1 && e <= 12 && rest[e..].starts_with(';'))
            .and_then(|e| entity(&rest[1..e]).map(|c| (c, e + 1)));
        match decoded {
            Some((c, used)) => {
                out.push(c);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.into()
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "euro" => '€',
        "pound" => '£',
        "deg" => '°',
        "times" => '×',
        "middot" => '·',
        "bull" => '•',
        "rarr" => '→',
        "larr" => '←',
        "shy" => '\u{ad}',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_text_under_headings() {
        let e = extract(
            "<!DOCTYPE html><html><head><title>Leave &amp; travel</title><style>p{x:1}</style>\
             <script>var a = '<p>no</p>';</script></head><body><nav><a>Home</a></nav>\
             <h1>Handbook</h1><p>Intro &ldquo;text&rdquo;&#33; <b>bold</b></p><!-- a comment <p> -->\
             <h2 id=\"leave\">Leave</h2><div>Twenty\n   days</div><table><tr><th>Who</th><th>Weeks</th></tr>\
             <tr><td>Mother</td><td>26</td></tr></table><pre>line 1\n  line 2</pre><p>a < b and AT&T</p>",
        );
        let got: Vec<(&str, &str)> = e.blocks.iter().map(|b| (b.heading.as_str(), b.text.as_str())).collect();
        assert_eq!(
            got,
            [
                ("Handbook", "Intro “text”! bold"),
                ("Handbook › Leave", "Twenty days"),
                ("Handbook › Leave", "Who | Weeks"),
                ("Handbook › Leave", "Mother | 26"),
                ("Handbook › Leave", "line 1\n  line 2"),
                ("Handbook › Leave", "a < b and AT&T"),
            ]
        );
        assert_eq!(e.title.as_deref(), Some("Leave & travel"));
    }

    #[test]
    fn page_chrome_is_not_content() {
        // A Sphinx page: related bars above and below, a sidebar, permalinks on headings.
        let e = extract(
            "<html><body><div class=\"related\" role=\"navigation\"><ul><li>index</li><li>modules</li>\
             <li>Python » 3.11 Documentation »</li></ul></div><div class=\"document\"><div class=\"body\">\
             <h1>string — Common string operations<a class=\"headerlink\" href=\"#s\">¶</a></h1>\
             <p>Source code: Lib/string.py</p></div></div>\
             <div class=\"sphinxsidebar\"><div><h3>Previous topic</h3><p>Text Processing</p></div></div>\
             <div class=related><ul><li>next</li></ul></div><div class=\"footer\">© Copyright</div>\
             <footer><p>Site footer</p></footer><div id=\"footer\"><p>Last updated</p></div>\
             <header role=\"banner\">Site banner</header><p>After</p></body></html>",
        );
        let got: Vec<(&str, &str)> = e.blocks.iter().map(|b| (b.heading.as_str(), b.text.as_str())).collect();
        assert_eq!(
            got,
            [
                ("string — Common string operations", "Source code: Lib/string.py"),
                ("string — Common string operations", "After"),
            ]
        );
        // A plain <header> holds an article's heading: kept.
        let kept = extract(
            "<html><body><article><header><h1>Title</h1></header><p>Body</p></article></body></html>",
        );
        assert_eq!(kept.blocks[0].heading, "Title");
        assert_eq!(attr("<p data-class=\"x\" class=y>", "class"), Some("y"));
    }

    #[test]
    fn hostile_input_is_linear() {
        let deep = "<div>".repeat(200_000) + "deep" + &"</div>".repeat(200_000);
        let e = extract(&format!("<html><body>{deep}"));
        assert_eq!(e.blocks.len(), 1);
        let unclosed = extract("<html><body><p>text <a href=\"never closed");
        assert_eq!(unclosed.blocks[0].text, "text");
    }
}

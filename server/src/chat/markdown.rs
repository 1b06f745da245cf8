//! Markdown from a model, rendered to HTML on the server and made safe: raw HTML in the text is
//! shown as text, and links or images may only point to http(s), mailto or relative addresses.
//! Nothing a model writes can run script in the page.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        // A colon before any slash, query or fragment is a scheme.
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

pub fn to_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link { link_type, dest_url, title, id }) if !safe_url(&dest_url) => {
            Event::Start(Tag::Link { link_type, dest_url: CowStr::Borrowed("#"), title, id })
        }
        Event::Start(Tag::Image { link_type, dest_url, title, id }) if !safe_url(&dest_url) => {
            Event::Start(Tag::Image { link_type, dest_url: CowStr::Borrowed(""), title, id })
        }
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown_and_code() {
        let html = to_html("# Title\n\n**bold** and `code`\n\n```rust\nfn main() {}\n```\n");
        assert!(html.contains("<h1>Title</h1>") && html.contains("<strong>bold</strong>"));
        assert!(html.contains("<pre><code class=\"language-rust\">fn main() {}"));
    }

    #[test]
    fn no_script_survives() {
        for attack in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "[click](javascript:alert(1))",
            "[click]( JAVASCRIPT:alert(1))",
            "![x](data:text/html,<script>alert(1)</script>)",
            "<a href=\"javascript:alert(1)\">x</a>",
        ] {
            let html = to_html(attack);
            // Escaped text may mention anything; what must not exist is live markup.
            let lower = html.to_lowercase();
            assert!(!lower.contains("<script") && !lower.contains("<img src=x"), "{attack} -> {html}");
            assert!(
                !lower.contains("<a href=\"javascript") && !lower.contains("<a href=\" javascript"),
                "{attack} -> {html}"
            );
            assert!(!html.contains("href=\"data:") && !html.contains("src=\"data:"), "{attack} -> {html}");
        }
        assert!(to_html("[ok](https://example.com)").contains("href=\"https://example.com\""));
        assert!(to_html("[rel](/docs#x)").contains("href=\"/docs#x\""));
    }
}

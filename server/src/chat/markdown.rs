//! Markdown from a model, rendered to HTML on the server and made safe: raw HTML in the text is
//! shown as text, and links or images may only point to http(s), mailto or relative addresses.
//! Nothing a model writes can run script in the page. Fenced code in a known language is
//! coloured (`highlight`), and math becomes MathML (`math`).

use super::{highlight, math};
use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd, html};

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
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_MATH;
    let markdown = math::normalize_delimiters(markdown);
    let mut events = Vec::new();
    // A fenced block being read, to be coloured whole when it ends: its language and text.
    let mut fence: Option<(String, String)> = None;
    for event in Parser::new_ext(&markdown, options) {
        match (event, &mut fence) {
            (Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))), _) => {
                fence = Some((highlight::language_token(&info), String::new()));
            }
            (Event::Text(text), Some((_, code))) => code.push_str(&text),
            (Event::End(TagEnd::CodeBlock), Some(_)) => {
                let Some((language, code)) = fence.take() else { continue };
                // Our own markup, around text the highlighter (or the escaper) made safe.
                let class = if language.is_empty() {
                    String::new()
                } else {
                    format!(" class=\"language-{language}\"")
                };
                let body = highlight::to_html(&language, &code).unwrap_or_else(|| escape(&code));
                events.push(Event::Html(CowStr::from(format!("<pre><code{class}>{body}</code></pre>\n"))));
            }
            (Event::Html(raw) | Event::InlineHtml(raw), _) => events.push(Event::Text(raw)),
            // Our own markup again: the renderer escapes the formula's text.
            (Event::InlineMath(latex), _) => {
                events.push(Event::InlineHtml(math::to_html(&latex, false).into()))
            }
            (Event::DisplayMath(latex), _) => {
                let html = format!("<span class=\"math-block\">{}</span>", math::to_html(&latex, true));
                events.push(Event::InlineHtml(html.into()));
            }
            (Event::Start(Tag::Link { link_type, dest_url, title, id }), _) if !safe_url(&dest_url) => {
                events.push(Event::Start(Tag::Link { link_type, dest_url: CowStr::Borrowed("#"), title, id }))
            }
            (Event::Start(Tag::Image { link_type, dest_url, title, id }), _) if !safe_url(&dest_url) => {
                events.push(Event::Start(Tag::Image { link_type, dest_url: CowStr::Borrowed(""), title, id }))
            }
            (other, _) => events.push(other),
        }
    }
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    out
}

/// Text as HTML text.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_markdown_and_code() {
        let html = to_html("# Title\n\n**bold** and `code`\n\n```rust\nfn main() {}\n```\n");
        assert!(html.contains("<h1>Title</h1>") && html.contains("<strong>bold</strong>"));
        assert!(
            html.contains("<pre><code class=\"language-rust\"><span class=\"hl-source hl-rust\">"),
            "{html}"
        );
        assert!(html.contains(">fn</span>"), "coloured: {html}");
        let plain = to_html("```\n<b>x</b> & y\n```\n");
        assert!(plain.contains("<pre><code>&lt;b&gt;x&lt;/b&gt; &amp; y\n</code></pre>"), "{plain}");
        let unknown = to_html("```klingon\nqapla'\n```\n");
        assert!(unknown.contains("<pre><code class=\"language-klingon\">qapla'\n</code></pre>"), "{unknown}");
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

    #[test]
    fn math_is_rendered_where_it_is_math() {
        let html = to_html("Euler: $e^{i\\pi} + 1 = 0$.\n\n$$\\int_0^1 x\\,dx = \\frac{1}{2}$$\n");
        assert!(html.contains("<p>Euler: <math") && html.contains("<msup>"), "{html}");
        assert!(html.contains("<span class=\"math-block\"><math display=\"block\""), "{html}");
        let other = to_html("So \\(x^2\\) and\n\\[\ny = 1\n\\]\n");
        assert_eq!(other.matches("<math").count(), 2, "{other}");
        // Code keeps its dollars; prices stay prose.
        let code = to_html("`$x$` and\n```sh\necho $HOME $PATH\n```\n");
        assert!(!code.contains("<math"), "{code}");
        let prices = to_html("It costs $5 and $10 a month.");
        assert!(!prices.contains("<math"), "{prices}");
    }
}

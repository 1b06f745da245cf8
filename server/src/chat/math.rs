//! Math in answers: LaTeX between `$…$` or `$$…$$` (and the `\(…\)`, `\[…\]` many models
//! write) rendered on the server to MathML Core, which browsers lay out themselves (Chromium
//! since 109, Firefox, Safari) with the Latin Modern Math font the binary serves. The renderer
//! is pulldown-latex: pure Rust, made for MathML Core, and a pull parser in the manner of the
//! pulldown-cmark that reads the Markdown around it. Nothing runs in the browser and nothing is
//! fetched; screen readers read MathML as math.
//!
//! Math that does not parse is shown as written, never as the renderer's error markup (which
//! carries the input unescaped).

use super::markdown::escape;
use pulldown_latex::config::DisplayMode;
use pulldown_latex::{Parser, RenderConfig, Storage, push_mathml};
use std::borrow::Cow;

/// Longer formulas are shown as written: no answer needs one, and each costs render time.
const MAX_CHARS: usize = 5_000;

/// `latex` as a `<math>` element, shown inline or as a block; or, where it does not parse, the
/// source in a `<code>` element.
pub fn to_html(latex: &str, display: bool) -> String {
    mathml(latex, display).unwrap_or_else(|| {
        let (open, close) = if display { ("$$", "$$") } else { ("$", "$") };
        format!("<code class=\"math-source\">{open}{}{close}</code>", escape(latex))
    })
}

fn mathml(latex: &str, display: bool) -> Option<String> {
    if latex.trim().is_empty() || latex.len() > MAX_CHARS {
        return None;
    }
    let storage = Storage::new();
    let events: Vec<_> = Parser::new(latex, &storage).collect();
    if events.iter().any(Result::is_err) {
        return None;
    }
    // The source goes with the math (copied with it, read by tools); escaped here, as the
    // renderer writes it as given.
    let source = escape(latex);
    let config = RenderConfig {
        display_mode: if display { DisplayMode::Block } else { DisplayMode::Inline },
        ..RenderConfig::with_annotation(&source)
    };
    let mut out = String::new();
    push_mathml(&mut out, events.into_iter(), config).ok()?;
    Some(without_inline_styles(&out).into_owned())
}

/// The page's CSP allows no inline styles, and a browser reports each one it refuses; the few
/// the renderer writes (colours, negative space) are dropped. Only inside tags: the formula's
/// text may hold `style="` too, but never a raw `<` or `>` (the renderer escapes them), so the
/// tags are where they seem.
fn without_inline_styles(html: &str) -> Cow<'_, str> {
    const ATTR: &str = " style=\"";
    if !html.contains(ATTR) {
        return Cow::Borrowed(html);
    }
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').map_or(rest.len(), |i| open + i + 1);
        out.push_str(&rest[..open]);
        let mut tag = &rest[open..close];
        while let Some(at) = tag.find(ATTR) {
            out.push_str(&tag[..at]);
            let value = &tag[at + ATTR.len()..];
            tag = value.find('"').map_or("", |end| &value[end + 1..]);
        }
        out.push_str(tag);
        rest = &rest[close..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// `\(…\)` and `\[…\]` as `$…$` and `$$…$$`, which the Markdown parser reads as math; outside
/// code, and only where the pair closes.
pub fn normalize_delimiters(markdown: &str) -> Cow<'_, str> {
    if !markdown.contains("\\(") && !markdown.contains("\\[") {
        return Cow::Borrowed(markdown);
    }
    let mut out = String::with_capacity(markdown.len());
    let mut fence: Option<&str> = None;
    // Prose between code, gathered so a `\[…\]` may span its lines.
    let mut prose = String::new();
    for line in markdown.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => {
                out.push_str(&convert_prose(&std::mem::take(&mut prose)));
                fence = Some(m);
                out.push_str(line);
            }
            (Some(open), Some(m)) if open == m => {
                fence = None;
                out.push_str(line);
            }
            (Some(_), _) => out.push_str(line),
            (None, None) => prose.push_str(line),
        }
    }
    out.push_str(&convert_prose(&prose));
    Cow::Owned(out)
}

/// Converts the delimiter pairs in prose, leaving `inline code` as it is.
fn convert_prose(prose: &str) -> String {
    // Split into code spans (odd pieces) and text (even pieces) by backtick runs.
    let mut out = String::with_capacity(prose.len());
    let mut text = String::new();
    let mut rest = prose;
    while let Some(start) = rest.find('`') {
        let run = rest[start..].chars().take_while(|c| *c == '`').count();
        let ticks = &rest[start..start + run];
        let after = &rest[start + run..];
        let Some(end) = after.find(ticks) else { break };
        text.push_str(&rest[..start]);
        out.push_str(&convert_text(&std::mem::take(&mut text)));
        out.push_str(&rest[start..start + run + end + run]);
        rest = &after[end + run..];
    }
    text.push_str(rest);
    out.push_str(&convert_text(&text));
    out
}

fn convert_text(text: &str) -> String {
    let mut s = text.to_string();
    for (open, close, dollars) in [("\\[", "\\]", "$$"), ("\\(", "\\)", "$")] {
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(at) = rest.find(open) {
            let inner = &rest[at + open.len()..];
            let Some(end) = inner.find(close) else { break };
            out.push_str(&rest[..at]);
            out.push_str(dollars);
            out.push_str(inner[..end].trim());
            out.push_str(dollars);
            rest = &inner[end + close.len()..];
        }
        out.push_str(rest);
        s = out;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_mathml() {
        let html = to_html(r"\frac{a}{b} + \sqrt{x^2}", false);
        assert!(html.starts_with("<math") && html.contains("<mfrac>") && html.contains("<msqrt>"), "{html}");
        assert!(html.contains("application/x-tex"), "the source goes along: {html}");
        assert!(to_html("x", true).contains("display=\"block\""), "{}", to_html("x", true));
    }

    #[test]
    fn broken_or_hostile_math_is_text() {
        for attack in [
            r"\frac{",
            r"\notacommand{<script>alert(1)</script>}",
            r"\text{<img src=x onerror=alert(1)>}",
            r#"x" onmouseover="alert(1)"#,
            r"\href{javascript:alert(1)}{x}",
            r"\color{red}{x} \hspace{-1em} y",
        ] {
            let html = to_html(attack, false);
            let lower = html.to_lowercase();
            assert!(!lower.contains("<script") && !lower.contains("<img"), "{attack} -> {html}");
            assert!(!lower.contains("href=") && !lower.contains("style="), "{attack} -> {html}");
        }
        assert!(to_html(r"\frac{", false).starts_with("<code class=\"math-source\">$\\frac{$"));
        // Words in a formula that look like a style are kept, and the markup stays whole.
        let text = to_html(r#"\text{a style="b} + \color{red}{c}"#, false);
        assert!(text.contains(r#"a style="b"#) && !text.contains("color:"), "{text}");
        assert_eq!(text.matches("<mtext").count(), text.matches("</mtext>").count(), "{text}");
    }

    #[test]
    fn other_delimiters_become_dollars_outside_code() {
        assert_eq!(normalize_delimiters(r"so \(x^2\) and \[ y \]"), r"so $x^2$ and $$y$$");
        assert_eq!(normalize_delimiters("no math here"), "no math here");
        let fenced = "```\n\\(x\\)\n```\nthen \\(y\\)\n";
        assert_eq!(normalize_delimiters(fenced), "```\n\\(x\\)\n```\nthen $y$\n");
        assert_eq!(normalize_delimiters(r"`\(x\)` and \(y\)"), r"`\(x\)` and $y$");
        assert_eq!(normalize_delimiters(r"an open \( alone"), r"an open \( alone");
        assert_eq!(normalize_delimiters("\\[\na = b\n\\]\n"), "$$a = b$$\n");
    }
}

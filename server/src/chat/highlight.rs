//! Code in answers, coloured on the server when the Markdown is rendered: syntect (the
//! highlighter of `bat`, `delta` and `zola`; pure Rust with its fancy-regex engine) with the
//! Sublime Text syntaxes it bundles, marking tokens with CSS classes (`hl-keyword`,
//! `hl-string`, …) that app.css colours. Nothing runs in the browser and nothing is fetched.

use std::sync::OnceLock;
use syntect::html::{ClassStyle, ClassedHTMLGenerator};
use syntect::parsing::SyntaxSet;
use syntect::util::LinesWithEndings;

/// Longer blocks are shown plain: colour is not worth the time on a log dump.
const MAX_CHARS: usize = 20_000;

fn syntaxes() -> &'static SyntaxSet {
    static SET: OnceLock<SyntaxSet> = OnceLock::new();
    SET.get_or_init(SyntaxSet::load_defaults_newlines)
}

/// A fence's language as a class name can carry it: letters, digits and `+#._-` only.
pub fn language_token(info: &str) -> String {
    info.split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+#._-".contains(*c))
        .take(32)
        .collect()
}

/// `code` as HTML spans for the fence's `language`, or `None` where the language is unknown
/// or the block too long (the caller shows it plain). The text is escaped by the generator.
pub fn to_html(language: &str, code: &str) -> Option<String> {
    if language.is_empty() || code.len() > MAX_CHARS {
        return None;
    }
    let set = syntaxes();
    let syntax = set.find_syntax_by_token(language)?;
    let mut generator =
        ClassedHTMLGenerator::new_with_class_style(syntax, set, ClassStyle::SpacedPrefixed { prefix: "hl-" });
    for line in LinesWithEndings::from(code) {
        generator.parse_html_for_line_which_includes_newline(line).ok()?;
    }
    Some(generator.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_languages_are_coloured_and_escaped() {
        let html = to_html("rust", "fn main() { let s = \"<b>\"; }\n").unwrap();
        assert!(html.contains("class=\"hl-storage hl-type hl-function hl-rust\">fn</span>"), "{html}");
        assert!(html.contains("&lt;b&gt;") && !html.contains("<b>"), "{html}");
        assert!(to_html("python", "def f():\n    return 1\n").unwrap().contains("hl-keyword"));
        assert!(to_html("py", "x = 1\n").is_some(), "by extension too");
        assert_eq!(to_html("no-such-language", "x"), None);
        assert_eq!(to_html("", "x"), None);
        assert_eq!(language_token("rust ignore"), "rust");
        assert_eq!(language_token("c++\"><script>"), "c++script");
    }
}

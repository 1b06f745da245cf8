//! Markdown (CommonMark with tables): headings become the path each passage sits under; table
//! rows become "cell | cell" lines under their header row.

use super::{Extracted, Format, Outline};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Whether text without a telling extension reads as Markdown: it has ATX headings.
pub fn looks_like_markdown(text: &str) -> bool {
    let mut headings = 0;
    for line in text.lines().take(200) {
        let hashes = line.bytes().take_while(|&b| b == b'#').count();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            headings += 1;
        }
    }
    headings >= 2 || text.trim_start().starts_with("# ")
}

pub fn extract(text: &str) -> Extracted {
    let mut out = Outline::default();
    let mut buf = String::new();
    let mut heading: Option<u8> = None;
    let mut code = false;
    let mut cells = 0usize;
    for event in Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                flush(&mut out, &mut buf, false);
                heading = Some(level as u8);
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(level) = heading.take() {
                    out.heading(level, &buf);
                }
                buf.clear();
            }
            Event::Start(Tag::CodeBlock(_)) => {
                flush(&mut out, &mut buf, false);
                code = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                flush(&mut out, &mut buf, true);
                code = false;
            }
            Event::Start(Tag::List(_) | Tag::Item | Tag::BlockQuote(_) | Tag::Table(_)) => {
                flush(&mut out, &mut buf, false)
            }
            Event::Start(Tag::TableRow | Tag::TableHead) => cells = 0,
            Event::Start(Tag::TableCell) => {
                if cells > 0 {
                    buf.push_str(" | ");
                }
                cells += 1;
            }
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Item
                | TagEnd::TableRow
                | TagEnd::TableHead
                | TagEnd::BlockQuote(_),
            ) => flush(&mut out, &mut buf, false),
            Event::Text(t) | Event::Code(t) => buf.push_str(&t),
            Event::SoftBreak => buf.push(' '),
            Event::HardBreak => buf.push(if code { '\n' } else { ' ' }),
            _ => {}
        }
    }
    flush(&mut out, &mut buf, code);
    out.finish(Format::Markdown)
}

fn flush(out: &mut Outline, buf: &mut String, keep_lines: bool) {
    out.text(buf, keep_lines);
    buf.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_nest_and_tables_become_rows() {
        let e = extract(
            "# Handbook\n\nIntro text.\n\n## Leave\n\nTwenty *days*.\n\n- one\n- two\n\n\
             ### Parental\n\n| Who | Weeks |\n|---|---|\n| Mother | 26 |\n\n## Travel\n\n```\nfn x() {}\n```\n",
        );
        let got: Vec<(&str, &str)> = e.blocks.iter().map(|b| (b.heading.as_str(), b.text.as_str())).collect();
        assert_eq!(
            got,
            [
                ("Handbook", "Intro text."),
                ("Handbook › Leave", "Twenty days."),
                ("Handbook › Leave", "one"),
                ("Handbook › Leave", "two"),
                ("Handbook › Leave › Parental", "Who | Weeks"),
                ("Handbook › Leave › Parental", "Mother | 26"),
                ("Handbook › Travel", "fn x() {}"),
            ]
        );
        assert_eq!(e.title.as_deref(), Some("Handbook"));
        assert!(looks_like_markdown("# A\n\ntext"));
        assert!(!looks_like_markdown("#hashtag and prose\n"));
    }
}

//! Cutting a document into the passages retrieval ranks and the prompt quotes. A passage never
//! spans two headings or two pages; within one, paragraphs are packed up to about
//! [`TARGET_CHARS`], and each passage starts with the last sentences of the one before, so an
//! answer that straddles a cut is still found.
//!
//! The size was chosen on `bench/retrieval`'s three question sets (bench/NOTES.md): 1,400
//! characters with 250 of overlap ranked as well as or better than 600 and 1,000 on every set,
//! by words alone and with meaning, and makes fewer passages to embed. A full passage is some
//! 350 tokens, past all-MiniLM-L6-v2's 256: its vector reads the first three quarters, its
//! words are all indexed.
//!
//! A passage's key is a hash of the document's source name, its text and how many identical
//! passages came before it: re-ingesting an unchanged document yields the same keys, and a
//! changed one keeps the keys of the passages that did not change.

use super::extract::{Block, Extracted};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub const TARGET_CHARS: usize = 1400;
/// A single sentence longer than this is cut at a space.
const MAX_PIECE_CHARS: usize = 1200;
const OVERLAP_CHARS: usize = 250;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub key: String,
    pub heading: String,
    pub page: Option<u32>,
    pub text: String,
}

pub fn chunk(source: &str, doc: &Extracted) -> Vec<Chunk> {
    let mut texts: Vec<(String, Option<u32>, String)> = Vec::new();
    let mut start = 0;
    while start < doc.blocks.len() {
        let (heading, page) = (&doc.blocks[start].heading, doc.blocks[start].page);
        let end = doc.blocks[start..]
            .iter()
            .position(|b| &b.heading != heading || b.page != page)
            .map_or(doc.blocks.len(), |n| start + n);
        for text in pack(&doc.blocks[start..end]) {
            texts.push((heading.clone(), page, text));
        }
        start = end;
    }
    let mut seen: HashMap<String, u32> = HashMap::new();
    texts
        .into_iter()
        .map(|(heading, page, text)| {
            let n = seen.entry(text.clone()).or_default();
            let key = key(source, &text, *n);
            *n += 1;
            Chunk { key, heading, page, text }
        })
        .collect()
}

fn key(source: &str, text: &str, occurrence: u32) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    h.update([0]);
    h.update(occurrence.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Packs the blocks of one section into passages, with overlap.
fn pack(blocks: &[Block]) -> Vec<String> {
    let mut pieces: Vec<(&str, bool)> = Vec::new(); // (text, starts a paragraph)
    for b in blocks {
        let mut first = true;
        for s in sentences(&b.text) {
            pieces.push((s, first));
            first = false;
        }
    }
    let mut out = Vec::new();
    let mut current: Vec<(&str, bool)> = Vec::new();
    let mut fresh = 0; // pieces in `current` not carried over from the previous passage
    for piece in pieces {
        if fresh > 0 && len(&current) + piece.0.len() > TARGET_CHARS {
            out.push(join(&current));
            let mut carried = Vec::new();
            let mut size = 0;
            for p in current.iter().rev() {
                size += p.0.len() + 1;
                if size > OVERLAP_CHARS {
                    break;
                }
                carried.insert(0, *p);
            }
            current = carried;
            fresh = 0;
        }
        current.push(piece);
        fresh += 1;
    }
    if fresh > 0 {
        out.push(join(&current));
    }
    out
}

fn len(pieces: &[(&str, bool)]) -> usize {
    pieces.iter().map(|p| p.0.len() + 1).sum()
}

fn join(pieces: &[(&str, bool)]) -> String {
    let mut s = String::new();
    for (i, (text, para)) in pieces.iter().enumerate() {
        if i > 0 {
            s.push_str(if *para { "\n\n" } else { " " });
        }
        s.push_str(text);
    }
    s
}

/// Sentences, cut after '.', '!' or '?' followed by a space, or at a line break; a sentence
/// longer than [`MAX_PIECE_CHARS`] is cut at the last space before that length.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for i in 0..bytes.len() {
        let end_here = (matches!(bytes[i], b'.' | b'!' | b'?')
            && bytes.get(i + 1).is_some_and(|b| *b == b' '))
            || bytes[i] == b'\n';
        if end_here {
            push_bounded(&mut out, text[start..=i].trim());
            start = i + 1;
        }
    }
    push_bounded(&mut out, text[start..].trim());
    out
}

fn push_bounded<'a>(out: &mut Vec<&'a str>, mut s: &'a str) {
    while s.len() > MAX_PIECE_CHARS {
        let mut cut = MAX_PIECE_CHARS;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let at = s[..cut].rfind(' ').filter(|&i| i > MAX_PIECE_CHARS / 2).unwrap_or(cut);
        out.push(s[..at].trim());
        s = s[at..].trim_start();
    }
    if !s.is_empty() {
        out.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::extract::{Block, Extracted, Format};

    fn doc(blocks: Vec<(&str, &str)>) -> Extracted {
        Extracted {
            format: Format::Text,
            title: None,
            pages: None,
            blocks: blocks
                .into_iter()
                .map(|(h, t)| Block { heading: h.into(), page: None, text: t.into() })
                .collect(),
        }
    }

    #[test]
    fn sections_are_not_mixed_and_small_ones_stay_whole() {
        let d = doc(vec![("A", "One. Two."), ("A", "Three."), ("B", "Four.")]);
        let c = chunk("f.md", &d);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].text, "One. Two.\n\nThree.");
        assert_eq!((c[1].heading.as_str(), c[1].text.as_str()), ("B", "Four."));
    }

    #[test]
    fn long_sections_are_cut_with_overlap_and_bounded() {
        let para: String = (0..60).map(|i| format!("Sentence number {i} says something. ")).collect();
        let c = chunk("f.txt", &doc(vec![("", &para)]));
        assert!(c.len() >= 2, "{}", c.len());
        for w in c.windows(2) {
            let last_of_first = w[0].text.rsplit(". ").next().unwrap();
            assert!(w[1].text.contains(last_of_first.trim_end_matches('.')), "no overlap");
        }
        assert!(c.iter().all(|x| x.text.len() <= TARGET_CHARS + MAX_PIECE_CHARS));
        let word = "x".repeat(5000);
        let c = chunk("f.txt", &doc(vec![("", &word)]));
        assert!(c.iter().all(|x| x.text.len() <= MAX_PIECE_CHARS), "an unbroken run is cut");
        assert_eq!(c.iter().map(|x| x.text.len()).sum::<usize>(), 5000);
    }

    #[test]
    fn keys_are_stable_and_survive_edits_elsewhere() {
        let a = chunk("f.md", &doc(vec![("A", "Same."), ("B", "Same."), ("C", "Old.")]));
        let b = chunk("f.md", &doc(vec![("A", "Same."), ("B", "Same."), ("C", "Old.")]));
        assert_eq!(a, b);
        assert_ne!(a[0].key, a[1].key, "identical passages get distinct keys");
        let edited = chunk("f.md", &doc(vec![("A", "Same."), ("B", "Same."), ("C", "New.")]));
        assert_eq!(edited[0].key, a[0].key);
        assert_ne!(edited[2].key, a[2].key);
        assert_ne!(chunk("g.md", &doc(vec![("A", "Same.")]))[0].key, a[0].key);
    }
}

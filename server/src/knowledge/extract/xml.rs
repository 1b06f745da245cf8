//! A flat walk over an XML part of an Office document: elements by local name (namespace
//! prefixes vary between producers), attributes, and text with character references resolved.
//! Nesting deeper than [`MAX_DEPTH`] is refused: no real document needs it, and a file built to
//! exhaust whatever walks it does.

use super::ExtractError;
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

const MAX_DEPTH: usize = 256;

pub enum Node<'a> {
    Open(&'a str, &'a BytesStart<'a>),
    Close(&'a str),
    Text(&'a str),
}

/// The value of the attribute with this local name, if the element has it.
pub fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
}

pub fn walk(xml: &str, part: &str, mut visit: impl FnMut(Node<'_>)) -> Result<(), ExtractError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = false;
    let mut depth = 0usize;
    let bad = |e: &dyn std::fmt::Display| ExtractError::Corrupt(format!("{part}: {e}"));
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ExtractError::TooLarge(format!(
                        "{part} nests elements deeper than {MAX_DEPTH} levels"
                    )));
                }
                let name = e.local_name().as_ref().to_string();
                visit(Node::Open(&name, &e));
            }
            Event::Empty(e) => {
                let name = e.local_name().as_ref().to_string();
                visit(Node::Open(&name, &e));
                visit(Node::Close(&name));
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                let name = e.local_name().as_ref().to_string();
                visit(Node::Close(&name));
            }
            Event::Text(t) => visit(Node::Text(&t.xml10_content())),
            Event::CData(t) => visit(Node::Text(&t.xml10_content())),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c,
                    None => match r.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        _ => continue,
                    },
                };
                visit(Node::Text(c.encode_utf8(&mut [0; 4])));
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

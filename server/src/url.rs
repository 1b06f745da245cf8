//! Percent-encoding for the URLs Ayush builds: links between pages, redirects, a provider's
//! query strings, `ayushctl`'s requests.

/// Unreserved characters stay; everything else is escaped.
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes one URL path segment or query value (names may hold spaces or slashes).
pub fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

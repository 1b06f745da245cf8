//! `multipart/form-data` bodies (RFC 7578), read whole: what OpenAI's file endpoints take
//! (`/v1/audio/transcriptions`) and what the SDKs send. The body is bounded before it is
//! parsed, and the parser trusts nothing in it: a part's headers are bounded, names must be
//! present, and a body that does not end with the closing boundary is refused.

/// One form field: a text value, or a file with its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

impl Part {
    pub fn text(&self) -> Result<&str, String> {
        std::str::from_utf8(&self.data).map_err(|_| format!("form field {} is not UTF-8 text", self.name))
    }
}

const MAX_PARTS: usize = 64;
const MAX_HEADERS: usize = 8 * 1024;

/// The boundary named by a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Result<String, String> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or_default().trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(format!("send the form as multipart/form-data, not {kind:?}"));
    }
    let boundary = params
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .ok_or("the multipart/form-data content type names no boundary")?;
    if boundary.is_empty() || boundary.len() > 70 {
        return Err("the multipart boundary must be 1 to 70 characters".into());
    }
    Ok(boundary)
}

pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut at = find(body, delimiter, 0).ok_or("the form has no parts")?;
    let mut parts = Vec::new();
    loop {
        at += delimiter.len();
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        at = skip_line_end(body, at).ok_or("a multipart boundary is not followed by a line end")?;
        let headers_end =
            find(body, b"\r\n\r\n", at).ok_or("a form part's headers do not end (no blank line)")?;
        if headers_end - at > MAX_HEADERS {
            return Err("a form part's headers are too long".into());
        }
        let headers =
            std::str::from_utf8(&body[at..headers_end]).map_err(|_| "a form part's headers are not text")?;
        let data_start = headers_end + 4;
        let mut closing = b"\r\n".to_vec();
        closing.extend_from_slice(delimiter);
        let data_end =
            find(body, &closing, data_start).ok_or("the form does not end with its closing boundary")?;
        parts.push(part(headers, body[data_start..data_end].to_vec())?);
        if parts.len() > MAX_PARTS {
            return Err(format!("the form has more than {MAX_PARTS} parts"));
        }
        at = data_end + 2;
    }
}

fn part(headers: &str, data: Vec<u8>) -> Result<Part, String> {
    let (mut name, mut filename, mut content_type) = (None, None, None);
    for line in headers.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else { continue };
        match key.trim().to_ascii_lowercase().as_str() {
            "content-disposition" => {
                for param in value.split(';').skip(1) {
                    let Some((k, v)) = param.split_once('=') else { continue };
                    let v = unquote(v.trim());
                    match k.trim().to_ascii_lowercase().as_str() {
                        "name" => name = Some(v),
                        "filename" => filename = Some(v),
                        _ => {}
                    }
                }
            }
            "content-type" => content_type = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let name = name.filter(|n| !n.is_empty()).ok_or("a form part has no name")?;
    Ok(Part { name, filename, content_type, data })
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => v.to_string(),
    }
}

fn skip_line_end(body: &[u8], at: usize) -> Option<usize> {
    if body[at..].starts_with(b"\r\n") {
        Some(at + 2)
    } else if body[at..].starts_with(b"\n") {
        Some(at + 1)
    } else {
        None
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    memchr::memmem::find(&hay[from..], needle).map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A form as Python's httpx (the openai SDK) writes one.
    fn form() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n");
        b.extend(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"meeting \\\"1\\\".wav\"\r\n",
        );
        b.extend(b"Content-Type: audio/wav\r\n\r\nRIFF--XyZ\r\n-XyZ not the end\x00\xff");
        b.extend(b"\r\n--XyZ--\r\n");
        b
    }

    #[test]
    fn fields_and_files_are_read_with_their_names() {
        assert_eq!(boundary("multipart/form-data; boundary=\"XyZ\"").unwrap(), "XyZ");
        let parts = parse(&form(), "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].name.as_str(), parts[0].text().unwrap()), ("model", "whisper"));
        assert_eq!(parts[1].filename.as_deref(), Some("meeting \"1\".wav"));
        assert_eq!(parts[1].content_type.as_deref(), Some("audio/wav"));
        // The boundary's text inside the data, without the line end before it, is data.
        assert_eq!(parts[1].data, b"RIFF--XyZ\r\n-XyZ not the end\x00\xff");
    }

    #[test]
    fn broken_forms_are_refused_with_the_reason() {
        assert!(boundary("application/json").unwrap_err().contains("multipart/form-data"));
        assert!(boundary("multipart/form-data").unwrap_err().contains("no boundary"));
        let cut = &form()[..form().len() - 12];
        assert!(parse(cut, "XyZ").unwrap_err().contains("closing boundary"));
        let nameless = b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--".to_vec();
        assert!(parse(&nameless, "b").unwrap_err().contains("no name"));
        assert!(parse(b"hello", "b").unwrap_err().contains("no parts"));
        let endless = b"--b\r\nContent-Disposition: form-data; name=a\r\nx".to_vec();
        assert!(parse(&endless, "b").unwrap_err().contains("headers do not end"));
    }
}

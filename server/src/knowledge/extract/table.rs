//! CSV and TSV: each row becomes one line of "column: value" pairs, so a passage taken out of
//! the table still says what its numbers are.

use super::{Block, ExtractError, Extracted, Format, MAX_TEXT_BYTES};

pub fn extract(text: &str) -> Result<Extracted, ExtractError> {
    let delimiter = sniff(text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ExtractError::Corrupt(format!("unreadable CSV header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut blocks = Vec::new();
    let mut bytes = 0;
    for (i, record) in reader.records().enumerate() {
        let record =
            record.map_err(|e| ExtractError::Corrupt(format!("unreadable CSV row {}: {e}", i + 2)))?;
        let row = record
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(j, v)| match headers.get(j).filter(|h| !h.is_empty()) {
                Some(h) => format!("{h}: {}", v.trim()),
                None => v.trim().to_string(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        if row.is_empty() {
            continue;
        }
        bytes += row.len();
        if bytes > MAX_TEXT_BYTES {
            return Err(ExtractError::TooLarge("the table's text passes 64 MiB".into()));
        }
        blocks.push(Block { heading: String::new(), page: None, text: row });
    }
    if blocks.is_empty() && !headers.is_empty() {
        blocks.push(Block { heading: String::new(), page: None, text: headers.join("; ") });
    }
    Ok(Extracted { format: Format::Csv, title: None, pages: None, blocks })
}

/// The delimiter the header line uses most: comma, semicolon (European spreadsheets) or tab.
fn sniff(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or("");
    [b',', b';', b'\t'].into_iter().max_by_key(|&d| first.bytes().filter(|&b| b == d).count()).unwrap_or(b',')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_their_headers() {
        let e = extract("Name;Days;Note\nAlice;20;\n\"Bob; Jr\";25;\"said \"\"hi\"\"\"\n").unwrap();
        let rows: Vec<_> = e.blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(rows, ["Name: Alice; Days: 20", "Name: Bob; Jr; Days: 25; Note: said \"hi\""]);
    }
}

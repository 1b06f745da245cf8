//! Recordings added to a collection (a meeting, a call, a talk): decoded within the
//! installation's transcription limits, heard by its transcription model, and kept as a
//! document whose sections are its minutes, headed by their time ("12:00"), so that search
//! finds what was said and a chat's sources cite it to the minute.

use super::documents::{self, Prepared};
use super::extract::{Block, Extracted, Format};
use crate::error::{AppError, AppResult};
use ayush_models::whisper::Transcript;

/// Transcribes a recording with `hear` and prepares it as a document. CPU-bound: run it on a
/// blocking thread.
pub fn prepare(
    source: &str,
    bytes: Vec<u8>,
    limit_secs: u64,
    hear: impl FnOnce(Vec<f32>) -> AppResult<Transcript>,
) -> AppResult<Prepared> {
    documents::validate_source(source)?;
    let samples = ayush_models::audio::decode(bytes.clone(), Some(source), limit_secs)
        .map_err(|e| AppError::validation(format!("{source}: {e}")))?;
    let transcript = hear(samples)?;
    let extracted = extracted(&transcript);
    if extracted.blocks.is_empty() {
        return Err(AppError::validation(format!("{source}: no speech was heard in the recording")));
    }
    documents::prepared(source, bytes, extracted)
}

/// A transcript as a document: a section per minute that has speech, headed by when it
/// starts.
pub fn extracted(t: &Transcript) -> Extracted {
    let mut blocks: Vec<Block> = Vec::new();
    let mut minute = None;
    for s in &t.segments {
        let text = s.text.trim();
        if text.is_empty() {
            continue;
        }
        let this = (s.start.max(0.0) / 60.0) as u64;
        match blocks.last_mut() {
            Some(b) if minute == Some(this) => {
                b.text.push(' ');
                b.text.push_str(text);
            }
            _ => {
                minute = Some(this);
                blocks.push(Block { heading: clock(this * 60), page: None, text: text.to_string() });
            }
        }
    }
    Extracted { format: Format::Audio, title: None, pages: None, blocks }
}

/// "12:00", or "1:02:00" past the first hour.
fn clock(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 { format!("{h}:{m:02}:{s:02}") } else { format!("{m}:{s:02}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ayush_models::whisper::Segment;

    fn segment(start: f64, text: &str) -> Segment {
        Segment {
            start,
            end: start + 4.0,
            text: text.into(),
            tokens: vec![],
            temperature: 0.0,
            avg_logprob: -0.2,
            compression_ratio: 1.2,
            no_speech_prob: 0.01,
        }
    }

    #[test]
    fn each_minute_with_speech_is_a_section_headed_by_its_time() {
        let t = Transcript {
            language: "en".into(),
            duration: 3800.0,
            segments: vec![
                segment(0.0, " Welcome, everyone."),
                segment(41.5, " First, the budget."),
                segment(61.0, " Travel is frozen."),
                segment(400.0, "  "),
                segment(3725.0, " Thank you."),
            ],
        };
        let e = extracted(&t);
        let sections: Vec<(&str, &str)> =
            e.blocks.iter().map(|b| (b.heading.as_str(), b.text.as_str())).collect();
        assert_eq!(
            sections,
            [
                ("0:00", "Welcome, everyone. First, the budget."),
                ("1:00", "Travel is frozen."),
                ("1:02:00", "Thank you.")
            ]
        );
        assert_eq!(e.format, Format::Audio);
    }
}

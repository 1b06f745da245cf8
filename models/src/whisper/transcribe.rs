//! Speech to text with Whisper, as OpenAI's `transcribe.py` does it: the audio in 30-second
//! windows, each decoded with timestamps; the next window starts where the last complete
//! segment ended; a window whose decoding looks wrong (repetitive, or improbable) is decoded
//! again at a higher temperature; a window Whisper judges silent is skipped.

use super::mel;
use super::model::{Heard, TokenCache, WhisperModel};
use super::{WhisperError, from_ct2};
use crate::ct2::Ct2Model;
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{
    COMPRESSION_RATIO_THRESHOLD, HOP_LENGTH, LOGPROB_THRESHOLD, N_FRAMES, NO_SPEECH_THRESHOLD, SAMPLE_RATE,
    TEMPERATURES,
};
use std::io::Write;
use std::path::Path;
use tokenizers::Tokenizer;

/// Seconds per timestamp token.
const TIMESTAMP_STEP: f64 = 0.02;
/// Mel frames per timestamp token.
const FRAMES_PER_TIMESTAMP: usize = 2;
/// The first timestamp may be at most 1 s into a window.
const MAX_INITIAL_TIMESTAMP: u32 = 50;

/// What a transcription may be asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// ISO 639-1 code ("en"); `None` detects it from the first window.
    pub language: Option<String>,
    /// Words the speaker uses (names, jargon), or the text before this audio.
    pub prompt: Option<String>,
    /// A fixed temperature; `None` is greedy, falling back to sampling where greedy fails.
    pub temperature: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
    pub temperature: f64,
    pub avg_logprob: f64,
    pub compression_ratio: f64,
    pub no_speech_prob: f64,
}

#[derive(Debug, Clone)]
pub struct Transcript {
    pub language: String,
    /// Seconds of audio heard.
    pub duration: f64,
    pub segments: Vec<Segment>,
}

impl Transcript {
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.as_str()).collect::<String>().trim().to_string()
    }
}

/// The ids of Whisper's special tokens, from its tokenizer (they move between model sizes).
struct Special {
    sot: u32,
    eot: u32,
    transcribe: u32,
    translate: u32,
    sot_prev: u32,
    no_speech: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
    /// Language tokens and their codes.
    languages: Vec<(u32, String)>,
}

impl Special {
    fn read(tokenizer: &Tokenizer) -> Result<Special, WhisperError> {
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| WhisperError::Model(format!("the tokenizer has no {token} token")))
        };
        let no_speech = id("<|nospeech|>").or_else(|_| id("<|nocaptions|>"))?;
        let no_timestamps = id("<|notimestamps|>")?;
        let (sot, translate) = (id("<|startoftranscript|>")?, id("<|translate|>")?);
        let languages = (sot + 1..translate)
            .filter_map(|t| {
                let token = tokenizer.id_to_token(t)?;
                let code = token.strip_prefix("<|")?.strip_suffix("|>")?;
                Some((t, code.to_string()))
            })
            .collect();
        Ok(Special {
            sot,
            eot: id("<|endoftext|>")?,
            transcribe: id("<|transcribe|>")?,
            translate,
            sot_prev: id("<|startofprev|>")?,
            no_speech,
            no_timestamps,
            timestamp_begin: id("<|0.00|>").unwrap_or(no_timestamps + 1),
            languages,
        })
    }
}

/// What an admin sees of a Whisper model.
#[derive(Debug, Clone)]
pub struct WhisperInfo {
    /// The element type the weights are stored in ("f16", "f32").
    pub weights: String,
    /// Tokens the decoder holds: a window's transcript and its prompt.
    pub max_tokens: usize,
    pub languages: usize,
}

/// A Whisper model ready to transcribe: its weights, tokenizer and filter bank.
pub struct Transcriber {
    model: WhisperModel,
    tokenizer: Tokenizer,
    special: Special,
    filters: Vec<f32>,
    /// Never said (non-speech symbols), from the model's `config.json`.
    suppress: Vec<u32>,
    /// Never said first (a blank, the end).
    suppress_first: Vec<u32>,
    vocab: usize,
    stored_as: String,
}

impl Transcriber {
    /// Loads a CTranslate2 Whisper folder: `model.bin`, `config.json`, `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Transcriber, WhisperError> {
        let device = Device::Cpu;
        let file = Ct2Model::read(&dir.join("model.bin"))?;
        let stored_as = file
            .variable("decoder/embeddings/weight")
            .map(|v| format!("{:?}", v.kind).to_ascii_lowercase())
            .unwrap_or_default();
        let weights = from_ct2(&file, &device)?;
        drop(file);
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| WhisperError::Model(format!("tokenizer.json: {e}")))?;
        let special = Special::read(&tokenizer)?;
        let config_path = dir.join("config.json");
        let config: serde_json::Value = std::fs::read(&config_path)
            .map_err(|e| WhisperError::Model(format!("{}: {e}", config_path.display())))
            .and_then(|b| {
                serde_json::from_slice(&b).map_err(|e| WhisperError::Model(format!("config.json: {e}")))
            })?;
        let ids = |key: &str| -> Vec<u32> {
            config[key]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_u64()).filter_map(|v| u32::try_from(v).ok()).collect())
                .unwrap_or_default()
        };
        let vocab = weights.config.vocab_size;
        let mut suppress = ids("suppress_ids");
        suppress.extend([
            special.translate,
            special.transcribe,
            special.sot,
            special.sot_prev,
            special.no_speech,
        ]);
        suppress.retain(|t| (*t as usize) < vocab);
        let mut suppress_first = ids("suppress_ids_begin");
        if suppress_first.is_empty() {
            suppress_first = tokenizer.token_to_id("Ġ").into_iter().chain([special.eot]).collect();
        }
        suppress_first.retain(|t| (*t as usize) < vocab);
        let mels = weights.config.num_mel_bins;
        let vb = VarBuilder::from_tensors(weights.tensors, DType::F32, &device);
        let model = WhisperModel::load(vb, weights.config).map_err(|e| WhisperError::Model(e.to_string()))?;
        Ok(Transcriber {
            model,
            tokenizer,
            special,
            filters: mel::filters(mels),
            suppress,
            suppress_first,
            vocab,
            stored_as,
        })
    }

    pub fn info(&self) -> WhisperInfo {
        WhisperInfo {
            weights: self.stored_as.clone(),
            max_tokens: self.model.config.max_target_positions,
            languages: self.special.languages.len(),
        }
    }

    /// The languages the model knows, as ISO 639-1 codes.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.special.languages.iter().map(|(_, c)| c.as_str())
    }

    /// Transcribes mono 16 kHz samples.
    pub fn transcribe(&self, samples: &[f32], options: &Options) -> Result<Transcript, WhisperError> {
        let language = match &options.language {
            Some(code) => Some(self.language_token(code)?),
            None => None,
        };
        let content_frames = samples.len() / HOP_LENGTH;
        let duration = samples.len() as f64 / SAMPLE_RATE as f64;
        // 30 s of silence after the audio, as Whisper pads it, so the last window is whole.
        let mut padded = samples.to_vec();
        padded.resize(samples.len() + N_FRAMES * HOP_LENGTH, 0.0);
        let mel =
            mel::log_mel(&padded, &self.filters, self.model.config.num_mel_bins).map_err(model_error)?;

        let mut prompt: Vec<u32> = match options.prompt.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => self.encode(&format!(" {p}"))?,
            None => Vec::new(),
        };
        let mut language = language;
        let mut segments = Vec::new();
        let mut seek = 0;
        while seek < content_frames {
            let size = (content_frames - seek).min(N_FRAMES);
            let offset = seek as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
            let window = mel.narrow(1, seek, size).and_then(|w| w.pad_with_zeros(1, 0, N_FRAMES - size));
            let heard = window.and_then(|w| self.model.hear(&w.unsqueeze(0)?)).map_err(model_error)?;
            let lang = match language {
                Some(l) => l,
                None => *language.insert(self.detect_language(&heard)?),
            };
            let decoded = self.decode_with_fallback(&heard, lang, &prompt, options.temperature)?;
            let silent =
                decoded.no_speech_prob > NO_SPEECH_THRESHOLD && decoded.avg_logprob < LOGPROB_THRESHOLD;
            if silent {
                seek += size;
                continue;
            }
            let (found, advance) = self.segments(&decoded, offset, size);
            seek += advance.max(1);
            for s in &found {
                prompt.extend(&s.tokens);
            }
            // Sampling hot means the text so far misled the model: do not condition on it.
            if decoded.temperature > 0.5 {
                prompt.clear();
            }
            segments.extend(found);
        }
        let language = language
            .and_then(|t| self.special.languages.iter().find(|(id, _)| *id == t))
            .map(|(_, c)| c.clone());
        Ok(Transcript { language: language.unwrap_or_else(|| "en".into()), duration, segments })
    }

    fn language_token(&self, code: &str) -> Result<u32, WhisperError> {
        let code = code.trim().to_ascii_lowercase();
        self.special.languages.iter().find(|(_, c)| *c == code).map(|(t, _)| *t).ok_or_else(|| {
            WhisperError::BadRequest(format!(
                "language {code:?} is not one this model knows (ISO 639-1 codes, e.g. \"en\")"
            ))
        })
    }

    fn detect_language(&self, heard: &Heard) -> Result<u32, WhisperError> {
        let logits =
            self.model.step(heard, &mut TokenCache::default(), &[self.special.sot]).map_err(model_error)?;
        let logits = logits.to_vec1::<f32>().map_err(model_error)?;
        self.special
            .languages
            .iter()
            .map(|(t, _)| *t)
            .max_by(|a, b| logits[*a as usize].total_cmp(&logits[*b as usize]))
            .ok_or_else(|| WhisperError::Model("the tokenizer has no language tokens".into()))
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, WhisperError> {
        let encoding = self.tokenizer.encode(text, false).map_err(|e| WhisperError::Model(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    fn decode_with_fallback(
        &self,
        heard: &Heard,
        language: u32,
        prompt: &[u32],
        temperature: Option<f64>,
    ) -> Result<Decoded, WhisperError> {
        let schedule: Vec<f64> = match temperature {
            Some(t) => vec![t],
            None => TEMPERATURES.to_vec(),
        };
        let mut last = None;
        for (i, t) in schedule.iter().enumerate() {
            let decoded = self.decode(heard, language, prompt, *t, i as u64)?;
            let repetitive = decoded.compression_ratio > COMPRESSION_RATIO_THRESHOLD;
            let improbable = decoded.avg_logprob < LOGPROB_THRESHOLD;
            let silent = decoded.no_speech_prob > NO_SPEECH_THRESHOLD;
            if silent || !(repetitive || improbable) {
                return Ok(decoded);
            }
            last = Some(decoded);
        }
        last.ok_or_else(|| WhisperError::Model("no temperature to decode at".into()))
    }

    /// One decoding of a window: `<|startofprev|> prompt <|startoftranscript|> language
    /// <|transcribe|>`, then tokens with timestamps until the end token.
    fn decode(
        &self,
        heard: &Heard,
        language: u32,
        prompt: &[u32],
        temperature: f64,
        seed: u64,
    ) -> Result<Decoded, WhisperError> {
        let s = &self.special;
        let max_positions = self.model.config.max_target_positions;
        let mut start = Vec::new();
        if !prompt.is_empty() {
            start.push(s.sot_prev);
            // At most half the decoder's positions for what came before.
            let keep = prompt.len().min(max_positions / 2 - 1);
            start.extend(&prompt[prompt.len() - keep..]);
        }
        let sot_index = start.len();
        start.extend([s.sot, language, s.transcribe]);
        let mut cache = TokenCache::default();
        // The no-speech probability is read where the model saw only the start token.
        let before = self.model.step(heard, &mut cache, &start[..=sot_index]).map_err(model_error)?;
        let no_speech_prob =
            log_softmax(&before.to_vec1::<f32>().map_err(model_error)?)[s.no_speech as usize].exp() as f64;
        let mut logits = self.model.step(heard, &mut cache, &start[sot_index + 1..]).map_err(model_error)?;
        let mut rng = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1));
        let (mut tokens, mut sum_logprob) = (Vec::new(), 0.0f64);
        let limit = (max_positions / 2).min(max_positions - start.len());
        while tokens.len() < limit {
            let mut l = logits.to_vec1::<f32>().map_err(model_error)?;
            l.truncate(self.vocab);
            self.filter(&mut l, &tokens);
            let logprobs = log_softmax(&l);
            let next = if temperature > 0.0 { rng.sample(&l, temperature) } else { argmax(&l) };
            sum_logprob += logprobs[next as usize] as f64;
            if next == s.eot {
                break;
            }
            tokens.push(next);
            if cache.positions() >= max_positions {
                break;
            }
            logits = self.model.step(heard, &mut cache, &[next]).map_err(model_error)?;
        }
        let text = self.text_of(&tokens)?;
        Ok(Decoded {
            avg_logprob: sum_logprob / (tokens.len() + 1) as f64,
            compression_ratio: compression_ratio(&text),
            no_speech_prob,
            temperature,
            tokens,
        })
    }

    /// Whisper's rules for what may come next: no non-speech symbols; not blank at first;
    /// timestamps first, in pairs, never going back; a timestamp wherever timestamps together
    /// are likelier than any one word.
    fn filter(&self, logits: &mut [f32], tokens: &[u32]) {
        let s = &self.special;
        let ts = s.timestamp_begin as usize;
        let neg = f32::NEG_INFINITY;
        for t in &self.suppress {
            logits[*t as usize] = neg;
        }
        logits[s.no_timestamps as usize] = neg;
        if tokens.is_empty() {
            for t in &self.suppress_first {
                logits[*t as usize] = neg;
            }
            logits[..ts].fill(neg);
            let last_allowed = ts + MAX_INITIAL_TIMESTAMP as usize;
            if last_allowed + 1 < logits.len() {
                logits[last_allowed + 1..].fill(neg);
            }
            return;
        }
        let is_ts = |t: &u32| *t >= s.timestamp_begin;
        let last_was_ts = tokens.last().is_some_and(is_ts);
        let penultimate_was_ts = tokens.len() < 2 || is_ts(&tokens[tokens.len() - 2]);
        if last_was_ts {
            if penultimate_was_ts {
                logits[ts..].fill(neg);
            } else {
                logits[..s.eot as usize].fill(neg);
            }
        }
        if let Some(last_ts) = tokens.iter().rev().find(|t| is_ts(t)) {
            // A segment's end may equal its start; the next segment starts after it.
            let from = if last_was_ts && !penultimate_was_ts { *last_ts } else { last_ts + 1 };
            let end = (from as usize).min(logits.len());
            logits[ts..end].fill(neg);
        }
        let logprobs = log_softmax(logits);
        let timestamps = log_sum_exp(&logprobs[ts..]);
        let best_text = logprobs[..ts].iter().cloned().fold(neg, f32::max);
        if timestamps > best_text {
            logits[..ts].fill(neg);
        }
    }

    fn text_of(&self, tokens: &[u32]) -> Result<String, WhisperError> {
        let text: Vec<u32> = tokens.iter().copied().filter(|t| *t < self.special.eot).collect();
        self.tokenizer.decode(&text, true).map_err(|e| WhisperError::Model(e.to_string()))
    }

    /// Splits a window's tokens at timestamp pairs into timed segments, and says how many
    /// frames the window covered: all of it when the text ended on a closed segment, else up
    /// to the last timestamp, so the unfinished words are heard again in the next window.
    fn segments(&self, d: &Decoded, offset: f64, size: usize) -> (Vec<Segment>, usize) {
        let ts = self.special.timestamp_begin;
        let is_ts = |t: u32| t >= ts;
        let time = |t: u32| offset + (t - ts) as f64 * TIMESTAMP_STEP;
        let segment = |tokens: &[u32], start: f64, end: f64| -> Option<Segment> {
            let text = self.text_of(tokens).ok()?;
            (!text.trim().is_empty()).then(|| Segment {
                start,
                end,
                text,
                // With its timestamps: the next window is prompted with them, as Whisper was
                // trained (a prompt of bare text leads it to leave timestamps out).
                tokens: tokens.to_vec(),
                temperature: d.temperature,
                avg_logprob: d.avg_logprob,
                compression_ratio: d.compression_ratio,
                no_speech_prob: d.no_speech_prob,
            })
        };
        let t = &d.tokens;
        let single_ending = t.len() >= 2 && !is_ts(t[t.len() - 2]) && is_ts(t[t.len() - 1]);
        let cuts: Vec<usize> = (1..t.len()).filter(|&i| is_ts(t[i]) && is_ts(t[i - 1])).collect();
        let window_end = offset + size as f64 * HOP_LENGTH as f64 / SAMPLE_RATE as f64;
        if cuts.is_empty() {
            // One segment for the window, ending at its last timestamp if it has one.
            let end =
                t.iter().rev().find(|x| is_ts(**x)).filter(|x| **x != ts).map_or(window_end, |x| time(*x));
            let start = t.first().filter(|x| is_ts(**x)).map_or(offset, |x| time(*x));
            return (segment(t, start, end.max(start)).into_iter().collect(), size);
        }
        let mut out = Vec::new();
        let mut from = 0;
        let mut bounds: Vec<usize> = cuts.clone();
        if single_ending {
            bounds.push(t.len());
        }
        for to in bounds {
            let piece = &t[from..to];
            if let (Some(&a), Some(&b)) = (piece.first(), piece.last())
                && is_ts(a)
                && is_ts(b)
                && let Some(s) = segment(piece, time(a), time(b))
            {
                out.push(s);
            }
            from = to;
        }
        let advance = if single_ending {
            size
        } else {
            let last = t[cuts[cuts.len() - 1] - 1];
            (last - ts) as usize * FRAMES_PER_TIMESTAMP
        };
        (out, advance)
    }
}

struct Decoded {
    tokens: Vec<u32>,
    avg_logprob: f64,
    compression_ratio: f64,
    no_speech_prob: f64,
    temperature: f64,
}

fn model_error(e: candle_core::Error) -> WhisperError {
    WhisperError::Model(e.to_string())
}

fn argmax(v: &[f32]) -> u32 {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32)
}

fn log_sum_exp(v: &[f32]) -> f32 {
    let max = v.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + v.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}

fn log_softmax(v: &[f32]) -> Vec<f32> {
    let z = log_sum_exp(v);
    v.iter().map(|x| x - z).collect()
}

/// How well the text compresses (zlib): a text that repeats itself compresses far better than
/// speech does, which is how Whisper tells a decoding stuck in a loop.
fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = z.write_all(text.as_bytes()).and_then(|()| z.finish()).map(|c| c.len()).unwrap_or(1);
    text.len() as f64 / compressed.max(1) as f64
}

/// A small generator for sampling at temperature: reproducible per window and attempt.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn sample(&mut self, logits: &[f32], temperature: f64) -> u32 {
        let scaled: Vec<f32> = logits.iter().map(|l| (*l as f64 / temperature) as f32).collect();
        let probs: Vec<f64> = log_softmax(&scaled).iter().map(|l| (*l as f64).exp()).collect();
        let mut u = self.uniform();
        for (i, p) in probs.iter().enumerate() {
            u -= p;
            if u <= 0.0 {
                return i as u32;
            }
        }
        argmax(logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_compresses_far_better_than_speech() {
        let speech = "The quick brown fox jumps over the lazy dog near the river bank.";
        let stuck = "thank you. ".repeat(30);
        assert!(compression_ratio(speech) < 1.5, "{}", compression_ratio(speech));
        assert!(compression_ratio(&stuck) > COMPRESSION_RATIO_THRESHOLD);
    }

    #[test]
    fn sampling_follows_the_distribution_and_greedy_takes_the_best() {
        let logits = [0.0f32, 2.0, f32::NEG_INFINITY];
        assert_eq!(argmax(&logits), 1);
        let mut rng = Lcg(7);
        let picks: Vec<u32> = (0..2000).map(|_| rng.sample(&logits, 1.0)).collect();
        let ones = picks.iter().filter(|p| **p == 1).count() as f64 / 2000.0;
        // e^2 / (1 + e^2) = 0.881
        assert!((ones - 0.881).abs() < 0.03, "{ones}");
        assert!(!picks.contains(&2));
    }
}

//! Whisper base from its CTranslate2 conversion (fetched by `packaging/fetch-models whisper`
//! into `AYUSH_TEST_MODELS_DIR`): every weight candle's Whisper model asks for is there in the
//! right shape, and the model behaves as Whisper does on silence (it says there is no speech),
//! which it would not with a projection split or named wrongly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_models::ct2::Ct2Model;
use ayush_models::whisper;
use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::model::Whisper;
use std::path::PathBuf;

fn whisper_base() -> PathBuf {
    let dir = std::env::var_os("AYUSH_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ayush-models")
        })
        .join("whisper-base");
    assert!(
        dir.join("model.bin").is_file(),
        "{} is missing: run packaging/fetch-models whisper",
        dir.display()
    );
    dir
}

// Whisper's special tokens (multilingual vocabulary).
const START_OF_TRANSCRIPT: u32 = 50258;
const NO_SPEECH: u32 = 50362;

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models whisper")]
fn whisper_base_loads_from_ctranslate2_and_hears_no_speech_in_silence() {
    let cpu = Device::Cpu;
    let file = Ct2Model::read(&whisper_base().join("model.bin")).unwrap();
    assert_eq!((file.spec.as_str(), file.revision), ("WhisperSpec", 3));
    let weights = whisper::from_ct2(&file, &cpu).unwrap();
    let c = &weights.config;
    assert_eq!(
        (
            c.num_mel_bins,
            c.d_model,
            c.encoder_layers,
            c.decoder_layers,
            c.encoder_attention_heads,
            c.vocab_size
        ),
        (80, 512, 6, 6, 8, 51865)
    );
    let config = weights.config.clone();
    let vb = VarBuilder::from_tensors(weights.tensors, DType::F32, &cpu);
    let mut model = Whisper::load(&vb, config).unwrap();

    // 30 s of silence as Whisper's normalised log-mel sees it: (log10(1e-10) clamped to the
    // maximum less 8, plus 4) / 4 = -1.5 in every cell.
    let mel = Tensor::full(-1.5f32, (1, 80, 3000), &cpu).unwrap();
    let audio = model.encoder.forward(&mel, true).unwrap();
    assert_eq!(audio.dims(), [1, 1500, 512]);
    let tokens = Tensor::new(&[[START_OF_TRANSCRIPT]], &cpu).unwrap();
    let hidden = model.decoder.forward(&tokens, &audio, true).unwrap();
    let logits = model.decoder.final_linear(&hidden.i((.., 0..1)).unwrap()).unwrap().i((0, 0)).unwrap();
    let probs = candle_nn::ops::softmax(&logits, D::Minus1).unwrap().to_vec1::<f32>().unwrap();
    let no_speech = probs[NO_SPEECH as usize];
    eprintln!("P(no speech | silence) = {no_speech}");
    assert!(no_speech > 0.5, "P(no speech | silence) = {no_speech}");
}

/// Harvard sentences (IEEE, 1969: phonetically balanced, public domain), spoken by espeak-ng
/// as one recording of about a minute, so that it spans two 30-second windows.
const SPOKEN: [&str; 16] = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
];

fn speak(text: &str, wav: &std::path::Path) {
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(wav)
        .arg(text)
        .status()
        .expect("espeak-ng (.ci/peers installs it)");
    assert!(status.success());
}

/// Words, lower case, without punctuation: how word error rates are counted.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect::<String>().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance over the reference's length.
fn word_error_rate(reference: &[String], heard: &[String]) -> f64 {
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut next = vec![i + 1; heard.len() + 1];
        for (j, h) in heard.iter().enumerate() {
            next[j + 1] = (row[j] + usize::from(r != h)).min(row[j + 1] + 1).min(next[j] + 1);
        }
        row = next;
    }
    row[heard.len()] as f64 / reference.len() as f64
}

#[test]
#[cfg_attr(
    not(all(peer_models, peer_espeak)),
    ignore = "needs the test models and espeak-ng: run .ci/peers and packaging/fetch-models whisper"
)]
fn whisper_base_transcribes_a_minute_of_speech_with_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("harvard.wav");
    speak(&SPOKEN.join(" "), &wav);
    let samples =
        ayush_models::audio::decode(std::fs::read(&wav).unwrap(), Some("harvard.wav"), 600).unwrap();
    let seconds = samples.len() as f64 / 16_000.0;
    assert!(seconds > 35.0, "the recording is {seconds} s: it should need two windows");

    let transcriber = whisper::Transcriber::load(&whisper_base()).unwrap();
    let started = std::time::Instant::now();
    let transcript = transcriber.transcribe(&samples, &whisper::Options::default()).unwrap();
    let took = started.elapsed().as_secs_f64();
    let text = transcript.text();
    let wer = word_error_rate(&words(&SPOKEN.join(" ")), &words(&text));
    eprintln!("{seconds:.1} s of speech in {took:.1} s; WER {:.1} %: {text}", wer * 100.0);
    assert!(wer < 0.15, "word error rate {:.1} %: {text}", wer * 100.0);
    assert_eq!(transcript.language, "en");

    // Segments in order, inside the recording, from its start to its end across both windows.
    let s = &transcript.segments;
    assert!(s.len() >= 4, "{s:?}");
    assert!(s.windows(2).all(|w| w[0].start <= w[1].start && w[0].end <= w[1].start + 0.01), "{s:?}");
    assert!(s.iter().all(|x| x.start <= x.end && x.end <= seconds + 0.5), "{s:?}");
    assert!(s[0].start < 1.0 && s.last().unwrap().end > seconds - 3.0, "{s:?}");
    let first = s.iter().find(|x| x.text.contains("canoe") || x.text.contains("planks")).unwrap();
    assert!(first.end < 5.0, "the first sentence ends within seconds: {first:?}");

    // A language asked for is used; one the model does not know is refused by name.
    let wrong = transcriber.transcribe(
        &samples[..16_000 * 5],
        &whisper::Options { language: Some("xx".into()), ..Default::default() },
    );
    assert!(wrong.unwrap_err().to_string().contains("\"xx\""));
}

#[test]
fn word_error_rate_counts_substitutions_insertions_and_deletions() {
    let r = words("The birch canoe slid.");
    assert_eq!(word_error_rate(&r, &words("the birch canoe slid")), 0.0);
    assert_eq!(word_error_rate(&r, &words("the perch canoe slid on")), 0.5);
    assert_eq!(word_error_rate(&r, &words("birch canoe")), 0.5);
}

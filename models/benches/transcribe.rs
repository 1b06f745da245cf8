//! Local transcription speed and memory with the real Whisper base (`packaging/fetch-models
//! whisper`) on the audio file `AYUSH_BENCH_AUDIO`, on the threads `RAYON_NUM_THREADS` allows
//! (default: every core). Prints one JSON line: seconds of audio, load and transcription time,
//! the real-time factor, peak memory and the text, for `bench/transcribe.sh` to score beside
//! faster-whisper.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use ayush_models::whisper::{Options, Transcriber};
use std::path::PathBuf;
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    let dir = std::env::var_os("AYUSH_BENCH_WHISPER").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("AYUSH_TEST_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/ayush-models"))
            .join("whisper-base")
    });
    let Some(audio) = std::env::var_os("AYUSH_BENCH_AUDIO").map(PathBuf::from) else {
        eprintln!("set AYUSH_BENCH_AUDIO to an audio file (bench/transcribe.sh makes one)");
        return;
    };
    let started = Instant::now();
    let transcriber = Transcriber::load(&dir).expect("run packaging/fetch-models whisper");
    let load = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let samples = ayush_models::audio::decode(std::fs::read(&audio).unwrap(), audio.to_str(), 7200).unwrap();
    let decode = started.elapsed().as_secs_f64();
    let seconds = samples.len() as f64 / 16_000.0;
    let options = Options { language: std::env::var("AYUSH_BENCH_LANGUAGE").ok(), ..Default::default() };
    let started = Instant::now();
    let transcript = transcriber.transcribe(&samples, &options).unwrap();
    let took = started.elapsed().as_secs_f64() + decode;
    let line = serde_json::json!({
        "engine": "ayush",
        "threads": rayon::current_num_threads(),
        "audio_s": seconds,
        "load_s": load,
        "transcribe_s": took,
        "rtf": took / seconds,
        "peak_rss_mib": peak_rss_mib(),
        "text": transcript.text(),
    });
    println!("{line}");
}

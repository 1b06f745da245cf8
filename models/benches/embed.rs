//! Embedding throughput with the real all-MiniLM-L6-v2 (`packaging/fetch-models minilm`): 256
//! passages of about 95 tokens and 256 of about 240 (near the model's limit of 256, which the
//! chunker's full 1,400-character passages reach), on the threads `RAYON_NUM_THREADS` allows (default: every core). Prints
//! tokens and passages per second, and the time 10,000 such passages would take (issue 17's
//! target: under 5 minutes on 2 cores).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use ayush_models::Embedder;
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let dir = std::env::var_os("AYUSH_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/ayush-models"))
        .join("all-MiniLM-L6-v2");
    let embedder = Embedder::load(&dir).expect("run packaging/fetch-models minilm");
    let words = "the committee reviewed the quarterly budget and approved new travel rules for staff \
                 who visit customers abroad while the security team asked for encrypted laptops";
    let threads = rayon::current_num_threads();
    if let Some(file) = std::env::var_os("AYUSH_BENCH_PASSAGES") {
        let passages: Vec<String> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let started = Instant::now();
        let mut tokens = 0;
        for batch in passages.chunks(32) {
            tokens += embedder.embed(batch).unwrap().1;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "embed: {} passages of {:?} ({} tokens each on average) in {:.1} s on {threads} threads: \
             {:.1} passages/s, {:.0} tokens/s",
            passages.len(),
            file,
            tokens / passages.len().max(1),
            secs,
            passages.len() as f64 / secs,
            tokens as f64 / secs
        );
        return;
    }
    for repeats in [3, 8] {
        let passages: Vec<String> =
            (0..256).map(|i| format!("Section {i}. {}", vec![words; repeats].join(". "))).collect();
        embedder.embed(&passages[..32]).unwrap();
        let started = Instant::now();
        let (_, tokens) = embedder.embed(&passages).unwrap();
        let secs = started.elapsed().as_secs_f64();
        let per_second = passages.len() as f64 / secs;
        println!(
            "embed: {} passages of {} tokens in {secs:.2} s on {threads} threads: {:.0} tokens/s \
             ({:.0} per core), {per_second:.1} passages/s; 10,000 such passages: {:.1} min",
            passages.len(),
            tokens / passages.len(),
            tokens as f64 / secs,
            tokens as f64 / secs / threads as f64,
            10_000.0 / per_second / 60.0
        );
    }
}

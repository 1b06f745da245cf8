//! Embedding throughput with the real all-MiniLM-L6-v2 (`packaging/fetch-models minilm`):
//! passages of about 120 tokens, as document chunks are, in batches of 32, on the threads
//! `RAYON_NUM_THREADS` allows (default: every core). Prints tokens per second, and per core.

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
    let passages: Vec<String> =
        (0..256).map(|i| format!("Section {i}. {words}. {words}. {words}.")).collect();
    let threads = rayon::current_num_threads();
    embedder.embed(&passages[..32]).unwrap();
    let started = Instant::now();
    let (_, tokens) = embedder.embed(&passages).unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "embed: {} passages, {tokens} tokens ({} per passage) in {secs:.2} s on {threads} threads: {:.0} tokens/s, {:.0} tokens/s per core",
        passages.len(),
        tokens / passages.len(),
        tokens as f64 / secs,
        tokens as f64 / secs / threads as f64
    );
}

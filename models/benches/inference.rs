//! Local inference speed on the real test models, printed as figures to set beside llama.cpp's
//! `llama-bench` on the same files and thread count (`bench/inference.sh` runs both).
//!
//!   RAYON_NUM_THREADS=2 cargo bench -p ayush-models --bench inference [-- MODEL.gguf ...]
//!
//! Reports: load time, pp512 (prompt processing, tokens/s), tg128 (decode, tokens/s), and
//! the second turn of a chat: time to first token with and without reusing the first turn's
//! KV cache.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use ayush_models::{ChatMessage, GenerateParams, LoadedModel};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn models() -> Vec<PathBuf> {
    let args: Vec<PathBuf> =
        std::env::args().skip(1).filter(|a| a.ends_with(".gguf")).map(PathBuf::from).collect();
    if !args.is_empty() {
        return args;
    }
    let dir = std::env::var_os("AYUSH_TEST_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ayush-models")
    });
    ["qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "gemma-3-270m-q4_k_m.gguf"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect()
}

fn main() {
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!("ayush-models inference bench, threads: {threads}, {RUNS} runs each, median");
    for path in models() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let t = Instant::now();
        let mut model = LoadedModel::load(&path).unwrap();
        let load_s = t.elapsed().as_secs_f64();

        // A 512-token prompt of ordinary text.
        let text =
            "The quick brown fox jumps over the lazy dog while the committee reviews the quarterly report. "
                .repeat(60);
        let mut prompt = model.tokenizer.encode(&text).unwrap();
        prompt.truncate(512);
        assert_eq!(prompt.len(), 512);

        let pp: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                model.prefill(&prompt).unwrap();
                512.0 / t.elapsed().as_secs_f64()
            })
            .collect();
        let tg: Vec<f64> = (0..RUNS)
            .map(|_| {
                model.prefill(&prompt[..1]).unwrap();
                let t = Instant::now();
                model.decode_steps(prompt[1], 128).unwrap();
                128.0 / t.elapsed().as_secs_f64()
            })
            .collect();

        // Several people's answers decoded in the same steps, as the engine serves them.
        let together: Vec<(usize, f64)> = [4, 8, 16]
            .into_iter()
            .map(|n| {
                let runs: Vec<f64> = (0..RUNS)
                    .map(|_| {
                        let t = Instant::now();
                        model.decode_together(n, 64).unwrap();
                        (n * 64) as f64 / t.elapsed().as_secs_f64()
                    })
                    .collect();
                (n, median(runs))
            })
            .collect();

        // Second turn of a chat: time to first token with the first turn's cache, and without.
        // The first reply is generated for real, so the cache holds exactly what the second
        // prompt starts with.
        let stop = AtomicBool::new(false);
        let reply_params = GenerateParams {
            max_tokens: 24,
            temperature: 0.0,
            repetition_penalty: 1.0,
            ..Default::default()
        };
        let first_token = GenerateParams { max_tokens: 1, ..reply_params.clone() };
        let first = vec![
            ChatMessage::new("system", &"You are a careful assistant for a large company. ".repeat(20)),
            ChatMessage::new("user", "Summarise the benefits of keeping data on premises."),
        ];
        let p1 = model.prompt_tokens(&first).unwrap();
        model.forget_cache();
        let reply = model.generate(&p1, &reply_params, &stop, |_| {}).unwrap().text;
        let mut second = first.clone();
        second.push(ChatMessage::new("assistant", &reply));
        second.push(ChatMessage::new("user", "And the drawbacks?"));
        let p2 = model.prompt_tokens(&second).unwrap();
        let mut ttft = |reuse: bool| {
            model.forget_cache();
            model.generate(&p1, &reply_params, &stop, |_| {}).unwrap();
            if !reuse {
                model.forget_cache();
            }
            let t = Instant::now();
            let done = model.generate(&p2, &first_token, &stop, |_| {}).unwrap();
            (t.elapsed().as_secs_f64() * 1000.0, done.usage.cached_prompt_tokens)
        };
        let with: Vec<(f64, usize)> = (0..RUNS).map(|_| ttft(true)).collect();
        let without: Vec<(f64, usize)> = (0..RUNS).map(|_| ttft(false)).collect();
        let p2_len = p2.len();

        println!("\n{name}");
        println!("  load            {load_s:>8.2} s");
        println!("  pp512           {:>8.1} tok/s", median(pp));
        println!("  tg128           {:>8.1} tok/s", median(tg));
        for (n, rate) in together {
            println!("  tg64 × {n:<2}       {rate:>8.1} tok/s, all sequences together");
        }
        println!(
            "  2nd-turn TTFT   {:>8.0} ms with prefix reuse ({} of {} prompt tokens cached)",
            median(with.iter().map(|w| w.0).collect()),
            with[0].1,
            p2_len
        );
        println!("  2nd-turn TTFT   {:>8.0} ms without reuse", median(without.iter().map(|w| w.0).collect()));
    }
}

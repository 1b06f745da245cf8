//! The engine on the two real test models (fetched by `packaging/fetch-models` into
//! `AYUSH_TEST_MODELS_DIR`, default `~/.cache/ayush-models`): tokenization against llama.cpp's
//! ids, templates, generation, cancellation, and refusal of corrupt files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_models::model::FinishReason;
use ayush_models::{ChatMessage, Engine, EngineLimits, Event, GenerateParams, LoadedModel, ModelError};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, OnceLock};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
const GEMMA: &str = "gemma-3-270m-q4_k_m.gguf";

/// A test model. The tests that load one are ignored when the models were missing at build
/// time (see `build.rs`); one missing now fails its test rather than passing it unrun.
fn model_path(file: &str) -> PathBuf {
    let dir = std::env::var_os("AYUSH_TEST_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ayush-models")
    });
    let path = dir.join(file);
    assert!(path.is_file(), "{} is missing: run packaging/fetch-models all", path.display());
    path
}

/// Loading takes seconds; each model is loaded once and shared by the tests (one at a time).
fn shared(file: &'static str) -> &'static Mutex<LoadedModel> {
    static QWEN_MODEL: OnceLock<Mutex<LoadedModel>> = OnceLock::new();
    static GEMMA_MODEL: OnceLock<Mutex<LoadedModel>> = OnceLock::new();
    let cell = if file == QWEN { &QWEN_MODEL } else { &GEMMA_MODEL };
    cell.get_or_init(|| Mutex::new(LoadedModel::load(&model_path(file)).unwrap()))
}

fn greedy(max_tokens: usize) -> GenerateParams {
    GenerateParams { max_tokens, temperature: 0.0, repetition_penalty: 1.0, ..Default::default() }
}

fn chat(
    model: &mut LoadedModel,
    messages: &[ChatMessage],
    params: &GenerateParams,
) -> ayush_models::Completion {
    let prompt = model.prompt_tokens(messages).unwrap();
    let mut streamed = String::new();
    let done = model.generate(&prompt, params, &AtomicBool::new(false), |t| streamed.push_str(t)).unwrap();
    assert_eq!(streamed, done.text, "the streamed pieces add up to the reply");
    done
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn gemma_tokenizes_like_llama_cpp() {
    let m = shared(GEMMA);
    let m = m.lock().unwrap();
    for (text, want) in GEMMA_REFERENCE {
        assert_eq!(m.tokenizer.encode(text).unwrap(), *want, "{text:?}");
        if !text.contains("_of_turn>") {
            assert_eq!(m.tokenizer.decode(&want[1..]).unwrap(), *text, "decoding round-trips");
        }
    }
    let ids = m.tokenizer.encode("<start_of_turn>user\nHi<end_of_turn>").unwrap();
    assert_eq!(ids[1], 105, "control tokens stay one token");
    assert!(ids.contains(&106));
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn qwen_tokenizes_like_llama_cpp() {
    let m = shared(QWEN);
    let m = m.lock().unwrap();
    for (text, want) in QWEN_REFERENCE {
        assert_eq!(m.tokenizer.encode(text).unwrap(), *want, "{text:?}");
        if !text.contains("<|") {
            assert_eq!(m.tokenizer.decode(want).unwrap(), *text, "decoding round-trips");
        }
    }
}

/// (text, ids) from llama.cpp's llama-tokenize (llama.cpp 11434) on the Qwen file
/// (`../shared/bench/llamacpp-peer.sh tokenize FILE TEXT`).
const QWEN_REFERENCE: &[(&str, &[u32])] = &[
    ("Hello, wörld! 你好", &[9707, 11, 289, 9416, 507, 0, 220, 108386]),
    ("naïve café 🎉 emoji", &[3376, 37572, 586, 51950, 11162, 236, 231, 42365]),
    ("fn main() {\n    println!(\"hi\");\n}", &[8822, 1887, 368, 341, 262, 13751, 17223, 6023, 797, 92]),
    (
        "I'm here, they've gone; it's 2026-11-25 at 10:45.",
        &[
            40, 2776, 1588, 11, 807, 3003, 8048, 26, 432, 594, 220, 17, 15, 17, 21, 12, 16, 16, 12, 17, 20,
            518, 220, 16, 15, 25, 19, 20, 13,
        ],
    ),
    ("   leading spaces and\ttabs", &[256, 6388, 12621, 323, 3244, 3435]),
    ("<|im_start|>user\nHi<|im_end|>", &[151644, 872, 198, 13048, 151645]),
    ("https://example.com/path?q=1&x=y", &[2428, 1110, 8687, 905, 50976, 43782, 28, 16, 5, 87, 29368]),
];

/// The same from llama.cpp on the gemma file (BOS 2 first, as the file asks).
const GEMMA_REFERENCE: &[(&str, &[u32])] = &[
    ("Hello, wörld! 你好", &[2, 9259, 236764, 515, 4010, 671, 236888, 43758, 237389]),
    ("naïve café 🎉 emoji", &[2, 1789, 238527, 560, 33443, 204906, 64334]),
    (
        "fn main() {\n    println!(\"hi\");\n}",
        &[2, 15059, 1689, 825, 642, 107, 140, 4629, 36492, 2202, 1443, 107, 236783],
    ),
    ("   leading spaces and\ttabs", &[2, 139, 26016, 9952, 532, 255968, 39218]),
    ("<start_of_turn>user\nHi<end_of_turn>", &[2, 105, 2364, 107, 10979, 106]),
    (
        "https://example.com/path?q=1&x=y",
        &[
            2, 2574, 1411, 8358, 236761, 854, 236786, 2337, 236881, 236809, 236784, 236770, 236880, 236781,
            236784, 236762,
        ],
    ),
];

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn streaming_detokenization_never_splits_a_character() {
    let m = shared(QWEN);
    let m = m.lock().unwrap();
    let text = "naïve café 你好 🎉 ok";
    let ids = m.tokenizer.encode(text).unwrap();
    let mut stream = ayush_models::tokenizer::TokenStream::default();
    let mut out = String::new();
    for id in &ids {
        if let Some(piece) = stream.push(&m.tokenizer, *id).unwrap() {
            assert!(!piece.contains('\u{FFFD}'), "garbage piece {piece:?}");
            out.push_str(&piece);
        }
    }
    assert_eq!(out, text);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn templates_come_from_the_file_or_the_family() {
    let msgs = [ChatMessage::new("user", "Hi")];
    {
        let p = shared(QWEN).lock().unwrap().render(&msgs).unwrap();
        assert_eq!(
            p,
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
    {
        let m = shared(GEMMA).lock().unwrap();
        let p = m.render(&[ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi")]).unwrap();
        assert_eq!(p, "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
        let ids = m.tokenizer.encode(&p).unwrap();
        assert_eq!(ids.iter().filter(|i| **i == 2).count(), 1, "one BOS, not two");
    }
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn qwen_answers_a_factual_question() {
    let m = shared(QWEN);
    let mut m = m.lock().unwrap();
    let done = chat(&mut m, &[ChatMessage::new("user", "What is the capital of France?")], &greedy(32));
    assert!(done.text.contains("Paris"), "{:?}", done.text);
    assert_eq!(done.finish, FinishReason::Stop);
    assert!(done.usage.prompt_tokens > 10 && done.usage.completion_tokens > 0);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn same_seed_same_reply_and_the_next_turn_reuses_the_cache() {
    let m = shared(QWEN);
    let mut m = m.lock().unwrap();
    let sampled = GenerateParams { max_tokens: 12, temperature: 0.9, seed: 7, ..Default::default() };
    let q = [ChatMessage::new("user", "Name a colour.")];
    let a = chat(&mut m, &q, &sampled).text;
    let b = chat(&mut m, &q, &sampled).text;
    assert_eq!(a, b);

    // A different chat reuses only the opening it shares with the last one (the template's).
    let shared_opening = {
        let (a, b) = (
            m.prompt_tokens(&q).unwrap(),
            m.prompt_tokens(&[ChatMessage::new("user", "What is 2 + 2?")]).unwrap(),
        );
        a.iter().zip(&b).take_while(|(x, y)| x == y).count()
    };
    let first = chat(&mut m, &[ChatMessage::new("user", "What is 2 + 2?")], &greedy(16));
    assert_eq!(first.usage.cached_prompt_tokens, shared_opening);
    let second = chat(
        &mut m,
        &[
            ChatMessage::new("user", "What is 2 + 2?"),
            ChatMessage::new("assistant", &first.text),
            ChatMessage::new("user", "And 3 + 3?"),
        ],
        &greedy(16),
    );
    assert!(
        second.usage.cached_prompt_tokens > first.usage.prompt_tokens,
        "the second turn reuses the first turn's prompt and reply: {:?}",
        second.usage
    );
    assert!(second.text.contains('6'), "{:?}", second.text);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn stop_strings_and_max_tokens_end_a_reply() {
    let m = shared(GEMMA);
    let mut m = m.lock().unwrap();
    let done = chat(&mut m, &[ChatMessage::new("user", "Count: one, two, three,")], &greedy(5));
    assert_eq!((done.finish, done.usage.completion_tokens), (FinishReason::Length, 5));
    let params = GenerateParams { stop: vec![" ".into()], ..greedy(20) };
    let done = chat(&mut m, &[ChatMessage::new("user", "Write a long sentence about the sea.")], &params);
    assert!(!done.text.contains(' '), "{:?}", done.text);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn a_gemma_chat_reuses_its_cache_and_reads_the_same() {
    let m = shared(GEMMA);
    let mut m = m.lock().unwrap();
    let first = [ChatMessage::new("user", "Hello"), ChatMessage::new("assistant", "Hi! How can I help?")];
    let turn = [first[0].clone(), first[1].clone(), ChatMessage::new("user", "Again")];
    let prompt = m.prompt_tokens(&turn).unwrap();
    m.forget_cache();
    let (fresh, none) = m.next_logits(&prompt).unwrap();
    assert_eq!(none, 0);
    // The first turn in the cache, then the second: the shared part is not read again, and the
    // result is the same to the bit (prompt tokens always go through the same kernel).
    m.forget_cache();
    let opening = m.prompt_tokens(&first).unwrap();
    m.next_logits(&opening).unwrap();
    let (reused, cached) = m.next_logits(&prompt).unwrap();
    assert!(cached > prompt.len() / 2, "{cached} of {} tokens from the cache", prompt.len());
    assert!(reused == fresh, "reading from the cache changes nothing");

    // A real reply in the cache (decoded token by token), then the next turn: generation goes on
    // from the cache.
    let reply = chat(&mut m, &[ChatMessage::new("user", "Hello")], &greedy(6));
    let next =
        [ChatMessage::new("user", "Hello"), ChatMessage::new("assistant", &reply.text), turn[2].clone()];
    let done = chat(&mut m, &next, &greedy(4));
    assert!(done.usage.cached_prompt_tokens > 0 && done.usage.completion_tokens > 0);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn a_chat_longer_than_the_context_window_is_refused() {
    let m = shared(GEMMA);
    let mut m = m.lock().unwrap();
    let window = m.info.context_length;
    let err = m.generate(&vec![107; window + 1], &greedy(1), &AtomicBool::new(false), |_| {}).unwrap_err();
    assert!(matches!(err, ModelError::ContextTooLong { .. }), "{err}");
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn corrupt_and_foreign_files_are_refused_clearly() {
    let gemma = model_path(GEMMA);
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(&gemma).unwrap();

    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = LoadedModel::load(&cut).err().unwrap().to_string();
    assert!(err.contains("past the end of the file"), "{err}");

    let header_only = dir.path().join("header.gguf");
    std::fs::write(&header_only, &bytes[..4096]).unwrap();
    assert!(ayush_models::inspect(&header_only).unwrap_err().to_string().contains("truncated"));

    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "these are not weights").unwrap();
    assert!(ayush_models::inspect(&text).unwrap_err().to_string().contains("not a GGUF file"));

    let info = ayush_models::inspect(&gemma).unwrap();
    assert_eq!((info.arch.name(), info.has_chat_template), ("gemma3", false));
    // What the file declares (general.file_type), not the type most of its tensors have.
    assert_eq!(info.quantization, "Q4_K_M");
}

fn limits(max_sequences: usize, queue: usize) -> EngineLimits {
    EngineLimits { max_sequences, queue, kv_cache_bytes: 512 << 20, prefill_chunk: 64 }
}

/// Waits for a request's reply, checking that the streamed pieces add up to it.
fn finish(h: ayush_models::Handle) -> ayush_models::Completion {
    finish_after(h, String::new())
}

/// As `finish`, for a request whose first pieces were `streamed` already.
fn finish_after(mut h: ayush_models::Handle, mut streamed: String) -> ayush_models::Completion {
    loop {
        match h.events.blocking_recv().expect("the engine answers") {
            Event::Queued { .. } => {}
            Event::Token(t) => streamed.push_str(&t),
            Event::Done(done) => {
                assert_eq!(streamed, done.text, "the streamed pieces add up to the reply");
                break done;
            }
            Event::Failed(e) => panic!("{e}"),
        }
    }
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn the_engine_streams_cancels_and_refuses_when_full() {
    let path = model_path(GEMMA);
    let engine = Engine::start("gemma", LoadedModel::load(&path).unwrap(), limits(1, 1)).unwrap();
    let msgs = || vec![ChatMessage::new("user", "Tell me a story about a dragon.")];

    let mut first = engine.submit(1, msgs(), greedy(400)).unwrap();
    // Wait until it is generating, then queue one more; a third finds the queue full.
    let Some(Event::Token(opening)) = first.events.blocking_recv() else { panic!("no first token") };
    let mut second = engine.submit(2, msgs(), greedy(3)).unwrap();
    assert!(matches!(second.events.blocking_recv(), Some(Event::Queued { position: 1 })));
    assert!(matches!(engine.submit(3, msgs(), greedy(3)), Err(ModelError::Busy)));

    // Stop frees the place at once: the reply ends as cancelled, well short of its limit.
    first.cancel();
    let cancelled = finish_after(first, opening);
    assert_eq!(cancelled.finish, FinishReason::Cancelled);
    assert!(cancelled.usage.completion_tokens < 400);

    assert_eq!(finish(second).usage.completion_tokens, 3);

    // A client that goes away (drops its handle) cancels too; the next request then runs.
    drop(engine.submit(1, msgs(), greedy(400)).unwrap());
    // The dropped request may still hold its place for a moment; poll for it.
    let next = (0..2000)
        .find_map(|_| match engine.submit(1, msgs(), greedy(2)) {
            Err(ModelError::Busy) => {
                std::thread::sleep(std::time::Duration::from_millis(5));
                None
            }
            other => Some(other.unwrap()),
        })
        .expect("the engine took the next request");
    assert_eq!(finish(next).usage.completion_tokens, 2);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn requests_batched_together_get_the_answers_each_gets_alone() {
    let path = model_path(QWEN);
    let solo = shared(QWEN);
    let questions = [
        "What is the capital of France? Answer in one word.",
        "Write a Python function that adds two numbers.",
        "Name three primary colours.",
        "What does HTTP stand for?",
    ];
    // Greedy and sampled with a seed alike: batching changes nothing a request sees.
    let params = |i: usize| match i % 2 {
        0 => greedy(24),
        _ => GenerateParams { max_tokens: 24, temperature: 0.8, seed: 7 + i as u64, ..Default::default() },
    };
    let alone: Vec<String> = {
        let mut m = solo.lock().unwrap();
        questions
            .iter()
            .enumerate()
            .map(|(i, q)| {
                m.forget_cache();
                chat(&mut m, &[ChatMessage::new("user", q)], &params(i)).text
            })
            .collect()
    };

    let engine = Engine::start("qwen", LoadedModel::load(&path).unwrap(), limits(4, 4)).unwrap();
    let handles: Vec<_> = questions
        .iter()
        .enumerate()
        .map(|(i, q)| engine.submit(i as i64, vec![ChatMessage::new("user", q)], params(i)).unwrap())
        .collect();
    let together: Vec<_> = handles.into_iter().map(finish).collect();
    for (i, done) in together.iter().enumerate() {
        assert_eq!(done.text, alone[i], "request {i} reads the same batched as alone");
    }
    assert!(together[0].text.contains("Paris"), "{}", together[0].text);
    assert!(together[3].text.to_lowercase().replace(' ', "").contains("hypertext"), "{}", together[3].text);
    // Four streams in far fewer passes than their tokens: they were decoded together.
    let tokens: usize = together.iter().map(|d| d.usage.completion_tokens).sum();
    let steps = engine.stats().steps.load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert!(steps < tokens * 2 / 3, "{steps} steps for {tokens} tokens");
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn a_conversation_picks_up_its_cache_after_others_ran() {
    let path = model_path(GEMMA);
    let engine = Engine::start("gemma", LoadedModel::load(&path).unwrap(), limits(2, 4)).unwrap();
    let mut a = vec![ChatMessage::new("user", "Give me a name for a black cat.")];
    let first = finish(engine.submit(1, a.clone(), greedy(12)).unwrap());
    assert_eq!(first.usage.cached_prompt_tokens, 0);
    // Others run in between, together.
    let others: Vec<_> = ["Name a fruit.", "Name a river in Europe."]
        .iter()
        .map(|q| engine.submit(2, vec![ChatMessage::new("user", q)], greedy(12)).unwrap())
        .collect();
    others.into_iter().for_each(|h| drop(finish(h)));

    a.push(ChatMessage::new("assistant", &first.text));
    a.push(ChatMessage::new("user", "And one for a white dog?"));
    let second = finish(engine.submit(1, a, greedy(12)).unwrap());
    assert!(
        second.usage.cached_prompt_tokens >= first.usage.prompt_tokens,
        "the second turn read its first from the cache: {:?} after {:?}",
        second.usage,
        first.usage
    );
    let stats = engine.stats();
    assert!(stats.cache_hits.load(std::sync::atomic::Ordering::Relaxed) >= 1);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn a_request_too_big_for_the_kv_budget_is_refused_with_a_reason() {
    let path = model_path(GEMMA);
    let tight = EngineLimits { kv_cache_bytes: 1 << 20, ..limits(2, 2) };
    let engine = Engine::start("gemma", LoadedModel::load(&path).unwrap(), tight).unwrap();
    let mut h = engine.submit(1, vec![ChatMessage::new("user", "Hello")], greedy(400)).unwrap();
    match h.events.blocking_recv() {
        Some(Event::Failed(ModelError::BadRequest(m))) => assert!(m.contains("kv_cache_mib"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn a_token_reads_the_same_alone_or_in_a_prompt() {
    for file in [GEMMA, QWEN] {
        let m = shared(file);
        let mut m = m.lock().unwrap();
        let msg = [ChatMessage::new("user", "Hello there, how are you doing today, my friend?")];
        let prompt = m.prompt_tokens(&msg).unwrap();
        m.forget_cache();
        let (whole, _) = m.next_logits(&prompt).unwrap();
        // Half the prompt, then one token at a time: each read after the cache.
        m.forget_cache();
        m.next_logits(&prompt[..prompt.len() / 2]).unwrap();
        let mut one_by_one = Vec::new();
        for end in prompt.len() / 2 + 1..=prompt.len() {
            let (logits, cached) = m.next_logits(&prompt[..end]).unwrap();
            assert_eq!(cached, end - 1);
            one_by_one = logits;
        }
        assert!(whole == one_by_one, "{file}: bit-identical logits either way");
    }
}

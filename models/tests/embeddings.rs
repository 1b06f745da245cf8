//! Sentence embeddings with the real all-MiniLM-L6-v2 (fetched by `packaging/fetch-models
//! minilm` into `AYUSH_TEST_MODELS_DIR`), checked against the similarities sentence-transformers
//! itself publishes for this model, and refusal of folders that are not an export.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_models::{EmbedEngine, Embedder, ModelError, inspect_embedder};
use std::path::PathBuf;

/// The real all-MiniLM-L6-v2; its tests are ignored when it was missing at build time.
fn minilm() -> PathBuf {
    let dir = std::env::var_os("AYUSH_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ayush-models")
        })
        .join("all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run packaging/fetch-models minilm",
        dir.display()
    );
    dir
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models minilm")]
fn minilm_matches_the_similarities_sentence_transformers_publishes() {
    let dir = minilm();
    let info = inspect_embedder(&dir).unwrap();
    assert_eq!((info.arch.as_str(), info.dimensions, info.max_tokens), ("bert", 384, 256));
    let embedder = Embedder::load(&dir).unwrap();
    // The example on the model's card and in sentence-transformers' quick start, which prints
    // the similarities 0.6660, 0.1046 and 0.1411.
    let texts: Vec<String> =
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
            .map(String::from)
            .to_vec();
    let (v, tokens) = embedder.embed(&texts).unwrap();
    assert_eq!(v.len(), 3);
    assert!(v.iter().all(|x| x.len() == 384));
    for x in &v {
        let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalised: {norm}");
    }
    let close = |got: f32, want: f32| assert!((got - want).abs() < 0.005, "{got} against {want}");
    close(cosine(&v[0], &v[1]), 0.6660);
    close(cosine(&v[0], &v[2]), 0.1046);
    close(cosine(&v[1], &v[2]), 0.1411);
    assert_eq!(tokens, texts.iter().map(|t| embedder.count_tokens(t).unwrap()).sum::<usize>());

    // Batching and padding do not change a text's vector.
    let (alone, _) = embedder.embed(&texts[2..]).unwrap();
    close(cosine(&alone[0], &v[2]), 1.0);
    // A text past the model's 256 tokens is truncated, not refused.
    let long = "word ".repeat(2000);
    let (_, t) = embedder.embed(&[long]).unwrap();
    assert_eq!(t, 256);
}

#[tokio::test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models minilm")]
async fn the_engine_serves_requests_from_its_own_thread() {
    let dir = minilm();
    let engine = EmbedEngine::start("minilm", Embedder::load(&dir).unwrap(), 2).unwrap();
    let (v, _) = engine.embed(vec!["hello".into(), "world".into()]).await.unwrap();
    assert_eq!((v.len(), engine.dimensions), (2, 384));
}

#[test]
fn folders_that_are_not_an_export_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let err = inspect_embedder(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::Unsupported(_)) && err.to_string().contains("no config.json"), "{err}");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::write(dir.path().join(f), "{\"model_type\": \"llama\"}").unwrap();
    }
    let err = inspect_embedder(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model_type \"llama\""), "{err}");
    std::fs::write(dir.path().join("config.json"), "{\"model_type\": \"bert\", \"hidden_size\": 8}").unwrap();
    assert!(Embedder::load(dir.path()).is_err(), "garbage weights do not load");
}

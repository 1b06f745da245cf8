//! Inference engines and model providers for Ayush. No HTTP, no database: the server calls in
//! through the types here.
//!
//! - `gguf`: a header reader that trusts nothing in the file;
//! - `tokenizer`, `template`: text to tokens and chats to prompts, from the file itself;
//! - `quant`, `decoder`: our quantized kernels and forward pass;
//! - `weights`, `model`, `kv`: the architectures, the steps of generation, KV caches;
//! - `engine`: a thread per model that batches every request in flight, behind a bounded queue;
//! - `bert`, `embed`: our BERT encoder, and sentence embeddings from BERT-family models;
//! - `provider`: one trait over the engine and remote APIs (OpenAI-compatible, Anthropic, Gemini);
//! - `ct2`, `whisper`, `audio`: CTranslate2 model files, Whisper transcription from them, and
//!   audio files to the samples it hears.

pub mod audio;
mod bert;
pub mod ct2;
mod decoder;
pub mod embed;
pub mod engine;
pub mod gguf;
mod int8;
pub mod kv;
mod manifest;
pub mod model;
pub mod provider;
mod quant;
pub mod sampling;
pub mod template;
pub mod tokenizer;
pub mod weights;
pub mod whisper;

pub use embed::{EmbedEngine, Embedder, inspect_embedder};
pub use engine::{Engine, Event, Handle, Limits as EngineLimits};
pub use manifest::{ManifestError, ModelManifest, validate_name};
pub use model::{Completion, FinishReason, LoadedModel, ModelInfo, Usage, inspect};
pub use sampling::GenerateParams;
pub use template::ChatMessage;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Gguf(#[from] gguf::GgufError),
    #[error("unsupported model: {0}")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("loading the model: {0}")]
    Load(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the conversation is {tokens} tokens long; the model's context window is {window}")]
    ContextTooLong { tokens: usize, window: usize },
    #[error("the model is busy; try again shortly")]
    Busy,
    /// A remote provider failed; the message says how, in words a person can act on.
    #[error("{message}")]
    Upstream { kind: provider::UpstreamKind, message: String },
}

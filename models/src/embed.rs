//! Sentence embeddings from a BERT-family model exported by sentence-transformers (a directory
//! with `config.json`, `model.safetensors`, `tokenizer.json` and, optionally,
//! `sentence_bert_config.json`, `modules.json` and `1_Pooling/config.json`), such as
//! all-MiniLM-L6-v2. Texts are tokenized (truncated at the model's maximum sequence length),
//! run through our encoder (`bert`) in packed batches, mean-pooled over their tokens, and
//! L2-normalised when the export says so.

use crate::ModelError;
use crate::bert::Encoder;
use serde_json::Value;
use std::path::Path;
use tokenizers::Tokenizer;

/// Tokens run through the encoder together: enough that each group of weight rows the kernels
/// read serves many tokens from the cache, few enough that the activations stay in a few
/// megabytes.
const BATCH_TOKENS: usize = 4096;

pub struct Embedder {
    model: Encoder,
    tokenizer: Tokenizer,
    max_tokens: usize,
    normalize: bool,
    pub dimensions: usize,
}

fn read_json(dir: &Path, file: &str) -> Result<Option<Value>, ModelError> {
    let path = dir.join(file);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map(Some).map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))
}

/// What an export directory holds, read without loading the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedInfo {
    pub arch: String,
    pub dimensions: usize,
    pub max_tokens: usize,
}

/// Checks an export directory: the files it needs, a BERT config, mean pooling.
pub fn inspect_embedder(dir: &Path) -> Result<EmbedInfo, ModelError> {
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        if !dir.join(file).is_file() {
            return Err(ModelError::Unsupported(format!(
                "{} has no {file}: expected a sentence-transformers export (config.json, model.safetensors, tokenizer.json)",
                dir.display()
            )));
        }
    }
    let config = read_json(dir, "config.json")?.unwrap_or_default();
    let arch = config["model_type"].as_str().unwrap_or_default().to_string();
    if !matches!(arch.as_str(), "bert" | "roberta" | "xlm-roberta") {
        return Err(ModelError::Unsupported(format!(
            "{}: model_type {arch:?}; embeddings support BERT-family models (bert, roberta)",
            dir.display()
        )));
    }
    if let Some(pooling) = read_json(dir, "1_Pooling/config.json")?
        && pooling["pooling_mode_mean_tokens"] == false
    {
        return Err(ModelError::Unsupported(format!(
            "{}: only mean pooling is supported (1_Pooling/config.json)",
            dir.display()
        )));
    }
    let dimensions = config["hidden_size"].as_u64().unwrap_or(0) as usize;
    let positions = config["max_position_embeddings"].as_u64().unwrap_or(512) as usize;
    let max_tokens = read_json(dir, "sentence_bert_config.json")?
        .and_then(|c| c["max_seq_length"].as_u64())
        .map_or(positions, |n| (n as usize).min(positions));
    if dimensions == 0 || max_tokens == 0 {
        return Err(ModelError::Unsupported(format!("{}: config.json names no hidden_size", dir.display())));
    }
    Ok(EmbedInfo { arch, dimensions, max_tokens })
}

impl Embedder {
    pub fn load(dir: &Path) -> Result<Embedder, ModelError> {
        let info = inspect_embedder(dir)?;
        let model = Encoder::load(dir)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| ModelError::Tokenizer(format!("tokenizer.json: {e}")))?;
        // Exports often pad every text to a fixed length and truncate at 128; padding and the
        // model's own limit are applied here instead, so pads never count as words.
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| ModelError::Tokenizer(format!("tokenizer.json: {e}")))?;
        // sentence-transformers lists a Normalize module when the vectors are unit length.
        let normalize =
            read_json(dir, "modules.json")?.and_then(|m| m.as_array().cloned()).is_some_and(|mods| {
                mods.iter().any(|m| m["type"].as_str().is_some_and(|t| t.ends_with("Normalize")))
            });
        let max_tokens = info.max_tokens.min(model.max_positions);
        Ok(Embedder { model, tokenizer, max_tokens, normalize, dimensions: info.dimensions })
    }

    /// Token counts of each text as the model will see it (after truncation).
    pub fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().len().min(self.max_tokens))
    }

    /// One vector per text, and the number of tokens read.
    pub fn embed(&self, texts: &[String]) -> Result<Embedded, ModelError> {
        let mut ids: Vec<Vec<u32>> = Vec::with_capacity(texts.len());
        for text in texts {
            let enc = self
                .tokenizer
                .encode(text.as_str(), true)
                .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
            let mut t = enc.get_ids().to_vec();
            if t.len() > self.max_tokens {
                // Keep the closing [SEP] the model was trained to see.
                let last = t[t.len() - 1];
                t.truncate(self.max_tokens);
                t[self.max_tokens - 1] = last;
            }
            if t.is_empty() {
                return Err(ModelError::Tokenizer("the tokenizer made no tokens of a text".into()));
            }
            ids.push(t);
        }
        let tokens = ids.iter().map(Vec::len).sum();
        let mut vectors = Vec::with_capacity(texts.len());
        let mut batch: Vec<Vec<u32>> = Vec::new();
        let mut in_batch = 0;
        for t in ids {
            if in_batch + t.len() > BATCH_TOKENS && !batch.is_empty() {
                vectors.extend(self.model.mean_pooled(&batch)?);
                batch.clear();
                in_batch = 0;
            }
            in_batch += t.len();
            batch.push(t);
        }
        if !batch.is_empty() {
            vectors.extend(self.model.mean_pooled(&batch)?);
        }
        if self.normalize {
            for v in &mut vectors {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok((vectors, tokens))
    }
}

/// Vectors, one per text, and the tokens read.
pub type Embedded = (Vec<Vec<f32>>, usize);

struct Job {
    texts: Vec<String>,
    reply: tokio::sync::oneshot::Sender<Result<Embedded, ModelError>>,
}

/// An embedding model on a dedicated thread behind a bounded queue, as chat engines are.
#[derive(Clone)]
pub struct EmbedEngine {
    jobs: std::sync::mpsc::SyncSender<Job>,
    pub dimensions: usize,
}

impl EmbedEngine {
    pub fn start(name: &str, embedder: Embedder, queue: usize) -> Result<EmbedEngine, ModelError> {
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(queue);
        let dimensions = embedder.dimensions;
        std::thread::Builder::new()
            .name(format!("embed-{name}"))
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    if job.reply.is_closed() {
                        continue;
                    }
                    let _ = job.reply.send(embedder.embed(&job.texts));
                }
            })
            .map_err(|e| ModelError::Load(format!("cannot start the embedding thread: {e}")))?;
        Ok(EmbedEngine { jobs, dimensions })
    }

    /// Embeds `texts`; `Busy` when the queue is full.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Embedded, ModelError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        match self.jobs.try_send(Job { texts, reply }) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => return Err(ModelError::Busy),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(ModelError::Inference("the embedding thread has stopped".into()));
            }
        }
        answer.await.map_err(|_| ModelError::Inference("the embedding thread has stopped".into()))?
    }
}

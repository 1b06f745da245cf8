//! Sentence embeddings from a BERT-family model exported by sentence-transformers (a directory
//! with `config.json`, `model.safetensors`, `tokenizer.json` and, optionally,
//! `sentence_bert_config.json`, `modules.json` and `1_Pooling/config.json`), such as
//! all-MiniLM-L6-v2. Texts are tokenized (truncated at the model's maximum sequence length),
//! run through the encoder in batches, mean-pooled over their real tokens, and L2-normalised
//! when the export says so.

use crate::ModelError;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config};
use serde_json::Value;
use std::path::Path;
use tokenizers::Tokenizer;

/// Texts run through the encoder together.
const BATCH: usize = 32;

pub struct Embedder {
    model: BertModel,
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
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| ModelError::Load(format!("config.json: {e}")))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| ModelError::Load(format!("config.json: {e}")))?;
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| ModelError::Load(format!("model.safetensors: {e}")))?;
        let vb = candle_nn::VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| ModelError::Load(format!("model.safetensors: {e}")))?;
        let model =
            BertModel::load(vb, &config).map_err(|e| ModelError::Load(format!("the BERT weights: {e}")))?;
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
        Ok(Embedder { model, tokenizer, max_tokens: info.max_tokens, normalize, dimensions: info.dimensions })
    }

    /// Token counts of each text as the model will see it (after truncation).
    pub fn count_tokens(&self, text: &str) -> Result<usize, ModelError> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().len().min(self.max_tokens))
    }

    /// One vector per text, and the number of tokens read.
    pub fn embed(&self, texts: &[String]) -> Result<Embedded, ModelError> {
        let mut vectors = Vec::with_capacity(texts.len());
        let mut tokens = 0;
        for batch in texts.chunks(BATCH) {
            let (v, t) = self.embed_batch(batch)?;
            vectors.extend(v);
            tokens += t;
        }
        Ok((vectors, tokens))
    }

    fn embed_batch(&self, texts: &[String]) -> Result<Embedded, ModelError> {
        let inference = |e: candle_core::Error| ModelError::Inference(e.to_string());
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
            ids.push(t);
        }
        let width = ids.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let tokens: usize = ids.iter().map(Vec::len).sum();
        let mut flat_ids = Vec::with_capacity(ids.len() * width);
        let mut flat_mask = Vec::with_capacity(ids.len() * width);
        for t in &ids {
            flat_ids.extend(t.iter().copied().chain(std::iter::repeat_n(0, width - t.len())));
            flat_mask
                .extend(std::iter::repeat_n(1u32, t.len()).chain(std::iter::repeat_n(0, width - t.len())));
        }
        let shape = (ids.len(), width);
        let input = Tensor::from_vec(flat_ids, shape, &Device::Cpu).map_err(inference)?;
        let mask = Tensor::from_vec(flat_mask, shape, &Device::Cpu).map_err(inference)?;
        let types = input.zeros_like().map_err(inference)?;
        let hidden = self.model.forward(&input, &types, Some(&mask)).map_err(inference)?;
        // Mean over the real tokens only.
        let mask_f = mask.to_dtype(DType::F32).map_err(inference)?.unsqueeze(2).map_err(inference)?;
        let summed = hidden.broadcast_mul(&mask_f).map_err(inference)?.sum(1).map_err(inference)?;
        let counts = mask_f.sum(1).map_err(inference)?;
        let mut pooled = summed.broadcast_div(&counts).map_err(inference)?;
        if self.normalize {
            let norms = pooled
                .sqr()
                .map_err(inference)?
                .sum_keepdim(1)
                .map_err(inference)?
                .sqrt()
                .map_err(inference)?;
            pooled =
                pooled.broadcast_div(&norms.clamp(1e-12, f64::MAX).map_err(inference)?).map_err(inference)?;
        }
        Ok((pooled.to_vec2::<f32>().map_err(inference)?, tokens))
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

//! The architectures Ayush runs on CPU, dispatched on `general.architecture`: our own decoder
//! (`decoder`) for llama, qwen2, qwen3 and gemma3; candle-transformers' phi3.

use crate::ModelError;
use crate::decoder::{Decoder, Feed};
use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_phi3;
use std::io::{Read, Seek};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Qwen2,
    Qwen3,
    /// Llama 2/3, Mistral, SmolLM: the `llama` GGUF layout.
    Llama,
    Gemma3,
    Phi3,
}

impl Arch {
    pub const SUPPORTED: &'static str = "gemma3, llama, qwen2, qwen3, phi3";

    pub fn from_gguf_name(name: &str) -> Result<Arch, ModelError> {
        Ok(match name {
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "llama" | "mistral" => Arch::Llama,
            "gemma3" => Arch::Gemma3,
            "phi3" => Arch::Phi3,
            other => {
                return Err(ModelError::Unsupported(format!(
                    "architecture {other:?} is not supported (supported: {})",
                    Arch::SUPPORTED
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Llama => "llama",
            Arch::Gemma3 => "gemma3",
            Arch::Phi3 => "phi3",
        }
    }
}

pub enum Weights {
    /// Our own forward pass: llama, qwen2, qwen3, gemma3.
    Decoder(Box<Decoder>),
    /// candle-transformers' phi3, which keeps one KV cache of its own: one sequence at a time.
    Phi3 { model: Box<quantized_phi3::ModelWeights>, kv_bytes_per_token: usize },
}

fn candle(e: candle_core::Error) -> ModelError {
    ModelError::Load(e.to_string())
}

impl Weights {
    pub fn load<R: Read + Seek>(arch: Arch, content: Content, reader: &mut R) -> Result<Weights, ModelError> {
        Ok(match arch {
            Arch::Phi3 => {
                let meta = crate::gguf::Meta(&content.metadata);
                let get = |k: &str| meta.u32(&format!("phi3.{k}")).unwrap_or(0) as usize;
                let heads = get("attention.head_count").max(1);
                let kv_width = get("embedding_length") / heads * get("attention.head_count_kv");
                let kv_bytes_per_token = get("block_count") * 2 * kv_width * 4;
                let model = quantized_phi3::ModelWeights::from_gguf(false, content, reader, &Device::Cpu)
                    .map_err(candle)?;
                Weights::Phi3 { model: Box::new(model), kv_bytes_per_token }
            }
            _ => Weights::Decoder(Box::new(Decoder::load(arch, &content, reader)?)),
        })
    }

    /// Reads each feed's tokens after what its cache holds and returns the logits after the
    /// last token of each feed that wants them. On an error every cache is cut back to what it
    /// held before, so a failed step loses nothing already read.
    pub fn step(&mut self, feeds: &mut [Feed<'_>]) -> Result<Vec<Option<Vec<f32>>>, ModelError> {
        let before: Vec<usize> = feeds.iter().map(|f| f.cache.len()).collect();
        let result = match self {
            Weights::Decoder(d) => d.step(feeds),
            Weights::Phi3 { model, .. } => match feeds {
                [f] => {
                    let err = |e: candle_core::Error| ModelError::Inference(e.to_string());
                    let input =
                        Tensor::new(f.tokens, &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(err)?;
                    let logits = model
                        .forward(&input, f.cache.len())
                        .and_then(|l| l.squeeze(0))
                        .and_then(|l| l.to_vec1::<f32>())
                        .map_err(err);
                    logits.map(|l| {
                        f.cache.tokens.extend_from_slice(f.tokens);
                        vec![Some(l)]
                    })
                }
                _ => Err(ModelError::Inference("phi3 reads one sequence at a time".into())),
            },
        };
        if result.is_err() {
            for (f, n) in feeds.iter_mut().zip(before) {
                f.cache.truncate(n);
            }
        }
        result
    }

    /// Whether several new tokens may be fed after a cached prefix, and so whether a prompt
    /// may be read in pieces and a cache kept for the next turn. candle-transformers 0.11.1's
    /// phi3 builds its attention mask right only from position 0, so it reads whole prompts.
    pub fn extends_prefix(&self) -> bool {
        matches!(self, Weights::Decoder(_))
    }

    /// How many sequences may be read in one step.
    pub fn max_batch(&self) -> usize {
        match self {
            Weights::Decoder(_) => usize::MAX,
            Weights::Phi3 { .. } => 1,
        }
    }

    /// KV cache memory per cached token.
    pub fn kv_bytes_per_token(&self) -> usize {
        match self {
            Weights::Decoder(d) => d.layers() * 2 * d.kv_width() * std::mem::size_of::<f32>(),
            Weights::Phi3 { kv_bytes_per_token, .. } => *kv_bytes_per_token,
        }
    }
}

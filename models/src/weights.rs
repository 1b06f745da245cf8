//! The architectures Ayush runs on CPU, dispatched on `general.architecture`, each through
//! candle-transformers' quantized implementation.

use crate::ModelError;
use candle_core::quantized::gguf_file::Content;
use candle_core::{Device, Tensor};
use candle_transformers::models::{
    quantized_gemma3, quantized_llama, quantized_phi3, quantized_qwen2, quantized_qwen3,
};
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
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Llama(quantized_llama::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
}

fn candle(e: candle_core::Error) -> ModelError {
    ModelError::Load(e.to_string())
}

impl Weights {
    pub fn load<R: Read + Seek>(
        arch: Arch,
        content: Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Weights, ModelError> {
        Ok(match arch {
            Arch::Qwen2 => Weights::Qwen2(
                quantized_qwen2::ModelWeights::from_gguf(content, reader, device).map_err(candle)?,
            ),
            Arch::Qwen3 => Weights::Qwen3(
                quantized_qwen3::ModelWeights::from_gguf(content, reader, device).map_err(candle)?,
            ),
            Arch::Llama => Weights::Llama(
                quantized_llama::ModelWeights::from_gguf(content, reader, device).map_err(candle)?,
            ),
            Arch::Gemma3 => Weights::Gemma3(
                quantized_gemma3::ModelWeights::from_gguf(content, reader, device).map_err(candle)?,
            ),
            Arch::Phi3 => Weights::Phi3(
                quantized_phi3::ModelWeights::from_gguf(false, content, reader, device).map_err(candle)?,
            ),
        })
    }

    /// Logits for the position after `input` (shape `[1, seq]`), which starts at `pos`. The KV
    /// cache keeps what came before `pos`; `pos == 0` starts afresh.
    pub fn forward(&mut self, input: &Tensor, pos: usize) -> Result<Tensor, ModelError> {
        if pos == 0 {
            self.clear();
        }
        let logits = match self {
            Weights::Qwen2(m) => m.forward(input, pos),
            Weights::Qwen3(m) => m.forward(input, pos),
            Weights::Llama(m) => m.forward(input, pos),
            Weights::Gemma3(m) => m.forward(input, pos),
            Weights::Phi3(m) => m.forward(input, pos),
        }
        .map_err(|e| ModelError::Inference(e.to_string()))?;
        logits.squeeze(0).map_err(|e| ModelError::Inference(e.to_string()))
    }

    /// Whether several new tokens may be fed after a cached prefix. candle-transformers 0.11.1's
    /// gemma3 fails building the attention mask for that case (a dtype mismatch in `cat`), and
    /// phi3's mask is only right from position 0; those read whole prompts from position 0.
    pub fn extends_prefix(&self) -> bool {
        matches!(self, Weights::Qwen2(_) | Weights::Qwen3(_) | Weights::Llama(_))
    }

    fn clear(&mut self) {
        match self {
            Weights::Qwen2(m) => m.clear_kv_cache(),
            Weights::Qwen3(m) => m.clear_kv_cache(),
            Weights::Llama(m) => m.clear_kv_cache(),
            // These reset their caches themselves when a forward starts at position 0.
            Weights::Gemma3(_) | Weights::Phi3(_) => {}
        }
    }
}

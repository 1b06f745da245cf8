//! The architectures Ayush runs on CPU, dispatched on `general.architecture`: our own decoder
//! (`decoder`) for llama, qwen2, qwen3 and gemma3; candle-transformers' phi3.

use crate::ModelError;
use crate::decoder::Decoder;
use crate::quant::Pass;
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
    Phi3(Box<quantized_phi3::ModelWeights>),
}

fn candle(e: candle_core::Error) -> ModelError {
    ModelError::Load(e.to_string())
}

impl Weights {
    pub fn load<R: Read + Seek>(arch: Arch, content: Content, reader: &mut R) -> Result<Weights, ModelError> {
        Ok(match arch {
            Arch::Phi3 => Weights::Phi3(Box::new(
                quantized_phi3::ModelWeights::from_gguf(false, content, reader, &Device::Cpu)
                    .map_err(candle)?,
            )),
            _ => Weights::Decoder(Box::new(Decoder::load(arch, &content, reader)?)),
        })
    }

    /// Logits for the position after `tokens`, which start at `pos`. The KV cache keeps what
    /// came before `pos`; `pos == 0` starts afresh.
    pub fn forward(&mut self, tokens: &[u32], pos: usize, pass: Pass) -> Result<Tensor, ModelError> {
        match self {
            Weights::Decoder(d) => d.forward(tokens, pos, pass),
            Weights::Phi3(m) => {
                let err = |e: candle_core::Error| ModelError::Inference(e.to_string());
                let input = Tensor::new(tokens, &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(err)?;
                m.forward(&input, pos).and_then(|l| l.squeeze(0)).map_err(err)
            }
        }
    }

    /// Whether several new tokens may be fed after a cached prefix. candle-transformers 0.11.1's
    /// phi3 builds its attention mask right only from position 0, so it reads whole prompts.
    pub fn extends_prefix(&self) -> bool {
        matches!(self, Weights::Decoder(_))
    }
}

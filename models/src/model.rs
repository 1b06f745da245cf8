//! A model loaded for chat: weights, tokenizer, template and the generation loop. One
//! `LoadedModel` serves one request at a time (the engine thread owns it); its KV cache holds
//! the tokens of the last request so the next turn of the same chat only reads what is new.

use crate::ModelError;
use crate::gguf::{self, Meta};
use crate::quant::Pass;
use crate::sampling::{GenerateParams, StopStrings};
use crate::template::{ChatMessage, ChatTemplate, Family};
use crate::tokenizer::TextTokenizer;
use crate::weights::{Arch, Weights};
use candle_core::Tensor;
use candle_transformers::generation::LogitsProcessor;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What a file is, read from its header alone (cheap: no weights are loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub arch: Arch,
    pub name: Option<String>,
    pub context_length: usize,
    pub quantization: String,
    pub has_chat_template: bool,
    pub tensors: usize,
}

/// Tokens of repetition the penalty looks back over.
const REPEAT_LAST_N: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-turn token or a stop string.
    Stop,
    /// `max_tokens` or the context window.
    Length,
    /// The client went away or pressed stop.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused from the previous request.
    pub cached_prompt_tokens: usize,
    pub completion_tokens: usize,
}

#[derive(Debug, Clone)]
pub struct Completion {
    pub text: String,
    pub finish: FinishReason,
    pub usage: Usage,
    pub prompt_ms: u64,
    pub total_ms: u64,
}

pub struct LoadedModel {
    pub info: ModelInfo,
    weights: Weights,
    pub tokenizer: TextTokenizer,
    template: ChatTemplate,
    stop_ids: Vec<u32>,
    /// The tokens whose keys and values sit in the KV cache, in order.
    cached: Vec<u32>,
}

fn describe(content: &candle_core::quantized::gguf_file::Content) -> Result<ModelInfo, ModelError> {
    let meta = Meta(&content.metadata);
    let arch_name = meta
        .str("general.architecture")
        .ok_or_else(|| ModelError::Unsupported("the file names no general.architecture".into()))?;
    let arch = Arch::from_gguf_name(arch_name)?;
    let context_length = meta.u32(&format!("{arch_name}.context_length")).unwrap_or(4096) as usize;
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for t in content.tensor_infos.values() {
        *counts.entry(format!("{:?}", t.ggml_dtype)).or_default() += 1;
    }
    let quantization = counts.iter().max_by_key(|(_, n)| **n).map(|(k, _)| k.clone()).unwrap_or_default();
    Ok(ModelInfo {
        arch,
        name: meta.str("general.name").map(str::to_string),
        context_length,
        quantization,
        has_chat_template: meta.str("tokenizer.chat_template").is_some(),
        tensors: content.tensor_infos.len(),
    })
}

/// Checks a file without loading its weights: header, architecture, tokenizer, template.
pub fn inspect(path: &Path) -> Result<ModelInfo, ModelError> {
    let content = gguf::read_file_header(path)?;
    let info = describe(&content)?;
    let meta = Meta(&content.metadata);
    let tokenizer = TextTokenizer::from_gguf(&meta)?;
    template_for(&meta, &tokenizer, info.arch)?;
    Ok(info)
}

fn template_for(meta: &Meta<'_>, tok: &TextTokenizer, arch: Arch) -> Result<ChatTemplate, ModelError> {
    let text = |id: Option<u32>| id.and_then(|i| tok.token(i)).unwrap_or_default();
    let (bos, eos) = (text(tok.bos), text(tok.eos));
    if let Some(source) = meta.str("tokenizer.chat_template") {
        return ChatTemplate::jinja(source, &bos, &eos);
    }
    let family = match arch {
        Arch::Gemma3 => Family::Gemma,
        Arch::Phi3 => Family::Phi3,
        Arch::Llama if tok.token_id("<|start_header_id|>").is_some() => Family::Llama3,
        _ => Family::ChatMl,
    };
    Ok(ChatTemplate::builtin(family, &bos, &eos))
}

impl LoadedModel {
    pub fn load(path: &Path) -> Result<LoadedModel, ModelError> {
        let content = gguf::read_file_header(path)?;
        let info = describe(&content)?;
        let meta = Meta(&content.metadata);
        let tokenizer = match path.with_file_name("tokenizer.json") {
            beside if beside.is_file() => {
                let g = TextTokenizer::from_gguf(&meta)?;
                TextTokenizer::from_file(&beside, g.bos, g.eos)?
            }
            _ => TextTokenizer::from_gguf(&meta)?,
        };
        let template = template_for(&meta, &tokenizer, info.arch)?;
        let mut stop_ids: Vec<u32> = tokenizer.eos.into_iter().collect();
        for end in ["<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "<eos>"] {
            if let Some(id) = tokenizer.token_id(end).filter(|id| !stop_ids.contains(id)) {
                stop_ids.push(id);
            }
        }
        let file =
            std::fs::File::open(path).map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        let weights = Weights::load(info.arch, content, &mut reader)?;
        Ok(LoadedModel { info, weights, tokenizer, template, stop_ids, cached: Vec::new() })
    }

    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, ModelError> {
        self.template.render(messages, true)
    }

    /// Tokens for a chat, ready to generate the assistant's reply.
    pub fn prompt_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, ModelError> {
        self.tokenizer.encode(&self.render(messages)?)
    }

    /// Generates the reply to `prompt`, handing each piece of text to `emit` as it is decoded.
    /// Stops at an end-of-turn token, a stop string, `max_tokens`, the context window, or when
    /// `cancel` is set.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        cancel: &AtomicBool,
        mut emit: impl FnMut(&str),
    ) -> Result<Completion, ModelError> {
        let started = Instant::now();
        let window = self.info.context_length;
        let (mut logits, reuse) = self.read_prompt(prompt)?;
        let prompt_ms = started.elapsed().as_millis() as u64;

        let sampling = params.sampling();
        let mut sampler = LogitsProcessor::from_sampling(params.seed, sampling);
        let mut stream = self.tokenizer.stream();
        let mut stops = StopStrings::new(&params.stop);
        let mut generated: Vec<u32> = Vec::new();
        let limit = params.max_tokens.min(window - prompt.len());
        let finish = loop {
            if cancel.load(Ordering::Relaxed) {
                break FinishReason::Cancelled;
            }
            if generated.len() >= limit {
                break FinishReason::Length;
            }
            let logits_now = if params.repetition_penalty != 1.0 {
                let start = self.cached.len().saturating_sub(REPEAT_LAST_N);
                candle_transformers::utils::apply_repeat_penalty(
                    &logits,
                    params.repetition_penalty,
                    &self.cached[start..],
                )
                .map_err(|e| ModelError::Inference(e.to_string()))?
            } else {
                logits.clone()
            };
            let next = sampler.sample(&logits_now).map_err(|e| ModelError::Inference(e.to_string()))?;
            if self.stop_ids.contains(&next) {
                break FinishReason::Stop;
            }
            generated.push(next);
            let mut hit_stop = false;
            if let Some(piece) = stream.push(next)? {
                let (ready, stopped) = stops.feed(&piece);
                if !ready.is_empty() {
                    emit(&ready);
                }
                hit_stop = stopped;
            }
            if hit_stop {
                break FinishReason::Stop;
            }
            let pos = self.cached.len();
            logits = match self.weights.forward(&[next], pos, Pass::Decode) {
                Ok(l) => l,
                Err(e) => {
                    self.cached.clear();
                    return Err(e);
                }
            };
            self.cached.push(next);
        };
        let tail = stops.finish();
        if !tail.is_empty() {
            emit(&tail);
        }
        Ok(Completion {
            text: stops.text().to_string(),
            finish,
            usage: Usage {
                prompt_tokens: prompt.len(),
                cached_prompt_tokens: reuse,
                completion_tokens: generated.len(),
            },
            prompt_ms,
            total_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Feeds `prompt`, reading only what the KV cache does not already hold: the cache keeps
    /// the longest prefix it shares with the prompt (the earlier turns of a chat, or the part
    /// before an edited message), and at least the last prompt token is read, for its logits.
    /// Returns those logits and how many prompt tokens came from the cache.
    fn read_prompt(&mut self, prompt: &[u32]) -> Result<(Tensor, usize), ModelError> {
        if prompt.is_empty() {
            return Err(ModelError::BadRequest("the prompt is empty".into()));
        }
        let window = self.info.context_length;
        if prompt.len() >= window {
            return Err(ModelError::ContextTooLong { tokens: prompt.len(), window });
        }
        let shared = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        let reuse = if self.weights.extends_prefix() { shared.min(prompt.len() - 1) } else { 0 };
        self.cached.truncate(reuse);
        match self.weights.forward(&prompt[reuse..], reuse, Pass::Prompt) {
            Ok(logits) => {
                self.cached.extend_from_slice(&prompt[reuse..]);
                Ok((logits, reuse))
            }
            Err(e) => {
                self.cached.clear();
                Err(e)
            }
        }
    }

    /// The logits for the token after `prompt` and how many prompt tokens the cache supplied,
    /// as a reply would start: for tests that compare reading with and without the cache.
    pub fn next_logits(&mut self, prompt: &[u32]) -> Result<(Vec<f32>, usize), ModelError> {
        let (logits, reuse) = self.read_prompt(prompt)?;
        Ok((logits.to_vec1::<f32>().map_err(|e| ModelError::Inference(e.to_string()))?, reuse))
    }

    /// Prompt processing alone, for benchmarks: feeds `tokens` from position 0.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<(), ModelError> {
        self.cached.clear();
        self.weights.forward(tokens, 0, Pass::Prompt)?;
        self.cached.extend_from_slice(tokens);
        Ok(())
    }

    /// Decoding alone, for benchmarks: `n` greedy steps after what is cached, never stopping
    /// at an end-of-turn token.
    pub fn decode_steps(&mut self, first: u32, n: usize) -> Result<(), ModelError> {
        let mut next = first;
        for _ in 0..n {
            let pos = self.cached.len();
            let logits = self.weights.forward(&[next], pos, Pass::Decode)?;
            self.cached.push(next);
            next = logits
                .argmax(0)
                .and_then(|t| t.to_scalar::<u32>())
                .map_err(|e| ModelError::Inference(e.to_string()))?;
        }
        Ok(())
    }

    /// Drops the KV cache, so the next request reads its whole prompt (for comparisons).
    pub fn forget_cache(&mut self) {
        self.cached.clear();
    }
}

//! A model loaded for chat: weights, tokenizer, template, and the steps of generation. Each
//! request being answered is a `Sequence` with its own KV cache; the engine thread owns the
//! model and moves many sequences forward together (`engine`). `generate` runs one sequence
//! alone, for tests and benchmarks.

use crate::ModelError;
use crate::decoder::Feed;
use crate::gguf::{self, Meta};
use crate::kv::KvCache;
use crate::quant::Pass;
use crate::sampling::{GenerateParams, StopStrings};
use crate::template::{ChatMessage, ChatTemplate, Family};
use crate::tokenizer::{TextTokenizer, TokenStream};
use crate::weights::{Arch, Weights};
use candle_core::{Device, Tensor};
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
    /// The cache of the one-sequence calls (`generate`, `next_logits`, ...).
    solo: KvCache,
}

/// One request being answered: its prompt, its KV cache, and where generation stands.
pub struct Sequence {
    prompt: Vec<u32>,
    cache: KvCache,
    /// Prompt tokens the cache already held when the request began.
    reused: usize,
    /// Whether the prompt may be read a piece at a time.
    chunked: bool,
    sampler: LogitsProcessor,
    stream: TokenStream,
    stops: StopStrings,
    generated: usize,
    limit: usize,
    penalty: f32,
    /// The token sampled last, read in the next step once the prompt is read.
    next: u32,
    started: Instant,
    prompt_ms: u64,
}

impl Sequence {
    /// The cache as it stands, for prefix matching by the scheduler.
    pub fn cache(&self) -> &KvCache {
        &self.cache
    }

    /// Prompt tokens still to read.
    pub fn prompt_left(&self) -> usize {
        self.prompt.len().saturating_sub(self.cache.len())
    }

    /// Prompt tokens the cache supplied.
    pub fn reused(&self) -> usize {
        self.reused
    }

    pub fn prompt_len(&self) -> usize {
        self.prompt.len()
    }

    /// What the sequence reads in the next step: the next piece of its prompt, at most `chunk`
    /// tokens (the whole rest where the model cannot read a prompt in pieces), or the token it
    /// sampled last.
    pub(crate) fn feed(&mut self, chunk: usize) -> Feed<'_> {
        let have = self.cache.len();
        if have < self.prompt.len() {
            let end = if self.chunked {
                self.prompt.len().min(have.saturating_add(chunk.max(1)))
            } else {
                self.prompt.len()
            };
            let logits = end == self.prompt.len();
            Feed { tokens: &self.prompt[have..end], cache: &mut self.cache, pass: Pass::Prompt, logits }
        } else {
            Feed {
                tokens: std::slice::from_ref(&self.next),
                cache: &mut self.cache,
                pass: Pass::Decode,
                logits: true,
            }
        }
    }

    /// The cache, once the sequence is over, for the next request to start from.
    pub fn into_cache(self) -> KvCache {
        self.cache
    }
}

fn describe(content: &candle_core::quantized::gguf_file::Content) -> Result<ModelInfo, ModelError> {
    let meta = Meta(&content.metadata);
    let arch_name = meta
        .str("general.architecture")
        .ok_or_else(|| ModelError::Unsupported("the file names no general.architecture".into()))?;
    let arch = Arch::from_gguf_name(arch_name)?;
    let context_length = meta.u32(&format!("{arch_name}.context_length")).unwrap_or(4096) as usize;
    let quantization = match meta.u32("general.file_type").and_then(file_type_name) {
        Some(declared) => declared.to_string(),
        // Older files declare nothing: the type most tensors have is the best guess.
        None => {
            let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
            for t in content.tensor_infos.values() {
                *counts.entry(format!("{:?}", t.ggml_dtype)).or_default() += 1;
            }
            counts.iter().max_by_key(|(_, n)| **n).map(|(k, _)| k.clone()).unwrap_or_default()
        }
    };
    Ok(ModelInfo {
        arch,
        name: meta.str("general.name").map(str::to_string),
        context_length,
        quantization,
        has_chat_template: meta.str("tokenizer.chat_template").is_some(),
        tensors: content.tensor_infos.len(),
    })
}

/// The quantization a GGUF file declares (`general.file_type`, llama.cpp's `llama_ftype`), named
/// as llama.cpp and the model hubs name it. A Q4_K_M file mixes tensor types (Q4_K, Q6_K, Q5_0
/// where a row does not split into 256, F32 for norms), so counting tensors would name the wrong
/// one.
fn file_type_name(code: u32) -> Option<&'static str> {
    Some(match code {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        _ => return None,
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
        Ok(LoadedModel { info, weights, tokenizer, template, stop_ids, solo: KvCache::default() })
    }

    /// The prompt for a chat: the assistant's turn opened for a new answer, or, when the chat
    /// ends with an answer, that answer left open to be continued (as llama.cpp's server and
    /// Anthropic's API take a final assistant message).
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, ModelError> {
        match messages.last() {
            Some(m) if m.role == "assistant" => self.template.render_continuing(messages),
            _ => self.template.render(messages, true),
        }
    }

    /// Tokens for a chat, ready to generate the assistant's reply.
    pub fn prompt_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, ModelError> {
        self.tokenizer.encode(&self.render(messages)?)
    }

    /// Starts answering `prompt` from `cache`, which keeps the longest prefix the two share
    /// (the earlier turns of a chat, or the part before an edited message); at least the last
    /// prompt token is read again, for its logits.
    pub fn begin(
        &self,
        prompt: Vec<u32>,
        params: &GenerateParams,
        mut cache: KvCache,
    ) -> Result<Sequence, ModelError> {
        if prompt.is_empty() {
            return Err(ModelError::BadRequest("the prompt is empty".into()));
        }
        let window = self.info.context_length;
        if prompt.len() >= window {
            return Err(ModelError::ContextTooLong { tokens: prompt.len(), window });
        }
        let chunked = self.weights.extends_prefix();
        let shared = cache.shared_prefix(&prompt);
        let reused = if chunked { shared.min(prompt.len() - 1) } else { 0 };
        cache.truncate(reused);
        cache.expect((prompt.len() + params.max_tokens).min(window));
        Ok(Sequence {
            limit: params.max_tokens.min(window - prompt.len()),
            prompt,
            cache,
            reused,
            chunked,
            sampler: LogitsProcessor::from_sampling(params.seed, params.sampling()),
            stream: TokenStream::default(),
            stops: StopStrings::new(&params.stop),
            generated: 0,
            penalty: params.repetition_penalty,
            next: 0,
            started: Instant::now(),
            prompt_ms: 0,
        })
    }

    /// Reads one step for several sequences together (see `Weights::step`).
    pub(crate) fn step(&mut self, feeds: &mut [Feed<'_>]) -> Result<Vec<Option<Vec<f32>>>, ModelError> {
        self.weights.step(feeds)
    }

    /// How many sequences one step may carry.
    pub fn max_batch(&self) -> usize {
        self.weights.max_batch()
    }

    /// KV cache memory per cached token.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.weights.kv_bytes_per_token()
    }

    /// Moves `seq` on after a step, given the logits it asked for: samples the next token and
    /// hands any text it completes to `emit`. Returns how the sequence ended, if it did: an
    /// end-of-turn token or a stop string, `max_tokens` or the context window.
    pub fn advance(
        &self,
        seq: &mut Sequence,
        logits: Option<Vec<f32>>,
        mut emit: impl FnMut(&str),
    ) -> Result<Option<FinishReason>, ModelError> {
        if seq.prompt_left() > 0 {
            return Ok(None);
        }
        if seq.generated == 0 {
            seq.prompt_ms = seq.started.elapsed().as_millis() as u64;
        }
        let logits = logits.ok_or_else(|| ModelError::Inference("a step gave no logits".into()))?;
        let err = |e: candle_core::Error| ModelError::Inference(e.to_string());
        let mut logits = Tensor::from_vec(logits.clone(), logits.len(), &Device::Cpu).map_err(err)?;
        if seq.penalty != 1.0 {
            let seen = seq.cache.tokens();
            let recent = &seen[seen.len().saturating_sub(REPEAT_LAST_N)..];
            logits = candle_transformers::utils::apply_repeat_penalty(&logits, seq.penalty, recent)
                .map_err(err)?;
        }
        let next = seq.sampler.sample(&logits).map_err(err)?;
        if self.stop_ids.contains(&next) {
            return Ok(Some(FinishReason::Stop));
        }
        seq.generated += 1;
        if let Some(piece) = seq.stream.push(&self.tokenizer, next)? {
            let (ready, stopped) = seq.stops.feed(&piece);
            if !ready.is_empty() {
                emit(&ready);
            }
            if stopped {
                return Ok(Some(FinishReason::Stop));
            }
        }
        if seq.generated >= seq.limit {
            return Ok(Some(FinishReason::Length));
        }
        seq.next = next;
        Ok(None)
    }

    /// Ends `seq`: the whole reply and its counts, any text held back for a possible stop
    /// string (through `emit`), and the cache for the next request.
    pub fn finish(
        &self,
        mut seq: Sequence,
        finish: FinishReason,
        mut emit: impl FnMut(&str),
    ) -> (Completion, KvCache) {
        let tail = seq.stops.finish();
        if !tail.is_empty() {
            emit(&tail);
        }
        let done = Completion {
            text: seq.stops.text().to_string(),
            finish,
            usage: Usage {
                prompt_tokens: seq.prompt.len(),
                cached_prompt_tokens: seq.reused,
                completion_tokens: seq.generated,
            },
            prompt_ms: seq.prompt_ms,
            total_ms: seq.started.elapsed().as_millis() as u64,
        };
        (done, seq.cache)
    }

    /// Generates the reply to `prompt` as the only sequence, handing each piece of text to
    /// `emit` as it is decoded. Stops at an end-of-turn token, a stop string, `max_tokens`,
    /// the context window, or when `cancel` is set.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        params: &GenerateParams,
        cancel: &AtomicBool,
        mut emit: impl FnMut(&str),
    ) -> Result<Completion, ModelError> {
        let solo = std::mem::take(&mut self.solo);
        let mut seq = self.begin(prompt.to_vec(), params, solo)?;
        let finish = loop {
            if cancel.load(Ordering::Relaxed) {
                break FinishReason::Cancelled;
            }
            let logits = self.step(&mut [seq.feed(usize::MAX)]).map(|mut l| l.remove(0));
            match logits.and_then(|l| self.advance(&mut seq, l, &mut emit)) {
                Ok(None) => {}
                Ok(Some(finish)) => break finish,
                Err(e) => return Err(e),
            }
        };
        let (done, cache) = self.finish(seq, finish, emit);
        self.solo = cache;
        Ok(done)
    }

    /// The logits for the token after `prompt` and how many prompt tokens the cache supplied,
    /// as a reply would start: for tests that compare reading with and without the cache.
    pub fn next_logits(&mut self, prompt: &[u32]) -> Result<(Vec<f32>, usize), ModelError> {
        let solo = std::mem::take(&mut self.solo);
        let mut seq = self.begin(prompt.to_vec(), &GenerateParams::default(), solo)?;
        let logits = self.step(&mut [seq.feed(usize::MAX)]).map(|mut l| l.remove(0));
        let reused = seq.reused;
        self.solo = seq.into_cache();
        let logits = logits?.ok_or_else(|| ModelError::Inference("a step gave no logits".into()))?;
        Ok((logits, reused))
    }

    /// Prompt processing alone, for benchmarks: reads `tokens` from position 0.
    pub fn prefill(&mut self, tokens: &[u32]) -> Result<(), ModelError> {
        let mut cache = std::mem::take(&mut self.solo);
        cache.truncate(0);
        let read = self.step(&mut [Feed { tokens, cache: &mut cache, pass: Pass::Prompt, logits: true }]);
        self.solo = cache;
        read.map(drop)
    }

    /// Decoding alone, for benchmarks: `n` greedy steps after what is cached, never stopping
    /// at an end-of-turn token.
    pub fn decode_steps(&mut self, first: u32, n: usize) -> Result<(), ModelError> {
        let mut cache = std::mem::take(&mut self.solo);
        let mut next = first;
        let mut result = Ok(());
        for _ in 0..n {
            let read = self.step(&mut [Feed {
                tokens: &[next],
                cache: &mut cache,
                pass: Pass::Decode,
                logits: true,
            }]);
            match read.map(|mut l| l.remove(0).unwrap_or_default()) {
                Ok(logits) => next = argmax(&logits),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.solo = cache;
        result
    }

    /// Decoding `n` sequences in the same steps, for benchmarks: each starts from a token of
    /// its own and takes `steps` greedy steps after it.
    pub fn decode_together(&mut self, n: usize, steps: usize) -> Result<(), ModelError> {
        let mut caches: Vec<KvCache> = (0..n).map(|_| KvCache::default()).collect();
        let mut next: Vec<u32> = (0..n as u32).map(|i| 1000 + 7 * i).collect();
        for step in 0..=steps {
            let tokens: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let pass = if step == 0 { Pass::Prompt } else { Pass::Decode };
            let mut feeds: Vec<Feed<'_>> = caches
                .iter_mut()
                .zip(&tokens)
                .map(|(cache, tokens)| Feed { tokens, cache, pass, logits: true })
                .collect();
            let logits = self.step(&mut feeds)?;
            for (next, logits) in next.iter_mut().zip(logits) {
                *next = argmax(&logits.unwrap_or_default());
            }
        }
        Ok(())
    }

    /// Drops the one-sequence cache, so the next request reads its whole prompt.
    pub fn forget_cache(&mut self) {
        self.solo = KvCache::default();
    }
}

/// The most likely token, for the benchmarks' greedy steps.
fn argmax(logits: &[f32]) -> u32 {
    logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32)
}

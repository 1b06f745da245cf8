//! The tokenizer, built from the GGUF metadata itself (so one .gguf file is enough to chat), or
//! read from a `tokenizer.json` beside the model. Two GGUF families are understood:
//! - `gpt2`: byte-level BPE with the file's merges and the pre-tokenizer `tokenizer.ggml.pre`
//!   names (Qwen2, Llama 3, GPT-2);
//! - `llama`: SentencePiece vocabularies, rebuilt as a byte-fallback BPE whose merges are
//!   derived from the token scores (checked against llama.cpp's ids).

use crate::ModelError;
use crate::gguf::Meta;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

const TYPE_NORMAL: i32 = 1;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

pub struct TextTokenizer {
    inner: Tokenizer,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    add_bos: bool,
}

fn bad(why: impl Into<String>) -> ModelError {
    ModelError::Tokenizer(why.into())
}

fn tk<T>(r: tokenizers::Result<T>) -> Result<T, ModelError> {
    r.map_err(|e| bad(e.to_string()))
}

impl TextTokenizer {
    /// Builds the tokenizer that the GGUF metadata describes.
    pub fn from_gguf(meta: &Meta<'_>) -> Result<TextTokenizer, ModelError> {
        let model =
            meta.str("tokenizer.ggml.model").ok_or_else(|| bad("the file has no tokenizer.ggml.model"))?;
        let tokens = meta
            .strings("tokenizer.ggml.tokens")
            .ok_or_else(|| bad("the file has no tokenizer.ggml.tokens"))?;
        let types = meta.i32s("tokenizer.ggml.token_type").unwrap_or_else(|| vec![TYPE_NORMAL; tokens.len()]);
        if types.len() != tokens.len() {
            return Err(bad("tokenizer.ggml.token_type and tokenizer.ggml.tokens differ in length"));
        }
        let mut inner = match model {
            "gpt2" => gpt2(meta, &tokens)?,
            "llama" => sentencepiece_bpe(meta, &tokens, &types)?,
            other => {
                return Err(bad(format!(
                    "tokenizer.ggml.model {other:?} is not supported (gpt2 and llama are)"
                )));
            }
        };
        let added: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| matches!(**t, TYPE_CONTROL | TYPE_USER_DEFINED))
            .map(|(tok, t)| AddedToken::from(tok.to_string(), *t == TYPE_CONTROL))
            .collect();
        tk(inner.add_special_tokens(added))?;
        let id = |key: &str| meta.u32(key).filter(|id| (*id as usize) < tokens.len());
        Ok(TextTokenizer {
            inner,
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            add_bos: meta.bool("tokenizer.ggml.add_bos_token").unwrap_or(model == "llama"),
        })
    }

    /// A Hugging Face `tokenizer.json` (it carries its own special-token handling).
    pub fn from_file(
        path: &std::path::Path,
        bos: Option<u32>,
        eos: Option<u32>,
    ) -> Result<TextTokenizer, ModelError> {
        let inner = Tokenizer::from_file(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        Ok(TextTokenizer { inner, bos, eos, add_bos: false })
    }

    /// Token ids for a rendered prompt. Special-token text (`<|im_start|>`) becomes its one token;
    /// BOS is prepended when the model wants it and the prompt does not already start with it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let enc = tk(self.inner.encode(text, false))?;
        let mut ids = enc.get_ids().to_vec();
        if let Some(bos) = self.bos.filter(|_| self.add_bos)
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        tk(self.inner.decode(ids, true))
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Detokenizes one token at a time, holding back bytes until they form whole UTF-8 characters,
/// so a character split across tokens never shows as garbage.
#[derive(Default)]
pub struct TokenStream {
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl TokenStream {
    /// The new text this token completes, if any.
    pub fn push(&mut self, tok: &TextTokenizer, id: u32) -> Result<Option<String>, ModelError> {
        self.ids.push(id);
        let before = tok.decode(&self.ids[self.prefix..self.read])?;
        let after = tok.decode(&self.ids[self.prefix..])?;
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') {
            let new = after.get(before.len()..).map(str::to_string);
            self.prefix = self.read;
            self.read = self.ids.len();
            return Ok(new.filter(|s| !s.is_empty()));
        }
        Ok(None)
    }
}

fn gpt2(meta: &Meta<'_>, tokens: &[&str]) -> Result<Tokenizer, ModelError> {
    let merges = meta
        .strings("tokenizer.ggml.merges")
        .ok_or_else(|| bad("a gpt2 tokenizer needs tokenizer.ggml.merges"))?;
    let merges: Vec<(String, String)> = merges
        .iter()
        .map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("a merge is not two tokens separated by a space"))?;
    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    let bpe = tk(BPE::builder().vocab_and_merges(vocab, merges).build())?;
    let pre = meta.str("tokenizer.ggml.pre").unwrap_or("gpt-2");
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        "qwen2" | "llama-bpe" | "llama3" | "smaug-bpe" => {
            let pattern = if pre == "qwen2" { QWEN2_PATTERN } else { LLAMA3_PATTERN };
            let split =
                tk(Split::new(SplitPattern::Regex(pattern.into()), SplitDelimiterBehavior::Isolated, false))?;
            PreSequence::new(vec![split.into(), ByteLevel::new(false, false, false).into()]).into()
        }
        "gpt-2" | "default" | "smollm" => ByteLevel::new(false, true, true).into(),
        other => return Err(bad(format!("tokenizer.ggml.pre {other:?} is not supported yet"))),
    };
    let mut t = Tokenizer::new(bpe);
    t.with_pre_tokenizer(Some(pre_tokenizer));
    t.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(t)
}

fn sentencepiece_bpe(meta: &Meta<'_>, tokens: &[&str], types: &[i32]) -> Result<Tokenizer, ModelError> {
    let scores = meta
        .f32s("tokenizer.ggml.scores")
        .ok_or_else(|| bad("a llama tokenizer needs tokenizer.ggml.scores"))?;
    if scores.len() != tokens.len() {
        return Err(bad("tokenizer.ggml.scores and tokenizer.ggml.tokens differ in length"));
    }
    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    // SentencePiece-BPE merges: every split of a normal token into two known pieces, ordered
    // by the merged token's score, highest first.
    let mut ranked: Vec<(f32, usize, String, String)> = Vec::new();
    for (i, tok) in tokens.iter().enumerate() {
        if types[i] != TYPE_NORMAL || tok.chars().count() < 2 {
            continue;
        }
        for (cut, _) in tok.char_indices().skip(1) {
            let (a, b) = tok.split_at(cut);
            if vocab.contains_key(a) && vocab.contains_key(b) {
                ranked.push((scores[i], i, a.to_string(), b.to_string()));
            }
        }
    }
    ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    let merges = ranked.into_iter().map(|(_, _, a, b)| (a, b)).collect();
    let unk = meta
        .u32("tokenizer.ggml.unknown_token_id")
        .and_then(|id| tokens.get(id as usize))
        .map_or("<unk>".to_string(), |t| t.to_string());
    let bpe = tk(BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .unk_token(unk)
        .fuse_unk(true)
        .build())?;
    let prefix_space = meta.bool("tokenizer.ggml.add_space_prefix").unwrap_or(true);
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if prefix_space {
        normalizers.push(Prepend::new("▁".into()).into());
    }
    normalizers.push(tk(Replace::new(" ", "▁"))?.into());
    let mut decoders: Vec<DecoderWrapper> =
        vec![tk(Replace::new("▁", " "))?.into(), ByteFallback::new().into(), Fuse::new().into()];
    if prefix_space {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    let mut t = Tokenizer::new(bpe);
    tk(t.with_normalizer(Some(NormalizerSequence::new(normalizers))))?;
    t.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(t)
}

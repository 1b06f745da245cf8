//! Whisper's encoder and decoder, as OpenAI's `model.py` defines them, with the caches
//! decoding needs: the cross-attention keys and values of a 30-second window are computed once,
//! and the decoder's own keys and values grow a token at a time. (candle-transformers' Whisper
//! re-runs the decoder over every token so far at each step, and projects all of them onto the
//! vocabulary: quadratic in the transcript's length.)
//!
//! The projections (attention's, the feed-forward's, the vocabulary's) are kept in 8 bits
//! (`int8`: per row, activations per block of 32), as the BERT encoder's are. The decoder runs
//! a token at a time, so each step reads all its weights for one token's worth of arithmetic:
//! a quarter of the bytes to read is most of its time. The convolutions, cross-attention's
//! keys and values (projected once per window) and attention itself stay in f32.
//! bench/NOTES.md has the figures, word error rate included.

use crate::int8::I8Matrix;
use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::whisper::Config;

/// A linear projection, in f32 or in 8 bits.
enum Proj {
    F32(Linear),
    I8 { w: I8Matrix, bias: Vec<f32> },
}

impl Proj {
    fn load(d_in: usize, d_out: usize, bias: bool, int8: bool, vb: VarBuilder) -> Result<Proj> {
        let linear = if bias {
            candle_nn::linear(d_in, d_out, vb)?
        } else {
            candle_nn::linear_no_bias(d_in, d_out, vb)?
        };
        if !int8 {
            return Ok(Proj::F32(linear));
        }
        let w = linear.weight().flatten_all()?.to_vec1::<f32>()?;
        let bias = match linear.bias() {
            Some(b) => b.to_vec1::<f32>()?,
            None => vec![0.0; d_out],
        };
        Ok(Proj::I8 { w: I8Matrix::quantize(d_out, d_in, &w), bias })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Proj::F32(linear) => linear.forward(x),
            Proj::I8 { w, bias } => {
                let mut dims = x.dims().to_vec();
                let cols = dims.last().copied().unwrap_or(1);
                let m = x.elem_count() / cols.max(1);
                let input = x.flatten_all()?.to_vec1::<f32>()?;
                let mut out = vec![0f32; m * w.rows()];
                w.matmul(&input, m, bias, &mut out);
                if let Some(last) = dims.last_mut() {
                    *last = w.rows();
                }
                Tensor::from_vec(out, dims, x.device())
            }
        }
    }
}

struct Attention {
    query: Proj,
    key: Proj,
    value: Proj,
    out: Proj,
    heads: usize,
}

impl Attention {
    /// `int8`: the query and output projections in 8 bits; `keys_int8`: the key and value
    /// projections too (not cross-attention's: projected once per window, they stay exact).
    fn load(d: usize, heads: usize, int8: bool, keys_int8: bool, vb: VarBuilder) -> Result<Self> {
        Ok(Attention {
            query: Proj::load(d, d, true, int8, vb.pp("q_proj"))?,
            key: Proj::load(d, d, false, keys_int8, vb.pp("k_proj"))?,
            value: Proj::load(d, d, true, keys_int8, vb.pp("v_proj"))?,
            out: Proj::load(d, d, true, int8, vb.pp("out_proj"))?,
            heads,
        })
    }

    /// (batch, positions, d) to (batch, heads, positions, d / heads).
    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        x.reshape((b, n, self.heads, d / self.heads))?.transpose(1, 2)?.contiguous()
    }

    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.split(&self.key.forward(x)?)?, self.split(&self.value.forward(x)?)?))
    }

    /// Attends from `x` to keys and values already split into heads.
    fn attend(&self, x: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        // Scaled before the product: a pass over the queries, not over every score.
        let q = self.split(&self.query.forward(x)?)?;
        let q = (&q * (1.0 / (q.dim(D::Minus1)? as f64).sqrt()))?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let (b, _, n, _) = weights.dims4()?;
        let mixed = weights.matmul(v)?.transpose(1, 2)?.reshape((b, n, ()))?;
        self.out.forward(&mixed)
    }
}

struct Block {
    attn_ln: LayerNorm,
    attn: Attention,
    cross: Option<(LayerNorm, Attention)>,
    mlp_ln: LayerNorm,
    fc1: Proj,
    fc2: Proj,
}

impl Block {
    /// A decoder block (`decoder`) has cross-attention.
    fn load(d: usize, heads: usize, decoder: bool, vb: VarBuilder) -> Result<Self> {
        let ln = |name: &str| candle_nn::layer_norm(d, 1e-5, vb.pp(name));
        let cross = if decoder {
            Some((
                ln("encoder_attn_layer_norm")?,
                Attention::load(d, heads, true, false, vb.pp("encoder_attn"))?,
            ))
        } else {
            None
        };
        Ok(Block {
            attn_ln: ln("self_attn_layer_norm")?,
            attn: Attention::load(d, heads, true, true, vb.pp("self_attn"))?,
            cross,
            mlp_ln: ln("final_layer_norm")?,
            fc1: Proj::load(d, 4 * d, true, true, vb.pp("fc1"))?,
            fc2: Proj::load(4 * d, d, true, true, vb.pp("fc2"))?,
        })
    }

    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(&self.mlp_ln.forward(x)?)?.gelu_erf()?;
        x + self.fc2.forward(&h)?
    }
}

/// A 30-second window heard: what the decoder attends to, per layer.
pub struct Heard {
    cross: Vec<(Tensor, Tensor)>,
}

/// The decoder's keys and values for the tokens so far.
#[derive(Default)]
pub struct TokenCache {
    layers: Vec<(Tensor, Tensor)>,
}

impl TokenCache {
    /// Tokens held.
    pub fn positions(&self) -> usize {
        self.layers.first().and_then(|(k, _)| k.dim(2).ok()).unwrap_or(0)
    }
}

pub struct WhisperModel {
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    encoder: Vec<Block>,
    encoder_ln: LayerNorm,
    embed: Embedding,
    embed_positions: Tensor,
    decoder: Vec<Block>,
    decoder_ln: LayerNorm,
    /// The token embeddings again, as the projection onto the vocabulary, in 8 bits.
    vocabulary: Proj,
    pub config: Config,
    device: Device,
}

impl WhisperModel {
    pub fn load(vb: VarBuilder, config: Config) -> Result<Self> {
        let d = config.d_model;
        let enc = vb.pp("model.encoder");
        let dec = vb.pp("model.decoder");
        let conv = |stride| Conv1dConfig { padding: 1, stride, ..Default::default() };
        let encoder = (0..config.encoder_layers)
            .map(|i| Block::load(d, config.encoder_attention_heads, false, enc.pp(format!("layers.{i}"))))
            .collect::<Result<_>>()?;
        let decoder = (0..config.decoder_layers)
            .map(|i| Block::load(d, config.decoder_attention_heads, true, dec.pp(format!("layers.{i}"))))
            .collect::<Result<_>>()?;
        let embed = candle_nn::embedding(config.vocab_size, d, dec.pp("embed_tokens"))?;
        let rows = embed.embeddings().flatten_all()?.to_vec1::<f32>()?;
        let vocabulary = Proj::I8 {
            w: I8Matrix::quantize(config.vocab_size, d, &rows),
            bias: vec![0.0; config.vocab_size],
        };
        Ok(WhisperModel {
            conv1: candle_nn::conv1d(config.num_mel_bins, d, 3, conv(1), enc.pp("conv1"))?,
            conv2: candle_nn::conv1d(d, d, 3, conv(2), enc.pp("conv2"))?,
            positions: sinusoids(config.max_source_positions, d, vb.device())?,
            encoder,
            encoder_ln: candle_nn::layer_norm(d, 1e-5, enc.pp("layer_norm"))?,
            embed,
            vocabulary,
            embed_positions: dec.get((config.max_target_positions, d), "embed_positions.weight")?,
            decoder,
            decoder_ln: candle_nn::layer_norm(d, 1e-5, dec.pp("layer_norm"))?,
            device: vb.device().clone(),
            config,
        })
    }

    /// Encodes one window's log-mel spectrogram, (1, mels, 3000).
    pub fn hear(&self, mel: &Tensor) -> Result<Heard> {
        let x = self.conv1.forward(mel)?.gelu_erf()?;
        let x = self.conv2.forward(&x)?.gelu_erf()?.transpose(1, 2)?;
        let n = x.dim(1)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, n)?)?;
        for block in &self.encoder {
            let h = block.attn_ln.forward(&x)?;
            let (k, v) = block.attn.keys_values(&h)?;
            x = (&x + block.attn.attend(&h, &k, &v, None)?)?;
            x = block.mlp(&x)?;
        }
        let audio = self.encoder_ln.forward(&x)?;
        let cross = self
            .decoder
            .iter()
            .filter_map(|b| b.cross.as_ref())
            .map(|(_, attn)| attn.keys_values(&audio))
            .collect::<Result<_>>()?;
        Ok(Heard { cross })
    }

    /// Runs `tokens` after those in `cache`, and returns the logits of the token after the
    /// last one, (vocab,).
    pub fn step(&self, heard: &Heard, cache: &mut TokenCache, tokens: &[u32]) -> Result<Tensor> {
        let past = cache.positions();
        let n = tokens.len();
        if past + n > self.config.max_target_positions {
            candle_core::bail!("the transcript of one window outgrew the model's {} positions", past + n);
        }
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let mut x = self.embed.forward(&ids)?.broadcast_add(&self.embed_positions.narrow(0, past, n)?)?;
        // Each new token sees the past and the new tokens up to itself.
        let mask = (n > 1).then(|| causal_mask(n, past, &self.device)).transpose()?;
        for (i, block) in self.decoder.iter().enumerate() {
            let h = block.attn_ln.forward(&x)?;
            let (k, v) = block.attn.keys_values(&h)?;
            let (k, v) = match cache.layers.get(i) {
                Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
                None => (k, v),
            };
            x = (&x + block.attn.attend(&h, &k, &v, mask.as_ref())?)?;
            if i < cache.layers.len() {
                cache.layers[i] = (k, v);
            } else {
                cache.layers.push((k, v));
            }
            if let Some((ln, cross)) = &block.cross {
                let (ck, cv) = &heard.cross[i];
                x = (&x + cross.attend(&ln.forward(&x)?, ck, cv, None)?)?;
            }
            x = block.mlp(&x)?;
        }
        let last = self.decoder_ln.forward(&x.narrow(1, n - 1, 1)?)?.squeeze(0)?.squeeze(0)?;
        self.vocabulary.forward(&last)
    }
}

fn causal_mask(n: usize, past: usize, device: &Device) -> Result<Tensor> {
    let cells: Vec<f32> = (0..n)
        .flat_map(|i| (0..past + n).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(cells, (n, past + n), device)
}

/// The encoder's fixed positions: sines then cosines of geometrically spaced frequencies.
fn sinusoids(length: usize, channels: usize, device: &Device) -> Result<Tensor> {
    let half = channels / 2;
    let increment = (10_000f64).ln() / (half - 1) as f64;
    let inverse: Vec<f32> = (0..half).map(|i| (-increment * i as f64).exp() as f32).collect();
    let inverse = Tensor::new(inverse, device)?.unsqueeze(0)?;
    let time = Tensor::arange(0u32, length as u32, device)?.to_dtype(DType::F32)?.unsqueeze(1)?;
    let scaled = time.broadcast_mul(&inverse)?;
    Tensor::cat(&[scaled.sin()?, scaled.cos()?], 1)
}

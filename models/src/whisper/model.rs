//! Whisper's encoder and decoder, as OpenAI's `model.py` defines them, with the caches
//! decoding needs: the cross-attention keys and values of a 30-second window are computed once,
//! and the decoder's own keys and values grow a token at a time. (candle-transformers' Whisper
//! re-runs the decoder over every token so far at each step, and projects all of them onto the
//! vocabulary: quadratic in the transcript's length.)

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::whisper::Config;

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn load(d: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Attention {
            query: candle_nn::linear(d, d, vb.pp("q_proj"))?,
            key: candle_nn::linear_no_bias(d, d, vb.pp("k_proj"))?,
            value: candle_nn::linear(d, d, vb.pp("v_proj"))?,
            out: candle_nn::linear(d, d, vb.pp("out_proj"))?,
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
        let q = self.split(&self.query.forward(x)?)?;
        let scale = 1.0 / ((q.dim(D::Minus1)? as f64).sqrt());
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
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
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    fn load(d: usize, heads: usize, cross: bool, vb: VarBuilder) -> Result<Self> {
        let ln = |name: &str| candle_nn::layer_norm(d, 1e-5, vb.pp(name));
        let cross = if cross {
            Some((ln("encoder_attn_layer_norm")?, Attention::load(d, heads, vb.pp("encoder_attn"))?))
        } else {
            None
        };
        Ok(Block {
            attn_ln: ln("self_attn_layer_norm")?,
            attn: Attention::load(d, heads, vb.pp("self_attn"))?,
            cross,
            mlp_ln: ln("final_layer_norm")?,
            fc1: candle_nn::linear(d, 4 * d, vb.pp("fc1"))?,
            fc2: candle_nn::linear(4 * d, d, vb.pp("fc2"))?,
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
        Ok(WhisperModel {
            conv1: candle_nn::conv1d(config.num_mel_bins, d, 3, conv(1), enc.pp("conv1"))?,
            conv2: candle_nn::conv1d(d, d, 3, conv(2), enc.pp("conv2"))?,
            positions: sinusoids(config.max_source_positions, d, vb.device())?,
            encoder,
            encoder_ln: candle_nn::layer_norm(d, 1e-5, enc.pp("layer_norm"))?,
            embed: candle_nn::embedding(config.vocab_size, d, dec.pp("embed_tokens"))?,
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
        self.embed.embeddings().matmul(&last.unsqueeze(1)?)?.squeeze(1)
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

//! Our BERT encoder forward pass, for sentence embeddings. The linear layers run on `int8`'s
//! kernels (weights quantized per output row at load, activations per block of 32), and a
//! batch is packed: each text's tokens follow the previous text's, so no pad is ever computed,
//! and attention runs per text. A text's vector therefore does not depend on the texts batched
//! with it.
//!
//! Weights come from a sentence-transformers export's `model.safetensors` (f32, f16 or bf16),
//! named as Hugging Face's `BertModel` names them, with or without the `bert.` (or `roberta.`)
//! prefix.

use crate::ModelError;
use crate::int8::I8Matrix;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// What `config.json` says about the encoder's shape.
#[derive(Debug, Clone, serde::Deserialize)]
struct Config {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f32,
    #[serde(default)]
    pad_token_id: usize,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}

fn default_eps() -> f32 {
    1e-12
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    /// The exact GELU, with erf (BERT's "gelu").
    GeluErf,
    /// The tanh approximation ("gelu_new", "gelu_pytorch_tanh").
    GeluTanh,
    Relu,
}

impl Activation {
    fn apply(self, x: &mut [f32]) {
        match self {
            Activation::GeluErf => {
                x.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2)))
            }
            Activation::GeluTanh => x.iter_mut().for_each(|v| *v = crate::decoder::gelu_tanh(*v)),
            Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        }
    }
}

/// A quantized weight matrix and its bias.
struct Linear {
    w: I8Matrix,
    b: Vec<f32>,
}

impl Linear {
    /// `x[m × in]` to `m × out`, bias added.
    fn forward(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * self.w.rows()];
        self.w.matmul(x, m, &self.b, &mut out);
        out
    }
}

struct Norm {
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl Norm {
    /// Layer normalisation of each row of `x`, in place.
    fn apply(&self, x: &mut [f32]) {
        let h = self.w.len();
        x.par_chunks_mut(h).for_each(|row| {
            let mean = row.iter().sum::<f32>() / h as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.w).zip(&self.b) {
                *v = (*v - mean) * inv * w + b;
            }
        });
    }
}

struct Layer {
    /// Query, key and value in one matrix: one pass over the input.
    qkv: Linear,
    out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    ffn_norm: Norm,
}

pub struct Encoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    act: Activation,
    /// RoBERTa counts positions from after its padding index.
    position_offset: usize,
    vocab: usize,
    /// Positions the table holds beyond the offset: the longest text the encoder reads.
    pub max_positions: usize,
}

/// Named tensors of a safetensors file, read as f32.
struct Tensors {
    all: HashMap<String, Tensor>,
    prefix: String,
}

impl Tensors {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .all
            .get(&full)
            .ok_or_else(|| ModelError::Load(format!("model.safetensors has no tensor {full}")))?;
        if t.dims() != shape {
            return Err(ModelError::Load(format!("{full} is {:?}; the config implies {shape:?}", t.dims())));
        }
        let bad = |e: candle_core::Error| ModelError::Load(format!("{full}: {e}"));
        t.to_dtype(DType::F32).map_err(bad)?.flatten_all().map_err(bad)?.to_vec1::<f32>().map_err(bad)
    }

    fn linear(&self, name: &str, out: usize, inp: usize) -> Result<Linear, ModelError> {
        let w = self.get(&format!("{name}.weight"), &[out, inp])?;
        Ok(Linear { w: I8Matrix::quantize(out, inp, &w), b: self.get(&format!("{name}.bias"), &[out])? })
    }

    /// Older exports name a layer norm's parameters gamma and beta.
    fn norm(&self, name: &str, h: usize, eps: f32) -> Result<Norm, ModelError> {
        let has = |p: &str| self.all.contains_key(&format!("{}{name}.{p}", self.prefix));
        let (w, b) = if has("weight") || !has("gamma") { ("weight", "bias") } else { ("gamma", "beta") };
        Ok(Norm {
            w: self.get(&format!("{name}.{w}"), &[h])?,
            b: self.get(&format!("{name}.{b}"), &[h])?,
            eps,
        })
    }
}

impl Encoder {
    pub fn load(dir: &Path) -> Result<Encoder, ModelError> {
        let text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| ModelError::Load(format!("config.json: {e}")))?;
        let c: Config =
            serde_json::from_str(&text).map_err(|e| ModelError::Load(format!("config.json: {e}")))?;
        let (h, heads) = (c.hidden_size, c.num_attention_heads);
        if heads == 0
            || !h.is_multiple_of(heads)
            || !h.is_multiple_of(32)
            || !c.intermediate_size.is_multiple_of(32)
        {
            return Err(ModelError::Unsupported(format!(
                "config.json: hidden_size {h} with {heads} heads and intermediate_size {}; \
                 embeddings need sizes in multiples of 32 split evenly over the heads",
                c.intermediate_size
            )));
        }
        if c.position_embedding_type.as_deref().is_some_and(|t| t != "absolute") {
            return Err(ModelError::Unsupported(format!(
                "config.json: position_embedding_type {:?}; only absolute positions are supported",
                c.position_embedding_type
            )));
        }
        let act = match c.hidden_act.as_str() {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => return Err(ModelError::Unsupported(format!("config.json: hidden_act {other:?}"))),
        };
        let path = dir.join("model.safetensors");
        let all = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
        let model_type = c.model_type.clone().unwrap_or_else(|| "bert".into());
        let prefix = [String::new(), format!("{model_type}.")]
            .into_iter()
            .find(|p| all.contains_key(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or_else(|| {
                ModelError::Load("model.safetensors has no embeddings.word_embeddings.weight".into())
            })?;
        let t = Tensors { all, prefix };
        let token_types = t
            .all
            .get(&format!("{}embeddings.token_type_embeddings.weight", t.prefix))
            .map_or(1, |x| x.dims().first().copied().unwrap_or(1));
        let position_offset = if model_type.contains("roberta") { c.pad_token_id + 1 } else { 0 };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let at = |s: &str| format!("encoder.layer.{i}.{s}");
            let mut w = Vec::with_capacity(3 * h * h);
            let mut b = Vec::with_capacity(3 * h);
            for name in ["query", "key", "value"] {
                w.extend(t.get(&at(&format!("attention.self.{name}.weight")), &[h, h])?);
                b.extend(t.get(&at(&format!("attention.self.{name}.bias")), &[h])?);
            }
            layers.push(Layer {
                qkv: Linear { w: I8Matrix::quantize(3 * h, h, &w), b },
                out: t.linear(&at("attention.output.dense"), h, h)?,
                attn_norm: t.norm(&at("attention.output.LayerNorm"), h, c.layer_norm_eps)?,
                up: t.linear(&at("intermediate.dense"), c.intermediate_size, h)?,
                down: t.linear(&at("output.dense"), h, c.intermediate_size)?,
                ffn_norm: t.norm(&at("output.LayerNorm"), h, c.layer_norm_eps)?,
            });
        }
        Ok(Encoder {
            word: t.get("embeddings.word_embeddings.weight", &[c.vocab_size, h])?,
            position: t.get("embeddings.position_embeddings.weight", &[c.max_position_embeddings, h])?,
            token_type: t.get("embeddings.token_type_embeddings.weight", &[token_types, h])?,
            embed_norm: t.norm("embeddings.LayerNorm", h, c.layer_norm_eps)?,
            layers,
            heads,
            hidden: h,
            act,
            position_offset,
            vocab: c.vocab_size,
            max_positions: c.max_position_embeddings.saturating_sub(position_offset),
        })
    }

    /// The mean of each text's last hidden states over its tokens. Each text must hold at
    /// least one token and at most `max_positions`.
    pub fn mean_pooled(&self, texts: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let h = self.hidden;
        for t in texts {
            if t.is_empty() || t.len() > self.max_positions {
                return Err(ModelError::Inference(format!(
                    "a text of {} tokens; the encoder reads 1 to {}",
                    t.len(),
                    self.max_positions
                )));
            }
            if let Some(id) = t.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(ModelError::Inference(format!("token {id} is outside the vocabulary")));
            }
        }
        let spans: Vec<(usize, usize)> = texts
            .iter()
            .scan(0, |at, t| {
                let span = (*at, t.len());
                *at += t.len();
                Some(span)
            })
            .collect();
        let n: usize = texts.iter().map(Vec::len).sum();
        let mut x = vec![0f32; n * h];
        let rows = texts.iter().flat_map(|t| t.iter().enumerate());
        for (row, (pos, &id)) in x.chunks_exact_mut(h).zip(rows) {
            let word = &self.word[id as usize * h..][..h];
            let position = &self.position[(pos + self.position_offset) * h..][..h];
            for (((o, w), p), t) in row.iter_mut().zip(word).zip(position).zip(&self.token_type[..h]) {
                *o = w + p + t;
            }
        }
        self.embed_norm.apply(&mut x);
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x, n);
            let ctx = self.attention(&qkv, &spans);
            let mut o = layer.out.forward(&ctx, n);
            o.iter_mut().zip(&x).for_each(|(o, x)| *o += x);
            layer.attn_norm.apply(&mut o);
            x = o;
            let mut up = layer.up.forward(&x, n);
            let act = self.act;
            up.par_chunks_mut(4096).for_each(|c| act.apply(c));
            let mut o = layer.down.forward(&up, n);
            o.iter_mut().zip(&x).for_each(|(o, x)| *o += x);
            layer.ffn_norm.apply(&mut o);
            x = o;
        }
        Ok(spans
            .iter()
            .map(|&(at, len)| {
                let mut mean = vec![0f32; h];
                for row in x[at * h..(at + len) * h].chunks_exact(h) {
                    mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
                }
                mean.iter_mut().for_each(|m| *m /= len as f32);
                mean
            })
            .collect())
    }

    /// Scaled dot-product attention within each text, all heads; `qkv` holds each token's
    /// query, key and value side by side.
    fn attention(&self, qkv: &[f32], spans: &[(usize, usize)]) -> Vec<f32> {
        let h = self.hidden;
        let dh = h / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let mut ctx = vec![0f32; qkv.len() / 3];
        // Each text's rows of the output, so texts run in parallel.
        let mut parts = Vec::with_capacity(spans.len());
        let mut rest = ctx.as_mut_slice();
        for &(_, len) in spans {
            let (part, tail) = rest.split_at_mut(len * h);
            parts.push(part);
            rest = tail;
        }
        parts.into_par_iter().zip(spans.par_iter()).for_each(|(out, &(at, len))| {
            let rows = &qkv[at * 3 * h..(at + len) * 3 * h];
            // Keys transposed (one row per dimension), so a query's scores are built a dimension
            // at a time over all keys: long runs the compiler turns into vector code.
            let mut keys = vec![0f32; dh * len];
            let mut values = vec![0f32; len * dh];
            let mut scores = vec![0f32; len];
            for head in 0..self.heads {
                for (j, row) in rows.chunks_exact(3 * h).enumerate() {
                    for (d, &k) in row[h + head * dh..][..dh].iter().enumerate() {
                        keys[d * len + j] = k;
                    }
                    values[j * dh..(j + 1) * dh].copy_from_slice(&row[2 * h + head * dh..][..dh]);
                }
                for (i, row) in rows.chunks_exact(3 * h).enumerate() {
                    scores.fill(0.0);
                    for (&q, keys) in row[head * dh..][..dh].iter().zip(keys.chunks_exact(len)) {
                        let q = q * scale;
                        scores.iter_mut().zip(keys).for_each(|(s, k)| *s += q * k);
                    }
                    let max = lanes(&scores, f32::NEG_INFINITY, f32::max);
                    scores.iter_mut().for_each(|s| *s = exp(*s - max));
                    let inv = 1.0 / lanes(&scores, 0.0, |a, b| a + b);
                    let o = &mut out[i * h + head * dh..][..dh];
                    match dh {
                        32 => weighted::<32>(&scores, inv, &values, o),
                        64 => weighted::<64>(&scores, inv, &values, o),
                        _ => {
                            o.fill(0.0);
                            for (s, value) in scores.iter().zip(values.chunks_exact(dh)) {
                                let p = s * inv;
                                o.iter_mut().zip(value).for_each(|(o, v)| *o += p * v);
                            }
                        }
                    }
                }
            }
        });
        ctx
    }
}

/// `xs` folded with `f` in eight independent lanes, then the lanes together: a reduction the
/// compiler can keep in one vector register (a single running value is one long dependency
/// chain of scalar operations).
#[inline(always)]
fn lanes(xs: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder().iter().fold(init, |a, &x| f(a, x));
    for c in chunks {
        for l in 0..8 {
            acc[l] = f(acc[l], c[l]);
        }
    }
    acc.into_iter().fold(tail, &f)
}

/// `out = inv · Σ_j p[j] · values[j]` for a head of `D` dimensions, summed in registers.
#[inline(always)]
fn weighted<const D: usize>(p: &[f32], inv: f32, values: &[f32], out: &mut [f32]) {
    let mut acc = [0f32; D];
    for (p, v) in p.iter().zip(values.chunks_exact(D)) {
        for d in 0..D {
            acc[d] += p * v[d];
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = a * inv;
    }
}

/// e^x within a few units in the last place, written so loops over slices become vector code
/// (the library's `exp` is a call per value): 2^(x·log2 e) split into a power of two, set in
/// the exponent bits, and a fraction in ±0.5 by its Taylor polynomial.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let t = x.clamp(-87.0, 88.0) * std::f32::consts::LOG2_E;
    let n = t.round();
    let f = t - n;
    const C: [f32; 7] = [
        1.0,
        std::f32::consts::LN_2,
        0.240_226_5,
        0.055_504_11,
        0.009_618_129,
        0.001_333_355_8,
        0.000_154_035_3,
    ];
    let p = C[0] + f * (C[1] + f * (C[2] + f * (C[3] + f * (C[4] + f * (C[5] + f * C[6])))));
    p * f32::from_bits(((n as i32).wrapping_add(127) as u32).wrapping_shl(23))
}

/// erf(x) by Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7), vectorisable.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly =
        t * (0.254_829_6 + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    (1.0 - poly * exp(-a * a)).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_match_the_library() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x), x.exp());
            assert!((got - want).abs() <= want * 2e-6, "exp({x}) = {got}, not {want}");
            let (got, want) = (erf(x / 4.0), libm::erff(x / 4.0));
            assert!((got - want).abs() <= 5e-7, "erf({}) = {got}, not {want}", x / 4.0);
        }
        assert_eq!(exp(-200.0), exp(-87.0));
    }
}

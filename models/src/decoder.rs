//! Our own forward pass for the decoder-only transformers small GGUF models use (llama, qwen2,
//! qwen3, gemma3), on plain f32 slices. Matrix products over Q8_0, Q5_0, Q4_K and Q6_K weights
//! run on the kernels in `quant`; other formats (F16, Q4_0, Q5_K, ...) go through candle's
//! `QMatMul`.
//!
//! A step reads tokens for several sequences at once, each against its own `KvCache` (a growing
//! vector per layer, position after position, so a cached prefix is extended or cut back by any
//! number of tokens): the decoded tokens of every sequence in flight and pieces of new prompts
//! share each pass over the weights.

use crate::ModelError;
use crate::gguf::Meta;
use crate::kv::KvCache;
use crate::quant::{self, Pass, QMatrix};
use crate::weights::Arch;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{Device, Module, Tensor};
use rayon::prelude::*;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

fn load_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Load(e.to_string())
}

fn infer_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Inference(e.to_string())
}

/// A weight matrix, `rows` outputs by `cols` inputs.
enum Linear {
    Quant(Arc<QMatrix>),
    Candle { inner: QMatMul, rows: usize, cols: usize },
}

impl Linear {
    fn quant(&self) -> Option<&QMatrix> {
        match self {
            Linear::Quant(q) => Some(q),
            Linear::Candle { .. } => None,
        }
    }

    fn rows(&self) -> usize {
        match self {
            Linear::Quant(q) => q.rows(),
            Linear::Candle { rows, .. } => *rows,
        }
    }

    fn cols(&self) -> usize {
        match self {
            Linear::Quant(q) => q.cols(),
            Linear::Candle { cols, .. } => *cols,
        }
    }

    /// `out = x · selfᵀ` for `m` rows of `x`, into `out` sized for them.
    fn forward_part(&self, x: &[f32], m: usize, out: &mut [f32], pass: Pass) -> Result<(), ModelError> {
        if m == 0 {
            return Ok(());
        }
        match self {
            Linear::Quant(q) => q.matmul(x, m, out, pass),
            Linear::Candle { inner, cols, .. } => {
                let t = Tensor::from_slice(x, (m, *cols), &Device::Cpu).map_err(infer_err)?;
                let y = inner.forward(&t).and_then(|y| y.flatten_all()).map_err(infer_err)?;
                let y = y.to_vec1::<f32>().map_err(infer_err)?;
                out.copy_from_slice(&y);
            }
        }
        Ok(())
    }

    /// `out = x · selfᵀ` for `n` rows: the first `nd` (decoded tokens) through the decoding
    /// kernel, the rest (prompts) through the prompt kernel.
    fn forward(&self, x: &[f32], (nd, n): (usize, usize), out: &mut Vec<f32>) -> Result<(), ModelError> {
        out.resize(n * self.rows(), 0.0);
        let (xd, xp) = x.split_at(nd * self.cols());
        let (od, op) = out.split_at_mut(nd * self.rows());
        self.forward_part(xd, nd, od, Pass::Decode)?;
        self.forward_part(xp, n - nd, op, Pass::Prompt)
    }
}

/// The token embedding table: kept quantized where we can look rows up directly.
enum Embedding {
    Quant(Arc<QMatrix>),
    Dense { table: Vec<f32>, dim: usize },
}

impl Embedding {
    fn lookup(&self, token: u32, out: &mut [f32]) -> Result<(), ModelError> {
        let t = token as usize;
        match self {
            Embedding::Quant(q) if t < q.rows() => q.dequantize_row(t, out),
            Embedding::Dense { table, dim } if (t + 1) * dim <= table.len() => {
                out.copy_from_slice(&table[t * dim..(t + 1) * dim])
            }
            _ => return Err(ModelError::Inference(format!("token {token} is outside the vocabulary"))),
        }
        Ok(())
    }
}

/// Reads tensors by name out of the file, checking their shapes.
struct Tensors<'a, R> {
    content: &'a Content,
    reader: &'a mut R,
}

impl<R: Read + Seek> Tensors<'_, R> {
    fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    fn shape(&self, name: &str) -> Result<Vec<usize>, ModelError> {
        let info =
            self.content.tensor_infos.get(name).ok_or_else(|| load_err(format!("the file lacks {name}")))?;
        Ok(info.shape.dims().to_vec())
    }

    fn matrix(&mut self, name: &str) -> Result<Option<QMatrix>, ModelError> {
        let info =
            self.content.tensor_infos.get(name).ok_or_else(|| load_err(format!("the file lacks {name}")))?;
        let format = match info.ggml_dtype {
            GgmlDType::Q8_0 => quant::Format::Q8_0,
            GgmlDType::Q5_0 => quant::Format::Q5_0,
            GgmlDType::Q4K => quant::Format::Q4K,
            GgmlDType::Q6K => quant::Format::Q6K,
            _ => return Ok(None),
        };
        let &[rows, cols] = info.shape.dims() else {
            return Err(load_err(format!("{name} is not a matrix")));
        };
        // Sizes and offsets were checked against the file when the header was read.
        let len = format.row_bytes(cols).ok_or_else(|| load_err(format!("{name}: rows of {cols}")))? * rows;
        let mut data = vec![0u8; len];
        self.reader
            .seek(SeekFrom::Start(self.content.tensor_data_offset + info.offset))
            .and_then(|_| self.reader.read_exact(&mut data))
            .map_err(|e| load_err(format!("reading {name}: {e}")))?;
        QMatrix::new(format, rows, cols, data).map(Some).map_err(|e| load_err(format!("{name}: {e}")))
    }

    fn linear(&mut self, name: &str, cols: usize) -> Result<Linear, ModelError> {
        let linear = match self.matrix(name)? {
            Some(q) => Linear::Quant(Arc::new(q)),
            None => {
                let shape = self.shape(name)?;
                let &[rows, c] = shape.as_slice() else {
                    return Err(load_err(format!("{name} is not a matrix")));
                };
                let t = self.content.tensor(self.reader, name, &Device::Cpu).map_err(load_err)?;
                Linear::Candle { inner: QMatMul::from_qtensor(t).map_err(load_err)?, rows, cols: c }
            }
        };
        if linear.cols() != cols {
            return Err(load_err(format!("{name} takes {} inputs, the model has {cols}", linear.cols())));
        }
        Ok(linear)
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let t = self.content.tensor(self.reader, name, &Device::Cpu).map_err(load_err)?;
        let v = t
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(load_err)?;
        if v.len() != len {
            return Err(load_err(format!("{name} has {} values, the model needs {len}", v.len())));
        }
        Ok(v)
    }

    fn optional_vector(&mut self, name: &str, len: usize) -> Result<Option<Vec<f32>>, ModelError> {
        if self.has(name) { self.vector(name, len).map(Some) } else { Ok(None) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Silu,
    GeluTanh,
}

#[derive(Debug, Clone)]
struct Config {
    dim: usize,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    eps: f32,
    activation: Activation,
    /// Rotate (i, i + d/2) pairs (NeoX, as HF checkpoints converted by llama.cpp for qwen and
    /// gemma) rather than (2i, 2i + 1) (llama's GGUF layout).
    neox: bool,
    /// Gemma scales the embedding by sqrt(dim) and norms each sub-block's output too.
    gemma: bool,
    attn_scale: f32,
}

/// Rotary position tables for one frequency base, grown as positions are reached.
struct Rope {
    inv_freq: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    fn new(base: f32, dims: usize, factors: Option<&[f32]>) -> Rope {
        let inv_freq = (0..dims / 2)
            .map(|i| {
                let f = 1.0 / f64::from(base).powf(2.0 * i as f64 / dims as f64);
                let factor = factors.and_then(|f| f.get(i)).copied().unwrap_or(1.0);
                (f / f64::from(factor)) as f32
            })
            .collect();
        Rope { inv_freq, cos: Vec::new(), sin: Vec::new() }
    }

    fn ensure(&mut self, positions: usize) {
        let half = self.inv_freq.len();
        for p in self.cos.len() / half..positions {
            for &f in &self.inv_freq {
                let (s, c) = (p as f32 * f).sin_cos();
                self.cos.push(c);
                self.sin.push(s);
            }
        }
    }

    /// Rotates one head's vector in place for position `pos`.
    fn apply(&self, x: &mut [f32], pos: usize, neox: bool) {
        let half = self.inv_freq.len();
        let (cos, sin) = (&self.cos[pos * half..(pos + 1) * half], &self.sin[pos * half..(pos + 1) * half]);
        for i in 0..half {
            let (a, b) = if neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
            let (x0, x1) = (x[a], x[b]);
            x[a] = x0 * cos[i] - x1 * sin[i];
            x[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    bias: Option<[Vec<f32>; 3]>,
    qk_norm: Option<(Vec<f32>, Vec<f32>)>,
    wo: Linear,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    gate: Linear,
    up: Linear,
    down: Linear,
    post_ffn_norm: Option<Vec<f32>>,
    /// Index into `Decoder::ropes`.
    rope: usize,
    /// Attend only to the last `window` positions (Gemma's local layers).
    window: Option<usize>,
}

/// Buffers reused from step to step, so decoding allocates nothing large.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    logits: Vec<f32>,
}

pub struct Decoder {
    cfg: Config,
    embedding: Embedding,
    layers: Vec<Layer>,
    out_norm: Vec<f32>,
    output: Linear,
    ropes: Vec<Rope>,
    rope_dims: usize,
    scratch: Scratch,
}

fn meta_f32(meta: &Meta<'_>, key: &str) -> Option<f32> {
    match meta.get(key)? {
        candle_core::quantized::gguf_file::Value::F32(v) => Some(*v),
        candle_core::quantized::gguf_file::Value::F64(v) => Some(*v as f32),
        _ => None,
    }
}

impl Decoder {
    pub fn load<R: Read + Seek>(
        arch: Arch,
        content: &Content,
        reader: &mut R,
    ) -> Result<Decoder, ModelError> {
        let meta = Meta(&content.metadata);
        let p = arch.name();
        let need = |key: &str| {
            meta.u32(&format!("{p}.{key}"))
                .map(|v| v as usize)
                .ok_or_else(|| load_err(format!("the file lacks {p}.{key}")))
        };
        let n_layer = need("block_count")?;
        let dim = need("embedding_length")?;
        let n_head = need("attention.head_count")?;
        let n_kv_head = need("attention.head_count_kv").unwrap_or(n_head);
        if n_head == 0 || n_kv_head == 0 || n_head % n_kv_head != 0 || dim == 0 {
            return Err(load_err(format!("{n_head} heads over {n_kv_head} key/value heads")));
        }
        let head_dim = need("attention.key_length").unwrap_or(dim / n_head);
        // Checked against the tensors before anything is sized from the metadata.
        let q_rows = content
            .tensor_infos
            .get("blk.0.attn_q.weight")
            .and_then(|t| t.shape.dims().first().copied())
            .ok_or_else(|| load_err("the file lacks blk.0.attn_q.weight"))?;
        if head_dim == 0 || head_dim % 2 != 0 || n_head.checked_mul(head_dim) != Some(q_rows) {
            return Err(load_err(format!(
                "{n_head} heads of {head_dim} do not match the {q_rows} rows of the query weights"
            )));
        }
        let rope_dims = need("rope.dimension_count").unwrap_or(head_dim).min(head_dim) & !1;
        let eps = meta_f32(&meta, &format!("{p}.attention.layer_norm_rms_epsilon")).unwrap_or(1e-6);
        let base = meta_f32(&meta, &format!("{p}.rope.freq_base")).unwrap_or(match arch {
            Arch::Gemma3 => 1_000_000.0,
            _ => 10_000.0,
        });
        let gemma = arch == Arch::Gemma3;
        let cfg = Config {
            dim,
            n_head,
            n_kv_head,
            head_dim,
            eps,
            activation: if gemma { Activation::GeluTanh } else { Activation::Silu },
            neox: arch != Arch::Llama,
            gemma,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
        };

        let mut t = Tensors { content, reader };
        let factors = if t.has("rope_freqs.weight") {
            Some(t.vector("rope_freqs.weight", rope_dims / 2)?)
        } else {
            None
        };
        let mut ropes = vec![Rope::new(base, rope_dims, factors.as_deref())];
        let (window, local_every) = if gemma {
            let w = need("attention.sliding_window")?;
            let every = need("attention.sliding_window_type").unwrap_or(6).max(1);
            let local = meta_f32(&meta, "gemma3.rope.local_freq_base").unwrap_or(10_000.0);
            ropes.push(Rope::new(local, rope_dims, None));
            (Some(w), every)
        } else {
            (None, 0)
        };

        let embd_shape = t.shape("token_embd.weight")?;
        let &[vocab, embd_dim] = embd_shape.as_slice() else {
            return Err(load_err("token_embd.weight is not a matrix"));
        };
        if embd_dim != dim {
            return Err(load_err(format!("token_embd.weight is {embd_dim} wide, the model {dim}")));
        }
        let (embedding, tied) = match t.matrix("token_embd.weight")? {
            Some(q) => {
                let q = Arc::new(q);
                (Embedding::Quant(q.clone()), Some(Linear::Quant(q)))
            }
            None => (Embedding::Dense { table: t.vector("token_embd.weight", vocab * dim)?, dim }, None),
        };
        let output = if t.has("output.weight") {
            t.linear("output.weight", dim)?
        } else {
            match tied {
                Some(l) => l,
                None => t.linear("token_embd.weight", dim)?,
            }
        };
        let out_norm = t.vector("output_norm.weight", dim)?;

        let (q_dim, kv_dim) = (n_head * head_dim, n_kv_head * head_dim);
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let name = |s: &str| format!("blk.{i}.{s}");
            let bias = if t.has(&name("attn_q.bias")) {
                Some([
                    t.vector(&name("attn_q.bias"), q_dim)?,
                    t.vector(&name("attn_k.bias"), kv_dim)?,
                    t.vector(&name("attn_v.bias"), kv_dim)?,
                ])
            } else {
                None
            };
            let qk_norm = match t.optional_vector(&name("attn_q_norm.weight"), head_dim)? {
                Some(qn) => Some((qn, t.vector(&name("attn_k_norm.weight"), head_dim)?)),
                None => None,
            };
            let local = gemma && (i + 1) % local_every != 0;
            let layer = Layer {
                attn_norm: t.vector(&name("attn_norm.weight"), dim)?,
                wq: t.linear(&name("attn_q.weight"), dim)?,
                wk: t.linear(&name("attn_k.weight"), dim)?,
                wv: t.linear(&name("attn_v.weight"), dim)?,
                bias,
                qk_norm,
                wo: t.linear(&name("attn_output.weight"), q_dim)?,
                post_attn_norm: t.optional_vector(&name("post_attention_norm.weight"), dim)?,
                ffn_norm: t.vector(&name("ffn_norm.weight"), dim)?,
                gate: t.linear(&name("ffn_gate.weight"), dim)?,
                up: t.linear(&name("ffn_up.weight"), dim)?,
                down: {
                    let ff = t.shape(&name("ffn_gate.weight"))?.first().copied().unwrap_or(0);
                    t.linear(&name("ffn_down.weight"), ff)?
                },
                post_ffn_norm: t.optional_vector(&name("post_ffw_norm.weight"), dim)?,
                rope: usize::from(local),
                window: if local { window } else { None },
            };
            let shapes_agree = layer.wq.rows() == q_dim
                && layer.wk.rows() == kv_dim
                && layer.wv.rows() == kv_dim
                && layer.wo.rows() == dim
                && layer.up.rows() == layer.gate.rows()
                && layer.down.rows() == dim;
            if !shapes_agree {
                return Err(load_err(format!("block {i}: the attention or feed-forward shapes disagree")));
            }
            layers.push(layer);
        }
        Ok(Decoder {
            cfg,
            embedding,
            layers,
            out_norm,
            output,
            ropes,
            rope_dims,
            scratch: Scratch::default(),
        })
    }

    /// Values per position in one layer's keys (and again in its values).
    pub fn kv_width(&self) -> usize {
        self.cfg.n_kv_head * self.cfg.head_dim
    }

    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// One step over several sequences at once: each feed's tokens are read after what its
    /// cache holds, all of them through each weight matrix in one pass. Returns the logits for
    /// the last token of each feed that asks for them. Every row is computed the same way
    /// whatever else shares the step, so a sequence reads the same alone or batched.
    pub fn step(&mut self, feeds: &mut [Feed<'_>]) -> Result<Vec<Option<Vec<f32>>>, ModelError> {
        // Run the step on one of the pool's own threads: its parallel passes then share work
        // between that thread and the others, instead of this thread handing every pass over
        // and sleeping until it is done (two wake-ups per pass, a hundred passes per token).
        rayon::scope(|_| self.step_in_pool(feeds))
    }

    fn step_in_pool(&mut self, feeds: &mut [Feed<'_>]) -> Result<Vec<Option<Vec<f32>>>, ModelError> {
        let (n_layer, width) = (self.layers.len(), self.kv_width());
        for f in feeds.iter_mut() {
            if f.tokens.is_empty() {
                return Err(ModelError::Inference("nothing to read".into()));
            }
            let c = &mut f.cache;
            if c.layers.is_empty() && c.tokens.is_empty() {
                c.layers = vec![(Vec::new(), Vec::new()); n_layer];
                c.width = width;
            }
            let held = c.tokens.len() * width;
            if c.layers.len() != n_layer
                || c.width != width
                || c.layers.iter().any(|(k, v)| k.len() != held || v.len() != held)
            {
                return Err(ModelError::Inference("the KV cache does not belong to this model".into()));
            }
        }
        let rows = Rows::new(feeds);
        let cfg = &self.cfg;
        let (dim, s) = (cfg.dim, rows.len());
        let end = rows.pos.iter().max().map_or(0, |p| p + 1);
        for rope in &mut self.ropes {
            rope.ensure(end);
        }

        let sc = &mut self.scratch;
        sc.x.resize(s * dim, 0.0);
        for (row, &tok) in sc.x.chunks_exact_mut(dim).zip(&rows.token) {
            self.embedding.lookup(tok, row)?;
        }
        if cfg.gemma {
            let scale = (dim as f32).sqrt();
            sc.x.iter_mut().for_each(|v| *v *= scale);
        }

        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm_rows(&sc.x, &layer.attn_norm, cfg.eps, &mut sc.xn);
            attention(cfg, l, layer, &self.ropes[layer.rope], self.rope_dims, &rows, feeds, sc)?;
            if let Some(w) = &layer.post_attn_norm {
                sc.proj.chunks_exact_mut(dim).for_each(|row| rms_norm_in_place(row, w, cfg.eps));
            }
            add(&mut sc.x, &sc.proj);

            rms_norm_rows(&sc.x, &layer.ffn_norm, cfg.eps, &mut sc.xn);
            feed_forward(cfg.activation, layer, &rows, sc)?;
            layer.down.forward(&sc.gate, rows.split(), &mut sc.proj)?;
            if let Some(w) = &layer.post_ffn_norm {
                sc.proj.chunks_exact_mut(dim).for_each(|row| rms_norm_in_place(row, w, cfg.eps));
            }
            add(&mut sc.x, &sc.proj);
        }
        for f in feeds.iter_mut() {
            f.cache.tokens.extend_from_slice(f.tokens);
        }

        // Logits only for the last row of the feeds that want them, decoded ones first.
        let wanted: Vec<usize> = rows.order.iter().copied().filter(|&i| feeds[i].logits).collect();
        let last = |i: usize| rows.span[i].end - 1;
        let decoded = wanted.iter().filter(|&&i| rows.span[i].end <= rows.decode).count();
        sc.xn.clear();
        for &i in &wanted {
            let at = sc.xn.len();
            sc.xn.extend_from_slice(&sc.x[last(i) * dim..(last(i) + 1) * dim]);
            rms_norm_in_place(&mut sc.xn[at..], &self.out_norm, cfg.eps);
        }
        self.output.forward(&sc.xn, (decoded, wanted.len()), &mut sc.logits)?;
        let vocab = self.output.rows();
        let mut out: Vec<Option<Vec<f32>>> = feeds.iter().map(|_| None).collect();
        for (k, &i) in wanted.iter().enumerate() {
            out[i] = Some(sc.logits[k * vocab..(k + 1) * vocab].to_vec());
        }
        Ok(out)
    }
}

/// What one sequence reads in a step.
pub struct Feed<'a> {
    pub tokens: &'a [u32],
    pub cache: &'a mut KvCache,
    /// `Decode` for a single generated token, `Prompt` for a piece of a prompt.
    pub pass: Pass,
    /// Whether the logits after the last token are wanted (not for a prompt's earlier pieces).
    pub logits: bool,
}

/// A step's rows: the tokens of every feed, the decoded ones first (they go through the
/// decoding kernel, the prompts' through the prompt kernel), each with its feed and position.
#[derive(Default)]
struct Rows {
    token: Vec<u32>,
    feed: Vec<usize>,
    pos: Vec<usize>,
    /// Rows before this one are decoded tokens.
    decode: usize,
    /// Each feed's rows, by feed index.
    span: Vec<std::ops::Range<usize>>,
    /// Feed indices in row order.
    order: Vec<usize>,
}

impl Rows {
    fn new(feeds: &[Feed<'_>]) -> Rows {
        let decoded = |f: &Feed<'_>| f.pass == Pass::Decode && f.tokens.len() == 1;
        let mut order: Vec<usize> = (0..feeds.len()).filter(|&i| decoded(&feeds[i])).collect();
        let decode = order.len();
        order.extend((0..feeds.len()).filter(|&i| !decoded(&feeds[i])));
        let mut rows = Rows { decode, span: vec![0..0; feeds.len()], ..Rows::default() };
        for &i in &order {
            let f = &feeds[i];
            let start = rows.token.len();
            for (j, &t) in f.tokens.iter().enumerate() {
                rows.token.push(t);
                rows.feed.push(i);
                rows.pos.push(f.cache.len() + j);
            }
            rows.span[i] = start..rows.token.len();
        }
        rows.order = order;
        rows
    }

    fn len(&self) -> usize {
        self.token.len()
    }

    /// Decoded rows, and all rows.
    fn split(&self) -> (usize, usize) {
        (self.decode, self.len())
    }
}

#[allow(clippy::too_many_arguments)]
fn attention(
    cfg: &Config,
    l: usize,
    layer: &Layer,
    rope: &Rope,
    rope_dims: usize,
    rows: &Rows,
    feeds: &mut [Feed<'_>],
    sc: &mut Scratch,
) -> Result<(), ModelError> {
    let hd = cfg.head_dim;
    let (q_dim, kv_dim) = (cfg.n_head * hd, cfg.n_kv_head * hd);
    let (nd, s) = (rows.decode, rows.len());
    match (layer.wq.quant(), layer.wk.quant(), layer.wv.quant()) {
        (Some(wq), Some(wk), Some(wv)) if nd > 0 => {
            // The decoded tokens read the three matrices in one pass; the prompts' after.
            sc.q.resize(s * q_dim, 0.0);
            sc.k.resize(s * kv_dim, 0.0);
            sc.v.resize(s * kv_dim, 0.0);
            let xn = &sc.xn[..nd * cfg.dim];
            let (q, k, v) = (&mut sc.q[..nd * q_dim], &mut sc.k[..nd * kv_dim], &mut sc.v[..nd * kv_dim]);
            quant::gemv(xn, nd, &mut [(wq, q), (wk, k), (wv, v)]);
            let xp = &sc.xn[nd * cfg.dim..];
            layer.wq.forward_part(xp, s - nd, &mut sc.q[nd * q_dim..], Pass::Prompt)?;
            layer.wk.forward_part(xp, s - nd, &mut sc.k[nd * kv_dim..], Pass::Prompt)?;
            layer.wv.forward_part(xp, s - nd, &mut sc.v[nd * kv_dim..], Pass::Prompt)?;
        }
        _ => {
            layer.wq.forward(&sc.xn, rows.split(), &mut sc.q)?;
            layer.wk.forward(&sc.xn, rows.split(), &mut sc.k)?;
            layer.wv.forward(&sc.xn, rows.split(), &mut sc.v)?;
        }
    }
    if let Some([bq, bk, bv]) = &layer.bias {
        sc.q.chunks_exact_mut(q_dim).for_each(|r| add(r, bq));
        sc.k.chunks_exact_mut(kv_dim).for_each(|r| add(r, bk));
        sc.v.chunks_exact_mut(kv_dim).for_each(|r| add(r, bv));
    }
    let (qn, kn) = match &layer.qk_norm {
        Some((q, k)) => (Some(q), Some(k)),
        None => (None, None),
    };
    rotate(&mut sc.q, q_dim, hd, qn, rope, rope_dims, &rows.pos, cfg);
    rotate(&mut sc.k, kv_dim, hd, kn, rope, rope_dims, &rows.pos, cfg);
    for (f, span) in feeds.iter_mut().zip(&rows.span) {
        let expect = f.cache.expect;
        let (k, v) = &mut f.cache.layers[l];
        let need = k.len() + span.len() * kv_dim;
        if need > k.capacity() {
            // All the request may reach in one go, not doubling past the scheduler's reckoning.
            let total = need.max(expect * kv_dim);
            k.reserve_exact(total - k.len());
            v.reserve_exact(total - v.len());
        }
        k.extend_from_slice(&sc.k[span.start * kv_dim..span.end * kv_dim]);
        v.extend_from_slice(&sc.v[span.start * kv_dim..span.end * kv_dim]);
    }

    let caches: Vec<(&[f32], &[f32])> =
        feeds.iter().map(|f| (f.cache.layers[l].0.as_slice(), f.cache.layers[l].1.as_slice())).collect();
    let (n_head, group) = (cfg.n_head, cfg.n_head / cfg.n_kv_head);
    let window = layer.window;
    let scale = cfg.attn_scale;
    sc.attn.resize(s * q_dim, 0.0);
    let q = &sc.q;
    // One task per row and key/value head: the query heads sharing that key/value head
    // (`group` of them) are scored together, so each cached key and value is read once.
    let n_kv = cfg.n_kv_head;
    let heads = |scores: &mut Vec<f32>, (idx, out): (usize, &mut [f32])| {
        let (t, kvh) = (idx / n_kv, idx % n_kv);
        let (k_cache, v_cache) = caches[rows.feed[t]];
        let at = rows.pos[t];
        let first = window.map_or(0, |w| (at + 1).saturating_sub(w));
        let n = at + 1 - first;
        let qs = &q[t * q_dim + kvh * group * hd..t * q_dim + (kvh + 1) * group * hd];
        scores.clear();
        scores.resize(group * n, 0.0);
        for (i, j) in (first..=at).enumerate() {
            let k = &k_cache[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
            for (g, qh) in qs.chunks_exact(hd).enumerate() {
                scores[g * n + i] = dot(qh, k) * scale;
            }
        }
        for row in scores.chunks_exact_mut(n) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
        out.fill(0.0);
        for (i, j) in (first..=at).enumerate() {
            let v = &v_cache[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
            for (g, o) in out.chunks_exact_mut(hd).enumerate() {
                axpy(o, scores[g * n + i], v);
            }
        }
    };
    // A short context for a token or two is quicker on this thread than handed out.
    let work: usize = rows.pos.iter().map(|p| p + 1).sum::<usize>() * n_head * hd;
    if work < 1 << 18 {
        let mut scores = Vec::new();
        sc.attn.chunks_mut(group * hd).enumerate().for_each(|task| heads(&mut scores, task));
    } else {
        sc.attn.par_chunks_mut(group * hd).enumerate().for_each_init(Vec::new, heads);
    }
    layer.wo.forward(&sc.attn, rows.split(), &mut sc.proj)
}

/// The gated feed-forward input, `act(gate · x) ⊙ (up · x)`, into `sc.gate`: the decoded
/// tokens in one parallel pass over both matrices, the prompts' through the prompt kernel.
fn feed_forward(act: Activation, layer: &Layer, rows: &Rows, sc: &mut Scratch) -> Result<(), ModelError> {
    let (nd, s) = (rows.decode, rows.len());
    let ff = layer.gate.rows();
    let dim = layer.gate.cols();
    sc.gate.resize(s * ff, 0.0);
    sc.up.resize(s * ff, 0.0);
    let (gd, gp) = sc.gate.split_at_mut(nd * ff);
    let (xd, xp) = sc.xn.split_at(nd * dim);
    match (layer.gate.quant(), layer.up.quant()) {
        (Some(gate), Some(up)) if nd > 0 => gemv_gate_up(xd, nd, gate, up, act, gd),
        _ => {
            layer.gate.forward_part(xd, nd, gd, Pass::Decode)?;
            layer.up.forward_part(xd, nd, &mut sc.up[..nd * ff], Pass::Decode)?;
            activate_rows(act, gd, &sc.up[..nd * ff]);
        }
    }
    layer.gate.forward_part(xp, s - nd, gp, Pass::Prompt)?;
    layer.up.forward_part(xp, s - nd, &mut sc.up[nd * ff..], Pass::Prompt)?;
    activate_rows(act, gp, &sc.up[nd * ff..]);
    Ok(())
}

fn activate_rows(act: Activation, gate: &mut [f32], up: &[f32]) {
    gate.par_chunks_mut(4096).zip(up.par_chunks(4096)).for_each(|(g, u)| {
        for (g, u) in g.iter_mut().zip(u) {
            *g = activate(act, *g) * u;
        }
    });
}

/// Decoded tokens' gated feed-forward input, `act(gate · x) ⊙ (up · x)`, in one parallel pass
/// over both matrices' rows.
fn gemv_gate_up(x: &[f32], m: usize, gate: &QMatrix, up: &QMatrix, act: Activation, out: &mut [f32]) {
    let tokens = quant::Tokens::new(x, m);
    let mut parts = [((gate, up), gate.rows(), out)];
    quant::by_rows(&mut parts, m, |(gate, up), r, out| {
        let mut u = [0f32; 64];
        for (out, tokens) in out.chunks_mut(64).zip(tokens.all().chunks(64)) {
            gate.dot_row(r, tokens, out);
            up.dot_row(r, tokens, &mut u[..tokens.len()]);
            for (o, u) in out.iter_mut().zip(u) {
                *o = activate(act, *o) * u;
            }
        }
    });
}

/// Per-head norm (qwen3, gemma3) and rotary embedding, for rows of `width` values at
/// `positions`.
#[allow(clippy::too_many_arguments)]
fn rotate(
    x: &mut [f32],
    width: usize,
    hd: usize,
    norm: Option<&Vec<f32>>,
    rope: &Rope,
    rope_dims: usize,
    positions: &[usize],
    cfg: &Config,
) {
    let heads_per_row = width / hd;
    let one = |(i, head): (usize, &mut [f32])| {
        if let Some(w) = norm {
            rms_norm_in_place(head, w, cfg.eps);
        }
        rope.apply(&mut head[..rope_dims], positions[i / heads_per_row], cfg.neox);
    };
    // One token's few heads are not worth a parallel pass.
    if x.len() <= width {
        x.chunks_mut(hd).enumerate().for_each(one);
    } else {
        x.par_chunks_mut(hd).enumerate().for_each(one);
    }
}

fn activate(a: Activation, x: f32) -> f32 {
    match a {
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::GeluTanh => gelu_tanh(x),
    }
}

/// GELU's tanh form, for the decoder and the BERT encoder alike.
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    // 0.5·x·(1 + tanh(u)) is x·sigmoid(2u): one exp instead of libm's slower tanh.
    const C2: f32 = 2.0 * 0.797_884_6; // 2·sqrt(2 / pi)
    x / (1.0 + (-C2 * (x + 0.044_715 * x * x * x)).exp())
}

/// A dot product the compiler vectorises: eight independent partial sums.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
    for (o, x) in out.iter_mut().zip(x) {
        *o += a * x;
    }
}

fn add(out: &mut [f32], x: &[f32]) {
    for (o, x) in out.iter_mut().zip(x) {
        *o += x;
    }
}

fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let scale = 1.0 / (dot(x, x) / x.len() as f32 + eps).sqrt();
    for (v, w) in x.iter_mut().zip(w) {
        *v *= scale * w;
    }
}

fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut Vec<f32>) {
    out.clear();
    out.extend_from_slice(x);
    out.chunks_exact_mut(w.len()).for_each(|row| rms_norm_in_place(row, w, eps));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_through_one_exp_is_the_tanh_form() {
        for i in -400..=400 {
            let x = i as f32 / 40.0;
            let tanh_form = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
            let got = activate(Activation::GeluTanh, x);
            assert!((got - tanh_form).abs() <= 1e-5 * (1.0 + x.abs()), "{x}: {got} vs {tanh_form}");
        }
        assert_eq!(activate(Activation::GeluTanh, -200.0), 0.0);
        assert_eq!(activate(Activation::GeluTanh, 200.0), 200.0);
    }

    /// A tiny model of `arch` with pseudo-random f32 weights, as GGUF bytes: 2 blocks, width
    /// 64, 4 query heads over 2 key/value heads, a 50-token vocabulary.
    fn forge_model(arch: &str) -> Vec<u8> {
        let qwen3 = arch == "qwen3";
        let mut meta: Vec<(String, u32, Vec<u8>)> = Vec::new();
        let s = |v: &str| [&(v.len() as u64).to_le_bytes()[..], v.as_bytes()].concat();
        meta.push(("general.architecture".into(), 8, s(arch)));
        for (k, v) in
            [("block_count", 2u32), ("embedding_length", 64), ("context_length", 128)].into_iter().chain([
                ("attention.head_count", 4),
                ("attention.head_count_kv", 2),
                ("attention.key_length", 16),
            ])
        {
            meta.push((format!("{arch}.{k}"), 4, v.to_le_bytes().to_vec()));
        }
        meta.push((format!("{arch}.attention.layer_norm_rms_epsilon"), 6, 1e-6f32.to_le_bytes().to_vec()));
        let mut tensors: Vec<(String, Vec<u64>)> = vec![
            ("token_embd.weight".into(), vec![64, 50]),
            ("output_norm.weight".into(), vec![64]),
            ("output.weight".into(), vec![64, 50]),
        ];
        for b in 0..2 {
            for (n, dims) in [
                ("attn_norm", vec![64]),
                ("attn_q", vec![64, 64]),
                ("attn_k", vec![64, 32]),
                ("attn_v", vec![64, 32]),
                ("attn_output", vec![64, 64]),
                ("ffn_norm", vec![64]),
                ("ffn_gate", vec![64, 96]),
                ("ffn_up", vec![64, 96]),
                ("ffn_down", vec![96, 64]),
            ] {
                tensors.push((format!("blk.{b}.{n}.weight"), dims));
            }
            if qwen3 {
                tensors.push((format!("blk.{b}.attn_q_norm.weight"), vec![16]));
                tensors.push((format!("blk.{b}.attn_k_norm.weight"), vec![16]));
            }
        }
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(meta.len() as u64).to_le_bytes());
        for (k, ty, v) in &meta {
            out.extend(s(k));
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend(v);
        }
        let mut offset = 0u64;
        for (name, dims) in &tensors {
            out.extend(s(name));
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
            out.extend_from_slice(&0u32.to_le_bytes()); // F32
            out.extend_from_slice(&offset.to_le_bytes());
            offset += (dims.iter().product::<u64>() * 4).div_ceil(32) * 32;
        }
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        let mut seed = 12345u32;
        for (_, dims) in &tensors {
            let n = dims.iter().product::<u64>() as usize;
            for _ in 0..n {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (seed >> 8) as f32 / (1 << 24) as f32 - 0.5;
                // Norm weights near 1, matrices small.
                let v = if dims.len() == 1 { 1.0 + 0.2 * noise } else { 0.3 * noise };
                out.extend_from_slice(&v.to_le_bytes());
            }
            while !out.len().is_multiple_of(32) {
                out.push(0);
            }
        }
        out
    }

    /// The logits after `tokens`, read into `cache` after its first `pos` positions.
    fn logits(d: &mut Decoder, cache: &mut KvCache, tokens: &[u32], pos: usize) -> Vec<f32> {
        cache.truncate(pos);
        let mut feeds = [Feed { tokens, cache, pass: Pass::Prompt, logits: true }];
        d.step(&mut feeds).unwrap().remove(0).unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-3 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    fn forged(arch: &str) -> Decoder {
        let bytes = forge_model(arch);
        let content = crate::gguf::read_header(&bytes[..], bytes.len() as u64).unwrap();
        let kind = Arch::from_gguf_name(arch).unwrap();
        Decoder::load(kind, &content, &mut std::io::Cursor::new(&bytes)).unwrap()
    }

    #[test]
    fn llama_and_qwen3_layouts_load_and_read_the_same_with_or_without_the_cache() {
        for arch in ["llama", "qwen3"] {
            let mut d = forged(arch);
            assert_eq!(d.layers[0].qk_norm.is_some(), arch == "qwen3");
            let tokens: Vec<u32> = (1..13).collect();
            let mut cache = KvCache::default();
            let whole = logits(&mut d, &mut cache, &tokens, 0);
            assert_eq!(whole.len(), 50);
            assert_eq!(cache.tokens(), &tokens[..]);
            assert!(whole.iter().all(|v| v.is_finite()) && whole.iter().any(|v| *v != 0.0));
            // A prefix from the cache, then the rest; then one token at a time.
            logits(&mut d, &mut cache, &tokens[..7], 0);
            close(&logits(&mut d, &mut cache, &tokens[7..], 7), &whole);
            let mut last = Vec::new();
            for (i, t) in tokens.iter().enumerate() {
                last = logits(&mut d, &mut cache, &[*t], i);
            }
            close(&last, &whole);
            // Cutting the cache back re-reads from there.
            close(&logits(&mut d, &mut cache, &tokens[3..], 3), &whole);
            let mut feeds = [Feed { tokens: &[999], cache: &mut cache, pass: Pass::Decode, logits: true }];
            assert!(d.step(&mut feeds).is_err(), "a token outside the vocabulary is refused");
        }
    }

    #[test]
    fn sequences_read_together_get_what_each_gets_alone() {
        let mut d = forged("qwen3");
        let (a, b): (Vec<u32>, Vec<u32>) = ((1..10).collect(), (20..26).collect());
        let (mut ca, mut cb, mut cc) = (KvCache::default(), KvCache::default(), KvCache::default());
        let alone_a = logits(&mut d, &mut ca, &a, 0);
        let alone_b = logits(&mut d, &mut cb, &b, 0);
        let next_a = logits(&mut d, &mut ca, &[7], a.len());
        // One step: a decoded token for `a`, all of `b`'s prompt, and the first half of a third
        // prompt whose logits nobody wants yet.
        ca.truncate(a.len());
        cb.truncate(0);
        let mut feeds = [
            Feed { tokens: &b, cache: &mut cb, pass: Pass::Prompt, logits: true },
            Feed { tokens: &[7], cache: &mut ca, pass: Pass::Decode, logits: true },
            Feed { tokens: &a[..4], cache: &mut cc, pass: Pass::Prompt, logits: false },
        ];
        let out = d.step(&mut feeds).unwrap();
        close(out[0].as_ref().unwrap(), &alone_b);
        close(out[1].as_ref().unwrap(), &next_a);
        assert!(out[2].is_none());
        assert_eq!(cc.len(), 4);
        close(&logits(&mut d, &mut cc, &a[4..], 4), &alone_a);
        let foreign =
            KvCache { layers: vec![(Vec::new(), Vec::new())], width: 3, tokens: vec![1], expect: 0 };
        let mut foreign = foreign;
        let mut feeds = [Feed { tokens: &[1], cache: &mut foreign, pass: Pass::Decode, logits: true }];
        assert!(d.step(&mut feeds).is_err(), "another model's cache is refused");
    }

    #[test]
    fn rotary_positions_rotate_pairs_by_their_angle() {
        let mut rope = Rope::new(10_000.0, 4, None);
        rope.ensure(3);
        // NeoX pairs (0, 2) and (1, 3); llama's pairs (0, 1) and (2, 3).
        let mut x = [1.0, 0.0, 0.0, 0.0];
        rope.apply(&mut x, 2, true);
        assert!((x[0] - 2f32.cos()).abs() < 1e-6 && (x[2] - 2f32.sin()).abs() < 1e-6, "{x:?}");
        let mut y = [1.0, 0.0, 0.0, 0.0];
        rope.apply(&mut y, 2, false);
        assert!((y[0] - 2f32.cos()).abs() < 1e-6 && (y[1] - 2f32.sin()).abs() < 1e-6, "{y:?}");
    }
}

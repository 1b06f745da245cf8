//! Quantized matrix products over the weight formats GGUF files of CPU-sized models are made
//! of (Q8_0, Q5_0, Q4_K, Q6_K), against activations quantized to 8 bits once per product, as
//! llama.cpp does.
//!
//! Every format is read as blocks of 32 signed 8-bit values with a scale for each half of the
//! block and an offset: `w[i] = scale[i / 16] · q[i] + min`. Q8_0 and Q5_0 have one scale and
//! no offset; Q4_K's 32-value sub-blocks carry a scale and a min; Q6_K's 16-value sub-blocks a
//! scale each. One dot-product kernel then serves them all: the integer products go through
//! AVX2's `maddubs`, the per-half scales multiply the eight 32-bit lanes (lanes 0-3 hold the
//! first 16 products, 4-7 the rest), and the offset meets the activation block's sum.
//!
//! The AVX-512 VNNI kernels are picked at run time where the CPU has them, the AVX2 kernels
//! where it has AVX2 and FMA; the portable loops run elsewhere and are the reference in tests. The only unsafe code is the call across that
//! check (`kernel`); vector loads go through `bytemuck`.

use crate::ModelError;
use half::f16;
use rayon::prelude::*;

/// Values per block, for every format.
pub const BLOCK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Blocks of 32: f16 scale, 32 × i8.
    Q8_0,
    /// Blocks of 32: f16 scale, 32 high bits, 32 low nibbles; value = (nibble | high << 4) - 16.
    Q5_0,
    /// Super-blocks of 256: f16 scale and min, twelve bytes of 6-bit sub-block scales and mins,
    /// 256 nibbles.
    Q4K,
    /// Super-blocks of 256: 256 low nibbles, 256 high bit pairs, sixteen i8 scales, f16 scale;
    /// value = (nibble | pair << 4) - 32.
    Q6K,
}

impl Format {
    /// Values in one unit of storage (a block or a super-block) and its size in bytes.
    fn unit(self) -> (usize, usize) {
        match self {
            Format::Q8_0 => (32, 34),
            Format::Q5_0 => (32, 22),
            Format::Q4K => (256, 144),
            Format::Q6K => (256, 210),
        }
    }

    pub fn row_bytes(self, cols: usize) -> Option<usize> {
        let (values, bytes) = self.unit();
        cols.is_multiple_of(values).then(|| cols / values * bytes)
    }
}

/// A weight matrix of `rows` × `cols` in its GGUF encoding, row after row.
pub struct QMatrix {
    format: Format,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

/// How tokens are being read. A prompt's tokens always go through the prompt kernel, which
/// computes each token the same way however the prompt is split, so a prompt reads the same
/// whether the KV cache held part of it or not (same seed and input, same reply). Decoded
/// tokens have their own kernel, tuned for memory traffic, which likewise computes each token
/// the same way however many sequences are decoded together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Prompt,
    Decode,
}

/// One block of activations quantized to 8 bits: `x[i] ≈ d · qs[i]`, and `sum = d · Σ qs`.
#[derive(Clone, Copy, Default)]
pub struct ActBlock {
    d: f32,
    sum: f32,
    qs: [i8; BLOCK],
}

/// A weight block read out of any format.
#[derive(Clone, Copy, Default)]
struct Block {
    q: [i8; BLOCK],
    /// Scales for values 0..16 and 16..32.
    scale: [f32; 2],
    min: f32,
}

/// Four weight rows read out to plain bytes once, for a prompt's many tokens. Block `b` of
/// row `r` is `q[r · blocks + b]`; `lanes[r · blocks + b]` holds its scale for each of the
/// kernel's eight 32-bit lanes (four values each) and `mins[b][r]` its offset.
pub struct Strip {
    q: Vec<[i8; BLOCK]>,
    lanes: Vec<[f32; 8]>,
    mins: Vec<[f32; 4]>,
    has_mins: bool,
    /// `-128 · Σ scale · q` per block and row: the correction for reading the activations as
    /// unsigned bytes (`x + 128`), which saves the kernels the sign juggling.
    fix: Vec<[f32; 4]>,
    /// `-128 · Σ q` over each lane's four values, per row and block (laid out as `lanes`): the
    /// same correction in whole numbers, where VNNI starts its sums, so it costs nothing there.
    int_fix: Vec<[i32; 8]>,
    /// Whether AVX2's 16-bit pair sums could saturate on the unsigned read (Q8_0's values
    /// reach ±127): AVX2 then takes the signed path. VNNI sums in 32 bits and never does.
    saturates: bool,
}

impl Strip {
    fn new(blocks: usize) -> Strip {
        Strip {
            q: vec![[0; BLOCK]; 4 * blocks],
            lanes: vec![[0.0; 8]; 4 * blocks],
            mins: vec![[0.0; 4]; blocks],
            has_mins: false,
            fix: vec![[0.0; 4]; blocks],
            int_fix: vec![[0; 8]; 4 * blocks],
            saturates: false,
        }
    }

    fn fill(&mut self, w: &QMatrix, first_row: usize) {
        let kb = w.cols / BLOCK;
        self.has_mins = w.format == Format::Q4K;
        self.fix.resize(kb, [0.0; 4]);
        for r in 0..4 {
            let rows = r * kb..(r + 1) * kb;
            let row = w.row(first_row + r);
            let strip = StripRow {
                r,
                q: &mut self.q[rows.clone()],
                int_fix: &mut self.int_fix[rows.clone()],
                lanes: &mut self.lanes[rows],
                mins: &mut self.mins,
                fix: &mut self.fix,
            };
            kernel::fill_row(w.format, row, strip);
        }
        self.saturates = w.format == Format::Q8_0;
    }
}

/// Where one row of a strip goes.
struct StripRow<'a> {
    r: usize,
    q: &'a mut [[i8; BLOCK]],
    int_fix: &'a mut [[i32; 8]],
    lanes: &'a mut [[f32; 8]],
    mins: &'a mut [[f32; 4]],
    fix: &'a mut [[f32; 4]],
}

impl StripRow<'_> {
    /// Scales, offsets and the unsigned-read correction, once `q` holds the values and
    /// `int_fix` the sum of each lane's four.
    fn finish(self, format: Format, row: &[u8]) {
        for b in 0..self.q.len() {
            let ([lo, hi], min) = block_scales(format, row, b);
            self.lanes[b] = [lo, lo, lo, lo, hi, hi, hi, hi];
            self.mins[b][self.r] = min;
            let lane_sums = self.int_fix[b];
            let (s0, s1): (i32, i32) = (lane_sums[..4].iter().sum(), lane_sums[4..].iter().sum());
            self.fix[b][self.r] = -128.0 * (lo * s0 as f32 + hi * s1 as f32);
            self.int_fix[b] = lane_sums.map(|s| -128 * s);
        }
    }
}

impl QMatrix {
    pub fn new(format: Format, rows: usize, cols: usize, data: Vec<u8>) -> Result<QMatrix, ModelError> {
        let row_bytes = format.row_bytes(cols).filter(|_| cols > 0).ok_or_else(|| {
            ModelError::Load(format!("a {format:?} row of {cols} values is not whole blocks"))
        })?;
        let expected =
            rows.checked_mul(row_bytes).ok_or_else(|| ModelError::Load("tensor size overflows".into()))?;
        if data.len() != expected {
            return Err(ModelError::Load(format!(
                "a {rows}×{cols} {format:?} tensor needs {expected} bytes, the file holds {}",
                data.len()
            )));
        }
        Ok(QMatrix { format, rows, cols, data })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row(&self, i: usize) -> &[u8] {
        let n = self.data.len() / self.rows;
        &self.data[i * n..(i + 1) * n]
    }

    /// Row `i` as f32, for embedding lookups: the table stays quantized in memory.
    pub fn dequantize_row(&self, i: usize, out: &mut [f32]) {
        let row = self.row(i);
        for (b, out) in out.chunks_exact_mut(BLOCK).enumerate() {
            let block = read_block(self.format, row, b);
            for (j, (o, &q)) in out.iter_mut().zip(&block.q).enumerate() {
                *o = block.scale[j / 16] * f32::from(q) + block.min;
            }
        }
    }

    /// Row `j` against each of `tokens`: `out[t]` for token `t`.
    pub fn dot_row(&self, j: usize, tokens: TokenSlice<'_>, out: &mut [f32]) {
        kernel::dot_tokens(self.format, self.row(j), tokens, out)
    }

    /// `out[m × rows] = x[m × cols] · selfᵀ`, on the rayon pool.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32], pass: Pass) {
        debug_assert_eq!(x.len(), m * self.cols);
        debug_assert_eq!(out.len(), m * self.rows);
        if pass == Pass::Decode {
            gemv(x, m, &mut [(self, out)]);
        } else {
            let kb = self.cols / BLOCK;
            let tokens = Tokens::new(x, m);
            // A prompt: split the tokens. Each task reads four weight rows at a time out to plain
            // blocks once and runs them against each of its tokens, so the unpacking is paid
            // once per strip rather than once per token: as many tokens per task as keep every
            // thread busy twice over, between 64 and 256.
            let per = m.div_ceil(2 * rayon::current_num_threads()).clamp(64, 256);
            let tasks: Vec<TokenSlice<'_>> = tokens.all().chunks(per).collect();
            out.par_chunks_mut(per * self.rows).zip(tasks).for_each_init(
                || Strip::new(kb),
                |strip, (out, tokens)| {
                    let mut j = 0;
                    while j + 4 <= self.rows {
                        strip.fill(self, j);
                        kernel::dot4_strip_tokens(strip, tokens, |i, r| {
                            out[i * self.rows + j..i * self.rows + j + 4].copy_from_slice(&r)
                        });
                        j += 4;
                    }
                    for j in j..self.rows {
                        for i in 0..tokens.len() {
                            out[i * self.rows + j] = kernel::dot(self.format, self.row(j), tokens.blocks(i));
                        }
                    }
                },
            );
        }
    }
}

#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Q4_K's 6-bit scale and min of sub-block `j` (0..8), packed into twelve bytes as ggml does.
#[inline(always)]
fn q4k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Scales and offset of block `b` of a row (the values come separately, so the vector kernel
/// can read them its own way).
#[inline(always)]
fn block_scales(format: Format, row: &[u8], b: usize) -> ([f32; 2], f32) {
    match format {
        Format::Q8_0 => {
            let d = f16_at(row, b * 34);
            ([d, d], 0.0)
        }
        Format::Q5_0 => {
            let d = f16_at(row, b * 22);
            ([d, d], 0.0)
        }
        Format::Q4K => {
            let sb = &row[b / 8 * 144..];
            let (sc, m) = q4k_scale_min(b % 8, &sb[4..16]);
            let d = f16_at(sb, 0) * f32::from(sc);
            ([d, d], -f16_at(sb, 2) * f32::from(m))
        }
        Format::Q6K => {
            let sb = &row[b / 8 * 210..];
            let d = f16_at(sb, 208);
            // Sub-block j of a 128-value half takes scales 2j and 2j + 1 of that half.
            let (half, j) = ((b % 8) / 4, b % 4);
            let sc = |k: usize| f32::from(sb[192 + 8 * half + 2 * j + k] as i8) * d;
            ([sc(0), sc(1)], 0.0)
        }
    }
}

/// The 32 signed values of block `b` of a row.
fn block_values(format: Format, row: &[u8], b: usize) -> [i8; BLOCK] {
    let mut q = [0i8; BLOCK];
    match format {
        Format::Q8_0 => {
            for (q, &v) in q.iter_mut().zip(&row[b * 34 + 2..b * 34 + 34]) {
                *q = v as i8;
            }
        }
        Format::Q5_0 => {
            let block = &row[b * 22..b * 22 + 22];
            let qh = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
            for j in 0..16 {
                let lo = (block[6 + j] & 0x0f) | (((qh >> j) & 1) << 4) as u8;
                let hi = (block[6 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4) as u8;
                q[j] = lo as i8 - 16;
                q[j + 16] = hi as i8 - 16;
            }
        }
        Format::Q4K => {
            // Sub-blocks 2p and 2p + 1 are the low and high nibbles of the same 32 bytes.
            let j = b % 8;
            let qs = &row[b / 8 * 144 + 16 + (j / 2) * 32..][..32];
            for (q, &v) in q.iter_mut().zip(qs) {
                *q = (if j.is_multiple_of(2) { v & 0x0f } else { v >> 4 }) as i8;
            }
        }
        Format::Q6K => {
            let sb = &row[b / 8 * 210..];
            let (half, j) = ((b % 8) / 4, b % 4);
            let ql = &sb[64 * half + 32 * (j % 2)..][..32];
            let qh = &sb[128 + 32 * half..][..32];
            for l in 0..BLOCK {
                let lo = if j < 2 { ql[l] & 0x0f } else { ql[l] >> 4 };
                let hi = (qh[l] >> (2 * j)) & 3;
                q[l] = (lo | hi << 4) as i8 - 32;
            }
        }
    }
    q
}

fn read_block(format: Format, row: &[u8], b: usize) -> Block {
    let (scale, min) = block_scales(format, row, b);
    Block { q: block_values(format, row, b), scale, min }
}

/// Rows per parallel task when one token is multiplied: enough tasks to balance the threads,
/// few enough that handing them out stays cheap.
pub fn gemv_chunk(rows: usize) -> usize {
    rows.div_ceil(rayon::current_num_threads() * 4).max(32)
}

/// Tokens being decoded, through one or more matrices that read the same input, in one
/// parallel pass split over the weight rows (where decoding's memory traffic is): each task
/// reads its rows once for all `m` tokens. A decoding step is short, and each pass costs a
/// round of waking the pool's threads. `out` of each part holds `m` rows of its outputs.
pub fn gemv(x: &[f32], m: usize, parts: &mut [(&QMatrix, &mut [f32])]) {
    let tokens = Tokens::new(x, m);
    let mut outs: Vec<(&QMatrix, usize, &mut [f32])> =
        parts.iter_mut().map(|(w, out)| (*w, w.rows(), &mut **out)).collect();
    by_rows(&mut outs, m, |w, r, out| w.dot_row(r, tokens.all(), out));
}

/// Each token's quantized activations, `m` rows of `x` in turn.
fn quantize_tokens(x: &[f32], m: usize) -> Vec<ActBlock> {
    let mut acts = vec![ActBlock::default(); x.len() / BLOCK];
    let kb = acts.len() / m.max(1);
    acts.par_chunks_mut(kb.max(1))
        .zip(x.par_chunks(kb.max(1) * BLOCK))
        .for_each(|(a, x)| quantize_acts(x, a));
    acts
}

/// Tokens quantized once for every matrix that reads them (a decoding step's three attention
/// matrices read one input). Where the CPU has AVX-512 VNNI they are also laid out two blocks
/// to a register (`Pair`), as both of its kernels read them.
pub struct Tokens {
    acts: Vec<ActBlock>,
    pairs: Vec<Pair>,
    kb: usize,
}

/// Some consecutive tokens of a `Tokens`.
#[derive(Clone, Copy)]
pub struct TokenSlice<'a> {
    acts: &'a [ActBlock],
    /// `kb.div_ceil(2)` per token, or none where the kernels do not read them.
    pairs: &'a [Pair],
    kb: usize,
}

/// One token as the VNNI kernel reads it.
#[derive(Clone, Copy)]
struct VnniToken<'a> {
    pairs: &'a [Pair],
    /// Its blocks, for their `sum` (Q4_K's offsets).
    acts: &'a [ActBlock],
}

/// Two blocks of one token's activations, as VNNI reads them: 128 bytes for 64 values, read
/// once for every weight row.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Pair {
    /// The two blocks' values as unsigned bytes, `x + 128`; a missing second block is zeros.
    x: [u8; 2 * BLOCK],
    /// Each block's activation scale over its eight lanes.
    d: [f32; 16],
}

impl Pair {
    const ZERO: Pair = Pair { x: [128; 2 * BLOCK], d: [0.0; 16] };

    fn of(blocks: &[ActBlock]) -> Pair {
        let mut p = Pair::ZERO;
        for (h, a) in blocks.iter().enumerate() {
            for (x, &q) in p.x[BLOCK * h..BLOCK * (h + 1)].iter_mut().zip(&a.qs) {
                *x = q as u8 ^ 0x80;
            }
            p.d[8 * h..8 * (h + 1)].fill(a.d);
        }
        p
    }
}

impl Tokens {
    /// `m` rows of `x`, quantized.
    pub fn new(x: &[f32], m: usize) -> Tokens {
        let acts = quantize_tokens(x, m);
        let kb = (acts.len() / m.max(1)).max(1);
        let pairs = if kernel::vnni() {
            let per = kb.div_ceil(2);
            let mut pairs = vec![Pair::ZERO; per * m];
            pairs.par_chunks_mut(per).zip(acts.par_chunks(kb)).for_each(|(p, a)| {
                for (p, two) in p.iter_mut().zip(a.chunks(2)) {
                    *p = Pair::of(two);
                }
            });
            pairs
        } else {
            Vec::new()
        };
        Tokens { acts, pairs, kb }
    }

    pub fn all(&self) -> TokenSlice<'_> {
        TokenSlice { acts: &self.acts, pairs: &self.pairs, kb: self.kb }
    }
}

impl<'a> TokenSlice<'a> {
    pub fn len(&self) -> usize {
        self.acts.len() / self.kb
    }

    /// Token `t`'s blocks.
    fn blocks(&self, t: usize) -> &'a [ActBlock] {
        &self.acts[t * self.kb..(t + 1) * self.kb]
    }

    /// Token `t` for the VNNI kernel, where it was laid out for it.
    fn vnni(&self, t: usize) -> VnniToken<'a> {
        let (kb, per) = (self.kb, self.kb.div_ceil(2));
        VnniToken { pairs: &self.pairs[t * per..(t + 1) * per], acts: &self.acts[t * kb..(t + 1) * kb] }
    }

    /// The tokens `n` at a time.
    pub fn chunks(self, n: usize) -> impl Iterator<Item = TokenSlice<'a>> {
        let (len, kb, per) = (self.len(), self.kb, self.kb.div_ceil(2));
        (0..len).step_by(n.max(1)).map(move |s| {
            let e = (s + n).min(len);
            let pairs = if self.pairs.is_empty() { self.pairs } else { &self.pairs[s * per..e * per] };
            TokenSlice { acts: &self.acts[s * kb..e * kb], pairs, kb }
        })
    }
}

/// Runs `f(part, row, results)` for every row of every part on the pool, in tasks of
/// neighbouring rows, where `results` takes that row's value for each of the `m` tokens; the
/// parts' outputs are then laid out token after token (`m × rows`).
pub fn by_rows<W: Sync>(
    parts: &mut [(W, usize, &mut [f32])],
    m: usize,
    f: impl Fn(&W, usize, &mut [f32]) + Sync,
) {
    // One token's results are already in place; several are gathered row by row first.
    let mut staged: Vec<Vec<f32>> =
        parts.iter().map(|(_, rows, _)| if m == 1 { Vec::new() } else { vec![0.0; rows * m] }).collect();
    let mut tasks = Vec::new();
    for ((w, rows, out), stage) in parts.iter_mut().zip(&mut staged) {
        let chunk = gemv_chunk(*rows);
        let target: &mut [f32] = if m == 1 { out } else { stage };
        for (c, o) in target.chunks_mut(chunk * m).enumerate() {
            tasks.push((&*w, c * chunk, o));
        }
    }
    tasks.into_par_iter().for_each(|(w, start, out)| {
        for (j, results) in out.chunks_exact_mut(m).enumerate() {
            f(w, start + j, results);
        }
    });
    if m > 1 {
        for ((_, rows, out), stage) in parts.iter_mut().zip(&staged) {
            let rows = *rows;
            out.par_chunks_mut(rows).enumerate().for_each(|(t, out)| {
                for (r, o) in out.iter_mut().enumerate() {
                    *o = stage[r * m + t];
                }
            });
        }
    }
}

/// Quantizes one row of activations, a block of 32 at a time, to the nearest of 255 levels.
pub fn quantize_acts(x: &[f32], out: &mut [ActBlock]) {
    for (x, b) in x.chunks_exact(BLOCK).zip(out.iter_mut()) {
        let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        b.d = d;
        let mut sum = 0i32;
        for (q, v) in b.qs.iter_mut().zip(x) {
            // Adding and taking away 1.5 · 2^23 rounds to the nearest, ties to even, as
            // `round_ties_even` does, in two additions the compiler vectorises (the library
            // call it otherwise makes cost a twentieth of a prompt's time).
            const ROUND: f32 = 12_582_912.0;
            *q = ((v * id + ROUND) - ROUND) as i8;
            sum += i32::from(*q);
        }
        b.sum = d * sum as f32;
    }
}

/// Runs the AVX2 kernels when this CPU has AVX2 and FMA (checked at run time, once), the
/// portable loops otherwise: one binary serves every x86-64 server.
#[allow(unsafe_code)]
mod kernel {
    use super::{ActBlock, Format, Strip, StripRow, TokenSlice, portable};

    #[cfg(target_arch = "x86_64")]
    fn avx2() -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }

    pub fn dot(format: Format, row: &[u8], acts: &[ActBlock]) -> f32 {
        let mut out = [0.0];
        dot_many(format, row, acts, acts.len(), &mut out);
        out[0]
    }

    /// One row against several decoded tokens, `out[t]` for token `t`: with VNNI where the
    /// tokens were laid out for it. Either way a token's result does not depend on the others.
    pub fn dot_tokens(format: Format, row: &[u8], tokens: TokenSlice<'_>, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if !tokens.pairs.is_empty() {
            let mut t = 0;
            while t + 4 <= tokens.len() {
                let four = [t, t + 1, t + 2, t + 3].map(|t| tokens.vnni(t));
                // SAFETY: pairs are made only where the CPU has AVX-512 F, BW and VNNI.
                out[t..t + 4].copy_from_slice(&unsafe { super::avx512::dot(format, row, four) });
                t += 4;
            }
            for (t, o) in out.iter_mut().enumerate().take(tokens.len()).skip(t) {
                // SAFETY: as above.
                *o = unsafe { super::avx512::dot(format, row, [tokens.vnni(t)]) }[0];
            }
            return;
        }
        dot_many(format, row, tokens.acts, tokens.kb, out);
    }

    /// One row against several tokens of `kb` blocks each: `out[t]` for the `t`-th, each
    /// exactly as `dot` alone.
    fn dot_many(format: Format, row: &[u8], acts: &[ActBlock], kb: usize, out: &mut [f32]) {
        let token = |t: usize| &acts[t * kb..(t + 1) * kb];
        let n = acts.len() / kb;
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // Four tokens a step keep their eight accumulators in registers.
            let mut t = 0;
            while t + 4 <= n {
                let four = [token(t), token(t + 1), token(t + 2), token(t + 3)];
                // SAFETY: the CPU was just found to support AVX2 and FMA, all the kernel requires.
                out[t..t + 4].copy_from_slice(&unsafe { super::avx2::dot(format, row, four) });
                t += 4;
            }
            for (t, o) in out.iter_mut().enumerate().take(n).skip(t) {
                // SAFETY: as above.
                *o = unsafe { super::avx2::dot(format, row, [token(t)]) }[0];
            }
            return;
        }
        for (t, o) in out[..n].iter_mut().enumerate() {
            *o = portable::dot(format, row, token(t));
        }
    }

    /// One row of a strip: values as plain signed bytes, scales, offsets.
    pub fn fill_row(format: Format, row: &[u8], strip: StripRow<'_>) {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: as above.
            return unsafe { super::avx2::fill_row(format, row, strip) };
        }
        for (b, (out, sums)) in strip.q.iter_mut().zip(strip.int_fix.iter_mut()).enumerate() {
            *out = super::block_values(format, row, b);
            *sums = std::array::from_fn(|l| out[4 * l..4 * l + 4].iter().map(|&v| i32::from(v)).sum());
        }
        strip.finish(format, row);
    }

    #[cfg(target_arch = "x86_64")]
    pub fn vnni() -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
        })
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn vnni() -> bool {
        false
    }

    /// A strip's four rows against each of `tokens`, handing `put(token, results)`. With
    /// AVX-512 VNNI two tokens go through at once, each computed exactly as it would be alone.
    pub fn dot4_strip_tokens(strip: &Strip, tokens: TokenSlice<'_>, mut put: impl FnMut(usize, [f32; 4])) {
        let n = tokens.len();
        #[cfg(target_arch = "x86_64")]
        if !tokens.pairs.is_empty() {
            let mut t = 0;
            while t + 2 <= n {
                let two = [tokens.vnni(t), tokens.vnni(t + 1)];
                // SAFETY: pairs are made only where the CPU has AVX-512 F, BW and VNNI.
                let [a, b] = unsafe { super::avx512::dot4_strip(strip, two) };
                put(t, a);
                put(t + 1, b);
                t += 2;
            }
            for t in t..n {
                // SAFETY: as above.
                put(t, unsafe { super::avx512::dot4_strip(strip, [tokens.vnni(t)]) }[0]);
            }
            return;
        }
        for t in 0..n {
            put(t, dot4_strip(strip, tokens.blocks(t)));
        }
    }

    pub fn dot4_strip(strip: &Strip, acts: &[ActBlock]) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            // SAFETY: as above.
            return unsafe { super::avx2::dot4_strip(strip, acts) };
        }
        portable::dot4_strip(strip, acts)
    }
}

/// Portable loops: the fallback, and the reference the vector kernels are tested against.
mod portable {
    use super::{ActBlock, Block, Format, Strip, read_block};

    fn dot_block(w: &Block, a: &ActBlock) -> f32 {
        let half = |h: usize| -> i32 {
            let r = h * 16..(h + 1) * 16;
            w.q[r.clone()].iter().zip(&a.qs[r]).map(|(&w, &x)| i32::from(w) * i32::from(x)).sum()
        };
        a.d * (w.scale[0] * half(0) as f32 + w.scale[1] * half(1) as f32) + w.min * a.sum
    }

    pub fn dot(format: Format, row: &[u8], acts: &[ActBlock]) -> f32 {
        acts.iter().enumerate().map(|(b, a)| dot_block(&read_block(format, row, b), a)).sum()
    }

    pub fn dot4_strip(strip: &Strip, acts: &[ActBlock]) -> [f32; 4] {
        let mut sum = [0f32; 4];
        for (b, a) in acts.iter().enumerate() {
            for (r, sum) in sum.iter_mut().enumerate() {
                let kb = acts.len();
                let (q, lanes) = (&strip.q[r * kb + b], &strip.lanes[r * kb + b]);
                let w = Block { q: *q, scale: [lanes[0], lanes[4]], min: strip.mins[b][r] };
                *sum += dot_block(&w, a);
            }
        }
        sum
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! AVX2 integer dot products: the signed-by-signed 8-bit products go through `maddubs`
    //! (unsigned × signed) by moving the weight's sign onto the activation, as ggml does.
    //! Every function needs AVX2 and FMA; `kernel` checks the CPU before calling in.
    use super::{ActBlock, Format, Strip, StripRow, f16_at, q4k_scale_min};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn load256(b: &[u8]) -> __m256i {
        bytemuck::pod_read_unaligned(&b[..32])
    }

    #[target_feature(enable = "avx2,fma")]
    fn load128(b: &[u8]) -> __m128i {
        bytemuck::pod_read_unaligned(&b[..16])
    }

    /// Eight i32 lanes: lane `l` holds `Σ w[i] · x[i]` over `i` in `4l..4l + 4`.
    #[target_feature(enable = "avx2,fma")]
    fn mul_sum_i8(w: __m256i, x: __m256i) -> __m256i {
        let aw = _mm256_sign_epi8(w, w);
        let sx = _mm256_sign_epi8(x, w);
        let pairs = _mm256_maddubs_epi16(aw, sx);
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    fn nibbles(bytes: __m256i, high: bool) -> __m256i {
        let v = if high { _mm256_srli_epi16(bytes, 4) } else { bytes };
        _mm256_and_si256(v, _mm256_set1_epi8(0x0f))
    }

    /// A Q5_0 block's 32 values as signed bytes: nibbles, with 16 subtracted wherever the fifth
    /// bit is clear.
    #[target_feature(enable = "avx2,fma")]
    fn q5_0_values(block: &[u8]) -> __m256i {
        let qs = load128(&block[6..22]);
        let lo_hi = nibbles(_mm256_set_m128i(_mm_srli_epi16(qs, 4), qs), false);
        let qh = i32::from_le_bytes([block[2], block[3], block[4], block[5]]);
        // Spread bit i of qh onto byte i: 0xff where set.
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(qh),
            _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0),
        );
        let bits = _mm256_cmpeq_epi8(
            _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
            _mm256_set1_epi64x(-1),
        );
        // Where the fifth bit is clear, 0xf0 | nibble is nibble - 16.
        _mm256_or_si256(lo_hi, _mm256_andnot_si256(bits, _mm256_set1_epi8(0xf0u8 as i8)))
    }

    /// Sub-block `j` (0..8) of a Q6_K super-block as signed bytes.
    #[target_feature(enable = "avx2,fma")]
    fn q6k_values(sb: &[u8], j: usize) -> __m256i {
        let (half, j) = (j / 4, j % 4);
        let lo = nibbles(load256(&sb[64 * half + 32 * (j % 2)..]), j >= 2);
        let qh = load256(&sb[128 + 32 * half..]);
        let shifted = match j {
            0 => qh,
            1 => _mm256_srli_epi16(qh, 2),
            2 => _mm256_srli_epi16(qh, 4),
            _ => _mm256_srli_epi16(qh, 6),
        };
        let hi = _mm256_slli_epi16(_mm256_and_si256(shifted, _mm256_set1_epi8(3)), 4);
        _mm256_sub_epi8(_mm256_or_si256(lo, hi), _mm256_set1_epi8(32))
    }

    /// One row of a strip: the values unpacked with vector code, and the sums of each lane's
    /// four values for the corrections.
    #[target_feature(enable = "avx2,fma")]
    pub fn fill_row(format: Format, row: &[u8], strip: StripRow<'_>) {
        unpack_row(format, row, strip.q);
        for (q, sums) in strip.q.iter().zip(strip.int_fix.iter_mut()) {
            let w: __m256i = bytemuck::cast(*q);
            let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), w);
            *sums = bytemuck::cast(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
        }
        strip.finish(format, row);
    }

    /// A row's values as plain signed bytes, block by block.
    #[target_feature(enable = "avx2,fma")]
    fn unpack_row(format: Format, row: &[u8], out: &mut [[i8; 32]]) {
        match format {
            Format::Q8_0 => {
                for (o, block) in out.iter_mut().zip(row.chunks_exact(34)) {
                    *o = bytemuck::cast(load256(&block[2..]));
                }
            }
            Format::Q5_0 => {
                for (o, block) in out.iter_mut().zip(row.chunks_exact(22)) {
                    *o = bytemuck::cast(q5_0_values(block));
                }
            }
            Format::Q4K => {
                for (o, sb) in out.chunks_exact_mut(8).zip(row.chunks_exact(144)) {
                    for p in 0..4 {
                        let bytes = load256(&sb[16 + 32 * p..]);
                        o[2 * p] = bytemuck::cast(nibbles(bytes, false));
                        o[2 * p + 1] = bytemuck::cast(nibbles(bytes, true));
                    }
                }
            }
            Format::Q6K => {
                for (o, sb) in out.chunks_exact_mut(8).zip(row.chunks_exact(210)) {
                    for (j, o) in o.iter_mut().enumerate() {
                        *o = bytemuck::cast(q6k_values(sb, j));
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn act(a: &ActBlock) -> __m256i {
        bytemuck::cast(a.qs)
    }

    /// Lanes 0-3 get `s[0]`, lanes 4-7 `s[1]`, times `d`.
    #[target_feature(enable = "avx2,fma")]
    fn lane_scales(s: [f32; 2], d: f32) -> __m256 {
        _mm256_set_m128(_mm_set1_ps(s[1] * d), _mm_set1_ps(s[0] * d))
    }

    /// One row against `N` tokens, format by format, so the inner loops carry no branches and
    /// the K-quants unpack their scales once per super-block. The row's values are unpacked
    /// once for all the tokens; each token's products and sums take exactly the steps they
    /// take when it is alone (`N = 1`), so a token's result never depends on its batch.
    #[target_feature(enable = "avx2,fma")]
    pub fn dot<const N: usize>(format: Format, row: &[u8], acts: [&[ActBlock]; N]) -> [f32; N] {
        match format {
            Format::Q8_0 => dot_32(row, 34, acts, |b| load256(&b[2..])),
            Format::Q5_0 => dot_32(row, 22, acts, |b| q5_0_values(b)),
            Format::Q4K => dot_q4k(row, acts),
            Format::Q6K => dot_q6k(row, acts),
        }
    }

    /// Formats of 32-value blocks with one f16 scale in front, two blocks a step into two
    /// accumulators per token so consecutive multiply-adds do not wait on each other.
    #[target_feature(enable = "avx2,fma")]
    fn dot_32<const N: usize>(
        row: &[u8],
        bb: usize,
        acts: [&[ActBlock]; N],
        values: impl Fn(&[u8]) -> __m256i,
    ) -> [f32; N] {
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        let kb = row.len() / bb;
        for b in 0..kb {
            let k = b % 2;
            let block = &row[b * bb..(b + 1) * bb];
            let (w, scale) = (values(block), f16_at(block, 0));
            for (acc, acts) in acc.iter_mut().zip(acts) {
                let a = &acts[b];
                let d = _mm256_set1_ps(scale * a.d);
                acc[k] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_i8(w, act(a))), acc[k]);
            }
        }
        acc.map(|[a, b]| hsum(_mm256_add_ps(a, b)))
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_q4k<const N: usize>(row: &[u8], acts: [&[ActBlock]; N]) -> [f32; N] {
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        let mut offsets = [0f32; N];
        for (s, sb) in row.chunks_exact(144).enumerate() {
            let (d, dmin) = (f16_at(sb, 0), f16_at(sb, 2));
            let mut mins = [0f32; N];
            for p in 0..4 {
                // Sub-blocks 2p and 2p + 1: low and high nibbles of the same 32 bytes.
                let bytes = load256(&sb[16 + 32 * p..]);
                for k in 0..2 {
                    let (sc, m) = q4k_scale_min(2 * p + k, &sb[4..16]);
                    let w = nibbles(bytes, k == 1);
                    for t in 0..N {
                        let a = &acts[t][8 * s + 2 * p + k];
                        let v = _mm256_cvtepi32_ps(mul_sum_i8(w, act(a)));
                        acc[t][k] = _mm256_fmadd_ps(_mm256_set1_ps(d * f32::from(sc) * a.d), v, acc[t][k]);
                        mins[t] += f32::from(m) * a.sum;
                    }
                }
            }
            for t in 0..N {
                offsets[t] -= dmin * mins[t];
            }
        }
        std::array::from_fn(|t| hsum(_mm256_add_ps(acc[t][0], acc[t][1])) + offsets[t])
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_q6k<const N: usize>(row: &[u8], acts: [&[ActBlock]; N]) -> [f32; N] {
        let mut acc = [[_mm256_setzero_ps(); 2]; N];
        for (s, sb) in row.chunks_exact(210).enumerate() {
            let d = f16_at(sb, 208);
            for j in 0..8 {
                let sc = [f32::from(sb[192 + 2 * j] as i8) * d, f32::from(sb[193 + 2 * j] as i8) * d];
                let w = q6k_values(sb, j);
                for (acc, acts) in acc.iter_mut().zip(acts) {
                    let a = &acts[8 * s + j];
                    let v = _mm256_cvtepi32_ps(mul_sum_i8(w, act(a)));
                    acc[j % 2] = _mm256_fmadd_ps(lane_scales(sc, a.d), v, acc[j % 2]);
                }
            }
        }
        acc.map(|[a, b]| hsum(_mm256_add_ps(a, b)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn dot4_strip(strip: &Strip, acts: &[ActBlock]) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut offsets = _mm_setzero_ps();
        let kb = acts.len();
        let ones = _mm256_set1_epi16(1);
        for (b, a) in acts.iter().enumerate() {
            let x = act(a);
            let d = _mm256_set1_ps(a.d);
            match (!strip.saturates).then_some(&strip.fix) {
                Some(fix) => {
                    let xu = _mm256_xor_si256(x, _mm256_set1_epi8(0x80u8 as i8));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let lanes: __m256 = bytemuck::cast(strip.lanes[r * kb + b]);
                        let w: __m256i = bytemuck::cast(strip.q[r * kb + b]);
                        let p = _mm256_madd_epi16(_mm256_maddubs_epi16(xu, w), ones);
                        *acc = _mm256_fmadd_ps(_mm256_mul_ps(lanes, d), _mm256_cvtepi32_ps(p), *acc);
                    }
                    let fix: __m128 = bytemuck::cast(fix[b]);
                    offsets = _mm_fmadd_ps(fix, _mm_set1_ps(a.d), offsets);
                }
                None => {
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let lanes: __m256 = bytemuck::cast(strip.lanes[r * kb + b]);
                        let s = _mm256_cvtepi32_ps(mul_sum_i8(bytemuck::cast(strip.q[r * kb + b]), x));
                        *acc = _mm256_fmadd_ps(_mm256_mul_ps(lanes, d), s, *acc);
                    }
                }
            }
            if strip.has_mins {
                let mins: __m128 = bytemuck::cast(strip.mins[b]);
                offsets = _mm_fmadd_ps(mins, _mm_set1_ps(a.sum), offsets);
            }
        }
        let offsets: [f32; 4] = bytemuck::cast(offsets);
        [0, 1, 2, 3].map(|r| hsum(acc[r]) + offsets[r])
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    //! AVX-512 VNNI for prompts: `vpdpbusd` multiplies the activations, read as unsigned
    //! bytes (`x + 128`), with the signed weights and sums groups of four in 32 bits onto the
    //! strip's integer correction, two blocks per instruction. Every function needs AVX-512 F,
    //! BW and VNNI; `kernel` checks the CPU before calling in.
    //!
    //! Decoded tokens likewise read the activations as unsigned bytes, laid out once per
    //! step (`Pair`); each sum starts from `-128 · Σ w`, worked out once per weight row for
    //! all the tokens.
    use super::avx2::load256;
    use super::{Format, Strip, VnniToken, f16_at, q4k_scale_min};
    use std::arch::x86_64::*;

    /// Sixteen lanes: the first eight `lo`, the rest `hi`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn halves(lo: f32, hi: f32) -> __m512 {
        _mm512_mask_blend_ps(0xff00, _mm512_set1_ps(lo), _mm512_set1_ps(hi))
    }

    /// Two f16 block scales, each over its block's eight lanes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn f16_halves(lo: [u8; 2], hi: [u8; 2]) -> __m512 {
        let (lo, hi) = (i16::from_le_bytes(lo), i16::from_le_bytes(hi));
        _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo)))
    }

    /// Thirty-two bytes in both halves of a register.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn twice(v: __m256i) -> __m512i {
        _mm512_inserti64x4(_mm512_castsi256_si512(v), v, 1)
    }

    /// One row against `N` decoded tokens, format by format. The row's values are unpacked
    /// once for all of them; each token's sums take the same steps whatever `N` is, so its
    /// result does not depend on its batch. (No closures here: the compiler keeps them apart,
    /// and every call between them would go through memory.)
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub fn dot<const N: usize>(format: Format, row: &[u8], tokens: [VnniToken<'_>; N]) -> [f32; N] {
        match format {
            Format::Q8_0 => dot_blocks::<N, Q8_0>(row, tokens),
            Format::Q5_0 => dot_blocks::<N, Q5_0>(row, tokens),
            Format::Q4K => dot_q4k(row, tokens),
            Format::Q6K => dot_q6k(row, tokens),
        }
    }

    const Q8_0: u8 = 0;
    const Q5_0: u8 = 1;

    /// Weights for two blocks: their signed values, where each sum starts (`-128 · Σ w` over
    /// each lane's four, as the activations come 128 above their worth), and their scales.
    struct Weights {
        w: __m512i,
        start: __m512i,
        scales: __m512,
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn weights(w: __m512i, scales: __m512) -> Weights {
        let high = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(0x80u8 as i8), w);
        Weights { w, start: _mm512_sub_epi32(_mm512_setzero_si512(), high), scales }
    }

    /// Two blocks (or one, `two = false`) of format `F`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn unpack<const F: u8>(b: &[u8], two: bool) -> Weights {
        if F == Q8_0 { q8_0_pair(b, two) } else { q5_0_pair(b, two) }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn q8_0_pair(b: &[u8], two: bool) -> Weights {
        let lo = load256(&b[2..]);
        let (hi, s1) =
            if two { (load256(&b[36..]), [b[34], b[35]]) } else { (_mm256_setzero_si256(), [0; 2]) };
        weights(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), f16_halves([b[0], b[1]], s1))
    }

    /// The nibbles with the fifth bit on top, less 16.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn q5_0_pair(b: &[u8], two: bool) -> Weights {
        let q0: __m128i = bytemuck::pod_read_unaligned(&b[6..22]);
        let h0 = u64::from(u32::from_le_bytes([b[2], b[3], b[4], b[5]]));
        let (q1, h1, s1) = if two {
            let q1: __m128i = bytemuck::pod_read_unaligned(&b[28..44]);
            (q1, u64::from(u32::from_le_bytes([b[24], b[25], b[26], b[27]])), [b[22], b[23]])
        } else {
            (_mm_setzero_si128(), 0, [0; 2])
        };
        // Each block's sixteen bytes twice, the second copy for the high nibbles.
        let both = _mm512_castsi256_si512(_mm256_set_m128i(q1, q0));
        let v = _mm512_permutexvar_epi64(_mm512_set_epi64(3, 2, 3, 2, 1, 0, 1, 0), both);
        let v = _mm512_mask_srli_epi16::<4>(v, 0xff00_ff00, v);
        let v = _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
        // Bit i of a block's high bits belongs to its value i; where it is clear, take 16.
        let w = _mm512_mask_sub_epi8(v, !(h0 | h1 << 32), v, _mm512_set1_epi8(16));
        // A missing second block reads as zeros.
        let w = if two { w } else { _mm512_maskz_mov_epi8(u64::from(u32::MAX), w) };
        weights(w, f16_halves([b[0], b[1]], s1))
    }

    /// Adds one pair of blocks to each token's accumulator.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn add_pair<const N: usize>(acc: &mut [__m512; N], w: &Weights, tokens: &[VnniToken<'_>; N], p: usize) {
        for (acc, t) in acc.iter_mut().zip(tokens) {
            let x = &t.pairs[p];
            let s = _mm512_dpbusd_epi32(w.start, bytemuck::cast(x.x), w.w);
            let d = _mm512_mul_ps(w.scales, bytemuck::cast(x.d));
            *acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(s), *acc);
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn reduce<const N: usize>(even: [__m512; N], odd: [__m512; N]) -> [f32; N] {
        let mut out = [0.0; N];
        for (o, (e, d)) in out.iter_mut().zip(even.into_iter().zip(odd)) {
            *o = _mm512_reduce_add_ps(_mm512_add_ps(e, d));
        }
        out
    }

    /// Formats of 32-value blocks, two blocks a step, alternating between two accumulators
    /// per token so consecutive multiply-adds do not wait on each other.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn dot_blocks<const N: usize, const F: u8>(row: &[u8], tokens: [VnniToken<'_>; N]) -> [f32; N] {
        let bb = if F == Q8_0 { 34 } else { 22 };
        let kb = row.len() / bb;
        let pairs = kb.div_ceil(2);
        let (mut even, mut odd) = ([_mm512_setzero_ps(); N], [_mm512_setzero_ps(); N]);
        let mut p = 0;
        while p < pairs {
            add_pair(&mut even, &unpack::<F>(&row[2 * p * bb..], 2 * p + 1 < kb), &tokens, p);
            if p + 1 < pairs {
                add_pair(&mut odd, &unpack::<F>(&row[2 * (p + 1) * bb..], 2 * p + 3 < kb), &tokens, p + 1);
            }
            p += 2;
        }
        reduce(even, odd)
    }

    /// Q4_K: the nibbles as they are; each sub-block's min meets the activation block's sum.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn dot_q4k<const N: usize>(row: &[u8], tokens: [VnniToken<'_>; N]) -> [f32; N] {
        let (mut even, mut odd) = ([_mm512_setzero_ps(); N], [_mm512_setzero_ps(); N]);
        let mut offsets = [_mm256_setzero_ps(); N];
        for (s, sb) in row.chunks_exact(144).enumerate() {
            for p in [0, 2] {
                add_pair(&mut even, &q4k_pair(sb, p), &tokens, 4 * s + p);
                add_pair(&mut odd, &q4k_pair(sb, p + 1), &tokens, 4 * s + p + 1);
            }
            let dmin = f16_at(sb, 2);
            let mins: [f32; 8] = std::array::from_fn(|j| dmin * f32::from(q4k_scale_min(j, &sb[4..16]).1));
            let mins: __m256 = bytemuck::cast(mins);
            for (o, t) in offsets.iter_mut().zip(&tokens) {
                let mut sums = [0f32; 8];
                for (sum, a) in sums.iter_mut().zip(&t.acts[8 * s..8 * s + 8]) {
                    *sum = a.sum;
                }
                *o = _mm256_fmadd_ps(mins, bytemuck::cast(sums), *o);
            }
        }
        let mut out = reduce(even, odd);
        for (out, o) in out.iter_mut().zip(offsets) {
            let o = _mm_add_ps(_mm256_castps256_ps128(o), _mm256_extractf128_ps::<1>(o));
            let o = _mm_add_ps(o, _mm_movehl_ps(o, o));
            *out -= _mm_cvtss_f32(_mm_add_ss(o, _mm_movehdup_ps(o)));
        }
        out
    }

    /// Sub-blocks 2p and 2p + 1 of a Q4_K super-block: the low and high nibbles of the same
    /// 32 bytes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn q4k_pair(sb: &[u8], p: usize) -> Weights {
        let d = f16_at(sb, 0);
        let bytes = twice(load256(&sb[16 + 32 * p..]));
        let w =
            _mm512_and_si512(_mm512_mask_srli_epi16::<4>(bytes, 0xffff_0000, bytes), _mm512_set1_epi8(0x0f));
        let (s0, s1) = (q4k_scale_min(2 * p, &sb[4..16]).0, q4k_scale_min(2 * p + 1, &sb[4..16]).0);
        weights(w, halves(d * f32::from(s0), d * f32::from(s1)))
    }

    /// Q6_K: six-bit values less 32; a scale for every sixteen.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn dot_q6k<const N: usize>(row: &[u8], tokens: [VnniToken<'_>; N]) -> [f32; N] {
        let (mut even, mut odd) = ([_mm512_setzero_ps(); N], [_mm512_setzero_ps(); N]);
        for (s, sb) in row.chunks_exact(210).enumerate() {
            for p in [0, 2] {
                add_pair(&mut even, &q6k_pair(sb, p), &tokens, 4 * s + p);
                add_pair(&mut odd, &q6k_pair(sb, p + 1), &tokens, 4 * s + p + 1);
            }
        }
        reduce(even, odd)
    }

    /// Sub-blocks 2p and 2p + 1 of a Q6_K super-block: the low (p even) or high nibbles of
    /// sixty-four bytes with two bits each from the same thirty-two on top, and their four
    /// scales over four lanes each.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn q6k_pair(sb: &[u8], p: usize) -> Weights {
        let half = p / 2;
        let ql: __m512i = bytemuck::pod_read_unaligned(&sb[64 * half..64 * half + 64]);
        let ql = if p % 2 == 1 { _mm512_srli_epi16::<4>(ql) } else { ql };
        let lo = _mm512_and_si512(ql, _mm512_set1_epi8(0x0f));
        let qh = twice(load256(&sb[128 + 32 * half..]));
        let by: (i16, i16) = if p % 2 == 1 { (4, 6) } else { (0, 2) };
        let shifts = _mm512_inserti64x4(_mm512_set1_epi16(by.0), _mm256_set1_epi16(by.1), 1);
        let hi = _mm512_and_si512(_mm512_srlv_epi16(qh, shifts), _mm512_set1_epi8(3));
        let w = _mm512_sub_epi8(_mm512_or_si512(lo, _mm512_slli_epi16::<4>(hi)), _mm512_set1_epi8(32));
        let four = i32::from_le_bytes([sb[192 + 4 * p], sb[193 + 4 * p], sb[194 + 4 * p], sb[195 + 4 * p]]);
        let spread = _mm_shuffle_epi8(
            _mm_cvtsi32_si128(four),
            _mm_set_epi8(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0),
        );
        let d = _mm512_set1_ps(f16_at(sb, 208));
        weights(w, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(spread))))
    }

    /// A strip's four rows against `T` tokens: two blocks a step, the four rows' weights read
    /// once for all the tokens.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub fn dot4_strip<const T: usize>(strip: &Strip, tokens: [VnniToken<'_>; T]) -> [[f32; 4]; T] {
        let kb = tokens[0].acts.len();
        let mut acc = [[_mm512_setzero_ps(); 4]; T];
        for p in 0..kb.div_ceil(2) {
            let b = 2 * p;
            let mut xs = [(_mm512_setzero_si512(), _mm512_setzero_ps()); T];
            for (x, t) in xs.iter_mut().zip(&tokens) {
                let pair = &t.pairs[p];
                *x = (bytemuck::cast(pair.x), bytemuck::cast(pair.d));
            }
            for r in 0..4 {
                let at = r * kb + b;
                // An odd last block alone, its weights' upper half zero.
                let (w, fix, lanes): (__m512i, __m512i, __m512) = if b + 1 < kb {
                    (
                        bytemuck::pod_read_unaligned(bytemuck::cast_slice(&strip.q[at..at + 2])),
                        bytemuck::pod_read_unaligned(bytemuck::cast_slice(&strip.int_fix[at..at + 2])),
                        bytemuck::pod_read_unaligned(bytemuck::cast_slice(&strip.lanes[at..at + 2])),
                    )
                } else {
                    let w: __m256i = bytemuck::cast(strip.q[at]);
                    let fix: __m256i = bytemuck::cast(strip.int_fix[at]);
                    let lanes: __m256 = bytemuck::cast(strip.lanes[at]);
                    (_mm512_zextsi256_si512(w), _mm512_zextsi256_si512(fix), _mm512_zextps256_ps512(lanes))
                };
                for (acc, (x, d)) in acc.iter_mut().zip(&xs) {
                    // Σ (x + 128) · w, started from -128 · Σ w: Σ x · w exactly.
                    let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(fix, *x, w));
                    acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(lanes, *d), s, acc[r]);
                }
            }
        }
        let mut out = [[0.0; 4]; T];
        for t in 0..T {
            // Q4_K's offsets, over two chains so the multiply-adds do not wait on each other.
            let mut offsets = [_mm_setzero_ps(); 2];
            if strip.has_mins {
                for (b, a) in tokens[t].acts.iter().enumerate() {
                    let mins: __m128 = bytemuck::cast(strip.mins[b]);
                    offsets[b % 2] = _mm_fmadd_ps(mins, _mm_set1_ps(a.sum), offsets[b % 2]);
                }
            }
            let offsets: [f32; 4] = bytemuck::cast(_mm_add_ps(offsets[0], offsets[1]));
            for r in 0..4 {
                out[t][r] = _mm512_reduce_add_ps(acc[t][r]) + offsets[r];
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random bytes.
    pub(crate) fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as u8
            })
            .collect()
    }

    const FORMATS: [Format; 4] = [Format::Q8_0, Format::Q5_0, Format::Q4K, Format::Q6K];

    /// Random blocks with sane f16 scales where each format keeps them.
    fn matrix(format: Format, rows: usize, cols: usize, seed: u32) -> QMatrix {
        let mut data = noise(rows * format.row_bytes(cols).unwrap(), seed);
        let (_, unit) = format.unit();
        let small = |b: u8| f16::from_f32(0.001 + f32::from(b) / 25_500.0).to_le_bytes();
        for u in data.chunks_exact_mut(unit) {
            let at: &[usize] = match format {
                Format::Q8_0 | Format::Q5_0 => &[0],
                Format::Q4K => &[0, 2],
                Format::Q6K => &[208],
            };
            for &i in at {
                let v = small(u[i]);
                u[i..i + 2].copy_from_slice(&v);
            }
        }
        QMatrix::new(format, rows, cols, data).unwrap()
    }

    fn activations(m: usize, k: usize) -> Vec<f32> {
        noise(m * k, 7).iter().map(|&b| (f32::from(b) - 127.5) / 50.0).collect()
    }

    /// The product in f32 over the dequantized weights and the 8-bit activations.
    fn reference(w: &QMatrix, x: &[f32], m: usize) -> Vec<f32> {
        let k = w.cols();
        let mut out = vec![0f32; m * w.rows()];
        let mut row = vec![0f32; k];
        let mut acts = vec![ActBlock::default(); k / BLOCK];
        for i in 0..m {
            quantize_acts(&x[i * k..(i + 1) * k], &mut acts);
            let xq: Vec<f32> =
                acts.iter().flat_map(|a| a.qs.iter().map(move |&q| a.d * f32::from(q))).collect();
            for j in 0..w.rows() {
                w.dequantize_row(j, &mut row);
                out[i * w.rows() + j] = row.iter().zip(&xq).map(|(a, b)| a * b).sum();
            }
        }
        out
    }

    fn close(a: &[f32], b: &[f32]) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let tol = 1e-3 * (1.0 + y.abs());
            assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
        }
    }

    #[test]
    fn products_match_the_dequantized_reference() {
        for format in FORMATS {
            // 11 rows: strips of four and a remainder; one token, and prompts over a task.
            let w = matrix(format, 11, 512, 3);
            for m in [1, 3, 17, 40] {
                let x = activations(m, 512);
                let mut out = vec![0f32; m * 11];
                for pass in [Pass::Prompt, Pass::Decode] {
                    w.matmul(&x, m, &mut out, pass);
                    close(&out, &reference(&w, &x, m));
                }
            }
        }
    }

    #[test]
    fn activations_round_to_the_nearest_even() {
        let x: Vec<f32> =
            (-300..300).map(|i| i as f32 * 0.213 + 0.5).chain([0.5, 1.5, 2.5, -0.5, -2.5]).collect();
        for block in x.chunks_exact(BLOCK) {
            let mut a = [ActBlock::default()];
            quantize_acts(block, &mut a);
            let id = 1.0 / (block.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0);
            for (q, v) in a[0].qs.iter().zip(block) {
                assert_eq!(*q, (v * id).round_ties_even() as i8, "{v}");
            }
        }
    }

    #[test]
    fn an_odd_number_of_blocks_and_tokens_reads_right() {
        for format in [Format::Q8_0, Format::Q5_0] {
            let w = matrix(format, 9, 480, 13);
            let x = activations(3, 480);
            let mut out = vec![0f32; 3 * 9];
            for pass in [Pass::Prompt, Pass::Decode] {
                w.matmul(&x, 3, &mut out, pass);
                close(&out, &reference(&w, &x, 3));
            }
        }
    }

    #[test]
    fn a_decoded_token_gets_the_same_bits_alone_or_batched() {
        for format in FORMATS {
            let w = matrix(format, 37, 512, 5);
            let x = activations(7, 512);
            let mut together = vec![0f32; 7 * 37];
            w.matmul(&x, 7, &mut together, Pass::Decode);
            for t in 0..7 {
                let mut alone = vec![0f32; 37];
                w.matmul(&x[t * 512..(t + 1) * 512], 1, &mut alone, Pass::Decode);
                assert_eq!(alone, together[t * 37..(t + 1) * 37], "{format:?}, token {t}");
            }
        }
    }

    #[test]
    fn vector_kernels_match_the_portable_loops() {
        for format in FORMATS {
            let w = matrix(format, 4, 512, 11);
            let mut acts = vec![ActBlock::default(); 16];
            quantize_acts(&activations(1, 512), &mut acts);
            let mut strip = Strip::new(16);
            strip.fill(&w, 0);
            let slow = [0, 1, 2, 3].map(|r| portable::dot(format, w.row(r), &acts));
            for (b, u) in strip.q[16..32].iter().enumerate() {
                assert_eq!(*u, block_values(format, w.row(1), b));
            }
            close(&kernel::dot4_strip(&strip, &acts), &slow);
            close(&portable::dot4_strip(&strip, &acts), &slow);
            // Several tokens at once (two at a time with VNNI, and one left over).
            let three = Tokens::new(&activations(3, 512), 3);
            let mut got = [[0f32; 4]; 3];
            kernel::dot4_strip_tokens(&strip, three.all(), |i, r| got[i] = r);
            for (i, got) in got.iter().enumerate() {
                let want = [0, 1, 2, 3].map(|r| portable::dot(format, w.row(r), three.all().blocks(i)));
                close(got, &want);
            }
            close(&[0, 1, 2, 3].map(|r| kernel::dot(format, w.row(r), &acts)), &slow);
        }
    }

    #[test]
    fn q5_0_values_follow_the_ggml_layout() {
        // Scale 1.0, high bits set for values 0 and 17 only, nibbles 0..15 low / 15..0 high.
        let mut block = vec![0u8; 22];
        block[..2].copy_from_slice(&f16::from_f32(1.0).to_le_bytes());
        block[2..6].copy_from_slice(&(1u32 | 1 << 17).to_le_bytes());
        for j in 0..16 {
            block[6 + j] = j as u8 | ((15 - j as u8) << 4);
        }
        let w = QMatrix::new(Format::Q5_0, 1, 32, block).unwrap();
        let mut row = [0f32; 32];
        w.dequantize_row(0, &mut row);
        assert_eq!(row[0], 0.0); // 0 | 16 - 16
        assert_eq!(row[1], -15.0); // 1 - 16
        assert_eq!(row[16], -1.0); // 15 - 16
        assert_eq!(row[17], 14.0); // 14 | 16 - 16
    }

    #[test]
    fn k_quant_rows_dequantize_as_ggml_does() {
        // Q4_K: d = 1, dmin = 0.5; sub-block 0 scale 2 min 4, sub-block 5 scale 3 + 16 (its
        // high bits live in byte 1's top bits) and min 1; all nibbles 0x21 (low 1, high 2).
        let mut sb = vec![0u8; 144];
        sb[0..2].copy_from_slice(&f16::from_f32(1.0).to_le_bytes());
        sb[2..4].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        let s = &mut sb[4..16];
        s[0] = 2;
        s[4] = 4;
        s[9] = 3 | (1 << 4); // sub-block 5: scale low nibble 3, min low nibble 1
        s[1] |= 1 << 6; // scale high bits 01 -> + 16
        sb[16..].fill(0x21);
        let w = QMatrix::new(Format::Q4K, 1, 256, sb).unwrap();
        let mut row = [0f32; 256];
        w.dequantize_row(0, &mut row);
        assert_eq!(row[0], 2.0 * 1.0 - 0.5 * 4.0);
        assert_eq!(row[5 * 32], 19.0 * 2.0 - 0.5 * 1.0);

        // Q6_K: d = 0.5, scales 1..16; ql low nibble 3 / high 1, qh pairs 2 -> values
        // (3 | 2 << 4) - 32 = 3 in low-nibble sub-blocks, (1 | 2 << 4) - 32 = 1 in the others.
        let mut sb = vec![0u8; 210];
        sb[..128].fill(0x13);
        sb[128..192].fill(0b1010_1010);
        for (i, s) in sb[192..208].iter_mut().enumerate() {
            *s = i as u8 + 1;
        }
        sb[208..210].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        let w = QMatrix::new(Format::Q6K, 1, 256, sb).unwrap();
        w.dequantize_row(0, &mut row);
        assert_eq!(row[0], 0.5 * 1.0 * 3.0); // sub-block 0, scale 1
        assert_eq!(row[16], 0.5 * 2.0 * 3.0); // its second half, scale 2
        assert_eq!(row[64], 0.5 * 5.0 * 1.0); // sub-block 2: high nibbles, scale 5
        assert_eq!(row[128 + 32], 0.5 * 11.0 * 3.0); // second half of the super-block, scale 11
    }

    #[test]
    fn sizes_are_checked_against_the_shape() {
        assert!(QMatrix::new(Format::Q8_0, 2, 32, vec![0; 67]).is_err());
        assert!(QMatrix::new(Format::Q5_0, 1, 48, vec![0; 33]).is_err());
        assert!(QMatrix::new(Format::Q4K, 1, 128, vec![0; 72]).is_err());
        assert!(QMatrix::new(Format::Q8_0, usize::MAX, 64, vec![]).is_err());
    }
}

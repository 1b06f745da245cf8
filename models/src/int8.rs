//! Int8 matrix products for the encoder: weights quantized once per output row, activations
//! per block of 32 values of a token (one scale per token was measured: cosine similarities
//! moved by up to 0.013, against under 0.005 per block). The products of a block are summed in
//! 32-bit integers; the only floating-point work is one multiply-add per block and 16 rows, and
//! one scale per output. (The decoder's GGUF formats keep a scale per weight block as well and
//! pay a float multiply-add per block and row; an encoder's weights are ours to quantize.)
//!
//! Weights are packed for `vpdpbusd`: groups of 16 rows, and within a group, for each run of
//! four columns, the 16 rows' four bytes side by side. One instruction then multiplies four
//! columns of a token (broadcast) by 16 rows and adds into 16 lanes, one per row.
//!
//! Kernels, picked at run time: AVX-512 VNNI; AVX2 (the sign trick of `maddubs`, as ggml's);
//! portable loops elsewhere, which are also the reference the tests hold the others to.

use rayon::prelude::*;

/// Rows per packed group: the 32-bit lanes of a 512-bit register.
const GROUP: usize = 16;
/// Columns a lane reads per step.
const QUAD: usize = 4;
/// Columns that share an activation scale.
const BLOCK: usize = 32;
/// Tokens a kernel call carries in registers.
const TILE: usize = 8;

pub struct I8Matrix {
    rows: usize,
    cols: usize,
    /// Columns rounded up to whole blocks; padding holds zeros.
    kq: usize,
    /// `[group][quad][row in group][4]`.
    packed: Vec<i8>,
    /// Per row (padded to whole groups): the scale.
    scale: Vec<f32>,
    /// `[group][block][row in group]`: the sum of the row's values in the block, for the VNNI
    /// kernel, which reads activations as unsigned bytes `x + 128`.
    sums: Vec<i32>,
}

/// Tokens quantized for `I8Matrix::matmul`: `x[t][i] ≈ d[t][i / 32] · q[t][i]`, each row `kq`
/// long.
struct Acts {
    /// Held as 32-bit words, so a run of four is aligned for the kernels' broadcasts.
    words: Vec<i32>,
    d: Vec<f32>,
}

impl Acts {
    fn q(&self) -> &[i8] {
        bytemuck::cast_slice(&self.words)
    }
}

impl I8Matrix {
    /// `rows` × `cols` f32 weights, row after row: each row scaled so its largest magnitude
    /// maps to 127.
    pub fn quantize(rows: usize, cols: usize, w: &[f32]) -> I8Matrix {
        assert_eq!(w.len(), rows * cols, "weights of the wrong size");
        let kq = cols.div_ceil(BLOCK) * BLOCK;
        let kb = kq / BLOCK;
        let padded = rows.div_ceil(GROUP) * GROUP;
        let mut packed = vec![0i8; padded * kq];
        let mut scale = vec![0f32; padded];
        let mut sums = vec![0i32; padded * kb];
        for (r, row) in w.chunks_exact(cols).enumerate() {
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = amax / 127.0;
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            scale[r] = s;
            let (g, lane) = (r / GROUP, r % GROUP);
            for (c, v) in row.iter().enumerate() {
                let q = (v * inv).round().clamp(-127.0, 127.0) as i8;
                sums[(g * kb + c / BLOCK) * GROUP + lane] += i32::from(q);
                packed[((g * (kq / QUAD) + c / QUAD) * GROUP + lane) * QUAD + c % QUAD] = q;
            }
        }
        I8Matrix { rows, cols, kq, packed, scale, sums }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// One token (a decoder's step, where reading the weights is the whole cost): the rows are
    /// shared among the pool's threads instead.
    fn matvec(&self, acts: &Acts, bias: &[f32], out: &mut [f32]) {
        const ROWS: usize = GROUP * 64;
        let kb = self.kq / BLOCK;
        let (q, d) = (&acts.q()[..self.kq], &acts.d[..kb]);
        out.par_chunks_mut(ROWS).enumerate().for_each(|(task, out)| {
            let mut sums = [[0f32; GROUP]; 1];
            let first = task * ROWS;
            for g in first / GROUP..(first + out.len()).div_ceil(GROUP) {
                let weights = &self.packed[g * GROUP * self.kq..(g + 1) * GROUP * self.kq];
                let block_sums = &self.sums[g * GROUP * kb..(g + 1) * GROUP * kb];
                kernel::group(weights, block_sums, q, d, self.kq, &mut sums);
                for j in g * GROUP..((g + 1) * GROUP).min(first + out.len()) {
                    out[j - first] = self.scale[j] * sums[0][j - g * GROUP] + bias[j];
                }
            }
        });
    }

    /// `out[m × rows] = x[m × cols] · selfᵀ + bias`, on the rayon pool.
    pub fn matmul(&self, x: &[f32], m: usize, bias: &[f32], out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols);
        assert_eq!(out.len(), m * self.rows);
        assert_eq!(bias.len(), self.rows);
        let acts = self.quantize_acts(x, m);
        if m == 1 {
            return self.matvec(&acts, bias, out);
        }
        // Tasks of 64 tokens: each walks every row group, so a group's weights serve 64 tokens
        // from the core's cache.
        const TOKENS: usize = 64;
        out.par_chunks_mut(TOKENS * self.rows).enumerate().for_each(|(task, out)| {
            let first = task * TOKENS;
            let n = out.len() / self.rows;
            let kb = self.kq / BLOCK;
            let mut sums = [[0f32; GROUP]; TILE];
            for g in 0..self.scale.len() / GROUP {
                let weights = &self.packed[g * GROUP * self.kq..(g + 1) * GROUP * self.kq];
                let block_sums = &self.sums[g * GROUP * kb..(g + 1) * GROUP * kb];
                let mut t = 0;
                while t < n {
                    let tile = (n - t).min(TILE);
                    let tokens = first + t..first + t + tile;
                    let q = &acts.q()[tokens.start * self.kq..tokens.end * self.kq];
                    let d = &acts.d[tokens.start * kb..tokens.end * kb];
                    kernel::group(weights, block_sums, q, d, self.kq, &mut sums[..tile]);
                    for (i, s) in sums[..tile].iter().enumerate() {
                        let row = &mut out[(t + i) * self.rows..(t + i + 1) * self.rows];
                        let end = ((g + 1) * GROUP).min(self.rows);
                        for (j, o) in (g * GROUP..end).zip(&mut row[g * GROUP..end]) {
                            *o = self.scale[j] * s[j - g * GROUP] + bias[j];
                        }
                    }
                    t += tile;
                }
            }
        });
    }

    fn quantize_acts(&self, x: &[f32], m: usize) -> Acts {
        let kb = self.kq / BLOCK;
        let mut words = vec![0i32; m * self.kq / QUAD];
        let q: &mut [i8] = bytemuck::cast_slice_mut(&mut words);
        let mut d = vec![0f32; m * kb];
        q.par_chunks_mut(self.kq).zip(d.par_chunks_mut(kb)).zip(x.par_chunks(self.cols)).for_each(
            |((q, d), x)| {
                for ((q, d), x) in q.chunks_mut(BLOCK).zip(d).zip(x.chunks(BLOCK)) {
                    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                    *d = amax / 127.0;
                    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
                    for (q, v) in q.iter_mut().zip(x) {
                        *q = (v * inv).round() as i8;
                    }
                }
            },
        );
        Acts { words, d }
    }
}

#[allow(unsafe_code)]
mod kernel {
    use super::{GROUP, portable};

    #[cfg(target_arch = "x86_64")]
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Isa {
        Avx512Vnni,
        Avx2,
        Portable,
    }

    #[cfg(target_arch = "x86_64")]
    pub fn isa() -> Isa {
        static HAS: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
            {
                Isa::Avx512Vnni
            } else if is_x86_feature_detected!("avx2") {
                Isa::Avx2
            } else {
                Isa::Portable
            }
        })
    }

    /// One group of 16 rows against up to `TILE` tokens: `out[t][lane]` gets the dot product
    /// of token `t` with row `lane`, before the row's scale.
    pub fn group(w: &[i8], sums: &[i32], q: &[i8], d: &[f32], kq: usize, out: &mut [[f32; GROUP]]) {
        #[cfg(target_arch = "x86_64")]
        match isa() {
            // SAFETY: the CPU was just found to have AVX-512 F, BW and VNNI.
            Isa::Avx512Vnni => return unsafe { super::avx512::group(w, sums, q, d, kq, out) },
            // SAFETY: the CPU was just found to have AVX2 (FMA comes with every such server CPU,
            // and the binary is built for x86-64-v3).
            Isa::Avx2 => return unsafe { super::avx2::group(w, q, d, kq, out) },
            Isa::Portable => {}
        }
        let _ = sums;
        portable::group(w, q, d, kq, out)
    }
}

mod portable {
    use super::{BLOCK, GROUP, QUAD};

    pub fn group(w: &[i8], q: &[i8], d: &[f32], kq: usize, out: &mut [[f32; GROUP]]) {
        let kb = kq / BLOCK;
        for (t, o) in out.iter_mut().enumerate() {
            *o = [0.0; GROUP];
            for b in 0..kb {
                let mut sums = [0i32; GROUP];
                for quad in b * BLOCK / QUAD..(b + 1) * BLOCK / QUAD {
                    let x = &q[t * kq + quad * QUAD..][..QUAD];
                    let w = &w[quad * GROUP * QUAD..(quad + 1) * GROUP * QUAD];
                    for (s, w) in sums.iter_mut().zip(w.chunks_exact(QUAD)) {
                        *s += w.iter().zip(x).map(|(&w, &x)| i32::from(w) * i32::from(x)).sum::<i32>();
                    }
                }
                for (o, s) in o.iter_mut().zip(sums) {
                    *o += d[t * kb + b] * s as f32;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{BLOCK, GROUP, QUAD, TILE};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub fn group(w: &[i8], sums: &[i32], q: &[i8], d: &[f32], kq: usize, out: &mut [[f32; GROUP]]) {
        assert!(out.len() <= TILE && q.len() == out.len() * kq && w.len() == kq * GROUP);
        assert!(sums.len() == kq / BLOCK * GROUP && d.len() == out.len() * (kq / BLOCK));
        if out.len() == TILE {
            tile::<TILE>(w, sums, q, d, kq, out);
        } else {
            let kb = kq / BLOCK;
            for (t, o) in out.chunks_exact_mut(1).enumerate() {
                tile::<1>(w, sums, &q[t * kq..(t + 1) * kq], &d[t * kb..(t + 1) * kb], kq, o);
            }
        }
    }

    /// `T` tokens at once, their sums held in registers for the whole row. Activations are read
    /// as unsigned bytes (`x + 128`, what `vpdpbusd` multiplies); the extra `128 · Σ w` of each
    /// block is taken off before its scale. Blocks are taken as fixed-size arrays, so the inner
    /// loops index within known bounds.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn tile<const T: usize>(
        w: &[i8],
        sums: &[i32],
        q: &[i8],
        d: &[f32],
        kq: usize,
        out: &mut [[f32; GROUP]],
    ) {
        let q: &[i32] = bytemuck::cast_slice(q);
        const QUADS: usize = BLOCK / QUAD;
        let kb = kq / BLOCK;
        let mut acc = [_mm512_setzero_ps(); T];
        let flip = _mm512_set1_epi8(0x80u8 as i8);
        let weights = w.chunks_exact(GROUP * BLOCK);
        let fixes = sums.chunks_exact(GROUP);
        for (b, (wb, fix)) in weights.zip(fixes).enumerate() {
            let wb: &[i8; GROUP * BLOCK] = wb.try_into().unwrap_or(&[0; GROUP * BLOCK]);
            // Four activations a lane: one 32-bit broadcast per step.
            let xs: [&[i32; QUADS]; T] = std::array::from_fn(|t| {
                let at = (t * kq + b * BLOCK) / QUAD;
                q[at..at + QUADS].try_into().unwrap_or(&[0; QUADS])
            });
            let mut block = [_mm512_setzero_si512(); T];
            for quad in 0..QUADS {
                let wq: [i8; 64] = wb[quad * 64..quad * 64 + 64].try_into().unwrap_or([0; 64]);
                let wv: __m512i = bytemuck::cast(wq);
                for (s, x) in block.iter_mut().zip(&xs) {
                    let xu = _mm512_xor_si512(_mm512_set1_epi32(x[quad]), flip);
                    *s = _mm512_dpbusd_epi32(*s, xu, wv);
                }
            }
            let fix: [i32; GROUP] = fix.try_into().unwrap_or([0; GROUP]);
            let fix = _mm512_slli_epi32(bytemuck::cast(fix), 7);
            for (t, (acc, s)) in acc.iter_mut().zip(block).enumerate() {
                let s = _mm512_cvtepi32_ps(_mm512_sub_epi32(s, fix));
                *acc = _mm512_fmadd_ps(s, _mm512_set1_ps(d[t * kb + b]), *acc);
            }
        }
        for (o, acc) in out.iter_mut().zip(acc) {
            *o = bytemuck::cast(acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BLOCK, GROUP, QUAD, TILE};
    use std::arch::x86_64::*;

    /// `maddubs` multiplies unsigned by signed bytes and adds pairs into 16 bits; moving the
    /// weight's sign onto the activation keeps both within ±127, so a pair never saturates.
    #[target_feature(enable = "avx2,fma")]
    pub fn group(w: &[i8], q: &[i8], d: &[f32], kq: usize, out: &mut [[f32; GROUP]]) {
        let kb = kq / BLOCK;
        assert!(out.len() <= TILE && q.len() == out.len() * kq && w.len() == kq * GROUP);
        assert!(d.len() == out.len() * kb);
        let ones = _mm256_set1_epi16(1);
        for (t, o) in out.iter_mut().enumerate() {
            let mut acc = [_mm256_setzero_ps(); 2];
            for b in 0..kb {
                let mut block = [_mm256_setzero_si256(); 2];
                for quad in b * BLOCK / QUAD..(b + 1) * BLOCK / QUAD {
                    let at = t * kq + quad * QUAD;
                    let x: [u8; 4] = bytemuck::cast([q[at], q[at + 1], q[at + 2], q[at + 3]]);
                    let x = _mm256_set1_epi32(i32::from_le_bytes(x));
                    for (h, s) in block.iter_mut().enumerate() {
                        let at = quad * 64 + h * 32;
                        let wv: __m256i = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&w[at..at + 32]));
                        let p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(x, wv));
                        *s = _mm256_add_epi32(*s, _mm256_madd_epi16(p, ones));
                    }
                }
                let scale = _mm256_set1_ps(d[t * kb + b]);
                for (acc, s) in acc.iter_mut().zip(block) {
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, *acc);
                }
            }
            let halves: [[f32; 8]; 2] = [bytemuck::cast(acc[0]), bytemuck::cast(acc[1])];
            o[..8].copy_from_slice(&halves[0]);
            o[8..].copy_from_slice(&halves[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in ±0.5.
    fn noise(n: usize, seed: u32) -> Vec<f32> {
        crate::quant::tests::noise(n, seed).iter().map(|&b| (f32::from(b) - 127.5) / 255.0).collect()
    }

    #[test]
    fn every_kernel_gives_the_portable_sums() {
        // Odd sizes: rows past a whole group, columns past a whole quad, a partial tile.
        let (rows, cols, m) = (37, 70, 11);
        let w = I8Matrix::quantize(rows, cols, &noise(rows * cols, 1));
        let acts = w.quantize_acts(&noise(m * cols, 2), m);
        let kb = w.kq / BLOCK;
        let close = |got: &[[f32; GROUP]], want: &[[f32; GROUP]], what: &str| {
            for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
                assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{what}: {g} against {w}");
            }
        };
        for g in 0..w.scale.len() / GROUP {
            let weights = &w.packed[g * GROUP * w.kq..(g + 1) * GROUP * w.kq];
            let sums = &w.sums[g * GROUP * kb..(g + 1) * GROUP * kb];
            for tile in [1, 3, TILE] {
                let (q, d) = (&acts.q()[..tile * w.kq], &acts.d[..tile * kb]);
                let mut want = vec![[0.0; GROUP]; tile];
                portable::group(weights, q, d, w.kq, &mut want);
                let mut got = vec![[0.0; GROUP]; tile];
                kernel::group(weights, sums, q, d, w.kq, &mut got);
                close(&got, &want, &format!("group {g}, {tile} tokens"));
                #[cfg(target_arch = "x86_64")]
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: AVX2 and FMA are present.
                    #[allow(unsafe_code)]
                    unsafe {
                        avx2::group(weights, q, d, w.kq, &mut got)
                    };
                    close(&got, &want, &format!("AVX2, group {g}, {tile} tokens"));
                }
            }
        }
    }

    /// One token takes the row-parallel path: it must give what the same token gives among
    /// others, for rows past a whole group and past a whole task.
    #[test]
    fn one_token_gives_what_it_gives_among_others() {
        let (rows, cols) = (GROUP * 64 + 21, 70);
        let w = I8Matrix::quantize(rows, cols, &noise(rows * cols, 5));
        let bias = noise(rows, 6);
        let x = noise(3 * cols, 7);
        let mut alone = vec![0f32; rows];
        w.matmul(&x[cols..2 * cols], 1, &bias, &mut alone);
        let mut among = vec![0f32; 3 * rows];
        w.matmul(&x, 3, &bias, &mut among);
        assert_eq!(alone, among[rows..2 * rows]);
    }

    #[test]
    fn products_are_close_to_f32() {
        let (rows, cols, m) = (40, 384, 70);
        let (wf, xf) = (noise(rows * cols, 3), noise(m * cols, 4));
        let bias: Vec<f32> = (0..rows).map(|r| r as f32 / 10.0).collect();
        let w = I8Matrix::quantize(rows, cols, &wf);
        let mut out = vec![0f32; m * rows];
        w.matmul(&xf, m, &bias, &mut out);
        for t in 0..m {
            for r in 0..rows {
                let exact: f32 = xf[t * cols..(t + 1) * cols]
                    .iter()
                    .zip(&wf[r * cols..(r + 1) * cols])
                    .map(|(a, b)| a * b)
                    .sum();
                let got = out[t * rows + r] - bias[r];
                // Two roundings of at most half a step each, over 384 products of values in ±0.5.
                assert!((got - exact).abs() < 0.05, "token {t} row {r}: {got} against {exact}");
            }
        }
    }
}

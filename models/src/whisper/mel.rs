//! Whisper's input: 80 log-mel bands of 25 ms frames every 10 ms at 16 kHz, computed as
//! OpenAI's `audio.py` does (frames centred on their hop, the signal reflected at its start; a
//! periodic Hann window; power spectra through Slaney mel filters; log10, floored 8 below the
//! loudest, scaled). The filter bank is computed here rather than shipped as a blob. The
//! transforms are matrix products, so the CPU's matrix kernels do the work.

use candle_core::{Device, Result, Tensor};
use candle_transformers::models::whisper::{HOP_LENGTH, N_FFT, SAMPLE_RATE};

/// Frames transformed per matrix product: bounded memory whatever the audio's length.
const FRAMES_PER_PASS: usize = 3000;

/// The log-mel spectrogram of `samples`, (mels, frames) row-major, one frame per hop.
pub fn log_mel(samples: &[f32], filters: &[f32], mels: usize) -> Result<Tensor> {
    let device = Device::Cpu;
    let bins = N_FFT / 2 + 1;
    let pad = N_FFT / 2;
    // Reflected at both ends as torch.stft(center=True) does; a signal too short to reflect
    // is padded with silence.
    let mut padded = Vec::with_capacity(samples.len() + 2 * pad);
    if samples.len() > pad {
        padded.extend((1..=pad).rev().map(|i| samples[i]));
        padded.extend_from_slice(samples);
        padded.extend((0..pad).map(|i| samples[samples.len() - 2 - i]));
    } else {
        padded.resize(pad, 0.0);
        padded.extend_from_slice(samples);
        padded.resize(samples.len() + 2 * pad, 0.0);
    }
    // Whisper drops the last frame torch.stft makes.
    let frames = samples.len() / HOP_LENGTH;
    let basis = dft_basis(&device)?;
    let filters = Tensor::from_slice(filters, (mels, bins), &device)?.t()?.contiguous()?;
    let mut passes = Vec::new();
    for first in (0..frames).step_by(FRAMES_PER_PASS) {
        let n = FRAMES_PER_PASS.min(frames - first);
        let mut cells = Vec::with_capacity(n * N_FFT);
        for f in first..first + n {
            cells.extend_from_slice(&padded[f * HOP_LENGTH..f * HOP_LENGTH + N_FFT]);
        }
        let spectrum = Tensor::from_vec(cells, (n, N_FFT), &device)?.matmul(&basis)?;
        let (re, im) = (spectrum.narrow(1, 0, bins)?, spectrum.narrow(1, bins, bins)?);
        let power = (re.sqr()? + im.sqr()?)?;
        passes.push(power.matmul(&filters)?);
    }
    if passes.is_empty() {
        return Tensor::zeros((mels, 0), candle_core::DType::F32, &device);
    }
    let mel = Tensor::cat(&passes, 0)?.t()?.contiguous()?;
    let log = mel.maximum(1e-10f32)?.log()?.affine(1.0 / std::f64::consts::LN_10, 0.0)?;
    let floor = log.max_all()?.to_scalar::<f32>()? - 8.0;
    (log.maximum(floor)? + 4.0)? / 4.0
}

/// The real DFT with the window folded in: (N_FFT, 2 × bins), cosines then negated sines.
fn dft_basis(device: &Device) -> Result<Tensor> {
    let bins = N_FFT / 2 + 1;
    let n = N_FFT as f64;
    let mut cells = vec![0f32; N_FFT * 2 * bins];
    for t in 0..N_FFT {
        // Hann, periodic (torch.hann_window's default).
        let w = 0.5 * (1.0 - (2.0 * std::f64::consts::PI * t as f64 / n).cos());
        for k in 0..bins {
            let angle = 2.0 * std::f64::consts::PI * (k * t % N_FFT) as f64 / n;
            cells[t * 2 * bins + k] = (w * angle.cos()) as f32;
            cells[t * 2 * bins + bins + k] = (-w * angle.sin()) as f32;
        }
    }
    Tensor::from_vec(cells, (N_FFT, 2 * bins), device)
}

/// The mel filter bank, `n_mels` rows of `N_FFT / 2 + 1` weights, row-major, as
/// `librosa.filters.mel(sr=16000, n_fft=400, n_mels, htk=False, norm="slaney")`.
pub fn filters(n_mels: usize) -> Vec<f32> {
    let bins = N_FFT / 2 + 1;
    let nyquist = SAMPLE_RATE as f64 / 2.0;
    let (low, high) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    let edges: Vec<f64> =
        (0..n_mels + 2).map(|i| mel_to_hz(low + (high - low) * i as f64 / (n_mels + 1) as f64)).collect();
    let mut out = vec![0f32; n_mels * bins];
    for m in 0..n_mels {
        let (left, centre, right) = (edges[m], edges[m + 1], edges[m + 2]);
        // Slaney's normalisation: each filter has the same area.
        let norm = 2.0 / (right - left);
        for k in 0..bins {
            let f = k as f64 * SAMPLE_RATE as f64 / N_FFT as f64;
            let rising = (f - left) / (centre - left);
            let falling = (right - f) / (right - centre);
            out[m * bins + k] = (rising.min(falling).max(0.0) * norm) as f32;
        }
    }
    out
}

// Slaney's mel scale: linear below 1 kHz, logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(f: f64) -> f64 {
    if f < MIN_LOG_HZ { f / F_SP } else { MIN_LOG_MEL + (f / MIN_LOG_HZ).ln() / log_step() }
}

fn mel_to_hz(m: f64) -> f64 {
    if m < MIN_LOG_MEL { m * F_SP } else { MIN_LOG_HZ * (log_step() * (m - MIN_LOG_MEL)).exp() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1 kHz tone lands in the band whose filter peaks nearest 1 kHz, with Whisper's scaling:
    /// the loudest cell is (log10(power) + 4) / 4 and nothing is below it by more than 2.
    #[test]
    fn a_tone_is_heard_in_its_band() {
        let tone: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16_000.0).sin() as f32)
            .collect();
        let mel = log_mel(&tone, &filters(80), 80).unwrap();
        assert_eq!(mel.dims(), [80, 100]);
        let frame: Vec<f32> = mel.narrow(1, 50, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let loudest = frame.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        let peaks: Vec<usize> = (0..80)
            .map(|m| {
                (0..201).max_by(|a, b| filters(80)[m * 201 + a].total_cmp(&filters(80)[m * 201 + b])).unwrap()
            })
            .collect();
        // 1 kHz is bin 25 (40 Hz per bin).
        assert!(peaks[loudest].abs_diff(25) <= 1, "band {loudest} peaks at bin {}", peaks[loudest]);
        let all: Vec<f32> = mel.flatten_all().unwrap().to_vec1().unwrap();
        let (max, min) = all.iter().fold((f32::MIN, f32::MAX), |(a, b), v| (a.max(*v), b.min(*v)));
        assert!((max - min - 2.0).abs() < 1e-4, "{max} {min}");
    }

    #[test]
    fn the_mel_scale_round_trips_and_bends_at_one_kilohertz() {
        for f in [0.0, 440.0, 1000.0, 3000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-9, "{f}");
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
    }

    /// Values from Whisper's own `mel_filters.npz` (80 bands, openai-whisper 20250625): the
    /// first band's peak, and the peak and start of a band in the logarithmic range. (Compared
    /// whole once, all 16,080 weights within 1e-7.)
    #[test]
    fn the_filters_match_whispers() {
        let f = filters(80);
        let row = |m: usize| &f[m * 201..(m + 1) * 201];
        assert_eq!(f.len(), 80 * 201);
        assert!((row(0)[1] - 0.024_862_9).abs() < 1e-6, "{}", row(0)[1]);
        assert_eq!((row(0)[0], row(0)[2]), (0.0, 0.0));
        let peak = row(60).iter().cloned().fold(0.0f32, f32::max);
        assert!((peak - 0.006_591_09).abs() < 1e-7, "{peak}");
        assert_eq!(row(60).iter().position(|w| *w > 0.0), Some(90));
        // Every band has weight somewhere, and none below 0 Hz or above Nyquist.
        assert!((0..80).all(|m| row(m).iter().any(|w| *w > 0.0)));
    }
}

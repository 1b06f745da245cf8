//! Audio files to the samples speech models hear: mono, 16 kHz, f32. Decoding is symphonia's
//! (pure Rust: WAV, FLAC, MP3, Ogg Vorbis, MP4/M4A with AAC, WebM/Matroska with those codecs);
//! Opus has no pure-Rust decoder there, so Opus files are refused by name (the web UI records
//! WAV for that reason). Resampling is a windowed-sinc polyphase filter.

use std::io::Cursor;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, CODEC_TYPE_OPUS, DecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

pub const SPEECH_RATE: u32 = 16_000;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AudioError {
    #[error("not an audio file this server reads ({0}); send WAV, FLAC, MP3, Ogg Vorbis, M4A/AAC or WebM")]
    Unsupported(String),
    #[error("the audio file is damaged: {0}")]
    Corrupt(String),
    #[error("the audio is longer than {limit_secs} seconds, the most this server transcribes at once")]
    TooLong { limit_secs: u64 },
    #[error("the audio file holds no sound")]
    Empty,
}

/// Whether `bytes` start as one of the audio containers [`decode`] reads (or Opus, which it
/// refuses by name): for telling recordings from documents before choosing how to read them.
pub fn looks_like_audio(bytes: &[u8]) -> bool {
    let at = |range: std::ops::Range<usize>| bytes.get(range).unwrap_or_default();
    let mp3_frame = match (bytes.first(), bytes.get(1)) {
        // A frame sync with layer II or III (layer I's bits also open a UTF-16 text file).
        (Some(0xFF), Some(b)) => b & 0xE0 == 0xE0 && matches!((b >> 1) & 3, 1 | 2),
        _ => false,
    };
    (at(0..4) == b"RIFF" && at(8..12) == b"WAVE")
        || at(0..4) == b"fLaC"
        || at(0..3) == b"ID3"
        || mp3_frame
        || at(0..4) == b"OggS"
        || at(4..8) == b"ftyp"
        || at(0..4) == [0x1A, 0x45, 0xDF, 0xA3]
}

/// Decodes a whole audio file to mono 16 kHz samples, refusing more than `limit_secs` seconds
/// (counted as it decodes, so a long file is refused without decoding all of it).
/// The file's name (`call.m4a`), where known, helps recognise the format by its extension.
pub fn decode(bytes: Vec<u8>, name: Option<&str>, limit_secs: u64) -> Result<Vec<f32>, AudioError> {
    let mut hint = Hint::new();
    if let Some(ext) = name.and_then(|n| std::path::Path::new(n).extension()) {
        hint.with_extension(&ext.to_string_lossy().to_ascii_lowercase());
    }
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let probed = symphonia::default::get_probe()
        .format(&hint, source, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(|e| AudioError::Unsupported(reason(&e)))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::Unsupported("it has no audio track".into()))?;
    if track.codec_params.codec == CODEC_TYPE_OPUS {
        return Err(AudioError::Unsupported("Opus audio".into()));
    }
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| AudioError::Unsupported(reason(&e)))?;
    let mut rate = track.codec_params.sample_rate;
    let mut mono = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => return Err(AudioError::Corrupt(reason(&e))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A damaged packet is skipped, as players do; the rest still transcribes.
            Err(SymError::DecodeError(_)) => continue,
            Err(e) => return Err(AudioError::Corrupt(reason(&e))),
        };
        let spec = *decoded.spec();
        rate = Some(spec.rate);
        let channels = spec.channels.count().max(1);
        let buf = match &mut buffer {
            Some(b) if b.capacity() >= decoded.capacity() * channels => b,
            _ => buffer.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        mono.extend(buf.samples().chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32));
        if mono.len() as u64 > limit_secs.saturating_mul(u64::from(spec.rate)) {
            return Err(AudioError::TooLong { limit_secs });
        }
    }
    let rate =
        rate.filter(|r| *r > 0).ok_or_else(|| AudioError::Corrupt("it names no sample rate".into()))?;
    if mono.is_empty() {
        return Err(AudioError::Empty);
    }
    Ok(resample(&mono, rate, SPEECH_RATE))
}

fn reason(e: &SymError) -> String {
    match e {
        SymError::Unsupported(what) => format!("unsupported {what}"),
        other => other.to_string(),
    }
}

/// Zero crossings of the sinc on each side of a tap, at the output's rate.
const ZERO_CROSSINGS: f64 = 16.0;
/// Distinct fractional positions a kernel is computed for; rate pairs needing more (rare,
/// e.g. 11,025 Hz) round to the nearest, an error far below 16-bit audio's.
const MAX_PHASES: u64 = 1024;

/// Resamples with a Blackman-windowed sinc low-pass at the lower Nyquist frequency.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let g = gcd(u64::from(from), u64::from(to));
    let (up, down) = (u64::from(to) / g, u64::from(from) / g);
    let phases = up.min(MAX_PHASES);
    // Below the lower of the two Nyquist frequencies, with a little room for the transition.
    let cutoff = (f64::from(to) / f64::from(from)).min(1.0) * 0.97;
    let half = (ZERO_CROSSINGS / cutoff).ceil() as i64;
    let taps = (2 * half) as usize;
    // kernels[p][j]: the weight of input sample base - half + 1 + j for fractional offset p.
    let kernels: Vec<Vec<f32>> = (0..phases)
        .map(|p| {
            let frac = p as f64 / phases as f64;
            let weights: Vec<f64> = (0..taps)
                .map(|j| {
                    let x = (j as i64 - half + 1) as f64 - frac;
                    cutoff * sinc(cutoff * x) * blackman(x / (half as f64 + 1.0))
                })
                .collect();
            // Unity gain at DC whatever the phase.
            let sum: f64 = weights.iter().sum();
            weights.iter().map(|w| (w / sum) as f32).collect()
        })
        .collect();
    let out_len = (input.len() as u64 * up).div_ceil(down) as usize;
    let sample =
        |i: i64| -> f32 { usize::try_from(i).ok().and_then(|i| input.get(i)).copied().unwrap_or(0.0) };
    (0..out_len as u64)
        .map(|n| {
            let position = n * down;
            let (mut base, rest) = ((position / up) as i64, position % up);
            let mut phase = (rest * phases + up / 2) / up;
            if phase == phases {
                (base, phase) = (base + 1, 0);
            }
            let kernel = &kernels[phase as usize];
            let first = base - half + 1;
            if first >= 0 && (first as usize + taps) <= input.len() {
                let window = &input[first as usize..first as usize + taps];
                window.iter().zip(kernel).map(|(x, w)| x * w).sum()
            } else {
                kernel.iter().enumerate().map(|(j, w)| sample(first + j as i64) * w).sum()
            }
        })
        .collect()
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) }
}

/// Blackman window over -1..1.
fn blackman(t: f64) -> f64 {
    if t.abs() >= 1.0 {
        return 0.0;
    }
    let a = std::f64::consts::PI * (t + 1.0);
    0.42 - 0.5 * a.cos() + 0.08 * (2.0 * a).cos()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, secs: f64) -> Vec<f32> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32 * 0.5)
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// The middle of the signal, away from the edges a filter has to guess at.
    fn middle(x: &[f32]) -> &[f32] {
        &x[x.len() / 4..3 * x.len() / 4]
    }

    #[test]
    fn speech_frequencies_pass_and_what_16_khz_cannot_hold_is_removed() {
        for from in [44_100, 48_000, 22_050, 8_000, 11_025] {
            let passed = resample(&tone(440.0, from, 1.0), from, SPEECH_RATE);
            assert_eq!(passed.len(), 16_000, "{from}");
            // A 440 Hz tone at amplitude 0.5 keeps its level (rms 0.354) and its shape.
            assert!((rms(middle(&passed)) - 0.3536).abs() < 0.005, "{from}: {}", rms(middle(&passed)));
            let expected = tone(440.0, SPEECH_RATE, 1.0);
            let err: Vec<f32> = middle(&passed).iter().zip(middle(&expected)).map(|(a, b)| a - b).collect();
            assert!(rms(&err) < 0.01, "{from}: error {}", rms(&err));
        }
        // 12 kHz is above the new Nyquist frequency (8 kHz): it must not fold back as 4 kHz.
        let folded = resample(&tone(12_000.0, 48_000, 1.0), 48_000, SPEECH_RATE);
        assert!(rms(middle(&folded)) < 0.005, "{}", rms(middle(&folded)));
    }

    /// A WAV file as `espeak-ng -w` or a browser recorder writes one.
    fn wav(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend(b"RIFF");
        out.extend((36 + data.len() as u32).to_le_bytes());
        out.extend(b"WAVEfmt ");
        out.extend(16u32.to_le_bytes());
        out.extend(1u16.to_le_bytes());
        out.extend(channels.to_le_bytes());
        out.extend(rate.to_le_bytes());
        out.extend((rate * 2 * u32::from(channels)).to_le_bytes());
        out.extend((2 * channels).to_le_bytes());
        out.extend(16u16.to_le_bytes());
        out.extend(b"data");
        out.extend((data.len() as u32).to_le_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn a_stereo_wav_becomes_mono_16_khz() {
        let left: Vec<i16> = tone(440.0, 48_000, 0.5).iter().map(|s| (s * 32767.0) as i16).collect();
        let interleaved: Vec<i16> = left.iter().flat_map(|s| [*s, *s]).collect();
        let samples = decode(wav(&interleaved, 48_000, 2), Some("tone.wav"), 60).unwrap();
        assert_eq!(samples.len(), 8_000);
        assert!((rms(middle(&samples)) - 0.3536).abs() < 0.005);
    }

    #[test]
    fn recordings_are_told_from_documents_by_their_first_bytes() {
        assert!(looks_like_audio(&wav(&[0; 8], 16_000, 1)));
        for audio in
            [&b"fLaC\0\0\0\x22"[..], b"ID3\x04\0", b"\xFF\xFB\x90\x64", b"OggS\0\x02", b"\0\0\0\x20ftypM4A "]
        {
            assert!(looks_like_audio(audio), "{audio:?}");
        }
        for document in [&b"%PDF-1.7"[..], b"PK\x03\x04", b"\xFF\xFEh\0i\0", b"# Notes", b"", b"\xFF"] {
            assert!(!looks_like_audio(document), "{document:?}");
        }
    }

    #[test]
    fn bad_long_and_empty_files_are_refused_by_name() {
        let text = decode(b"these are meeting notes, not audio".to_vec(), Some("notes.mp3"), 60).unwrap_err();
        assert!(matches!(text, AudioError::Unsupported(_)), "{text}");
        let long = wav(&vec![0i16; 16_000 * 3], 16_000, 1);
        assert_eq!(decode(long, None, 2).unwrap_err(), AudioError::TooLong { limit_secs: 2 });
        assert_eq!(decode(wav(&[], 16_000, 1), None, 60).unwrap_err(), AudioError::Empty);
    }
}

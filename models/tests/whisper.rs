//! Whisper base from its CTranslate2 conversion (fetched by `packaging/fetch-models whisper`
//! into `AYUSH_TEST_MODELS_DIR`): every weight candle's Whisper model asks for is there in the
//! right shape, and the model behaves as Whisper does on silence (it says there is no speech),
//! which it would not with a projection split or named wrongly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_models::ct2::Ct2Model;
use ayush_models::whisper;
use candle_core::{D, DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::model::Whisper;
use std::path::PathBuf;

fn whisper_base() -> PathBuf {
    let dir = std::env::var_os("AYUSH_TEST_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/ayush-models")
        })
        .join("whisper-base");
    assert!(
        dir.join("model.bin").is_file(),
        "{} is missing: run packaging/fetch-models whisper",
        dir.display()
    );
    dir
}

// Whisper's special tokens (multilingual vocabulary).
const START_OF_TRANSCRIPT: u32 = 50258;
const NO_SPEECH: u32 = 50362;

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models whisper")]
fn whisper_base_loads_from_ctranslate2_and_hears_no_speech_in_silence() {
    let cpu = Device::Cpu;
    let file = Ct2Model::read(&whisper_base().join("model.bin")).unwrap();
    assert_eq!((file.spec.as_str(), file.revision), ("WhisperSpec", 3));
    let weights = whisper::from_ct2(&file, &cpu).unwrap();
    let c = &weights.config;
    assert_eq!(
        (
            c.num_mel_bins,
            c.d_model,
            c.encoder_layers,
            c.decoder_layers,
            c.encoder_attention_heads,
            c.vocab_size
        ),
        (80, 512, 6, 6, 8, 51865)
    );
    let config = weights.config.clone();
    let vb = VarBuilder::from_tensors(weights.tensors, DType::F32, &cpu);
    let mut model = Whisper::load(&vb, config).unwrap();

    // 30 s of silence as Whisper's normalised log-mel sees it: (log10(1e-10) clamped to the
    // maximum less 8, plus 4) / 4 = -1.5 in every cell.
    let mel = Tensor::full(-1.5f32, (1, 80, 3000), &cpu).unwrap();
    let audio = model.encoder.forward(&mel, true).unwrap();
    assert_eq!(audio.dims(), [1, 1500, 512]);
    let tokens = Tensor::new(&[[START_OF_TRANSCRIPT]], &cpu).unwrap();
    let hidden = model.decoder.forward(&tokens, &audio, true).unwrap();
    let logits = model.decoder.final_linear(&hidden.i((.., 0..1)).unwrap()).unwrap().i((0, 0)).unwrap();
    let probs = candle_nn::ops::softmax(&logits, D::Minus1).unwrap().to_vec1::<f32>().unwrap();
    let no_speech = probs[NO_SPEECH as usize];
    eprintln!("P(no speech | silence) = {no_speech}");
    assert!(no_speech > 0.5, "P(no speech | silence) = {no_speech}");
}

//! Local speech to text with OpenAI's Whisper on candle, from a CTranslate2 conversion of its
//! weights (the format Whisper models are commonly distributed in for CPUs).
//!
//! - `weights`: the CTranslate2 file's tensors, split and named for the model;
//! - `mel`: the log-mel spectrogram Whisper hears;
//! - `model`: the encoder and a decoder with caches;
//! - `transcribe`: 30-second windows, timestamps, language detection, fallbacks;
//! - `engine`: a transcriber on its own thread, behind a queue.

mod engine;
mod mel;
mod model;
mod transcribe;
mod weights;

pub use engine::TranscribeEngine;
pub use transcribe::{Options, Segment, Transcriber, Transcript, WhisperInfo};
pub use weights::{WhisperWeights, from_ct2};

#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    #[error("{0}")]
    Ct2(#[from] crate::ct2::Ct2Error),
    #[error("the Whisper model: {0}")]
    Model(String),
    /// Something the caller asked for that this model cannot do.
    #[error("{0}")]
    BadRequest(String),
}

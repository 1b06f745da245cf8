//! Speech to text with the local Whisper models in the catalog: who may use which model, the
//! limits on what is sent, quotas, and the usage record and audit event of each transcription.
//! `/v1/audio/transcriptions` and the chat's microphone adapt to it.

pub mod formats;

use crate::audit::{Actor, Outcome};
use crate::chat::complete;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::state::AppState;
use crate::usage;
use ayush_models::whisper::{Options, Transcript};
use serde_json::json;

/// What was sent to be transcribed.
pub struct Request {
    pub model: String,
    pub audio: Vec<u8>,
    /// The uploaded file's name, whose extension helps recognise the format.
    pub filename: Option<String>,
    pub options: Options,
}

/// A transcript, and the rate-limit headers the admission carried.
pub struct Heard {
    pub transcript: Transcript,
    pub headers: Vec<(&'static str, String)>,
}

/// The largest audio file accepted, in bytes (`transcription.max_file_mib`).
pub fn max_file_bytes(state: &AppState) -> usize {
    usize::try_from(state.config.transcription.max_file_mib << 20).unwrap_or(usize::MAX)
}

/// Transcribes `request` for `actor`; `source` names the caller in usage reports and the audit
/// event (`v1.transcriptions`: the API, and the chat's Dictate, which calls it).
pub async fn transcribe(
    state: &AppState,
    actor: &Actor,
    source: &'static str,
    request: Request,
) -> AppResult<Heard> {
    let Request { model, audio, filename, options } = request;
    if audio.is_empty() {
        return Err(AppError::validation("the audio file is empty"));
    }
    if audio.len() > max_file_bytes(state) {
        return Err(AppError::validation(format!(
            "the audio file is larger than {} MiB, the most this server accepts",
            state.config.transcription.max_file_mib
        )));
    }
    if let Some(t) = options.temperature.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(AppError::validation(format!("temperature {t} must be between 0 and 1")));
    }
    complete::usable_or_unknown(&state.chat(), actor, &model).await?;
    let engine = state.catalog.transcriber(&model).await.map_err(|e| match e.kind {
        ErrorKind::Validation => AppError::validation(format!(
            "{model} is not a transcription model; /v1/models lists the models you may use"
        )),
        _ => e,
    })?;
    if let Some(code) = &options.language
        && !engine.languages().iter().any(|l| l.eq_ignore_ascii_case(code.trim()))
    {
        return Err(AppError::validation(format!(
            "language {code:?} is not one {model} knows; give an ISO 639-1 code such as \"en\", or none to detect it"
        )));
    }
    let started = std::time::Instant::now();
    let asked = usage::Record::new(state.clock.now(), actor, source, &model);
    let admission = state.usage.admit(asked).await?;
    let limit_secs = state.config.transcription.max_audio_minutes * 60;
    let bytes = audio.len();
    let name = filename.clone();
    let decoded =
        tokio::task::spawn_blocking(move || ayush_models::audio::decode(audio, name.as_deref(), limit_secs))
            .await
            .map_err(AppError::internal)?
            .map_err(|e| AppError::validation(e.to_string()));
    let details = json!({"source": source, "model": model, "bytes": bytes, "file": filename, "language": options.language});
    let result = match decoded {
        Ok(samples) => engine.transcribe(samples, options).await.map_err(AppError::from),
        Err(e) => Err(e),
    };
    record(state, actor, source, &model, details, result.as_ref(), started).await;
    Ok(Heard { transcript: result?, headers: admission.headers.clone() })
}

/// The usage record and audit event of one transcription, in one transaction. Neither holds
/// what was said: the audit event names the file, its size and length, and the language.
async fn record(
    state: &AppState,
    actor: &Actor,
    source: &'static str,
    model: &str,
    mut details: serde_json::Value,
    result: Result<&Transcript, &AppError>,
    started: std::time::Instant,
) {
    let now = state.clock.now();
    let mut used = usage::Record {
        duration_ms: started.elapsed().as_millis() as i64,
        outcome: if result.is_ok() { usage::Outcome::Ok } else { usage::Outcome::Error },
        ..usage::Record::new(now, actor, source, model)
    };
    let outcome = match result {
        Ok(t) => {
            used.completion_tokens = t.segments.iter().map(|s| s.tokens.len() as i64).sum();
            details["seconds"] = json!((t.duration * 10.0).round() / 10.0);
            details["language"] = json!(t.language);
            Outcome::Success
        }
        Err(e) => {
            details["error"] = json!(e.message);
            Outcome::Failure
        }
    };
    let stored =
        usage::record_call(&state.store, now, used, actor.clone(), "audio.transcription", outcome, details)
            .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "cannot record a transcription");
    }
}

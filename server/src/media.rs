//! Speech and images from the providers that make them: who may use which model, what may be
//! asked, quotas, and the usage record and audit event of each request. `/v1/audio/speech`,
//! `/v1/images/generations`, the chat's Read aloud and its image answers adapt to it.
//!
//! Neither the text spoken nor the prompt drawn goes into the audit log (as a transcription's
//! words do not): the event names the model, the voice or size, and how much was made.

use crate::audit::{Actor, Outcome};
use crate::chat::complete;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::usage;
use ayush_models::provider::{Image, ImageRequest, Purpose, Remote, Speech, SpeechRequest};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// The longest text spoken in one request, in characters (OpenAI's limit).
pub const MAX_SPEECH_CHARS: usize = 4096;
/// The longest image prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 4000;
/// The most images one request may ask for.
pub const MAX_IMAGES: u32 = 10;

/// Images to be drawn by `model`; `size` is `WIDTHxHEIGHT` (or `auto`: 1024x1024).
pub struct DrawAsk {
    pub model: String,
    pub prompt: String,
    pub n: u32,
    pub size: Option<String>,
}

/// What was made, and the rate-limit headers the admission carried.
pub struct Made<T> {
    pub made: T,
    pub headers: Vec<(&'static str, String)>,
}

/// `1024x1024` as (1024, 1024); `auto` or nothing as the square every vendor draws.
pub fn parse_size(size: Option<&str>) -> AppResult<(u32, u32)> {
    let size = size.map(str::trim).filter(|s| !s.is_empty() && *s != "auto");
    let Some(size) = size else { return Ok((1024, 1024)) };
    let bad = || AppError::validation(format!("size {size:?}: write it as WIDTHxHEIGHT, such as 1024x1024"));
    let (w, h) = size.split_once('x').ok_or_else(bad)?;
    let (w, h): (u32, u32) = (w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?);
    if !(64..=4096).contains(&w) || !(64..=4096).contains(&h) {
        return Err(AppError::validation(format!("size {size:?}: each side must be from 64 to 4096 pixels")));
    }
    Ok((w, h))
}

/// A request checked for access and admitted under the actor's quotas, ready to be sent.
struct Admitted {
    remote: Arc<Remote>,
    /// The provider's own id for the model.
    upstream: String,
    started: Instant,
    headers: Vec<(&'static str, String)>,
}

/// Admits a request to the remote `model` (named as the catalog names it) for `purpose`: the
/// actor must be allowed to use it, it must be a model of that purpose, and the actor's quotas
/// must let one more request through. `source` names the caller in usage reports.
async fn admit(
    state: &AppState,
    actor: &Actor,
    source: &'static str,
    model: &str,
    purpose: Purpose,
) -> AppResult<Admitted> {
    complete::usable_or_unknown(&state.chat(), actor, model).await?;
    let not_it = || {
        AppError::validation(format!(
            "{model} is not {}; /v1/models lists the models you may use, and an admin lists a provider's {} models",
            purpose.a_model(),
            purpose.as_str()
        ))
    };
    let Some((provider, upstream)) = model.split_once('/') else { return Err(not_it()) };
    let (remote, record) = state.remotes.get(&state.store, provider).await?;
    if record.purpose_of(upstream) != Some(purpose) {
        return Err(not_it());
    }
    let admission = state.usage.admit(usage::Record::new(state.clock.now(), actor, source, model)).await?;
    Ok(Admitted {
        remote,
        upstream: upstream.to_string(),
        started: Instant::now(),
        headers: admission.headers.clone(),
    })
}

/// Speaks `ask.input` for `actor`, with `ask.model` named as the catalog names it
/// (`provider/model`); `source` names the caller in usage reports and the audit event.
pub async fn speak(
    state: &AppState,
    actor: &Actor,
    source: &'static str,
    mut ask: SpeechRequest,
) -> AppResult<Made<Speech>> {
    let characters = ask.input.chars().count();
    if ask.input.trim().is_empty() {
        return Err(AppError::validation("there is no text to speak (`input` is empty)"));
    }
    if characters > MAX_SPEECH_CHARS {
        return Err(AppError::validation(format!(
            "the text is {characters} characters long; at most {MAX_SPEECH_CHARS} are spoken at once"
        )));
    }
    let voice = ask.voice.trim().to_string();
    if voice.is_empty() || voice.len() > 128 || voice.chars().any(|c| c.is_control()) {
        return Err(AppError::validation("name a voice: 1 to 128 characters"));
    }
    if let Some(s) = ask.speed.filter(|s| !(0.25..=4.0).contains(s)) {
        return Err(AppError::validation(format!("speed {s} must be between 0.25 and 4")));
    }
    if ask.instructions.as_ref().is_some_and(|i| i.chars().count() > MAX_SPEECH_CHARS) {
        return Err(AppError::validation(format!("instructions are at most {MAX_SPEECH_CHARS} characters")));
    }
    let admitted = admit(state, actor, source, &ask.model, Purpose::Speech).await?;
    let model = std::mem::replace(&mut ask.model, admitted.upstream);
    ask.voice = voice.clone();
    let format = ask.format;
    let result = admitted.remote.speech(ask).await.map_err(AppError::from);
    let mut details = json!({
        "source": source, "voice": voice, "format": format.as_str(), "characters": characters,
    });
    let used =
        usage::Record { prompt_tokens: characters as i64, ..usage::Record::new(0, actor, source, &model) };
    if let Ok(s) = &result {
        details["bytes"] = json!(s.audio.len());
    }
    record(state, actor, "audio.speech", used, details, result.as_ref().err(), admitted.started).await;
    Ok(Made { made: result?, headers: admitted.headers })
}

/// A drawing asked for and done, not yet recorded.
struct Drawing {
    result: AppResult<Vec<Image>>,
    used: usage::Record,
    details: serde_json::Value,
    started: Instant,
    headers: Vec<(&'static str, String)>,
}

/// Checks `ask`, admits it under the actor's quotas and has the provider draw it.
async fn drawing(state: &AppState, actor: &Actor, source: &'static str, ask: DrawAsk) -> AppResult<Drawing> {
    let prompt = ask.prompt.trim().to_string();
    let characters = prompt.chars().count();
    if prompt.is_empty() {
        return Err(AppError::validation("there is nothing to draw (`prompt` is empty)"));
    }
    if characters > MAX_PROMPT_CHARS {
        return Err(AppError::validation(format!(
            "the prompt is {characters} characters long; at most {MAX_PROMPT_CHARS} are accepted"
        )));
    }
    if !(1..=MAX_IMAGES).contains(&ask.n) {
        return Err(AppError::validation(format!("n must be from 1 to {MAX_IMAGES}")));
    }
    let (width, height) = parse_size(ask.size.as_deref())?;
    let admitted = admit(state, actor, source, &ask.model, Purpose::Image).await?;
    let request = ImageRequest { model: admitted.upstream, prompt, n: ask.n, width, height };
    let result = admitted.remote.images(request).await.map_err(AppError::from);
    let mut details = json!({"source": source, "n": ask.n, "size": format!("{width}x{height}")});
    let mut used = usage::Record::new(0, actor, source, &ask.model);
    if let Ok(images) = &result {
        used.images = images.len() as i64;
        details["images"] = json!(images.len());
        details["bytes"] = json!(images.iter().map(|i| i.bytes.len()).sum::<usize>());
    }
    Ok(Drawing { result, used, details, started: admitted.started, headers: admitted.headers })
}

/// Draws `ask.n` images of `ask.prompt` for `actor` (`/v1/images/generations`).
pub async fn draw(
    state: &AppState,
    actor: &Actor,
    source: &'static str,
    ask: DrawAsk,
) -> AppResult<Made<Vec<Image>>> {
    let d = drawing(state, actor, source, ask).await?;
    record(state, actor, "image.generation", d.used, d.details, d.result.as_ref().err(), d.started).await;
    Ok(Made { made: d.result?, headers: d.headers })
}

/// Whether `model` is a provider's image model (which the chat draws with instead of chatting).
pub async fn is_image_model(state: &AppState, model: &str) -> AppResult<bool> {
    let (catalog, name) = (state.catalog.clone(), model.to_string());
    let found = state.store.run(move |c| crate::catalog::find(&catalog, c, &name)).await;
    Ok(found.is_ok_and(|e| e.is_remote(Purpose::Image)))
}

/// What drawing in a chat left: the reply's id, its text, and its images' ids; or why
/// nothing was drawn, with the reply that says so.
pub struct ChatDrawing {
    pub message_id: i64,
    /// How long the provider took.
    pub latency_ms: i64,
    pub content: String,
    pub images: Vec<i64>,
    pub error: Option<AppError>,
}

/// An image model's answer in a chat: the person's message, then a reply holding the images
/// drawn (or saying why none were), stored with the request's usage and audit event in one
/// transaction. Refusals before the provider is asked (an unknown model, a quota) store
/// nothing, as a chat turn's do.
pub async fn draw_in_chat(
    state: &AppState,
    actor: &Actor,
    user_id: i64,
    conversation_id: i64,
    prompt: String,
    model: String,
) -> AppResult<ChatDrawing> {
    use crate::chat::store;
    let chat = state.chat();
    let conversation = chat.store.run(move |c| store::get(c, user_id, conversation_id)).await?;
    let wait = std::time::Duration::from_secs(state.config.chat.turn_wait_secs);
    let _in_flight = chat.turns.lock(conversation_id, wait).await?;
    let ask = DrawAsk { model: model.clone(), prompt: prompt.clone(), n: 1, size: None };
    let mut d = drawing(state, actor, "chat.image", ask).await?;
    let now = state.clock.now();
    let (used, outcome) = settle(now, d.used, &mut d.details, d.result.as_ref().err(), d.started);
    let (images, revised, error) = match d.result {
        Ok(images) => {
            let revised = images.first().and_then(|i| i.revised_prompt.clone());
            (
                images.into_iter().map(|i| (i.format.content_type(), i.bytes)).collect::<Vec<_>>(),
                revised,
                None,
            )
        }
        Err(e) => (Vec::new(), None, Some(e)),
    };
    let content = match (&revised, &error) {
        (Some(revised), _) => format!("Drawn by {model}, which read the prompt as: {revised}"),
        (None, None) => format!("Drawn by {model}."),
        (None, Some(_)) => String::new(),
    };
    let (reply_text, failure) = (content.clone(), error.as_ref().map(|e| e.message.clone()));
    let duration_ms = used.duration_ms;
    let stored = usage::record_call_with(
        &state.store,
        now,
        used,
        actor.clone(),
        "image.generation",
        outcome,
        d.details,
        move |c, details| {
            store::add_user_message(c, now, &conversation, &prompt)?;
            let reply = store::Reply {
                content: &reply_text,
                model: &model,
                prompt_tokens: 0,
                completion_tokens: 0,
                latency_ms: duration_ms,
                ttft_ms: None,
                finish_reason: if failure.is_some() { "error" } else { "stop" },
                error: failure.as_deref(),
            };
            let id = store::add_reply(c, now, conversation.id, &reply)?;
            let pieces: Vec<(&str, &[u8])> = images.iter().map(|(t, b)| (*t, b.as_slice())).collect();
            store::add_images(c, now, id, &pieces)?;
            let ids = store::images_of(c, &[id])?.remove(&id).unwrap_or_default();
            details["conversation_id"] = json!(conversation.id);
            details["message_id"] = json!(id);
            Ok((id, ids))
        },
    )
    .await?;
    Ok(ChatDrawing { message_id: stored.0, latency_ms: duration_ms, content, images: stored.1, error })
}

/// A request's usage record stamped with when it ended and how long it took, and its audit
/// outcome; a failed one made nothing, so it is charged nothing and its details say why.
fn settle(
    now: i64,
    mut used: usage::Record,
    details: &mut serde_json::Value,
    failed: Option<&AppError>,
    started: Instant,
) -> (usage::Record, Outcome) {
    used.at = now;
    used.duration_ms = started.elapsed().as_millis() as i64;
    let Some(e) = failed else { return (used, Outcome::Success) };
    used.outcome = usage::Outcome::Error;
    used.prompt_tokens = 0;
    used.images = 0;
    details["error"] = json!(e.message);
    (used, Outcome::Failure)
}

/// The usage record and audit event of one request, in one transaction.
async fn record(
    state: &AppState,
    actor: &Actor,
    action: &'static str,
    used: usage::Record,
    mut details: serde_json::Value,
    failed: Option<&AppError>,
    started: Instant,
) {
    let now = state.clock.now();
    let (used, outcome) = settle(now, used, &mut details, failed, started);
    if let Err(e) = usage::record_call(&state.store, now, used, actor.clone(), action, outcome, details).await
    {
        tracing::error!(error = %e, action, "cannot record a speech or image request");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read() {
        assert_eq!(parse_size(None).unwrap(), (1024, 1024));
        assert_eq!(parse_size(Some("auto")).unwrap(), (1024, 1024));
        assert_eq!(parse_size(Some("1792x1024")).unwrap(), (1792, 1024));
        for bad in ["1024", "ax b", "0x1024", "1024x99999", "1024X1024"] {
            assert!(parse_size(Some(bad)).is_err(), "{bad}");
        }
    }
}

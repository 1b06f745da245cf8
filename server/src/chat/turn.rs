//! One chat turn: assemble the prompt from the conversation, stream the model's reply, then
//! store the reply, its token usage and its audit event in one transaction. The user's
//! message is stored before generation starts, so a failed or stopped generation never loses
//! it; a stopped reply is kept as far as it got.

use super::sources::{self, Citation};
use super::store::{self, Conversation, Reply};
use crate::audit::{self, Actor, Event as AuditEvent, Outcome};
use crate::auth::users::User;
use crate::catalog::access;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::state::AppState;
use ayush_models::{ChatMessage, Event, GenerateParams, ModelError};
use serde::Serialize;
use std::time::Instant;
use tokio::sync::mpsc;

/// What the client sees, in order: its place in line while the model is busy, tokens, then
/// one `Done` or `Error`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    Queued { position: usize },
    Token { text: String },
    Done { message_id: i64, finish_reason: String, usage: UsageOut, html: String, citations: Vec<Citation> },
    Error { code: String, message: String, message_id: Option<i64> },
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageOut {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_prompt_tokens: i64,
    pub latency_ms: i64,
}

/// What the turn starts from.
pub enum Input {
    /// A new user message.
    Message(String),
    /// Answer the last user message again (its replies are dropped).
    Regenerate,
    /// Replace an earlier user message and answer it (later messages are dropped).
    Edit { message_id: i64, content: String },
}

pub struct Turn {
    pub user: User,
    pub actor: Actor,
    pub conversation_id: i64,
    pub input: Input,
    pub model: Option<String>,
    pub params: GenerateParams,
}

fn check_content(content: &str) -> AppResult<()> {
    if content.trim().is_empty() {
        return Err(AppError::validation("the message is empty"));
    }
    if content.chars().count() > store::MAX_MESSAGE_CHARS {
        return Err(AppError::validation(format!(
            "a message is at most {} characters",
            store::MAX_MESSAGE_CHARS
        )));
    }
    Ok(())
}

/// Starts the turn; the receiver yields its events. Errors before generation (unknown model,
/// empty message, a busy engine) come back here, before anything is stored.
/// The model a chat uses: the one asked for, else the default; it must be installed and
/// allowed to the actor's groups (a refusal is audited).
pub async fn usable_model(state: &AppState, actor: &Actor, asked: Option<String>) -> AppResult<String> {
    let name = match asked {
        Some(name) => name,
        None => state.catalog.default_name().ok_or_else(|| {
            AppError::validation(
                "no model is installed yet; an admin imports one with `ayushctl models import`",
            )
        })?,
    };
    let (now, actor, model, catalog) =
        (state.clock.now(), actor.clone(), name.clone(), state.catalog.clone());
    state
        .store
        .run(move |c| {
            crate::catalog::find(&catalog, c, &model).map_err(|e| match e.kind {
                ErrorKind::NotFound => AppError::validation(format!("there is no model named {model:?}")),
                _ => e,
            })?;
            access::check(c, now, &actor, &model)
        })
        .await?;
    Ok(name)
}

pub async fn start(state: &AppState, turn: Turn) -> AppResult<mpsc::Receiver<StreamEvent>> {
    if let Input::Message(c) | Input::Edit { content: c, .. } = &turn.input {
        check_content(c)?;
    }
    let (user_id, conv_id) = (turn.user.id, turn.conversation_id);
    // Only the owner waits on a conversation, and only so long: nobody else's turn is held up.
    state.store.run(move |c| store::get(c, user_id, conv_id)).await?;
    let wait = std::time::Duration::from_secs(state.config.chat.turn_wait_secs);
    let in_flight = state.turns.lock(conv_id, wait).await?;
    let (conversation, history, preset) = state
        .store
        .run(move |c| {
            let conv = store::get(c, user_id, conv_id)?;
            let msgs = store::messages(c, conv.id)?;
            Ok((conv, msgs, super::presets::of_conversation(c, conv_id)?))
        })
        .await?;
    let asked = turn.model.clone().unwrap_or_else(|| conversation.model.clone());
    let model = usable_model(state, &turn.actor, Some(asked)).await?;

    // The history this reply answers, after the edit or regeneration is applied.
    let mut kept = history.clone();
    match &turn.input {
        Input::Message(_) => {}
        Input::Regenerate => {
            let last_user = kept
                .iter()
                .rposition(|m| m.role == "user")
                .ok_or_else(|| AppError::validation("there is nothing to regenerate"))?;
            kept.truncate(last_user + 1);
        }
        Input::Edit { message_id, content } => {
            let at = kept
                .iter()
                .position(|m| m.id == *message_id && m.role == "user")
                .ok_or_else(|| AppError::not_found("no such message of yours in this conversation"))?;
            kept.truncate(at + 1);
            kept[at].content = content.clone();
        }
    }
    let mut prompt: Vec<ChatMessage> = Vec::new();
    // An admin's preset speaks first; the person's own instructions for this chat follow.
    let system: Vec<&str> =
        [preset.as_ref().map(|p| p.system_prompt.as_str()), Some(conversation.system_prompt.as_str())]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect();
    if !system.is_empty() {
        prompt.push(ChatMessage::new("system", &system.join("\n\n")));
    }
    for m in &kept {
        if m.role == "assistant" && m.error.is_some() && m.content.is_empty() {
            continue;
        }
        prompt.push(ChatMessage::new(&m.role, &m.content));
    }
    if let Input::Message(content) = &turn.input {
        prompt.push(ChatMessage::new("user", content));
    }

    // What this reply answers: for the content policy, and the search for its sources.
    let question =
        prompt.iter().rev().find(|m| m.role == "user").map(|m| m.content.clone()).unwrap_or_default();
    let caller = crate::knowledge::collections::Caller::user(&turn.user);
    let window = state.catalog.manifest(&model).ok().map(|m| m.context_length);
    let cited = sources::retrieve(
        &state.store,
        &state.knowledge,
        caller,
        conv_id,
        &question,
        sources::budget(window),
    )
    .await?;
    if !cited.is_empty() {
        let told = sources::instructions(&cited);
        match prompt.first_mut().filter(|m| m.role == "system") {
            Some(system) => system.content = format!("{}\n\n{told}", system.content),
            None => prompt.insert(0, ChatMessage::new("system", &told)),
        }
    }
    let answer = super::completion::open(state, turn.user.id, &model, prompt, turn.params.clone())
        .await?
        .map_err(AppError::from)?;

    // Only now, with the engine committed to answering, is anything stored.
    let now = state.clock.now();
    let conv = conversation.clone();
    let input = match turn.input {
        Input::Message(c) => Some(c),
        _ => None,
    };
    let cut = match (&input, kept.last()) {
        (None, Some(last)) => Some(last.id),
        _ => None,
    };
    let edited = kept.last().map(|m| (m.id, m.content.clone()));
    state
        .store
        .run(move |c| {
            c.transaction(|c| {
                if let Some(content) = &input {
                    store::add_user_message(c, now, &conv, content)?;
                } else if let (Some(cut), Some((id, content))) = (cut, edited) {
                    store::edit_message(c, conv.id, id, &content)?;
                    store::truncate_after(c, conv.id, cut)?;
                }
                Ok(())
            })
        })
        .await?;

    let (tx, rx) = mpsc::channel(64);
    let state = state.clone();
    tokio::spawn(async move {
        let asker = Asker { user: turn.user, actor: turn.actor, question, cited };
        relay(state, conversation, model, asker, answer, tx).await;
        drop(in_flight);
    });
    Ok(rx)
}

/// Forwards the engine's events to the client and stores the outcome. Runs to the end even if
/// the client goes away (that cancels generation; what was generated is kept).
/// Who asked what: the turn's user, as the audit log names them, and their question.
struct Asker {
    user: User,
    actor: Actor,
    question: String,
    /// The passages the prompt was given.
    cited: Vec<Citation>,
}

async fn relay(
    state: AppState,
    conversation: Conversation,
    model: String,
    asker: Asker,
    mut answer: super::completion::Completion,
    tx: mpsc::Sender<StreamEvent>,
) {
    let handle = &mut answer.handle;
    let Asker { user, actor, question, cited } = asker;
    let started = Instant::now();
    let mut text = String::new();
    let outcome = loop {
        match handle.events.recv().await {
            Some(Event::Queued { position }) => {
                if tx.send(StreamEvent::Queued { position }).await.is_err() {
                    handle.cancel();
                }
            }
            Some(Event::Token(piece)) => {
                text.push_str(&piece);
                if tx.send(StreamEvent::Token { text: piece }).await.is_err() {
                    handle.cancel();
                }
            }
            Some(Event::Done(done)) => break Ok(done),
            Some(Event::Failed(e)) => break Err(e),
            None => break Err(ModelError::Inference("the engine stopped".into())),
        }
    };
    let latency_ms = started.elapsed().as_millis() as i64;
    let (usage, finish, error) = match &outcome {
        Ok(done) => (
            UsageOut {
                prompt_tokens: done.usage.prompt_tokens as i64,
                completion_tokens: done.usage.completion_tokens as i64,
                cached_prompt_tokens: done.usage.cached_prompt_tokens as i64,
                latency_ms,
            },
            done.finish.as_str().to_string(),
            None,
        ),
        Err(e) => (
            UsageOut { prompt_tokens: 0, completion_tokens: 0, cached_prompt_tokens: 0, latency_ms },
            "error".to_string(),
            Some(e.to_string()),
        ),
    };
    let error_code = outcome.as_ref().err().map(|e| crate::error::classify(e).0.code());
    let content = match &outcome {
        Ok(done) => done.text.clone(),
        Err(_) => text,
    };
    let now = state.clock.now();
    let (u, f, e, c, m) = (usage.clone(), finish.clone(), error.clone(), content.clone(), model.clone());
    let kept = cited.clone();
    let state_in = state.clone();
    let stored = state
        .store
        .run(move |conn| {
            conn.transaction(|conn| {
                let id = store::add_reply(
                    conn,
                    now,
                    user.id,
                    conversation.id,
                    &Reply {
                        content: &c,
                        model: &m,
                        prompt_tokens: u.prompt_tokens,
                        completion_tokens: u.completion_tokens,
                        latency_ms: u.latency_ms,
                        finish_reason: &f,
                        error: e.as_deref(),
                    },
                )?;
                sources::keep(conn, id, &kept)?;
                let outcome = if e.is_some() { Outcome::Failure } else { Outcome::Success };
                let mut details = serde_json::json!({
                    "model": m, "message_id": id, "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens, "finish_reason": f, "error": e,
                });
                if !kept.is_empty() {
                    // Which documents informed the reply, never their text.
                    details["sources"] = kept
                        .iter()
                        .map(|c| {
                            serde_json::json!({"number": c.number, "collection": c.collection,
                            "document_id": c.document_id, "chunk_id": c.chunk_id})
                        })
                        .collect();
                }
                let binding = audit::content::Binding::Conversation(conversation.id);
                if let Some(sealed) =
                    super::completion::capture(conn, &state_in, user.id, &binding, &question, &c)?
                {
                    details["content"] = sealed;
                }
                audit::record(
                    conn,
                    now,
                    &AuditEvent::new(&actor, "chat.message", outcome)
                        .target("conversation", conversation.id)
                        .details(details),
                )?;
                Ok(id)
            })
        })
        .await;
    let last = match (stored, error.zip(error_code)) {
        (Ok(id), None) => StreamEvent::Done {
            message_id: id,
            finish_reason: finish,
            usage,
            html: super::markdown::to_html(&content),
            citations: cited,
        },
        (Ok(id), Some((message, code))) => {
            StreamEvent::Error { code: code.into(), message, message_id: Some(id) }
        }
        (Err(e), _) => StreamEvent::Error { code: e.code().into(), message: e.message, message_id: None },
    };
    let _ = tx.send(last).await;
}

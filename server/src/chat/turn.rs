//! One chat turn: assemble the prompt from the conversation, stream the model's reply through
//! the completion core, then store the reply and its sources with the core's usage and audit
//! event, in one transaction. The user's message is stored before generation starts, so a
//! failed or stopped generation never loses it; a stopped reply is kept as far as it got.

use super::Chat;
use super::complete::{self, Asker, Filing, Step};
use super::sources::{self, Citation};
use super::store::{self, Conversation, Reply};
use crate::audit::{self, Actor};
use crate::auth::users::User;
use crate::error::{AppError, AppResult};
use ayush_models::{ChatMessage, GenerateParams};
use serde::Serialize;
use tokio::sync::mpsc;

/// What the client sees, in order: its place in line while the model is busy, tokens, then
/// one `Done` or `Error`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    Queued {
        position: usize,
    },
    Token {
        text: String,
    },
    Done {
        message_id: i64,
        /// The model that answered.
        model: String,
        finish_reason: String,
        usage: UsageOut,
        html: String,
        citations: Vec<Citation>,
        /// Images drawn for the reply (an image model's answer).
        images: Vec<i64>,
    },
    Error {
        code: String,
        message: String,
        message_id: Option<i64>,
    },
    /// The title a model wrote for the conversation after its first answer (after `Done`).
    Title {
        title: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct UsageOut {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_prompt_tokens: i64,
    pub latency_ms: i64,
    /// How long the first text took, when there was some.
    pub ttft_ms: Option<i64>,
}

/// What the turn starts from.
pub enum Input {
    /// A new user message.
    Message(String),
    /// Answer the last user message again (its replies are dropped).
    Regenerate,
    /// Replace an earlier user message and answer it (later messages are dropped).
    Edit { message_id: i64, content: String },
    /// Write on from where the last answer stopped (at its length limit, or stopped by the
    /// person), by the model that wrote it, from the sources it had; the text is added to it.
    Continue,
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
pub async fn start(chat: &Chat, turn: Turn) -> AppResult<mpsc::Receiver<StreamEvent>> {
    if let Input::Message(c) | Input::Edit { content: c, .. } = &turn.input {
        check_content(c)?;
    }
    let (user_id, conv_id) = (turn.user.id, turn.conversation_id);
    // Only the owner waits on a conversation, and only so long: nobody else's turn is held up.
    chat.store.run(move |c| store::get(c, user_id, conv_id)).await?;
    let wait = std::time::Duration::from_secs(chat.config.chat.turn_wait_secs);
    let in_flight = chat.turns.lock(conv_id, wait).await?;
    let (conversation, history, preset) = chat
        .store
        .run(move |c| {
            let conv = store::get(c, user_id, conv_id)?;
            let msgs = store::messages(c, conv.id)?;
            Ok((conv, msgs, crate::assistants::of_conversation(c, conv_id)?))
        })
        .await?;
    let asked = turn.model.clone().unwrap_or_else(|| conversation.model.clone());

    // The history this reply answers, after the edit or regeneration is applied.
    let mut kept = history.clone();
    // The answer a continuation extends.
    let mut extended: Option<store::Message> = None;
    match &turn.input {
        Input::Message(_) => {}
        Input::Continue => {
            let last = kept
                .last_mut()
                .filter(|m| m.role == "assistant" && !m.content.trim().is_empty())
                .ok_or_else(|| {
                    AppError::validation("there is no answer to continue: the chat does not end with one")
                })?;
            // The model writes on from the last word (a provider may refuse trailing spaces).
            last.content.truncate(last.content.trim_end().len());
            extended = Some(last.clone());
        }
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
    // An answer is continued by the model that wrote it.
    let asked = extended.as_ref().and_then(|m| m.model.clone()).unwrap_or(asked);
    let model = complete::usable(chat, &turn.actor, Some(asked)).await?;
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

    // The quotas first: a refused turn searches nothing and stores nothing.
    let asker = Asker { actor: turn.actor.clone(), user_id: turn.user.id, source: "chat" };
    // A first answer is followed by a title for the conversation.
    let titling =
        (history.is_empty() && matches!(turn.input, Input::Message(_)) && chat.config.chat.generate_titles)
            .then(|| Asker { source: "chat.title", ..asker.clone() });
    let admission = complete::admit(chat, &asker, &model).await?;

    // What this reply answers: the search for its sources looks for it.
    let question = complete::question(&prompt);
    let caller = crate::knowledge::collections::Caller::user(&turn.user);
    let window = chat.catalog.manifest(model.name()).ok().map(|m| m.context_length);
    let cited = match &extended {
        // The answer goes on from the passages it started from, those its reader may still read.
        Some(answer) => {
            let id = answer.id;
            let mut kept = chat.store.run(move |c| sources::of_messages(c, user_id, &[id])).await?;
            kept.remove(&id).unwrap_or_default()
        }
        None => {
            let budget = sources::budget(window);
            sources::retrieve(&chat.store, &chat.knowledge, caller, conv_id, &question, budget).await?
        }
    };
    if !cited.is_empty() {
        let told = sources::instructions(&cited);
        match prompt.first_mut().filter(|m| m.role == "system") {
            Some(system) => system.content = format!("{}\n\n{told}", system.content),
            None => prompt.insert(0, ChatMessage::new("system", &told)),
        }
    }
    let answer = complete::open(chat, asker, admission, &model, prompt, turn.params.clone())
        .await?
        .map_err(AppError::from)?;

    // Only now, with the engine committed to answering, is anything stored.
    let now = chat.clock.now();
    let conv = conversation.clone();
    let input = match turn.input {
        Input::Message(c) => Some(c),
        _ => None,
    };
    let cut = match (&input, kept.last()) {
        (None, Some(last)) if extended.is_none() => Some(last.id),
        _ => None,
    };
    let edited = kept.last().map(|m| (m.id, m.content.clone()));
    chat.store
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
    let chat = chat.clone();
    tokio::spawn(async move {
        relay(chat, conversation, cited, answer, titling, extended, tx).await;
        drop(in_flight);
    });
    Ok(rx)
}

/// Forwards the answer to the client, then stores it with its sources through the completion
/// core, as a new reply or added to the one it continues (`extended`). Runs to the end even if
/// the client goes away (that stops generation; what was generated is kept). After a first
/// answer, with `titling`'s asker, a model titles the conversation.
async fn relay(
    chat: Chat,
    conversation: Conversation,
    cited: Vec<Citation>,
    mut answer: complete::Answer,
    titling: Option<Asker>,
    extended: Option<store::Message>,
    tx: mpsc::Sender<StreamEvent>,
) {
    let ended = loop {
        let event = match answer.next().await {
            Step::Queued(position) => StreamEvent::Queued { position },
            Step::Text(text) => StreamEvent::Token { text },
            Step::End(ended) => break *ended,
        };
        if tx.send(event).await.is_err() {
            answer.cancel();
        }
    };
    let usage = ended.usage();
    let mut usage = UsageOut {
        prompt_tokens: usage.prompt_tokens as i64,
        completion_tokens: usage.completion_tokens as i64,
        cached_prompt_tokens: usage.cached_prompt_tokens as i64,
        latency_ms: ended.latency_ms,
        ttft_ms: ended.ttft_ms,
    };
    // A continued answer is one answer: its text, tokens and time are the parts' sums.
    let mut text = ended.text.clone();
    if let Some(before) = &extended {
        text = format!("{}{text}", before.content);
        usage.prompt_tokens += before.prompt_tokens.unwrap_or(0);
        usage.completion_tokens += before.completion_tokens.unwrap_or(0);
        usage.latency_ms += before.latency_ms.unwrap_or(0);
        usage.ttft_ms = before.ttft_ms.or(usage.ttft_ms);
    }
    let finish = ended.finish_reason();
    let error = ended.error().map(|e| (e.to_string(), crate::error::classify(e).0.code()));
    let filing = Filing {
        action: "chat.message",
        target: ("conversation", conversation.id.to_string()),
        binding: audit::content::Binding::Conversation(conversation.id),
        details: serde_json::json!({}),
    };
    let (u, kept, now) = (usage.clone(), cited.clone(), chat.clock.now());
    let (content, message) = (text.clone(), error.as_ref().map(|e| e.0.clone()));
    let model = ended.model().to_string();
    let continues = extended.as_ref().map(|m| m.id);
    let stored = complete::record(&chat, &ended, filing, move |conn, details| {
        let reply = Reply {
            content: &content,
            model: &model,
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            latency_ms: u.latency_ms,
            ttft_ms: u.ttft_ms,
            finish_reason: finish,
            error: message.as_deref(),
        };
        let id = match continues {
            Some(id) => {
                store::replace_reply(conn, now, conversation.id, id, &reply)?;
                details["continued"] = true.into();
                id
            }
            None => {
                let id = store::add_reply(conn, now, conversation.id, &reply)?;
                sources::keep(conn, id, &kept)?;
                id
            }
        };
        details["message_id"] = id.into();
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
        Ok(id)
    })
    .await;
    let answered = stored.is_ok() && error.is_none() && finish != "cancelled";
    let last = match (stored, error) {
        (Ok(id), None) => StreamEvent::Done {
            message_id: id,
            model: ended.model().to_string(),
            finish_reason: finish.to_string(),
            usage,
            html: super::markdown::to_html(&text),
            citations: cited,
            images: Vec::new(),
        },
        (Ok(id), Some((message, code))) => {
            StreamEvent::Error { code: code.into(), message, message_id: Some(id) }
        }
        (Err(e), _) => StreamEvent::Error { code: e.code().into(), message: e.message, message_id: None },
    };
    let _ = tx.send(last).await;
    if let Some(asker) = titling.filter(|_| answered) {
        let question = ended.question().to_string();
        let model = ended.model().to_string();
        if let Some(title) =
            super::titles::write(&chat, asker, conversation.id, &model, &question, &ended.text).await
        {
            let _ = tx.send(StreamEvent::Title { title }).await;
        }
    }
}

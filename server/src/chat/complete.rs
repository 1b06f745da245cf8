//! The completion core. Every answer, whoever asks for it (the web chat's turn or
//! `/v1/chat/completions`), is checked (`usable`, then `admit` against the quotas), opened,
//! streamed and recorded here, so access, quotas, limits, usage, the chat content capture and
//! the audit event cannot apply to one and not the other.
//! Callers only shape what they stream and add what they keep beside the answer.

use super::Chat;
use crate::audit::content::{self, Binding, Captured};
use crate::audit::{self, Actor, Event as AuditEvent, Outcome};
use crate::catalog::{Chats, access};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::limits::Slot;
use crate::store::Conn;
use crate::usage;
use ayush_models::{ChatMessage, Completion, Event, GenerateParams, Handle, ModelError, Usage};
use serde_json::{Value, json};
use std::time::Instant;

/// A model its asker may use. Only [`usable`] makes one, so no answer opens a model the access
/// rules were not asked about.
#[derive(Debug, Clone)]
pub struct Usable(String);

impl Usable {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// The model asked for, else the default; it must exist and be allowed to the actor's groups
/// (a refusal is audited).
pub async fn usable(chat: &Chat, actor: &Actor, asked: Option<String>) -> AppResult<Usable> {
    let name = match asked {
        Some(name) => name,
        None => chat.catalog.default_name().ok_or_else(|| {
            AppError::validation(
                "no model is installed yet; an admin imports one with `ayushctl models import`",
            )
        })?,
    };
    let (now, actor, model, catalog) = (chat.clock.now(), actor.clone(), name.clone(), chat.catalog.clone());
    chat.store
        .run(move |c| {
            crate::catalog::find(&catalog, c, &model).map_err(|e| match e.kind {
                ErrorKind::NotFound => AppError::validation(format!("there is no model named {model:?}")),
                _ => e,
            })?;
            access::check(c, now, &actor, &model)
        })
        .await?;
    Ok(Usable(name))
}

/// [`usable`] as the OpenAI API answers it: a model the caller may not use is one that does not
/// exist (the denial is audited all the same).
pub async fn usable_or_unknown(chat: &Chat, actor: &Actor, model: &str) -> AppResult<Usable> {
    usable(chat, actor, Some(model.to_string())).await.map_err(|e| match e.kind {
        ErrorKind::Validation | ErrorKind::NotFound | ErrorKind::Forbidden => AppError::new(
            ErrorKind::NotFound,
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_reason(crate::error::Reason::ModelNotFound),
        _ => e,
    })
}

/// What a prompt asks: its last user message. The chat content policy captures it, and the
/// web chat searches the person's documents for it.
pub fn question(prompt: &[ChatMessage]) -> String {
    prompt.iter().rev().find(|m| m.role == "user").map(|m| m.content.clone()).unwrap_or_default()
}

/// Who asks, as the audit log and the usage counts name them.
#[derive(Debug, Clone)]
pub struct Asker {
    pub actor: Actor,
    pub user_id: i64,
    /// Where the answer is asked for, for usage: `chat` or `v1.chat`.
    pub source: &'static str,
}

/// An answer being generated. It holds one of its asker's places until it ends (or is dropped).
pub struct Answer {
    handle: Handle,
    slot: Option<Slot>,
    /// The asker's place under their quota, and what its headers say.
    admission: usage::Admission,
    /// An end found while joining text, given out by the next call.
    held: Option<Event>,
    /// What has come so far: a failed or stopped answer is kept as far as it got.
    text: String,
    cancelled: bool,
    started: Instant,
    /// When the first piece of text came.
    first_text: Option<Instant>,
    asker: Asker,
    model: String,
    question: String,
}

/// One step of an answer.
pub enum Step {
    /// Waiting for the engine: `position` requests ahead, counting this one.
    Queued(usize),
    Text(String),
    End(Box<Ended>),
}

/// How an answer ended, with what the record needs.
pub struct Ended {
    pub outcome: Result<Completion, ModelError>,
    /// The answer's text: the whole reply, or as far as a failed one got.
    pub text: String,
    /// The caller stopped it (the client went away or pressed stop).
    pub cancelled: bool,
    pub latency_ms: i64,
    /// Time to the first piece of text, when there was one.
    pub ttft_ms: Option<i64>,
    asker: Asker,
    model: String,
    question: String,
}

impl Ended {
    pub fn usage(&self) -> Usage {
        self.outcome.as_ref().map(|d| d.usage.clone()).unwrap_or_default()
    }

    /// `stop`, `length`, `cancelled`, or `error`.
    pub fn finish_reason(&self) -> &'static str {
        match &self.outcome {
            Ok(_) if self.cancelled => "cancelled",
            Ok(done) => done.finish.as_str(),
            Err(_) => "error",
        }
    }

    pub fn error(&self) -> Option<&ModelError> {
        self.outcome.as_ref().err()
    }

    /// What was asked: the prompt's last user message.
    pub fn question(&self) -> &str {
        &self.question
    }

    pub fn model(&self) -> &str {
        &self.model
    }
}

/// Checks the asker's quotas for an answer of `model` and counts the request: before anything
/// is searched or asked for it. The admission holds the asker's place under a concurrent limit
/// until the answer it opens ends, or until it is dropped.
pub async fn admit(chat: &Chat, asker: &Asker, model: &Usable) -> AppResult<usage::Admission> {
    let mut asked = usage::Record::new(chat.clock.now(), &asker.actor, asker.source, model.name());
    asked.user_id = Some(asker.user_id);
    chat.usage.admit(asked).await
}

/// Checks the request against the limits, takes one of the asker's places, and starts `model`
/// answering `prompt` under the quotas `admission` passed. The outer error is Ayush's (over a
/// limit, a model that does not chat); the inner one the model's or provider's.
pub async fn open(
    chat: &Chat,
    asker: Asker,
    admission: usage::Admission,
    model: &Usable,
    prompt: Vec<ChatMessage>,
    params: GenerateParams,
) -> AppResult<Result<Answer, ModelError>> {
    params.validate().map_err(AppError::validation)?;
    let limit = chat.config.chat.max_tokens_limit;
    if params.max_tokens > limit {
        return Err(AppError::validation(format!(
            "max_tokens is at most {limit} here (asked for {})",
            params.max_tokens
        )));
    }
    let question = question(&prompt);
    let slot = chat.generations.start(asker.user_id)?;
    let at = Chats { catalog: &chat.catalog, remotes: &chat.remotes, store: &chat.store };
    let opened = crate::catalog::open_chat(at, asker.user_id, model.name(), prompt, params).await?;
    Ok(opened.map(|handle| Answer {
        handle,
        slot: Some(slot),
        admission,
        held: None,
        text: String::new(),
        cancelled: false,
        started: Instant::now(),
        first_text: None,
        asker,
        model: model.name().to_string(),
        question,
    }))
}

impl Answer {
    /// The `x-ratelimit-*` headers of the asker's limits, as this request left them.
    pub fn rate_limit_headers(&self) -> &[(&'static str, String)] {
        &self.admission.headers
    }

    /// The next step. Text already waiting behind the first piece is joined to it, so a fast
    /// provider's burst goes out as one chunk and one write instead of one per token.
    pub async fn next(&mut self) -> Step {
        let first = match self.held.take() {
            Some(event) => Some(event),
            None => self.handle.events.recv().await,
        };
        let outcome = match first {
            Some(Event::Queued { position }) => return Step::Queued(position),
            Some(Event::Token(mut text)) => {
                while let Ok(next) = self.handle.events.try_recv() {
                    match next {
                        Event::Token(more) => text.push_str(&more),
                        end => {
                            self.held = Some(end);
                            break;
                        }
                    }
                }
                self.text.push_str(&text);
                self.first_text.get_or_insert_with(Instant::now);
                return Step::Text(text);
            }
            Some(Event::Done(done)) => Ok(done),
            Some(Event::Failed(e)) => Err(e),
            None => Err(ModelError::Inference("the engine stopped".into())),
        };
        let text = match &outcome {
            Ok(done) => done.text.clone(),
            Err(_) => std::mem::take(&mut self.text),
        };
        // Generating is over: the asker's places are free before the client hears the end, so
        // their next request does not meet this one's (the record is written after).
        self.slot = None;
        self.admission.release();
        Step::End(Box::new(Ended {
            outcome,
            text,
            cancelled: self.cancelled,
            latency_ms: self.started.elapsed().as_millis() as i64,
            ttft_ms: self.first_text.map(|t| t.duration_since(self.started).as_millis() as i64),
            asker: self.asker.clone(),
            model: self.model.clone(),
            question: self.question.clone(),
        }))
    }

    /// Stops generating; what was generated ends the answer.
    pub fn cancel(&mut self) {
        self.cancelled = true;
        self.handle.cancel();
    }
}

/// How the caller files an answer in the audit log.
pub struct Filing {
    pub action: &'static str,
    pub target: (&'static str, String),
    /// What captured content is sealed to.
    pub binding: Binding,
    /// The caller's own details; the core adds the model, the counts, the finish reason and
    /// any error.
    pub details: Value,
}

/// Records an ended answer in one transaction: its usage (the answer's usage record, with its
/// cost, and the asker's day counter), what the caller keeps beside it (`keep`, which may add to the event's
/// details), its content where the capture policy says so, and its audit event.
pub async fn record<T: Send + 'static>(
    chat: &Chat,
    ended: &Ended,
    filing: Filing,
    keep: impl FnOnce(&mut Conn, &mut Value) -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    let Filing { action, target, binding, mut details } = filing;
    let usage = ended.usage();
    details["model"] = json!(ended.model);
    details["prompt_tokens"] = json!(usage.prompt_tokens);
    details["completion_tokens"] = json!(usage.completion_tokens);
    details["finish_reason"] = json!(ended.finish_reason());
    details["error"] = json!(ended.error().map(ModelError::to_string));
    let outcome = if ended.error().is_some() { Outcome::Failure } else { Outcome::Success };
    let now = chat.clock.now();
    let Asker { actor, user_id, source } = ended.asker.clone();
    let captured = Captured { question: ended.question.clone(), answer: ended.text.clone() };
    let (keys, groups) = (chat.audit.clone(), chat.config.audit.capture_chat_content_groups.clone());
    let mut used = usage::Record {
        user_id: Some(user_id),
        prompt_tokens: usage.prompt_tokens as i64,
        completion_tokens: usage.completion_tokens as i64,
        ttft_ms: ended.ttft_ms,
        duration_ms: ended.latency_ms,
        outcome: match ended.finish_reason() {
            "error" => usage::Outcome::Error,
            "cancelled" => usage::Outcome::Cancelled,
            _ => usage::Outcome::Ok,
        },
        ..usage::Record::new(now, &actor, source, &ended.model)
    };
    chat.store
        .run(move |c| {
            c.transaction(|c| {
                let kept = keep(c, &mut details)?;
                let member_of = crate::auth::groups::of_user(c, user_id)?;
                if let Some(sealed) = content::capture(keys.keys(), &groups, &member_of, &binding, &captured)?
                {
                    details["content"] = sealed;
                }
                used.groups = member_of;
                usage::record(c, &used)?;

                let event =
                    AuditEvent::new(&actor, action, outcome).target(target.0, &target.1).details(details);
                audit::record(c, now, &event)?;
                Ok(kept)
            })
        })
        .await
}

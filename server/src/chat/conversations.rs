//! Conversations, as their owner starts, reads, changes and removes them: the Chat service's
//! side that is not a turn. The JSON API and the chat page call these methods, so the rules
//! (the model must be usable, an assistant brings its model, collections must be readable)
//! are written once.

use super::complete::{self, Usable};
use super::sources::{self, Citation};
use super::store::{self, Conversation, Message};
use super::{Chat, markdown};
use crate::assistants;
use crate::audit::Actor;
use crate::error::{AppError, AppResult};
use crate::knowledge::collections::Caller;
use crate::store::Conn;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Who is asking: the actor for the audit trail and the access rules, the caller for the
/// collections.
#[derive(Debug, Clone)]
pub struct Owner {
    pub actor: Actor,
    pub user_id: i64,
    pub caller: Caller,
}

/// A conversation to start, as `POST /api/conversations` takes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    pub model: Option<String>,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub system_prompt: String,
    /// Collections the conversation answers from (each must be readable).
    #[serde(default)]
    pub collections: Vec<String>,
    /// An admin's assistant to chat with: its model, instructions and collections.
    pub preset: Option<String>,
}

/// What to change of a conversation; what is absent stays.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationChanges {
    pub title: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub collections: Option<Vec<String>>,
    /// Follow this assistant from now on (its model too); choosing a `model` alone leaves it.
    pub preset: Option<String>,
    /// Pin it to the top of the list, or unpin it.
    pub pinned: Option<bool>,
}

/// A conversation with the collections it answers from and the assistant it follows.
#[derive(Debug, Clone, Serialize)]
pub struct ConversationView {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub collections: Vec<String>,
    pub preset: Option<String>,
}

/// A conversation opened to read: its messages, and the sources each reply cites that the
/// reader may still read.
pub struct Opened {
    pub conversation: ConversationView,
    pub messages: Vec<Message>,
    pub citations: HashMap<i64, Vec<Citation>>,
    /// The images drawn for replies, by message.
    pub images: HashMap<i64, Vec<i64>>,
}

/// A message as the API shows it: a reply with its Markdown rendered, and its sources.
#[derive(Debug, Clone, Serialize)]
pub struct MessageOut {
    #[serde(flatten)]
    pub message: Message,
    pub html: Option<String>,
    pub citations: Vec<Citation>,
    /// Where the reply's images are (`/chat/images/ID`).
    pub images: Vec<String>,
}

/// Where a chat's image is served.
pub fn image_url(id: i64) -> String {
    format!("/chat/images/{id}")
}

impl Opened {
    /// The messages with their rendering and sources, for the API.
    pub fn messages_out(self) -> (ConversationView, Vec<MessageOut>) {
        let Opened { conversation, messages, mut citations, mut images } = self;
        let out = messages
            .into_iter()
            .map(|m| MessageOut {
                html: (m.role == "assistant").then(|| markdown::to_html(&m.content)),
                citations: citations.remove(&m.id).unwrap_or_default(),
                images: images.remove(&m.id).unwrap_or_default().into_iter().map(image_url).collect(),
                message: m,
            })
            .collect();
        (conversation, out)
    }
}

fn view(c: &mut Conn, user_id: i64, id: i64) -> AppResult<ConversationView> {
    let conversation = store::get(c, user_id, id)?;
    let preset = assistants::of_conversation(c, id)?.map(|p| p.name);
    let collections = sources::attached(c, id)?.into_iter().map(|(_, n)| n).collect();
    Ok(ConversationView { conversation, collections, preset })
}

impl Chat {
    /// The owner's conversations, newest first, those matching `query` when given.
    pub async fn conversations(&self, user_id: i64, query: Option<String>) -> AppResult<Vec<Conversation>> {
        self.store.run(move |c| store::list(c, user_id, query.as_deref())).await
    }

    pub async fn start(&self, owner: Owner, mut new: NewConversation) -> AppResult<ConversationView> {
        let preset = match new.preset.take() {
            Some(name) => {
                let preset = self.store.run(move |c| assistants::get(c, &name)).await?;
                if new.model.as_ref().is_some_and(|m| *m != preset.model) {
                    return Err(AppError::validation(format!(
                        "the assistant {} chats with {}; leave model out",
                        preset.name, preset.model
                    )));
                }
                new.model = Some(preset.model.clone());
                Some(preset)
            }
            None => None,
        };
        let model: Usable = complete::usable(self, &owner.actor, new.model.clone()).await?;
        let (now, Owner { user_id, caller, .. }) = (self.clock.now(), owner);
        self.store
            .run(move |c| {
                c.transaction(|c| {
                    let conv = store::create(c, now, user_id, &new.title, model.name(), &new.system_prompt)?;
                    sources::attach(c, caller, conv.id, &new.collections)?;
                    if let Some(p) = &preset {
                        store::set_preset(c, conv.id, Some(p.id))?;
                    }
                    view(c, user_id, conv.id)
                })
            })
            .await
    }

    pub async fn conversation(&self, user_id: i64, id: i64) -> AppResult<Opened> {
        self.store
            .run(move |c| {
                let conversation = view(c, user_id, id)?;
                let messages = store::messages(c, id)?;
                let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
                let citations = sources::of_messages(c, user_id, &ids)?;
                let images = store::images_of(c, &ids)?;
                Ok(Opened { conversation, messages, citations, images })
            })
            .await
    }

    pub async fn change(
        &self,
        owner: Owner,
        id: i64,
        mut changes: ConversationChanges,
    ) -> AppResult<ConversationView> {
        // Some(Some(id)): follow that preset; Some(None): leave the one followed; None: no change.
        let preset_change = match changes.preset.take() {
            Some(name) => {
                let preset = self.store.run(move |c| assistants::get(c, &name)).await?;
                changes.model = Some(preset.model.clone());
                Some(Some(preset.id))
            }
            None if changes.model.is_some() => Some(None),
            None => None,
        };
        if let Some(m) = &changes.model {
            complete::usable(self, &owner.actor, Some(m.clone())).await?;
        }
        let (now, Owner { user_id, caller, .. }) = (self.clock.now(), owner);
        self.store
            .run(move |c| {
                c.transaction(|c| {
                    // Pinning alone is not using the conversation: it keeps its place in time.
                    let touched =
                        changes.title.is_some() || changes.model.is_some() || changes.system_prompt.is_some();
                    let conv = match touched {
                        true => store::update(
                            c,
                            now,
                            user_id,
                            id,
                            changes.title.as_deref(),
                            changes.model.as_deref(),
                            changes.system_prompt.as_deref(),
                        )?,
                        false => store::get(c, user_id, id)?,
                    };
                    if let Some(pinned) = changes.pinned {
                        store::set_pinned(c, conv.id, pinned.then_some(now))?;
                    }
                    if let Some(names) = &changes.collections {
                        sources::attach(c, caller, conv.id, names)?;
                    }
                    if let Some(preset) = preset_change {
                        store::set_preset(c, conv.id, preset)?;
                    }
                    view(c, user_id, conv.id)
                })
            })
            .await
    }

    pub async fn remove(&self, owner: Owner, id: i64) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| store::delete(c, now, &owner.actor, owner.user_id, id)).await
    }
}

//! Conversations, messages and token usage in the database.

use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::schema::{conversations, message_images, messages};
use crate::store::{Conn, columns};
use crate::with_conn;
use diesel::prelude::*;
use serde::Serialize;

pub const MAX_MESSAGE_CHARS: usize = 32_000;

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = conversations)]
pub struct Conversation {
    pub id: i64,
    #[serde(skip)]
    pub user_id: i64,
    pub title: String,
    pub model: String,
    pub system_prompt: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The admin's preset ("HR assistant") the conversation was started with, if any.
    #[serde(skip)]
    pub preset_id: Option<i64>,
    /// When its owner pinned it to the top of the list.
    pub pinned_at: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = messages)]
pub struct Message {
    pub id: i64,
    pub conversation_id: i64,
    pub role: String,
    pub content: String,
    pub model: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub finish_reason: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    /// How long the reply's first text took.
    pub ttft_ms: Option<i64>,
}

/// What an assistant reply left behind, stored in one transaction with the usage: a new row,
/// or a continued answer's row written anew (where no error now clears the last one).
#[derive(Insertable, AsChangeset)]
#[diesel(table_name = messages, treat_none_as_null = true)]
pub struct Reply<'a> {
    pub content: &'a str,
    pub model: &'a str,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub finish_reason: &'a str,
    pub error: Option<&'a str>,
}

pub const MAX_TITLE_CHARS: usize = 120;

pub fn check_title(title: &str) -> AppResult<()> {
    if title.chars().count() > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
        return Err(AppError::validation(format!(
            "a title is at most {MAX_TITLE_CHARS} characters, on one line"
        )));
    }
    Ok(())
}

pub fn create(
    conn: &mut Conn,
    now: i64,
    user_id: i64,
    title: &str,
    model: &str,
    system_prompt: &str,
) -> AppResult<Conversation> {
    check_title(title)?;
    crate::assistants::check_system_prompt(system_prompt)?;
    let id: i64 = conn.get_result(
        diesel::insert_into(conversations::table)
            .values((
                conversations::user_id.eq(user_id),
                conversations::title.eq(title.trim()),
                conversations::model.eq(model),
                conversations::system_prompt.eq(system_prompt),
                conversations::created_at.eq(now),
                conversations::updated_at.eq(now),
            ))
            .returning(conversations::id),
    )?;
    get(conn, user_id, id)
}

/// Starts (or stops) a conversation following an admin's preset.
pub fn set_preset(conn: &mut Conn, id: i64, preset_id: Option<i64>) -> AppResult<()> {
    conn.execute(diesel::update(conversations::table.find(id)).set(conversations::preset_id.eq(preset_id)))?;
    Ok(())
}

/// The conversation if it belongs to `user_id`; someone else's is "not found", never "forbidden".
pub fn get(conn: &mut Conn, user_id: i64, id: i64) -> AppResult<Conversation> {
    conn.first(
        conversations::table
            .filter(conversations::id.eq(id))
            .filter(conversations::user_id.eq(user_id))
            .select(columns::<Conversation>()),
    )
    .optional()?
    .ok_or_else(|| AppError::not_found("no such conversation"))
}

/// Newest first; `query` matches titles and message text.
pub fn list(conn: &mut Conn, user_id: i64, query: Option<&str>) -> AppResult<Vec<Conversation>> {
    let rows = match query.map(str::trim).filter(|q| !q.is_empty()) {
        None => conn.load(
            conversations::table
                .filter(conversations::user_id.eq(user_id))
                .order((
                    conversations::pinned_at.is_null(),
                    conversations::pinned_at.desc(),
                    conversations::updated_at.desc(),
                    conversations::id.desc(),
                ))
                .select(columns::<Conversation>())
                .limit(500),
        )?,
        Some(q) => {
            let pattern = format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            with_conn!(conn, |c| {
                let in_messages = messages::table
                    .filter(messages::content.like(pattern.clone()).escape('\\'))
                    .select(messages::conversation_id);
                conversations::table
                    .filter(conversations::user_id.eq(user_id))
                    .filter(
                        conversations::title
                            .like(pattern.clone())
                            .escape('\\')
                            .or(conversations::id.eq_any(in_messages)),
                    )
                    .order((conversations::updated_at.desc(), conversations::id.desc()))
                    .select(columns::<Conversation>())
                    .limit(500)
                    .load(c)
            })?
        }
    };
    Ok(rows)
}

pub fn update(
    conn: &mut Conn,
    now: i64,
    user_id: i64,
    id: i64,
    title: Option<&str>,
    model: Option<&str>,
    system_prompt: Option<&str>,
) -> AppResult<Conversation> {
    let current = get(conn, user_id, id)?;
    let title = title.unwrap_or(&current.title);
    let model = model.unwrap_or(&current.model);
    let system_prompt = system_prompt.unwrap_or(&current.system_prompt);
    check_title(title)?;
    crate::assistants::check_system_prompt(system_prompt)?;
    conn.execute(diesel::update(conversations::table.find(id)).set((
        conversations::title.eq(title.trim()),
        conversations::model.eq(model),
        conversations::system_prompt.eq(system_prompt),
        conversations::updated_at.eq(now),
    )))?;
    get(conn, user_id, id)
}

/// A conversation's title as it is now, if it still exists.
pub fn title_of(conn: &mut Conn, id: i64) -> AppResult<Option<String>> {
    Ok(conn.first(conversations::table.find(id).select(conversations::title)).optional()?)
}

/// Sets a title written for the conversation (not the person's: that goes through `update`).
pub fn set_title(conn: &mut Conn, id: i64, title: &str) -> AppResult<()> {
    check_title(title)?;
    conn.execute(diesel::update(conversations::table.find(id)).set(conversations::title.eq(title)))?;
    Ok(())
}

/// Pins a conversation to the top of its owner's list (`Some(when)`), or unpins it; what it
/// was last used for stays as it was.
pub fn set_pinned(conn: &mut Conn, id: i64, pinned_at: Option<i64>) -> AppResult<()> {
    conn.execute(diesel::update(conversations::table.find(id)).set(conversations::pinned_at.eq(pinned_at)))?;
    Ok(())
}

/// Deletes a conversation and its messages, unless its owner is under legal hold. A refusal is
/// recorded (and committed) before it is returned.
pub fn delete(conn: &mut Conn, now: i64, actor: &Actor, user_id: i64, id: i64) -> AppResult<()> {
    let held = conn.transaction(|conn| {
        let conversation = get(conn, user_id, id)?;
        if crate::audit::retention::is_held(conn, user_id)? {
            let event = Event::new(actor, "conversation.delete", Outcome::Denied)
                .target("conversation", id)
                .details(serde_json::json!({"reason": "legal_hold"}));
            audit::record(conn, now, &event)?;
            return Ok(true);
        }
        conn.execute(diesel::delete(conversations::table.find(id)))?;
        let event = Event::new(actor, "conversation.delete", Outcome::Success)
            .target("conversation", id)
            .details(serde_json::json!({"title": conversation.title}));
        audit::record(conn, now, &event)?;
        Ok::<_, AppError>(false)
    })?;
    if held {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "this conversation is kept under a legal hold and cannot be deleted now",
        ));
    }
    Ok(())
}

pub fn messages(conn: &mut Conn, conversation_id: i64) -> AppResult<Vec<Message>> {
    Ok(conn.load(
        messages::table
            .filter(messages::conversation_id.eq(conversation_id))
            .order(messages::id.asc())
            .select(columns::<Message>()),
    )?)
}

pub fn add_user_message(
    conn: &mut Conn,
    now: i64,
    conversation: &Conversation,
    content: &str,
) -> AppResult<i64> {
    let id = conn.get_result(
        diesel::insert_into(messages::table)
            .values((
                messages::conversation_id.eq(conversation.id),
                messages::role.eq("user"),
                messages::content.eq(content),
                messages::created_at.eq(now),
            ))
            .returning(messages::id),
    )?;
    let title = if conversation.title.is_empty() { first_line(content) } else { conversation.title.clone() };
    conn.execute(
        diesel::update(conversations::table.find(conversation.id))
            .set((conversations::updated_at.eq(now), conversations::title.eq(title))),
    )?;
    Ok(id)
}

/// The title a conversation gets from its first message: its first line, shortened.
pub fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("New chat");
    shortened(line, 60)
}

/// `text` cut to `max` characters, with an ellipsis where it was cut.
pub fn shortened(text: &str, max: usize) -> String {
    let mut out: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

/// Deletes the messages after `message_id` (to regenerate or edit and resend from there).
pub fn truncate_after(conn: &mut Conn, conversation_id: i64, message_id: i64) -> AppResult<usize> {
    Ok(conn.execute(diesel::delete(
        messages::table
            .filter(messages::conversation_id.eq(conversation_id))
            .filter(messages::id.gt(message_id)),
    ))?)
}

pub fn edit_message(conn: &mut Conn, conversation_id: i64, message_id: i64, content: &str) -> AppResult<()> {
    let n = conn.execute(
        diesel::update(
            messages::table
                .filter(messages::conversation_id.eq(conversation_id))
                .filter(messages::id.eq(message_id))
                .filter(messages::role.eq("user")),
        )
        .set(messages::content.eq(content)),
    )?;
    if n == 0 {
        return Err(AppError::not_found("no such message of yours in this conversation"));
    }
    Ok(())
}

/// Stores an assistant reply. Its tokens are counted by the completion core, as every
/// answer's are.
pub fn add_reply(conn: &mut Conn, now: i64, conversation_id: i64, reply: &Reply<'_>) -> AppResult<i64> {
    let id = conn.get_result(
        diesel::insert_into(messages::table)
            .values((
                messages::conversation_id.eq(conversation_id),
                messages::role.eq("assistant"),
                reply,
                messages::created_at.eq(now),
            ))
            .returning(messages::id),
    )?;
    touch(conn, conversation_id, now)?;
    Ok(id)
}

/// Marks the conversation as used now (the list is ordered by it).
fn touch(conn: &mut Conn, conversation_id: i64, now: i64) -> AppResult<()> {
    conn.execute(
        diesel::update(conversations::table.find(conversation_id)).set(conversations::updated_at.eq(now)),
    )?;
    Ok(())
}

/// Writes a reply anew in place: a continued answer, whole, with the parts' tokens and time.
pub fn replace_reply(
    conn: &mut Conn,
    now: i64,
    conversation_id: i64,
    message_id: i64,
    reply: &Reply<'_>,
) -> AppResult<()> {
    let changed = conn.execute(
        diesel::update(
            messages::table
                .filter(messages::id.eq(message_id))
                .filter(messages::conversation_id.eq(conversation_id))
                .filter(messages::role.eq("assistant")),
        )
        .set(reply),
    )?;
    if changed == 0 {
        return Err(AppError::not_found("the answer being continued is gone"));
    }
    touch(conn, conversation_id, now)?;
    Ok(())
}

/// Keeps images drawn for a reply with it.
pub fn add_images(conn: &mut Conn, now: i64, message_id: i64, images: &[(&str, &[u8])]) -> AppResult<()> {
    for (content_type, bytes) in images {
        conn.execute(diesel::insert_into(message_images::table).values((
            message_images::message_id.eq(message_id),
            message_images::content_type.eq(*content_type),
            message_images::bytes.eq(*bytes),
            message_images::created_at.eq(now),
        )))?;
    }
    Ok(())
}

/// The images of each of `message_ids` that has any, by message, in the order drawn.
pub fn images_of(
    conn: &mut Conn,
    message_ids: &[i64],
) -> AppResult<std::collections::HashMap<i64, Vec<i64>>> {
    let rows: Vec<(i64, i64)> = conn.load(
        message_images::table
            .filter(message_images::message_id.eq_any(message_ids))
            .select((message_images::message_id, message_images::id))
            .order(message_images::id.asc()),
    )?;
    let mut out: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
    for (message, image) in rows {
        out.entry(message).or_default().push(image);
    }
    Ok(out)
}

/// An image of one of `user_id`'s conversations: its type and bytes. Anyone else's is one
/// that does not exist.
pub fn image(conn: &mut Conn, user_id: i64, id: i64) -> AppResult<(String, Vec<u8>)> {
    conn.first::<_, (String, Vec<u8>)>(
        message_images::table
            .inner_join(messages::table.inner_join(conversations::table))
            .filter(message_images::id.eq(id))
            .filter(conversations::user_id.eq(user_id))
            .select((message_images::content_type, message_images::bytes)),
    )
    .optional()?
    .ok_or_else(|| AppError::not_found("there is no such image in your conversations"))
}

//! Where every answer starts, whoever asks: the web chat's turn and `/v1/chat/completions` both
//! open completions here and seal captured content through the same policy, so their limits
//! and the chat content capture cannot diverge.

use crate::audit::content::{self, Binding, Captured};
use crate::error::{AppError, AppResult};
use crate::limits::Slot;
use crate::state::AppState;
use crate::store::Conn;
use ayush_models::{ChatMessage, GenerateParams, Handle, ModelError};

/// An answer being generated. It holds one of its asker's places until dropped.
pub struct Completion {
    pub handle: Handle,
    _slot: Slot,
}

/// Checks the request against the limits, takes one of `user_id`'s places, and starts `model`
/// answering. The outer error is Ayush's (over a limit, no such model); the inner one the
/// model's or provider's.
pub async fn open(
    state: &AppState,
    user_id: i64,
    model: &str,
    prompt: Vec<ChatMessage>,
    params: GenerateParams,
) -> AppResult<Result<Completion, ModelError>> {
    params.validate().map_err(AppError::validation)?;
    let limit = state.config.chat.max_tokens_limit;
    if params.max_tokens > limit {
        return Err(AppError::validation(format!(
            "max_tokens is at most {limit} here (asked for {})",
            params.max_tokens
        )));
    }
    let slot = state.generations.start(user_id)?;
    let opened = crate::catalog::open_chat(state, user_id, model, prompt, params).await?;
    Ok(opened.map(|handle| Completion { handle, _slot: slot }))
}

/// The sealed question and answer for an event's details, when the chat content policy
/// captures `user_id`'s chats.
pub fn capture(
    conn: &mut Conn,
    state: &AppState,
    user_id: i64,
    binding: &Binding,
    question: &str,
    answer: &str,
) -> AppResult<Option<serde_json::Value>> {
    let captured = Captured { question: question.to_string(), answer: answer.to_string() };
    content::capture(
        conn,
        state.audit.keys(),
        &state.config.audit.capture_chat_content_groups,
        user_id,
        binding,
        &captured,
    )
}

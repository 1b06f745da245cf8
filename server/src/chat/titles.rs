//! A chat's title, written by a model after the first answer: a few words instead of the first
//! line of the first message. The chat's own model writes it, or `chat.title_model`; it is an
//! answer like any other (quotas, usage, an audit event `chat.title`), and it replaces only a
//! title nobody has changed since.

use super::Chat;
use super::complete::{self, Asker, Filing, Step};
use super::store;
use crate::audit::content::Binding;
use ayush_models::{ChatMessage, GenerateParams};

/// How much of the question and the answer the title is written from.
const CONTEXT_CHARS: usize = 1200;

/// The model's words as a title: one line, no quotes, Markdown or trailing stop, at most 80
/// characters; `None` when nothing usable is left.
pub fn clean(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line.strip_prefix("Title:").or_else(|| line.strip_prefix("title:")).unwrap_or(line);
    let trimmed = line.trim_matches(|c: char| "\"'`*#_“”‘’.:;,".contains(c) || c.is_whitespace());
    if trimmed.is_empty() {
        return None;
    }
    Some(store::shortened(trimmed, 80))
}

fn excerpt(text: &str) -> String {
    text.chars().take(CONTEXT_CHARS).collect()
}

/// Writes and stores the title of conversation `id` after its first exchange; the title it
/// stored, if it did. Anything that stands in the way (a quota, a model that fails, a title the
/// person changed meanwhile) leaves the title as it was.
pub async fn write(
    chat: &Chat,
    asker: Asker,
    id: i64,
    chat_model: &str,
    question: &str,
    answer: &str,
) -> Option<String> {
    let configured = Some(chat.config.chat.title_model.clone()).filter(|m| !m.is_empty());
    // The configured model where the person may use it, else the chat's own.
    let preferred = match configured {
        Some(m) => complete::usable(chat, &asker.actor, Some(m)).await.ok(),
        None => None,
    };
    let model = match preferred {
        Some(m) => m,
        None => complete::usable(chat, &asker.actor, Some(chat_model.to_string())).await.ok()?,
    };
    let admission = complete::admit(chat, &asker, &model).await.ok()?;
    let prompt = vec![
        ChatMessage::new(
            "system",
            "You name conversations. Reply with a title of two to six words in the language of the \
             conversation, and nothing else: no quotes, no punctuation at the end.",
        ),
        ChatMessage::new(
            "user",
            &format!(
                "The conversation starts with this message:\n\n{}\n\nand this answer:\n\n{}\n\nIts title:",
                excerpt(question),
                excerpt(answer)
            ),
        ),
    ];
    let params = GenerateParams { max_tokens: 24, temperature: 0.0, ..GenerateParams::default() };
    let mut answer = complete::open(chat, asker, admission, &model, prompt, params).await.ok()?.ok()?;
    let ended = loop {
        if let Step::End(ended) = answer.next().await {
            break *ended;
        }
    };
    let title = if ended.error().is_none() { clean(&ended.text) } else { None };
    let first = store::first_line(question);
    let filing = Filing {
        action: "chat.title",
        target: ("conversation", id.to_string()),
        binding: Binding::Conversation(id),
        details: serde_json::json!({}),
    };
    let proposed = title.clone();
    let stored = complete::record(chat, &ended, filing, move |c, details| {
        let untouched = store::title_of(c, id)?.is_some_and(|t| t == first);
        let stored = proposed.filter(|_| untouched);
        if let Some(t) = &stored {
            store::set_title(c, id, t)?;
        }
        details["title"] = serde_json::json!(stored);
        Ok(stored)
    })
    .await;
    stored.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_words_become_a_title() {
        assert_eq!(clean("\"Quarterly Budget Review\"").as_deref(), Some("Quarterly Budget Review"));
        assert_eq!(
            clean("Title: **Onboarding checklist**.\nMore text").as_deref(),
            Some("Onboarding checklist")
        );
        assert_eq!(clean("\n\n  # Rust lifetimes  \n").as_deref(), Some("Rust lifetimes"));
        assert_eq!(clean("  \n \"\" "), None);
        assert!(clean(&"word ".repeat(40)).unwrap().ends_with('…'));
    }
}

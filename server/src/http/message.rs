//! One chat message as the pages show it, rendered by the `message.html` partial: the chat
//! page lists them, and a streamed reply's `done` event carries the reply rendered the same
//! way (`item`), so a reply looks alike whether it was streamed or loaded.

use crate::chat::markdown;
use crate::chat::sources::Citation;
use crate::chat::store::Message;
use crate::url::encode_component;
use askama::Template;

/// A message as the chat page shows it.
pub struct MessageView {
    pub id: i64,
    pub role: String,
    pub content: String,
    /// A reply's Markdown, rendered and sanitised.
    pub html: String,
    pub model: Option<String>,
    pub error: Option<String>,
    pub finish_reason: Option<String>,
    /// The passages the reply was given (those the viewer may still read).
    pub citations: Vec<Citation>,
    /// The images drawn for the reply.
    pub images: Vec<i64>,
    /// What the reply took, for its footer.
    pub stats: Stats,
}

/// A reply's tokens in and out, its time to the first text and its whole duration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub ttft_ms: Option<i64>,
    pub latency_ms: Option<i64>,
}

fn seconds(ms: i64) -> String {
    if ms < 10_000 { format!("{:.1} s", ms as f64 / 1000.0) } else { format!("{} s", (ms + 500) / 1000) }
}

impl Stats {
    /// "12 in · 48 out · first text 0.4 s · 2.3 s", or nothing for a reply with no counts.
    pub fn line(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let (Some(i), Some(o)) = (self.prompt_tokens, self.completion_tokens)
            && i + o > 0
        {
            parts.push(format!("{i} tokens in · {o} out"));
        }
        if let Some(t) = self.ttft_ms {
            parts.push(format!("first text after {}", seconds(t)));
        }
        if let Some(d) = self.latency_ms.filter(|d| *d > 0) {
            parts.push(format!("{} in all", seconds(d)));
        }
        (!parts.is_empty()).then(|| parts.join(" · "))
    }
}

impl MessageView {
    /// A stored message, with the sources it cites that the viewer may still read.
    pub fn of(m: Message, citations: Vec<Citation>, images: Vec<i64>) -> MessageView {
        let stats = Stats {
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            ttft_ms: m.ttft_ms,
            latency_ms: m.latency_ms,
        };
        MessageView {
            stats,
            html: if m.role == "assistant" { markdown::to_html(&m.content) } else { String::new() },
            id: m.id,
            role: m.role,
            content: m.content,
            model: m.model,
            error: m.error,
            finish_reason: m.finish_reason,
            citations,
            images,
        }
    }

    pub fn image_url(&self, id: &i64) -> String {
        crate::chat::conversations::image_url(*id)
    }

    pub fn file_url(&self, c: &Citation) -> String {
        format!("/api/collections/{}/documents/{}/file", encode_component(&c.collection), c.document_id)
    }

    /// The `<li>` of this message.
    pub fn render(&self) -> String {
        Item { m: self }.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot render a chat message");
            String::new()
        })
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct Item<'a> {
    m: &'a MessageView,
}

//! The chat content policy: by default the audit log records that a chat turn happened (who,
//! when, model, token counts, outcome) but not what was said. For members of the groups named in
//! `audit.capture_chat_content_groups`, the question and the answer are captured too, encrypted
//! with AES-256-GCM under a key kept outside the database and bound to the conversation (or, for
//! a `/v1` call, to the call's id), so a copy of the database reveals nothing and a sealed
//! turn cannot be moved to another event. The policy applies alike to the web chat and `/v1`.
//! Auditors read a captured turn in the viewer; each reading is itself recorded.

use super::keys::Keys;
use crate::error::AppResult;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    pub question: String,
    pub answer: String,
}

/// Whether the policy captures the chats of someone in the groups `member_of`.
pub fn captures(policy_groups: &[String], member_of: &[String]) -> bool {
    member_of.iter().any(|g| policy_groups.contains(g))
}

/// What a captured turn is sealed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// A web chat turn, in this conversation (the event's target).
    Conversation(i64),
    /// A `/v1` call, by the completion id it answered with (the event's `details.call`).
    Call(String),
}

impl Binding {
    /// What an event's content is sealed to, read from the event.
    pub fn of(target_type: Option<&str>, target_id: Option<&str>, details: &Value) -> Option<Binding> {
        if let Some(call) = details.get("call").and_then(Value::as_str) {
            return Some(Binding::Call(call.to_string()));
        }
        match target_type {
            Some("conversation") => target_id?.parse().ok().map(Binding::Conversation),
            _ => None,
        }
    }

    /// For the record of who read it.
    pub fn to_json(&self) -> Value {
        match self {
            Binding::Conversation(id) => json!({"conversation": id}),
            Binding::Call(id) => json!({"call": id}),
        }
    }
}

fn aad(binding: &Binding) -> Vec<u8> {
    match binding {
        Binding::Conversation(id) => format!("ayush-audit-content-v1\nconversation:{id}"),
        Binding::Call(id) => format!("ayush-audit-content-v1\ncall:{id}"),
    }
    .into_bytes()
}

/// The `content` value stored in a chat event's details.
pub fn seal(keys: &Keys, binding: &Binding, captured: &Captured) -> Result<Value, String> {
    let plain = serde_json::to_vec(captured).map_err(|e| e.to_string())?;
    let (nonce, sealed) = keys.encrypt(&plain, &aad(binding))?;
    Ok(json!({"alg": "A256GCM", "nonce": STANDARD.encode(nonce), "ciphertext": STANDARD.encode(sealed)}))
}

/// The sealed question and answer for an event's details, when the policy captures the chats
/// of someone in the groups `member_of`; `None` when it does not.
pub fn capture(
    keys: &Keys,
    policy_groups: &[String],
    member_of: &[String],
    binding: &Binding,
    captured: &Captured,
) -> AppResult<Option<Value>> {
    if !captures(policy_groups, member_of) {
        return Ok(None);
    }
    seal(keys, binding, captured)
        .map(Some)
        .map_err(|e| crate::error::AppError::internal(format!("capturing chat content: {e}")))
}

/// Opens what `seal` stored, given the event's details and what it is bound to.
pub fn open(keys: &Keys, details: &Value, binding: &Binding) -> Result<Captured, String> {
    let content = details.get("content").ok_or("this event holds no captured content")?;
    let field = |k: &str| {
        content[k]
            .as_str()
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or_else(|| format!("the captured content's {k} is damaged"))
    };
    let plain = keys.decrypt(&field("nonce")?, &field("ciphertext")?, &aad(binding))?;
    serde_json::from_slice(&plain).map_err(|e| format!("the captured content is damaged: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_opens_only_for_its_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load_or_create(dir.path()).unwrap();
        let captured = Captured { question: "What is our bonus policy?".into(), answer: "Annual.".into() };
        let seven = Binding::Conversation(7);
        let sealed = seal(&keys, &seven, &captured).unwrap();
        assert!(!sealed.to_string().contains("bonus"), "stored encrypted");
        let details = json!({"model": "m", "content": sealed});
        assert_eq!(Binding::of(Some("conversation"), Some("7"), &details), Some(seven.clone()));
        assert_eq!(open(&keys, &details, &seven).unwrap(), captured);
        assert!(open(&keys, &details, &Binding::Conversation(8)).unwrap_err().contains("cannot decrypt"));
        assert!(open(&keys, &details, &Binding::Call("7".into())).unwrap_err().contains("cannot decrypt"));
        assert!(open(&keys, &json!({}), &seven).unwrap_err().contains("no captured content"));

        let call = Binding::Call("chatcmpl-abc".into());
        let details = json!({"call": "chatcmpl-abc", "content": seal(&keys, &call, &captured).unwrap()});
        assert_eq!(Binding::of(Some("model"), Some("m"), &details), Some(call.clone()));
        assert_eq!(open(&keys, &details, &call).unwrap(), captured);
        assert_eq!(Binding::of(Some("model"), Some("m"), &json!({})), None);
    }
}

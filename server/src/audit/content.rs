//! The chat content policy: by default the audit log records that a chat turn happened (who,
//! when, model, token counts, outcome) but not what was said. For members of the groups named in
//! `audit.capture_chat_content_groups`, the question and the answer are captured too, encrypted
//! with AES-256-GCM under a key kept outside the database and bound to the conversation, so a
//! copy of the database reveals nothing. Auditors read a captured turn in the viewer; each
//! reading is itself recorded.

use super::keys::Keys;
use crate::auth::groups;
use crate::error::AppResult;
use crate::store::Conn;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Captured {
    pub question: String,
    pub answer: String,
}

/// Whether the policy captures `user_id`'s chats.
pub fn captures(conn: &mut Conn, policy_groups: &[String], user_id: i64) -> AppResult<bool> {
    if policy_groups.is_empty() {
        return Ok(false);
    }
    Ok(groups::of_user(conn, user_id)?.iter().any(|g| policy_groups.contains(g)))
}

fn aad(conversation_id: i64) -> Vec<u8> {
    format!("ayush-audit-content-v1\nconversation:{conversation_id}").into_bytes()
}

/// The `content` value stored in a chat event's details.
pub fn seal(keys: &Keys, conversation_id: i64, captured: &Captured) -> Result<Value, String> {
    let plain = serde_json::to_vec(captured).map_err(|e| e.to_string())?;
    let (nonce, sealed) = keys.encrypt(&plain, &aad(conversation_id))?;
    Ok(json!({"alg": "A256GCM", "nonce": STANDARD.encode(nonce), "ciphertext": STANDARD.encode(sealed)}))
}

/// Opens what `seal` stored, given the event's details and target.
pub fn open(keys: &Keys, details: &Value, conversation_id: i64) -> Result<Captured, String> {
    let content = details.get("content").ok_or("this event holds no captured content")?;
    let field = |k: &str| {
        content[k]
            .as_str()
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or_else(|| format!("the captured content's {k} is damaged"))
    };
    let plain = keys.decrypt(&field("nonce")?, &field("ciphertext")?, &aad(conversation_id))?;
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
        let sealed = seal(&keys, 7, &captured).unwrap();
        assert!(!sealed.to_string().contains("bonus"), "stored encrypted");
        let details = json!({"model": "m", "content": sealed});
        assert_eq!(open(&keys, &details, 7).unwrap(), captured);
        assert!(open(&keys, &details, 8).unwrap_err().contains("cannot decrypt"));
        assert!(open(&keys, &json!({}), 7).unwrap_err().contains("no captured content"));
    }
}

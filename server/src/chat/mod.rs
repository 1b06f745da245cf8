//! Conversations with models: storage, the turn (prompt assembly, streaming, storing the
//! reply with its usage and audit event), and Markdown rendering of replies.

pub mod complete;
pub mod markdown;
pub mod sources;
pub mod store;
pub mod turn;

//! Conversations with models: storage, the turn (prompt assembly, streaming, storing the
//! reply with its usage and audit event), and Markdown rendering of replies.

pub mod complete;
pub mod conversations;
pub mod highlight;
pub mod markdown;
pub mod math;
pub mod sources;
pub mod store;
pub mod titles;
pub mod turn;

use crate::audit::Ledger;
use crate::catalog::Catalog;
use crate::catalog::remote::Remotes;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::knowledge::SharedKnowledge;
use crate::limits::{PerPerson, TurnLocks};
use crate::store::Store;
use std::sync::Arc;

/// The Chat service: what answering needs of the server (`AppState::chat` fills it in), so
/// the completion core and the web chat's turn sit below `state` like the other capabilities.
#[derive(Clone)]
pub struct Chat {
    pub store: Store,
    pub clock: SharedClock,
    pub config: Arc<Config>,
    pub catalog: Arc<Catalog>,
    /// Remote providers, connected on first use.
    pub remotes: Arc<Remotes>,
    /// The index the chat's sources are searched in.
    pub knowledge: SharedKnowledge,
    /// The keys captured chat content is sealed with.
    pub audit: Arc<Ledger>,
    /// One turn at a time per conversation.
    pub turns: Arc<TurnLocks>,
    /// How many answers each person has generating.
    pub generations: Arc<PerPerson>,
    /// Quotas every answer is checked against.
    pub usage: crate::usage::Usage,
}

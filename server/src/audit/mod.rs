//! Audit events. `record` is the single way an event is written, always on the caller's
//! connection so the event and the change it describes commit in one transaction, sealed into
//! the hash chain (`chain`) as it is written. Signed checkpoints and the head kept outside the
//! database (`anchor`) catch what the chain alone cannot: a log cut off at the end.

pub mod anchor;
pub mod chain;
pub mod content;
pub mod keys;
pub mod ledger;
pub mod log;
pub mod query;
pub mod retention;
pub mod sink;
pub mod verify;

pub use chain::Chain;
pub use keys::Keys;
pub use ledger::Ledger;

use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::schema::audit_events;
use crate::store::{Conn, columns};
use diesel::prelude::*;
use serde::Serialize;

/// Who did it, from where.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub name: String,
    /// `password`, `session`, `api_token`, `local_cli`.
    pub method: Option<String>,
    /// The API token the request came with.
    pub api_key_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// An administrator working on the data directory with `ayushctl --local`.
    /// Ayush itself, doing `what` on its own (retention, a scheduled backup, …).
    pub fn system(what: &str) -> Actor {
        Actor { name: format!("system:{what}"), method: Some("system".into()), ..Default::default() }
    }

    pub fn local_cli() -> Actor {
        let who = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        Actor { name: format!("local:{who}"), method: Some("local_cli".into()), ..Default::default() }
    }

    /// Someone not yet signed in (a sign-in attempt), named by what they typed.
    pub fn anonymous(claimed: &str, ip: Option<String>, user_agent: Option<String>) -> Actor {
        Actor {
            name: claimed.to_string(),
            method: Some("password".into()),
            ip,
            user_agent,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub target: Option<(&'a str, String)>,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

impl<'a> Event<'a> {
    pub fn new(actor: &'a Actor, action: &'a str, outcome: Outcome) -> Self {
        Event { actor, action, target: None, outcome, details: serde_json::Value::Object(Default::default()) }
    }
    pub fn target(mut self, kind: &'a str, id: impl ToString) -> Self {
        self.target = Some((kind, id.to_string()));
        self
    }
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    #[serde(skip)]
    pub id: i64,
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub auth_method: Option<String>,
    pub api_key_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub details: String,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl AuditEvent {
    pub fn fields(&self) -> chain::Fields<'_> {
        chain::Fields {
            seq: self.seq,
            at: self.at,
            actor_id: self.actor_id,
            actor_name: &self.actor_name,
            auth_method: self.auth_method.as_deref(),
            api_key_id: self.api_key_id,
            ip: self.ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            action: &self.action,
            target_type: self.target_type.as_deref(),
            target_id: self.target_id.as_deref(),
            outcome: &self.outcome,
            details: &self.details,
            prev_hash: self.prev_hash.as_deref().unwrap_or_default(),
        }
    }
}

/// A new row: the sealed fields and their MAC.
#[derive(Insertable)]
#[diesel(table_name = audit_events)]
struct NewAuditEvent<'a> {
    #[diesel(embed)]
    fields: chain::Fields<'a>,
    hash: String,
}

/// Writes one event on `conn`; call it inside the transaction that makes the change (last, after
/// the change: the chain head stays locked until that transaction ends).
///
/// With `audit.fail_closed` a failure fails the caller, so its transaction rolls back and the
/// change is not made. Without it the event is written in a savepoint, and a failure is logged
/// and counted while the change goes through.
pub fn record(conn: &mut Conn, now: i64, event: &Event<'_>) -> AppResult<()> {
    let chain = Chain::of(conn)?;
    // Always its own transaction (a savepoint inside the caller's): the head moves, the event is
    // stored and the head takes its MAC together, or none of them, so a reader never sees one
    // without the others. fail_closed only decides whether a failure fails the caller's change.
    let written = conn.transaction(|c| write(c, &chain, now, event));
    match written {
        Ok(()) => Ok(()),
        Err(e) => {
            chain.note_write_failure();
            tracing::error!(error = %e, action = event.action, "cannot write an audit event");
            if chain.fail_closed {
                Err(AppError::new(
                    ErrorKind::Unavailable,
                    "the audit log cannot be written, so nothing was changed; tell your administrator",
                )
                .with_retry_after(30))
            } else {
                Ok(())
            }
        }
    }
}

fn write(conn: &mut Conn, chain: &Chain, now: i64, event: &Event<'_>) -> QueryResult<()> {
    let (seq, prev_hash) = chain::advance_head(conn)?;
    let details = event.details.to_string();
    let fields = chain::Fields {
        seq,
        at: now,
        actor_id: event.actor.user_id,
        actor_name: &event.actor.name,
        auth_method: event.actor.method.as_deref(),
        api_key_id: event.actor.api_key_id,
        ip: event.actor.ip.as_deref(),
        user_agent: event.actor.user_agent.as_deref().map(|ua| truncate(ua, 512)),
        action: event.action,
        target_type: event.target.as_ref().map(|(k, _)| *k),
        target_id: event.target.as_ref().map(|(_, id)| id.as_str()),
        outcome: event.outcome.as_str(),
        details: &details,
        prev_hash: &prev_hash,
    };
    let hash = chain.seal(&fields, &mut Vec::with_capacity(256));
    let row = NewAuditEvent { fields, hash };
    conn.execute(diesel::insert_into(audit_events::table).values(&row))?;
    chain::set_head_hash(conn, &row.hash)
}

/// The newest events first.
pub fn recent(conn: &mut Conn, limit: i64) -> AppResult<Vec<AuditEvent>> {
    Ok(conn.load(
        audit_events::table.order(audit_events::seq.desc()).limit(limit).select(columns::<AuditEvent>()),
    )?)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

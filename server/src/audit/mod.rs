//! Audit events. `record` is the single way an event is written, always on the caller's
//! connection so the event and the change it describes commit in one transaction. The hash
//! chain, signed checkpoints, sinks and the viewer build on this table.

use crate::error::AppResult;
use crate::store::Conn;
use crate::store::schema::audit_events;
use crate::with_conn;
use diesel::prelude::*;
use serde::Serialize;

/// Who did it, from where.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub name: String,
    /// `password`, `session`, `api_token`, `local_cli`.
    pub method: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// An administrator working on the data directory with `ayushctl --local`.
    pub fn local_cli() -> Actor {
        let who = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        Actor { name: format!("local:{who}"), method: Some("local_cli".into()), ..Default::default() }
    }

    /// Someone not yet signed in (a sign-in attempt), named by what they typed.
    pub fn anonymous(claimed: &str, ip: Option<String>, user_agent: Option<String>) -> Actor {
        Actor { name: claimed.to_string(), method: Some("password".into()), ip, user_agent, user_id: None }
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
    pub id: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub auth_method: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub details: String,
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
struct NewAuditEvent<'a> {
    at: i64,
    actor_id: Option<i64>,
    actor_name: &'a str,
    auth_method: Option<&'a str>,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    action: &'a str,
    target_type: Option<&'a str>,
    target_id: Option<&'a str>,
    outcome: &'a str,
    details: String,
}

/// Writes one event on `conn`; call it inside the transaction that makes the change.
pub fn record(conn: &mut Conn, now: i64, event: &Event<'_>) -> AppResult<()> {
    let row = NewAuditEvent {
        at: now,
        actor_id: event.actor.user_id,
        actor_name: &event.actor.name,
        auth_method: event.actor.method.as_deref(),
        ip: event.actor.ip.as_deref(),
        user_agent: event.actor.user_agent.as_deref().map(|ua| truncate(ua, 512)),
        action: event.action,
        target_type: event.target.as_ref().map(|(k, _)| *k),
        target_id: event.target.as_ref().map(|(_, id)| id.as_str()),
        outcome: event.outcome.as_str(),
        details: event.details.to_string(),
    };
    with_conn!(conn, |c| diesel::insert_into(audit_events::table).values(&row).execute(c))?;
    Ok(())
}

/// The newest events first.
pub fn recent(conn: &mut Conn, limit: i64) -> AppResult<Vec<AuditEvent>> {
    Ok(with_conn!(conn, |c| (audit_events::table
        .order(audit_events::id.desc())
        .limit(limit)
        .select(AuditEvent::as_select()))
    .load(c))?)
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

//! Retention and legal hold. Events older than `audit.retention_days` are pruned only behind a
//! signed `retention` checkpoint at the cut, so what remains still verifies: the chain resumes
//! from the checkpoint's head. Events by or about a user under legal hold are kept (verified one
//! by one, as they no longer sit in an unbroken chain), and their conversations cannot be
//! deleted while the hold lasts.

use super::anchor::{self, Anchor, Checkpoint};
use super::keys::Keys;
use super::{Actor, Event, Outcome, chain};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Conn;
use crate::store::schema::{audit_events, legal_holds, users};
use diesel::prelude::*;
use serde::Serialize;

/// The checkpoint reason that marks a retention cut.
pub const RETENTION: &str = "retention";

#[derive(Debug, Clone, Serialize, Queryable)]
pub struct Hold {
    pub username: String,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: i64,
}

impl Hold {
    pub fn placed(&self) -> String {
        crate::clock::format_time(self.placed_at)
    }
}

pub fn holds(conn: &mut Conn) -> AppResult<Vec<Hold>> {
    Ok(conn.load(legal_holds::table.inner_join(users::table).order(users::username.asc()).select((
        users::username,
        legal_holds::reason,
        legal_holds::placed_by,
        legal_holds::placed_at,
    )))?)
}

pub fn is_held(conn: &mut Conn, user_id: i64) -> AppResult<bool> {
    let found: Option<i64> =
        conn.first(legal_holds::table.find(user_id).select(legal_holds::user_id)).optional()?;
    Ok(found.is_some())
}

fn user_id(conn: &mut Conn, username: &str) -> AppResult<i64> {
    conn.first(users::table.filter(users::username.eq(username)).select(users::id))
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("no user {username:?}")))
}

/// Places (or updates the reason of) a hold on a user.
pub fn place(conn: &mut Conn, now: i64, actor: &Actor, username: &str, reason: &str) -> AppResult<Hold> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 500 {
        return Err(AppError::new(
            ErrorKind::Validation,
            "a legal hold needs a reason of 1 to 500 characters",
        ));
    }
    conn.transaction(|conn| {
        let id = user_id(conn, username)?;
        conn.execute(diesel::delete(legal_holds::table.find(id)))?;
        conn.execute(diesel::insert_into(legal_holds::table).values((
            legal_holds::user_id.eq(id),
            legal_holds::reason.eq(reason),
            legal_holds::placed_by.eq(&actor.name),
            legal_holds::placed_at.eq(now),
        )))?;
        let event = Event::new(actor, "audit.hold_place", Outcome::Success)
            .target("user", username)
            .details(serde_json::json!({"reason": reason}));
        super::record(conn, now, &event)?;
        Ok(Hold {
            username: username.to_string(),
            reason: reason.to_string(),
            placed_by: actor.name.clone(),
            placed_at: now,
        })
    })
}

pub fn release(conn: &mut Conn, now: i64, actor: &Actor, username: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let id = user_id(conn, username)?;
        let removed = conn.execute(diesel::delete(legal_holds::table.find(id)))?;
        if removed == 0 {
            return Err(AppError::not_found(format!("{username} is not under legal hold")));
        }
        super::record(
            conn,
            now,
            &Event::new(actor, "audit.hold_release", Outcome::Success).target("user", username),
        )
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    /// Events up to and including this seq are gone, except those kept on hold.
    pub through_seq: i64,
    pub pruned: u64,
    pub kept_on_hold: u64,
    pub checkpoint: Checkpoint,
}

/// The highest seq a retention checkpoint has cut at, and the head there (from checkpoints
/// whose signature holds).
pub fn latest_cut<'a>(checkpoints: impl IntoIterator<Item = &'a Checkpoint>) -> Option<&'a Checkpoint> {
    checkpoints.into_iter().filter(|c| c.reason == RETENTION).max_by_key(|c| c.seq)
}

/// Prunes events older than `keep_days`, keeping the newest event whatever its age (the chain
/// must resume from something), every event after `not_after` (not yet sent to every SIEM
/// sink) and every event by or about a user under legal hold. Nothing happens when nothing new
/// is old enough.
#[allow(clippy::too_many_arguments)]
pub fn prune(
    conn: &mut Conn,
    keys: &Keys,
    anchor: &Anchor,
    now: i64,
    keep_days: u64,
    not_after: Option<i64>,
    actor: &Actor,
) -> AppResult<Option<Pruned>> {
    let cutoff = now.saturating_sub(keep_days as i64 * 86_400);
    conn.transaction(|conn| {
        let (head_seq, _) = chain::lock_head(conn)?;
        let first_young: Option<i64> = conn.first(
            audit_events::table
                .filter(audit_events::at.ge(cutoff))
                .select(diesel::dsl::min(audit_events::seq)),
        )?;
        let through =
            first_young.map_or(head_seq, |s| s - 1).min(head_seq - 1).min(not_after.unwrap_or(i64::MAX));
        let stored = anchor::stored_checkpoints(conn)?;
        let already = latest_cut(&stored).map_or(0, |c| c.seq);
        if through <= already {
            return Ok(None);
        }
        let head: Option<Option<String>> = conn
            .first(audit_events::table.filter(audit_events::seq.eq(through)).select(audit_events::hash))
            .optional()?;
        let Some(Some(head)) = head else {
            return Err(AppError::internal(format!(
                "cannot prune: audit event {through} is missing; run ayushctl audit verify"
            )));
        };
        let checkpoint = anchor::checkpoint_at(conn, keys, anchor, through, &head, now, RETENTION)?;
        let held: Vec<(i64, String)> =
            conn.load(legal_holds::table.inner_join(users::table).select((users::id, users::username)))?;
        let (ids, names): (Vec<i64>, Vec<String>) = held.into_iter().unzip();
        let pruned = conn.execute(diesel::delete(
            audit_events::table
                .filter(audit_events::seq.le(through))
                .filter(audit_events::actor_id.is_null().or(audit_events::actor_id.ne_all(ids.clone())))
                .filter(
                    audit_events::target_type
                        .is_null()
                        .or(audit_events::target_type.ne("user"))
                        .or(audit_events::target_id.is_null())
                        .or(audit_events::target_id.ne_all(names.clone())),
                ),
        ))? as u64;
        let kept_on_hold: i64 =
            conn.get_result(audit_events::table.filter(audit_events::seq.le(through)).count())?;
        let result = Pruned { through_seq: through, pruned, kept_on_hold: kept_on_hold as u64, checkpoint };
        let details = serde_json::json!({
            "keep_days": keep_days,
            "cutoff": cutoff,
            "through_seq": through,
            "pruned": pruned,
            "kept_on_hold": kept_on_hold,
        });
        super::record(conn, now, &Event::new(actor, "audit.retention", Outcome::Success).details(details))?;
        Ok(Some(result))
    })
}

//! API tokens for scripts and `ayushctl` in remote mode. Shown once at creation; only a SHA-256
//! of each is stored.

use super::secret;
use super::users::{self, User, UserRow};
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult};
use crate::store::schema::{api_tokens, users as users_t};
use crate::store::{Conn, columns};
use crate::with_conn;
use diesel::prelude::*;
use serde::Serialize;

pub const PREFIX: &str = "ayush_";

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked: bool,
}

/// Who is making a key: what the rules for keys need to know of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// A signed-in person (`user_id`), through the web UI or the API with a session.
    Session { user_id: i64, admin: bool },
    /// A script with an API key of `user_id`, which expires at `expires_at` (never: `None`).
    Key { user_id: i64, admin: bool, expires_at: Option<i64> },
    /// `ayushctl --local`: the operator of the data directory.
    Local,
}

impl Issuer {
    fn user_id(self) -> Option<i64> {
        match self {
            Issuer::Session { user_id, .. } | Issuer::Key { user_id, .. } => Some(user_id),
            Issuer::Local => None,
        }
    }

    fn admin(self) -> bool {
        match self {
            Issuer::Session { admin, .. } | Issuer::Key { admin, .. } => admin,
            Issuer::Local => true,
        }
    }
}

/// Whether `issuer` may make a key for `owner`: a person's keys are made by that person (so
/// nobody, admins included, holds a key that reads an auditor's log or someone's personal
/// collections without them); admins make service accounts' keys; on the data directory the
/// operator may also make admins' keys (bootstrap: whoever holds the data directory already
/// holds everything an admin does).
fn may_issue(issuer: Issuer, owner: &User) -> AppResult<()> {
    let own = issuer.user_id() == Some(owner.id);
    let allowed = own
        || (owner.is_service() && issuer.admin())
        || (issuer == Issuer::Local && owner.role == super::Role::Admin);
    if allowed {
        return Ok(());
    }
    Err(AppError::forbidden(format!(
        "{name}'s keys are made by {name}, signed in; admins make keys for themselves and for service accounts",
        name = owner.username
    )))
}

/// Creates a key for `username` that expires after `days` (never, without); the name is
/// trimmed. What the keys page, the API and `ayushctl keys create` call. A key may not outlive
/// the key that makes it.
pub fn create_for_days(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    issuer: Issuer,
    username: &str,
    name: &str,
    days: Option<u32>,
) -> AppResult<(ApiToken, String)> {
    let expires_at = match days {
        Some(0) => return Err(AppError::validation("expires_days must be at least 1")),
        Some(d) => Some(now + i64::from(d) * 86_400),
        None => None,
    };
    if let Issuer::Key { expires_at: Some(limit), .. } = issuer
        && expires_at.is_none_or(|e| e > limit)
    {
        let days_left = ((limit - now) / 86_400).max(0);
        return Err(AppError::validation(format!(
            "the key making this one expires on {}; a key it makes must expire by then (expires_days at most {days_left})",
            crate::clock::format_time(limit)
        )));
    }
    create(conn, now, actor, issuer, username, name.trim(), expires_at)
}

/// Creates a token for `username`; returns the secret, which is never shown again.
pub fn create(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    issuer: Issuer,
    username: &str,
    name: &str,
    expires_at: Option<i64>,
) -> AppResult<(ApiToken, String)> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AppError::validation("token name must be 1 to 64 characters"));
    }
    let secret = format!("{PREFIX}{}", secret::random_token());
    let shown_prefix: String = secret.chars().take(PREFIX.len() + 6).collect();
    conn.transaction(|conn| {
        let user = users::get(conn, username)?;
        may_issue(issuer, &user)?;
        if user.disabled {
            return Err(AppError::validation(format!("{username} is disabled; enable the account first")));
        }
        let id: i64 = conn.get_result(
            diesel::insert_into(api_tokens::table)
                .values((
                    api_tokens::user_id.eq(user.id),
                    api_tokens::name.eq(name),
                    api_tokens::token_hash.eq(secret::digest(&secret)),
                    api_tokens::prefix.eq(&shown_prefix),
                    api_tokens::created_at.eq(now),
                    api_tokens::expires_at.eq(expires_at),
                ))
                .returning(api_tokens::id),
        )?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "token.create", Outcome::Success)
                .target("api_token", id)
                .details(serde_json::json!({"user": username, "name": name, "expires_at": expires_at})),
        )?;
        let token = conn.first(api_tokens::table.find(id).select(columns::<ApiToken>()))?;
        Ok((token, secret.clone()))
    })
}

/// The token and its (enabled) user, if `secret` is a live token.
pub fn resolve(conn: &mut Conn, now: i64, secret: &str) -> AppResult<Option<(ApiToken, User)>> {
    if !secret.starts_with(PREFIX) {
        return Ok(None);
    }
    let Some((token, row)) = conn
        .first::<_, (ApiToken, UserRow)>(
            api_tokens::table
                .inner_join(users_t::table)
                .filter(api_tokens::token_hash.eq(secret::digest(secret)))
                .select((columns::<ApiToken>(), columns::<UserRow>())),
        )
        .optional()?
    else {
        return Ok(None);
    };
    if token.revoked || row.disabled || token.expires_at.is_some_and(|e| now >= e) {
        return Ok(None);
    }
    if token.last_used_at.is_none_or(|t| now - t >= 60) {
        conn.execute(diesel::update(api_tokens::table.find(token.id)).set(api_tokens::last_used_at.eq(now)))?;
    }
    Ok(Some((token, User::try_from(row)?)))
}

pub fn list(conn: &mut Conn, username: Option<&str>) -> AppResult<Vec<(ApiToken, String)>> {
    let name = username.map(str::to_string);
    Ok(with_conn!(conn, |c| {
        let all = api_tokens::table
            .inner_join(users_t::table)
            .order(api_tokens::id.asc())
            .select((columns::<ApiToken>(), users_t::username));
        match &name {
            Some(name) => all.filter(users_t::username.eq(name)).load(c),
            None => all.load(c),
        }
    })?)
}

/// Revokes every live token of a user, saying why (disabled, password reset, role changed,
/// deprovisioned); returns how many.
pub fn revoke_all(conn: &mut Conn, now: i64, actor: &Actor, user_id: i64, reason: &str) -> AppResult<usize> {
    conn.transaction(|conn| {
        let n = conn.execute(
            diesel::update(
                api_tokens::table
                    .filter(api_tokens::user_id.eq(user_id))
                    .filter(api_tokens::revoked.eq(false)),
            )
            .set(api_tokens::revoked.eq(true)),
        )?;
        if n > 0 {
            let event = Event::new(actor, "token.revoke", Outcome::Success)
                .target("user_tokens", user_id)
                .details(serde_json::json!({"count": n, "reason": reason}));
            audit::record(conn, now, &event)?;
        }
        Ok(n)
    })
}

/// Revokes one of `user_id`'s own tokens; someone else's is "not found".
pub fn revoke_own(conn: &mut Conn, now: i64, actor: &Actor, user_id: i64, id: i64) -> AppResult<()> {
    let owner: Option<i64> = conn.first(api_tokens::table.find(id).select(api_tokens::user_id)).optional()?;
    if owner != Some(user_id) {
        return Err(AppError::not_found(format!("no API key of yours with id {id}")));
    }
    revoke(conn, now, actor, id)
}

pub fn revoke(conn: &mut Conn, now: i64, actor: &Actor, id: i64) -> AppResult<()> {
    conn.transaction(|conn| {
        let n = conn.execute(diesel::update(api_tokens::table.find(id)).set(api_tokens::revoked.eq(true)))?;
        if n == 0 {
            return Err(AppError::not_found(format!("no API token with id {id}")));
        }
        audit::record(conn, now, &Event::new(actor, "token.revoke", Outcome::Success).target("api_token", id))
    })
}

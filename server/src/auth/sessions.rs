//! Server-side sessions, so any replica can serve any request and a sign-out or a disabled
//! account takes effect at once.

use super::secret;
use super::users::{User, UserRow};
use crate::config::AuthConfig;
use crate::error::AppResult;
use crate::store::schema::{sessions, users};
use crate::store::{Conn, columns};
use diesel::prelude::*;

/// `last_seen_at` is written at most this often, so reads do not all become writes.
const TOUCH_EVERY_SECS: i64 = 60;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id_hash: String,
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// A new session: the cookie value goes to the browser and nowhere else.
pub struct Issued {
    pub token: String,
    pub session: Session,
}

pub fn create(
    conn: &mut Conn,
    now: i64,
    cfg: &AuthConfig,
    user_id: i64,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> AppResult<Issued> {
    let token = secret::random_token();
    let session = Session {
        id_hash: secret::digest(&token),
        user_id,
        csrf_token: secret::random_token(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + (cfg.session_absolute_timeout_mins as i64) * 60,
    };
    conn.execute(diesel::insert_into(sessions::table).values((
        sessions::id_hash.eq(&session.id_hash),
        sessions::user_id.eq(user_id),
        sessions::csrf_token.eq(&session.csrf_token),
        sessions::created_at.eq(now),
        sessions::last_seen_at.eq(now),
        sessions::expires_at.eq(session.expires_at),
        sessions::ip.eq(ip),
        sessions::user_agent.eq(user_agent.map(|ua| ua.chars().take(512).collect::<String>())),
    )))?;
    Ok(Issued { token, session })
}

/// Why a presented session was refused; the caller audits expiries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    IdleExpired,
    AbsoluteExpired,
    UserDisabled,
}

/// What a presented session token turned out to be.
#[derive(Debug)]
pub enum Lookup {
    Live(Session, Box<User>),
    /// `user_id` is known when the session existed (it has now been deleted).
    Refused {
        why: Refusal,
        user_id: Option<i64>,
    },
}

/// The session and its user, if the token names a live session of an enabled user.
/// Expired sessions are deleted as they are found.
pub fn resolve(conn: &mut Conn, now: i64, cfg: &AuthConfig, token: &str) -> AppResult<Lookup> {
    let hash = secret::digest(token);
    let Some((session, row)) = conn
        .first::<_, (Session, UserRow)>(
            sessions::table
                .inner_join(users::table)
                .filter(sessions::id_hash.eq(&hash))
                .select((columns::<Session>(), columns::<UserRow>())),
        )
        .optional()?
    else {
        return Ok(Lookup::Refused { why: Refusal::Unknown, user_id: None });
    };
    let refusal = if row.disabled {
        Some(Refusal::UserDisabled)
    } else if now >= session.expires_at {
        Some(Refusal::AbsoluteExpired)
    } else if now - session.last_seen_at >= (cfg.session_idle_timeout_mins as i64) * 60 {
        Some(Refusal::IdleExpired)
    } else {
        None
    };
    if let Some(why) = refusal {
        delete(conn, token)?;
        return Ok(Lookup::Refused { why, user_id: Some(row.id) });
    }
    if now - session.last_seen_at >= TOUCH_EVERY_SECS {
        conn.execute(diesel::update(sessions::table.find(&hash)).set(sessions::last_seen_at.eq(now)))?;
    }
    Ok(Lookup::Live(session, Box::new(User::try_from(row)?)))
}

pub fn delete(conn: &mut Conn, token: &str) -> AppResult<bool> {
    let hash = secret::digest(token);
    Ok(conn.execute(diesel::delete(sessions::table.find(&hash)))? > 0)
}

pub fn count_for_user(conn: &mut Conn, user_id: i64) -> AppResult<i64> {
    Ok(conn.get_result(sessions::table.filter(sessions::user_id.eq(user_id)).count())?)
}

/// Removes sessions past their absolute expiry; run periodically.
pub fn purge_expired(conn: &mut Conn, now: i64) -> AppResult<usize> {
    Ok(conn.execute(diesel::delete(sessions::table.filter(sessions::expires_at.le(now))))?)
}

impl Lookup {
    pub fn is_live(&self) -> bool {
        matches!(self, Lookup::Live(..))
    }

    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Lookup::Live(..) => None,
            Lookup::Refused { why, .. } => Some(*why),
        }
    }
}

/// Notes the OIDC provider a session signed in through (for RP-initiated logout).
pub fn set_sso_provider(conn: &mut Conn, id_hash: &str, provider: &str) -> AppResult<()> {
    conn.execute(diesel::update(sessions::table.find(id_hash)).set(sessions::sso_provider.eq(provider)))?;
    Ok(())
}

/// The OIDC provider the session with this token signed in through, if any.
pub fn sso_provider(conn: &mut Conn, token: &str) -> AppResult<Option<String>> {
    let hash = secret::digest(token);
    let found: Option<Option<String>> =
        conn.first(sessions::table.find(&hash).select(sessions::sso_provider)).optional()?;
    Ok(found.flatten())
}

//! Password sign-in and sign-out, as plain steps over the store so the HTTP side stays thin.
//! Every attempt, success or failure, is an audit event.

use super::{password, sessions, throttle, users};
use crate::audit::{self, Actor, Event, Outcome};
use crate::clock::SharedClock;
use crate::config::AuthConfig;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Store;

pub struct Attempt {
    pub username: String,
    pub password: String,
    pub ip: String,
    pub user_agent: Option<String>,
    /// The session the browser held before, ended so the session id is never reused.
    pub previous_session: Option<String>,
}

pub struct SignedIn {
    pub user: users::User,
    pub issued: sessions::Issued,
}

fn invalid() -> AppError {
    AppError::new(ErrorKind::InvalidCredentials, "wrong username or password")
}

pub async fn sign_in(
    store: &Store,
    clock: &SharedClock,
    cfg: &AuthConfig,
    attempt: Attempt,
) -> AppResult<SignedIn> {
    let username = attempt.username.trim().to_string();
    let actor = Actor::anonymous(&username, Some(attempt.ip.clone()), attempt.user_agent.clone());
    if username.is_empty() || attempt.password.is_empty() {
        return Err(AppError::validation("enter a username and a password"));
    }
    let (now, cfg_owned, name, ip, actor2) =
        (clock.now(), cfg.clone(), username.clone(), attempt.ip.clone(), actor.clone());
    let found = store
        .run(move |c| {
            if let Some(wait) = throttle::locked_for(c, now, &cfg_owned, &name, &ip)? {
                audit::record(
                    c,
                    now,
                    &Event::new(&actor2, "auth.login", Outcome::Denied)
                        .target("user", &name)
                        .details(serde_json::json!({"reason": "locked_out", "retry_after": wait})),
                )?;
                return Err(AppError::new(ErrorKind::LockedOut, "too many failed sign-ins; try again later")
                    .with_retry_after(wait));
            }
            users::find_row(c, &name)
        })
        .await?;

    let stored = found.as_ref().and_then(|r| r.password_hash.clone());
    let password = attempt.password;
    let matches = tokio::task::spawn_blocking(move || password::verify(stored.as_deref(), &password))
        .await
        .map_err(AppError::internal)?;

    let reason = match &found {
        None => Some("unknown_user"),
        Some(row) if row.password_hash.is_none() => Some("no_local_password"),
        Some(_) if !matches => Some("wrong_password"),
        Some(row) if row.disabled => Some("disabled"),
        Some(_) => None,
    };
    let now = clock.now();
    let cfg = cfg.clone();
    let ip = attempt.ip;
    let ua = attempt.user_agent;
    let previous = attempt.previous_session;
    store
        .run(move |c| {
            c.transaction(|c| {
                if let Some(reason) = reason {
                    throttle::record_failure(c, now, &username, &ip)?;
                    audit::record(
                        c,
                        now,
                        &Event::new(&actor, "auth.login", Outcome::Failure)
                            .target("user", &username)
                            .details(serde_json::json!({"reason": reason})),
                    )?;
                    return Ok(Err(invalid()));
                }
                let row = found.ok_or_else(invalid)?;
                let user = users::User::try_from(row)?;
                if let Some(old) = previous {
                    sessions::delete(c, &old)?;
                }
                throttle::clear_account(c, &username)?;
                let issued = sessions::create(c, now, &cfg, user.id, Some(&ip), ua.as_deref())?;
                let actor = Actor { user_id: Some(user.id), ..actor.clone() };
                audit::record(
                    c,
                    now,
                    &Event::new(&actor, "auth.login", Outcome::Success).target("user", &username),
                )?;
                Ok(Ok(SignedIn { user, issued }))
            })
        })
        .await?
}

pub async fn sign_out(store: &Store, clock: &SharedClock, actor: Actor, token: String) -> AppResult<()> {
    let now = clock.now();
    store
        .run(move |c| {
            c.transaction(|c| {
                if sessions::delete(c, &token)? {
                    audit::record(c, now, &Event::new(&actor, "auth.logout", Outcome::Success))?;
                }
                Ok(())
            })
        })
        .await
}

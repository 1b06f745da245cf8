//! Password sign-in and sign-out, as plain steps over the store so the HTTP side stays thin.
//! Every attempt, success or failure, is an audit event.

use super::admission::{Admission, Client, Refusal, admit, refuse};
use super::ldap::{DirError, Directory};
use super::{Role, password, sessions, throttle, users};
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

/// How a sign-in is checked: local passwords always (the break-glass path); a directory too
/// when one is configured.
pub struct Authority<'a> {
    pub store: &'a Store,
    pub clock: &'a SharedClock,
    pub cfg: &'a AuthConfig,
    pub directory: Option<&'a Directory>,
    /// The role a directory user gets when no mapping grants one (`None`: no access).
    pub default_role: Option<Role>,
}

impl Authority<'_> {
    /// The account a sign-in as `typed` counts against, as the directory (if any) names it.
    pub fn account(&self, typed: &str) -> throttle::Account {
        throttle::Account::new(typed, self.directory.is_some_and(|d| d.settings().active_directory))
    }
}

pub async fn sign_in(authority: &Authority<'_>, attempt: Attempt) -> AppResult<SignedIn> {
    let (store, clock, cfg) = (authority.store, authority.clock, authority.cfg);
    let username = attempt.username.trim().to_string();
    let actor = Actor::anonymous(&username, Some(attempt.ip.clone()), attempt.user_agent.clone());
    if username.is_empty() || attempt.password.is_empty() {
        return Err(AppError::validation("enter a username and a password"));
    }
    let account = authority.account(&username);
    let (now, cfg_owned, name, ip, actor2, counted) =
        (clock.now(), cfg.clone(), username.clone(), attempt.ip.clone(), actor.clone(), account.clone());
    let found = store
        .run(move |c| {
            if let Some(wait) = throttle::locked_for(c, now, &cfg_owned, &counted, &ip)? {
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

    // Accounts with a local password sign in locally, whatever else is configured: that is the
    // break-glass path that works with the directory down. Everyone else goes to the directory.
    let has_local_password =
        found.as_ref().is_some_and(|r| r.auth_source == "local" && r.password_hash.is_some());
    if let Some(directory) = authority.directory
        && !has_local_password
    {
        return directory_sign_in(authority, directory, attempt, username, actor, account).await;
    }
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
                    throttle::record_failure(c, now, &account, &ip)?;
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
                throttle::clear_account(c, &account)?;
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

async fn directory_sign_in(
    authority: &Authority<'_>,
    directory: &Directory,
    attempt: Attempt,
    typed: String,
    actor: Actor,
    account: throttle::Account,
) -> AppResult<SignedIn> {
    let (store, clock) = (authority.store, authority.clock);
    let ip = attempt.ip.clone();
    let person = match directory.authenticate(&typed, &attempt.password).await {
        Ok(person) => person,
        Err(e) => {
            let (reason, error) = match &e {
                // Both look the same to the person signing in; the audit log says which.
                DirError::InvalidCredentials => ("wrong_password", invalid()),
                DirError::NotFound => ("unknown_user", invalid()),
                DirError::Ambiguous(_) => ("ambiguous_directory_entry", invalid()),
                DirError::Unavailable(_) | DirError::ServiceBind(_) | DirError::Protocol(_) => (
                    "directory_unavailable",
                    AppError::new(
                        ErrorKind::Unavailable,
                        "the directory is unavailable, so directory accounts cannot sign in right now; try again later",
                    )
                    .with_retry_after(30),
                ),
            };
            tracing::info!(user = %typed, error = %e, "directory sign-in refused");
            let details = serde_json::json!({"error": e.to_string()});
            let refusal = Refusal { reason, details, error };
            return refuse(store, clock.now(), actor, typed, ip, "ldap", Some(account), refusal).await;
        }
    };
    let now = clock.now();
    if person.disabled {
        let error = AppError::new(ErrorKind::Forbidden, "your directory account is disabled");
        let details = serde_json::json!({"dn": person.dn});
        let refusal = Refusal { reason: "disabled_in_directory", details, error };
        return refuse(store, now, actor, typed, ip, "ldap", Some(account), refusal).await;
    }
    if users::validate_username(&person.username).is_err() {
        let error = AppError::validation(format!(
            "your directory username {:?} cannot be a username here; ask your administrator",
            person.username
        ));
        let refusal = Refusal { reason: "unusable_username", details: serde_json::json!({}), error };
        return refuse(store, now, actor, typed, ip, "ldap", Some(account), refusal).await;
    }
    let admission = Admission {
        source: "ldap".into(),
        external_id: person.dn.clone(),
        strict_external_id: false,
        username: person.username,
        display_name: person.display_name,
        groups: person.groups,
        default_role: authority.default_role,
        create_users: true,
        link_by_email: false,
        email: person.email,
        lockout: Some(account),
    };
    let client =
        Client { ip: attempt.ip, user_agent: attempt.user_agent, previous_session: attempt.previous_session };
    admit(store, now, authority.cfg, admission, client, actor, typed).await
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

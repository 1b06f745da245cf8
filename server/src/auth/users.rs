//! Users: local accounts (and, later, directory accounts), their roles and their state.

use super::Role;
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult};
use crate::store::schema::{sessions, users};
use crate::store::{Conn, columns};
use diesel::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub role: String,
    pub disabled: bool,
    pub auth_source: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub kind: String,
    pub last_sign_in_at: Option<i64>,
    pub color_mode: Option<String>,
}

/// A person, or a service account: a script's identity, with no password and no personal data
/// (no chats, no personal collections); admins make its API keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Person,
    Service,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Person => "person",
            Kind::Service => "service",
        }
    }

    fn parse(s: &str) -> AppResult<Kind> {
        match s {
            "person" => Ok(Kind::Person),
            "service" => Ok(Kind::Service),
            other => Err(AppError::internal(format!("unknown account kind {other:?}"))),
        }
    }
}

/// A user as the rest of the app sees one: no password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub auth_source: String,
    pub created_at: i64,
    pub email: Option<String>,
    pub kind: Kind,
    pub last_sign_in_at: Option<i64>,
    /// Light or dark, as the person chose (`None`: the theme's mode, or the system's).
    pub color_mode: Option<String>,
}

impl TryFrom<UserRow> for User {
    type Error = AppError;
    fn try_from(r: UserRow) -> AppResult<User> {
        let role = r.role.parse().map_err(AppError::internal)?;
        Ok(User {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
            role,
            disabled: r.disabled,
            auth_source: r.auth_source,
            created_at: r.created_at,
            email: r.email,
            kind: Kind::parse(&r.kind)?,
            last_sign_in_at: r.last_sign_in_at,
            color_mode: r.color_mode,
        })
    }
}

impl User {
    pub fn shown_name(&self) -> &str {
        if self.display_name.is_empty() { &self.username } else { &self.display_name }
    }

    /// For the avatar in the page chrome.
    pub fn initial(&self) -> String {
        self.shown_name().chars().next().map(|c| c.to_uppercase().collect()).unwrap_or_default()
    }

    pub fn created(&self) -> String {
        crate::clock::format_time(self.created_at)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.role.as_str() == role
    }

    pub fn is_service(&self) -> bool {
        self.kind == Kind::Service
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUserRow<'a> {
    username: &'a str,
    display_name: &'a str,
    password_hash: Option<&'a str>,
    role: &'a str,
    disabled: bool,
    auth_source: &'a str,
    created_at: i64,
    updated_at: i64,
    email: Option<&'a str>,
    kind: &'a str,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    /// Already hashed (hashing is slow; callers do it off the connection).
    pub password_hash: Option<&'a str>,
    pub email: Option<&'a str>,
    pub kind: Kind,
}

impl<'a> NewUser<'a> {
    /// A person with no display name or email.
    pub fn person(username: &'a str, role: Role, password_hash: Option<&'a str>) -> NewUser<'a> {
        NewUser { username, display_name: "", role, password_hash, email: None, kind: Kind::Person }
    }
}

/// An email as stored: trimmed and lowercased, so a provider's claim matches it exactly.
pub fn normalize_email(email: &str) -> AppResult<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'));
    if ok { Ok(e) } else { Err(AppError::validation(format!("{email:?} is not an email address"))) }
}

pub fn validate_username(name: &str) -> AppResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(AppError::validation(format!(
            "username {name:?} must be 1 to 64 characters: letters, digits, '.', '_', '-' or '@', starting with a letter or digit"
        )))
    }
}

pub fn validate_display_name(name: &str) -> AppResult<()> {
    if name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(AppError::validation(
            "display name must be at most 128 characters, without control characters",
        ));
    }
    Ok(())
}

pub fn create(conn: &mut Conn, now: i64, actor: &Actor, new: &NewUser<'_>) -> AppResult<User> {
    validate_username(new.username)?;
    validate_display_name(new.display_name)?;
    if new.kind == Kind::Service {
        if new.password_hash.is_some() || new.email.is_some() {
            return Err(AppError::validation(
                "a service account has no password and no personal data (no email): it uses API keys",
            ));
        }
        if new.role == Role::Auditor {
            return Err(AppError::validation(
                "a service account is a user or an admin; auditors are people, who make their own keys",
            ));
        }
    }
    let email = new.email.map(normalize_email).transpose()?;
    let row = NewUserRow {
        username: new.username,
        display_name: new.display_name.trim(),
        password_hash: new.password_hash,
        role: new.role.as_str(),
        disabled: false,
        auth_source: "local",
        created_at: now,
        updated_at: now,
        email: email.as_deref(),
        kind: new.kind.as_str(),
    };
    conn.transaction(|conn| {
        if find_row(conn, new.username)?.is_some() {
            return Err(AppError::conflict(format!("a user named {:?} already exists", new.username)));
        }
        let id: i64 = conn.get_result(diesel::insert_into(users::table).values(&row).returning(users::id))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.create", Outcome::Success)
                .target("user", new.username)
                .details(serde_json::json!({"role": new.role, "user_id": id, "kind": new.kind})),
        )?;
        get_by_id(conn, id)
    })
}

/// An account a directory vouches for (LDAP, OIDC), created at first sign-in.
pub struct DirectoryAccount<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    /// `ldap`, or `oidc:<provider>`.
    pub source: &'a str,
    /// The account's identity there: its DN, or the issuer and subject.
    pub external_id: &'a str,
    pub email: Option<&'a str>,
}

/// Creates a directory account (no local password), recorded as `user.create` by `actor`.
pub fn create_from_directory(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    account: &DirectoryAccount<'_>,
) -> AppResult<User> {
    validate_username(account.username)?;
    let display_name: String = account.display_name.chars().filter(|c| !c.is_control()).take(128).collect();
    conn.transaction(|conn| {
        if find_row(conn, account.username)?.is_some() {
            return Err(AppError::conflict(format!("a user named {:?} already exists", account.username)));
        }
        let id: i64 = conn.get_result(diesel::insert_into(users::table)
            .values((
                users::username.eq(account.username),
                users::display_name.eq(display_name.trim()),
                users::role.eq(account.role.as_str()),
                users::disabled.eq(false),
                users::auth_source.eq(account.source),
                users::external_id.eq(account.external_id),
                users::email.eq(account.email.and_then(|e| normalize_email(e).ok())),
                users::created_at.eq(now),
                users::updated_at.eq(now),
            ))
            .returning(users::id))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.create", Outcome::Success).target("user", account.username).details(
                serde_json::json!({"role": account.role, "user_id": id, "source": account.source, "external_id": account.external_id}),
            ),
        )?;
        get_by_id(conn, id)
    })
}

/// The choices of light or dark a person may make; none is the theme's mode (or the system's).
pub const COLOR_MODES: [&str; 2] = ["light", "dark"];

/// Sets a person's own choice of light or dark (`None`: follow the theme), with its audit event.
pub fn set_color_mode(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    user_id: i64,
    mode: Option<&str>,
) -> AppResult<()> {
    if let Some(m) = mode.filter(|m| !COLOR_MODES.contains(m)) {
        return Err(AppError::validation(format!(
            "{m:?} is not a colour mode: light, dark, or none to follow the theme"
        )));
    }
    conn.transaction(|conn| {
        conn.execute(
            diesel::update(users::table.find(user_id))
                .set((users::color_mode.eq(mode), users::updated_at.eq(now))),
        )?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.color_mode", Outcome::Success)
                .target("user", &actor.name)
                .details(serde_json::json!({"color_mode": mode})),
        )
    })
}

/// Marks an existing account as the directory's (at its first directory sign-in) and keeps its
/// display name and email as the directory has them; notes the sign-in.
pub fn link_directory(conn: &mut Conn, now: i64, id: i64, account: &DirectoryAccount<'_>) -> AppResult<()> {
    let display_name: String = account.display_name.chars().filter(|c| !c.is_control()).take(128).collect();
    let email = account.email.and_then(|e| normalize_email(e).ok());
    conn.execute(diesel::update(users::table.find(id)).set((
        users::auth_source.eq(account.source),
        users::external_id.eq(account.external_id),
        users::display_name.eq(display_name.trim()),
        users::updated_at.eq(now),
    )))?;
    if let Some(email) = email {
        conn.execute(diesel::update(users::table.find(id)).set(users::email.eq(email)))?;
    }
    Ok(())
}

/// Notes a successful sign-in (directory accounts a provider stops vouching for are disabled
/// when this grows old).
pub fn note_sign_in(conn: &mut Conn, now: i64, id: i64) -> AppResult<()> {
    conn.execute(diesel::update(users::table.find(id)).set(users::last_sign_in_at.eq(now)))?;
    Ok(())
}

/// The account that holds this sign-in identity (`oidc:<provider>` and `issuer|subject`).
pub fn find_by_identity(conn: &mut Conn, source: &str, external_id: &str) -> AppResult<Option<UserRow>> {
    Ok(conn
        .first(
            users::table
                .filter(users::auth_source.eq(source))
                .filter(users::external_id.eq(external_id))
                .select(columns::<UserRow>()),
        )
        .optional()?)
}

/// People's accounts with this email that no sign-in identity holds yet and that have no
/// local password: those a provider's verified email may be linked to.
pub fn unlinked_with_email(conn: &mut Conn, email: &str) -> AppResult<Vec<UserRow>> {
    let Ok(email) = normalize_email(email) else { return Ok(Vec::new()) };
    Ok(conn.load(
        users::table
            .filter(users::email.eq(&email))
            .filter(users::auth_source.eq("local"))
            .filter(users::password_hash.is_null())
            .filter(users::external_id.is_null())
            .filter(users::kind.eq(Kind::Person.as_str()))
            .select(columns::<UserRow>()),
    )?)
}

/// An admin joins a sign-in identity to an existing account (`ayushctl user link`): from then
/// on, signing in as that identity is signing in as this account. An account with a local
/// password (a break-glass account) or a service account cannot be linked, nor can an identity
/// another account holds.
pub fn link_identity(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    username: &str,
    source: &str,
    external_id: &str,
) -> AppResult<User> {
    conn.transaction(|conn| {
        let row = find_row(conn, username)?
            .ok_or_else(|| AppError::not_found(format!("no user named {username:?}")))?;
        if row.password_hash.is_some() {
            return Err(AppError::conflict(format!(
                "{username} has a local password (a break-glass account); it signs in locally and cannot be linked"
            )));
        }
        if row.kind == Kind::Service.as_str() {
            return Err(AppError::conflict(format!("{username} is a service account; it does not sign in")));
        }
        if let Some(holder) = find_by_identity(conn, source, external_id)?
            && holder.id != row.id
        {
            return Err(AppError::conflict(format!(
                "that identity is already linked to {}; unlink it there first",
                holder.username
            )));
        }
        conn.execute(diesel::update(users::table.find(row.id))
            .set((
                users::auth_source.eq(source),
                users::external_id.eq(external_id),
                users::updated_at.eq(now),
            )))?;
        let details = serde_json::json!({"source": source, "external_id": external_id,
            "previous_source": row.auth_source, "previous_external_id": row.external_id});
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.link", Outcome::Success).target("user", username).details(details),
        )?;
        get_by_id(conn, row.id)
    })
}

pub fn find_row(conn: &mut Conn, username: &str) -> AppResult<Option<UserRow>> {
    Ok(conn
        .first(users::table.filter(users::username.eq(username)).select(columns::<UserRow>()))
        .optional()?)
}

pub fn get(conn: &mut Conn, username: &str) -> AppResult<User> {
    find_row(conn, username)?
        .ok_or_else(|| AppError::not_found(format!("no user named {username:?}")))?
        .try_into()
}

pub fn get_by_id(conn: &mut Conn, id: i64) -> AppResult<User> {
    conn.first::<_, UserRow>(users::table.find(id).select(columns::<UserRow>()))?.try_into()
}

pub fn list(conn: &mut Conn) -> AppResult<Vec<User>> {
    conn.load::<_, UserRow>(users::table.order(users::username.asc()).select(columns::<UserRow>()))?
        .into_iter()
        .map(User::try_from)
        .collect()
}

pub fn count(conn: &mut Conn) -> AppResult<i64> {
    Ok(conn.get_result(users::table.count())?)
}

fn count_active_admins(conn: &mut Conn) -> AppResult<i64> {
    Ok(conn.get_result(
        users::table.filter(users::role.eq(Role::Admin.as_str())).filter(users::disabled.eq(false)).count(),
    )?)
}

/// Refuses a change that would leave no enabled admin: recovery then needs `ayushctl --local`.
fn keep_an_admin(conn: &mut Conn, user: &User, becomes_admin: bool) -> AppResult<()> {
    if user.role == Role::Admin && !user.disabled && !becomes_admin && count_active_admins(conn)? <= 1 {
        return Err(AppError::conflict(format!("{} is the last enabled admin", user.username)));
    }
    Ok(())
}

/// A new role revokes the account's API keys: a key was made for what its owner did under the
/// old role.
pub fn set_role(conn: &mut Conn, now: i64, actor: &Actor, username: &str, role: Role) -> AppResult<User> {
    conn.transaction(|conn| {
        let user = get(conn, username)?;
        if user.role == role {
            return Ok(user);
        }
        if user.is_service() && role == Role::Auditor {
            return Err(AppError::validation("a service account is a user or an admin, never an auditor"));
        }
        keep_an_admin(conn, &user, role == Role::Admin)?;
        conn.execute(
            diesel::update(users::table.find(user.id))
                .set((users::role.eq(role.as_str()), users::updated_at.eq(now))),
        )?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.set_role", Outcome::Success)
                .target("user", username)
                .details(serde_json::json!({"from": user.role, "to": role})),
        )?;
        super::tokens::revoke_all(conn, now, actor, user.id, "role_changed")?;
        get_by_id(conn, user.id)
    })
}

/// Disabling signs the user out everywhere at once: their sessions end and their API keys are
/// revoked (enabling the account again does not bring them back).
pub fn set_disabled(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    username: &str,
    disabled: bool,
) -> AppResult<User> {
    conn.transaction(|conn| {
        let user = get(conn, username)?;
        if user.disabled == disabled {
            return Ok(user);
        }
        if disabled {
            keep_an_admin(conn, &user, false)?;
            let event = Event::new(actor, "user.disable", Outcome::Success).target("user", username);
            take_out_of_use(conn, now, actor, user.id, "disabled", |_| event)?;
        } else {
            conn.execute(
                diesel::update(users::table.find(user.id))
                    .set((users::disabled.eq(false), users::updated_at.eq(now))),
            )?;
            let event = Event::new(actor, "user.enable", Outcome::Success).target("user", username);
            audit::record(conn, now, &event)?;
        }
        get_by_id(conn, user.id)
    })
}

/// Disables an account and ends its sessions, records `event` (given how many sessions ended),
/// then revokes its API keys for `reason`: every way out of use goes through here, so none
/// leaves a session or a key working. Returns the sessions ended.
fn take_out_of_use<'a>(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    user_id: i64,
    reason: &str,
    event: impl FnOnce(usize) -> Event<'a>,
) -> AppResult<usize> {
    conn.execute(
        diesel::update(users::table.find(user_id)).set((users::disabled.eq(true), users::updated_at.eq(now))),
    )?;
    let ended = end_sessions(conn, user_id)?;
    audit::record(conn, now, &event(ended))?;
    super::tokens::revoke_all(conn, now, actor, user_id, reason)?;
    Ok(ended)
}

fn end_sessions(conn: &mut Conn, user_id: i64) -> AppResult<usize> {
    Ok(conn.execute(diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))))?)
}

/// Takes an account out of use for good, as when it left the directory: disabled, signed out,
/// its keys revoked and its group memberships dropped (a later sign-in through the directory
/// brings back only what the directory then says). Its chats, documents and audit trail stay.
pub fn deprovision(conn: &mut Conn, now: i64, actor: &Actor, username: &str) -> AppResult<User> {
    use crate::store::schema::group_members;
    conn.transaction(|conn| {
        let user = get(conn, username)?;
        keep_an_admin(conn, &user, false)?;
        let groups = super::groups::of_user(conn, user.id)?;
        conn.execute(diesel::delete(group_members::table.filter(group_members::user_id.eq(user.id))))?;
        take_out_of_use(conn, now, actor, user.id, "deprovisioned", |sessions| {
            let details =
                serde_json::json!({"source": user.auth_source, "sessions_ended": sessions, "groups_left": groups});
            Event::new(actor, "user.deprovision", Outcome::Success).target("user", username).details(details)
        })?;
        get_by_id(conn, user.id)
    })
}

/// Disables accounts of OpenID Connect providers that have not signed in since `cutoff`: only a
/// sign-in shows the provider still vouches for them. Their names.
pub fn disable_inactive_sso(conn: &mut Conn, now: i64, actor: &Actor, cutoff: i64) -> AppResult<Vec<String>> {
    let stale: Vec<(String, Option<i64>, i64)> = conn.load(
        users::table.filter(users::auth_source.like("oidc:%")).filter(users::disabled.eq(false)).select((
            users::username,
            users::last_sign_in_at,
            users::created_at,
        )),
    )?;
    let mut disabled = Vec::new();
    for (username, last, created) in stale {
        let seen = last.unwrap_or(created);
        if seen >= cutoff {
            continue;
        }
        conn.transaction(|conn| {
            let user = get(conn, &username)?;
            if keep_an_admin(conn, &user, false).is_err() {
                return Ok::<(), AppError>(());
            }
            take_out_of_use(conn, now, actor, user.id, "inactive", |_| {
                let details = serde_json::json!({"reason": "inactive", "last_sign_in_at": seen});
                Event::new(actor, "user.disable", Outcome::Success).target("user", &username).details(details)
            })?;
            disabled.push(username.clone());
            Ok(())
        })?;
    }
    Ok(disabled)
}

pub fn set_display_name(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    username: &str,
    name: &str,
) -> AppResult<User> {
    validate_display_name(name)?;
    conn.transaction(|conn| {
        let user = get(conn, username)?;
        conn.execute(
            diesel::update(users::table.find(user.id))
                .set((users::display_name.eq(name.trim()), users::updated_at.eq(now))),
        )?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.update", Outcome::Success).target("user", username),
        )?;
        get_by_id(conn, user.id)
    })
}

/// Sets a new password hash, ends the user's sessions and revokes their API keys, so whoever
/// knew the old password, or took a key with it, is out.
pub fn set_password(conn: &mut Conn, now: i64, actor: &Actor, username: &str, hash: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let user = get(conn, username)?;
        if user.is_service() {
            return Err(AppError::validation(format!(
                "{username} is a service account: it has no password, only API keys"
            )));
        }
        conn.execute(
            diesel::update(users::table.find(user.id))
                .set((users::password_hash.eq(hash), users::updated_at.eq(now))),
        )?;
        end_sessions(conn, user.id)?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.reset_password", Outcome::Success).target("user", username),
        )?;
        super::tokens::revoke_all(conn, now, actor, user.id, "password_reset")?;
        Ok(())
    })
}

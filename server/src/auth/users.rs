//! Users: local accounts (and, later, directory accounts), their roles and their state.

use super::Role;
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult};
use crate::store::Conn;
use crate::store::schema::{sessions, users};
use crate::with_conn;
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
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    /// Already hashed (hashing is slow; callers do it off the connection).
    pub password_hash: Option<&'a str>,
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
    let row = NewUserRow {
        username: new.username,
        display_name: new.display_name.trim(),
        password_hash: new.password_hash,
        role: new.role.as_str(),
        disabled: false,
        auth_source: "local",
        created_at: now,
        updated_at: now,
    };
    conn.transaction(|conn| {
        if find_row(conn, new.username)?.is_some() {
            return Err(AppError::conflict(format!("a user named {:?} already exists", new.username)));
        }
        let id: i64 = with_conn!(&mut *conn, |c| diesel::insert_into(users::table)
            .values(&row)
            .returning(users::id)
            .get_result(c))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.create", Outcome::Success)
                .target("user", new.username)
                .details(serde_json::json!({"role": new.role, "user_id": id})),
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
        let id: i64 = with_conn!(&mut *conn, |c| diesel::insert_into(users::table)
            .values((
                users::username.eq(account.username),
                users::display_name.eq(display_name.trim()),
                users::role.eq(account.role.as_str()),
                users::disabled.eq(false),
                users::auth_source.eq(account.source),
                users::external_id.eq(account.external_id),
                users::created_at.eq(now),
                users::updated_at.eq(now),
            ))
            .returning(users::id)
            .get_result(c))?;
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

/// Marks an existing account as the directory's (at its first directory sign-in) and keeps its
/// display name as the directory has it.
pub fn link_directory(
    conn: &mut Conn,
    now: i64,
    id: i64,
    source: &str,
    external_id: &str,
    display_name: &str,
) -> AppResult<()> {
    let display_name: String = display_name.chars().filter(|c| !c.is_control()).take(128).collect();
    with_conn!(conn, |c| diesel::update(users::table.find(id))
        .set((
            users::auth_source.eq(source),
            users::external_id.eq(external_id),
            users::display_name.eq(display_name.trim()),
            users::updated_at.eq(now),
        ))
        .execute(c))?;
    Ok(())
}

pub fn find_row(conn: &mut Conn, username: &str) -> AppResult<Option<UserRow>> {
    Ok(with_conn!(conn, |c| (users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select()))
    .first(c)
    .optional())?)
}

pub fn get(conn: &mut Conn, username: &str) -> AppResult<User> {
    find_row(conn, username)?
        .ok_or_else(|| AppError::not_found(format!("no user named {username:?}")))?
        .try_into()
}

pub fn get_by_id(conn: &mut Conn, id: i64) -> AppResult<User> {
    with_conn!(conn, |c| (users::table.find(id).select(UserRow::as_select())).first(c))?.try_into()
}

pub fn list(conn: &mut Conn) -> AppResult<Vec<User>> {
    with_conn!(conn, |c| (users::table.order(users::username.asc()).select(UserRow::as_select())).load(c))?
        .into_iter()
        .map(User::try_from)
        .collect()
}

pub fn count(conn: &mut Conn) -> AppResult<i64> {
    Ok(with_conn!(conn, |c| users::table.count().get_result(c))?)
}

fn count_active_admins(conn: &mut Conn) -> AppResult<i64> {
    Ok(with_conn!(conn, |c| (users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled.eq(false))
        .count())
    .get_result(c))?)
}

/// Refuses a change that would leave no enabled admin: recovery then needs `ayushctl --local`.
fn keep_an_admin(conn: &mut Conn, user: &User, becomes_admin: bool) -> AppResult<()> {
    if user.role == Role::Admin && !user.disabled && !becomes_admin && count_active_admins(conn)? <= 1 {
        return Err(AppError::conflict(format!("{} is the last enabled admin", user.username)));
    }
    Ok(())
}

pub fn set_role(conn: &mut Conn, now: i64, actor: &Actor, username: &str, role: Role) -> AppResult<User> {
    conn.transaction(|conn| {
        let user = get(conn, username)?;
        if user.role == role {
            return Ok(user);
        }
        keep_an_admin(conn, &user, role == Role::Admin)?;
        with_conn!(&mut *conn, |c| diesel::update(users::table.find(user.id))
            .set((users::role.eq(role.as_str()), users::updated_at.eq(now)))
            .execute(c))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.set_role", Outcome::Success)
                .target("user", username)
                .details(serde_json::json!({"from": user.role, "to": role})),
        )?;
        get_by_id(conn, user.id)
    })
}

/// Disabling signs the user out everywhere at once: their sessions and API tokens stop working.
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
        }
        with_conn!(&mut *conn, |c| diesel::update(users::table.find(user.id))
            .set((users::disabled.eq(disabled), users::updated_at.eq(now)))
            .execute(c))?;
        if disabled {
            with_conn!(&mut *conn, |c| diesel::delete(
                sessions::table.filter(sessions::user_id.eq(user.id))
            )
            .execute(c))?;
        }
        let action = if disabled { "user.disable" } else { "user.enable" };
        audit::record(conn, now, &Event::new(actor, action, Outcome::Success).target("user", username))?;
        get_by_id(conn, user.id)
    })
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
        with_conn!(&mut *conn, |c| diesel::update(users::table.find(user.id))
            .set((users::display_name.eq(name.trim()), users::updated_at.eq(now)))
            .execute(c))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.update", Outcome::Success).target("user", username),
        )?;
        get_by_id(conn, user.id)
    })
}

/// Sets a new password hash and ends the user's sessions, so whoever knew the old one is out.
pub fn set_password(conn: &mut Conn, now: i64, actor: &Actor, username: &str, hash: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let user = get(conn, username)?;
        with_conn!(&mut *conn, |c| diesel::update(users::table.find(user.id))
            .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
            .execute(c))?;
        with_conn!(&mut *conn, |c| diesel::delete(sessions::table.filter(sessions::user_id.eq(user.id)))
            .execute(c))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "user.reset_password", Outcome::Success).target("user", username),
        )
    })
}

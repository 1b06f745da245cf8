//! Groups and their members. Directory groups will map onto these; roles and document access
//! are granted to groups.

use super::users::{self, User};
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult};
use crate::store::schema::{group_members, groups, users as users_t};
use crate::store::{Conn, columns};
use diesel::prelude::*;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = groups)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    #[serde(flatten)]
    pub group: Group,
    pub members: i64,
}

pub fn validate_name(name: &str) -> AppResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' '))
        && name.trim() == name;
    if ok {
        Ok(())
    } else {
        Err(AppError::validation(format!(
            "group name {name:?} must be 1 to 64 characters: letters, digits, spaces, '.', '_' or '-'"
        )))
    }
}

pub fn create(conn: &mut Conn, now: i64, actor: &Actor, name: &str, description: &str) -> AppResult<Group> {
    validate_name(name)?;
    if description.chars().count() > 500 {
        return Err(AppError::validation("description must be at most 500 characters"));
    }
    conn.transaction(|conn| {
        if find(conn, name)?.is_some() {
            return Err(AppError::conflict(format!("a group named {name:?} already exists")));
        }
        conn.execute(diesel::insert_into(groups::table).values((
            groups::name.eq(name),
            groups::description.eq(description.trim()),
            groups::created_at.eq(now),
        )))?;
        audit::record(conn, now, &Event::new(actor, "group.create", Outcome::Success).target("group", name))?;
        get(conn, name)
    })
}

pub fn find(conn: &mut Conn, name: &str) -> AppResult<Option<Group>> {
    Ok(conn.first(groups::table.filter(groups::name.eq(name)).select(columns::<Group>())).optional()?)
}

pub fn get(conn: &mut Conn, name: &str) -> AppResult<Group> {
    find(conn, name)?.ok_or_else(|| AppError::not_found(format!("no group named {name:?}")))
}

pub fn list(conn: &mut Conn) -> AppResult<Vec<GroupSummary>> {
    let all: Vec<Group> = conn.load(groups::table.order(groups::name.asc()).select(columns::<Group>()))?;
    let counts: Vec<(i64, i64)> = conn.load(
        group_members::table
            .group_by(group_members::group_id)
            .select((group_members::group_id, diesel::dsl::count_star())),
    )?;
    Ok(all
        .into_iter()
        .map(|group| {
            let members = counts.iter().find(|(id, _)| *id == group.id).map_or(0, |(_, n)| *n);
            GroupSummary { group, members }
        })
        .collect())
}

pub fn members(conn: &mut Conn, group: &Group) -> AppResult<Vec<User>> {
    conn.load::<_, users::UserRow>(
        users_t::table
            .inner_join(group_members::table)
            .filter(group_members::group_id.eq(group.id))
            .order(users_t::username.asc())
            .select(columns::<users::UserRow>()),
    )?
    .into_iter()
    .map(User::try_from)
    .collect()
}

pub fn of_user(conn: &mut Conn, user_id: i64) -> AppResult<Vec<String>> {
    Ok(conn.load(
        groups::table
            .inner_join(group_members::table)
            .filter(group_members::user_id.eq(user_id))
            .order(groups::name.asc())
            .select(groups::name),
    )?)
}

pub fn add_member(conn: &mut Conn, now: i64, actor: &Actor, group: &str, username: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let g = get(conn, group)?;
        let u = users::get(conn, username)?;
        let exists = group_members::table.find((g.id, u.id)).count();
        if conn.get_result::<_, i64>(exists)? > 0 {
            return Ok(());
        }
        conn.execute(diesel::insert_into(group_members::table).values((
            group_members::group_id.eq(g.id),
            group_members::user_id.eq(u.id),
            group_members::added_at.eq(now),
        )))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "group.add_member", Outcome::Success)
                .target("group", group)
                .details(serde_json::json!({"user": username})),
        )
    })
}

pub fn remove_member(conn: &mut Conn, now: i64, actor: &Actor, group: &str, username: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let g = get(conn, group)?;
        let u = users::get(conn, username)?;
        let removed = conn.execute(diesel::delete(group_members::table.find((g.id, u.id))))?;
        if removed == 0 {
            return Err(AppError::not_found(format!("{username} is not a member of {group}")));
        }
        audit::record(
            conn,
            now,
            &Event::new(actor, "group.remove_member", Outcome::Success)
                .target("group", group)
                .details(serde_json::json!({"user": username})),
        )
    })
}

pub fn delete(conn: &mut Conn, now: i64, actor: &Actor, name: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let g = get(conn, name)?;
        conn.execute(diesel::delete(groups::table.find(g.id)))?;
        audit::record(conn, now, &Event::new(actor, "group.delete", Outcome::Success).target("group", name))
    })
}

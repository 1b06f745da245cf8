//! Who may use which model. A model no rule names is open to every signed-in user; once an
//! admin allows it to one or more groups, only their members may pick it, see it listed or chat
//! with it — admins included, who grant themselves a group like anyone else. Rules are kept by
//! model name and stay when a file is removed, so a file re-imported under a restricted name
//! is still restricted.

use super::ModelEntry;
use crate::audit::{self, Actor, Event, Outcome};
use crate::auth::groups;
use crate::error::{AppError, AppResult};
use crate::store::Conn;
use crate::store::schema::{group_members, groups as groups_t, model_access};
use diesel::prelude::*;
use std::collections::BTreeMap;

/// Every rule: model name to the names of the groups allowed, sorted.
pub fn rules(conn: &mut Conn) -> AppResult<BTreeMap<String, Vec<String>>> {
    let rows: Vec<(String, String)> = conn.load(
        model_access::table
            .inner_join(groups_t::table)
            .select((model_access::model, groups_t::name))
            .order((model_access::model.asc(), groups_t::name.asc())),
    )?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (model, group) in rows {
        out.entry(model).or_default().push(group);
    }
    Ok(out)
}

fn user_group_ids(conn: &mut Conn, user_id: i64) -> AppResult<Vec<i64>> {
    Ok(conn.load(
        group_members::table.filter(group_members::user_id.eq(user_id)).select(group_members::group_id),
    )?)
}

fn allowed_group_ids(conn: &mut Conn, model: &str) -> AppResult<Vec<i64>> {
    Ok(conn.load(model_access::table.filter(model_access::model.eq(model)).select(model_access::group_id))?)
}

pub fn may_use(conn: &mut Conn, user_id: i64, model: &str) -> AppResult<bool> {
    let allowed = allowed_group_ids(conn, model)?;
    if allowed.is_empty() {
        return Ok(true);
    }
    let mine = user_group_ids(conn, user_id)?;
    Ok(allowed.iter().any(|g| mine.contains(g)))
}

/// Refuses, with an audit event, a user who may not use `model`.
pub fn check(conn: &mut Conn, now: i64, actor: &Actor, model: &str) -> AppResult<()> {
    let Some(user_id) = actor.user_id else { return Ok(()) };
    if may_use(conn, user_id, model)? {
        return Ok(());
    }
    audit::record(conn, now, &Event::new(actor, "model.use", Outcome::Denied).target("model", model))?;
    Err(AppError::forbidden(format!(
        "you may not use the model {model:?}; an admin grants it to your groups"
    )))
}

/// The entries `user_id` may use, in the catalog's order.
pub fn visible(conn: &mut Conn, user_id: i64, entries: Vec<ModelEntry>) -> AppResult<Vec<ModelEntry>> {
    let rules = rules(conn)?;
    if rules.is_empty() {
        return Ok(entries);
    }
    let mine: Vec<String> = {
        let ids = user_group_ids(conn, user_id)?;
        conn.load(groups_t::table.filter(groups_t::id.eq_any(ids)).select(groups_t::name))?
    };
    Ok(entries
        .into_iter()
        .filter(|e| rules.get(&e.name).is_none_or(|allowed| allowed.iter().any(|g| mine.contains(g))))
        .collect())
}

/// Every entry with the groups it is restricted to (`None`: open to everyone), for admins.
pub fn annotate(conn: &mut Conn, mut entries: Vec<ModelEntry>) -> AppResult<Vec<ModelEntry>> {
    let mut rules = rules(conn)?;
    for e in &mut entries {
        e.groups = Some(rules.remove(&e.name).unwrap_or_default());
    }
    Ok(entries)
}

pub fn allow(conn: &mut Conn, now: i64, actor: &Actor, model: &str, group: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let g = groups::get(conn, group)?;
        let exists = model_access::table.find((model, g.id)).count();
        if conn.get_result::<_, i64>(exists)? > 0 {
            return Ok(());
        }
        conn.execute(diesel::insert_into(model_access::table).values((
            model_access::model.eq(model),
            model_access::group_id.eq(g.id),
            model_access::granted_at.eq(now),
        )))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "model.allow_group", Outcome::Success)
                .target("model", model)
                .details(serde_json::json!({"group": group})),
        )
    })
}

pub fn disallow(conn: &mut Conn, now: i64, actor: &Actor, model: &str, group: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let g = groups::get(conn, group)?;
        let removed = conn.execute(diesel::delete(model_access::table.find((model, g.id))))?;
        if removed == 0 {
            return Err(AppError::not_found(format!(
                "the model {model:?} is not allowed to the group {group:?}"
            )));
        }
        let open = allowed_group_ids(conn, model)?.is_empty();
        audit::record(
            conn,
            now,
            &Event::new(actor, "model.disallow_group", Outcome::Success)
                .target("model", model)
                .details(serde_json::json!({"group": group, "open_to_everyone": open})),
        )
    })
}

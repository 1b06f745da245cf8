//! Collections and who may read them. A personal collection belongs to one user and is read by
//! that user alone; a shared collection is made by an admin and read by the members of its
//! reader groups (which SSO fills from directory groups), and by nobody while it has none.
//! Admins manage shared collections, and may remove a personal one, but read a collection only
//! as anyone else does: through a group, or by owning it.

use super::feed;
use crate::audit::{self, Actor, Event, Outcome};
use crate::auth::users::User;
use crate::auth::{Role, groups};
use crate::error::{AppError, AppResult};
use crate::store::schema::{
    chunks, collection_readers, collections, documents, group_members, groups as groups_t, users,
};
use crate::store::{Conn, columns};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// Who is asking, as the rules here need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user_id: Option<i64>,
    pub admin: bool,
}

impl Caller {
    pub fn user(user: &User) -> Caller {
        Caller { user_id: Some(user.id), admin: user.role == Role::Admin }
    }

    /// An admin on the data directory (`ayushctl --local`): manages everything, owns nothing.
    pub fn local_admin() -> Caller {
        Caller { user_id: None, admin: true }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Collection {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Read by its owner alone.
    pub personal: bool,
    pub owner: Option<String>,
    /// The groups whose members read it (shared collections).
    pub readers: Vec<String>,
    pub documents: i64,
    pub chunks: i64,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Queryable, Selectable, Clone)]
#[diesel(table_name = collections)]
pub struct Row {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub owner_id: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
}

/// What `POST /api/collections` takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCollection {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A personal collection, read by its owner alone. Anyone who chats may make one; only
    /// admins make shared ones.
    #[serde(default)]
    pub personal: bool,
    /// The owner of a personal collection an admin makes for someone else (by username).
    #[serde(default)]
    pub owner: Option<String>,
    /// Reader groups of a shared collection.
    #[serde(default)]
    pub readers: Vec<String>,
}

pub fn validate_name(name: &str) -> AppResult<()> {
    let ok = (1..=64).contains(&name.chars().count())
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
        && !name.starts_with([' ', '.', '-'])
        && !name.ends_with(' ');
    if !ok {
        return Err(AppError::validation(format!(
            "{name:?} is not a usable collection name: 1 to 64 letters, digits, spaces, '.', '_' or '-', not starting with a space, '.' or '-'"
        )));
    }
    Ok(())
}

pub fn row(conn: &mut Conn, name: &str) -> AppResult<Row> {
    conn.first::<_, Row>(collections::table.filter(collections::name.eq(name)).select(columns::<Row>()))
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("there is no collection named {name:?}")))
}

/// The ids of every collection `user_id` may read: the ones it owns and the shared ones one of
/// its groups reads. Retrieval filters the index by exactly this set.
pub fn readable_ids(conn: &mut Conn, user_id: i64) -> AppResult<Vec<i64>> {
    let mut ids: Vec<i64> =
        conn.load(collections::table.filter(collections::owner_id.eq(user_id)).select(collections::id))?;
    let shared: Vec<i64> = conn.load(
        collection_readers::table
            .inner_join(group_members::table.on(group_members::group_id.eq(collection_readers::group_id)))
            .inner_join(collections::table)
            .filter(group_members::user_id.eq(user_id))
            .filter(collections::owner_id.is_null())
            .select(collection_readers::collection_id),
    )?;
    ids.extend(shared);
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// What anyone is told about a collection that does not exist, or that they may not read: the
/// same words, so the answer cannot tell the two apart.
fn unknown(name: &str) -> AppError {
    AppError::not_found(format!("there is no collection named {name:?} that you may read"))
}

/// The collection, if `caller` may read it; otherwise the same "not found" as for a name that
/// does not exist, so names of unreadable collections do not leak.
pub fn readable(conn: &mut Conn, caller: Caller, name: &str) -> AppResult<Row> {
    let row = row(conn, name).map_err(|_| unknown(name))?;
    let Some(user_id) = caller.user_id else { return Err(unknown(name)) };
    if readable_ids(conn, user_id)?.contains(&row.id) { Ok(row) } else { Err(unknown(name)) }
}

/// The collection, if `caller` may know it exists: admins know every collection (they list
/// them all); everyone else knows those they read.
fn known(conn: &mut Conn, caller: Caller, name: &str) -> AppResult<Row> {
    if caller.admin { row(conn, name).map_err(|_| unknown(name)) } else { readable(conn, caller, name) }
}

/// Whether `caller` may add documents to (and remove documents from) the collection.
fn may_manage(caller: Caller, row: &Row) -> bool {
    match row.owner_id {
        Some(owner) => caller.user_id == Some(owner),
        None => caller.admin,
    }
}

/// The collection, if `caller` may change what it holds. Someone who may not even read it is
/// told it does not exist, as by [`readable`].
pub fn managed(conn: &mut Conn, caller: Caller, name: &str) -> AppResult<Row> {
    let row = known(conn, caller, name)?;
    if !may_manage(caller, &row) {
        return Err(AppError::forbidden(match row.owner_id {
            Some(_) => format!("the collection {name:?} is someone's personal collection"),
            None => format!("only admins change the shared collection {name:?}"),
        }));
    }
    Ok(row)
}

/// The collection, if `caller` may see what it holds (by managing or by reading it), and
/// whether `caller` manages it.
pub fn opened(conn: &mut Conn, caller: Caller, name: &str) -> AppResult<(Row, bool)> {
    match managed(conn, caller, name) {
        Ok(row) => Ok((row, true)),
        Err(_) => Ok((readable(conn, caller, name)?, false)),
    }
}

/// The names of the collections `user_id` may read, sorted: what pickers offer.
pub fn readable_names(conn: &mut Conn, user_id: i64) -> AppResult<Vec<String>> {
    let ids = readable_ids(conn, user_id)?;
    let mut names: Vec<String> = names(conn, &ids)?.into_values().collect();
    names.sort();
    Ok(names)
}

/// The collections `caller` may see: admins see all of them (personal ones by name and owner
/// only: reading them is another matter); others see the ones they may read.
pub fn list(conn: &mut Conn, caller: Caller) -> AppResult<Vec<Collection>> {
    let mut rows: Vec<Row> =
        conn.load(collections::table.select(columns::<Row>()).order(collections::name.asc()))?;
    if !caller.admin {
        let readable = match caller.user_id {
            Some(id) => readable_ids(conn, id)?,
            None => Vec::new(),
        };
        rows.retain(|r| readable.contains(&r.id));
    }
    describe(conn, rows)
}

pub fn get(conn: &mut Conn, caller: Caller, name: &str) -> AppResult<Collection> {
    let row = known(conn, caller, name)?;
    describe_one(conn, row)
}

/// A collection the caller was already allowed to see, as the API shows it.
pub fn describe_one(conn: &mut Conn, row: Row) -> AppResult<Collection> {
    Ok(describe(conn, vec![row])?.remove(0))
}

fn describe(conn: &mut Conn, rows: Vec<Row>) -> AppResult<Vec<Collection>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let readers: Vec<(i64, String)> = conn.load(
        collection_readers::table
            .inner_join(groups_t::table)
            .filter(collection_readers::collection_id.eq_any(&ids))
            .select((collection_readers::collection_id, groups_t::name))
            .order(groups_t::name.asc()),
    )?;
    let doc_counts: Vec<(i64, i64)> = conn.load(
        documents::table
            .filter(documents::collection_id.eq_any(&ids))
            .group_by(documents::collection_id)
            .select((documents::collection_id, diesel::dsl::count_star())),
    )?;
    let chunk_counts: Vec<(i64, i64)> = conn.load(
        chunks::table
            .inner_join(documents::table)
            .filter(documents::collection_id.eq_any(&ids))
            .group_by(documents::collection_id)
            .select((documents::collection_id, diesel::dsl::count_star())),
    )?;
    let count = |counts: &[(i64, i64)], id| counts.iter().find(|(c, _)| *c == id).map_or(0, |(_, n)| *n);
    let owner_ids: Vec<i64> = rows.iter().filter_map(|r| r.owner_id).collect();
    let owners: BTreeMap<i64, String> = conn
        .load::<_, (i64, String)>(
            users::table.filter(users::id.eq_any(&owner_ids)).select((users::id, users::username)),
        )?
        .into_iter()
        .collect();
    Ok(rows
        .into_iter()
        .map(|r| {
            let (documents, chunks) = (count(&doc_counts, r.id), count(&chunk_counts, r.id));
            Collection {
                id: r.id,
                personal: r.owner_id.is_some(),
                owner: r.owner_id.and_then(|o| owners.get(&o).cloned()),
                readers: readers.iter().filter(|(id, _)| *id == r.id).map(|(_, g)| g.clone()).collect(),
                documents,
                chunks,
                name: r.name,
                description: r.description,
                created_by: r.created_by,
                created_at: r.created_at,
            }
        })
        .collect())
}

pub fn create(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    caller: Caller,
    new: NewCollection,
) -> AppResult<Collection> {
    validate_name(&new.name)?;
    if new.description.chars().count() > 500 {
        return Err(AppError::validation("a collection's description is at most 500 characters"));
    }
    if !new.personal && !caller.admin {
        return Err(AppError::forbidden("only admins make shared collections; make a personal one instead"));
    }
    if new.personal && !new.readers.is_empty() {
        return Err(AppError::validation(
            "a personal collection is read by its owner alone: it takes no reader groups",
        ));
    }
    if new.owner.is_some() && !(new.personal && caller.admin) {
        return Err(AppError::validation("only admins name the owner, and only of a personal collection"));
    }
    conn.transaction(|conn| {
        let owner_id = match (new.personal, &new.owner) {
            (false, _) => None,
            (true, Some(username)) => Some(
                conn.first::<_, i64>(users::table
                    .filter(users::username.eq(username))
                    .select(users::id))
                .optional()?
                .ok_or_else(|| AppError::not_found(format!("there is no user named {username:?}")))?,
            ),
            (true, None) => Some(caller.user_id.ok_or_else(|| {
                AppError::validation("a personal collection made on the data directory needs an owner (--owner USER)")
            })?),
        };
        let taken: i64 = conn.get_result(collections::table
            .filter(collections::name.eq(&new.name))
            .count())?;
        if taken > 0 {
            return Err(AppError::conflict(format!("a collection named {:?} exists", new.name)));
        }
        let id: i64 = conn.get_result(diesel::insert_into(collections::table)
            .values((
                collections::name.eq(&new.name),
                collections::description.eq(&new.description),
                collections::owner_id.eq(owner_id),
                collections::created_by.eq(&actor.name),
                collections::created_at.eq(now),
            ))
            .returning(collections::id))?;
        let mut readers = new.readers.clone();
        readers.sort();
        readers.dedup();
        for group in &readers {
            let g = groups::get(conn, group)?;
            conn.execute(diesel::insert_into(collection_readers::table)
                .values((
                    collection_readers::collection_id.eq(id),
                    collection_readers::group_id.eq(g.id),
                    collection_readers::granted_at.eq(now),
                )))?;
        }
        audit::record(
            conn,
            now,
            &Event::new(actor, "collection.create", Outcome::Success).target("collection", &new.name).details(
                json!({"personal": new.personal, "owner": new.owner, "readers": readers, "description": new.description}),
            ),
        )?;
        let row = row(conn, &new.name)?;
        describe_one(conn, row)
    })
}

fn shared(conn: &mut Conn, name: &str) -> AppResult<Row> {
    let row = row(conn, name)?;
    if row.owner_id.is_some() {
        return Err(AppError::validation(format!(
            "{name:?} is a personal collection: it is read by its owner alone"
        )));
    }
    Ok(row)
}

/// Lets the members of `group` read a shared collection (admins only, which the caller checks).
pub fn grant_read(conn: &mut Conn, now: i64, actor: &Actor, name: &str, group: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let row = shared(conn, name)?;
        let g = groups::get(conn, group)?;
        let exists: i64 = conn.get_result(collection_readers::table.find((row.id, g.id)).count())?;
        if exists > 0 {
            return Ok(());
        }
        conn.execute(diesel::insert_into(collection_readers::table).values((
            collection_readers::collection_id.eq(row.id),
            collection_readers::group_id.eq(g.id),
            collection_readers::granted_at.eq(now),
        )))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "collection.grant_read", Outcome::Success)
                .target("collection", name)
                .details(json!({"group": group})),
        )
    })
}

pub fn revoke_read(conn: &mut Conn, now: i64, actor: &Actor, name: &str, group: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let row = shared(conn, name)?;
        let g = groups::get(conn, group)?;
        let removed = conn.execute(diesel::delete(collection_readers::table.find((row.id, g.id))))?;
        if removed == 0 {
            return Err(AppError::not_found(format!("the group {group:?} does not read {name:?}")));
        }
        audit::record(
            conn,
            now,
            &Event::new(actor, "collection.revoke_read", Outcome::Success)
                .target("collection", name)
                .details(json!({"group": group})),
        )
    })
}

/// Removes a collection with its documents. Its owner or an admin may.
pub fn remove(conn: &mut Conn, now: i64, actor: &Actor, caller: Caller, name: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let row = known(conn, caller, name)?;
        if !(caller.admin || may_manage(caller, &row)) {
            return Err(AppError::forbidden(format!("only its owner or an admin removes {name:?}")));
        }
        let docs: i64 =
            conn.get_result(documents::table.filter(documents::collection_id.eq(row.id)).count())?;
        conn.execute(diesel::delete(collections::table.find(row.id)))?;
        feed::changed(conn, now, row.id, None)?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "collection.remove", Outcome::Success)
                .target("collection", name)
                .details(json!({"documents": docs, "personal": row.owner_id.is_some()})),
        )
    })
}

/// The names of the collections with these ids.
pub fn names(conn: &mut Conn, ids: &[i64]) -> AppResult<BTreeMap<i64, String>> {
    Ok(conn
        .load::<_, (i64, String)>(
            collections::table
                .filter(collections::id.eq_any(ids))
                .select((collections::id, collections::name)),
        )?
        .into_iter()
        .collect())
}

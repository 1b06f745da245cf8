//! Assistants an admin prepares ("HR assistant"): a model, standing instructions, and the
//! collections its answers draw on. People start chats with one from the model picker; its
//! collections are read with each person's own rights, so a preset never widens what anyone
//! may read. It follows its model's group rules: a preset is offered to those who may use its
//! model.

use crate::audit::{self, Actor, Event, Outcome};
use crate::catalog::{self, Catalog, access};
use crate::error::{AppError, AppResult};
use crate::knowledge::collections;
use crate::store::schema::{collections as collections_t, conversations, preset_collections, presets};
use crate::store::{Conn, columns};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub const MAX_SYSTEM_PROMPT_CHARS: usize = 8_000;

/// Standing instructions, an assistant's or a chat's own, are bounded.
pub fn check_system_prompt(prompt: &str) -> AppResult<()> {
    if prompt.chars().count() > MAX_SYSTEM_PROMPT_CHARS {
        return Err(AppError::validation(format!(
            "a system prompt is at most {MAX_SYSTEM_PROMPT_CHARS} characters"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Preset {
    pub id: i64,
    pub name: String,
    pub model: String,
    pub system_prompt: String,
    pub description: String,
    /// Shared collections its answers draw on.
    pub collections: Vec<String>,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = presets)]
struct Row {
    id: i64,
    name: String,
    model: String,
    system_prompt: String,
    description: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
}

/// What `POST /api/admin/presets` takes; `PATCH` takes the same fields, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub collections: Option<Vec<String>>,
}

fn rows_to_presets(conn: &mut Conn, rows: Vec<Row>) -> AppResult<Vec<Preset>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let attached: Vec<(i64, String)> = conn.load(
        preset_collections::table
            .inner_join(collections_t::table)
            .filter(preset_collections::preset_id.eq_any(&ids))
            .select((preset_collections::preset_id, collections_t::name))
            .order(collections_t::name.asc()),
    )?;
    Ok(rows
        .into_iter()
        .map(|r| Preset {
            collections: attached.iter().filter(|(p, _)| *p == r.id).map(|(_, n)| n.clone()).collect(),
            id: r.id,
            name: r.name,
            model: r.model,
            system_prompt: r.system_prompt,
            description: r.description,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}

pub fn list(conn: &mut Conn) -> AppResult<Vec<Preset>> {
    let rows: Vec<Row> = conn.load(presets::table.select(columns::<Row>()).order(presets::name.asc()))?;
    rows_to_presets(conn, rows)
}

/// The presets whose model `user_id` may use, each naming only the collections `user_id` may
/// read: a collection one may not read is not named to them, even as an assistant's.
pub fn offered_to(conn: &mut Conn, user_id: i64) -> AppResult<Vec<Preset>> {
    let mut all = list(conn)?;
    let readable = collections::readable_names(conn, user_id)?;
    let mut keep = Vec::with_capacity(all.len());
    for mut p in all.drain(..) {
        if access::may_use(conn, user_id, &p.model)? {
            p.collections.retain(|c| readable.contains(c));
            keep.push(p);
        }
    }
    Ok(keep)
}

pub fn get(conn: &mut Conn, name: &str) -> AppResult<Preset> {
    let row: Row = conn
        .first(presets::table.filter(presets::name.eq(name)).select(columns::<Row>()))
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("there is no assistant named {name:?}")))?;
    Ok(rows_to_presets(conn, vec![row])?.remove(0))
}

/// The preset a conversation was started with, if it still exists.
pub fn of_conversation(conn: &mut Conn, conversation_id: i64) -> AppResult<Option<Preset>> {
    let row: Option<Row> = conn
        .first(
            conversations::table
                .inner_join(presets::table)
                .filter(conversations::id.eq(conversation_id))
                .select(columns::<Row>()),
        )
        .optional()?;
    match row {
        Some(r) => Ok(Some(rows_to_presets(conn, vec![r])?.remove(0))),
        None => Ok(None),
    }
}

/// The ids of a preset's collections.
pub fn collection_ids(conn: &mut Conn, preset_id: i64) -> AppResult<Vec<i64>> {
    Ok(conn.load(
        preset_collections::table
            .filter(preset_collections::preset_id.eq(preset_id))
            .select(preset_collections::collection_id),
    )?)
}

fn check_fields(
    catalog: &Catalog,
    conn: &mut Conn,
    model: &str,
    system_prompt: &str,
    description: &str,
) -> AppResult<()> {
    catalog::find(catalog, conn, model).map_err(|_| {
        AppError::validation(format!("there is no model named {model:?}; `ayushctl models list` shows them"))
    })?;
    check_system_prompt(system_prompt)?;
    if description.chars().count() > 500 {
        return Err(AppError::validation("an assistant's description is at most 500 characters"));
    }
    Ok(())
}

/// Sets a preset's collections: shared ones only (a personal collection is its owner's alone).
fn set_collections(conn: &mut Conn, preset_id: i64, names: &[String]) -> AppResult<()> {
    conn.execute(diesel::delete(
        preset_collections::table.filter(preset_collections::preset_id.eq(preset_id)),
    ))?;
    let mut ids = Vec::new();
    for name in names {
        let row = collections::row(conn, name)?;
        if row.owner_id.is_some() {
            return Err(AppError::validation(format!(
                "{name:?} is a personal collection; an assistant draws on shared collections"
            )));
        }
        ids.push(row.id);
    }
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        conn.execute(diesel::insert_into(preset_collections::table).values((
            preset_collections::preset_id.eq(preset_id),
            preset_collections::collection_id.eq(id),
        )))?;
    }
    Ok(())
}

pub fn create(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    catalog: &Catalog,
    body: PresetBody,
) -> AppResult<Preset> {
    let name = body.name.unwrap_or_default();
    ayush_models::validate_name(&name).map_err(|_| {
        AppError::validation(format!(
            "{name:?} is not a usable assistant name: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    })?;
    let model = body.model.ok_or_else(|| AppError::validation("an assistant needs a model"))?;
    let (system_prompt, description) =
        (body.system_prompt.unwrap_or_default(), body.description.unwrap_or_default());
    let collections = body.collections.unwrap_or_default();
    conn.transaction(|conn| {
        check_fields(catalog, conn, &model, &system_prompt, &description)?;
        let taken: i64 =
            conn.get_result(presets::table.filter(presets::name.eq(&name)).count())?;
        if taken > 0 {
            return Err(AppError::conflict(format!("an assistant named {name:?} exists")));
        }
        let id: i64 = conn.get_result(diesel::insert_into(presets::table)
            .values((
                presets::name.eq(&name),
                presets::model.eq(&model),
                presets::system_prompt.eq(&system_prompt),
                presets::description.eq(&description),
                presets::created_by.eq(&actor.name),
                presets::created_at.eq(now),
                presets::updated_at.eq(now),
            ))
            .returning(presets::id))?;
        set_collections(conn, id, &collections)?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "preset.create", Outcome::Success)
                .target("preset", &name)
                .details(json!({"model": model, "collections": collections, "system_prompt_chars": system_prompt.chars().count()})),
        )?;
        get(conn, &name)
    })
}

pub fn change(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    catalog: &Catalog,
    name: &str,
    body: PresetBody,
) -> AppResult<Preset> {
    if body.name.as_deref().is_some_and(|n| n != name) {
        return Err(AppError::validation("an assistant cannot be renamed; make a new one"));
    }
    conn.transaction(|conn| {
        let before = get(conn, name)?;
        let model = body.model.clone().unwrap_or(before.model.clone());
        let system_prompt = body.system_prompt.clone().unwrap_or(before.system_prompt.clone());
        let description = body.description.clone().unwrap_or(before.description.clone());
        check_fields(catalog, conn, &model, &system_prompt, &description)?;
        conn.execute(diesel::update(presets::table.find(before.id)).set((
            presets::model.eq(&model),
            presets::system_prompt.eq(&system_prompt),
            presets::description.eq(&description),
            presets::updated_at.eq(now),
        )))?;
        if let Some(names) = &body.collections {
            set_collections(conn, before.id, names)?;
        }
        let after = get(conn, name)?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "preset.update", Outcome::Success)
                .target("preset", name)
                .details(json!({"model": after.model, "collections": after.collections})),
        )?;
        Ok(after)
    })
}

/// Removes a preset; chats started with it go on with its model, without its instructions.
pub fn remove(conn: &mut Conn, now: i64, actor: &Actor, name: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let before = get(conn, name)?;
        conn.execute(diesel::delete(presets::table.find(before.id)))?;
        audit::record(conn, now, &Event::new(actor, "preset.remove", Outcome::Success).target("preset", name))
    })
}

/// The Assistants service: what admins offer and people choose from. The JSON API, the chat
/// page's picker and `ayushctl --local` call these methods; the checks and the audit event of
/// each change live once, in the functions above.
#[derive(Clone)]
pub struct Assistants {
    store: crate::store::Store,
    clock: crate::clock::SharedClock,
    /// For checking that an assistant's model is installed or offered by a provider.
    catalog: std::sync::Arc<Catalog>,
}

impl Assistants {
    pub fn new(
        store: crate::store::Store,
        clock: crate::clock::SharedClock,
        catalog: std::sync::Arc<Catalog>,
    ) -> Assistants {
        Assistants { store, clock, catalog }
    }

    pub async fn list(&self) -> AppResult<Vec<Preset>> {
        self.store.run(list).await
    }

    /// Those `user_id` may chat with: the ones whose model they may use.
    pub async fn offered_to(&self, user_id: i64) -> AppResult<Vec<Preset>> {
        self.store.run(move |c| offered_to(c, user_id)).await
    }

    pub async fn show(&self, name: String) -> AppResult<Preset> {
        self.store.run(move |c| get(c, &name)).await
    }

    pub async fn create(&self, actor: Actor, body: PresetBody) -> AppResult<Preset> {
        let (now, catalog) = (self.clock.now(), self.catalog.clone());
        self.store.run(move |c| create(c, now, &actor, &catalog, body)).await
    }

    pub async fn change(&self, actor: Actor, name: String, body: PresetBody) -> AppResult<Preset> {
        let (now, catalog) = (self.clock.now(), self.catalog.clone());
        self.store.run(move |c| change(c, now, &actor, &catalog, &name, body)).await
    }

    pub async fn remove(&self, actor: Actor, name: String) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| remove(c, now, &actor, &name)).await
    }
}

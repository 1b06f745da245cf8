//! Documents and their passages in the database, the source of truth the index is built from.
//! Adding a file whose bytes are already stored under the same name changes nothing; a changed
//! file replaces its passages in one transaction, with its change-feed row and audit event.

use super::chunk::{self, Chunk};
use super::collections::Row as CollectionRow;
use super::extract::{self, Format};
use super::feed;
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult};
use crate::store::Conn;
use crate::store::schema::{chunk_embeddings, chunks, collections, document_files, documents};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Queryable)]
pub struct Document {
    pub id: i64,
    pub collection: String,
    pub source: String,
    pub title: String,
    pub format: String,
    pub sha256: String,
    pub bytes: i64,
    pub pages: Option<i64>,
    pub chunks: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Added,
    Replaced,
    Unchanged,
}

/// What adding a file did.
#[derive(Debug, Clone, Serialize)]
pub struct Ingested {
    pub status: Status,
    pub document: Document,
}

/// A file read and cut into passages, ready to store: the slow part, done outside any
/// transaction.
pub struct Prepared {
    pub source: String,
    pub sha256: String,
    pub bytes: Vec<u8>,
    pub format: Format,
    pub title: String,
    pub pages: Option<u32>,
    pub chunks: Vec<Chunk>,
}

/// The vectors of a document's passages, by passage key: (key, model, vector).
fn vectors_by_key(conn: &mut Conn, document_id: i64) -> AppResult<Vec<(String, String, Vec<u8>)>> {
    Ok(conn.load(
        chunk_embeddings::table
            .inner_join(chunks::table)
            .filter(chunks::document_id.eq(document_id))
            .select((chunks::chunk_key, chunk_embeddings::model, chunk_embeddings::vector)),
    )?)
}

/// Gives the new passages of a replaced document the vectors their unchanged predecessors had
/// (same key: same source and text), so only what changed is embedded again.
fn reuse_vectors(conn: &mut Conn, document_id: i64, kept: Vec<(String, String, Vec<u8>)>) -> AppResult<()> {
    if kept.is_empty() {
        return Ok(());
    }
    let fresh: Vec<(i64, String)> = conn.load(
        chunks::table.filter(chunks::document_id.eq(document_id)).select((chunks::id, chunks::chunk_key)),
    )?;
    let ids: std::collections::HashMap<&str, i64> =
        fresh.iter().map(|(id, key)| (key.as_str(), *id)).collect();
    let rows: Vec<_> = kept
        .iter()
        .filter_map(|(key, model, vector)| {
            let id = ids.get(key.as_str())?;
            Some((
                chunk_embeddings::chunk_id.eq(*id),
                chunk_embeddings::model.eq(model),
                chunk_embeddings::vector.eq(vector),
            ))
        })
        .collect();
    for batch in rows.chunks(300) {
        conn.execute(diesel::insert_into(chunk_embeddings::table).values(batch))?;
    }
    Ok(())
}

/// A passage with what the index stores beside it.
#[derive(Debug, Clone, Queryable)]
pub struct Passage {
    pub chunk_id: i64,
    pub heading: String,
    pub page: Option<i64>,
    pub body: String,
    pub document_id: i64,
    pub collection_id: i64,
    pub title: String,
    pub source: String,
}

pub fn validate_source(source: &str) -> AppResult<()> {
    let ok = (1..=512).contains(&source.chars().count())
        && !source.chars().any(char::is_control)
        && source.trim() == source;
    if !ok {
        return Err(AppError::validation(format!(
            "{source:?} is not a usable document name: 1 to 512 characters, without control characters or surrounding spaces"
        )));
    }
    Ok(())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Extracts and chunks a file. CPU-bound: run it on a blocking thread.
pub fn prepare(source: &str, bytes: Vec<u8>) -> AppResult<Prepared> {
    validate_source(source)?;
    let extracted =
        extract::extract(&bytes, source).map_err(|e| AppError::validation(format!("{source}: {e}")))?;
    prepared(source, bytes, extracted)
}

/// Chunks what was extracted from a file (by `extract`, or a recording's transcript).
pub fn prepared(source: &str, bytes: Vec<u8>, extracted: extract::Extracted) -> AppResult<Prepared> {
    validate_source(source)?;
    let sha256 = sha256_hex(&bytes);
    let chunks = chunk::chunk(source, &extracted);
    let title = extracted.title.clone().unwrap_or_else(|| {
        let name = source.rsplit(['/', '\\']).next().unwrap_or(source);
        name.rsplit_once('.').map_or(name, |(stem, _)| stem).to_string()
    });
    Ok(Prepared {
        source: source.to_string(),
        sha256,
        bytes,
        format: extracted.format,
        title,
        pages: extracted.pages,
        chunks,
    })
}

#[diesel::dsl::auto_type]
fn listed() -> _ {
    documents::table.inner_join(collections::table).select((
        documents::id,
        collections::name,
        documents::source,
        documents::title,
        documents::format,
        documents::sha256,
        documents::bytes,
        documents::pages,
        documents::chunks,
        documents::created_by,
        documents::created_at,
        documents::updated_at,
    ))
}

pub fn get(conn: &mut Conn, id: i64) -> AppResult<Document> {
    conn.first::<_, Document>(listed().filter(documents::id.eq(id)))
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("there is no document {id}")))
}

/// A document of `collection`, by id.
pub fn get_in(conn: &mut Conn, collection: &CollectionRow, id: i64) -> AppResult<Document> {
    conn.first::<_, Document>(
        listed().filter(documents::id.eq(id)).filter(documents::collection_id.eq(collection.id)),
    )
    .optional()?
    .ok_or_else(|| {
        AppError::not_found(format!("the collection {:?} holds no document {id}", collection.name))
    })
}

pub fn list(conn: &mut Conn, collection: &CollectionRow) -> AppResult<Vec<Document>> {
    Ok(conn
        .load(listed().filter(documents::collection_id.eq(collection.id)).order(documents::source.asc()))?)
}

/// The stored document under this name with these exact bytes, if there is one: adding it
/// again is a no-op, and the caller can say so without reading the file.
pub fn unchanged(
    conn: &mut Conn,
    collection: &CollectionRow,
    source: &str,
    sha256: &str,
) -> AppResult<Option<Document>> {
    Ok(conn
        .first::<_, Document>(
            listed()
                .filter(documents::collection_id.eq(collection.id))
                .filter(documents::source.eq(source))
                .filter(documents::sha256.eq(sha256)),
        )
        .optional()?)
}

/// Stores a prepared file in `collection`: added, replacing the document of the same name, or,
/// when the bytes are the same, left as it is.
pub fn store(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    collection: &CollectionRow,
    p: &Prepared,
) -> AppResult<Ingested> {
    conn.transaction(|conn| {
        let existing: Option<(i64, String)> = conn
            .first(
                documents::table
                    .filter(documents::collection_id.eq(collection.id))
                    .filter(documents::source.eq(&p.source))
                    .select((documents::id, documents::sha256)),
            )
            .optional()?;
        let pages = p.pages.map(i64::from);
        let count = p.chunks.len() as i64;
        let mut kept_vectors = Vec::new();
        let (id, status) = match existing {
            Some((id, sha)) if sha == p.sha256 => {
                return Ok(Ingested { status: Status::Unchanged, document: get(conn, id)? });
            }
            Some((id, _)) => {
                kept_vectors = vectors_by_key(conn, id)?;
                conn.execute(diesel::delete(chunks::table.filter(chunks::document_id.eq(id))))?;
                conn.execute(diesel::delete(document_files::table.find(id)))?;
                conn.execute(diesel::update(documents::table.find(id)).set((
                    documents::title.eq(&p.title),
                    documents::format.eq(p.format.as_str()),
                    documents::sha256.eq(&p.sha256),
                    documents::bytes.eq(p.bytes.len() as i64),
                    documents::pages.eq(pages),
                    documents::chunks.eq(count),
                    documents::updated_at.eq(now),
                )))?;
                (id, Status::Replaced)
            }
            None => {
                let id: i64 = conn.get_result(
                    diesel::insert_into(documents::table)
                        .values((
                            documents::collection_id.eq(collection.id),
                            documents::source.eq(&p.source),
                            documents::title.eq(&p.title),
                            documents::format.eq(p.format.as_str()),
                            documents::sha256.eq(&p.sha256),
                            documents::bytes.eq(p.bytes.len() as i64),
                            documents::pages.eq(pages),
                            documents::chunks.eq(count),
                            documents::created_by.eq(&actor.name),
                            documents::created_at.eq(now),
                            documents::updated_at.eq(now),
                        ))
                        .returning(documents::id),
                )?;
                (id, Status::Added)
            }
        };
        // Batches stay far below SQLite's limit on bound parameters per statement.
        for (n, batch) in p.chunks.chunks(400).enumerate() {
            let rows: Vec<_> = batch
                .iter()
                .enumerate()
                .map(|(i, ch)| {
                    (
                        chunks::document_id.eq(id),
                        chunks::ordinal.eq((n * 400 + i) as i64),
                        chunks::chunk_key.eq(&ch.key),
                        chunks::heading.eq(&ch.heading),
                        chunks::page.eq(ch.page.map(i64::from)),
                        chunks::body.eq(&ch.text),
                    )
                })
                .collect();
            conn.execute(diesel::insert_into(chunks::table).values(&rows))?;
        }
        reuse_vectors(conn, id, kept_vectors)?;
        conn.execute(
            diesel::insert_into(document_files::table)
                .values((document_files::document_id.eq(id), document_files::content.eq(&p.bytes))),
        )?;
        feed::changed(conn, now, collection.id, Some(id))?;
        let action = if status == Status::Added { "document.add" } else { "document.replace" };
        audit::record(
            conn,
            now,
            &Event::new(actor, action, Outcome::Success)
                .target("document", format!("{}/{}", collection.name, p.source))
                .details(json!({
                    "collection": collection.name, "source": p.source, "document_id": id,
                    "sha256": p.sha256, "bytes": p.bytes.len(), "format": p.format.as_str(), "chunks": count,
                })),
        )?;
        Ok(Ingested { status, document: get(conn, id)? })
    })
}

pub fn remove(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    collection: &CollectionRow,
    id: i64,
) -> AppResult<()> {
    conn.transaction(|conn| {
        let doc = get_in(conn, collection, id)?;
        conn.execute(diesel::delete(documents::table.find(id)))?;
        feed::changed(conn, now, collection.id, Some(id))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "document.remove", Outcome::Success)
                .target("document", format!("{}/{}", collection.name, doc.source))
                .details(json!({"collection": collection.name, "source": doc.source, "document_id": id, "sha256": doc.sha256})),
        )
    })
}

/// The original bytes of a document.
pub fn file(conn: &mut Conn, id: i64) -> AppResult<Vec<u8>> {
    conn.first::<_, Vec<u8>>(document_files::table.find(id).select(document_files::content))
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("the original of document {id} is not stored")))
}

#[diesel::dsl::auto_type]
fn passages() -> _ {
    chunks::table.inner_join(documents::table).select((
        chunks::id,
        chunks::heading,
        chunks::page,
        chunks::body,
        documents::id,
        documents::collection_id,
        documents::title,
        documents::source,
    ))
}

/// The passages of one document, for the index.
pub fn passages_of(conn: &mut Conn, document_id: i64) -> AppResult<Vec<Passage>> {
    Ok(conn.load(passages().filter(chunks::document_id.eq(document_id)).order(chunks::ordinal.asc()))?)
}

/// Up to `limit` passages with ids above `after`, for a rebuild.
pub fn passages_after(conn: &mut Conn, after: i64, limit: i64) -> AppResult<Vec<Passage>> {
    Ok(conn.load(passages().filter(chunks::id.gt(after)).order(chunks::id.asc()).limit(limit))?)
}

/// These passages, in no particular order; those since removed are not there.
pub fn passages_by_ids(conn: &mut Conn, ids: &[i64]) -> AppResult<Vec<Passage>> {
    Ok(conn.load(passages().filter(chunks::id.eq_any(ids)))?)
}

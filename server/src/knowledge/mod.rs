//! Company knowledge: collections and their readers, documents cut into passages, the full-text
//! index over them, and retrieval that only ever answers passages the asker may read.
//!
//! The way of a file: `extract` (bytes to structured text) -> `chunk` (passages with stable
//! keys) -> `documents::store` (one transaction: document, passages, original bytes, a change
//! on the feed, an audit event) -> the index's writer thread applies the change.

pub mod chunk;
pub mod collections;
pub mod documents;
pub mod extract;
pub mod feed;
pub mod index;

use crate::audit::Actor;
use crate::config::KnowledgeConfig;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::Store;
use collections::Caller;
use documents::{Ingested, Status};
use index::{IndexError, Language, SearchIndex};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The most hits one search returns.
pub const MAX_LIMIT: usize = 50;
/// How long adding a file waits for the index to hold it, so that its answer means
/// "searchable now"; past this the index catches up on its own.
const INDEX_WAIT: Duration = Duration::from_secs(10);

pub struct Knowledge {
    pub index: SearchIndex,
    pub max_file_bytes: u64,
}

impl Knowledge {
    pub fn open(cfg: &KnowledgeConfig, data_dir: &Path, store: Store) -> Result<Knowledge, IndexError> {
        let language = Language::parse(&cfg.language).unwrap_or(Language::ENGLISH);
        let index = SearchIndex::open(&index::dir(data_dir), language, store)?;
        Ok(Knowledge { index, max_file_bytes: cfg.max_file_mib * 1024 * 1024 })
    }
}

/// A passage found for a user: what the index stores, and the collection's name.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub collection: String,
    #[serde(flatten)]
    pub found: index::IndexHit,
}

/// Searches the collections `caller` may read: all of them, or those of `names`, each of which
/// must be readable.
pub async fn search(
    store: &Store,
    knowledge: &SharedKnowledge,
    caller: Caller,
    query: &str,
    names: Vec<String>,
    limit: usize,
) -> AppResult<Vec<Hit>> {
    if query.trim().is_empty() {
        return Err(AppError::validation("the search needs some words (q)"));
    }
    if query.len() > 1000 {
        return Err(AppError::validation("a search is at most 1000 characters"));
    }
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::validation(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let Some(user_id) = caller.user_id else { return Ok(Vec::new()) };
    let readable: BTreeMap<i64, String> = store
        .run(move |c| {
            let ids = match names.is_empty() {
                true => collections::readable_ids(c, user_id)?,
                false => names
                    .iter()
                    .map(|n| collections::readable(c, caller, n).map(|r| r.id))
                    .collect::<AppResult<_>>()?,
            };
            collections::names(c, &ids)
        })
        .await?;
    let ids: Vec<i64> = readable.keys().copied().collect();
    let (knowledge, query) = (knowledge.clone(), query.to_string());
    let hits = tokio::task::spawn_blocking(move || knowledge.index.search(&query, &ids, limit))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    Ok(hits
        .into_iter()
        // The index answers only collections in `ids`; one removed since is dropped here.
        .filter_map(|found| Some(Hit { collection: readable.get(&found.collection_id)?.clone(), found }))
        .collect())
}

/// Adds one file to a collection `caller` manages, and waits (a bounded time) until the index
/// holds it.
pub async fn add_file(
    state: &AppState,
    actor: Actor,
    caller: Caller,
    collection: String,
    source: String,
    bytes: Vec<u8>,
) -> AppResult<Ingested> {
    documents::validate_source(&source)?;
    let sha = documents::sha256_hex(&bytes);
    let (name, src) = (collection.clone(), source.clone());
    let (row, unchanged) = state
        .store
        .run(move |c| {
            let row = collections::managed(c, caller, &name)?;
            let unchanged = documents::unchanged(c, &row, &src, &sha)?;
            Ok((row, unchanged))
        })
        .await?;
    if let Some(document) = unchanged {
        return Ok(Ingested { status: Status::Unchanged, document });
    }
    let prepared = tokio::task::spawn_blocking(move || documents::prepare(&source, bytes))
        .await
        .map_err(AppError::internal)??;
    let now = state.clock.now();
    let ingested = state
        .store
        .run(move |c| {
            let ingested = documents::store(c, now, &actor, &row, &prepared)?;
            Ok((ingested, feed::head(c)?))
        })
        .await?;
    let (ingested, seq) = ingested;
    wait_indexed(state, seq).await;
    Ok(ingested)
}

/// Waits until the index holds feed entry `seq`, for at most [`INDEX_WAIT`].
pub async fn wait_indexed(state: &AppState, seq: i64) {
    let knowledge = state.knowledge.clone();
    let held = tokio::task::spawn_blocking(move || knowledge.index.wait_for(seq, INDEX_WAIT)).await;
    if !matches!(held, Ok(true)) {
        tracing::warn!(seq, "the index has not caught up yet; it will on its own");
    }
}

pub type SharedKnowledge = Arc<Knowledge>;

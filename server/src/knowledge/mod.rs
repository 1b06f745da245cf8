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
pub mod jobs;

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
/// How often idle workers look for jobs nobody rang about.
const JOB_POLL: Duration = Duration::from_secs(2);

pub struct Knowledge {
    pub index: SearchIndex,
    pub max_file_bytes: u64,
    workers: usize,
    /// Rung when a job is queued, so an idle worker takes it at once.
    queued: tokio::sync::Notify,
    /// Rung when a job ends, for those waiting on one.
    ended: tokio::sync::Notify,
}

impl Knowledge {
    pub fn open(cfg: &KnowledgeConfig, data_dir: &Path, store: Store) -> Result<Knowledge, IndexError> {
        let language = Language::parse(&cfg.language).unwrap_or(Language::ENGLISH);
        let index = SearchIndex::open(&index::dir(data_dir), language, store)?;
        Ok(Knowledge {
            index,
            max_file_bytes: cfg.max_file_mib * 1024 * 1024,
            workers: cfg.ingest_workers,
            queued: tokio::sync::Notify::new(),
            ended: tokio::sync::Notify::new(),
        })
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

/// Queues one file for a collection `caller` manages. A file the collection already holds
/// unchanged under that name is answered at once, without a job.
pub async fn queue_file(
    state: &AppState,
    actor: Actor,
    caller: Caller,
    collection: String,
    source: String,
    bytes: Vec<u8>,
) -> AppResult<Queued> {
    documents::validate_source(&source)?;
    let sha = documents::sha256_hex(&bytes);
    let now = state.clock.now();
    let queued = state
        .store
        .run(move |c| {
            let row = collections::managed(c, caller, &collection)?;
            if let Some(document) = documents::unchanged(c, &row, &source, &sha)? {
                return Ok(Queued::Unchanged(Ingested { status: Status::Unchanged, document }));
            }
            Ok(Queued::Job(jobs::enqueue(c, now, &actor, &row, &source, &bytes)?))
        })
        .await?;
    state.knowledge.queued.notify_waiters();
    Ok(queued)
}

/// What queueing a file did.
pub enum Queued {
    Unchanged(Ingested),
    Job(jobs::Job),
}

/// Waits for a job to end (at most `timeout`), and then for the index to hold its document.
pub async fn wait_job(state: &AppState, id: i64, timeout: Duration) -> AppResult<jobs::Job> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Registered before the look, so an ending in between still wakes this.
        let ended = state.knowledge.ended.notified();
        let job = state.store.run(move |c| jobs::get(c, id)).await?;
        if job.finished() {
            if job.status == "done" {
                let head = state.store.run(feed::head).await?;
                wait_indexed(state, head).await;
            }
            return Ok(job);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(job);
        }
        // Jobs run by another replica end without ringing here: look again now and then.
        let _ = tokio::time::timeout(Duration::from_millis(500), ended).await;
    }
}

/// Starts this replica's ingestion workers (`knowledge.ingest_workers`).
pub fn start_workers(state: &AppState) {
    for _ in 0..state.knowledge.workers {
        actix_web::rt::spawn(worker(state.clone()));
    }
}

async fn worker(state: AppState) {
    loop {
        let waiting = state.knowledge.queued.notified();
        let now = state.clock.now();
        match state.store.run(move |c| jobs::claim(c, now)).await {
            Ok(Some(job)) => run_job(&state, job).await,
            Ok(None) => {
                // Another replica's uploads, and restarts, are found by looking now and then.
                let _ = tokio::time::timeout(JOB_POLL, waiting).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for ingestion jobs");
                tokio::time::sleep(JOB_POLL).await;
            }
        }
    }
}

async fn run_job(state: &AppState, mut job: jobs::Claimed) {
    let (id, source, bytes) = (job.id, job.source.clone(), std::mem::take(&mut job.bytes));
    let prepared = tokio::task::spawn_blocking(move || documents::prepare(&source, bytes))
        .await
        .map_err(AppError::internal)
        .and_then(|p| p);
    let now = state.clock.now();
    let result = match prepared {
        Ok(p) => state.store.run(move |c| jobs::complete(c, now, &job, &p).map(drop)).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::info!(job = id, error = %e.message, "an ingestion job failed");
        if let Err(e) = state.store.run(move |c| jobs::fail(c, now, id, &e.message)).await {
            tracing::warn!(job = id, error = %e, "cannot record that an ingestion job failed");
        }
    }
    state.knowledge.index.notify();
    state.knowledge.ended.notify_waiters();
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

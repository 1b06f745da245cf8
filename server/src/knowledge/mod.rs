//! Company knowledge: collections and their readers, documents cut into passages, the full-text
//! index over them, and retrieval that only ever answers passages the asker may read.
//!
//! The way of a file: `extract` (bytes to structured text; a recording goes through `audio`,
//! transcribed) -> `chunk` (passages with stable
//! keys) -> `documents::store` (one transaction: document, passages, original bytes, a change
//! on the feed, an audit event) -> the index's writer thread applies the change.

pub mod audio;
pub mod bundled;
pub mod chunk;
pub mod collections;
pub mod documents;
pub mod extract;
pub mod feed;
pub mod index;
pub mod jobs;
pub mod library;
pub mod vectors;

use crate::config::KnowledgeConfig;
use crate::error::{AppError, AppResult};
use crate::store::Store;
use collections::Caller;
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
    workers: usize,
    /// Rung when a job is queued, so an idle worker takes it at once.
    queued: tokio::sync::Notify,
    /// Rung when a job ends, for those waiting on one.
    ended: tokio::sync::Notify,
    /// Passage vectors, for meaning-based ranking.
    pub vectors: vectors::Vectors,
    /// `knowledge.embedding_model` (empty: the first installed).
    embedding_model: String,
    vector_weight: f32,
    per_document: usize,
    /// The embedding engine in use, for embedding queries.
    engine: std::sync::Mutex<Option<ayush_models::EmbedEngine>>,
}

impl Knowledge {
    pub fn open(cfg: &KnowledgeConfig, data_dir: &Path, store: Store) -> Result<Knowledge, IndexError> {
        let language = Language::parse(&cfg.language).unwrap_or(Language::ENGLISH);
        let index = SearchIndex::open(&index::dir(data_dir), language, store)?;
        Ok(Knowledge {
            index,
            workers: cfg.ingest_workers,
            queued: tokio::sync::Notify::new(),
            ended: tokio::sync::Notify::new(),
            vectors: vectors::Vectors::default(),
            embedding_model: cfg.embedding_model.clone(),
            vector_weight: cfg.vector_weight,
            per_document: cfg.passages_per_document,
            engine: std::sync::Mutex::new(None),
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
    per_document: Option<usize>,
) -> AppResult<Vec<Hit>> {
    // At most this many passages of one document (0: no cap); by default the configured
    // `knowledge.passages_per_document`, while a chat's sources may want neighbouring passages.
    let per_document = per_document.unwrap_or(knowledge.per_document);
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
    let hits = ranked(store, knowledge, query, ids, limit, per_document).await?;
    Ok(hits
        .into_iter()
        // The index answers only collections in `ids`; one removed since is dropped here.
        .filter_map(|found| Some(Hit { collection: readable.get(&found.collection_id)?.clone(), found }))
        .collect())
}

/// Reciprocal rank fusion's damping: a hit's share is weight / (RRF_K + rank).
const RRF_K: f32 = 60.0;

/// The best `limit` passages of `ids` for `query`: by words (BM25) alone, or fused with
/// meaning when an embedding model is in use and `knowledge.vector_weight` is above 0.
async fn ranked(
    store: &Store,
    knowledge: &SharedKnowledge,
    query: &str,
    ids: Vec<i64>,
    limit: usize,
    per_document: usize,
) -> AppResult<Vec<index::IndexHit>> {
    let engine = knowledge.engine.lock().map(|e| e.clone()).unwrap_or(None);
    let weight = knowledge.vector_weight;
    let hybrid = engine.filter(|_| weight > 0.0 && knowledge.vectors.status().embedded > 0);
    // Hybrid ranking fuses deep lists and caps documents after fusion; words alone are capped
    // inside the index, before snippets are made.
    let (depth, words_cap) = match hybrid {
        Some(_) => ((limit * 4).clamp(40, 200), 0),
        None => (limit, per_document),
    };
    let words = {
        let (knowledge, query, ids) = (knowledge.clone(), query.to_string(), ids.clone());
        tokio::task::spawn_blocking(move || knowledge.index.search(&query, &ids, depth, words_cap))
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::internal)?
    };
    let Some(engine) = hybrid else { return Ok(words) };
    let query_vector = match engine.embed(vec![query.to_string()]).await {
        Ok((mut v, _)) if !v.is_empty() => v.swap_remove(0),
        // Meaning is a refinement: if the model cannot answer now, words still do.
        _ => return Ok(words.into_iter().take(limit).collect()),
    };
    let meaning = {
        let knowledge = knowledge.clone();
        tokio::task::spawn_blocking(move || knowledge.vectors.search(&query_vector, &ids, depth))
            .await
            .map_err(AppError::internal)?
    };
    let mut fused: Vec<(i64, f32)> = Vec::new();
    let mut add = |chunk: i64, share: f32| match fused.iter_mut().find(|(c, _)| *c == chunk) {
        Some((_, s)) => *s += share,
        None => fused.push((chunk, share)),
    };
    for (rank, hit) in words.iter().enumerate() {
        add(hit.chunk_id, (1.0 - weight) / (RRF_K + rank as f32 + 1.0));
    }
    for (rank, (chunk, _)) in meaning.iter().enumerate() {
        add(*chunk, weight / (RRF_K + rank as f32 + 1.0));
    }
    fused.sort_by(|a, b| b.1.total_cmp(&a.1));
    fused.truncate(depth);
    let mut by_words: std::collections::HashMap<i64, index::IndexHit> =
        words.into_iter().map(|h| (h.chunk_id, h)).collect();
    let only_meaning: Vec<i64> = fused.iter().map(|f| f.0).filter(|c| !by_words.contains_key(c)).collect();
    let mut fetched: std::collections::HashMap<i64, documents::Passage> = store
        .run(move |c| documents::passages_by_ids(c, &only_meaning))
        .await?
        .into_iter()
        .map(|p| (p.chunk_id, p))
        .collect();
    let mut cap = index::DocumentCap::new(per_document);
    Ok(fused
        .into_iter()
        .filter_map(|(chunk, score)| {
            if let Some(mut hit) = by_words.remove(&chunk) {
                hit.score = score;
                return Some(hit);
            }
            // Found by meaning alone: no words to mark.
            let p = fetched.remove(&chunk)?;
            Some(index::IndexHit {
                chunk_id: p.chunk_id,
                document_id: p.document_id,
                collection_id: p.collection_id,
                title: p.title,
                source: p.source,
                heading: p.heading,
                page: p.page.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0),
                snippet: index::lead(&p.body, 280),
                text: p.body,
                highlights: Vec::new(),
                score,
            })
        })
        .filter(|h| cap.admit(h.document_id))
        .take(limit)
        .collect())
}

impl Knowledge {
    /// Embeds queries with `engine` from now on (`None`: rank by words alone).
    pub fn embed_queries_with(&self, engine: Option<ayush_models::EmbedEngine>) {
        if let Ok(mut e) = self.engine.lock() {
            *e = engine;
        }
    }
}

/// The embedding model passages are embedded with: the configured one, else the first
/// installed; none means ranking by words alone.
fn embedding_model(state: &Workshop) -> Option<(String, usize)> {
    let entries = state.catalog.list().ok()?;
    let usable = |e: &&crate::catalog::ModelEntry| e.manifest.as_ref().is_some_and(|m| m.is_embedding());
    let wanted = &state.knowledge.embedding_model;
    let entry = if wanted.is_empty() {
        entries.iter().find(usable)
    } else {
        entries.iter().filter(usable).find(|e| &e.name == wanted)
    }?;
    let dims = entry.manifest.as_ref()?.dimensions?;
    Some((entry.name.clone(), dims))
}

/// Embeds passages behind ingestion, a batch at a time, and keeps this replica's vectors in
/// step with the database.
async fn embed_behind(state: Workshop) {
    const BATCH: i64 = 32;
    match bundled::adopt(&state).await {
        Ok(bundled::Adopted::Imported(name)) => {
            tracing::info!(%name, "imported the bundled embedding model: search ranks by meaning as well as words")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(
            folder = %state.config.knowledge.bundled_embedding_model,
            error = %e.message,
            "cannot import the bundled embedding model; ranking by words alone"
        ),
    }
    loop {
        let waiting = state.knowledge.ended.notified();
        let Some((model, dims)) = embedding_model(&state) else {
            state.knowledge.embed_queries_with(None);
            let _ = tokio::time::timeout(Duration::from_secs(10), waiting).await;
            continue;
        };
        let engine = match state.catalog.embedder(&model).await {
            Ok(engine) => engine,
            Err(e) => {
                tracing::warn!(%model, error = %e.message, "cannot load the embedding model; ranking by words alone");
                tokio::time::sleep(Duration::from_secs(30)).await;
                continue;
            }
        };
        state.knowledge.embed_queries_with(Some(engine.clone()));
        let (knowledge, store, m) = (state.knowledge.clone(), state.store.clone(), model.clone());
        let refreshed =
            tokio::task::spawn_blocking(move || knowledge.vectors.refresh(&store, &m, dims)).await;
        if let Ok(Err(e)) = refreshed {
            tracing::warn!(error = %e.message, "cannot load passage vectors");
        }
        let m = model.clone();
        let batch = match state.store.run(move |c| vectors::missing(c, &m, BATCH)).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e.message, "cannot read passages to embed");
                tokio::time::sleep(JOB_POLL).await;
                continue;
            }
        };
        if batch.is_empty() {
            let _ = tokio::time::timeout(JOB_POLL, waiting).await;
            continue;
        }
        let (ids, texts): (Vec<i64>, Vec<String>) = batch.into_iter().unzip();
        match engine.embed(texts).await {
            Ok((vectors, _)) => {
                let pairs: Vec<(i64, Vec<f32>)> = ids.into_iter().zip(vectors).collect();
                let m = model.clone();
                if let Err(e) = state.store.run(move |c| vectors::keep(c, &m, &pairs)).await {
                    tracing::warn!(error = %e.message, "cannot store passage vectors");
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "the embedding model is busy; embedding later");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// How the index and the embedding of passages stand: `/api/admin/index` and
/// `ayushctl index status`, on the server or on its data directory, in one shape.
#[derive(Debug, Serialize)]
pub struct IndexReport {
    #[serde(flatten)]
    pub index: index::IndexStatus,
    /// How far the database's change feed has gone: the index has caught up when its
    /// `applied_seq` equals this.
    pub feed_seq: i64,
    pub embedding: EmbeddingProgress,
}

#[derive(Debug, Serialize)]
pub struct EmbeddingProgress {
    pub model: Option<String>,
    /// Vectors held in memory: known only to the server process holding them.
    pub in_memory: Option<usize>,
    pub passages: Option<i64>,
    pub embedded: Option<i64>,
}

/// The report for an index that stands at `index`, reading the feed and the embedding
/// progress of `model` from the database.
pub fn report(
    conn: &mut crate::store::Conn,
    index: index::IndexStatus,
    model: Option<String>,
    in_memory: Option<usize>,
) -> AppResult<IndexReport> {
    let feed_seq = feed::head(conn)?;
    let progress = match &model {
        Some(m) => Some(vectors::progress(conn, m)?),
        None => None,
    };
    let embedding = EmbeddingProgress {
        model,
        in_memory,
        passages: progress.map(|p| p.0),
        embedded: progress.map(|p| p.1),
    };
    Ok(IndexReport { index, feed_seq, embedding })
}

pub use jobs::Queued;
pub use library::Library;

/// Starts this replica's ingestion workers (`knowledge.ingest_workers`).
pub fn start_workers(state: &Workshop) {
    for _ in 0..state.knowledge.workers {
        actix_web::rt::spawn(worker(state.clone()));
    }
    actix_web::rt::spawn(embed_behind(state.clone()));
}

async fn worker(state: Workshop) {
    loop {
        let waiting = state.knowledge.queued.notified();
        let now = state.clock.now();
        let replica = state.replica.clone();
        match state.store.run(move |c| jobs::claim(c, now, &replica)).await {
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

async fn run_job(state: &Workshop, mut job: jobs::Claimed) {
    let (id, source, bytes) = (job.id, job.source.clone(), std::mem::take(&mut job.bytes));
    let heartbeat = actix_web::rt::spawn(beat(state.clone(), id));
    let prepared = if ayush_models::audio::looks_like_audio(&bytes) {
        hear_recording(state, source, bytes).await
    } else {
        tokio::task::spawn_blocking(move || documents::prepare(&source, bytes))
            .await
            .map_err(AppError::internal)
            .and_then(|p| p)
    };
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
    heartbeat.abort();
    state.knowledge.index.notify();
    state.knowledge.ended.notify_waiters();
}

/// A recording, transcribed by the collections' transcription model (queued behind other
/// transcriptions, not refused when the model is busy).
async fn hear_recording(state: &Workshop, source: String, bytes: Vec<u8>) -> AppResult<documents::Prepared> {
    let model = state.catalog.collections_transcriber()?;
    let engine = state.catalog.transcriber(&model).await?;
    let limit = state.config.transcription.max_audio_minutes * 60;
    tokio::task::spawn_blocking(move || {
        audio::prepare(&source, bytes, limit, |samples| {
            engine.transcribe_blocking(samples, Default::default()).map_err(AppError::from)
        })
    })
    .await
    .map_err(AppError::internal)?
}

/// Tells the other replicas, every [`jobs::HEARTBEAT_SECS`], that job `id` is still running here.
async fn beat(state: Workshop, id: i64) {
    let mut tick = tokio::time::interval(Duration::from_secs(jobs::HEARTBEAT_SECS));
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = state.clock.now();
        let replica = state.replica.clone();
        match state.store.run(move |c| jobs::beat(c, now, id, &replica)).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(job = id, error = %e, "cannot renew an ingestion job's heartbeat"),
        }
    }
}

/// Waits until the index holds feed entry `seq`, for at most [`INDEX_WAIT`].
pub async fn wait_indexed(knowledge: &SharedKnowledge, seq: i64) {
    let knowledge = knowledge.clone();
    let held = tokio::task::spawn_blocking(move || knowledge.index.wait_for(seq, INDEX_WAIT)).await;
    if !matches!(held, Ok(true)) {
        tracing::warn!(seq, "the index has not caught up yet; it will on its own");
    }
}

pub type SharedKnowledge = Arc<Knowledge>;

/// What ingestion, embedding and waiting on them need of the server; each worker holds a clone.
#[derive(Clone)]
pub struct Workshop {
    pub store: Store,
    pub clock: crate::clock::SharedClock,
    pub knowledge: SharedKnowledge,
    pub catalog: Arc<crate::catalog::Catalog>,
    pub config: Arc<crate::config::Config>,
    /// This replica's name, for job claims.
    pub replica: Arc<str>,
}

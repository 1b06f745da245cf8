//! Meaning-based retrieval. Passages are embedded behind ingestion by the embedding model (a
//! passage is searchable by words as soon as it is indexed, and joins meaning-based ranking
//! when its vector is ready); vectors live in the database and, per replica, in memory, where a
//! query is compared with every vector of the collections the asker may read (the access filter
//! is part of the scan, as it is of the full-text query). Exact search: at 384 dimensions,
//! 100,000 passages are 150 MiB and one query's scan is milliseconds.

use super::feed;
use crate::error::{AppError, AppResult};
use crate::store::schema::{chunk_embeddings, chunks, documents};
use crate::store::{Conn, Store};
use diesel::prelude::*;
use serde::Serialize;
use std::collections::{BinaryHeap, HashSet};
use std::sync::RwLock;

const LOAD_BATCH: i64 = 5000;

#[derive(Default)]
struct Table {
    model: String,
    dims: usize,
    chunk: Vec<i64>,
    document: Vec<i64>,
    collection: Vec<i64>,
    data: Vec<f32>,
    /// The last embedding row and feed change this table has applied.
    loaded_seq: i64,
    feed_seq: i64,
}

impl Table {
    fn push(&mut self, chunk: i64, document: i64, collection: i64, vector: &[f32]) {
        if vector.len() != self.dims {
            return;
        }
        self.chunk.push(chunk);
        self.document.push(document);
        self.collection.push(collection);
        self.data.extend_from_slice(vector);
    }

    /// Drops the rows `keep` refuses, in one pass.
    fn retain(&mut self, keep: impl Fn(i64, i64) -> bool) {
        let dims = self.dims;
        let mut w = 0;
        for r in 0..self.chunk.len() {
            if keep(self.document[r], self.collection[r]) {
                if w != r {
                    self.chunk[w] = self.chunk[r];
                    self.document[w] = self.document[r];
                    self.collection[w] = self.collection[r];
                    self.data.copy_within(r * dims..(r + 1) * dims, w * dims);
                }
                w += 1;
            }
        }
        self.chunk.truncate(w);
        self.document.truncate(w);
        self.collection.truncate(w);
        self.data.truncate(w * dims);
    }
}

/// How far meaning-based retrieval has got, for admins.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VectorStatus {
    /// The embedding model in use; none: ranking is by words alone.
    pub model: Option<String>,
    /// Passages with a vector in memory here.
    pub embedded: usize,
}

#[derive(Default)]
pub struct Vectors {
    table: RwLock<Table>,
}

pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

type Loaded = (i64, i64, i64, i64, Vec<u8>);

#[diesel::dsl::auto_type]
fn with_places() -> _ {
    chunk_embeddings::table.inner_join(chunks::table.inner_join(documents::table)).select((
        chunk_embeddings::seq,
        chunk_embeddings::chunk_id,
        documents::id,
        documents::collection_id,
        chunk_embeddings::vector,
    ))
}

impl Vectors {
    pub fn status(&self) -> VectorStatus {
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        VectorStatus { model: Some(t.model.clone()).filter(|m| !m.is_empty()), embedded: t.chunk.len() }
    }

    /// Switches to `model` (dropping every vector of another), then catches up with the
    /// database: removed and replaced documents first, then vectors not yet loaded.
    pub fn refresh(&self, store: &Store, model: &str, dims: usize) -> AppResult<()> {
        {
            let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
            if t.model != model || t.dims != dims {
                *t = Table { model: model.to_string(), dims, ..Table::default() };
                t.feed_seq = store.run_blocking(feed::head)?;
            }
        }
        let feed_seq = self.table.read().unwrap_or_else(|p| p.into_inner()).feed_seq;
        // Chunks re-read with their documents below, which the row scan must not add twice.
        let mut reread: HashSet<i64> = HashSet::new();
        let changes = store.run_blocking(|c| feed::after(c, feed_seq, 10_000))?;
        if let Some(last) = changes.last().map(|c| c.seq) {
            let docs: HashSet<i64> = changes.iter().filter_map(|c| c.document_id).collect();
            let gone: HashSet<i64> =
                changes.iter().filter(|c| c.document_id.is_none()).map(|c| c.collection_id).collect();
            let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
            t.retain(|d, c| !docs.contains(&d) && !gone.contains(&c));
            t.feed_seq = last;
            drop(t);
            // What those documents hold now, vectors already made included.
            for d in docs {
                let m = model.to_string();
                let rows: Vec<Loaded> = store.run_blocking(|c| {
                    Ok(c.load(
                        with_places().filter(documents::id.eq(d)).filter(chunk_embeddings::model.eq(&m)),
                    )?)
                })?;
                let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
                for (_, chunk, doc, coll, bytes) in rows {
                    reread.insert(chunk);
                    t.push(chunk, doc, coll, &from_bytes(&bytes));
                }
            }
        }
        loop {
            let after = self.table.read().unwrap_or_else(|p| p.into_inner()).loaded_seq;
            let m = model.to_string();
            let rows: Vec<Loaded> = store.run_blocking(|c| {
                Ok(c.load(
                    with_places()
                        .filter(chunk_embeddings::seq.gt(after))
                        .filter(chunk_embeddings::model.eq(&m))
                        .order(chunk_embeddings::seq.asc())
                        .limit(LOAD_BATCH),
                )?)
            })?;
            let Some(last) = rows.last().map(|r| r.0) else { return Ok(()) };
            let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
            for (_, chunk, doc, coll, bytes) in rows {
                if !reread.contains(&chunk) {
                    t.push(chunk, doc, coll, &from_bytes(&bytes));
                }
            }
            t.loaded_seq = last;
        }
    }

    /// The `k` passages nearest `query` (cosine: vectors are unit length) among those of
    /// `collections`, best first.
    pub fn search(&self, query: &[f32], collections: &[i64], k: usize) -> Vec<(i64, f32)> {
        let t = self.table.read().unwrap_or_else(|p| p.into_inner());
        if query.len() != t.dims || k == 0 {
            return Vec::new();
        }
        let allowed: HashSet<i64> = collections.iter().copied().collect();
        // A min-heap of the best k so far, by score.
        let mut best: BinaryHeap<std::cmp::Reverse<(Score, i64)>> = BinaryHeap::with_capacity(k + 1);
        for r in 0..t.chunk.len() {
            if !allowed.contains(&t.collection[r]) {
                continue;
            }
            let score = dot(&t.data[r * t.dims..(r + 1) * t.dims], query);
            best.push(std::cmp::Reverse((Score(score), t.chunk[r])));
            if best.len() > k {
                best.pop();
            }
        }
        let mut out: Vec<(i64, f32)> = best.into_iter().map(|std::cmp::Reverse((s, c))| (c, s.0)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

/// A dot product in eight independent lanes: a single running sum cannot be vectorised (float
/// addition is not associative), eight can, and the scan is this loop.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[derive(Clone, Copy, PartialEq)]
struct Score(f32);
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Up to `limit` passages without a vector from `model`: (chunk id, text to embed).
pub fn missing(conn: &mut Conn, model: &str, limit: i64) -> AppResult<Vec<(i64, String)>> {
    let rows: Vec<(i64, String, String)> = conn.load(
        chunks::table
            .left_join(
                chunk_embeddings::table
                    .on(chunk_embeddings::chunk_id.eq(chunks::id).and(chunk_embeddings::model.eq(model))),
            )
            .filter(chunk_embeddings::seq.is_null())
            .order(chunks::id.asc())
            .limit(limit)
            .select((chunks::id, chunks::heading, chunks::body)),
    )?;
    // The heading says what a short passage is about.
    Ok(rows
        .into_iter()
        .map(|(id, heading, body)| (id, if heading.is_empty() { body } else { format!("{heading}\n{body}") }))
        .collect())
}

/// How many passages there are, and how many have a vector from `model`.
pub fn progress(conn: &mut Conn, model: &str) -> AppResult<(i64, i64)> {
    let total: i64 = conn.get_result(chunks::table.count())?;
    let done: i64 =
        conn.get_result(chunk_embeddings::table.filter(chunk_embeddings::model.eq(model)).count())?;
    Ok((total, done))
}

/// Keeps vectors; a passage removed meanwhile, or embedded by another replica, is skipped.
pub fn keep(conn: &mut Conn, model: &str, vectors: &[(i64, Vec<f32>)]) -> AppResult<()> {
    for (chunk, v) in vectors {
        let inserted = conn.execute(
            diesel::insert_into(chunk_embeddings::table)
                .values((
                    chunk_embeddings::chunk_id.eq(chunk),
                    chunk_embeddings::model.eq(model),
                    chunk_embeddings::vector.eq(to_bytes(v)),
                ))
                .on_conflict_do_nothing(),
        );
        match inserted {
            Ok(_) => {}
            // The passage went away between reading it and now (its document was replaced).
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            )) => {}
            Err(e) => return Err(AppError::from(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_keeps_to_the_collections_and_ranks_by_similarity() {
        let v = Vectors::default();
        {
            let mut t = v.table.write().unwrap();
            *t = Table { model: "m".into(), dims: 2, ..Table::default() };
            t.push(1, 10, 100, &[1.0, 0.0]);
            t.push(2, 20, 200, &[0.9, 0.1]);
            t.push(3, 30, 100, &[0.0, 1.0]);
            t.push(4, 40, 100, &[0.8, 0.2]);
        }
        let hits = v.search(&[1.0, 0.0], &[100], 2);
        assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), [1, 4], "collection 200 is not scanned");
        v.table.write().unwrap().retain(|d, _| d != 10);
        assert_eq!(v.search(&[1.0, 0.0], &[100, 200], 1)[0].0, 2);
        assert_eq!(v.status().embedded, 3);
        assert_eq!(from_bytes(&to_bytes(&[1.5, -2.0])), [1.5, -2.0]);
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..19).map(|i| (i * i) as f32).sum::<f32>());
    }
}

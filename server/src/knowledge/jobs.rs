//! Ingestion as background jobs. An upload is stored with its job in one transaction (so a
//! restart loses nothing that was accepted) and answered at once; a bounded pool of workers
//! (`knowledge.ingest_workers` per replica) claims queued jobs, extracts each file in isolation,
//! stores the document and marks the job done, or failed with the reason. A queued job can be
//! cancelled; a running one stops before its document is stored.

use super::collections::Caller;
use super::collections::Row as CollectionRow;
use super::documents::{self, Ingested, Status};
use crate::audit::Actor;
use crate::error::{AppError, AppResult};
use crate::store::schema::{collections, ingest_claims, ingest_jobs, ingest_uploads};
use crate::store::{Conn, columns};
use crate::with_conn;
use diesel::prelude::*;
use serde::Serialize;

/// A running job's replica renews its heartbeat this often, extraction or not.
pub const HEARTBEAT_SECS: u64 = 4;
/// A running job whose heartbeat is older than this belonged to a replica that died (or lost
/// the database); it is queued again and another worker takes it.
pub const STALE_SECS: i64 = 20;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Queryable)]
pub struct Job {
    pub id: i64,
    pub collection: String,
    pub source: String,
    pub bytes: i64,
    /// queued, running, done, failed or cancelled.
    pub status: String,
    /// added, replaced or unchanged, once done.
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub document_id: Option<i64>,
    pub created_by: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl Job {
    pub fn finished(&self) -> bool {
        matches!(self.status.as_str(), "done" | "failed" | "cancelled")
    }
}

#[diesel::dsl::auto_type]
fn listed() -> _ {
    ingest_jobs::table.inner_join(collections::table).select((
        ingest_jobs::id,
        collections::name,
        ingest_jobs::source,
        ingest_jobs::bytes,
        ingest_jobs::status,
        ingest_jobs::outcome,
        ingest_jobs::error,
        ingest_jobs::document_id,
        ingest_jobs::created_by,
        ingest_jobs::created_at,
        ingest_jobs::started_at,
        ingest_jobs::finished_at,
    ))
}

pub fn get(conn: &mut Conn, id: i64) -> AppResult<Job> {
    conn.first::<_, Job>(listed().filter(ingest_jobs::id.eq(id)))
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("there is no ingestion job {id}")))
}

/// Which jobs someone sees, when they do not name a collection they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The jobs of a collection the caller reads or manages.
    Collection(i64),
    /// An admin: every job of a shared collection, and their own. Jobs into someone's personal
    /// collection are that person's business: their file names and errors are not shown.
    Admin { user_id: Option<i64> },
    /// Anyone else: the jobs they made.
    Own(i64),
}

/// A job, for those who may see (and cancel) it: whoever made it, and admins when it went to a
/// shared collection. Anyone else is told it does not exist.
pub fn visible(conn: &mut Conn, caller: super::collections::Caller, id: i64) -> AppResult<Job> {
    let missing = || AppError::not_found(format!("there is no ingestion job {id}"));
    let (maker, owner): (Option<i64>, Option<i64>) = conn
        .first(
            ingest_jobs::table
                .inner_join(collections::table)
                .filter(ingest_jobs::id.eq(id))
                .select((ingest_jobs::user_id, collections::owner_id)),
        )
        .optional()?
        .ok_or_else(missing)?;
    let mine = maker.is_some() && maker == caller.user_id;
    if !(mine || (caller.admin && owner.is_none())) {
        return Err(missing());
    }
    get(conn, id)
}

/// The newest `limit` jobs in `scope`, newest first.
pub fn list(conn: &mut Conn, scope: Scope, limit: i64) -> AppResult<Vec<Job>> {
    Ok(with_conn!(conn, |c| {
        let q = listed().order(ingest_jobs::id.desc()).limit(limit).into_boxed();
        let q = match scope {
            Scope::Collection(id) => q.filter(ingest_jobs::collection_id.eq(id)),
            Scope::Own(user) => q.filter(ingest_jobs::user_id.eq(user)),
            Scope::Admin { user_id: Some(user) } => {
                q.filter(collections::owner_id.is_null().or(ingest_jobs::user_id.eq(user)))
            }
            Scope::Admin { user_id: None } => q.filter(collections::owner_id.is_null()),
        };
        q.load(c)
    })?)
}

/// What queueing a file did.
pub enum Queued {
    /// The collection holds this file, unchanged, under that name: no job was needed.
    Unchanged(Ingested),
    Job(Job),
}

/// Queues one file for a collection `caller` manages. A file the collection already holds
/// unchanged under that name is answered at once, without a job.
pub fn queue(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    caller: Caller,
    collection: &str,
    source: &str,
    bytes: &[u8],
) -> AppResult<Queued> {
    documents::validate_source(source)?;
    let row = super::collections::managed(conn, caller, collection)?;
    if let Some(document) = documents::unchanged(conn, &row, source, &documents::sha256_hex(bytes))? {
        return Ok(Queued::Unchanged(Ingested { status: Status::Unchanged, document }));
    }
    Ok(Queued::Job(enqueue(conn, now, actor, &row, source, bytes)?))
}

/// Queues a file for `collection` (which the caller may change: checked by the caller).
pub fn enqueue(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    collection: &CollectionRow,
    source: &str,
    bytes: &[u8],
) -> AppResult<Job> {
    documents::validate_source(source)?;
    let actor_json = serde_json::to_string(actor).map_err(AppError::internal)?;
    conn.transaction(|conn| {
        let id: i64 = conn.get_result(
            diesel::insert_into(ingest_jobs::table)
                .values((
                    ingest_jobs::collection_id.eq(collection.id),
                    ingest_jobs::source.eq(source),
                    ingest_jobs::bytes.eq(bytes.len() as i64),
                    ingest_jobs::status.eq("queued"),
                    ingest_jobs::cancel_requested.eq(false),
                    ingest_jobs::actor.eq(&actor_json),
                    ingest_jobs::user_id.eq(actor.user_id),
                    ingest_jobs::created_by.eq(&actor.name),
                    ingest_jobs::created_at.eq(now),
                ))
                .returning(ingest_jobs::id),
        )?;
        conn.execute(
            diesel::insert_into(ingest_uploads::table)
                .values((ingest_uploads::job_id.eq(id), ingest_uploads::content.eq(bytes))),
        )?;
        get(conn, id)
    })
}

/// What a job did once it ended: the document it added, replaced or found unchanged; its
/// failure as the error it was; `None` while it has not ended.
pub fn outcome(conn: &mut Conn, job: &Job) -> AppResult<Option<Ingested>> {
    match (job.status.as_str(), job.document_id) {
        ("done", Some(id)) => {
            let status = match job.outcome.as_deref() {
                Some("replaced") => Status::Replaced,
                Some("unchanged") => Status::Unchanged,
                _ => Status::Added,
            };
            Ok(Some(Ingested { status, document: documents::get(conn, id)? }))
        }
        ("failed", _) => Err(AppError::validation(
            job.error.clone().unwrap_or_else(|| "the file could not be added".into()),
        )),
        ("cancelled", _) => Err(AppError::conflict(format!("job {} was cancelled", job.id))),
        _ => Ok(None),
    }
}

/// Cancels a job: a queued one at once, a running one before it stores its document.
pub fn cancel(conn: &mut Conn, now: i64, id: i64) -> AppResult<Job> {
    conn.transaction(|conn| {
        let job = get(conn, id)?;
        match job.status.as_str() {
            "queued" => {
                conn.execute(
                    diesel::update(ingest_jobs::table.find(id))
                        .set((ingest_jobs::status.eq("cancelled"), ingest_jobs::finished_at.eq(now))),
                )?;
                conn.execute(diesel::delete(ingest_uploads::table.find(id)))?;
            }
            "running" => {
                conn.execute(
                    diesel::update(ingest_jobs::table.find(id)).set(ingest_jobs::cancel_requested.eq(true)),
                )?;
            }
            other => return Err(AppError::conflict(format!("job {id} is {other} already"))),
        }
        get(conn, id)
    })
}

/// A job a worker took, with what it needs to run it.
pub struct Claimed {
    pub id: i64,
    /// The replica that runs it (see `store::lease::Duty::replica`).
    pub replica: String,
    pub collection: CollectionRow,
    pub actor: Actor,
    pub source: String,
    pub bytes: Vec<u8>,
}

/// Takes the oldest queued job for `replica`, if any. The conditional update makes the claim
/// safe against other workers and replicas: only one of them moves a job from queued to running.
pub fn claim(conn: &mut Conn, now: i64, replica: &str) -> AppResult<Option<Claimed>> {
    requeue_stale(conn, now - STALE_SECS)?;
    loop {
        let next: Option<i64> = conn
            .first(
                ingest_jobs::table
                    .filter(ingest_jobs::status.eq("queued"))
                    .order(ingest_jobs::id.asc())
                    .select(ingest_jobs::id),
            )
            .optional()?;
        let Some(id) = next else { return Ok(None) };
        // None: another worker was quicker, or the file was gone; look again.
        if let Some(claimed) = claim_job(conn, now, replica, id)? {
            return Ok(Some(claimed));
        }
    }
}

/// Takes job `id` for `replica` if it is still queued (`ayushctl --local` runs the job it
/// queued itself this way).
pub fn claim_job(conn: &mut Conn, now: i64, replica: &str, id: i64) -> AppResult<Option<Claimed>> {
    let took = conn.execute(
        diesel::update(
            ingest_jobs::table.filter(ingest_jobs::id.eq(id)).filter(ingest_jobs::status.eq("queued")),
        )
        .set((ingest_jobs::status.eq("running"), ingest_jobs::started_at.eq(now))),
    )?;
    if took == 0 {
        return Ok(None);
    }
    conn.execute(diesel::delete(ingest_claims::table.find(id)))?;
    conn.execute(diesel::insert_into(ingest_claims::table).values((
        ingest_claims::job_id.eq(id),
        ingest_claims::replica.eq(replica),
        ingest_claims::heartbeat_at.eq(now),
    )))?;
    let (collection_id, source, actor): (i64, String, String) =
        conn.first(ingest_jobs::table.find(id).select((
            ingest_jobs::collection_id,
            ingest_jobs::source,
            ingest_jobs::actor,
        )))?;
    let bytes: Option<Vec<u8>> =
        conn.first(ingest_uploads::table.find(id).select(ingest_uploads::content)).optional()?;
    let collection = conn.first::<_, CollectionRow>(
        collections::table.find(collection_id).select(columns::<CollectionRow>()),
    )?;
    let Some(bytes) = bytes else {
        fail(conn, now, id, "the uploaded file is gone")?;
        return Ok(None);
    };
    let actor = serde_json::from_str(&actor)
        .unwrap_or_else(|_| Actor { name: "unknown".into(), ..Default::default() });
    Ok(Some(Claimed { id, replica: replica.to_string(), collection, actor, source, bytes }))
}

/// Running jobs whose replica stopped beating before `stale` go back to the queue. (A job
/// claimed before heartbeats existed has only its start time.)
fn requeue_stale(conn: &mut Conn, stale: i64) -> AppResult<()> {
    let mut ids: Vec<i64> = conn.load(
        ingest_claims::table.filter(ingest_claims::heartbeat_at.lt(stale)).select(ingest_claims::job_id),
    )?;
    let unclaimed: Vec<i64> = conn.load(
        ingest_jobs::table
            .filter(ingest_jobs::status.eq("running"))
            .filter(ingest_jobs::started_at.lt(stale))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                ingest_claims::table.filter(ingest_claims::job_id.eq(ingest_jobs::id)),
            )))
            .select(ingest_jobs::id),
    )?;
    ids.extend(unclaimed);
    if ids.is_empty() {
        return Ok(());
    }
    conn.transaction(|conn| {
        conn.execute(
            diesel::update(
                ingest_jobs::table
                    .filter(ingest_jobs::id.eq_any(&ids))
                    .filter(ingest_jobs::status.eq("running")),
            )
            .set(ingest_jobs::status.eq("queued")),
        )?;
        conn.execute(diesel::delete(ingest_claims::table.filter(ingest_claims::job_id.eq_any(&ids))))?;
        Ok(())
    })
}

/// Renews a running job's heartbeat; false once the job is no longer this replica's (it was
/// queued again after a pause longer than [`STALE_SECS`], or it ended).
pub fn beat(conn: &mut Conn, now: i64, id: i64, replica: &str) -> AppResult<bool> {
    let renewed = conn.execute(
        diesel::update(
            ingest_claims::table
                .filter(ingest_claims::job_id.eq(id))
                .filter(ingest_claims::replica.eq(replica)),
        )
        .set(ingest_claims::heartbeat_at.eq(now)),
    )?;
    Ok(renewed == 1)
}

pub fn fail(conn: &mut Conn, now: i64, id: i64, why: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        conn.execute(diesel::update(ingest_jobs::table.find(id)).set((
            ingest_jobs::status.eq("failed"),
            ingest_jobs::error.eq(why),
            ingest_jobs::finished_at.eq(now),
        )))?;
        conn.execute(diesel::delete(ingest_uploads::table.find(id)))?;
        conn.execute(diesel::delete(ingest_claims::table.find(id)))?;
        Ok(())
    })
}

/// Stores a claimed job's prepared file and closes the job, in one transaction; or, if the
/// job was cancelled meanwhile, only closes it. A job that is no longer this replica's (another
/// took it over after this one stopped beating) is left to the one that has it.
pub fn complete(
    conn: &mut Conn,
    now: i64,
    job: &Claimed,
    prepared: &documents::Prepared,
) -> AppResult<Option<Ingested>> {
    conn.transaction(|conn| {
        let (cancel, status): (bool, String) = conn.first(
            ingest_jobs::table.find(job.id).select((ingest_jobs::cancel_requested, ingest_jobs::status)),
        )?;
        let holder: Option<String> =
            conn.first(ingest_claims::table.find(job.id).select(ingest_claims::replica)).optional()?;
        if status != "running" || holder.as_deref() != Some(job.replica.as_str()) {
            tracing::warn!(job = job.id, "an ingestion job moved to another replica while this one ran it");
            return Ok(None);
        }
        let (status, outcome, document_id, ingested) = if cancel {
            ("cancelled", None, None, None)
        } else {
            let ingested = documents::store(conn, now, &job.actor, &job.collection, prepared)?;
            let outcome =
                serde_json::to_value(ingested.status).ok().and_then(|v| v.as_str().map(str::to_string));
            ("done", outcome, Some(ingested.document.id), Some(ingested))
        };
        conn.execute(diesel::update(ingest_jobs::table.find(job.id)).set((
            ingest_jobs::status.eq(status),
            ingest_jobs::outcome.eq(outcome),
            ingest_jobs::document_id.eq(document_id),
            ingest_jobs::finished_at.eq(now),
        )))?;
        conn.execute(diesel::delete(ingest_uploads::table.find(job.id)))?;
        conn.execute(diesel::delete(ingest_claims::table.find(job.id)))?;
        Ok(ingested)
    })
}

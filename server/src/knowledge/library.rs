//! The Knowledge service: collections, their readers, their documents and the ingestion jobs
//! that fill them, as people and admins manage them. The JSON API, the collection pages and
//! `ayushctl --local` call these methods, so who may do what, the limits and the audit event of
//! each change are written once (in `collections`, `documents` and `jobs`, inside one
//! transaction each).

use super::collections::{self, Caller, Collection, NewCollection};
use super::documents::{self, Document, Ingested, Status};
use super::jobs::{self, Job, Queued};
use super::{SharedKnowledge, feed};
use crate::audit::{self, Actor, Event, Outcome};
use crate::clock::SharedClock;
use crate::config::KnowledgeConfig;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Store;
use serde_json::json;
use std::time::Duration;

/// The most jobs one listing returns.
pub const MAX_JOBS: i64 = 500;

#[derive(Clone)]
pub struct Library {
    store: Store,
    clock: SharedClock,
    max_file_bytes: u64,
    /// The index and ingestion workers of this process, where it runs them (the server).
    /// `ayushctl --local` has none: the server finds its changes on the feed and its queued
    /// jobs in the table.
    running: Option<SharedKnowledge>,
}

/// A collection's page: the collection, its documents, its latest jobs, and whether the
/// caller manages it (or only reads it).
pub struct Overview {
    pub collection: Collection,
    pub documents: Vec<Document>,
    pub jobs: Vec<Job>,
    pub manage: bool,
}

/// Where a queued file stands once its sender stops waiting.
pub enum Settled {
    /// The collection already held this file, unchanged, under that name.
    Unchanged(Ingested),
    /// Stored, and searchable (unless the index is still catching up, which it does on its own).
    Stored(Ingested),
    /// Still queued or running.
    Pending(Job),
}

impl Library {
    pub fn new(
        store: Store,
        clock: SharedClock,
        cfg: &KnowledgeConfig,
        running: Option<SharedKnowledge>,
    ) -> Library {
        Library { store, clock, max_file_bytes: cfg.max_file_mib * 1024 * 1024, running }
    }

    /// The largest file a collection takes (`knowledge.max_file_mib`).
    pub fn max_file_bytes(&self) -> u64 {
        self.max_file_bytes
    }

    /// The collections `caller` reads or manages.
    pub async fn list(&self, caller: Caller) -> AppResult<Vec<Collection>> {
        self.store.run(move |c| collections::list(c, caller)).await
    }

    pub async fn show(&self, caller: Caller, name: String) -> AppResult<Collection> {
        self.store.run(move |c| collections::get(c, caller, &name)).await
    }

    pub async fn create(&self, actor: Actor, caller: Caller, new: NewCollection) -> AppResult<Collection> {
        let now = self.clock.now();
        self.store.run(move |c| collections::create(c, now, &actor, caller, new)).await
    }

    /// Removes a collection with its documents; the index drops their passages.
    pub async fn remove(&self, actor: Actor, caller: Caller, name: String) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| collections::remove(c, now, &actor, caller, &name)).await?;
        self.index_changed();
        Ok(())
    }

    /// Lets the members of `group` read a shared collection (admins).
    pub async fn grant(&self, actor: Actor, name: String, group: String) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| collections::grant_read(c, now, &actor, &name, &group)).await
    }

    pub async fn revoke(&self, actor: Actor, name: String, group: String) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| collections::revoke_read(c, now, &actor, &name, &group)).await
    }

    /// The names of the collections `caller` reads, for choosing where to search.
    pub async fn readable_names(&self, caller: Caller) -> AppResult<Vec<String>> {
        let Some(user_id) = caller.user_id else { return Ok(Vec::new()) };
        self.store.run(move |c| collections::readable_names(c, user_id)).await
    }

    /// A collection's documents, for its readers and for those who manage it.
    pub async fn documents(&self, caller: Caller, name: String) -> AppResult<Vec<Document>> {
        self.store
            .run(move |c| {
                let (row, _) = collections::opened(c, caller, &name)?;
                documents::list(c, &row)
            })
            .await
    }

    /// A collection with its documents and its latest `jobs` ingestion jobs.
    pub async fn overview(&self, caller: Caller, name: String, jobs: i64) -> AppResult<Overview> {
        self.store
            .run(move |c| {
                let (row, manage) = collections::opened(c, caller, &name)?;
                let jobs = jobs::list(c, jobs::Scope::Collection(row.id), jobs)?;
                let documents = documents::list(c, &row)?;
                Ok(Overview { collection: collections::describe_one(c, row)?, documents, jobs, manage })
            })
            .await
    }

    /// Queues one file for a collection `caller` manages (see [`jobs::queue`]) and wakes this
    /// process's workers, where it has them.
    pub async fn queue(
        &self,
        actor: Actor,
        caller: Caller,
        collection: String,
        source: String,
        bytes: Vec<u8>,
    ) -> AppResult<Queued> {
        if bytes.len() as u64 > self.max_file_bytes {
            return Err(AppError::new(
                ErrorKind::TooLarge,
                format!("{source}: larger than knowledge.max_file_mib ({} MiB)", self.max_file_bytes >> 20),
            ));
        }
        let now = self.clock.now();
        let queued = self
            .store
            .run(move |c| jobs::queue(c, now, &actor, caller, &collection, &source, &bytes))
            .await?;
        if let Some(running) = &self.running {
            running.queued.notify_waiters();
        }
        Ok(queued)
    }

    /// Waits up to `wait` for a queued file's job to end, and for the index to hold it (with
    /// no `wait`, a job is answered pending at once); a job that failed is the error it failed
    /// with.
    pub async fn settle(&self, queued: Queued, wait: Option<Duration>) -> AppResult<Settled> {
        let job = match (queued, wait) {
            (Queued::Unchanged(ingested), _) => return Ok(Settled::Unchanged(ingested)),
            (Queued::Job(job), None) => return Ok(Settled::Pending(job)),
            (Queued::Job(job), Some(wait)) => self.wait_job(job.id, wait).await?,
        };
        let ended = job.clone();
        Ok(match self.store.run(move |c| jobs::outcome(c, &ended)).await? {
            Some(ingested) if ingested.status == Status::Unchanged => Settled::Unchanged(ingested),
            Some(ingested) => Settled::Stored(ingested),
            None => Settled::Pending(job),
        })
    }

    /// Waits for a job to end (at most `timeout`), and then for this process's index, where it
    /// has one, to hold its document.
    pub async fn wait_job(&self, id: i64, timeout: Duration) -> AppResult<Job> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the look, so an ending in between still wakes this.
            let ended = self.running.as_ref().map(|r| r.ended.notified());
            let job = self.store.run(move |c| jobs::get(c, id)).await?;
            if job.finished() {
                if job.status == "done"
                    && let Some(running) = &self.running
                {
                    let head = self.store.run(feed::head).await?;
                    super::wait_indexed(running, head).await;
                }
                return Ok(job);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(job);
            }
            // Jobs run by another process end without ringing here: look again now and then.
            let pause = Duration::from_millis(500);
            match ended {
                Some(ended) => drop(tokio::time::timeout(pause, ended).await),
                None => tokio::time::sleep(pause).await,
            }
        }
    }

    pub async fn remove_document(
        &self,
        actor: Actor,
        caller: Caller,
        name: String,
        id: i64,
    ) -> AppResult<()> {
        let now = self.clock.now();
        self.store
            .run(move |c| {
                let row = collections::managed(c, caller, &name)?;
                documents::remove(c, now, &actor, &row, id)
            })
            .await?;
        self.index_changed();
        Ok(())
    }

    /// A document and its original file, for the readers of its collection.
    pub async fn original(&self, caller: Caller, name: String, id: i64) -> AppResult<(Document, Vec<u8>)> {
        self.store
            .run(move |c| {
                let row = collections::readable(c, caller, &name)?;
                let doc = documents::get_in(c, &row, id)?;
                Ok((doc, documents::file(c, id)?))
            })
            .await
    }

    /// Jobs of a collection one manages or reads, or one's own; admins see those of shared
    /// collections too. Newest first, at most `limit` (1 to [`MAX_JOBS`]).
    pub async fn jobs(&self, caller: Caller, collection: Option<String>, limit: i64) -> AppResult<Vec<Job>> {
        if !(1..=MAX_JOBS).contains(&limit) {
            return Err(AppError::validation(format!("limit must be between 1 and {MAX_JOBS}")));
        }
        self.store
            .run(move |c| {
                let scope = match (&collection, caller.user_id) {
                    (Some(name), _) => jobs::Scope::Collection(collections::opened(c, caller, name)?.0.id),
                    (None, user_id) if caller.admin => jobs::Scope::Admin { user_id },
                    (None, Some(user)) => jobs::Scope::Own(user),
                    (None, None) => return Ok(Vec::new()),
                };
                jobs::list(c, scope, limit)
            })
            .await
    }

    /// A job, for whoever made it, and for admins when it went to a shared collection.
    pub async fn job(&self, caller: Caller, id: i64) -> AppResult<Job> {
        self.store.run(move |c| jobs::visible(c, caller, id)).await
    }

    pub async fn cancel_job(&self, caller: Caller, id: i64) -> AppResult<Job> {
        let now = self.clock.now();
        self.store
            .run(move |c| {
                jobs::visible(c, caller, id)?;
                jobs::cancel(c, now, id)
            })
            .await
    }

    /// Rebuilds this process's index from the database, and audits it; the number of passages
    /// indexed.
    pub async fn rebuild(&self, actor: Actor) -> AppResult<u64> {
        let running = self
            .running
            .clone()
            .ok_or_else(|| AppError::new(ErrorKind::Unavailable, "this process holds no index to rebuild"))?;
        let passages = tokio::task::spawn_blocking(move || running.index.rebuild())
            .await
            .map_err(AppError::internal)?
            .map_err(|e| AppError::new(ErrorKind::Unavailable, format!("the rebuild failed: {e}")))?;
        let now = self.clock.now();
        self.store
            .run(move |c| {
                let event = Event::new(&actor, "index.rebuild", Outcome::Success);
                audit::record(c, now, &event.details(json!({"passages": passages})))
            })
            .await?;
        Ok(passages)
    }

    fn index_changed(&self) {
        if let Some(running) = &self.running {
            running.index.notify();
        }
    }
}

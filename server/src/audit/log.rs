//! The AuditLog service: what auditors and admins do to the log itself — read it, export it,
//! verify the chain, sign a checkpoint, hold a person's events from retention and prune. The
//! audit pages, the JSON API and `ayushctl --local` call these methods; each action on the log
//! is itself recorded, once, here or in the functions these call.

use super::anchor::Checkpoint;
use super::content::{self, Captured};
use super::query::{self, Checked, Filter, Format};
use super::retention::{self, Hold, Pruned};
use super::verify::Report;
use super::{Actor, AuditEvent, Event, Ledger, Outcome};
use crate::clock::SharedClock;
use crate::error::{AppError, AppResult};
use crate::store::Store;
use std::sync::Arc;

pub use super::query::{MAX_PAGE, PAGE};

#[derive(Clone)]
pub struct AuditLog {
    store: Store,
    clock: SharedClock,
    ledger: Arc<Ledger>,
}

/// Which page of the log: the newest (before a seq, newest first), or those after a seq
/// (oldest first, for following the log).
#[derive(Debug, Clone, Copy, Default)]
pub struct Paging {
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// 1 to [`MAX_PAGE`]; larger asks are cut to it.
    pub limit: i64,
}

/// An export that has been recorded (as `audit.export`) and may now be written: the events
/// its filter selects, up to the one before its own event.
pub struct Export {
    store: Store,
    filter: Checked,
    format: Format,
    upto: i64,
}

impl AuditLog {
    pub fn new(store: Store, clock: SharedClock, ledger: Arc<Ledger>) -> AuditLog {
        AuditLog { store, clock, ledger }
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// One page of the events `filter` selects.
    pub async fn events(&self, filter: &Filter, paging: Paging) -> AppResult<Vec<AuditEvent>> {
        let checked = filter.check()?;
        let Paging { before, after, limit } = paging;
        if before.is_some() && after.is_some() {
            return Err(AppError::bad_request("give before or after, not both"));
        }
        self.store
            .run(move |c| match after {
                Some(after) => query::page_after(c, &checked, after, limit),
                None => query::page(c, &checked, before, limit),
            })
            .await
    }

    /// Records an export of what `filter` selects; the returned [`Export`] writes it.
    pub async fn export(&self, actor: Actor, filter: Filter, format: Format) -> AppResult<Export> {
        let checked = filter.check()?;
        let now = self.clock.now();
        let upto = self.store.run(move |c| query::record_export(c, now, &actor, &filter, format)).await?;
        Ok(Export { store: self.store.clone(), filter: checked, format, upto })
    }

    /// Verifies the chain (from a checkpoint this server signed, when given), and records that
    /// it was verified.
    pub async fn verify(&self, actor: Actor, from: Option<Checkpoint>) -> AppResult<Report> {
        if let Some(cp) = &from
            && !cp.signature_valid(self.ledger.keys().public_key())
        {
            return Err(AppError::bad_request(
                "from_checkpoint does not carry a valid signature of this server's key",
            ));
        }
        let (ledger, now) = (self.ledger.clone(), self.clock.now());
        self.store.run(move |c| ledger.verify(c, now, from.as_ref(), Some(&actor))).await
    }

    /// Signs a checkpoint of the chain head now; none while the log is empty.
    pub async fn checkpoint(&self) -> AppResult<Option<Checkpoint>> {
        let (ledger, now) = (self.ledger.clone(), self.clock.now());
        self.store.run(move |c| ledger.checkpoint(c, now, "manual")).await
    }

    /// Prunes events older than `keep_days` (the configured retention, without), behind a
    /// signed checkpoint; none when no event is old enough.
    pub async fn prune(&self, actor: Actor, keep_days: Option<u64>) -> AppResult<Option<Pruned>> {
        let (ledger, now) = (self.ledger.clone(), self.clock.now());
        self.store.run(move |c| ledger.prune(c, now, keep_days, &actor)).await
    }

    /// One event, with the chat content the policy captured for it, decrypted (or why it could
    /// not be). Reading captured content is itself recorded, as `audit.content_view`.
    pub async fn event(
        &self,
        actor: Actor,
        seq: i64,
    ) -> AppResult<(AuditEvent, Option<Result<Captured, String>>)> {
        let (ledger, now) = (self.ledger.clone(), self.clock.now());
        self.store
            .run(move |c| {
                let event = query::by_seq(c, seq)?;
                let details: serde_json::Value = serde_json::from_str(&event.details).unwrap_or_default();
                let binding =
                    content::Binding::of(event.target_type.as_deref(), event.target_id.as_deref(), &details);
                let captured = match (details.get("content"), binding) {
                    (Some(_), Some(binding)) => {
                        let opened = content::open(ledger.keys(), &details, &binding);
                        let outcome = if opened.is_ok() { Outcome::Success } else { Outcome::Failure };
                        let seen = Event::new(&actor, "audit.content_view", outcome)
                            .target("audit_event", seq)
                            .details(binding.to_json());
                        super::record(c, now, &seen)?;
                        Some(opened)
                    }
                    _ => None,
                };
                Ok((event, captured))
            })
            .await
    }

    pub async fn holds(&self) -> AppResult<Vec<Hold>> {
        self.store.run(retention::holds).await
    }

    /// Keeps `username`'s events from retention until released.
    pub async fn hold(&self, actor: Actor, username: String, reason: String) -> AppResult<Hold> {
        let now = self.clock.now();
        self.store.run(move |c| retention::place(c, now, &actor, username.trim(), &reason)).await
    }

    pub async fn release(&self, actor: Actor, username: String) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| retention::release(c, now, &actor, &username)).await
    }
}

impl Export {
    pub fn format(&self) -> Format {
        self.format
    }

    /// Writes the export, oldest first, handing `emit` chunks of about 60 KiB; `emit` returns
    /// false to stop (the reader went away).
    pub async fn write(self, emit: impl FnMut(String) -> bool + Send + 'static) -> AppResult<()> {
        let Export { store, filter, format, upto } = self;
        store.run(move |c| query::export(c, &filter, format, upto, emit)).await
    }

    /// As [`Export::write`], on this thread (for `ayushctl --local`, writing to a file).
    pub fn write_blocking(self, emit: impl FnMut(String) -> bool) -> AppResult<()> {
        let Export { store, filter, format, upto } = self;
        store.run_blocking(|c| query::export(c, &filter, format, upto, emit))
    }
}

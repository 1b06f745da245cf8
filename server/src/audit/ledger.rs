//! The audit log's keeper in a running server or an `ayushctl --local` session: the keys, the
//! witnesses outside the database, and what the last verification found. The server's
//! housekeeping calls `keep` every second.

use super::anchor::{self, Anchor, AnchorError, Checkpoint};
use super::keys::{KeyError, Keys};
use super::verify::{self, Report, Witnesses};
use super::{Actor, Chain, Event, Outcome, retention, sink};
use crate::config::Config;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Conn;
use serde::Serialize;
use std::sync::{Arc, Mutex};

pub struct Ledger {
    keys: Keys,
    anchor: Anchor,
    checkpoint_every: i64,
    verify_every: i64,
    retention_days: u64,
    sink_names: Vec<String>,
    state: Mutex<Status>,
}

/// What the viewer shows at a glance.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub last_report: Option<Report>,
    /// Set when the head file could not be moved forward: the database fell behind it or
    /// diverged from it. Cleared only by a verification that passes.
    pub anchor_problem: Option<String>,
    pub last_checkpoint_at: Option<i64>,
    pub last_retention_at: Option<i64>,
    /// The configured SIEM sinks as this process last saw them.
    pub sinks: Vec<sink::SinkState>,
}

impl Ledger {
    /// Loads (on first start, creates) the keys the config names, and the chain every
    /// connection seals events with.
    pub fn open(config: &Config) -> Result<(Ledger, Arc<Chain>), KeyError> {
        let keys = Keys::load_or_create(&config.audit_secrets_dir())?;
        let chain = Arc::new(Chain::new(&keys, config.audit.fail_closed));
        let ledger = Ledger {
            keys,
            anchor: Anchor::new(config.audit_anchor_dir()),
            checkpoint_every: config.audit.checkpoint_interval_mins as i64 * 60,
            verify_every: config.audit.verify_interval_mins as i64 * 60,
            retention_days: config.audit.retention_days,
            sink_names: config.audit.sinks.iter().map(|s| s.name.clone()).collect(),
            state: Mutex::new(Status::default()),
        };
        Ok((ledger, chain))
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn anchor(&self) -> &Anchor {
        &self.anchor
    }

    pub fn status(&self) -> Status {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }

    /// Moves the head file forward. A database behind or diverged from it is reported loudly
    /// and remembered; the file is left as it was, as evidence.
    pub fn refresh_anchor(&self, conn: &mut Conn, now: i64) {
        match self.anchor.refresh(conn, now) {
            Ok(_) => {}
            Err(e @ (AnchorError::Behind { .. } | AnchorError::Diverged { .. })) => {
                let message = e.to_string();
                let known = self.status().anchor_problem.as_deref() == Some(message.as_str());
                if !known {
                    tracing::error!(problem = %message, "AUDIT LOG TAMPERING: the database no longer matches the head kept outside it");
                }
                self.update(|s| s.anchor_problem = Some(message));
            }
            Err(e) => tracing::warn!(error = %e, "cannot update the audit head file"),
        }
    }

    /// Signs a checkpoint of the current head now.
    pub fn checkpoint(&self, conn: &mut Conn, now: i64, reason: &str) -> AppResult<Option<Checkpoint>> {
        let made = anchor::checkpoint(conn, &self.keys, &self.anchor, now, reason)?;
        if made.is_some() {
            self.update(|s| s.last_checkpoint_at = Some(now));
        }
        Ok(made)
    }

    /// Verifies the whole chain (or from a checkpoint on), remembers the result for the viewer
    /// and, when `actor` is given, records the verification as an event of its own.
    pub fn verify(
        &self,
        conn: &mut Conn,
        now: i64,
        from: Option<&Checkpoint>,
        actor: Option<&Actor>,
    ) -> AppResult<Report> {
        let witnesses = Witnesses { public_key: self.keys.public_key(), anchor: Some(&self.anchor), from };
        let report = verify::verify(conn, &witnesses, now)?;
        if let Some(actor) = actor {
            let details = serde_json::json!({
                "ok": report.ok,
                "events": report.events,
                "last_seq": report.last_seq,
                "from_checkpoint": report.from_checkpoint,
                "problem": report.problem,
            });
            let outcome = if report.ok { Outcome::Success } else { Outcome::Failure };
            super::record(conn, now, &Event::new(actor, "audit.verify", outcome).details(details))?;
        }
        if !report.ok {
            tracing::error!(summary = %report.summary(), "AUDIT LOG VERIFICATION FAILED");
        }
        let ok = report.ok;
        self.update(|s| {
            s.last_report = Some(report.clone());
            if ok {
                s.anchor_problem = None;
            }
        });
        Ok(report)
    }

    /// What a sink's thread reports after each attempt.
    pub fn note_sink(&self, name: &str, delivered: Option<i64>, error: Option<String>, now: i64) {
        self.update(|s| {
            let i = match s.sinks.iter().position(|x| x.name == name) {
                Some(i) => i,
                None => {
                    s.sinks.push(sink::SinkState { name: name.to_string(), ..Default::default() });
                    s.sinks.len() - 1
                }
            };
            let entry = &mut s.sinks[i];
            if let Some(seq) = delivered {
                entry.delivered_seq = seq;
                entry.last_delivery_at = Some(now);
            }
            entry.last_error = error;
        });
    }

    /// Prunes events older than `keep_days` (the config's `audit.retention_days` unless given).
    pub fn prune(
        &self,
        conn: &mut Conn,
        now: i64,
        keep_days: Option<u64>,
        actor: &Actor,
    ) -> AppResult<Option<retention::Pruned>> {
        let days = keep_days.unwrap_or(self.retention_days);
        if days == 0 {
            return Err(AppError::new(
                ErrorKind::Validation,
                "retention is off (audit.retention_days = 0): nothing is ever pruned",
            ));
        }
        // Nothing a configured sink has not been sent yet is pruned.
        let cursors = sink::cursors(conn)?;
        let not_after = self
            .sink_names
            .iter()
            .map(|name| cursors.iter().find(|(n, _)| n == name).map_or(0, |(_, seq)| *seq))
            .min();
        let pruned = retention::prune(conn, &self.keys, &self.anchor, now, days, not_after, actor)?;
        if let Some(p) = &pruned {
            tracing::info!(
                through_seq = p.through_seq,
                pruned = p.pruned,
                kept_on_hold = p.kept_on_hold,
                "audit retention"
            );
        }
        Ok(pruned)
    }

    /// One housekeeping step: the head file every time; a checkpoint, a verification and
    /// retention when due, and only where `duty` says this replica does the installation-wide
    /// work (they must not run twice).
    pub fn keep(&self, conn: &mut Conn, now: i64, duty: bool) -> AppResult<()> {
        self.refresh_anchor(conn, now);
        if !duty {
            return Ok(());
        }
        let status = self.status();
        if status.last_checkpoint_at.is_none_or(|at| now - at >= self.checkpoint_every) {
            // Mark it done even when nothing new needed signing, so an idle log is not polled.
            self.checkpoint(conn, now, "periodic")?;
            self.update(|s| s.last_checkpoint_at = Some(now));
        }
        if status.last_report.as_ref().is_none_or(|r| now - r.verified_at >= self.verify_every) {
            self.verify(conn, now, None, None)?;
        }
        if self.retention_days > 0 && status.last_retention_at.is_none_or(|at| now - at >= 3600) {
            self.update(|s| s.last_retention_at = Some(now));
            self.prune(conn, now, None, &Actor::system("retention"))?;
        }
        Ok(())
    }
}

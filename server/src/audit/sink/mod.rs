//! Forwarding the audit log to SIEMs: RFC 5424 syslog over TCP, TLS or UDP, and JSON lines to a
//! file. Delivery is at least once and in sequence order, and the log itself is the buffer:
//! each sink has a cursor in the database (the last seq it was sent), advanced only after a
//! batch went through, so a sink that is down is caught up from the log when it returns, with
//! the events' own sequence numbers. A sink may fall at most `max_backlog` events behind; past
//! that the oldest are skipped, and the skip is itself an audit event. One replica forwards
//! each sink at a time, under a lease in the database.

pub mod syslog;
pub mod transport;

use super::{Actor, AuditEvent, Event, Outcome, chain};
use crate::clock::SharedClock;
use crate::config::SinkConfig;
use crate::error::AppResult;
use crate::store::Store;
use crate::store::schema::{audit_events, audit_sinks};
use crate::store::{Conn, columns};
use diesel::prelude::*;
use serde::Serialize;
use std::time::Duration;
use transport::Transport;

const BATCH: i64 = 500;
const LEASE_SECS: i64 = 30;
const IDLE: Duration = Duration::from_millis(250);

/// What the status endpoint shows of one sink.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkState {
    pub name: String,
    pub delivered_seq: i64,
    pub last_error: Option<String>,
    pub last_delivery_at: Option<i64>,
}

/// Each sink's cursor, by name.
pub fn cursors(conn: &mut Conn) -> AppResult<Vec<(String, i64)>> {
    Ok(conn.load(
        audit_sinks::table
            .select((audit_sinks::name, audit_sinks::delivered_seq))
            .order(audit_sinks::name.asc()),
    )?)
}

/// Takes (or renews) the lease on a sink and returns its cursor; `None` while another replica
/// holds it.
fn claim(conn: &mut Conn, name: &str, owner: &str, now: i64) -> QueryResult<Option<i64>> {
    // Polling is reads only while our lease has time left: no write lock taken for nothing.
    let held: Option<(i64, Option<String>, i64)> = conn
        .first(audit_sinks::table.find(name).select((
            audit_sinks::delivered_seq,
            audit_sinks::owner,
            audit_sinks::lease_until,
        )))
        .optional()?;
    match &held {
        Some((delivered, Some(who), until)) if who == owner && *until > now + LEASE_SECS / 2 => {
            return Ok(Some(*delivered));
        }
        Some((_, Some(who), until)) if who != owner && *until >= now => return Ok(None),
        _ => {}
    }
    conn.execute(
        diesel::insert_into(audit_sinks::table)
            .values((
                audit_sinks::name.eq(name),
                audit_sinks::delivered_seq.eq(0),
                audit_sinks::lease_until.eq(0),
            ))
            .on_conflict_do_nothing(),
    )?;
    conn.get_result::<_, i64>(
        diesel::update(
            audit_sinks::table
                .filter(audit_sinks::name.eq(name))
                .filter(audit_sinks::owner.eq(owner).or(audit_sinks::lease_until.lt(now))),
        )
        .set((audit_sinks::owner.eq(owner), audit_sinks::lease_until.eq(now + LEASE_SECS)))
        .returning(audit_sinks::delivered_seq),
    )
    .optional()
}

/// The next batch for a sink, skipping ahead (and recording it) when it fell too far behind.
fn next_batch(
    conn: &mut Conn,
    cfg: &SinkConfig,
    owner: &str,
    now: i64,
) -> AppResult<Option<Vec<AuditEvent>>> {
    let Some(mut delivered) = conn.transaction(|c| claim(c, &cfg.name, owner, now))? else {
        return Ok(None);
    };
    let (head, _) = chain::head(conn)?;
    let max = i64::try_from(cfg.max_backlog).unwrap_or(i64::MAX);
    if head - delivered > max {
        let resume = head - max;
        let system = Actor::system("audit-sink");
        let details = serde_json::json!({
            "sink": cfg.name,
            "skipped_from": delivered + 1,
            "skipped_to": resume,
            "max_backlog": cfg.max_backlog,
        });
        conn.transaction(|c| {
            advance(c, &cfg.name, owner, resume)?;
            super::record(c, now, &Event::new(&system, "audit.sink_gap", Outcome::Failure).details(details))
        })?;
        tracing::error!(sink = %cfg.name, skipped_to = resume, "audit sink fell more than max_backlog behind; oldest events skipped");
        delivered = resume;
    }
    if delivered >= head {
        // Caught up: the idle poll stops here, without reading events.
        return Ok(Some(Vec::new()));
    }
    let events = conn.load(
        audit_events::table
            .filter(audit_events::seq.gt(delivered))
            .order(audit_events::seq.asc())
            .limit(BATCH)
            .select(columns::<AuditEvent>()),
    )?;
    Ok(Some(events))
}

fn advance(conn: &mut Conn, name: &str, owner: &str, seq: i64) -> QueryResult<()> {
    conn.execute(
        diesel::update(
            audit_sinks::table.filter(audit_sinks::name.eq(name)).filter(audit_sinks::owner.eq(owner)),
        )
        .set(audit_sinks::delivered_seq.eq(seq)),
    )?;
    Ok(())
}

/// Where a sink may connect: the egress policy (`egress::Egress`), which records a refusal.
pub trait Gate: Send + Sync {
    /// The addresses `host:port` may be reached at, or why not.
    fn check(&self, what: &str, host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, String>;
}

/// What the forwarding threads need: where the log is, the time, the way out, where to report
/// each sink's state, and this replica's name for the sinks' leases.
#[derive(Clone)]
pub struct Forwarder {
    pub store: Store,
    pub clock: SharedClock,
    pub egress: std::sync::Arc<dyn Gate>,
    pub ledger: std::sync::Arc<super::Ledger>,
    pub replica: std::sync::Arc<str>,
}

/// Starts one forwarding thread per configured sink.
pub fn start(sinks: &[SinkConfig], forwarder: Forwarder) {
    for cfg in sinks.iter().cloned() {
        let state = forwarder.clone();
        let name = format!("audit-sink-{}", cfg.name);
        let spawned = std::thread::Builder::new().name(name).spawn(move || forward(state, cfg));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start an audit sink thread");
        }
    }
}

fn forward(state: Forwarder, cfg: SinkConfig) {
    let hostname = syslog::hostname();
    let owner = state.replica.to_string();
    let mut link: Option<Transport> = None;
    let mut backoff = Duration::from_secs(1);
    let mut failing = false;
    tracing::info!(sink = %cfg.name, kind = ?cfg.kind, "forwarding the audit log");
    loop {
        let now = state.clock.now();
        let events = match state.store.run_blocking(|c| next_batch(c, &cfg, &owner, now)) {
            Ok(Some(events)) if !events.is_empty() => events,
            Ok(_) => {
                std::thread::sleep(IDLE);
                continue;
            }
            Err(e) => {
                tracing::warn!(sink = %cfg.name, error = %e, "audit sink cannot read the log");
                std::thread::sleep(Duration::from_secs(5));
                continue;
            }
        };
        let last = events.last().map_or(0, |e| e.seq);
        let sent = match link.as_mut() {
            Some(l) => l.send(&events, &hostname),
            None => Transport::open(&cfg, state.egress.as_ref()).and_then(|mut l| {
                let r = l.send(&events, &hostname);
                link = Some(l);
                r
            }),
        };
        let outcome = sent.and_then(|()| {
            state
                .store
                .run_blocking(|c| Ok(advance(c, &cfg.name, &owner, last)?))
                .map_err(|e| format!("recording delivery: {}", e.message))
        });
        match outcome {
            Ok(()) => {
                if failing {
                    tracing::info!(sink = %cfg.name, through_seq = last, "audit sink reachable again; catching up");
                }
                failing = false;
                backoff = Duration::from_secs(1);
                state.ledger.note_sink(&cfg.name, Some(last), None, now);
            }
            Err(e) => {
                link = None;
                if !failing {
                    tracing::warn!(sink = %cfg.name, error = %e, "audit sink unreachable; events wait in the log");
                }
                failing = true;
                state.ledger.note_sink(&cfg.name, None, Some(e), now);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

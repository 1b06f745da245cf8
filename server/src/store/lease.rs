//! Leases: work that must run once for the whole installation, however many replicas share
//! the database, is done by the replica holding its lease. A holder renews before the lease
//! runs out; one that stops (it died, or lost the database) lets it lapse, and another replica
//! takes it at its next try. Clocks of replicas are assumed to agree within a few seconds.

use crate::store::Conn;
use crate::store::schema::leases;
use diesel::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Takes lease `name` for `holder` until `now + secs`, or renews it; false while another
/// holder's lease has time left.
pub fn take(conn: &mut Conn, name: &str, holder: &str, now: i64, secs: i64) -> QueryResult<bool> {
    let inserted = conn.execute(
        diesel::insert_into(leases::table)
            .values((leases::name.eq(name), leases::holder.eq(holder), leases::until.eq(now + secs)))
            .on_conflict_do_nothing(),
    )?;
    if inserted == 1 {
        return Ok(true);
    }
    // One statement decides: two replicas racing for a lapsed lease cannot both match.
    let updated = conn.execute(
        diesel::update(
            leases::table
                .filter(leases::name.eq(name))
                .filter(leases::holder.eq(holder).or(leases::until.lt(now))),
        )
        .set((leases::holder.eq(holder), leases::until.eq(now + secs))),
    )?;
    Ok(updated == 1)
}

/// Gives lease `name` up at once if `holder` has it, so another replica need not wait for it
/// to lapse (a clean shutdown).
pub fn give_up(conn: &mut Conn, name: &str, holder: &str) -> QueryResult<()> {
    conn.execute(
        diesel::update(leases::table.filter(leases::name.eq(name)).filter(leases::holder.eq(holder)))
            .set(leases::until.eq(0)),
    )?;
    Ok(())
}

/// Who holds a lease, and until when.
pub fn holder(conn: &mut Conn, name: &str) -> QueryResult<Option<(String, i64)>> {
    conn.first(leases::table.find(name).select((leases::holder, leases::until))).optional()
}

/// This replica's part in the installation-wide work: whether it holds the lease named
/// [`Duty::LEASE`] now. The serve loop renews it every [`Duty::RENEW_SECS`]; the periodic jobs
/// ask [`Duty::mine`] before doing work that must happen once.
#[derive(Debug)]
pub struct Duty {
    /// This replica's name in leases and job claims: host, process and a random part.
    pub replica: Arc<str>,
    held: AtomicBool,
}

impl Duty {
    pub const LEASE: &'static str = "singleton-work";
    pub const RENEW_SECS: u64 = 2;
    /// Long enough to ride out a slow database call, short enough that a dead replica's work
    /// moves on quickly.
    pub const LEASE_SECS: i64 = 10;

    pub fn new(replica: impl Into<Arc<str>>) -> Duty {
        Duty { replica: replica.into(), held: AtomicBool::new(false) }
    }

    /// Takes or renews the lease; returns whether this replica holds it.
    pub fn renew(&self, conn: &mut Conn, now: i64) -> QueryResult<bool> {
        let held = take(conn, Self::LEASE, &self.replica, now, Self::LEASE_SECS)?;
        if held != self.held.swap(held, Ordering::Relaxed) {
            tracing::info!(replica = %self.replica, held, "installation-wide work (checkpoints, retention, sync)");
        }
        Ok(held)
    }

    /// Forgets the lease after an error renewing it: better no one does the work for a few
    /// seconds than two replicas at once.
    pub fn lost(&self) {
        self.held.store(false, Ordering::Relaxed);
    }

    pub fn mine(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    pub fn give_up(&self, conn: &mut Conn) -> QueryResult<()> {
        self.held.store(false, Ordering::Relaxed);
        give_up(conn, Self::LEASE, &self.replica)
    }
}

//! The hash chain. Each event carries a gap-free sequence number, the MAC of the event before it
//! and its own MAC: HMAC-SHA256, under a key kept outside the database, over the event's fields
//! and the previous MAC. Changing, removing or reordering an event breaks the chain from there on,
//! and nobody without the key can mend it.
//!
//! The MAC input is the ASCII tag `ayush-audit-v1` followed by each field as a 4-byte big-endian
//! length and its UTF-8 bytes (integers in decimal), or the length 0xFFFFFFFF for an absent value,
//! in this order: seq, at, actor_id, actor_name, auth_method, api_key_id, ip, user_agent, action,
//! target_type, target_id, outcome, details, prev_hash. docs/admin/audit.md spells this out so
//! that an auditor can check the log with their own tools.

use super::AuditEvent;
use super::keys::Keys;
use crate::error::{AppError, AppResult};
use crate::store::schema::{audit_events, audit_head};
use crate::store::{Conn, Journal, columns};
use diesel::prelude::*;
use ring::hmac;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const TAG: &[u8] = b"ayush-audit-v1";

/// What every connection needs to write an event: the sealing key and the failure policy.
pub struct Chain {
    key: hmac::Key,
    /// With `audit.fail_closed`, a change whose event cannot be written is refused; without it,
    /// the change goes through and the failure is logged and counted.
    pub fail_closed: bool,
    write_failures: AtomicU64,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("fail_closed", &self.fail_closed).finish_non_exhaustive()
    }
}

impl Chain {
    pub fn new(keys: &Keys, fail_closed: bool) -> Chain {
        Chain::from_key(keys.mac_key(), fail_closed)
    }

    pub fn from_key(key: &[u8; 32], fail_closed: bool) -> Chain {
        Chain { key: hmac::Key::new(hmac::HMAC_SHA256, key), fail_closed, write_failures: AtomicU64::new(0) }
    }

    /// The MAC of one event, as lowercase hex.
    pub fn seal(&self, fields: &Fields<'_>, scratch: &mut Vec<u8>) -> String {
        scratch.clear();
        fields.encode(scratch);
        hex::encode(hmac::sign(&self.key, scratch).as_ref())
    }

    pub fn note_write_failure(&self) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The chain `conn` seals into: the journal its store was opened with.
    pub fn of(conn: &Conn) -> AppResult<Arc<Chain>> {
        let journal: Arc<dyn std::any::Any + Send + Sync> = conn.journal().clone();
        journal
            .downcast::<Chain>()
            .map_err(|_| AppError::internal("the store was opened without the audit chain"))
    }
}

impl Journal for Chain {
    fn catch_up(&self, conn: &mut Conn) -> Result<usize, String> {
        seal_unsealed(conn, self).map_err(|e| e.to_string())
    }

    /// Events that could not be written since start-up (only without `fail_closed`).
    fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }
}

/// The sealed fields of one event, borrowed from a row being written or read back. The names are
/// the columns', so a new row inserts them as they are.
#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub struct Fields<'a> {
    pub seq: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor_name: &'a str,
    pub auth_method: Option<&'a str>,
    pub api_key_id: Option<i64>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_id: Option<&'a str>,
    pub outcome: &'a str,
    pub details: &'a str,
    pub prev_hash: &'a str,
}

impl Fields<'_> {
    fn encode(&self, out: &mut Vec<u8>) {
        fn put(out: &mut Vec<u8>, value: Option<&[u8]>) {
            match value {
                Some(bytes) => {
                    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                    out.extend_from_slice(bytes);
                }
                None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
            }
        }
        fn int(out: &mut Vec<u8>, value: Option<i64>) {
            match value {
                Some(v) => put(out, Some(v.to_string().as_bytes())),
                None => put(out, None),
            }
        }
        fn text(s: Option<&str>) -> Option<&[u8]> {
            s.map(str::as_bytes)
        }
        out.extend_from_slice(TAG);
        int(out, Some(self.seq));
        int(out, Some(self.at));
        int(out, self.actor_id);
        put(out, Some(self.actor_name.as_bytes()));
        put(out, text(self.auth_method));
        int(out, self.api_key_id);
        put(out, text(self.ip));
        put(out, text(self.user_agent));
        put(out, Some(self.action.as_bytes()));
        put(out, text(self.target_type));
        put(out, text(self.target_id));
        put(out, Some(self.outcome.as_bytes()));
        put(out, Some(self.details.as_bytes()));
        put(out, Some(self.prev_hash.as_bytes()));
    }
}

/// Takes the next sequence number and the previous MAC. The update locks the head row until the
/// caller's transaction ends, so concurrent writers queue here and number in commit order.
pub(super) fn advance_head(conn: &mut Conn) -> QueryResult<(i64, String)> {
    let (seq, prev) = conn.get_result::<_, (i64, String)>(
        diesel::update(audit_head::table.find(1))
            .set(audit_head::seq.eq(audit_head::seq + 1))
            .returning((audit_head::seq, audit_head::hash)),
    )?;
    Ok((seq, if prev.is_empty() { GENESIS.to_string() } else { prev }))
}

/// Locks the head row without moving it, as writers do, and returns it: whoever holds it has
/// the chain to themselves until their transaction ends.
pub fn lock_head(conn: &mut Conn) -> QueryResult<(i64, String)> {
    conn.get_result::<_, (i64, String)>(
        diesel::update(audit_head::table.find(1))
            .set(audit_head::seq.eq(audit_head::seq))
            .returning((audit_head::seq, audit_head::hash)),
    )
}

pub(super) fn set_head_hash(conn: &mut Conn, hash: &str) -> QueryResult<()> {
    conn.execute(diesel::update(audit_head::table.find(1)).set(audit_head::hash.eq(hash)))?;
    Ok(())
}

/// The head as the database has it: the last sequence number and its MAC.
pub fn head(conn: &mut Conn) -> QueryResult<(i64, String)> {
    conn.first(audit_head::table.find(1).select((audit_head::seq, audit_head::hash)))
}

/// Seals events written before the chain existed (numbered by the migration, in id order).
/// Returns how many were sealed.
pub fn seal_unsealed(conn: &mut Conn, chain: &Chain) -> QueryResult<usize> {
    conn.transaction(|conn| {
        let (head_seq, _) = lock_head(conn)?;
        let rows: Vec<AuditEvent> = conn.load(
            audit_events::table
                .filter(audit_events::hash.is_null())
                .order(audit_events::seq.asc())
                .select(columns::<AuditEvent>()),
        )?;
        let Some(first) = rows.first() else { return Ok(0) };
        let before: Option<Option<String>> = conn
            .first(audit_events::table.filter(audit_events::seq.eq(first.seq - 1)).select(audit_events::hash))
            .optional()?;
        let mut prev = before.flatten().unwrap_or_else(|| GENESIS.to_string());
        let mut scratch = Vec::new();
        let mut last_seq = head_seq;
        for row in &rows {
            let hash = chain.seal(&Fields { prev_hash: &prev, ..row.fields() }, &mut scratch);
            conn.execute(
                diesel::update(audit_events::table.find(row.id))
                    .set((audit_events::prev_hash.eq(&prev), audit_events::hash.eq(&hash))),
            )?;
            prev = hash;
            last_seq = last_seq.max(row.seq);
        }
        conn.execute(
            diesel::update(audit_head::table.find(1))
                .set((audit_head::seq.eq(last_seq), audit_head::hash.eq(&prev))),
        )?;
        Ok(rows.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(details: &'a str, prev: &'a str) -> Fields<'a> {
        Fields {
            seq: 7,
            at: 1_700_000_000,
            actor_id: Some(3),
            actor_name: "alice",
            auth_method: Some("session"),
            api_key_id: None,
            ip: Some("10.0.0.1"),
            user_agent: None,
            action: "user.create",
            target_type: Some("user"),
            target_id: Some("4"),
            outcome: "success",
            details,
            prev_hash: prev,
        }
    }

    #[test]
    fn the_mac_covers_every_field_and_the_link() {
        let chain = Chain::from_key(&[7u8; 32], true);
        let mut s = Vec::new();
        let base = chain.seal(&fields("{}", GENESIS), &mut s);
        assert_eq!(base.len(), 64);
        assert_eq!(base, chain.seal(&fields("{}", GENESIS), &mut s));
        assert_ne!(base, chain.seal(&fields("{ }", GENESIS), &mut s));
        assert_ne!(base, chain.seal(&fields("{}", &"1".repeat(64)), &mut s));
        let mut moved = fields("{}", GENESIS);
        moved.seq = 8;
        assert_ne!(base, chain.seal(&moved, &mut s));
        // An absent value and an empty one are different events.
        let mut empty_ua = fields("{}", GENESIS);
        empty_ua.user_agent = Some("");
        assert_ne!(base, chain.seal(&empty_ua, &mut s));
        let other_key = Chain::from_key(&[8u8; 32], true);
        assert_ne!(base, other_key.seal(&fields("{}", GENESIS), &mut s));
    }

    /// The documented encoding, computed independently, gives the same MAC.
    #[test]
    fn the_encoding_is_the_documented_one() {
        let key = [1u8; 32];
        let mut doc = b"ayush-audit-v1".to_vec();
        let mut put = |v: Option<&str>| match v {
            Some(s) => {
                doc.extend_from_slice(&(s.len() as u32).to_be_bytes());
                doc.extend_from_slice(s.as_bytes());
            }
            None => doc.extend_from_slice(&[0xff; 4]),
        };
        for v in [
            Some("7"),
            Some("1700000000"),
            Some("3"),
            Some("alice"),
            Some("session"),
            None,
            Some("10.0.0.1"),
            None,
            Some("user.create"),
            Some("user"),
            Some("4"),
            Some("success"),
            Some("{}"),
            Some(GENESIS),
        ] {
            put(v);
        }
        let want = hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), &doc).as_ref());
        let chain = Chain::from_key(&key, true);
        assert_eq!(chain.seal(&fields("{}", GENESIS), &mut Vec::new()), want);
    }
}

//! The change feed the full-text index follows. Every write to a collection's documents adds a
//! row in the same transaction, so the index (one per replica, rebuildable) catches up from the
//! last seq it committed: after a crash, at start-up, and when another replica wrote.

use crate::error::AppResult;
use crate::store::schema::index_changes;
use crate::store::{Backend, Conn};
use diesel::prelude::*;

/// One change: a document written or removed (`document_id` set), or a whole collection removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable)]
pub struct Change {
    pub seq: i64,
    pub collection_id: i64,
    pub document_id: Option<i64>,
}

/// The channel replicas are told of index changes on.
pub const CHANNEL: &str = "ayush_index_changes";

/// Records a change to a collection, in the caller's transaction; on PostgreSQL every replica
/// listening is told when it commits.
pub fn changed(conn: &mut Conn, now: i64, collection_id: i64, document_id: Option<i64>) -> AppResult<()> {
    if conn.backend() == Backend::Postgres {
        // Sequence values are handed out before commit, so without this a reader could see seq 8
        // committed while 7 is still in flight, move past 7 and never apply it. Writers of the
        // feed take turns instead; readers are not blocked.
        conn.execute(diesel::sql_query("LOCK TABLE index_changes IN SHARE ROW EXCLUSIVE MODE"))?;
    }
    conn.execute(diesel::insert_into(index_changes::table).values((
        index_changes::collection_id.eq(collection_id),
        index_changes::document_id.eq(document_id),
        index_changes::created_at.eq(now),
    )))?;
    if conn.backend() == Backend::Postgres {
        // Delivered at commit to every replica listening, so their indexes follow at once
        // rather than at their next look.
        conn.execute(diesel::sql_query(format!("NOTIFY {CHANNEL}")))?;
    }
    Ok(())
}

/// Up to `limit` changes after `seq`, oldest first.
pub fn after(conn: &mut Conn, seq: i64, limit: i64) -> AppResult<Vec<Change>> {
    Ok(conn.load(
        index_changes::table
            .filter(index_changes::seq.gt(seq))
            .order(index_changes::seq.asc())
            .limit(limit)
            .select((index_changes::seq, index_changes::collection_id, index_changes::document_id)),
    )?)
}

/// The newest seq (0 for none).
pub fn head(conn: &mut Conn) -> AppResult<i64> {
    let max: Option<i64> = conn.first(index_changes::table.select(diesel::dsl::max(index_changes::seq)))?;
    Ok(max.unwrap_or(0))
}

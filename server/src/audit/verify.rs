//! Proving the log complete and unmodified, or naming the first bad sequence number and what is
//! wrong with it. Walks the chain in sequence order, recomputing each MAC, and holds it against
//! every witness outside the chain: the signed checkpoints (in the database and in the copy
//! outside it), the head file, and the database's own head row.

use super::anchor::{Anchor, Checkpoint};
use super::chain::{self, GENESIS};
use super::{AuditEvent, Chain};
use crate::clock::format_time;
use crate::error::{AppError, AppResult};
use crate::store::schema::audit_events;
use crate::store::{Conn, columns};
use diesel::prelude::*;
use serde::Serialize;
use std::collections::HashMap;

const PAGE: i64 = 5000;
/// How far from its place a moved event is looked for, to tell "reordered" from "modified".
const MOVE_WINDOW: i64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// An event's contents no longer match its MAC, or it disagrees with a witness.
    Modified,
    /// Events are missing from the middle or the start of the log.
    Deleted,
    /// An authentic event sits at another sequence number than the one it was written at.
    Reordered,
    /// Events are missing from the end of the log.
    Truncated,
    /// A checkpoint's signature does not hold.
    Checkpoint,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Modified => "modified",
            ProblemKind::Deleted => "deleted",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Truncated => "truncated",
            ProblemKind::Checkpoint => "bad checkpoint",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub seq: i64,
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    /// Events whose MAC and link were checked.
    pub events: u64,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// Verification started after this checkpoint's sequence number.
    pub from_checkpoint: Option<i64>,
    /// Retention pruned the log up to this seq (behind a signed checkpoint).
    pub pruned_through: Option<i64>,
    /// Events before the retention cut kept under legal hold, each checked against its MAC.
    pub held: u64,
    /// Signed checkpoints checked.
    pub checkpoints: usize,
    /// The sequence number of the head kept outside the database, when there is one.
    pub head_file: Option<i64>,
    pub problem: Option<Problem>,
    pub verified_at: i64,
    pub millis: u64,
}

impl Report {
    /// One line for people: what was proved, or what is wrong.
    pub fn summary(&self) -> String {
        match &self.problem {
            None => format!(
                "audit log verified: {} events (seq {}–{}), {} signed checkpoints, intact",
                self.events,
                self.first_seq.unwrap_or(0),
                self.last_seq.unwrap_or(0),
                self.checkpoints
            ),
            Some(p) => format!("audit log NOT intact at seq {} ({}): {}", p.seq, p.kind.as_str(), p.message),
        }
    }
}

/// What the log is held against besides itself.
pub struct Witnesses<'a> {
    /// The public half of the checkpoint signing key.
    pub public_key: &'a [u8],
    /// The directory holding the head file and the checkpoint copies (absent: database only).
    pub anchor: Option<&'a Anchor>,
    /// Start after this checkpoint instead of at the beginning.
    pub from: Option<&'a Checkpoint>,
}

struct Expect {
    hash: String,
    by: String,
}

pub fn verify(conn: &mut Conn, witnesses: &Witnesses<'_>, now: i64) -> AppResult<Report> {
    let started = std::time::Instant::now();
    let chain = super::Chain::of(conn)?;
    let mut report = Report {
        ok: false,
        events: 0,
        first_seq: None,
        last_seq: None,
        from_checkpoint: witnesses.from.map(|c| c.seq),
        pruned_through: None,
        held: 0,
        checkpoints: 0,
        head_file: None,
        problem: None,
        verified_at: now,
        millis: 0,
    };
    let finish = |mut report: Report, problem: Option<Problem>| {
        report.ok = problem.is_none();
        report.problem = problem;
        report.millis = started.elapsed().as_millis() as u64;
        Ok(report)
    };

    // Every checkpoint must carry a good signature before it may vouch for anything.
    let mut checkpoints = super::anchor::stored_checkpoints(conn)?;
    if let Some(anchor) = witnesses.anchor {
        checkpoints.extend(anchor.read_checkpoints().map_err(|e| AppError::internal(e.to_string()))?);
    }
    if let Some(from) = witnesses.from {
        checkpoints.push(from.clone());
    }
    checkpoints.sort_by(|a, b| (a.seq, a.at, &a.signature).cmp(&(b.seq, b.at, &b.signature)));
    checkpoints.dedup();
    let mut expect: HashMap<i64, Vec<Expect>> = HashMap::new();
    for cp in &checkpoints {
        if !cp.signature_valid(witnesses.public_key) {
            let problem = Problem {
                seq: cp.seq,
                kind: ProblemKind::Checkpoint,
                message: format!(
                    "the {} checkpoint of {} (key {}) does not carry a valid signature: it was forged or altered",
                    cp.reason,
                    format_time(cp.at),
                    cp.key_id
                ),
            };
            return finish(report, Some(problem));
        }
        let by = format!("the signed {} checkpoint of {}", cp.reason, format_time(cp.at));
        expect.entry(cp.seq).or_default().push(Expect { hash: cp.head.clone(), by });
    }
    report.checkpoints = checkpoints.len();
    let kept = match witnesses.anchor {
        Some(anchor) => anchor.read_head().map_err(|e| AppError::internal(e.to_string()))?,
        None => None,
    };
    if let Some(kept) = &kept {
        report.head_file = Some(kept.seq);
        let by = format!("the head kept outside the database ({})", format_time(kept.at));
        expect.entry(kept.seq).or_default().push(Expect { hash: kept.hash.clone(), by });
    }

    // The walk ends at the head as it stands now, read after the witnesses (each of which was
    // taken from an earlier head) and before the events: writers commit an event and the head
    // together, so every event up to it is there to read, and events appended while we walk are
    // left for the next verification instead of looking like a log that ends early.
    let (head_seq, head_hash) = chain::head(conn)?;

    // Behind a retention cut, events were pruned except those kept on legal hold: each of those
    // must still carry its own MAC. The chain resumes from the cut's signed head.
    let cut = super::retention::latest_cut(&checkpoints).cloned();
    let mut scratch = Vec::with_capacity(512);
    if let Some(cut) = &cut {
        report.pruned_through = Some(cut.seq);
        let mut cursor = 0;
        loop {
            let page = events_after(conn, cursor, cut.seq)?;
            let Some(last) = page.last() else { break };
            cursor = last.seq;
            for event in &page {
                if chain.seal(&event.fields(), &mut scratch) != event.hash.as_deref().unwrap_or_default() {
                    return finish(report, Some(explain_bad_mac(conn, &chain, event, &mut scratch)?));
                }
                report.held += 1;
            }
        }
    }

    // Where the walk starts, and the MAC the first event must link to.
    let start = [witnesses.from, cut.as_ref()].into_iter().flatten().max_by_key(|c| c.seq);
    let (mut next, mut prev, mut cursor) = match start {
        Some(cp) => (cp.seq + 1, cp.head.clone(), cp.seq),
        None => (1, GENESIS.to_string(), 0),
    };
    loop {
        let page = events_after(conn, cursor, head_seq)?;
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        for event in &page {
            report.first_seq.get_or_insert(event.seq);
            if let Some(problem) = check(conn, &chain, event, next, &prev, &expect, &mut scratch)? {
                return finish(report, Some(problem));
            }
            report.events += 1;
            report.last_seq = Some(event.seq);
            prev = event.hash.clone().unwrap_or_default();
            next = event.seq + 1;
        }
    }

    // Nothing may be missing from the end: every witness must lie within the log.
    let last = next - 1;
    let mut beyond: Vec<(i64, String)> = Vec::new();
    if head_seq > last {
        beyond.push((head_seq, "the chain head in the database".into()));
    } else if head_seq == last && head_seq > 0 && head_hash != prev {
        let problem = Problem {
            seq: last,
            kind: ProblemKind::Modified,
            message: format!("event {last} is not the event the database's chain head names"),
        };
        return finish(report, Some(problem));
    }
    for (seq, list) in &expect {
        if *seq > last {
            beyond.extend(list.iter().map(|e| (*seq, e.by.clone())));
        }
    }
    if let Some((seq, by)) = beyond.into_iter().max_by_key(|(seq, _)| *seq) {
        let problem = Problem {
            seq: last + 1,
            kind: ProblemKind::Truncated,
            message: format!(
                "the log ends at seq {last}, but {by} shows it reached seq {seq}: events {}–{seq} were cut off",
                last + 1
            ),
        };
        return finish(report, Some(problem));
    }

    // Events past the head we walked to were appended since, each with its head; one that no
    // head accounts for even now was put there without the chain.
    let appended: Option<i64> =
        conn.first(audit_events::table.select(diesel::dsl::max(audit_events::seq)))?;
    if let Some(top) = appended.filter(|top| *top > head_seq) {
        let (head_now, _) = chain::head(conn)?;
        if top > head_now {
            let problem = Problem {
                seq: head_now + 1,
                kind: ProblemKind::Modified,
                message: format!(
                    "events {}–{top} lie beyond the chain head (seq {head_now}): they were added without the chain",
                    head_now + 1
                ),
            };
            return finish(report, Some(problem));
        }
    }
    finish(report, None)
}

/// The next page of events after `cursor` up to `upto`, in sequence order.
fn events_after(conn: &mut Conn, cursor: i64, upto: i64) -> AppResult<Vec<AuditEvent>> {
    Ok(conn.load(
        audit_events::table
            .filter(audit_events::seq.gt(cursor))
            .filter(audit_events::seq.le(upto))
            .order(audit_events::seq.asc())
            .limit(PAGE)
            .select(columns::<AuditEvent>()),
    )?)
}

fn missing(from: i64, to_exclusive: i64, where_: &str) -> Problem {
    let what = if to_exclusive - from == 1 {
        format!("event {from} is missing")
    } else {
        format!("events {from}–{} are missing", to_exclusive - 1)
    };
    Problem { seq: from, kind: ProblemKind::Deleted, message: format!("{what} ({where_})") }
}

/// Checks one event against its MAC, its place in the chain and the witnesses at its seq.
fn check(
    conn: &mut Conn,
    chain: &Chain,
    event: &AuditEvent,
    expected_seq: i64,
    prev: &str,
    expect: &HashMap<i64, Vec<Expect>>,
    scratch: &mut Vec<u8>,
) -> AppResult<Option<Problem>> {
    let seq = event.seq;
    let Some(stored) = event.hash.as_deref() else {
        return Ok(Some(Problem {
            seq,
            kind: ProblemKind::Modified,
            message: format!("event {seq} carries no MAC"),
        }));
    };
    let authentic = chain.seal(&event.fields(), scratch) == stored;
    if !authentic {
        return Ok(Some(explain_bad_mac(conn, chain, event, scratch)?));
    }
    if seq > expected_seq {
        return Ok(Some(missing(expected_seq, seq, "a gap in the sequence")));
    }
    if event.prev_hash.as_deref() != Some(prev) {
        return Ok(Some(Problem {
            seq,
            kind: ProblemKind::Modified,
            message: format!("event {seq} does not follow event {}: the chain link is broken", seq - 1),
        }));
    }
    if let Some(list) = expect.get(&seq)
        && let Some(witness) = list.iter().find(|w| w.hash != stored)
    {
        return Ok(Some(Problem {
            seq,
            kind: ProblemKind::Modified,
            message: format!("event {seq} is not the event {} vouches for", witness.by),
        }));
    }
    Ok(None)
}

/// An event whose MAC fails was either edited, or is an authentic event moved to another seq
/// (swapped with another, or renumbered to hide a deletion). Moved events are recognised by
/// finding the seq their MAC does hold for.
fn explain_bad_mac(
    conn: &mut Conn,
    chain: &Chain,
    event: &AuditEvent,
    scratch: &mut Vec<u8>,
) -> AppResult<Problem> {
    let seq = event.seq;
    let stored = event.hash.as_deref().unwrap_or_default();
    let mut fields = event.fields();
    let written_at = (1.max(seq - MOVE_WINDOW)..=seq + MOVE_WINDOW).find(|&candidate| {
        candidate != seq && {
            fields.seq = candidate;
            chain.seal(&fields, scratch) == stored
        }
    });
    let Some(written_at) = written_at else {
        return Ok(Problem {
            seq,
            kind: ProblemKind::Modified,
            message: format!(
                "event {seq} was changed after it was written: its contents do not match its MAC"
            ),
        });
    };
    // Is the event it was written after still in the log? Then the two were swapped;
    // otherwise something before it was deleted and the rest renumbered to hide the gap.
    let predecessor_present = match event.prev_hash.as_deref() {
        Some(prev) if prev != GENESIS => conn
            .first::<_, i64>(
                audit_events::table.filter(audit_events::hash.eq(prev)).select(audit_events::seq),
            )
            .optional()?
            .is_some(),
        _ => true,
    };
    Ok(if predecessor_present {
        Problem {
            seq,
            kind: ProblemKind::Reordered,
            message: format!(
                "the event stored as seq {seq} was written as seq {written_at}: events were reordered"
            ),
        }
    } else {
        Problem {
            seq,
            kind: ProblemKind::Deleted,
            message: format!(
                "the event stored as seq {seq} was written as seq {written_at}: events before it were deleted \
                 and the rest renumbered"
            ),
        }
    })
}

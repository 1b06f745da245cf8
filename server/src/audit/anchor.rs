//! What the chain cannot prove by itself: that nothing was cut off its end. Two witnesses kept
//! outside the database do. The head file (`<data_dir>/audit/head.json`) follows the chain head
//! within a second and never moves backwards; signed checkpoints (sequence number, head MAC,
//! time) are made periodically, at shutdown and before retention prunes, stored in the database
//! and appended to `<data_dir>/audit/checkpoints.jsonl`, from where they can be shipped to
//! write-once storage.

use super::chain;
use super::keys::{self, Keys};
use crate::error::{AppError, AppResult};
use crate::store::schema::{audit_checkpoints, audit_events};
use crate::store::{Conn, columns};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const HEAD_FILE: &str = "head.json";
const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

/// The chain head as last seen outside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
    pub at: i64,
}

/// A signed statement: at `at`, the chain reached `seq` and event `seq` had MAC `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Queryable, Selectable)]
#[diesel(table_name = audit_checkpoints)]
pub struct Checkpoint {
    pub seq: i64,
    pub head: String,
    pub at: i64,
    /// `periodic`, `shutdown`, `retention` or `manual`.
    pub reason: String,
    pub key_id: String,
    /// Ed25519 over `ayush-audit-checkpoint-v1\n{seq}\n{head}\n{at}\n{reason}\n`, base64.
    pub signature: String,
}

impl Checkpoint {
    fn message(seq: i64, head: &str, at: i64, reason: &str) -> Vec<u8> {
        format!("ayush-audit-checkpoint-v1\n{seq}\n{head}\n{at}\n{reason}\n").into_bytes()
    }

    pub fn sign(keys: &Keys, seq: i64, head: &str, at: i64, reason: &str) -> Checkpoint {
        let signature = STANDARD.encode(keys.sign(&Checkpoint::message(seq, head, at, reason)));
        Checkpoint {
            seq,
            head: head.to_string(),
            at,
            reason: reason.to_string(),
            key_id: keys.key_id(),
            signature,
        }
    }

    pub fn signature_valid(&self, public_key: &[u8]) -> bool {
        let Ok(sig) = STANDARD.decode(&self.signature) else { return false };
        self.key_id == keys::key_id(public_key)
            && keys::signature_valid(
                public_key,
                &Checkpoint::message(self.seq, &self.head, self.at, &self.reason),
                &sig,
            )
    }

    /// Reads one checkpoint from a file: a single JSON object, or the last line of a
    /// `checkpoints.jsonl`.
    pub fn from_file(path: &Path) -> Result<Checkpoint, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Ok(cp) = serde_json::from_str(&text) {
            return Ok(cp);
        }
        let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
        serde_json::from_str(line).map_err(|e| format!("{} is not an audit checkpoint: {e}", path.display()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is damaged: {1}")]
    Damaged(PathBuf, String),
    /// The database's chain is shorter than the head seen outside it: events were cut off.
    #[error("the audit log ends at seq {db_seq}, but it had reached seq {} (kept in {HEAD_FILE})", .kept.seq)]
    Behind { kept: Head, db_seq: i64 },
    /// The event the head file names is not the one the database holds now.
    #[error("audit event {seq} is not the one recorded in {HEAD_FILE}: the log was rewritten")]
    Diverged { seq: i64 },
    #[error(transparent)]
    Db(#[from] diesel::result::Error),
}

/// The directory that holds the head file and the checkpoint copies.
#[derive(Debug, Clone)]
pub struct Anchor {
    dir: PathBuf,
}

impl Anchor {
    pub fn new(dir: impl Into<PathBuf>) -> Anchor {
        Anchor { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn read_head(&self) -> Result<Option<Head>, AnchorError> {
        let path = self.dir.join(HEAD_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                serde_json::from_str(&text).map(Some).map_err(|e| AnchorError::Damaged(path, e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AnchorError::Io(path, e)),
        }
    }

    /// Moves the head file up to the database's head, after checking that the database still
    /// holds the event the file names. It never moves backwards or onto another chain: a
    /// database behind or diverged from the file is an error, and the file stays as it was.
    pub fn refresh(&self, conn: &mut Conn, now: i64) -> Result<Option<Head>, AnchorError> {
        let (db_seq, db_hash) = chain::head(conn)?;
        let kept = self.read_head()?;
        if let Some(kept) = &kept {
            if db_seq < kept.seq {
                return Err(AnchorError::Behind { kept: kept.clone(), db_seq });
            }
            let at_kept: Option<Option<String>> = conn
                .first(audit_events::table.filter(audit_events::seq.eq(kept.seq)).select(audit_events::hash))
                .optional()?;
            if at_kept.flatten().as_deref() != Some(kept.hash.as_str()) {
                return Err(AnchorError::Diverged { seq: kept.seq });
            }
            if db_seq == kept.seq {
                return Ok(Some(kept.clone()));
            }
        }
        if db_seq == 0 {
            return Ok(None);
        }
        let head = Head { seq: db_seq, hash: db_hash, at: now };
        let text = serde_json::to_string(&head)
            .map_err(|e| AnchorError::Damaged(self.dir.clone(), e.to_string()))?;
        self.write_atomically(HEAD_FILE, text.as_bytes())?;
        Ok(Some(head))
    }

    /// The checkpoints copied outside the database, oldest first.
    pub fn read_checkpoints(&self) -> Result<Vec<Checkpoint>, AnchorError> {
        let path = self.dir.join(CHECKPOINTS_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(AnchorError::Io(path, e)),
        };
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| AnchorError::Damaged(path.clone(), format!("line {}: {e}", i + 1)))
            })
            .collect()
    }

    fn append_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), AnchorError> {
        let path = self.dir.join(CHECKPOINTS_FILE);
        self.ensure_dir()?;
        let line = serde_json::to_string(checkpoint)
            .map_err(|e| AnchorError::Damaged(path.clone(), e.to_string()))?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| AnchorError::Io(path.clone(), e))?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(|e| AnchorError::Io(path, e))
    }

    fn ensure_dir(&self) -> Result<(), AnchorError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| AnchorError::Io(self.dir.clone(), e))
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<(), AnchorError> {
        self.ensure_dir()?;
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            AnchorError::Io(path, e)
        })
    }
}

/// Signs the current head, stores the checkpoint in the database and appends it to the copy
/// outside. A periodic checkpoint is skipped when nothing happened since the last one.
pub fn checkpoint(
    conn: &mut Conn,
    keys: &Keys,
    anchor: &Anchor,
    now: i64,
    reason: &str,
) -> AppResult<Option<Checkpoint>> {
    let (seq, head) = chain::head(conn)?;
    if seq == 0 {
        return Ok(None);
    }
    if reason == "periodic" && latest_checkpoint(conn)?.is_some_and(|c| c.seq == seq) {
        return Ok(None);
    }
    checkpoint_at(conn, keys, anchor, seq, &head, now, reason).map(Some)
}

/// Signs and stores a checkpoint of event `seq` with MAC `head` (which the caller has read).
pub fn checkpoint_at(
    conn: &mut Conn,
    keys: &Keys,
    anchor: &Anchor,
    seq: i64,
    head: &str,
    now: i64,
    reason: &str,
) -> AppResult<Checkpoint> {
    let cp = Checkpoint::sign(keys, seq, head, now, reason);
    conn.execute(diesel::insert_into(audit_checkpoints::table).values((
        audit_checkpoints::seq.eq(cp.seq),
        audit_checkpoints::head.eq(&cp.head),
        audit_checkpoints::at.eq(cp.at),
        audit_checkpoints::reason.eq(&cp.reason),
        audit_checkpoints::key_id.eq(&cp.key_id),
        audit_checkpoints::signature.eq(&cp.signature),
    )))?;
    anchor.append_checkpoint(&cp).map_err(|e| AppError::internal(e.to_string()))?;
    Ok(cp)
}

pub fn latest_checkpoint(conn: &mut Conn) -> AppResult<Option<Checkpoint>> {
    Ok(conn
        .first(audit_checkpoints::table.order(audit_checkpoints::id.desc()).select(columns::<Checkpoint>()))
        .optional()?)
}

/// The checkpoints stored in the database, oldest first.
pub fn stored_checkpoints(conn: &mut Conn) -> AppResult<Vec<Checkpoint>> {
    Ok(conn
        .load(audit_checkpoints::table.order(audit_checkpoints::id.asc()).select(columns::<Checkpoint>()))?)
}

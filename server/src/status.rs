//! The installation at a glance, for the console's status page and `GET /api/admin/status`:
//! what runs and since when, whether the database answers, how far the index and the
//! embeddings lag, how busy each loaded model is, how full the data directory's disk is, when
//! the last backup was taken and the audit chain last verified.

use crate::audit::query::Filter;
use crate::knowledge::IndexReport;
use crate::state::AppState;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct Status {
    pub version: &'static str,
    /// This replica (host, process, a random tag), as leases name it.
    pub replica: String,
    /// Whether this replica holds the installation-wide duties (retention, checkpoints, sync).
    pub holds_duties: bool,
    pub started_at: i64,
    pub uptime_secs: i64,
    pub database: Database,
    /// The full-text index and the embeddings; none when the database could not say.
    pub index: Option<IndexReport>,
    pub engines: Vec<EngineLoad>,
    pub disk: Disk,
    pub last_backup: Option<Happened>,
    pub last_verification: Option<Happened>,
    /// The audit chain's last event.
    pub audit_head_seq: Option<i64>,
    /// Events this process could not write (only without `audit.fail_closed`).
    pub audit_write_failures: u64,
}

#[derive(Debug, Serialize)]
pub struct Database {
    pub backend: &'static str,
    pub reachable: bool,
    pub error: Option<String>,
    pub ping_ms: i64,
    pub pool_size: u32,
    pub pool_idle: u32,
    pub pool_max: u32,
}

/// A loaded chat model's engine, as it stands.
#[derive(Debug, Serialize)]
pub struct EngineLoad {
    pub model: String,
    pub running: usize,
    pub waiting: usize,
    pub kv_cache_bytes: usize,
}

#[derive(Debug, Serialize)]
pub struct Disk {
    pub data_dir: String,
    /// The file system holding the data directory; none where it cannot be asked.
    pub total_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub models_bytes: u64,
    pub index_bytes: u64,
    /// The SQLite database with its write-ahead log; none on PostgreSQL.
    pub database_bytes: Option<u64>,
}

/// An audited event's gist.
#[derive(Debug, Serialize)]
pub struct Happened {
    pub at: i64,
    pub actor: String,
    pub outcome: String,
    pub details: serde_json::Value,
}

/// What every file under `dir` takes, its folders' included; 0 for a missing one.
fn size_of(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size_of(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn disk(data_dir: &Path, sqlite: bool) -> Disk {
    let space = rustix::fs::statvfs(data_dir).ok();
    let database_bytes = sqlite.then(|| {
        ["ayush.db", "ayush.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(data_dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    });
    Disk {
        data_dir: data_dir.display().to_string(),
        total_bytes: space.as_ref().map(|s| s.f_blocks.saturating_mul(s.f_frsize)),
        free_bytes: space.as_ref().map(|s| s.f_bavail.saturating_mul(s.f_frsize)),
        models_bytes: size_of(&data_dir.join("models")),
        index_bytes: size_of(&crate::knowledge::index::dir(data_dir)),
        database_bytes,
    }
}

/// The newest event of `action`.
fn last(conn: &mut crate::store::Conn, action: &str) -> crate::error::AppResult<Option<Happened>> {
    let filter = Filter { action: Some(action.into()), ..Default::default() }.check()?;
    Ok(crate::audit::query::page(conn, &filter, None, 1)?.into_iter().next().map(|e| Happened {
        at: e.at,
        actor: e.actor_name,
        outcome: e.outcome,
        details: serde_json::from_str(&e.details).unwrap_or_default(),
    }))
}

pub async fn gather(state: &AppState) -> Status {
    let now = state.clock.now();
    let pinged = Instant::now();
    let ping = state.store.ping().await;
    let ping_ms = pinged.elapsed().as_millis() as i64;
    let pool = state.store.stats();
    let database = Database {
        backend: state.store.backend().name(),
        reachable: ping.is_ok(),
        error: ping.err().map(|e| e.message),
        ping_ms,
        pool_size: pool.size,
        pool_idle: pool.idle,
        pool_max: pool.max,
    };
    let (index, vectors) = (state.knowledge.index.status(), state.knowledge.vectors.status());
    let recorded = state
        .store
        .run(move |c| {
            let report = crate::knowledge::report(c, index, vectors.model, Some(vectors.embedded))?;
            let head = crate::audit::chain::head(c).ok().map(|(seq, _)| seq);
            Ok((report, last(c, "backup.create")?, last(c, "audit.verify")?, head))
        })
        .await;
    let (index, last_backup, last_verification, audit_head_seq) = match recorded {
        Ok((report, backup, verify, head)) => (Some(report), backup, verify, head),
        Err(e) => {
            tracing::warn!(error = %e, "the status page cannot read the database");
            (None, None, None, None)
        }
    };
    let engines = state
        .catalog
        .loaded_engines()
        .iter()
        .map(|e| EngineLoad {
            model: e.name.clone(),
            running: e.stats().running.load(Relaxed),
            waiting: e.stats().waiting.load(Relaxed),
            kv_cache_bytes: e.stats().kv_bytes.load(Relaxed),
        })
        .collect();
    let (data_dir, sqlite) =
        (state.config.server.data_dir.clone(), state.store.backend() == crate::store::Backend::Sqlite);
    let disk = tokio::task::spawn_blocking(move || disk(&data_dir, sqlite)).await.unwrap_or_else(|_| Disk {
        data_dir: String::new(),
        total_bytes: None,
        free_bytes: None,
        models_bytes: 0,
        index_bytes: 0,
        database_bytes: None,
    });
    Status {
        version: crate::build_info::VERSION,
        replica: state.duty.replica.to_string(),
        holds_duties: state.duty.mine(),
        started_at: state.started_at,
        uptime_secs: now - state.started_at,
        database,
        index,
        engines,
        disk,
        last_backup,
        last_verification,
        audit_head_seq,
        audit_write_failures: state.store.journal().write_failures(),
    }
}

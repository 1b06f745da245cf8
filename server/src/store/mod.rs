//! Storage: one schema, embedded migrations per backend (SQLite by default, PostgreSQL for
//! scale-out), a connection pool, and the one wrapper that keeps blocking database calls off the
//! async executor.
//!
//! Why an enum with `with_conn!` rather than `#[derive(MultiConnection)]`: PostgreSQL must be
//! reached without libpq or OpenSSL and over TLS, which means diesel-async's `AsyncPgConnection`
//! (tokio-postgres + rustls) behind its sync `AsyncConnectionWrapper`. The derive needs diesel's
//! `MultiConnectionHelper` on every variant, and diesel-async 0.9.2 (the released version) does
//! not implement it for the wrapper. Instead `Conn::{load, first, get_result, execute}` take any
//! query both backends can run and run it on the one the connection holds (select a struct's
//! columns with [`columns`], not `as_select()`, which names one backend). `with_conn!` expands
//! one query body for each backend: it remains for boxed queries, which are built for one.

mod conn;
mod journal;
pub mod lease;
pub mod schema;

pub use conn::{Backend, Conn, Db, PgConn, schema_versions};
pub use journal::Journal;

use crate::config::DatabaseConfig;
use crate::error::{AppError, AppResult};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Runs one diesel query body against whichever backend `$conn` holds.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $crate::store::Conn::db($conn) {
            $crate::store::Db::Sqlite($c) => $body,
            $crate::store::Db::Pg($c) => $body,
        }
    };
}

/// The columns of `T`, in the order of its fields, for a query that runs on either backend.
/// `T::as_select()` names the one backend it is built for, which a query handed to
/// [`Conn::load`] and the others cannot: they run it on whichever the connection holds. `T`
/// derives `Queryable` as well, and loads from these columns by position.
pub fn columns<T: diesel::Selectable<diesel::sqlite::Sqlite>>() -> T::SelectExpression {
    T::construct_selection()
}

#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<conn::Manager>,
    /// Bounds the blocking calls in flight to the pool size, so a burst queues here instead of
    /// parking hundreds of blocking threads on the pool.
    permits: Arc<Semaphore>,
    backend: Backend,
    journal: Arc<dyn Journal>,
    /// Alive while any clone of this store is: the SQLite checkpointer stops when it is gone.
    alive: Arc<()>,
    /// PostgreSQL: how to listen for other replicas' notifications.
    listener: Option<Arc<conn::Listener>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("cannot open the database: {0}")]
    Connect(String),
    #[error("database migrations failed: {0}")]
    Migrate(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// The SQLite database file the config names (created directories and all), or `None` where it
/// names PostgreSQL.
pub fn sqlite_file(cfg: &DatabaseConfig, data_dir: &Path) -> Result<Option<std::path::PathBuf>, StoreError> {
    Ok(match conn::Target::from_config(cfg, data_dir)? {
        conn::Target::Sqlite(path) => Some(path),
        conn::Target::Postgres { .. } => None,
    })
}

/// Whether the database `cfg` names already holds an installation: Ayush's tables with
/// accounts or audit events in them. Reads only; runs no migration.
pub fn holds_installation(
    cfg: &DatabaseConfig,
    data_dir: &Path,
    journal: Arc<dyn Journal>,
) -> Result<bool, StoreError> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let manager = conn::Manager::new(conn::Target::from_config(cfg, data_dir)?, journal)?;
    let mut c = r2d2::ManageConnection::connect(&manager).map_err(|e| StoreError::Connect(e.to_string()))?;
    let count = |c: &mut Conn, sql: &str| -> Result<i64, StoreError> {
        let n: diesel::QueryResult<Count> = crate::with_conn!(c, |db| diesel::sql_query(sql).get_result(db));
        n.map(|r| r.n).map_err(|e| StoreError::Connect(e.to_string()))
    };
    let tables = match c.backend() {
        Backend::Postgres => count(
            &mut c,
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name IN ('users', 'audit_events')",
        )?,
        Backend::Sqlite => count(
            &mut c,
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN ('users', 'audit_events')",
        )?,
    };
    if tables < 2 {
        return Ok(false);
    }
    Ok(count(&mut c, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM audit_events) AS n")? > 0)
}

impl Store {
    /// Opens (creating if needed) the database the config names and brings its schema up to
    /// date. Must be called inside a tokio runtime: PostgreSQL connections are driven by it.
    /// Calls `on_notify` whenever another process (or this one) sends `NOTIFY channel`:
    /// PostgreSQL replicas wake each other this way. Nothing on SQLite.
    pub fn listen(&self, channel: &'static str, on_notify: impl Fn() + Send + Sync + 'static) {
        if let Some(listener) = &self.listener {
            listener.listen(channel, Box::new(on_notify));
        }
    }

    pub fn open(
        cfg: &DatabaseConfig,
        data_dir: &Path,
        journal: Arc<dyn Journal>,
    ) -> Result<Store, StoreError> {
        Store::open_upto(cfg, data_dir, journal, None)
    }

    /// As [`Store::open`], with the schema brought only up to version `upto` when given (a
    /// backup of that schema is restored into it, then the rest of the migrations run).
    pub fn open_upto(
        cfg: &DatabaseConfig,
        data_dir: &Path,
        journal: Arc<dyn Journal>,
        upto: Option<&str>,
    ) -> Result<Store, StoreError> {
        let target = conn::Target::from_config(cfg, data_dir)?;
        let backend = target.backend();
        let manager = conn::Manager::new(target, journal.clone())?;
        let listener = manager.listener().map(Arc::new);
        // One direct connection first: its error names the cause, where the pool's would only
        // say that it timed out.
        r2d2::ManageConnection::connect(&manager).map_err(|e| StoreError::Connect(e.to_string()))?;
        let pool = r2d2::Pool::builder()
            .max_size(cfg.pool_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::LoggingErrorHandler))
            .build(manager)
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        let permits = Arc::new(Semaphore::new(cfg.pool_size as usize));
        let store = Store { pool, permits, backend, journal, alive: Arc::new(()), listener };
        let mut c = store.pool.get().map_err(|e| StoreError::Connect(e.to_string()))?;
        conn::run_migrations_upto(&mut c, upto).map_err(|e| StoreError::Migrate(e.to_string()))?;
        let sealed = store.journal.catch_up(&mut c).map_err(|e| {
            StoreError::Migrate(format!("sealing the audit events written before the chain: {e}"))
        })?;
        if sealed > 0 {
            tracing::info!(events = sealed, "sealed audit events written before the hash chain existed");
        }
        if backend == Backend::Sqlite {
            store.start_checkpointer();
        }
        Ok(store)
    }

    /// SQLite connections do not checkpoint the WAL themselves (`wal_autocheckpoint = 0`): a
    /// checkpoint syncs the database file, and a request that happens to trigger one waits
    /// milliseconds for it. This thread does it instead, once a second, without blocking writers.
    fn start_checkpointer(&self) {
        let (pool, alive) = (self.pool.clone(), Arc::downgrade(&self.alive));
        let spawned = std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || {
            while alive.upgrade().is_some() {
                std::thread::sleep(Duration::from_secs(1));
                if let Ok(mut c) = pool.get()
                    && let Err(e) = c.checkpoint()
                {
                    tracing::warn!(error = %e, "SQLite WAL checkpoint failed");
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the SQLite checkpoint thread; checkpoints fall back to commits");
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The journal (the audit chain) every connection seals events into.
    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    /// Runs `f` with a pooled connection on the blocking pool. The one way async code touches
    /// the database.
    pub async fn run<T, F>(&self, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> AppResult<T> + Send + 'static,
    {
        let _permit = self.permits.acquire().await.map_err(|_| AppError::internal("store closed"))?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = pool.get().map_err(|e| {
                tracing::warn!(error = %e, "database pool exhausted or unreachable");
                crate::error::AppError::new(
                    crate::error::ErrorKind::Unavailable,
                    "the database is unavailable",
                )
                .with_retry_after(5)
            })?;
            f(&mut c)
        })
        .await
        .map_err(|e| AppError::internal(format!("database task failed: {e}")))?
    }

    /// The same, for code that is not async (the admin CLI in local mode, tests).
    pub fn run_blocking<T>(&self, f: impl FnOnce(&mut Conn) -> AppResult<T>) -> AppResult<T> {
        let mut c = self.pool.get().map_err(|e| {
            AppError::new(crate::error::ErrorKind::Unavailable, format!("the database is unavailable: {e}"))
        })?;
        f(&mut c)
    }

    pub fn stats(&self) -> PoolStats {
        let s = self.pool.state();
        PoolStats { size: s.connections, idle: s.idle_connections, max: self.pool.max_size() }
    }

    /// For `/readyz`: a round trip to the database.
    pub async fn ping(&self) -> AppResult<()> {
        self.run(|c| c.ping().map_err(AppError::from)).await
    }

    /// Reverts every migration and applies them again: the store suite checks `down.sql`
    /// with it. Destroys all data.
    pub fn revert_and_rerun_migrations(&self) -> AppResult<()> {
        self.run_blocking(|c| conn::revert_and_rerun(c).map_err(AppError::internal))
    }
}

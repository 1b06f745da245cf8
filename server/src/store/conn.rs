//! The two backends behind one connection type, the pool manager that opens them, and the
//! embedded migrations for each.

use super::Journal;
use super::StoreError;
use crate::config::DatabaseConfig;
use diesel::connection::{SimpleConnection, TransactionManager};
use diesel::dsl::Limit;
use diesel::query_dsl::methods::{ExecuteDsl, LimitDsl, LoadQuery};
use diesel::result::QueryResult;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// PostgreSQL through tokio-postgres and rustls, seen by diesel as a sync connection.
pub type PgConn = AsyncConnectionWrapper<AsyncPgConnection>;

// Connections sit in the pool and are handed out by reference; the size difference between
// the variants never costs a copy.
#[allow(clippy::large_enum_variant)]
pub enum Db {
    Sqlite(SqliteConnection),
    Pg(PgConn),
}

/// A pooled connection and the journal (the audit chain) every event written on it is sealed
/// into: holding it here is what lets `audit::record` run inside any caller's transaction.
pub struct Conn {
    db: Db,
    journal: Arc<dyn Journal>,
    /// SQLite: the turn this process's writers take (see [`WriteGate`]).
    gate: Option<WriteGate>,
}

/// SQLite lets one writer in at a time and makes the others poll for the lock, sleeping 1 ms
/// at the least between looks (its busy handler). The writers of one process queue here
/// instead, each woken the moment the one before it commits: with a request's check and the
/// previous answer's record both writing, that is microseconds instead of milliseconds. Other
/// processes (`ayushctl --local`) still meet the busy handler.
#[derive(Clone, Default)]
pub(super) struct WriteGate(Arc<parking_lot::Mutex<()>>);

/// Past this, a writer goes on without its turn and meets SQLite's own wait (and its
/// "database is locked" error), rather than hang on a turn that never comes.
const GATE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

impl WriteGate {
    fn turn(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        self.0.try_lock_for(GATE_PATIENCE)
    }
}

/// Whether the connection is outside any transaction (its next write is a transaction of its
/// own, which must take the turn).
fn outside_transaction(c: &mut SqliteConnection) -> QueryResult<bool> {
    use diesel::connection::AnsiTransactionManager;
    Ok(AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?.is_none())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

fn begin<C: Connection>(c: &mut C) -> QueryResult<()> {
    C::TransactionManager::begin_transaction(c)
}

/// SQLite's outermost transaction takes the write lock up front (`BEGIN IMMEDIATE`). A deferred
/// transaction that reads and then writes fails at once with "database is locked" when another
/// writer committed in between, and nearly every change does read, then write, then record its
/// audit event on the shared chain head. Waiting for the lock (busy_timeout) is what we want.
fn begin_sqlite(c: &mut SqliteConnection) -> QueryResult<()> {
    use diesel::connection::AnsiTransactionManager;
    let depth = AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?;
    match depth {
        None => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE"),
        Some(_) => AnsiTransactionManager::begin_transaction(c),
    }
}
fn commit<C: Connection>(c: &mut C) -> QueryResult<()> {
    C::TransactionManager::commit_transaction(c)
}
fn rollback<C: Connection>(c: &mut C) -> QueryResult<()> {
    C::TransactionManager::rollback_transaction(c)
}
fn is_broken<C: Connection>(c: &mut C) -> bool {
    C::TransactionManager::is_broken_transaction_manager(c)
}

impl Conn {
    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    /// Nested calls become savepoints.
    pub fn transaction<T, E>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<diesel::result::Error>,
    {
        let gate = match &mut self.db {
            Db::Sqlite(c) => {
                if outside_transaction(c)? {
                    self.gate.clone()
                } else {
                    None
                }
            }
            Db::Pg(_) => None,
        };
        let _turn = gate.as_ref().and_then(WriteGate::turn);
        match &mut self.db {
            Db::Sqlite(c) => begin_sqlite(c)?,
            Db::Pg(c) => begin(c)?,
        }
        match f(self) {
            Ok(value) => {
                crate::with_conn!(&mut *self, |c| commit(c))?;
                Ok(value)
            }
            Err(e) => {
                if let Err(rb) = crate::with_conn!(&mut *self, |c| rollback(c)) {
                    tracing::error!(error = %rb, "rollback failed");
                }
                Err(e)
            }
        }
    }

    /// A passive WAL checkpoint (SQLite; nothing to do on PostgreSQL).
    pub fn checkpoint(&mut self) -> QueryResult<()> {
        match &mut self.db {
            Db::Sqlite(c) => c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)"),
            Db::Pg(_) => Ok(()),
        }
    }

    pub fn ping(&mut self) -> QueryResult<()> {
        crate::with_conn!(self, |c| c.batch_execute("SELECT 1"))
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Pg(_) => Backend::Postgres,
        }
    }

    /// Every row a query returns, on whichever backend this connection holds.
    pub fn load<'q, Q, U>(&mut self, query: Q) -> QueryResult<Vec<U>>
    where
        Q: RunQueryDsl<SqliteConnection>
            + RunQueryDsl<PgConn>
            + LoadQuery<'q, SqliteConnection, U>
            + LoadQuery<'q, PgConn, U>,
    {
        match &mut self.db {
            Db::Sqlite(c) => <Q as RunQueryDsl<SqliteConnection>>::load(query, c),
            Db::Pg(c) => <Q as RunQueryDsl<PgConn>>::load(query, c),
        }
    }

    /// The one row a query returns (an error when there is none: `.optional()` turns that into
    /// `None`).
    pub fn get_result<'q, Q, U>(&mut self, query: Q) -> QueryResult<U>
    where
        Q: RunQueryDsl<SqliteConnection>
            + RunQueryDsl<PgConn>
            + LoadQuery<'q, SqliteConnection, U>
            + LoadQuery<'q, PgConn, U>,
    {
        match &mut self.db {
            Db::Sqlite(c) => <Q as RunQueryDsl<SqliteConnection>>::get_result(query, c),
            Db::Pg(c) => <Q as RunQueryDsl<PgConn>>::get_result(query, c),
        }
    }

    /// The first row of a query (`LIMIT 1`).
    pub fn first<'q, Q, U>(&mut self, query: Q) -> QueryResult<U>
    where
        Q: RunQueryDsl<SqliteConnection> + RunQueryDsl<PgConn> + LimitDsl,
        Limit<Q>: LoadQuery<'q, SqliteConnection, U> + LoadQuery<'q, PgConn, U>,
    {
        match &mut self.db {
            Db::Sqlite(c) => <Q as RunQueryDsl<SqliteConnection>>::first(query, c),
            Db::Pg(c) => <Q as RunQueryDsl<PgConn>>::first(query, c),
        }
    }

    /// Runs an insert, update or delete; the number of rows it touched.
    pub fn execute<Q>(&mut self, query: Q) -> QueryResult<usize>
    where
        Q: RunQueryDsl<SqliteConnection>
            + RunQueryDsl<PgConn>
            + ExecuteDsl<SqliteConnection>
            + ExecuteDsl<PgConn>,
    {
        match &mut self.db {
            Db::Sqlite(c) => {
                // A write on its own is a transaction of its own: it takes the turn too.
                let gate = if outside_transaction(c)? { self.gate.clone() } else { None };
                let _turn = gate.as_ref().and_then(WriteGate::turn);
                <Q as RunQueryDsl<SqliteConnection>>::execute(query, c)
            }
            Db::Pg(c) => <Q as RunQueryDsl<PgConn>>::execute(query, c),
        }
    }

    /// The backend connection, for `with_conn!`.
    pub fn db(&mut self) -> &mut Db {
        &mut self.db
    }

    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }
}

/// The schema versions this binary knows for `backend`, oldest first.
pub fn schema_versions(backend: Backend) -> Vec<String> {
    use diesel::migration::MigrationSource;
    let names: Vec<String> = match backend {
        Backend::Sqlite => MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
            .map(|m| m.iter().map(|m| m.name().version().to_string()).collect())
            .unwrap_or_default(),
        Backend::Postgres => MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
            .map(|m| m.iter().map(|m| m.name().version().to_string()).collect())
            .unwrap_or_default(),
    };
    let mut names = names;
    names.sort();
    names
}

/// Applies pending migrations: all of them, or (restoring a backup of an older schema) those up
/// to version `upto`.
pub(super) fn run_migrations_upto(c: &mut Conn, upto: Option<&str>) -> Result<(), String> {
    fn pending<DB: diesel::backend::Backend>(
        c: &mut impl MigrationHarness<DB>,
        source: EmbeddedMigrations,
        upto: Option<&str>,
    ) -> diesel::migration::Result<usize> {
        let mut todo = c.pending_migrations(source)?;
        todo.sort_by_key(|m| m.name().version().to_string());
        let mut applied = 0;
        for m in todo {
            if upto.is_some_and(|v| m.name().version().to_string().as_str() > v) {
                break;
            }
            c.run_migration(&*m)?;
            applied += 1;
        }
        Ok(applied)
    }
    let applied = match c.db() {
        Db::Sqlite(c) => pending(c, SQLITE_MIGRATIONS, upto),
        Db::Pg(c) => pending(c, POSTGRES_MIGRATIONS, upto),
    }
    .map_err(|e| e.to_string())?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(())
}

pub(super) fn revert_and_rerun(c: &mut Conn) -> Result<(), String> {
    match c.db() {
        Db::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(drop),
        Db::Pg(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(drop),
    }
    .map_err(|e| e.to_string())?;
    run_migrations_upto(c, None)
}

pub(super) enum Target {
    Sqlite(PathBuf),
    Postgres { url: String, ca_file: Option<PathBuf> },
}

impl Target {
    pub(super) fn from_config(cfg: &DatabaseConfig, data_dir: &Path) -> Result<Target, StoreError> {
        let url = cfg.url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres { url: url.to_string(), ca_file: cfg.ca_file.clone() });
        }
        let path = match url.strip_prefix("sqlite://") {
            Some(p) => PathBuf::from(p),
            None => data_dir.join("ayush.db"),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        Ok(Target::Sqlite(path))
    }

    pub(super) fn backend(&self) -> Backend {
        match self {
            Target::Sqlite(_) => Backend::Sqlite,
            Target::Postgres { .. } => Backend::Postgres,
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let err = |e| StoreError::DataDir(dir.display().to_string(), e);
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    Ok(())
}

/// A tokio runtime of its own drives the PostgreSQL sockets, so the sync diesel calls made on
/// blocking threads never depend on (or block) the HTTP workers' runtimes.
struct PgRuntime(Option<tokio::runtime::Runtime>);

impl Drop for PgRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

pub(super) struct Manager {
    target: Target,
    pg: Option<(Arc<PgRuntime>, tokio_postgres_rustls::MakeRustlsConnect)>,
    journal: Arc<dyn Journal>,
    /// Shared by every SQLite connection of the pool.
    gate: WriteGate,
}

impl Manager {
    pub(super) fn new(target: Target, journal: Arc<dyn Journal>) -> Result<Manager, StoreError> {
        let pg = match &target {
            Target::Sqlite(_) => None,
            Target::Postgres { ca_file, .. } => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("ayush-pg")
                    .enable_all()
                    .build()
                    .map_err(|e| StoreError::Connect(format!("cannot start the database runtime: {e}")))?;
                Some((Arc::new(PgRuntime(Some(rt))), tls_connector(ca_file.as_deref())?))
            }
        };
        Ok(Manager { target, pg, journal, gate: WriteGate::default() })
    }

    fn connect_pg(&self, url: &str) -> Result<Db, diesel::ConnectionError> {
        let Some((rt, tls)) = &self.pg else {
            return Err(diesel::ConnectionError::BadConnection("no database runtime".into()));
        };
        let Some(rt) = rt.0.as_ref() else {
            return Err(diesel::ConnectionError::BadConnection("database runtime stopped".into()));
        };
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| diesel::ConnectionError::InvalidConnectionUrl(format!("{e}")))?;
        let use_tls = wants_tls(url);
        let tls = tls.clone();
        let bad = |e: tokio_postgres::Error| diesel::ConnectionError::BadConnection(e.to_string());
        let _entered = rt.enter(); // the wrapper takes the current runtime for its block_on
        let conn = rt.block_on(async move {
            if use_tls {
                let (client, connection) = config.connect(tls).await.map_err(bad)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            } else {
                let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(bad)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
        })?;
        Ok(Db::Pg(AsyncConnectionWrapper::from(conn)))
    }
}

/// What listening for PostgreSQL notifications needs: where, how, and the runtime to do it on.
pub(super) struct Listener {
    url: String,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    rt: Arc<PgRuntime>,
}

impl Manager {
    /// PostgreSQL only: SQLite has one process, which wakes itself.
    pub(super) fn listener(&self) -> Option<Listener> {
        let (Target::Postgres { url, .. }, Some((rt, tls))) = (&self.target, &self.pg) else { return None };
        Some(Listener { url: url.clone(), tls: tls.clone(), rt: rt.clone() })
    }
}

impl Listener {
    /// Calls `on_notify` for every `NOTIFY channel` on the database, on the database runtime, for
    /// as long as that runtime lives; a lost connection is made again after a pause.
    pub(super) fn listen(&self, channel: &'static str, on_notify: Box<dyn Fn() + Send + Sync>) {
        let Some(handle) = self.rt.0.as_ref().map(|rt| rt.handle().clone()) else { return };
        let (url, tls) = (self.url.clone(), self.tls.clone());
        handle.spawn(async move {
            loop {
                if let Err(e) = listen_once(&url, &tls, channel, &on_notify).await {
                    tracing::warn!(error = %e, channel, "listening for database notifications; retrying");
                }
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                // A change may have come while no one listened.
                on_notify();
            }
        });
    }
}

/// One connection's worth of listening: returns when the connection ends.
async fn listen_once(
    url: &str,
    tls: &tokio_postgres_rustls::MakeRustlsConnect,
    channel: &str,
    on_notify: &(dyn Fn() + Send + Sync),
) -> Result<(), String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    if wants_tls(url) {
        let (client, connection) = config.connect(tls.clone()).await.map_err(|e| e.to_string())?;
        pump(client, connection, channel, on_notify).await
    } else {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
        pump(client, connection, channel, on_notify).await
    }
}

async fn pump<S, T>(
    client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
    channel: &str,
    on_notify: &(dyn Fn() + Send + Sync),
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let messages = std::future::poll_fn(|cx| {
        loop {
            match connection.poll_message(cx) {
                std::task::Poll::Ready(Some(Ok(tokio_postgres::AsyncMessage::Notification(_)))) => {
                    on_notify()
                }
                std::task::Poll::Ready(Some(Ok(_))) => {}
                std::task::Poll::Ready(Some(Err(e))) => return std::task::Poll::Ready(Err(e.to_string())),
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(Ok(())),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        }
    });
    // The connection must be driven for LISTEN to be answered, so both run together.
    let listen = async {
        client.batch_execute(&format!("LISTEN {channel}")).await.map_err(|e| e.to_string())?;
        std::future::pending::<Result<(), String>>().await
    };
    tokio::select! {
        ended = messages => ended,
        failed = listen => failed,
    }
}

/// TLS is used when the URL asks for it (`sslmode=prefer` or `require`), and the server's
/// certificate is then always verified (system roots plus `database.ca_file`), unlike libpq's
/// `require`. Without `sslmode` the connection is plain, as for a database on the same host.
fn wants_tls(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query.split('&').any(|kv| matches!(kv, "sslmode=prefer" | "sslmode=require"))
}

fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let config = crate::tls::client_config(ca_file, "database.ca_file").map_err(StoreError::Connect)?;
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::ConnectionError;

    fn connect(&self) -> Result<Conn, Self::Error> {
        let db = match &self.target {
            Target::Sqlite(path) => {
                let mut c = SqliteConnection::establish(&path.to_string_lossy())?;
                // busy_timeout first: without it, the journal_mode pragma fails at once with
                // "database is locked" while another process (ayushctl --local, the server)
                // holds a lock, instead of waiting for it.
                c.batch_execute(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
                     PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;",
                )
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Db::Sqlite(c)
            }
            Target::Postgres { url, .. } => self.connect_pg(url)?,
        };
        let gate = matches!(db, Db::Sqlite(_)).then(|| self.gate.clone());
        Ok(Conn { db, journal: self.journal.clone(), gate })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        conn.ping().map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        crate::with_conn!(conn, |c| is_broken(c))
    }
}

//! What the store suites share: a fresh database per test on every backend (SQLite always;
//! PostgreSQL when `AYUSH_TEST_DATABASE_URL` is set, dropped afterwards).

#![allow(dead_code)] // each suite uses its own part

use ayush_server::audit::{Chain, Keys};
use ayush_server::config::DatabaseConfig;
use ayush_server::store::Store;
use std::sync::Arc;

pub struct TestDb {
    pub store: Store,
    /// Holds the SQLite file (SQLite), the audit keys and the head file (both).
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.pg.take() {
            // FORCE ends the pool's connections, which are dropped right after.
            let _ = admin(&admin_url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

pub fn admin(url: &str, sql: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (client, conn) =
            tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        client.batch_execute(sql).await.map_err(|e| e.to_string())
    })
}

/// The chain sealed with the keys in `dir/secrets` (created there).
pub fn test_chain(dir: &std::path::Path) -> Arc<Chain> {
    let keys = Keys::load_or_create(&dir.join("secrets")).unwrap();
    Arc::new(Chain::new(&keys, true))
}

pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseConfig::default(), dir.path(), test_chain(dir.path())).unwrap();
    TestDb { store, dir, pg: None }
}

/// CI names a database and asks for every peer: a PostgreSQL half left out there is a
/// mistake, not a skip.
#[test]
fn postgres_is_named_where_every_peer_is_required() {
    let required = std::env::var("AYUSH_REQUIRE_PEERS").is_ok_and(|v| v == "1");
    assert!(
        !required || cfg!(ayush_test_postgres),
        "AYUSH_REQUIRE_PEERS=1 but AYUSH_TEST_DATABASE_URL was not set when the suites were built"
    );
}

/// A fresh database on the test PostgreSQL. The suites that need one are ignored when no
/// server was named at build time; one unnamed now fails its test rather than passing it unrun.
pub fn pg_db() -> TestDb {
    let Ok(url) = std::env::var("AYUSH_TEST_DATABASE_URL") else {
        panic!("AYUSH_TEST_DATABASE_URL was set when the suites were built but is not now");
    };
    let name = format!(
        "ayush_test_{}",
        &ayush_server::auth::secret::random_token().to_lowercase().replace(['-', '_'], "")[..16]
    );
    admin(&url, &format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("cannot create a test database on {url}: {e}"));
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (url.clone(), String::new()),
    };
    let base = base.rsplit_once('/').map(|(host, _)| host.to_string()).unwrap_or(base);
    let cfg = DatabaseConfig { url: format!("{base}/{name}{query}"), pool_size: 4, ca_file: None };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&cfg, std::path::Path::new("/nonexistent"), test_chain(dir.path())).unwrap();
    TestDb { store, dir, pg: Some((url, name)) }
}

//! Two `ayush` processes on one PostgreSQL, as two replicas behind a load balancer: what one
//! does, the other sees, a stored document within a second (PostgreSQL NOTIFY wakes the other
//! replica's index). Part of the appliance work (issue 15). Not here yet: leases for once-only
//! background work, and a replica killed mid-ingestion.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{Server, peers_required};
use serde_json::json;
use std::process::Command;

const PW: &str = "replica password 1";

/// A database made for one test, dropped when it ends.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = Command::new("psql").arg(&self.admin_url).args(["-q", "-c", &sql]).output();
    }
}

/// A fresh database on the test PostgreSQL (`AYUSH_TEST_DATABASE_URL`), or `None` after a loud
/// skip.
fn fresh_database() -> Option<TestDatabase> {
    let Ok(url) = std::env::var("AYUSH_TEST_DATABASE_URL") else {
        assert!(!peers_required(), "AYUSH_TEST_DATABASE_URL is not set but AYUSH_REQUIRE_PEERS=1");
        eprintln!("!!! SKIPPED: set AYUSH_TEST_DATABASE_URL to run the scale-out test");
        return None;
    };
    let name = format!("ayush_replicas_{}", std::process::id());
    for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
        let out = Command::new("psql").arg(&url).args(["-q", "-c", &sql]).output().expect("psql");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let base = url.split('?').next().unwrap().rsplit_once('/').unwrap().0.to_string();
    Some(TestDatabase { url: format!("{base}/{name}"), name, admin_url: url })
}

#[test]
fn two_replicas_on_one_postgresql_share_sessions_accounts_and_one_audit_chain() {
    // Declared first, so dropped last: after both servers let go of it.
    let Some(database) = fresh_database() else { return };
    let db = database.url.clone();
    let a = Server::start_with_config(&format!("[database]\nurl = \"{db}\"\n"));
    // The second replica shares the database and the first one's keys, as the chart mounts them.
    let keys = a.data_dir.path().join("secrets");
    let b = Server::start_with_config(&format!(
        "[database]\nurl = \"{db}\"\n[audit]\nsecrets_dir = \"{}\"\n",
        keys.display()
    ));
    a.create_user("root", "admin", PW);
    a.create_user("mia", "user", PW);

    // A session made on one replica works on the other.
    let mut on_a = a.client();
    assert_eq!(on_a.login("mia", PW).status, 200);
    let mut on_b = b.client();
    on_b.session = on_a.session.clone();
    let me = on_b.get("/api/me");
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["user"]["username"], "mia");

    // A user disabled through one replica is refused by the other at once.
    let mut admin_b = b.client();
    assert_eq!(admin_b.login("root", PW).status, 200);
    let r = admin_b.send_json("PATCH", "/api/admin/users/mia", &json!({"disabled": true}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(on_a.get("/api/me").status, 401, "the session made on A ends with the disable on B");

    // Writes through both at once leave one audit chain that verifies.
    let mut admin_a = a.client();
    assert_eq!(admin_a.login("root", PW).status, 200);
    let writers: Vec<_> =
        [(a.url.clone(), admin_a.session.clone(), "a"), (b.url.clone(), admin_b.session.clone(), "b")]
            .into_iter()
            .map(|(url, session, side)| {
                std::thread::spawn(move || {
                    let mut c = ayush_tests::Client::new(&url);
                    c.session = session;
                    for i in 0..15 {
                        let r = c.send_json(
                            "POST",
                            "/api/admin/groups",
                            &json!({"name": format!("team-{side}-{i}")}),
                        );
                        assert_eq!(r.status, 201, "{side} {i}: {}", r.body);
                    }
                })
            })
            .collect();
    for w in writers {
        w.join().unwrap();
    }
    let groups = admin_a.get("/api/admin/groups").json();
    assert_eq!(groups.as_array().unwrap().len(), 30, "both replicas' groups, seen from A");
    let verified = b.ctl_local(&["audit", "verify"], None);
    assert!(verified.ok, "{}{}", verified.stdout, verified.stderr);

    // A document stored through A is found through B within a second: B's index is woken by
    // the database, not left to its next look (2 s).
    assert!(a.ctl_local(&["group", "add-member", "team-a-0", "root"], None).ok);
    let made =
        admin_a.send_json("POST", "/api/collections", &json!({"name": "handbook", "readers": ["team-a-0"]}));
    assert_eq!(made.status, 201, "{}", made.body);
    let key = a.token_for("root");
    let up = a.client().raw(
        "POST",
        "/api/collections/handbook/documents?source=leave.txt&wait=true",
        &[("Authorization", &format!("Bearer {key}")), ("Content-Type", "text/plain")],
        "Parental leave is sixteen weeks at full pay.",
    );
    assert!(up.status < 300, "{}", up.body);
    let stored = std::time::Instant::now();
    let found = loop {
        let hits = admin_b.get("/api/search?q=parental+leave").json();
        if hits["hits"].as_array().is_some_and(|h| !h.is_empty()) || stored.elapsed().as_millis() > 1000 {
            break hits;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    eprintln!("found through the other replica after {:?}", stored.elapsed());
    assert!(found["hits"].as_array().is_some_and(|h| !h.is_empty()), "not within a second: {found}");
}

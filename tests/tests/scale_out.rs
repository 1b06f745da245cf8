//! Two `ayush` processes on one PostgreSQL, as two replicas behind a load balancer: what one
//! does, the other sees, a stored document within a second (PostgreSQL NOTIFY wakes the other
//! replica's index); work that must run once runs on one replica; a replica killed while it
//! ingests loses no acknowledged document.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{Server, fresh_database};
use serde_json::json;
use std::process::Command;

const PW: &str = "replica password 1";

#[test]
#[cfg_attr(not(peer_postgres), ignore = "needs PostgreSQL: set AYUSH_TEST_DATABASE_URL")]
fn two_replicas_on_one_postgresql_share_sessions_accounts_and_one_audit_chain() {
    // Declared first, so dropped last: after both servers let go of it.
    let database = fresh_database("replicas");
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

    // A theme set through A shows on B's pages within a second, without a restart: B is told
    // by the database, not left to its next look (2 s).
    let r = admin_a.send_json("PUT", "/api/admin/theme", &json!({"product_name": "Acme Assist"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let set = std::time::Instant::now();
    let page = loop {
        let page = b.client().get("/login").body;
        if page.contains("Acme Assist") || set.elapsed().as_millis() > 1000 {
            break page;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    eprintln!("the theme showed on the other replica after {:?}", set.elapsed());
    assert!(page.contains("<title>Sign in · Acme Assist</title>"), "not within a second");
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql").arg(url).args(["-At", "-c", sql]).output().expect("psql");
    assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Two replicas take jobs from one queue. One is killed with SIGKILL while it runs a job: that
/// job goes back to the queue when its heartbeat stops, and every document acknowledged (202,
/// queued) is stored once and found through the survivor. The lease on the installation-wide
/// work (checkpoints, retention, directory sync) is held by one replica and passes to the
/// survivor.
#[test]
#[cfg_attr(not(peer_postgres), ignore = "needs PostgreSQL: set AYUSH_TEST_DATABASE_URL")]
fn a_replica_killed_mid_ingestion_loses_no_acknowledged_document() {
    let database = fresh_database("takeover");
    let db = database.url.clone();
    let config = format!("[database]\nurl = \"{db}\"\n");
    let mut a = Server::start_with_config(&config);
    let keys = a.data_dir.path().join("secrets");
    let b = Server::start_with_config(&format!("{config}[audit]\nsecrets_dir = \"{}\"\n", keys.display()));
    a.create_user("root", "admin", PW);
    assert!(a.ctl_local(&["group", "create", "all"], None).ok);
    assert!(a.ctl_local(&["group", "add-member", "all", "root"], None).ok);
    let mut admin_a = a.client();
    assert_eq!(admin_a.login("root", PW).status, 200);
    let made = admin_a.send_json("POST", "/api/collections", &json!({"name": "wiki", "readers": ["all"]}));
    assert_eq!(made.status, 201, "{}", made.body);

    let holder = |pid: u32| {
        psql(&db, "SELECT holder FROM leases WHERE name = 'singleton-work'").contains(&format!(":{pid}:"))
    };
    let wait_for = |what: &str, limit: u64, done: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !done() {
            assert!(start.elapsed().as_secs() < limit, "{what}: not within {limit} s");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("{what}: after {:?}", start.elapsed());
    };
    wait_for("one replica holds the duty", 10, &|| holder(a.pid()) || holder(b.pid()));

    // Big enough files that A is caught with one in hand.
    let key = a.token_for("root");
    let files = 24;
    let mut acknowledged = Vec::new();
    for i in 0..files {
        let filler: String = (0..6000).map(|j| format!("Sentence {j} of file {i} is filler. ")).collect();
        let up = a.client().raw(
            "POST",
            &format!("/api/collections/wiki/documents?source=f{i:02}.txt&wait=false"),
            &[("Authorization", &format!("Bearer {key}")), ("Content-Type", "text/plain")],
            &format!("Marker word mk{i}z.\n\n{filler}"),
        );
        assert_eq!(up.status, 202, "{}", up.body);
        acknowledged.push(up.json()["id"].as_i64().unwrap());
    }
    let a_pid = a.pid();
    let running_on_a = format!("SELECT count(*) FROM ingest_claims WHERE replica LIKE '%:{a_pid}:%'");
    wait_for("A runs a job", 60, &|| psql(&db, &running_on_a) != "0");
    let a_had_duty = holder(a_pid);
    a.kill();
    let killed = std::time::Instant::now();

    let all_done = "SELECT count(*) FROM ingest_jobs WHERE status = 'done'";
    wait_for("every acknowledged job done after the kill", 120, &|| psql(&db, all_done) == files.to_string());
    eprintln!("all {files} documents stored {:?} after A was killed", killed.elapsed());
    let jobs = psql(&db, "SELECT count(*) FROM ingest_jobs");
    assert_eq!(jobs, acknowledged.len().to_string());
    let documents = psql(&db, "SELECT count(*) FROM documents");
    assert_eq!(documents, files.to_string(), "each file stored once");
    let mut admin_b = b.client();
    assert_eq!(admin_b.login("root", PW).status, 200);
    // The job B took over was stored a moment ago; B's index applies it within milliseconds.
    let admin_b = std::cell::RefCell::new(admin_b);
    let found_once = |i: usize| {
        let hits = admin_b.borrow_mut().get(&format!("/api/search?q=mk{i}z")).json();
        let sources: std::collections::BTreeSet<String> = hits["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["source"].as_str().unwrap().to_string())
            .collect();
        sources == [format!("f{i:02}.txt")].into()
    };
    for i in 0..files {
        wait_for(&format!("f{i:02}.txt found through B, once"), 5, &|| found_once(i));
    }

    // The duty is B's now: at once if A never had it, within A's lease if it did.
    wait_for("B holds the duty", 15, &|| holder(b.pid()));
    eprintln!("A had the duty when it was killed: {a_had_duty}");
    let verified = b.ctl_local(&["audit", "verify"], None);
    assert!(verified.ok, "{}{}", verified.stdout, verified.stderr);
}

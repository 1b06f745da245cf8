//! The audit log as a compliance officer and an IT admin meet it, through the real binaries:
//! the auditor's API (filters, exports, verification), `ayushctl audit` remote and `--local`
//! with the server stopped, and tampering with the database caught by `audit verify`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::Server;
use diesel::RunQueryDsl;
use serde_json::{Value, json};
use std::io::BufRead;
use std::time::{Duration, Instant};

const ADMIN_PW: &str = "admin password 1";
const AUDITOR_PW: &str = "auditor password 1";

fn server() -> Server {
    let server = Server::start();
    server.create_user("root", "admin", ADMIN_PW);
    server.create_user("ada", "auditor", AUDITOR_PW);
    server
}

fn events(c: &mut ayush_tests::Client, query: &str) -> Vec<Value> {
    let r = c.get(&format!("/api/audit/events?{query}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["events"].as_array().unwrap().clone()
}

#[test]
fn the_auditor_filters_exports_and_verifies_and_nobody_else_reads_the_log() {
    let server = server();
    let mut admin = server.client();
    assert_eq!(admin.login("root", ADMIN_PW).status, 200);
    let r = admin.send_json(
        "POST",
        "/api/admin/users",
        &json!({"username": "bob", "role": "user", "password": "bob password 12"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = admin.get("/api/audit/events");
    assert_eq!(r.status, 403, "admins cannot read the audit log: {}", r.body);

    let mut ada = server.client();
    assert_eq!(ada.login("ada", AUDITOR_PW).status, 200);
    assert_eq!(ada.get("/api/admin/users").status, 403, "auditors cannot read admin settings");
    assert_eq!(ada.get("/api/conversations").status, 403, "nor chat");
    assert_eq!(ada.get("/").header("location"), Some("/audit"), "their home is the audit log");

    let created = events(&mut ada, "action=user.create");
    assert!(created.iter().all(|e| e["action"] == "user.create"));
    let bob = created.iter().find(|e| e["target_id"] == "bob").expect("bob's creation is recorded");
    assert_eq!(bob["actor"], "root");
    assert_eq!(bob["auth_method"], "session");
    assert_eq!(bob["ip"], "127.0.0.1");
    assert_eq!(bob["hash"].as_str().unwrap().len(), 64);

    let denied = events(&mut ada, "outcome=denied&action=access.*");
    assert!(
        denied.iter().any(|e| e["actor"] == "root" && e["details"]["request"] == "GET /api/audit/events"),
        "the admin's attempt is recorded: {denied:?}"
    );
    let timeline = events(&mut ada, "user=bob");
    assert!(timeline.iter().any(|e| e["action"] == "user.create"), "{timeline:?}");
    let sought = events(&mut ada, "q=ACCESS.DEN");
    assert!(!sought.is_empty() && sought.iter().all(|e| e["action"] == "access.denied"));
    let r = ada.get("/api/audit/events?outcome=maybe");
    assert_eq!(r.status, 400);
    assert!(r.body.contains("outcome"), "{}", r.body);
    let r = ada.get("/api/audit/events?from=yesterday");
    assert!(r.status == 400 && r.body.contains("not a time"), "{}", r.body);

    // Paging walks the whole log newest first, without repeats.
    let all = events(&mut ada, "limit=500");
    let first = ada.get("/api/audit/events?limit=3").json();
    let before = first["next_before"].as_i64().unwrap();
    let next = events(&mut ada, &format!("limit=3&before={before}"));
    assert_eq!(next[0]["seq"].as_i64().unwrap(), before - 1);

    let csv = ada.get("/api/audit/export?format=csv");
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.header("content-disposition").unwrap().contains("attachment"));
    let mut lines = csv.body.lines();
    assert!(lines.next().unwrap().starts_with("seq,time,actor_id,actor"));
    assert_eq!(lines.count(), all.len(), "the export holds every event up to its own");
    let jsonl = ada.get("/api/audit/export?format=jsonl&action=user.create");
    let rows: Vec<Value> = jsonl.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        rows.iter().any(|e| e["target_id"] == "bob") && rows.iter().all(|e| e["action"] == "user.create")
    );
    assert!(rows.windows(2).all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()), "oldest first");
    let exports = events(&mut ada, "action=audit.export");
    assert_eq!(exports.len(), 2, "each export is itself recorded");
    assert_eq!(exports[0]["details"]["filter"]["action"], "user.create");
    assert_eq!(exports[0]["actor"], "ada");

    let report = ada.send_json("POST", "/api/audit/verify", &json!({})).json();
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["events"].as_u64().unwrap() >= all.len() as u64);
    let status = ada.get("/api/audit/status").json();
    assert_eq!(status["status"]["last_report"]["ok"], true, "{status}");
    assert!(events(&mut ada, "action=audit.verify").iter().any(|e| e["actor"] == "ada"));

    let page = ada.get("/audit?action=user.*");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-integrity=\"intact\"") && page.body.contains("user.create"));
    assert!(page.body.contains("<title>Audit log · "), "a plain page title");
    let page = admin.get("/audit");
    assert_eq!(page.status, 403);
}

/// Opens the stopped server's database, as a database administrator with a SQL prompt would.
fn tamper(server: &Server, statements: &[&str]) {
    server
        .open_store()
        .run_blocking(|c| {
            for s in statements {
                ayush_server::with_conn!(c, |c| diesel::sql_query(*s).execute(c))?;
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn ayushctl_verifies_and_exports_with_the_server_stopped_and_catches_tampering() {
    let mut server = server();
    let auditor = server.key_signed_in("ada", AUDITOR_PW);
    for name in ["carl", "dina", "eve"] {
        server.create_user(name, "user", "user password 123");
    }
    let tail = server.ctl_remote(&auditor, &["audit", "tail", "-n", "3"], None);
    assert!(tail.ok, "{}", tail.stderr);
    assert_eq!(tail.stdout.lines().count(), 3, "{}", tail.stdout);
    assert!(tail.stdout.contains("user.create") && tail.stdout.contains("user:eve"), "{}", tail.stdout);
    let hold = server.ctl_remote(&auditor, &["audit", "hold", "dina", "--reason", "Matter 2026-114"], None);
    assert!(hold.ok, "{}", hold.stderr);
    let holds = server.ctl_remote(&auditor, &["-o", "json", "audit", "holds"], None);
    assert_eq!(holds.json()[0]["username"], "dina");
    assert_eq!(holds.json()[0]["placed_by"], "ada");
    let released = server.ctl_remote(&auditor, &["audit", "release", "dina"], None);
    assert!(released.ok, "{}", released.stderr);
    let again = server.ctl_remote(&auditor, &["audit", "release", "dina"], None);
    assert!(!again.ok && again.stderr.contains("not under legal hold"), "{}", again.stderr);
    let admin = server.token_for("root");
    let refused = server.ctl_remote(&admin, &["audit", "verify"], None);
    assert!(!refused.ok && refused.stderr.contains("auth.forbidden"), "{}", refused.stderr);

    server.stop();
    let copies = std::fs::read_to_string(server.data_dir.path().join("audit/checkpoints.jsonl")).unwrap();
    assert!(copies.lines().last().unwrap().contains("\"reason\":\"shutdown\""), "{copies}");

    let nothing = server.ctl_local(&["audit", "prune", "--days", "30"], None);
    assert!(
        nothing.ok && nothing.stdout.contains("no event is old enough"),
        "{}{}",
        nothing.stdout,
        nothing.stderr
    );
    let off = server.ctl_local(&["audit", "prune"], None);
    assert!(!off.ok && off.stderr.contains("retention is off"), "{}", off.stderr);

    let ok = server.ctl_local(&["audit", "verify"], None);
    assert!(ok.ok, "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stdout.starts_with("intact:"), "{}", ok.stdout);

    let tail = server.ctl_local(&["-o", "json", "audit", "tail", "-n", "2"], None);
    assert!(tail.ok, "{}", tail.stderr);
    let lines: Vec<serde_json::Value> =
        tail.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["seq"].as_i64() < lines[1]["seq"].as_i64(), "oldest first, newest last");

    let csv = server.ctl_local(&["audit", "export", "--format", "csv", "--action", "user.*"], None);
    assert!(csv.ok, "{}", csv.stderr);
    assert_eq!(csv.stdout.lines().filter(|l| l.contains("user.create")).count(), 5, "{}", csv.stdout);

    let cp = server.ctl_local(&["-o", "json", "audit", "checkpoint"], None);
    assert!(cp.ok, "{}", cp.stderr);
    let cp_file = server.data_dir.path().join("exported-checkpoint.json");
    std::fs::write(&cp_file, &cp.stdout).unwrap();
    let from = server
        .ctl_local(&["-o", "json", "audit", "verify", "--from-checkpoint", cp_file.to_str().unwrap()], None);
    assert!(from.ok, "{}", from.stderr);
    assert_eq!(from.json()["from_checkpoint"], cp.json()["seq"]);

    tamper(&server, &["UPDATE audit_events SET details = details || ' ' WHERE seq = 3"]);
    let bad = server.ctl_local(&["audit", "verify"], None);
    assert!(!bad.ok, "tampering must fail the command");
    assert!(bad.stdout.contains("NOT INTACT at seq 3: modified"), "{}{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("NOT intact"), "{}", bad.stderr);

    // Put it back, then cut the end off, rewind the database's head and remove the checkpoints
    // stored in the database: the copies outside it still tell.
    let keep = cp.json()["seq"].as_i64().unwrap() - 2;
    tamper(
        &server,
        &[
            "UPDATE audit_events SET details = rtrim(details) WHERE seq = 3",
            &format!("DELETE FROM audit_events WHERE seq > {keep}"),
            &format!(
                "UPDATE audit_head SET seq = {keep}, hash = (SELECT hash FROM audit_events WHERE seq = {keep})"
            ),
            "DELETE FROM audit_checkpoints",
        ],
    );
    let cut = server.ctl_local(&["-o", "json", "audit", "verify"], None);
    assert!(!cut.ok);
    let problem = &cut.json()["problem"];
    assert_eq!(problem["kind"], "truncated", "{problem}");
    assert_eq!(problem["seq"].as_i64().unwrap(), keep + 1, "{problem}");
}

#[test]
fn audit_tail_follows_new_events() {
    let server = server();
    let auditor = server.key_signed_in("ada", AUDITOR_PW);
    let mut child = std::process::Command::new(ayush_tests::bin_path("ayushctl"))
        .args(["audit", "tail", "--follow", "-n", "1", "--action", "user.create"])
        .env("AYUSH_URL", &server.url)
        .env("AYUSH_TOKEN", &auditor)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(20)).expect("the latest event");
    assert!(first.contains("user.create"), "{first}");
    server.create_user("frank", "user", "user password 123");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
            if seen.iter().any(|l| l.contains("user:frank")) {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.iter().any(|l| l.contains("user:frank")), "followed: {seen:?}");
    assert!(seen.iter().all(|l| l.contains("user.create")), "the filter holds: {seen:?}");
}

/// The chat content policy: a member of a capture group has their question and answer in the
/// audit log, encrypted; anyone else's chats are recorded without content. The auditor reads a
/// captured turn, and the reading is recorded.
#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn the_content_policy_captures_chats_of_chosen_groups_encrypted() {
    let gemma = ayush_tests::test_model(ayush_tests::GEMMA_FILE);
    let mut server = Server::start_with_config("[audit]\ncapture_chat_content_groups = [\"legal-review\"]\n");
    server.create_user("ada", "auditor", AUDITOR_PW);
    for name in ["lena", "omar"] {
        server.create_user(name, "user", "user password 123");
    }
    assert!(server.ctl_local(&["group", "create", "legal-review"], None).ok);
    assert!(server.ctl_local(&["group", "add-member", "legal-review", "lena"], None).ok);
    let import = server.ctl_local(&["models", "import", gemma.to_str().unwrap(), "--name", "gemma"], None);
    assert!(import.ok, "{}", import.stderr);

    let ask = |who: &str, question: &str| {
        let mut c = server.client();
        assert_eq!(c.login(who, "user password 123").status, 200);
        let id = c.send_json("POST", "/api/conversations", &json!({})).json()["id"].as_i64().unwrap();
        let r = c.send_json(
            "POST",
            &format!("/api/conversations/{id}/messages"),
            &json!({"content": question, "temperature": 0, "max_tokens": 8}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    };
    ask("lena", "Quarterly numbers for project Falcon?");
    ask("omar", "Lunch menu for project Heron?");

    let mut ada = server.client();
    assert_eq!(ada.login("ada", AUDITOR_PW).status, 200);
    let chats = events(&mut ada, "action=chat.message");
    let by = |name: &str| chats.iter().find(|e| e["actor"] == name).unwrap().clone();
    let (lena, omar) = (by("lena"), by("omar"));
    assert_eq!(lena["details"]["content"]["alg"], "A256GCM", "{lena}");
    assert!(omar["details"].get("content").is_none(), "outside the policy: no content: {omar}");
    let export = ada.get("/api/audit/export?format=jsonl").body;
    assert!(
        !export.contains("Falcon") && !export.contains("Heron"),
        "nothing readable at rest or in exports"
    );

    let seq = lena["seq"].as_i64().unwrap();
    let opened = ada.get(&format!("/api/audit/events/{seq}")).json();
    assert_eq!(opened["captured"]["question"], "Quarterly numbers for project Falcon?", "{opened}");
    assert!(!opened["captured"]["answer"].as_str().unwrap().is_empty());
    let viewed = events(&mut ada, "action=audit.content_view");
    assert_eq!(
        (viewed[0]["actor"].as_str(), viewed[0]["target_id"].as_str()),
        (Some("ada"), Some(&*seq.to_string()))
    );
    let page = ada.get(&format!("/audit/events/{seq}"));
    assert!(page.body.contains("Quarterly numbers for project Falcon?"), "{}", page.body);

    // The chain still verifies with content in it, and with the server stopped.
    server.stop();
    assert!(server.ctl_local(&["audit", "verify"], None).ok);
}

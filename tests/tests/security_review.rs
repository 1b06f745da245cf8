//! The security review's findings that the other suites do not already meet, end to end through
//! the real binary: one person's answers never hold up anyone else's (3), `/v1` obeys the chat
//! content policy (6), a provider's key never follows its URL to another server and plain
//! http stays on this machine (8), redirects after sign-in stay on this site (10), unreadable
//! collections look absent (11), jobs of personal collections stay their owner's (13),
//! forwarded headers count only from listed proxies (12, 14), and `/metrics` can be closed
//! (15). Findings 1, 2, 4 and 5 are in the SSO suites; 7 and 9 in the store suite and
//! `admin_api`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::upstream::{KEY, Upstream};
use ayush_tests::{Client, Server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const PW: &str = "a long password 1";

fn ask(model: &str, content: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

/// A server with admin `root`, users `amira` and `olav`, and the fake vendor as provider `up`.
fn with_provider(upstream: &Upstream, config: &str) -> (Server, String) {
    let server = Server::start_with_config(config);
    server.create_user("root", "admin", PW);
    for name in ["amira", "olav"] {
        server.create_user(name, "user", PW);
    }
    let admin = server.token_for("root");
    let base = format!("{}/v1", upstream.url());
    let args = ["-o", "json", "providers", "add", "up", "--kind", "openai", "--base-url", &base];
    let mut args = args.to_vec();
    args.extend(["--model", "echo,stall", "--api-key-stdin"]);
    let out = server.ctl_remote(&admin, &args, Some(KEY));
    assert!(out.ok, "{}", out.stderr);
    (server, admin)
}

/// Waits until the fake vendor has received `n` requests for `model`.
fn wait_for_requests(upstream: &Upstream, model: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.received("/chat/completions").iter().filter(|r| r.body["model"] == model).count() < n {
        assert!(Instant::now() < deadline, "the vendor never saw {n} requests for {model}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Finding 3: conversations are locked one by one, after the ownership check and for a bounded
/// wait; one person has at most `chat.max_concurrent_per_user` answers running, over the web
/// chat and `/v1` together; `max_tokens` is capped.
#[test]
fn one_persons_answers_never_hold_up_anyone_elses() {
    let upstream = Upstream::start(4);
    let (server, _) = with_provider(&upstream, "[chat]\nturn_wait_secs = 1\n");
    let amira = server.key_signed_in("amira", PW);
    let olav = server.key_signed_in("olav", PW);

    let mut c = server.client();
    let r = c.v1_chat(
        &amira,
        &json!({"model": "up/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("max_tokens is at most 4096"), "{}", r.body);

    // Two stalled answers of amira's, in flight.
    let url = server.url.clone();
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let (url, key) = (url.clone(), amira.clone());
            std::thread::spawn(move || Client::new(&url).v1_chat(&key, &ask("up/stall", "wait")).status)
        })
        .collect();
    wait_for_requests(&upstream, "stall", 2);
    let third = c.v1_chat(&amira, &ask("up/echo", "and this?"));
    assert_eq!(third.status, 429, "{}", third.body);
    assert!(third.body.contains("2 answers being written"), "{}", third.body);
    let started = Instant::now();
    let others = c.v1_chat(&olav, &ask("up/echo", "hello"));
    assert_eq!(others.status, 200, "{}", others.body);
    assert!(started.elapsed() < Duration::from_secs(3), "olav waited {:?}", started.elapsed());
    for t in stalled {
        assert_eq!(t.join().unwrap(), 200);
    }

    // The web chat: a second message waits for the first only so long, and only its owner's
    // requests wait at all.
    let mut web = server.client();
    assert_eq!(web.login("amira", PW).status, 200);
    let conv = web.send_json("POST", "/api/conversations", &json!({"model": "up/stall"}));
    assert_eq!(conv.status, 201, "{}", conv.body);
    let id = conv.json()["id"].as_i64().unwrap();
    let path = format!("/api/conversations/{id}/messages");
    let session = web.session.clone();
    let first = {
        let (url, path) = (url.clone(), path.clone());
        std::thread::spawn(move || {
            let mut c = Client::new(&url);
            c.session = session;
            c.send_json("POST", &path, &json!({"content": "first"})).status
        })
    };
    wait_for_requests(&upstream, "stall", 3);
    let second = web.send_json("POST", &path, &json!({"content": "second"}));
    assert_eq!(second.status, 429, "{}", second.body);
    assert!(second.body.contains("still answering the previous message"), "{}", second.body);
    let mut intruder = server.client();
    assert_eq!(intruder.login("olav", PW).status, 200);
    let started = Instant::now();
    let r = intruder.send_json("POST", &path, &json!({"content": "mine now"}));
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(started.elapsed() < Duration::from_millis(900), "not held behind amira's lock");
    assert_eq!(first.join().unwrap(), 200);
}

/// Finding 6: a `/v1` completion of someone in a capture group is captured, sealed to its call,
/// exactly as their web chats are; the auditor opens it and the reading is recorded.
#[test]
fn v1_completions_obey_the_chat_content_policy() {
    let upstream = Upstream::start(2);
    let (server, _) = with_provider(&upstream, "[audit]\ncapture_chat_content_groups = [\"legal\"]\n");
    server.create_user("ada", "auditor", PW);
    assert!(server.ctl_local(&["group", "create", "legal"], None).ok);
    assert!(server.ctl_local(&["group", "add-member", "legal", "amira"], None).ok);
    let mut c = server.client();
    for (who, question) in [("amira", "Falcon merger terms?"), ("olav", "Heron lunch menu?")] {
        let key = server.key_signed_in(who, PW);
        let r = c.v1_chat(&key, &ask("up/echo", question));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let mut ada = server.client();
    assert_eq!(ada.login("ada", PW).status, 200);
    let calls = ada.get("/api/audit/events?action=v1.chat.completions").json()["events"].clone();
    let by = |name: &str| calls.as_array().unwrap().iter().find(|e| e["actor"] == name).unwrap().clone();
    let (amiras, olavs) = (by("amira"), by("olav"));
    assert_eq!(amiras["details"]["content"]["alg"], "A256GCM", "{amiras}");
    assert!(olavs["details"].get("content").is_none(), "outside the policy: {olavs}");
    let export = ada.get("/api/audit/export?format=jsonl").body;
    assert!(!export.contains("Falcon"), "sealed at rest and in exports");
    let opened = ada.get(&format!("/api/audit/events/{}", amiras["seq"])).json();
    assert_eq!(opened["captured"]["question"], "Falcon merger terms?", "{opened}");
    assert_eq!(opened["captured"]["answer"], "Echo: Falcon merger terms?");
    let viewed = ada.get("/api/audit/events?action=audit.content_view").json()["events"].clone();
    assert_eq!(viewed[0]["details"]["call"], amiras["details"]["call"]);
}

/// Finding 8: moving a provider to another server clears its key unless a new one comes with
/// it; plain http is refused off this machine.
#[test]
fn a_providers_key_never_follows_its_url_elsewhere() {
    let upstream = Upstream::start(2);
    let (server, admin) = with_provider(&upstream, "");
    let set = |args: &[&str], stdin: Option<&str>| {
        let mut full = vec!["-o", "json", "providers", "set", "up"];
        full.extend_from_slice(args);
        server.ctl_remote(&admin, &full, stdin)
    };
    let same_server = format!("{}/v1/", upstream.url());
    let kept = set(&["--base-url", &same_server], None);
    assert!(kept.ok, "{}", kept.stderr);
    assert_eq!(kept.json()["has_api_key"], true, "another path on the same server keeps the key");

    let other_port = upstream.url().replace("127.0.0.1", "localhost");
    let moved = set(&["--base-url", &format!("{other_port}/v1")], None);
    assert!(moved.ok, "{}", moved.stderr);
    assert_eq!(moved.json()["has_api_key"], false, "another host: the key is cleared");
    let events = server.audit_events("provider.update", None);
    assert!(events[0].details.contains("cleared: the address moved"), "{}", events[0].details);

    let plain = set(&["--base-url", "http://10.0.0.5:8000/v1"], None);
    assert!(!plain.ok && plain.stderr.contains("only for this machine"), "{}", plain.stderr);
    let added = server.ctl_remote(
        &admin,
        &["providers", "add", "lan", "--kind", "openai", "--base-url", "http://192.0.2.7/v1"],
        None,
    );
    assert!(!added.ok && added.stderr.contains("use https://"), "{}", added.stderr);
}

/// Findings 10, 11, 13: a sign-in's `next` stays on this site however it is spelled; a
/// collection someone may not read answers exactly as one that does not exist; the jobs of a
/// personal collection are its owner's alone.
#[test]
fn redirects_collections_and_jobs_reveal_nothing() {
    let server = Server::start();
    server.create_user("root", "admin", PW);
    server.create_user("kim", "user", PW);
    server.create_user("lou", "user", PW);
    for next in [
        "/\t/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/%09/evil.example",
    ] {
        let mut c = server.client();
        let form = c.get("/login");
        let csrf = form
            .body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_string();
        let body = format!(
            "username=kim&password={}&csrf={csrf}&next={}",
            PW.replace(' ', "+"),
            next.replace('\t', "%09").replace('\\', "%5C").replace('/', "%2F").replace(':', "%3A")
        );
        let r = c.raw("POST", "/login", &[("Content-Type", "application/x-www-form-urlencoded")], &body);
        assert_eq!(r.status, 303, "{next:?}: {}", r.body);
        let to = r.header("location").unwrap_or_default();
        assert!(
            to.starts_with('/') && !to.starts_with("//") && !to.contains('\\') && !to.contains("evil"),
            "{next:?} -> {to:?}"
        );
    }

    let mut kim = server.client();
    assert_eq!(kim.login("kim", PW).status, 200);
    let made = kim.send_json("POST", "/api/collections", &json!({"name": "kim-private", "personal": true}));
    assert_eq!(made.status, 201, "{}", made.body);
    let key = server.key_signed_in("kim", PW);
    let up = server.client().raw(
        "POST",
        "/api/collections/kim-private/documents?source=salaries-2026.txt&wait=true",
        &[("Authorization", &format!("Bearer {key}")), ("Content-Type", "text/plain")],
        "Salaries for 2026 are confidential.",
    );
    assert!((200..=202).contains(&up.status), "{}", up.body);

    let mut lou = server.client();
    assert_eq!(lou.login("lou", PW).status, 200);
    for path in ["kim-private", "no-such-collection"] {
        let del = lou.send_json("DELETE", &format!("/api/collections/{path}"), &json!({}));
        assert_eq!(del.status, 404, "{path}: {}", del.body);
        assert!(!del.body.contains("kim-private") || path == "kim-private", "{}", del.body);
        let get = lou.get(&format!("/api/collections/{path}"));
        assert_eq!(get.status, 404, "{path}: {}", get.body);
    }
    let a = lou.send_json("DELETE", "/api/collections/kim-private", &json!({})).json();
    let b = lou.send_json("DELETE", "/api/collections/kim-privatx", &json!({})).json();
    assert_eq!(
        a["error"]["message"].as_str().unwrap().replace("kim-private", "X"),
        b["error"]["message"].as_str().unwrap().replace("kim-privatx", "X"),
        "the same answer for hidden and absent"
    );

    let mut root = server.client();
    assert_eq!(root.login("root", PW).status, 200);
    for (who, c) in [("root", &mut root), ("lou", &mut lou)] {
        let jobs = c.get("/api/jobs");
        assert_eq!(jobs.status, 200, "{who}: {}", jobs.body);
        assert!(
            !jobs.body.contains("salaries") && !jobs.body.contains("kim-private"),
            "{who}: {}",
            jobs.body
        );
    }
    assert!(kim.get("/api/jobs").body.contains("salaries-2026.txt"), "the owner sees their own");
}

/// Findings 12, 14, 15: forwarded headers count only from listed proxies (so the lockout counts
/// the real client, and OIDC redirect addresses cannot be steered); `/metrics` answers only
/// with its token when one is set.
#[test]
fn forwarded_headers_count_only_from_listed_proxies_and_metrics_can_be_closed() {
    let server = Server::start_with_config(
        "[server]\ntrusted_proxies = [\"10.9.9.9\"]\nmetrics_token = \"scrape-secret-123\"\n[auth]\nlockout_max_failures = 3\n",
    );
    server.create_user("root", "admin", PW);
    let mut c = server.client();
    // A client that is not a listed proxy cannot pick the address its failures count against.
    for i in 0..3 {
        let spoof = format!("203.0.113.{i}");
        let r = c.raw(
            "POST",
            "/api/auth/login",
            &[("Content-Type", "application/json"), ("X-Forwarded-For", &spoof)],
            &json!({"username": "ROOT ", "password": "wrong password"}).to_string(),
        );
        assert_eq!(r.status, 401, "{}", r.body);
    }
    let r = c.login("root", PW);
    assert_eq!(r.status, 429, "Root, ROOT and root are one account: {}", r.body);
    let denied = server.audit_events("auth.login", Some("denied"));
    assert!(
        denied.iter().all(|e| e.ip.as_deref() == Some("127.0.0.1")),
        "the socket address counts: {denied:?}"
    );

    assert_eq!(c.get("/metrics").status, 401);
    let wrong = c.raw("GET", "/metrics", &[("Authorization", "Bearer nope")], "");
    assert_eq!(wrong.status, 401);
    let ok = c.raw("GET", "/metrics", &[("Authorization", "Bearer scrape-secret-123")], "");
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("ayush_http_requests_total"), "{}", ok.body);

    let old = tempfile::tempdir().unwrap();
    let file = old.path().join("ayush.toml");
    std::fs::write(&file, "[server]\ntrust_forwarded_for = true\n").unwrap();
    let refused = std::process::Command::new(ayush_tests::bin_path("ayush"))
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&refused.stderr).to_string() + &String::from_utf8_lossy(&refused.stdout);
    assert!(!refused.status.success() && said.contains("trusted_proxies"), "{said}");
}

/// Finding 15: a person sends at most `knowledge.max_concurrent_uploads_per_user` files at once;
/// one more is refused at once rather than buffered beside the others.
#[test]
fn one_person_cannot_pile_up_uploads() {
    use std::io::Write;
    let server = Server::start_with_config("[knowledge]\nmax_concurrent_uploads_per_user = 1\n");
    server.create_user("kim", "user", PW);
    let key = server.key_signed_in("kim", PW);
    let mut kim = server.client();
    let bearer = format!("Bearer {key}");
    let made = kim.raw(
        "POST",
        "/api/collections",
        &[("Authorization", &bearer), ("Content-Type", "application/json")],
        r#"{"name": "kim-files", "personal": true}"#,
    );
    assert_eq!(made.status, 201, "{}", made.body);

    // A slow upload: its headers and the first bytes of a 1 MB body, then nothing yet.
    let addr = server.url.trim_start_matches("http://").to_string();
    let open_slow = || {
        let mut slow = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            slow,
            "POST /api/collections/kim-files/documents?source=big.txt HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {bearer}\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\nthe start of a long file"
        )
        .unwrap();
        slow.flush().unwrap();
        slow.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        slow
    };
    // Refused itself: its answer is waiting on the socket.
    let refused = |slow: &mut std::net::TcpStream| {
        use std::io::Read;
        let mut buf = [0u8; 64];
        slow.read(&mut buf).is_ok_and(|n| String::from_utf8_lossy(&buf[..n]).contains(" 429 "))
    };
    let mut slow = open_slow();
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        let r = kim.raw(
            "POST",
            "/api/collections/kim-files/documents?source=small.txt",
            &[("Authorization", &bearer), ("Content-Type", "text/plain")],
            "a small file",
        );
        if r.status == 429 || Instant::now() > deadline {
            break r;
        }
        // The small one went first (the slow one was then refused, or has not arrived yet).
        if refused(&mut slow) {
            slow = open_slow();
        }
    };
    assert_eq!(second.status, 429, "{}", second.body);
    assert!(second.body.contains("already sending 1 files"), "{}", second.body);
    drop(slow);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = kim.raw(
            "POST",
            "/api/collections/kim-files/documents?source=small.txt",
            &[("Authorization", &bearer), ("Content-Type", "text/plain")],
            "a small file",
        );
        if r.status != 429 {
            assert!(r.status < 300, "{}", r.body);
            break;
        }
        assert!(Instant::now() < deadline, "the broken-off upload never freed its place");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Finding 11, assistants: the collections an assistant draws on are listed to each person only
/// as far as they may read them.
#[test]
fn assistants_name_only_the_collections_their_user_reads() {
    let upstream = Upstream::start(1);
    let (server, admin) = with_provider(&upstream, "");
    for group in ["hr", "staff"] {
        assert!(server.ctl_local(&["group", "create", group], None).ok);
    }
    assert!(server.ctl_local(&["group", "add-member", "staff", "amira"], None).ok);
    let mut root = server.client();
    assert_eq!(root.login("root", PW).status, 200);
    for (name, group) in [("hr-salaries", "hr"), ("handbook", "staff")] {
        let made = root.send_json("POST", "/api/collections", &json!({"name": name, "readers": [group]}));
        assert_eq!(made.status, 201, "{}", made.body);
    }
    let preset = json!({"name": "helper", "model": "up/echo", "collections": ["hr-salaries", "handbook"]});
    let made = root.send_json("POST", "/api/admin/presets", &preset);
    assert_eq!(made.status, 201, "{}", made.body);
    drop(admin);

    let mut amira = server.client();
    assert_eq!(amira.login("amira", PW).status, 200);
    let offered = amira.get("/api/presets");
    assert_eq!(offered.status, 200, "{}", offered.body);
    assert_eq!(offered.json()[0]["collections"], json!(["handbook"]), "{}", offered.body);
    assert!(!offered.body.contains("hr-salaries"), "{}", offered.body);
}

//! Chat through the real binary with the real Qwen model: streamed replies over HTTP, stored
//! messages and usage, regenerate, stop, and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{GEMMA_FILE, QWEN_FILE, Server, sse_events, test_model};
use serde_json::json;
use std::io::Read;

const PW: &str = "chat password 1";

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn chat_with_the_local_model_over_http() {
    let qwen = test_model(QWEN_FILE);
    let server = Server::start();
    server.create_user("amira", "user", PW);
    server.create_user("other", "user", PW);
    let mut c = server.client();
    c.login("amira", PW);

    // No model yet: a clear message, not a crash.
    let r = c.send_json("POST", "/api/conversations", &json!({}));
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("ayushctl models import"));

    // An admin imports the model; the running server sees it without a restart.
    let out =
        server.ctl_local(&["-o", "json", "models", "import", qwen.to_str().unwrap(), "--name", "qwen"], None);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.json()["sha256"], "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32");
    let models = c.get("/api/models").json();
    assert_eq!((models[0]["name"].as_str(), models[0]["default"].as_bool()), (Some("qwen"), Some(true)));
    assert!(server.ctl_local(&["models", "verify", "qwen"], None).ok);

    let conv = c.send_json("POST", "/api/conversations", &json!({})).json();
    let id = conv["id"].as_i64().unwrap();
    assert_eq!(conv["model"], "qwen");

    // A streamed reply: tokens, then one done event with the stored message and its usage.
    let r = c.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "What is the capital of France?", "temperature": 0, "max_tokens": 32}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = sse_events(&r.body);
    let tokens: String =
        events.iter().filter(|(n, _)| n == "token").map(|(_, d)| d["text"].as_str().unwrap()).collect();
    assert!(events.iter().filter(|(n, _)| n == "token").count() > 1, "streamed in pieces");
    assert!(tokens.contains("Paris"), "{tokens:?}");
    // The answer, then the title the model wrote for the conversation after its first answer.
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[names.len() - 2..], ["done", "title"], "{events:?}");
    let (_, done) = &events[events.len() - 2];
    let title = events.last().unwrap().1["title"].as_str().unwrap().to_string();
    assert!(!title.is_empty() && title.chars().count() <= 81, "{title:?}");
    assert_eq!(done["finish_reason"], "stop");
    assert!(done["usage"]["ttft_ms"].as_i64().is_some(), "{done}");
    assert!(done["usage"]["prompt_tokens"].as_i64().unwrap() > 10);
    assert!(done["html"].as_str().unwrap().contains("Paris"));

    let stored = c.get(&format!("/api/conversations/{id}")).json();
    let msgs = stored["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0]["role"].as_str(), msgs[1]["role"].as_str()), (Some("user"), Some("assistant")));
    assert_eq!(msgs[1]["content"].as_str().unwrap(), tokens);
    assert_eq!(msgs[1]["model"], "qwen");
    assert_eq!(msgs[1]["id"], done["message_id"]);
    assert!(msgs[1]["completion_tokens"].as_i64().unwrap() > 0 && msgs[1]["latency_ms"].as_i64().is_some());
    // The written title replaced the first line the conversation was named by; the audit log
    // has it, and a title the person writes is theirs from then on.
    assert_eq!(stored["conversation"]["title"].as_str(), Some(title.as_str()), "{stored}");
    assert_ne!(title, "What is the capital of France?");
    assert!(msgs[1]["ttft_ms"].as_i64().is_some(), "{stored}");

    // Regenerate answers the same question again, replacing the reply.
    let r = c.send_json(
        "POST",
        &format!("/api/conversations/{id}/regenerate"),
        &json!({"temperature": 0, "max_tokens": 32}),
    );
    assert_eq!(sse_events(&r.body).last().unwrap().0, "done");
    assert_eq!(c.get(&format!("/api/conversations/{id}")).json()["messages"].as_array().unwrap().len(), 2);

    // Stop: the client goes away mid-reply; what was generated is kept, marked cancelled, and
    // the engine is free for the next request.
    let (status, mut body) = c.open_stream(
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "Write a long story about a lighthouse keeper.", "max_tokens": 400}),
    );
    assert_eq!(status, 200);
    let mut reader = body.as_reader();
    let mut first = [0u8; 64];
    reader.read_exact(&mut first).unwrap();
    drop(reader);
    drop(body);
    let r = c.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "Say hi.", "temperature": 0, "max_tokens": 8}),
    );
    assert_eq!(sse_events(&r.body).last().unwrap().0, "done", "{}", r.body);
    let msgs = c.get(&format!("/api/conversations/{id}")).json()["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 6);
    assert_eq!(msgs[3]["finish_reason"], "cancelled", "{:?}", msgs[3]);
    assert!(msgs[3]["completion_tokens"].as_i64().unwrap() < 400);

    // Bad input: clear messages, nothing stored.
    let path = format!("/api/conversations/{id}/messages");
    let r = c.send_json("POST", &path, &json!({"content": "   "}));
    assert_eq!((r.status, r.error_code().as_str()), (422, "validation"));
    let r = c.send_json("POST", &path, &json!({"content": "hi", "model": "gpt-9"}));
    assert!(r.status == 422 && r.body.contains("gpt-9"), "{}", r.body);
    let r = c.send_json("POST", &path, &json!({"content": "hi", "temperature": 99}));
    assert_eq!(r.status, 422);
    let r = c.send_json("POST", &path, &json!({"content": "x".repeat(40_000)}));
    assert_eq!(r.status, 422);
    assert_eq!(c.get(&format!("/api/conversations/{id}")).json()["messages"].as_array().unwrap().len(), 6);

    // Each answer asked of the model is in the usage report: five here (four answers, one
    // stopped, and the title written after the first); the refused requests above never
    // reached the model.
    let report = server.ctl_local(&["-o", "json", "usage", "report", "--by", "user"], None);
    assert!(report.ok, "{}", report.stderr);
    let lines = report.json();
    let amira = lines.as_array().unwrap().iter().find(|l| l["key"] == "amira").expect("amira's line");
    assert_eq!((amira["requests"].as_i64(), amira["cancelled"].as_i64()), (Some(5), Some(1)), "{lines}");
    assert!(amira["completion_tokens"].as_i64().unwrap() > 0 && amira["mean_ttft_ms"].as_i64().is_some());
    let by_provider = server.ctl_local(&["-o", "json", "usage", "report", "--by", "provider"], None).json();
    assert_eq!(by_provider[0]["key"], "local", "{by_provider}");
    let csv = server.ctl_local(&["-o", "csv", "usage", "report", "--by", "model"], None);
    let mut rows = csv.stdout.lines();
    assert_eq!(rows.next(), Some(output_header()), "{}", csv.stdout);
    assert!(rows.next().is_some_and(|r| r.starts_with("qwen,5,")), "{}", csv.stdout);

    // Conversations are private, listed newest first, searchable, renamable and deletable.
    let mut other = server.client();
    other.login("other", PW);
    assert_eq!(other.get(&format!("/api/conversations/{id}")).status, 404);
    assert_eq!(other.send_json("POST", &path, &json!({"content": "hi"})).status, 404);
    let second = c.send_json("POST", "/api/conversations", &json!({"title": "Empty"})).json();
    let list = c.get("/api/conversations").json();
    assert_eq!(list[0]["id"], second["id"]);
    let found = c.get("/api/conversations?q=lighthouse").json();
    assert_eq!(found.as_array().unwrap().len(), 1);
    let r = c.send_json(
        "PATCH",
        &format!("/api/conversations/{id}"),
        &json!({"title": "Geography", "system_prompt": "Be terse."}),
    );
    assert_eq!(r.json()["title"], "Geography");
    assert_eq!(c.send_json("DELETE", &format!("/api/conversations/{id}"), &json!({})).status, 204);
    assert_eq!(c.get(&format!("/api/conversations/{id}")).status, 404);

    let token = {
        server.create_user("ops", "admin", PW);
        server.token_for("ops")
    };
    let listed = server.ctl_remote(&token, &["-o", "json", "models", "list"], None);
    assert_eq!(listed.json()[0]["name"], "qwen", "{}", listed.stderr);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn an_answer_cut_at_its_length_limit_is_continued_in_place() {
    let qwen = test_model(QWEN_FILE);
    let server = Server::start();
    server.create_user("amira", "user", PW);
    let mut c = server.client();
    c.login("amira", PW);
    let out = server.ctl_local(&["models", "import", qwen.to_str().unwrap(), "--name", "qwen"], None);
    assert!(out.ok, "{}", out.stderr);
    let question = "Name the planets of the solar system in order, as a numbered list.";
    let ask = |c: &mut ayush_tests::Client, path: &str, body: serde_json::Value| {
        let r = c.send_json("POST", path, &body);
        assert_eq!(r.status, 200, "{}", r.body);
        sse_events(&r.body).into_iter().rfind(|(n, _)| n == "done").expect("a done event").1
    };
    let conversation = |c: &mut ayush_tests::Client| {
        c.send_json("POST", "/api/conversations", &json!({})).json()["id"].as_i64().unwrap()
    };

    // The same question answered whole, for comparison.
    let whole_id = conversation(&mut c);
    ask(
        &mut c,
        &format!("/api/conversations/{whole_id}/messages"),
        json!({"content": question, "temperature": 0, "max_tokens": 64}),
    );
    let whole = c.get(&format!("/api/conversations/{whole_id}")).json()["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();

    let id = conversation(&mut c);
    let cut = ask(
        &mut c,
        &format!("/api/conversations/{id}/messages"),
        json!({"content": question, "temperature": 0, "max_tokens": 12}),
    );
    assert_eq!(cut["finish_reason"], "length", "{cut}");
    let first = c.get(&format!("/api/conversations/{id}")).json()["messages"][1].clone();
    let first_text = first["content"].as_str().unwrap().to_string();
    // The page offers Continue under an answer that reached its limit.
    assert!(c.get(&format!("/chat?c={id}")).body.contains("data-finish=\"length\""));

    let more = ask(
        &mut c,
        &format!("/api/conversations/{id}/continue"),
        json!({"temperature": 0, "max_tokens": 52}),
    );
    assert_eq!(more["message_id"], first["id"], "the same answer grows: {more}");
    assert_eq!(more["finish_reason"], "stop", "{more}");
    // The parts' tokens together, the cut part's 12 among them.
    assert!(more["usage"]["completion_tokens"].as_i64().unwrap() > 12, "{more}");
    let msgs = c.get(&format!("/api/conversations/{id}")).json()["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let continued = msgs[1]["content"].as_str().unwrap();
    assert!(
        continued.starts_with(first_text.trim_end()) && continued.len() > first_text.len(),
        "{continued:?}"
    );
    // Greedy decoding from the open answer writes on as if it had never stopped.
    assert_eq!(continued, whole, "continued against whole");
    assert!(more["html"].as_str().unwrap().contains("<ol"), "{more}");

    // Each part is a request of its own in the usage counts, and the audit log says which
    // answer went on.
    let continued_events: Vec<_> = server
        .audit_events("chat.message", Some("success"))
        .into_iter()
        .filter(|e| e.details.contains("\"continued\":true"))
        .collect();
    assert_eq!(continued_events.len(), 1);

    // Nothing to continue: a chat without an answer, or someone else's chat.
    let empty = conversation(&mut c);
    let r = c.send_json("POST", &format!("/api/conversations/{empty}/continue"), &json!({}));
    assert!(r.status == 422 && r.body.contains("no answer to continue"), "{}", r.body);
    server.create_user("other", "user", PW);
    let mut other = server.client();
    other.login("other", PW);
    assert_eq!(other.send_json("POST", &format!("/api/conversations/{id}/continue"), &json!({})).status, 404);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn a_model_allowed_to_a_group_is_listed_and_usable_by_its_members_only() {
    let gemma = test_model(GEMMA_FILE);
    let server = Server::start();
    server.create_user("root", "admin", PW);
    server.create_user("hana", "user", PW);
    server.create_user("olav", "user", PW);
    let import = server.ctl_local(&["models", "import", gemma.to_str().unwrap(), "--name", "gemma"], None);
    assert!(import.ok, "{}", import.stderr);
    let token = server.token_for("root");
    let ctl = |args: &[&str]| server.ctl_remote(&token, args, None);
    assert!(ctl(&["group", "create", "hr"]).ok);
    assert!(ctl(&["group", "add-member", "hr", "hana"]).ok);

    let (mut hana, mut olav) = (server.client(), server.client());
    hana.login("hana", PW);
    olav.login("olav", PW);
    // Before any rule, everyone may use it; olav starts a chat with it.
    let before = olav.send_json("POST", "/api/conversations", &json!({"model": "gemma"})).json();

    let allowed = ctl(&["models", "allow", "gemma", "--group", "hr"]);
    assert!(allowed.ok, "{}", allowed.stderr);
    let listed = ctl(&["-o", "json", "models", "list"]).json();
    assert_eq!(listed[0]["groups"], json!(["hr"]));
    assert!(ctl(&["models", "list"]).stdout.contains("hr"));

    let names = |c: &mut ayush_tests::Client| -> Vec<String> {
        let models = c.get("/api/models").json();
        models.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&mut hana), ["gemma"]);
    assert!(names(&mut olav).is_empty(), "olav is not in hr");
    assert!(hana.send_json("POST", "/api/conversations", &json!({"model": "gemma"})).status == 201);
    let refused = olav.send_json("POST", "/api/conversations", &json!({"model": "gemma"}));
    assert_eq!((refused.status, refused.error_code().as_str()), (403, "auth.forbidden"), "{}", refused.body);
    assert!(refused.body.contains("gemma"));
    // A chat started before the rule cannot go on with the model either.
    let id = before["id"].as_i64().unwrap();
    let r = olav.send_json("POST", &format!("/api/conversations/{id}/messages"), &json!({"content": "hi"}));
    assert_eq!(r.status, 403, "{}", r.body);
    let r = olav.send_json("PATCH", &format!("/api/conversations/{id}"), &json!({"model": "gemma"}));
    assert_eq!(r.status, 403, "{}", r.body);
    let page = olav.get("/chat").body;
    assert!(!page.contains("value=\"gemma\""), "the picker offers only usable models");

    // Unknown models and groups are clear errors; taking the last group away opens the model.
    let bad = ctl(&["models", "allow", "nope", "--group", "hr"]);
    assert!(!bad.ok && bad.stderr.contains("nope"), "{}", bad.stderr);
    let bad = ctl(&["models", "allow", "gemma", "--group", "nobody"]);
    assert!(!bad.ok && bad.stderr.contains("nobody"), "{}", bad.stderr);
    let opened = ctl(&["models", "disallow", "gemma", "--group", "hr"]);
    assert!(opened.ok && opened.stdout.contains("open to everyone"), "{}", opened.stdout);
    assert_eq!(names(&mut olav), ["gemma"]);
    let again = ctl(&["models", "disallow", "gemma", "--group", "hr"]);
    assert!(!again.ok, "{}", again.stdout);
}

/// Several people at once on one local model: answers are written together, a full queue is
/// answered 429 with Retry-After, someone waiting sees their place in line in the web chat, a
/// client that goes away frees its place, and a conversation's next turn reads its earlier
/// turns from the kept cache, all visible in /metrics.
#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn many_people_share_one_model_at_once() {
    let gemma = test_model(GEMMA_FILE);
    // Two places and one more waiting.
    let server = Server::start_with(&[("AYUSH_MODELS__MAX_SEQUENCES", "2"), ("AYUSH_MODELS__QUEUE", "1")]);
    assert!(server.ctl_local(&["models", "import", gemma.to_str().unwrap(), "--name", "gemma"], None).ok);
    let people = ["ana", "bo", "cy", "di"];
    for p in people {
        server.create_user(p, "user", &format!("{p} password 123"));
    }
    let keys: Vec<String> =
        people.iter().map(|p| server.key_signed_in(p, &format!("{p} password 123"))).collect();
    let ask = |q: &str, max_tokens: u32, stream: bool| {
        json!({"model": "gemma", "messages": [{"role": "user", "content": q}], "max_tokens": max_tokens,
               "temperature": 0, "stream": stream})
    };
    let metric = |name: &str| -> f64 {
        let text = Server::client(&server).get("/metrics").body;
        let line = text.lines().find(|l| l.starts_with(&format!("{name}{{model=\"gemma\"}}")));
        line.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };

    // Three answers at once: all of them come back whole.
    let url = server.url.clone();
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let (url, key) = (url.clone(), keys[i].clone());
            let body = ask(&format!("Name {} colours.", i + 2), 16, false);
            std::thread::spawn(move || ayush_tests::Client::new(&url).v1_chat(&key, &body))
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.json()["usage"]["completion_tokens"].as_i64().unwrap() > 0, "{}", r.body);
    }

    // Two long answers take both places; a web chat turn then waits, told its place.
    let mut streams = Vec::new();
    for key in &keys[..2] {
        let mut c = server.client();
        let auth = format!("Bearer {key}");
        let (status, body) = c.open_stream_with(
            "/v1/chat/completions",
            &[("Authorization", auth.as_str())],
            &ask("Tell me a long story about a dragon.", 2000, true),
        );
        assert_eq!(status, 200);
        streams.push(body);
    }
    let mut web = server.client();
    assert_eq!(web.login("cy", "cy password 123").status, 200);
    let conv = web.send_json("POST", "/api/conversations", &json!({"model": "gemma"})).json();
    let path = format!("/api/conversations/{}/messages", conv["id"]);
    let waiting = {
        let (url, session) = (url.clone(), web.session.clone());
        let path = path.clone();
        std::thread::spawn(move || {
            let mut c = ayush_tests::Client::new(&url);
            c.session = session;
            c.send_json("POST", &path, &json!({"content": "Say hello.", "max_tokens": 8, "temperature": 0}))
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while metric("ayush_engine_waiting") < 1.0 {
        assert!(std::time::Instant::now() < deadline, "the web chat turn never queued");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Every place and the queue are taken: one more is refused at once, as OpenAI does.
    let full = Server::client(&server).v1_chat(&keys[3], &ask("Hi", 4, false));
    assert_eq!(full.status, 429, "{}", full.body);
    assert!(full.header("Retry-After").is_some(), "{:?}", full.headers);
    assert_eq!(full.error_code(), "rate_limit_exceeded");

    // The long answers' clients go away: their places free and the waiting turn is answered.
    drop(streams);
    let answered = waiting.join().unwrap();
    assert_eq!(answered.status, 200, "{}", answered.body);
    let events = sse_events(&answered.body);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"queued"), "{names:?}");
    assert_eq!(events[0].1["position"], 1);
    assert!(names.ends_with(&["done", "title"]), "a first answer, then its title: {names:?}");

    // The conversation's second turn reads the first from the kept cache.
    let hits = metric("ayush_engine_cache_hits_total");
    let second =
        web.send_json("POST", &path, &json!({"content": "Again.", "max_tokens": 8, "temperature": 0}));
    assert_eq!(second.status, 200, "{}", second.body);
    let done = sse_events(&second.body).into_iter().find(|(n, _)| n == "done").unwrap().1;
    assert!(done["usage"]["cached_prompt_tokens"].as_i64().unwrap() > 0, "{done}");
    assert!(metric("ayush_engine_cache_hits_total") > hits);
    assert!(metric("ayush_engine_cached_prompt_tokens_total") > 0.0);
    // Idle again: nothing running, nothing waiting.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while metric("ayush_engine_running") + metric("ayush_engine_waiting") > 0.0 {
        assert!(std::time::Instant::now() < deadline, "the engine still reports work");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The header of `ayushctl usage report -o csv`.
fn output_header() -> &'static str {
    "key,requests,prompt_tokens,completion_tokens,errors,cancelled,refused,cost,mean_ttft_ms,p95_ttft_ms,mean_duration_ms,p95_duration_ms"
}

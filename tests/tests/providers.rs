//! Remote providers end to end: the real `ayush` binary between a client and an upstream on
//! loopback. Each wire format (OpenAI, Anthropic, Gemini) against a fake vendor that speaks it
//! as documented, streaming included; upstream failures translated; the key sealed at rest and
//! never shown; the egress policy at save and at connect; and the OpenAI-compatible provider
//! against a second real Ayush serving the gemma model.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::upstream::{KEY, Upstream};
use ayush_tests::{Client, GEMMA_FILE, Server, test_model};
use serde_json::{Value, json};

/// The text and the last chunk of a streamed /v1 answer.
fn streamed_text(body: &str) -> (String, Vec<Value>) {
    let chunks: Vec<Value> = body
        .split("\n\n")
        .filter_map(|b| b.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    (text, chunks)
}

fn add_provider(server: &Server, token: &str, args: &[&str], key: Option<&str>) -> Value {
    let mut full = vec!["-o", "json", "providers", "add"];
    full.extend_from_slice(args);
    if key.is_some() {
        full.push("--api-key-stdin");
    }
    let out = server.ctl_remote(token, &full, key);
    assert!(out.ok, "{}", out.stderr);
    out.json()
}

/// Nothing in the database file, the write-ahead log or the server's log holds the key.
fn details(e: &ayush_server::audit::AuditEvent) -> Value {
    serde_json::from_str(&e.details).unwrap()
}

fn assert_key_nowhere(server: &Server) {
    for name in ["ayush.db", "ayush.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.data_dir.path().join(name)) {
            assert!(!bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()), "the key is in {name} in clear");
        }
    }
    assert!(!server.log_lines().iter().any(|l| l.contains(KEY)), "the key is in the log");
}

#[test]
fn each_wire_format_streams_through_ayush_with_usage_and_sealed_keys() {
    let upstream = Upstream::start(2);
    let server = Server::start();
    server.create_user("root", "admin", "root password 1");
    server.create_user("amira", "user", "amira password 1");
    let admin = server.token_for("root");
    let key = server.key_signed_in("amira", "amira password 1");
    let base = upstream.url();
    let openai = add_provider(
        &server,
        &admin,
        &[
            "up-openai",
            "--kind",
            "openai",
            "--base-url",
            &format!("{base}/v1"),
            "--model",
            "echo,missing,busy,huge,broken,truncated,moved",
        ],
        Some(KEY),
    );
    assert_eq!(openai["has_api_key"], json!(true));
    assert!(openai.get("api_key").is_none() && !openai.to_string().contains(KEY), "{openai}");
    add_provider(
        &server,
        &admin,
        &[
            "up-anthropic",
            "--kind",
            "anthropic",
            "--base-url",
            &base,
            "--model",
            "echo,missing,busy,huge,broken",
        ],
        Some(KEY),
    );
    add_provider(
        &server,
        &admin,
        &["up-gemini", "--kind", "gemini", "--base-url", &base, "--model", "echo,missing,busy,huge,broken"],
        Some(KEY),
    );

    // Users see the providers' models beside local ones, as provider/model.
    let mut client = server.client();
    let auth = format!("Bearer {key}");
    let models = client.raw("GET", "/v1/models", &[("Authorization", &auth)], "").json();
    let ids: Vec<&str> =
        models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"up-openai/echo") && ids.contains(&"up-gemini/echo"), "{ids:?}");
    let owned = models["data"].as_array().unwrap().iter().find(|m| m["id"] == "up-anthropic/echo").unwrap();
    assert_eq!(owned["owned_by"], "up-anthropic");
    assert!(owned["created"].as_i64().unwrap() > 0, "when the provider was added: {owned}");

    for provider in ["up-openai", "up-anthropic", "up-gemini"] {
        let model = format!("{provider}/echo");
        let messages =
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]);
        let streamed = client.v1_chat(&key,
            &json!({"model": model, "messages": messages, "stream": true, "stream_options": {"include_usage": true}}),
        );
        assert_eq!(streamed.status, 200, "{provider}: {}", streamed.body);
        let (text, chunks) = streamed_text(&streamed.body);
        assert_eq!(text, "Echo: hello there", "{provider}");
        assert!(streamed.body.trim_end().ends_with("data: [DONE]"));
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(
            (usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()),
            (Some(7), Some(3)),
            "{provider}"
        );

        let plain = client.v1_chat(&key, &json!({"model": model, "messages": messages, "max_tokens": 20}));
        assert_eq!(plain.status, 200, "{provider}: {}", plain.body);
        let plain = plain.json();
        assert_eq!(plain["choices"][0]["message"]["content"], "Echo: hello there");
        assert_eq!(plain["choices"][0]["finish_reason"], "stop");
        assert_eq!(plain["usage"]["total_tokens"], 10);
    }

    // Each vendor got its own shape, its key where it carries one, and the system text apart.
    let sent = upstream.received("/v1/chat/completions");
    assert_eq!(sent[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(sent[0].body["stream"], json!(true));
    assert_eq!(sent[0].body["messages"][0], json!({"role": "system", "content": "Be brief."}));
    let sent = upstream.received("/v1/messages");
    assert_eq!(sent[0].header("x-api-key"), Some(KEY));
    assert_eq!(sent[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent[0].body["system"], "Be brief.");
    assert_eq!(sent[0].body["messages"], json!([{"role": "user", "content": "hello there"}]));
    let sent = upstream.received(":streamGenerateContent");
    assert_eq!(sent[0].path, "/v1beta/models/echo:streamGenerateContent?alt=sse");
    assert_eq!(sent[0].header("x-goog-api-key"), Some(KEY));
    assert_eq!(sent[0].body["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(sent[1].body["generationConfig"]["maxOutputTokens"], 20, "the plain request asked for 20");

    // Upstream failures arrive as OpenAI errors that say what happened.
    let ask = |client: &mut Client, model: &str| {
        client.v1_chat(&key, &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
    };
    for provider in ["up-openai", "up-anthropic", "up-gemini"] {
        let r = ask(&mut client, &format!("{provider}/missing"));
        assert_eq!((r.status, r.error_code()), (404, "model_not_found".into()), "{provider}: {}", r.body);
        let r = ask(&mut client, &format!("{provider}/busy"));
        assert_eq!((r.status, r.error_code()), (429, "rate_limit_exceeded".into()), "{provider}: {}", r.body);
        assert!(r.json()["error"]["message"].as_str().unwrap().contains("rate limiting"), "{}", r.body);
        let r = ask(&mut client, &format!("{provider}/huge"));
        assert_eq!(
            (r.status, r.error_code()),
            (400, "context_length_exceeded".into()),
            "{provider}: {}",
            r.body
        );
        let r = ask(&mut client, &format!("{provider}/broken"));
        assert_eq!((r.status, r.error_code()), (502, "upstream_error".into()), "{provider}: {}", r.body);
    }
    let r = ask(&mut client, "up-openai/truncated");
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains("ended before the answer was complete"),
        "{}",
        r.body
    );
    let r = ask(&mut client, "up-openai/moved");
    assert_eq!(r.status, 502);
    assert!(r.body.contains("does not follow"), "{}", r.body);
    assert_eq!(upstream.received("/elsewhere").len(), 0);
    // A model the provider has but the admin did not list is not offered.
    let r = ask(&mut client, "up-openai/count-16");
    assert_eq!((r.status, r.error_code()), (404, "model_not_found".into()));

    // Mid-stream, the error is the last event before the stream ends.
    let r = client.v1_chat(&key,
        &json!({"model": "up-anthropic/broken", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(r.status, 200);
    let (text, chunks) = streamed_text(&r.body);
    assert_eq!(text, "Partial");
    assert!(
        chunks.last().unwrap()["error"]["message"].as_str().unwrap().contains("Overloaded"),
        "{}",
        r.body
    );

    // A wrong key is the admin's problem, and the message says so.
    let out =
        server.ctl_remote(&admin, &["providers", "set", "up-gemini", "--api-key-stdin"], Some("wrong-key"));
    assert!(out.ok, "{}", out.stderr);
    let r = ask(&mut client, "up-gemini/echo");
    assert_eq!((r.status, r.error_code()), (502, "upstream_auth_failed".into()), "{}", r.body);
    assert!(r.body.contains("an admin must update the provider's key"), "{}", r.body);

    // Test asks the provider for its models with the key Ayush holds.
    let out = server.ctl_remote(&admin, &["-o", "json", "providers", "test", "up-anthropic"], None);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.json()["models"], json!(["echo", "count-16"]));
    let out = server.ctl_remote(&admin, &["providers", "test", "up-gemini"], None);
    assert!(!out.ok && out.stderr.contains("refused the API key"), "{}", out.stderr);

    // The web chat uses the same providers: tokens, then the stored reply with its usage.
    let mut web = server.client();
    assert_eq!(web.login("amira", "amira password 1").status, 200);
    let conv = web.send_json("POST", "/api/conversations", &json!({"model": "up-anthropic/echo"})).json();
    let id = conv["id"].as_i64().unwrap();
    let r = web.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "good morning"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let events = ayush_tests::sse_events(&r.body);
    let (_, done) = events.iter().find(|(n, _)| n == "done").expect("a done event");
    assert_eq!(done["usage"]["completion_tokens"], 3);
    let stored = web.get(&format!("/api/conversations/{id}")).json();
    assert_eq!(stored["messages"][1]["content"], "Echo: good morning");
    // Continue sends the answer last, for the provider to write on from (Anthropic's prefill),
    // and the text that comes is added to the same reply, with its tokens.
    let r = web.send_json("POST", &format!("/api/conversations/{id}/continue"), &json!({}));
    let events = ayush_tests::sse_events(&r.body);
    let (_, done) = events.iter().find(|(n, _)| n == "done").expect("a done event");
    assert_eq!(done["message_id"], stored["messages"][1]["id"], "{}", r.body);
    assert_eq!(done["usage"]["completion_tokens"], 6);
    let asked = upstream.received("/v1/messages").into_iter().rfind(|r| !r.asks_for_title()).unwrap();
    assert_eq!(
        asked.body["messages"].as_array().unwrap().last().unwrap()["role"],
        "assistant",
        "{:?}",
        asked.body
    );
    assert!(
        asked.body["messages"][1]["content"].to_string().contains("Echo: good morning"),
        "{:?}",
        asked.body
    );
    let stored = web.get(&format!("/api/conversations/{id}")).json();
    assert_eq!(stored["messages"].as_array().unwrap().len(), 2);
    assert_eq!(stored["messages"][1]["content"], "Echo: good morningEcho: good morning");
    let conv = web.send_json("POST", "/api/conversations", &json!({"model": "up-openai/busy"})).json();
    let id = conv["id"].as_i64().unwrap();
    let r = web.send_json("POST", &format!("/api/conversations/{id}/messages"), &json!({"content": "hi"}));
    let (last, error) = ayush_tests::sse_events(&r.body).last().cloned().unwrap();
    assert_eq!(last, "error", "{}", r.body);
    assert!(error["message"].as_str().unwrap().contains("up-openai is rate limiting requests"), "{error}");

    // Access rules apply to remote models as to local ones.
    assert!(server.ctl_local(&["group", "create", "legal"], None).ok);
    let out = server.ctl_remote(&admin, &["models", "allow", "up-openai/echo", "--group", "legal"], None);
    assert!(out.ok, "{}", out.stderr);
    let r = ask(&mut client, "up-openai/echo");
    assert_eq!((r.status, r.error_code()), (404, "model_not_found".into()), "{}", r.body);

    // The key: sealed at rest, in no answer, log or audit event; changes are audited.
    let list = server.ctl_remote(&admin, &["-o", "json", "providers", "list"], None);
    assert!(list.ok && !list.stdout.contains(KEY));
    assert_key_nowhere(&server);
    let created = server.audit_events("provider.create", Some("success"));
    assert_eq!(created.len(), 3);
    assert!(created.iter().all(|e| !e.details.contains(KEY)));
    let updated = server.audit_events("provider.update", Some("success"));
    assert_eq!(details(&updated[0])["api_key"], "replaced");
    let calls = server.audit_events("v1.chat.completions", Some("success"));
    assert!(calls.iter().any(|e| e.target_id.as_deref() == Some("up-gemini/echo")));

    // One change can set several fields; an emptied key is cleared, the rest stays.
    let out = server.ctl_remote(
        &admin,
        &["-o", "json", "providers", "set", "up-anthropic", "--remove-key", "--timeout-secs", "30"],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    let changed = out.json();
    assert_eq!((changed["has_api_key"].as_bool(), changed["timeout_secs"].as_i64()), (Some(false), Some(30)));
    assert_eq!(changed["models"].as_array().unwrap().len(), 5, "{changed}");

    let out = server.ctl_remote(&admin, &["providers", "remove", "up-gemini"], None);
    assert!(out.ok, "{}", out.stderr);
    let r = ask(&mut client, "up-gemini/echo");
    assert_eq!(r.status, 404, "{}", r.body);
}

#[test]
fn a_slow_provider_times_out_with_a_clear_error() {
    let upstream = Upstream::start(1);
    let server = Server::start();
    server.create_user("root", "admin", "root password 1");
    let admin = server.token_for("root");
    let url = format!("{}/v1", upstream.url());
    add_provider(
        &server,
        &admin,
        &["slow", "--kind", "openai", "--base-url", &url, "--model", "stall", "--timeout-secs", "1"],
        Some(KEY),
    );
    let mut client = server.client();
    let started = std::time::Instant::now();
    let r = client
        .v1_chat(&admin, &json!({"model": "slow/stall", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!((r.status, r.error_code()), (504, "upstream_timeout".into()), "{}", r.body);
    assert!(r.body.contains("did not answer in time"), "{}", r.body);
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}

/// A provider outside loopback, which the default policy forbids.
const FAR: [&str; 9] = [
    "providers",
    "add",
    "far",
    "--kind",
    "openai",
    "--base-url",
    "https://10.255.255.1:9/v1",
    "--model",
    "m",
];

#[test]
fn the_egress_policy_holds_at_save_and_at_connect() {
    // Air-gapped (the default): a provider outside loopback and the allowlist is refused when
    // it is saved, and the attempt is recorded.
    let mut server = Server::start();
    server.create_user("root", "admin", "root password 1");
    let admin = server.token_for("root");
    let out = server.ctl_remote(&admin, &FAR, None);
    assert!(!out.ok && out.stderr.contains("egress policy refuses 10.255.255.1:9"), "{}", out.stderr);
    let refused = server.audit_events("egress.refused", None);
    assert_eq!(details(&refused[0])["destination"], "10.255.255.1:9");
    server.stop();

    // Saved while the policy was off, the same provider is refused at connect once it is on.
    let dir = server.data_dir.path().to_path_buf();
    let open = format!("[egress]\nairgap = false\n[server]\ndata_dir = {dir:?}\n");
    std::fs::write(dir.join("ayush.toml"), &open).unwrap();
    let config = dir.join("ayush.toml").to_string_lossy().to_string();
    let args: Vec<&str> = ["--local", "--config", config.as_str()].into_iter().chain(FAR).collect();
    let out = ayush_tests::run_ctl(&args, None, &[]);
    assert!(out.ok, "{}", out.stderr);
    std::fs::remove_file(dir.join("ayush.toml")).unwrap();
    let server = server.restart();
    let mut client = server.client();
    let r =
        client.v1_chat(&admin, &json!({"model": "far/m", "messages": [{"role": "user", "content": "hi"}]}));
    assert_eq!((r.status, r.error_code()), (502, "egress_refused".into()), "{}", r.body);
    let refused = server.audit_events("egress.refused", None);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(details(&refused[0])["for"], "provider far");
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn another_ayush_is_an_openai_compatible_provider() {
    let gemma = test_model(GEMMA_FILE);
    // The upstream: a second, real Ayush serving gemma.
    let peer = Server::start();
    peer.create_user("svc", "user", "service password 1");
    assert!(peer.ctl_local(&["models", "import", gemma.to_str().unwrap(), "--name", "gemma"], None).ok);
    let peer_key = peer.key_signed_in("svc", "service password 1");

    let server = Server::start();
    server.create_user("root", "admin", "root password 1");
    server.create_user("amira", "user", "amira password 1");
    let admin = server.token_for("root");
    let key = server.key_signed_in("amira", "amira password 1");
    add_provider(
        &server,
        &admin,
        &["peer", "--kind", "openai", "--base-url", &format!("{}/v1", peer.url), "--model", "gemma"],
        Some(&peer_key),
    );
    let out = server.ctl_remote(&admin, &["-o", "json", "providers", "test", "peer"], None);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.json()["models"], json!(["gemma"]));

    let mut client = server.client();
    let ask = json!({"model": "peer/gemma", "messages": [{"role": "user", "content": "The capital of France is"}],
                     "max_tokens": 8, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}});
    let r = client.v1_chat(&key, &ask);
    assert_eq!(r.status, 200, "{}", r.body);
    let (text, chunks) = streamed_text(&r.body);
    assert!(!text.trim().is_empty());
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 8, "{usage}");
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 3);

    // The same answer as asking the peer directly (greedy decoding).
    let mut direct = peer.client();
    let d = direct.v1_chat(&peer_key,
        &json!({"model": "gemma", "messages": ask["messages"], "max_tokens": 8, "temperature": 0, "stream": true}),
    );
    assert_eq!(streamed_text(&d.body).0, text);

    // The peer recorded the call under its service account; this server under amira.
    let theirs = peer.audit_events("v1.chat.completions", Some("success"));
    assert!(theirs.iter().all(|e| e.actor_name == "svc"));
    let ours = server.audit_events("v1.chat.completions", Some("success"));
    assert_eq!(ours[0].actor_name, "amira");
    assert_eq!(details(&ours[0])["completion_tokens"], 8);

    // A peer key that is revoked becomes a clear error here.
    let keys = peer.ctl_local(&["-o", "json", "keys", "list", "--user", "svc"], None).json();
    let id = keys[0]["id"].as_i64().unwrap().to_string();
    assert!(peer.ctl_local(&["keys", "revoke", &id], None).ok);
    let r = client.v1_chat(
        &key,
        &json!({"model": "peer/gemma", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
    );
    assert_eq!((r.status, r.error_code()), (502, "upstream_auth_failed".into()), "{}", r.body);
}

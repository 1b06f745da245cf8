//! The /v1 API as real clients use it: the official `openai` Python SDK (PyPI, installed by
//! `.ci/peers` into a venv) lists models, chats with and without streaming (usage included),
//! meets a missing model, a bad request and a revoked key, against the real gemma model. Each
//! call is recorded under the key's owner.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{GEMMA_FILE, Server, test_model, venv_python};
use serde_json::Value;

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
#[cfg_attr(not(peer_python), ignore = "needs the test venv: run .ci/peers")]
fn the_official_openai_sdk_works_against_ayush() {
    let gemma = test_model(GEMMA_FILE);
    let python = venv_python("openai", "tests/openai/requirements.txt");
    let server = Server::start();
    server.create_user("amira", "user", "amira password 1");
    assert!(server.ctl_local(&["models", "import", gemma.to_str().unwrap(), "--name", "gemma"], None).ok);
    let minilm = test_model("all-MiniLM-L6-v2/model.safetensors");
    let minilm = minilm.parent().unwrap().to_str().unwrap().to_string();
    let out = server.ctl_local(&["-o", "json", "models", "import", &minilm, "--name", "minilm"], None);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        (out.json()["purpose"].as_str(), out.json()["dimensions"].as_u64()),
        (Some("embedding"), Some(384))
    );
    let key = server.key_signed_in("amira", "amira password 1");
    let revoked = server.key_signed_in("amira", "amira password 1");
    let keys = server.ctl_local(&["-o", "json", "keys", "list", "--user", "amira"], None).json();
    let old = keys.as_array().unwrap().iter().find(|k| revoked.starts_with(k["prefix"].as_str().unwrap()));
    let revoked_id = old.expect("the second key is listed")["id"].as_i64().unwrap().to_string();
    assert!(server.ctl_local(&["keys", "revoke", &revoked_id], None).ok);

    let out = std::process::Command::new(python)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openai/client.py"))
        .env("AYUSH_BASE_URL", format!("{}/v1", server.url))
        .env("AYUSH_KEY", &key)
        .env("AYUSH_REVOKED_KEY", &revoked)
        .env("AYUSH_MODEL", "gemma")
        .env("AYUSH_EMBED_MODEL", "minilm")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{seen:#}");

    assert_eq!(seen["models"], serde_json::json!(["gemma", "minilm"]));

    let e = &seen["embeddings"];
    assert_eq!(
        (e["object"].as_str(), e["count"].as_i64(), e["dims"].as_i64()),
        (Some("list"), Some(2), Some(384))
    );
    assert_eq!(e["indexes"], serde_json::json!([0, 1]));
    assert!((e["cosine"].as_f64().unwrap() - 0.666).abs() < 0.005, "{e}");
    assert_eq!(e["float_matches_base64"], true);
    assert_eq!(e["usage"]["prompt_tokens"], e["usage"]["total_tokens"]);
    assert!(e["usage"]["prompt_tokens"].as_i64().unwrap() > 10);
    assert_eq!(
        (seen["embed_chat_model"]["status"].as_i64(), seen["embed_chat_model"]["param"].as_str()),
        (Some(400), Some("model"))
    );
    let embedded = server.audit_events("v1.embeddings", Some("success"));
    assert_eq!(embedded.len(), 2);
    assert!(embedded.iter().all(|e| e.actor_name == "amira" && e.target_id.as_deref() == Some("minilm")));
    let plain = &seen["plain"];
    assert_eq!(
        (plain["object"].as_str(), plain["role"].as_str()),
        (Some("chat.completion"), Some("assistant"))
    );
    assert!(!plain["content"].as_str().unwrap().is_empty());
    assert!(matches!(plain["finish"].as_str(), Some("stop" | "length")));
    let u = &plain["usage"];
    assert!(u["prompt_tokens"].as_i64().unwrap() > 5 && u["completion_tokens"].as_i64().unwrap() > 0);
    assert_eq!(
        u["total_tokens"].as_i64(),
        Some(u["prompt_tokens"].as_i64().unwrap() + u["completion_tokens"].as_i64().unwrap())
    );

    let stream = &seen["stream"];
    assert!(stream["pieces"].as_i64().unwrap() > 1, "streamed in pieces: {stream}");
    assert_eq!(stream["content"], plain["content"], "temperature 0 gives the same answer streamed or not");
    assert!(stream["usage"]["completion_tokens"].as_i64().unwrap() > 0, "stream_options.include_usage");
    assert!(stream["finish"].as_str().is_some());

    assert_eq!(seen["not_found"]["status"], 404);
    assert_eq!(seen["not_found"]["code"], "model_not_found");
    assert_eq!(seen["not_found"]["param"], "model");
    assert_eq!(
        (seen["bad_request"]["status"].as_i64(), seen["bad_request"]["param"].as_str()),
        (Some(400), Some("n"))
    );
    assert_eq!(seen["revoked"]["status"], 401);
    assert_eq!(seen["revoked"]["code"], "invalid_api_key");

    // Each call is recorded under amira, with the key it came with.
    let events = server.audit_events("v1.chat.completions", None);
    assert_eq!(events.len(), 2, "two completions");
    assert!(
        events.iter().all(|e| e.actor_name == "amira" && e.api_key_id.is_some() && e.outcome == "success")
    );
    assert!(events.iter().any(|e| e.details.contains("\"user\":\"tester\"")));
    let denied = server.audit_events("model.use", None);
    assert!(denied.is_empty(), "an unknown model is not a denial: {denied:?}");
}

//! Prices, quotas and rate limits through the real binary with a real model: `/v1` answers 429
//! in OpenAI's shape with its `x-ratelimit-*` headers, the web chat says what was used and when
//! it resets, refusals are counted, costs reach the report, and people see their own usage.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{GEMMA_FILE, Server, test_model};
use serde_json::json;

const PW: &str = "quota password 1";

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn quotas_hold_over_v1_and_the_chat_and_people_see_their_own() {
    let gemma = test_model(GEMMA_FILE);
    let server = Server::start();
    server.create_user("ana", "user", PW);
    let ctl = |args: &[&str]| {
        let out = server.ctl_local(args, None);
        assert!(out.ok, "ayushctl {}: {}", args.join(" "), out.stderr);
        out
    };
    ctl(&["models", "import", gemma.to_str().unwrap(), "--name", "gemma"]);
    ctl(&["providers", "price", "local", "gemma", "--input-per-mtok", "1000", "--output-per-mtok", "2000"]);
    ctl(&["quota", "set", "--user", "ana", "--requests-per-minute", "2", "--tokens-per-day", "1000000"]);
    let key = server.key_signed_in("ana", PW);
    let mut c = server.client();
    // A local model is the installation's own, under its product name.
    let auth = format!("Bearer {key}");
    let models = c.raw("GET", "/v1/models", &[("Authorization", auth.as_str())], "").json();
    assert_eq!(models["data"][0]["owned_by"], "Ayush", "{models}");
    let ask =
        json!({"model": "gemma", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4});

    // Within the limits: the headers say what is left, as OpenAI's do.
    let r = c.v1_chat(&key, &ask);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("1"));
    assert_eq!(r.header("x-ratelimit-limit-tokens"), Some("1000000"));
    assert!(r.header("x-ratelimit-reset-requests").unwrap().ends_with('s'));
    let tokens = r.json()["usage"]["total_tokens"].as_i64().unwrap();
    assert_eq!(r.header("x-ratelimit-remaining-tokens"), Some("1000000"), "counted before this answer");

    // The third request in a minute: 429, OpenAI's error shape, Retry-After. (Should the minute
    // turn between the two, the second is let through; ask once more.)
    let mut r = c.v1_chat(&key, &ask);
    if r.status == 200 {
        r = c.v1_chat(&key, &ask);
        if r.status == 200 {
            r = c.v1_chat(&key, &ask);
        }
    }
    assert_eq!(r.status, 429, "{}", r.body);
    let error = &r.json()["error"];
    assert_eq!(error["code"], "rate_limit_exceeded", "{error}");
    assert!(error["message"].as_str().unwrap().contains("requests this minute"), "{error}");
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));

    // A day's tokens used up: the web chat says what was used and when it resets.
    ctl(&["quota", "set", "--user", "ana", "--tokens-per-day", "1"]);
    assert_eq!(c.login("ana", PW).status, 200);
    let id = c.send_json("POST", "/api/conversations", &json!({})).json()["id"].as_i64().unwrap();
    let r = c.send_json("POST", &format!("/api/conversations/{id}/messages"), &json!({"content": "Hello"}));
    assert_eq!(r.status, 429, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("tokens for today") && message.contains("resets at"), "{message}");
    assert_eq!(r.json()["error"]["code"], "quota.exceeded");
    // /v1 says the same with OpenAI's words; a month's allowance is insufficient_quota.
    ctl(&["quota", "set", "--user", "ana", "--tokens-per-month", "1"]);
    let r = c.v1_chat(&key, &ask);
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_str()),
        (429, Some("insufficient_quota")),
        "{}",
        r.body
    );

    // People see their own usage and what is left.
    let mine = c.get("/api/me/usage").json();
    assert!(mine["pools"]["local"]["tokens_today"].as_i64().unwrap() >= tokens, "{mine}");
    assert!(mine["cost_this_month"].as_f64().unwrap() > 0.0, "priced at 1000 a million tokens: {mine}");
    assert_eq!(mine["allowances"][0]["limit"], "tokens_per_month", "{mine}");
    let page = c.get("/account");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Tokens this month") && page.body.contains("Your usage"), "{}", page.body);

    // The admin's report: the answers with their cost, and each refusal counted.
    let report = ctl(&["-o", "json", "usage", "report", "--by", "user"]).json();
    let ana = report.as_array().unwrap().iter().find(|l| l["key"] == "ana").unwrap().clone();
    assert!(ana["refused"].as_i64().unwrap() >= 3, "{ana}");
    assert!(ana["cost"].as_f64().unwrap() > 0.0, "{ana}");
    let quotas = ctl(&["-o", "json", "quota", "list"]).json();
    assert_eq!(quotas[0]["tokens_per_month"], 1, "the last set replaced the others: {quotas}");
    assert_eq!(quotas[0]["tokens_per_day"], serde_json::Value::Null);
    assert_eq!(server.audit_events("quota.set", None).len(), 3);
    assert_eq!(server.audit_events("price.set", None).len(), 1);
    ctl(&["quota", "remove", "--user", "ana"]);
    assert_eq!(c.v1_chat(&key, &ask).status, 200, "no quota: no limit");
}

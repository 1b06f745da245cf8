//! The audit log's figures: what recording its event adds to a chat request's storage
//! transaction (p50/p99), how fast a 1,000,000-event chain verifies, and how long exporting
//! 100,000 events takes. SQLite in a temporary directory, as the appliance runs by default.
//!
//!     cargo bench -p ayush-server --bench audit [-- VERIFY_EVENTS]

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first failure

use ayush_server::audit::anchor::Anchor;
use ayush_server::audit::query::{self, Filter, Format};
use ayush_server::audit::verify::{self, Witnesses};
use ayush_server::audit::{self, Actor, Chain, Event, Keys, Outcome, content};
use ayush_server::auth::{Role, groups, users};
use ayush_server::chat::store::{self as chats, Reply};
use ayush_server::config::DatabaseConfig;
use ayush_server::store::{Conn, Store};
use ayush_server::usage;
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: i64 = 1_795_651_200;
const ROUNDS: usize = 2000;
const EXPORT_EVENTS: i64 = 100_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// The chat turn's final transaction (turn.rs `relay`): the reply, and optionally its event.
fn store_turn(c: &mut Conn, user: i64, conversation: i64, i: usize, audit: Option<Option<&Keys>>) {
    let actor = Actor {
        user_id: Some(user),
        name: "amira".into(),
        method: Some("session".into()),
        ip: Some("10.1.2.3".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0".into()),
        ..Default::default()
    };
    let answer = "Paris is the capital of France. It has been since the 10th century.";
    c.transaction(|c| {
        let reply = Reply {
            content: answer,
            model: "qwen",
            prompt_tokens: 31,
            completion_tokens: 18,
            latency_ms: 240,
            ttft_ms: Some(90),
            finish_reason: "stop",
            error: None,
        };
        let id = chats::add_reply(c, T0 + i as i64, conversation, &reply)?;
        let mut used = usage::Record::new(T0 + i as i64, &actor, "chat", "qwen");
        (used.prompt_tokens, used.completion_tokens, used.duration_ms) = (31, 18, 240);
        usage::record(c, &used)?;
        if let Some(keys) = audit {
            let mut details = serde_json::json!({
                "model": "qwen", "message_id": id, "prompt_tokens": 31, "completion_tokens": 18,
                "finish_reason": "stop", "error": null,
            });
            if let Some(keys) = keys
                && content::captures(&["legal-review".to_string()], &groups::of_user(c, user)?)
            {
                let captured = content::Captured {
                    question: "What is the capital of France?".into(),
                    answer: answer.into(),
                };
                details["content"] =
                    content::seal(keys, &content::Binding::Conversation(conversation), &captured).unwrap();
            }
            let event = Event::new(&actor, "chat.message", Outcome::Success)
                .target("conversation", conversation)
                .details(details);
            audit::record(c, T0 + i as i64, &event)?;
        }
        Ok::<_, ayush_server::error::AppError>(())
    })
    .unwrap();
}

fn overhead(store: &Store, keys: &Keys) {
    let admin = Actor { name: "bench".into(), ..Default::default() };
    let (user, conversation) = store
        .run_blocking(|c| {
            let new = users::NewUser::person("amira", Role::User, None);
            let user = users::create(c, T0, &admin, &new)?;
            groups::create(c, T0, &admin, "legal-review", "")?;
            groups::add_member(c, T0, &admin, "legal-review", "amira")?;
            let conversation = chats::create(c, T0, user.id, "bench", "qwen", "")?;
            Ok((user.id, conversation.id))
        })
        .unwrap();
    let mut plain = Vec::with_capacity(ROUNDS);
    let mut audited = Vec::with_capacity(ROUNDS);
    let mut captured = Vec::with_capacity(ROUNDS);
    store
        .run_blocking(|c| {
            // Warm up, then interleave the three so drift hits them alike.
            for i in 0..200 {
                store_turn(c, user, conversation, i, Some(None));
            }
            for i in 0..ROUNDS {
                for (out, audit) in
                    [(&mut plain, None), (&mut audited, Some(None)), (&mut captured, Some(Some(keys)))]
                {
                    let t = Instant::now();
                    store_turn(c, user, conversation, i, audit);
                    out.push(t.elapsed());
                }
            }
            Ok(())
        })
        .unwrap();
    for v in [&mut plain, &mut audited, &mut captured] {
        v.sort();
    }
    println!("\n## Audit overhead on a chat request's storage transaction ({ROUNDS} rounds, SQLite WAL)\n");
    println!("| transaction | p50 | p99 | added p50 | added p99 |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let base = (percentile(&plain, 0.5), percentile(&plain, 0.99));
    for (name, v) in [
        ("reply only", &plain),
        ("reply + audit event", &audited),
        ("reply + event with captured content", &captured),
    ] {
        let (p50, p99) = (percentile(v, 0.5), percentile(v, 0.99));
        println!(
            "| {name} | {} | {} | {} | {} |",
            micros(p50),
            micros(p99),
            micros(p50.saturating_sub(base.0)),
            micros(p99.saturating_sub(base.1))
        );
    }
}

fn main() {
    let verify_events: i64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::load_or_create(&dir.path().join("secrets")).unwrap();
    let chain = Arc::new(Chain::new(&keys, true));
    let store = Store::open(&DatabaseConfig::default(), dir.path(), chain).unwrap();

    overhead(&store, &keys);

    // Grow the log to `verify_events` events, a thousand to a transaction.
    let (have, _) = store.run_blocking(|c| Ok(audit::chain::head(c)?)).unwrap();
    let started = Instant::now();
    let actor = Actor {
        user_id: Some(7),
        name: "load".into(),
        method: Some("api_token".into()),
        api_key_id: Some(3),
        ip: Some("10.9.8.7".into()),
        ..Default::default()
    };
    store
        .run_blocking(|c| {
            let mut seq = have;
            while seq < verify_events {
                c.transaction(|c| {
                    for _ in 0..1000.min(verify_events - seq) {
                        seq += 1;
                        let event = Event::new(&actor, "user.update", Outcome::Success)
                            .target("user", format!("user{}", seq % 5000))
                            .details(serde_json::json!({"display_name": format!("Person {seq}"), "disabled": false}));
                        audit::record(c, T0 + seq / 10, &event)?;
                    }
                    Ok::<_, ayush_server::error::AppError>(())
                })?;
            }
            Ok(())
        })
        .unwrap();
    let fill = started.elapsed();
    let written = verify_events - have;
    println!("\n## A {verify_events}-event log\n");
    println!(
        "- written: {written} events in {:.1} s ({:.0} events/s, 1,000 per transaction)",
        fill.as_secs_f64(),
        written as f64 / fill.as_secs_f64()
    );

    let anchor = Anchor::new(dir.path().join("audit"));
    store
        .run_blocking(|c| audit::anchor::checkpoint(c, &keys, &anchor, T0 + verify_events, "manual"))
        .unwrap();
    let witnesses = Witnesses { public_key: keys.public_key(), anchor: Some(&anchor), from: None };
    let started = Instant::now();
    let report = store.run_blocking(|c| verify::verify(c, &witnesses, T0)).unwrap();
    let took = started.elapsed();
    assert!(report.ok, "{}", report.summary());
    println!(
        "- verified: {} events in {:.2} s = {:.0} events/s",
        report.events,
        took.as_secs_f64(),
        report.events as f64 / took.as_secs_f64()
    );

    // Export the first 100,000 events (the filter selects them all), as the API streams them.
    let checked = Filter::default().check().unwrap();
    for format in [Format::Csv, Format::Jsonl] {
        let started = Instant::now();
        let mut bytes = 0usize;
        store
            .run_blocking(|c| {
                query::export(c, &checked, format, EXPORT_EVENTS, |chunk| {
                    bytes += chunk.len();
                    true
                })
            })
            .unwrap();
        let took = started.elapsed();
        println!(
            "- export of {EXPORT_EVENTS} events as {format:?}: {:.2} s ({:.1} MB)",
            took.as_secs_f64(),
            bytes as f64 / 1e6
        );
    }
}

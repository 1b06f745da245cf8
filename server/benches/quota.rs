//! What the quota check costs, step by step, on SQLite in a temporary directory as the
//! appliance runs by default: one `quotas::check` (and the free of its generation slot) per
//! round, for someone no quota holds for and for quotas of each kind of limit, p50 and p99.
//! The proxy benchmark (`bench/proxy.sh`) measures the same through HTTP; this one says where
//! the time goes.
//!
//!     cargo bench -p ayush-server --bench quota

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first failure

use ayush_server::audit::{Actor, Chain, Keys};
use ayush_server::auth::{Role, groups, users};
use ayush_server::config::DatabaseConfig;
use ayush_server::store::Store;
use ayush_server::usage::quotas::{self, SetQuota};
use ayush_server::usage::{self, Record};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: i64 = 1_795_651_200;
const ROUNDS: usize = 5000;

fn micros(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e6
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::load_or_create(&dir.path().join("secrets")).unwrap();
    let store =
        Store::open(&DatabaseConfig::default(), dir.path(), Arc::new(Chain::new(&keys, true))).unwrap();
    let actor = Actor { name: "bench".into(), ..Default::default() };
    let limits: [(&str, serde_json::Value); 6] = [
        ("no quota", serde_json::json!(null)),
        (
            "tokens a day and a month",
            serde_json::json!({"tokens_per_day": 1_000_000_000, "tokens_per_month": 1_000_000_000}),
        ),
        ("requests a minute", serde_json::json!({"requests_per_minute": 1_000_000_000})),
        ("answers at once", serde_json::json!({"concurrent": 1000})),
        ("spending a month", serde_json::json!({"spend_per_month": "1000000"})),
        (
            "all of them",
            serde_json::json!({"tokens_per_day": 1_000_000_000, "tokens_per_month": 1_000_000_000,
                "requests_per_minute": 1_000_000_000, "concurrent": 1000, "spend_per_month": "1000000"}),
        ),
    ];
    println!("the quota check per request, {ROUNDS} rounds each (µs)");
    println!("{:<28} {:>8} {:>8} {:>12}", "quota", "p50", "p99", "added p50");
    let mut baseline = None;
    for (i, (name, quota)) in limits.iter().enumerate() {
        let user = format!("u{i}");
        let id = store
            .run_blocking(|c| {
                let new = users::NewUser::person(&user, Role::User, Some("$argon2id$x"));
                let u = users::create(c, T0, &actor, &new)?;
                groups::create(c, T0, &actor, &format!("g{i}"), "")?;
                groups::add_member(c, T0, &actor, &format!("g{i}"), &user)?;
                if !quota.is_null() {
                    let mut set: SetQuota = serde_json::from_value(quota.clone()).unwrap();
                    set.group = Some(format!("g{i}"));
                    quotas::set(c, T0, &actor, set)?;
                }
                // A month of answers behind them, local and remote.
                for day in 0..30 {
                    for model in ["qwen", "openai/gpt-4o"] {
                        let r = Record {
                            user_id: Some(u.id),
                            prompt_tokens: 100,
                            completion_tokens: 50,
                            ..Record::new(T0 + day * 86_400, &actor, "chat", model)
                        };
                        usage::record(c, &r)?;
                    }
                }
                Ok(u.id)
            })
            .unwrap();
        let now = T0 + 29 * 86_400 + 3600;
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let started = Instant::now();
            store
                .run_blocking(|c| {
                    let checked = quotas::check(c, now, id, "remote", false)?.expect("under every limit");
                    if let Some(slot) = checked.slot {
                        quotas::free(c, slot)?;
                    }
                    Ok(())
                })
                .unwrap();
            times.push(started.elapsed());
        }
        times.sort();
        let p50 = micros(&times, 0.5);
        let base = *baseline.get_or_insert(p50);
        println!("{name:<28} {p50:>8.1} {:>8.1} {:>12.1}", micros(&times, 0.99), p50 - base);
    }
}

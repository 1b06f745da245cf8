//! What Ayush adds between a client and a remote provider. A fake OpenAI-compatible upstream on
//! loopback streams 16 chunks per answer as fast as it can; the same client asks it directly
//! and through the release `ayush` binary (API key check, access rules, the provider's
//! connection pool, SSE relay, usage and an audit event per call), at 1, 64 and 512 concurrent
//! streams. Each request's time runs from sending it to the end of its stream. Then 64 streams
//! run through Ayush for 60 s while its resident memory is sampled.
//!
//! Run with `bench/proxy.sh` (it builds the release binaries this needs first).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use ayush_tests::Server;
use ayush_tests::upstream::{KEY, Upstream};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Http = Client<HttpConnector, Full<Bytes>>;

#[derive(Clone)]
struct Target {
    url: String,
    key: String,
    model: String,
}

async fn one(client: &Http, t: &Target) -> Duration {
    let body = format!(
        r#"{{"model":"{}","stream":true,"messages":[{{"role":"user","content":"hi"}}],"max_tokens":16}}"#,
        t.model
    );
    let req = hyper::Request::post(&t.url)
        .header("authorization", format!("Bearer {}", t.key))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let started = Instant::now();
    let resp = client.request(req).await.expect("request");
    if resp.status() != 200 {
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        panic!("{status}: {}", String::from_utf8_lossy(&body));
    }
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let elapsed = started.elapsed();
    assert!(bytes.ends_with(b"data: [DONE]\n\n"), "{}", String::from_utf8_lossy(&bytes));
    elapsed
}

/// `streams` clients, each asking one request after another, until `total` have been made.
async fn run(client: &Http, target: Arc<Target>, streams: usize, total: usize) -> Vec<Duration> {
    let per = total.div_ceil(streams);
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (client, target) = (client.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::with_capacity(per);
            for _ in 0..per {
                times.push(one(&client, &target).await);
            }
            times
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let upstream = Upstream::start(1);
    // One person's many streams: the bound on each person's answers at once (2 by default)
    // would turn all but two away.
    let server = Server::start_with_config("[chat]\nmax_concurrent_per_user = 1000\n");
    server.create_user("root", "admin", "root password 1");
    server.create_user("bench", "user", "bench password 1");
    let admin = server.token_for("root");
    let key = server.key_signed_in("bench", "bench password 1");
    let out = server.ctl_remote(
        &admin,
        &[
            "providers",
            "add",
            "fast",
            "--kind",
            "openai",
            "--base-url",
            &format!("{}/v1", upstream.url()),
            "--model",
            "count-16",
            "--api-key-stdin",
        ],
        Some(KEY),
    );
    assert!(out.ok, "{}", out.stderr);

    let direct = Arc::new(Target {
        url: format!("{}/v1/chat/completions", upstream.url()),
        key: KEY.into(),
        model: "count-16".into(),
    });
    let proxied = Arc::new(Target {
        url: format!("{}/v1/chat/completions", server.url),
        key,
        model: "fast/count-16".into(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let client: Http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1024).build_http();

    println!("added latency, time from request to the end of a 16-chunk stream (ms)");
    println!(
        "{:>8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "streams", "requests", "direct p50", "ayush p50", "added p50", "direct p99", "ayush p99", "added p99"
    );
    for (streams, total) in [(1usize, 2000usize), (64, 6400), (512, 10240)] {
        runtime.block_on(async {
            // Warm both paths' connection pools at this concurrency.
            run(&client, direct.clone(), streams, streams).await;
            run(&client, proxied.clone(), streams, streams).await;
            let d = run(&client, direct.clone(), streams, total).await;
            let p = run(&client, proxied.clone(), streams, total).await;
            println!(
                "{:>8} {:>8} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
                streams,
                d.len(),
                pct(&d, 0.5),
                pct(&p, 0.5),
                pct(&p, 0.5) - pct(&d, 0.5),
                pct(&d, 0.99),
                pct(&p, 0.99),
                pct(&p, 0.99) - pct(&d, 0.99),
            );
        });
    }

    // The quota check: the same requests by someone a quota holds for (a day's and a month's
    // tokens, requests per minute and concurrent answers, none of them reached: every count is
    // read and written in the database) against someone none holds for, interleaved.
    server.create_user("limited", "user", "bench password 1");
    let limited_key = server.key_signed_in("limited", "bench password 1");
    let out = server.ctl_remote(
        &admin,
        &[
            "quota",
            "set",
            "--user",
            "limited",
            "--tokens-per-day",
            "1000000000",
            "--tokens-per-month",
            "1000000000",
            "--requests-per-minute",
            "1000000",
            "--concurrent",
            "1000",
        ],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    let limited = Arc::new(Target { key: limited_key, ..Target::clone(&proxied) });
    println!("\nthe quota check: 1 stream, no quota against every limit counted (ms)");
    println!("{:>8} {:>12} {:>12} {:>10}", "requests", "no quota p50", "quota p50", "added p50");
    runtime.block_on(async {
        run(&client, proxied.clone(), 1, 50).await;
        run(&client, limited.clone(), 1, 50).await;
        let (mut free, mut held) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            free.extend(run(&client, proxied.clone(), 1, 200).await);
            held.extend(run(&client, limited.clone(), 1, 200).await);
        }
        free.sort();
        held.sort();
        println!(
            "{:>8} {:>12.3} {:>12.3} {:>10.3}",
            free.len(),
            pct(&free, 0.5),
            pct(&held, 0.5),
            pct(&held, 0.5) - pct(&free, 0.5)
        );
    });

    let secs: u64 = std::env::var("AYUSH_BENCH_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    println!("\nmemory: 64 streams through Ayush for {secs} s (resident set of the ayush process)");
    let pid = server.pid();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let samples = runtime.block_on(async {
        let mut samples = vec![(0u64, rss_kib(pid), 0usize)];
        let mut done = 0usize;
        let mut next = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            done += run(&client, proxied.clone(), 64, 640).await.len();
            if Instant::now() >= next {
                samples.push((samples.len() as u64 * 10, rss_kib(pid), done));
                next += Duration::from_secs(10);
            }
        }
        samples.push((secs, rss_kib(pid), done));
        samples
    });
    for (t, kib, done) in &samples {
        println!("  t={t:>3}s  rss={:>7.1} MiB  requests so far={done}", *kib as f64 / 1024.0);
    }
    let first = samples[1.min(samples.len() - 1)].1 as f64;
    let last = samples[samples.len() - 1].1 as f64;
    println!("  growth after the first 10 s: {:+.1} MiB", (last - first) / 1024.0);
}

//! The figures `/metrics` shows, in Prometheus's text exposition: requests by route and status,
//! latency histograms by route, the database pool's use, the audit log's write failures and
//! each model engine's load. Routes are the matched patterns (`/api/admin/users/{username}`),
//! so the label set stays bounded whatever clients send. The HTTP side (counting requests,
//! answering the scrape) is `http::metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, secs: f64) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry(route.to_string()).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    pub fn render(&self, pool: crate::store::PoolStats) -> String {
        let mut out = String::new();
        out.push_str("# HELP ayush_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE ayush_http_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "ayush_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        out.push_str("# HELP ayush_http_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE ayush_http_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (route, h) in m.iter() {
                let route = escape(route);
                for (bound, n) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(
                        out,
                        "ayush_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "ayush_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ =
                    writeln!(out, "ayush_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
                let _ = writeln!(
                    out,
                    "ayush_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        for (name, help, value) in [
            ("ayush_db_pool_connections", "Open database connections.", pool.size),
            ("ayush_db_pool_idle_connections", "Idle database connections.", pool.idle),
            ("ayush_db_pool_max_connections", "Configured pool size.", pool.max),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }

    /// Each loaded chat model's engine: its load, its KV caches and how often they spare a
    /// prompt's reading, and the time to first token.
    pub fn render_engines(out: &mut String, engines: &[ayush_models::Engine]) {
        use std::sync::atomic::Ordering::Relaxed;
        let gauges: [EngineFigure; 4] = [
            ("ayush_engine_running", "Answers being generated.", |s| s.running.load(Relaxed) as u64),
            ("ayush_engine_waiting", "Requests waiting for a place.", |s| s.waiting.load(Relaxed) as u64),
            ("ayush_engine_kv_cache_bytes", "KV cache memory held.", |s| s.kv_bytes.load(Relaxed) as u64),
            ("ayush_engine_kept_caches", "KV caches kept for the next turn.", |s| {
                s.kept_caches.load(Relaxed) as u64
            }),
        ];
        let counters: [EngineFigure; 6] = [
            ("ayush_engine_requests_total", "Requests started.", |s| s.requests.load(Relaxed)),
            ("ayush_engine_prompt_tokens_total", "Prompt tokens of started requests.", |s| {
                s.prompt_tokens.load(Relaxed)
            }),
            ("ayush_engine_cached_prompt_tokens_total", "Prompt tokens read from a kept KV cache.", |s| {
                s.cached_prompt_tokens.load(Relaxed)
            }),
            ("ayush_engine_cache_hits_total", "Requests that started from a kept KV cache.", |s| {
                s.cache_hits.load(Relaxed)
            }),
            ("ayush_engine_completion_tokens_total", "Tokens generated.", |s| {
                s.completion_tokens.load(Relaxed)
            }),
            ("ayush_engine_steps_total", "Passes over the weights.", |s| s.steps.load(Relaxed)),
        ];
        for (kind, set) in [("gauge", &gauges[..]), ("counter", &counters[..])] {
            for (name, help, read) in set {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for e in engines {
                    let _ = writeln!(out, "{name}{{model=\"{}\"}} {}", escape(&e.name), read(e.stats()));
                }
            }
        }
        let name = "ayush_engine_time_to_first_token_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Submission to first token, queue included.\n# TYPE {name} histogram"
        );
        for e in engines {
            let (model, h) = (escape(&e.name), &e.stats().first_token);
            for (bound, n) in ayush_models::engine::FIRST_TOKEN_BUCKETS.iter().zip(&h.buckets) {
                let _ =
                    writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"{bound}\"}} {}", n.load(Relaxed));
            }
            let count = h.count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"+Inf\"}} {count}");
            let _ =
                writeln!(out, "{name}_sum{{model=\"{model}\"}} {}", h.sum_micros.load(Relaxed) as f64 / 1e6);
            let _ = writeln!(out, "{name}_count{{model=\"{model}\"}} {count}");
        }
    }

    /// Audit events that could not be written (only without `audit.fail_closed`).
    pub fn render_audit(out: &mut String, write_failures: u64) {
        let name = "ayush_audit_write_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Audit events that could not be written since start-up.\n# TYPE {name} counter\n{name} {write_failures}"
        );
    }
}

/// A figure read off an engine: its metric name, help text, and how to read it.
type EngineFigure = (&'static str, &'static str, fn(&ayush_models::engine::Stats) -> u64);

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

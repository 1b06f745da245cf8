//! Company knowledge's figures: ingestion throughput (extraction, chunking, storing, indexing)
//! in MB/s of text, the index's size, and search latency p50/p99 by words (BM25) and hybrid,
//! on a generated corpus of 100,000+ passages and on a real one (an HTML documentation tree:
//! `bench/knowledge.sh` unpacks PostgreSQL's from its Debian package). SQLite in a temporary
//! directory, as the appliance runs by default; one user reading 3 of 5 collections, so the
//! access filter is in every query.
//!
//!     cargo bench -p ayush-server --bench knowledge [-- PASSAGES]
//!     AYUSH_BENCH_HTML=DIR       also ingest and search this HTML tree
//!     AYUSH_BENCH_EMBEDDER=DIR   an embedding model export (all-MiniLM-L6-v2) for hybrid search
//!                                and the embedding throughput

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops at the first failure

use ayush_server::audit::{Actor, Chain, Keys};
use ayush_server::auth::{Role, groups, users};
use ayush_server::config::{DatabaseConfig, KnowledgeConfig};
use ayush_server::knowledge::collections::{self, Caller, NewCollection};
use ayush_server::knowledge::{self, Knowledge, SharedKnowledge, documents, feed, vectors};
use ayush_server::store::Store;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: i64 = 1_795_651_200;
const QUERIES: usize = 400;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let m = e.metadata().unwrap();
                    if m.is_dir() { dir_size(&e.path()) } else { m.len() }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// A vocabulary with a Zipf-like use: a few words everywhere, most rare, as in real text.
struct Words {
    words: Vec<String>,
}

impl Words {
    fn new(rng: &mut StdRng, n: usize) -> Words {
        const SYL: [&str; 24] = [
            "ka", "lo", "mi", "re", "tan", "vo", "sel", "pri", "dor", "en", "ul", "cas", "ber", "ti", "gon",
            "fa", "nu", "sha", "ret", "ol", "min", "ax", "por", "ys",
        ];
        let words = (0..n)
            .map(|_| (0..rng.gen_range(2..5)).map(|_| SYL[rng.gen_range(0..SYL.len())]).collect())
            .collect();
        Words { words }
    }

    fn pick(&self, rng: &mut StdRng) -> &str {
        // Rank r is drawn with probability about 1/r.
        let r = (self.words.len() as f64).powf(rng.r#gen::<f64>()) as usize - 1;
        &self.words[r.min(self.words.len() - 1)]
    }

    fn sentence(&self, rng: &mut StdRng) -> String {
        let n = rng.gen_range(8..20);
        let mut s: String = (0..n).map(|_| self.pick(rng)).collect::<Vec<_>>().join(" ");
        s.push('.');
        s
    }
}

/// A Markdown document of `sections` sections of a few paragraphs each.
fn document(words: &Words, rng: &mut StdRng, sections: usize) -> String {
    let mut d = format!("# {}\n\n", words.sentence(rng));
    for _ in 0..sections {
        d.push_str(&format!("## {}\n\n", words.pick(rng)));
        for _ in 0..rng.gen_range(2..5) {
            let para: Vec<String> = (0..rng.gen_range(3..7)).map(|_| words.sentence(rng)).collect();
            d.push_str(&para.join(" "));
            d.push_str("\n\n");
        }
    }
    d
}

struct Setup {
    store: Store,
    knowledge: SharedKnowledge,
    reader: Caller,
    admin: Caller,
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _entered = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::load_or_create(&dir.path().join("secrets")).unwrap();
    let store =
        Store::open(&DatabaseConfig::default(), dir.path(), Arc::new(Chain::new(&keys, true))).unwrap();
    let actor = Actor { name: "bench".into(), ..Default::default() };
    let (admin, reader) = store
        .run_blocking(|c| {
            let new = |username, role| users::NewUser::person(username, role, Some("$argon2id$x"));
            let admin = Caller::user(&users::create(c, T0, &actor, &new("root", Role::Admin))?);
            let reader = Caller::user(&users::create(c, T0, &actor, &new("reader", Role::User))?);
            groups::create(c, T0, &actor, "readers", "")?;
            groups::add_member(c, T0, &actor, "readers", "reader")?;
            for i in 0..5 {
                let readers = if i < 3 { vec!["readers".to_string()] } else { Vec::new() };
                let new = NewCollection { name: format!("c{i}"), readers, ..Default::default() };
                collections::create(c, T0, &actor, admin, new)?;
            }
            Ok((admin, reader))
        })
        .unwrap();
    let knowledge =
        Arc::new(Knowledge::open(&KnowledgeConfig::default(), dir.path(), store.clone()).unwrap());
    drop(_entered);
    Setup { store, knowledge, reader, admin, dir, rt }
}

/// Ingests (source, bytes) pairs as a job worker does, then waits for the index; returns the
/// text extracted (bytes), the time to extract, chunk and store, and the time until indexed.
fn ingest(s: &Setup, files: Vec<(String, Vec<u8>, usize)>) -> (u64, u64, Duration, Duration) {
    let actor = Actor { name: "bench".into(), ..Default::default() };
    let rows: Vec<_> = (0..5)
        .map(|i| s.store.run_blocking(|c| collections::managed(c, s.admin, &format!("c{i}"))).unwrap())
        .collect();
    let started = Instant::now();
    let (mut text, mut passages) = (0u64, 0u64);
    for (source, bytes, collection) in files {
        let prepared = match documents::prepare(&source, bytes) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("  skipped {source}: {}", e.message);
                continue;
            }
        };
        text += prepared.chunks.iter().map(|c| c.text.len() as u64).sum::<u64>();
        passages += prepared.chunks.len() as u64;
        s.store.run_blocking(|c| documents::store(c, T0, &actor, &rows[collection], &prepared)).unwrap();
    }
    let stored = started.elapsed();
    let head = s.store.run_blocking(feed::head).unwrap();
    s.knowledge.index.notify();
    assert!(s.knowledge.index.wait_for(head, Duration::from_secs(3600)));
    (text, passages, stored, started.elapsed() - stored)
}

fn latencies(s: &Setup, queries: &[String], limit: usize) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(queries.len());
    let mut hits = 0;
    for q in queries {
        let started = Instant::now();
        let found =
            s.rt.block_on(knowledge::search(&s.store, &s.knowledge, s.reader, q, Vec::new(), limit, None))
                .unwrap();
        times.push(started.elapsed());
        hits += found.len();
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), hits)
}

fn report_ingest(what: &str, s: &Setup, text: u64, passages: u64, stored: Duration, indexed: Duration) {
    let total = stored + indexed;
    println!("{what}: {passages} passages, {} of text", mib(text));
    println!(
        "  extract + chunk + store: {:.1} s ({:.2} MB/s); index catch-up: {:.1} s; end to end {:.2} MB/s of text",
        stored.as_secs_f64(),
        text as f64 / 1e6 / stored.as_secs_f64(),
        indexed.as_secs_f64(),
        text as f64 / 1e6 / total.as_secs_f64()
    );
    println!(
        "  index on disk: {}; database: {}",
        mib(dir_size(&s.dir.path().join("index"))),
        mib(std::fs::metadata(s.dir.path().join("ayush.db")).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(s.dir.path().join("ayush.db-wal")).map(|m| m.len()).unwrap_or(0))
    );
}

fn main() {
    let target: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let mut rng = StdRng::seed_from_u64(6);
    let words = Words::new(&mut rng, 50_000);

    // --- Generated corpus.
    let s = setup();
    let mut files = Vec::new();
    let mut estimated = 0;
    let mut i = 0;
    while estimated < target {
        let sections = rng.gen_range(10..40);
        let doc = document(&words, &mut rng, sections);
        estimated += doc.len() / 900;
        files.push((format!("doc{i:06}.md"), doc.into_bytes(), i % 5));
        i += 1;
    }
    let (text, passages, stored, indexed) = ingest(&s, files);
    assert!(passages as usize >= target * 9 / 10, "the corpus has {passages} passages");
    report_ingest(&format!("generated corpus ({i} Markdown documents)"), &s, text, passages, stored, indexed);
    let queries: Vec<String> = (0..QUERIES)
        .map(|n| match n % 4 {
            0 => words.pick(&mut rng).to_string(),
            1 => format!("{} {}", words.pick(&mut rng), words.pick(&mut rng)),
            2 => format!("{} {} {}", words.pick(&mut rng), words.pick(&mut rng), words.pick(&mut rng)),
            _ => format!("\"{} {}\"", words.pick(&mut rng), words.pick(&mut rng)),
        })
        .collect();
    let (p50, p99, hits) = latencies(&s, &queries, 10);
    println!(
        "  BM25 search, 10 hits with snippets, reading 3 of 5 collections: p50 {} p99 {} ({} queries, {hits} hits)",
        ms(p50),
        ms(p99),
        queries.len()
    );

    // Hybrid: every passage given a vector (random unit vectors: the scan's cost does not depend
    // on their values), the query embedded by the real model when one is given.
    let embedder = std::env::var("AYUSH_BENCH_EMBEDDER").ok().map(PathBuf::from);
    if let Some(dir) = embedder.as_ref() {
        let model = ayush_models::Embedder::load(dir).unwrap();
        let engine = ayush_models::EmbedEngine::start("bench", model, 16).unwrap();
        let dims = 384;
        let started = Instant::now();
        let mut after = 0;
        loop {
            let batch = s.store.run_blocking(|c| documents::passages_after(c, after, 5000)).unwrap();
            let Some(last) = batch.last().map(|p| p.chunk_id) else { break };
            let pairs: Vec<(i64, Vec<f32>)> = batch
                .iter()
                .map(|p| {
                    let mut v: Vec<f32> = (0..dims).map(|_| rng.r#gen::<f32>() - 0.5).collect();
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.iter_mut().for_each(|x| *x /= n);
                    (p.chunk_id, v)
                })
                .collect();
            s.store.run_blocking(|c| vectors::keep(c, "bench", &pairs)).unwrap();
            after = last;
        }
        s.knowledge.vectors.refresh(&s.store, "bench", dims).unwrap();
        println!(
            "  {} vectors stored and loaded in {:.1} s ({} in memory)",
            s.knowledge.vectors.status().embedded,
            started.elapsed().as_secs_f64(),
            mib((s.knowledge.vectors.status().embedded * dims * 4) as u64)
        );
        s.knowledge.embed_queries_with(Some(engine.clone()));
        let (p50, p99, hits) = latencies(&s, &queries, 10);
        println!(
            "  hybrid search (query embedded by all-MiniLM-L6-v2, exact scan, RRF): p50 {} p99 {} ({hits} hits)",
            ms(p50),
            ms(p99)
        );
        s.knowledge.embed_queries_with(None);
        // Where that time goes: embedding the query, and the scan.
        let (mut embed, mut scan) = (Vec::new(), Vec::new());
        let readable = [1i64, 2, 3];
        for q in &queries {
            let started = Instant::now();
            let (mut v, _) = s.rt.block_on(engine.embed(vec![q.clone()])).unwrap();
            embed.push(started.elapsed());
            let started = Instant::now();
            s.knowledge.vectors.search(&v.swap_remove(0), &readable, 160);
            scan.push(started.elapsed());
        }
        embed.sort();
        scan.sort();
        println!(
            "    of which embedding the query: p50 {} p99 {}; scanning the vectors: p50 {} p99 {}",
            ms(percentile(&embed, 0.5)),
            ms(percentile(&embed, 0.99)),
            ms(percentile(&scan, 0.5)),
            ms(percentile(&scan, 0.99))
        );

        // Embedding throughput on the corpus's own passages, one engine thread.
        let sample: Vec<String> = s
            .store
            .run_blocking(|c| documents::passages_after(c, 0, 256))
            .unwrap()
            .into_iter()
            .map(|p| p.body)
            .collect();
        let started = Instant::now();
        let mut tokens = 0;
        for batch in sample.chunks(32) {
            tokens += s.rt.block_on(engine.embed(batch.to_vec())).unwrap().1;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  embedding passages: {:.0} tokens/s through the engine, every core ({} passages, {:.0} tokens each)",
            tokens as f64 / secs,
            sample.len(),
            tokens as f64 / sample.len() as f64
        );
    }
    drop(s);

    // --- A real documentation tree.
    if let Ok(root) = std::env::var("AYUSH_BENCH_HTML") {
        let s = setup();
        let mut files = Vec::new();
        let mut raw = 0u64;
        let mut stack = vec![PathBuf::from(&root)];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "html" || x == "htm") {
                    let bytes = std::fs::read(&p).unwrap();
                    raw += bytes.len() as u64;
                    let source = p.strip_prefix(&root).unwrap().to_string_lossy().to_string();
                    files.push((source, bytes, files.len() % 5));
                }
            }
        }
        let n = files.len();
        let (text, passages, stored, indexed) = ingest(&s, files);
        report_ingest(
            &format!("{root}: {n} HTML files, {} as files", mib(raw)),
            &s,
            text,
            passages,
            stored,
            indexed,
        );
        println!(
            "  ({:.2} MB/s of HTML files, end to end)",
            raw as f64 / 1e6 / (stored + indexed).as_secs_f64()
        );
        let queries: Vec<String> = [
            "vacuum freeze",
            "create index concurrently",
            "\"write-ahead log\"",
            "logical replication slot",
            "jsonb containment operator",
            "pg_stat_activity",
            "row level security policy",
            "autovacuum tuning",
            "foreign data wrapper",
            "transaction isolation serializable",
            "window functions",
            "pg_dump custom format",
            "trigger before insert",
            "partitioned table",
            "GIN index",
            "collation",
            "listen notify",
            "checkpoint",
            "shared_buffers",
            "explain analyze",
        ]
        .iter()
        .cycle()
        .take(QUERIES)
        .map(|q| q.to_string())
        .collect();
        let (p50, p99, hits) = latencies(&s, &queries, 10);
        println!(
            "  BM25 search: p50 {} p99 {} ({hits} hits for {} queries)",
            ms(p50),
            ms(p99),
            queries.len()
        );
    }
}

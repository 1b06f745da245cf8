//! The full-text index over passages (tantivy, `data_dir/index/`), one per replica and never the
//! source of truth. One writer thread owns the `IndexWriter`: it follows the database's change
//! feed, commits with the last seq it applied as the commit's payload, and so recovers by
//! itself after a crash (tantivy commits are atomic; what was not committed is replayed from
//! the feed). An index that cannot be opened, or was built with another schema or language, is
//! rebuilt from the database.
//!
//! Access control is part of every query: the caller passes the collections the user may read,
//! and the index answers only passages whose collection is among them.

use super::documents::{self, Passage};
use super::feed;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, ConstScoreQuery, Occur, QueryParser, TermSetQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, STORED, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc};

/// Bumped whenever the schema or the analyzer changes: an index of another version is rebuilt.
const SCHEMA_VERSION: u32 = 2;

/// Lucene's English stop words, and the words people start questions with ("How do I …?",
/// "What should I …?"): in a question they say nothing about the answer, yet they matched
/// passages everywhere (bench/retrieval).
const ENGLISH_STOP_WORDS: [&str; 55] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no",
    "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to",
    "was", "will", "with", "what", "which", "who", "whom", "why", "how", "when", "where", "do", "does",
    "did", "can", "could", "should", "would", "i", "me", "my", "we", "our", "you", "your",
];
const ANALYZER: &str = "ayush";
/// How often the writer looks at the feed when nobody told it of a change (other replicas,
/// `ayushctl --local`).
const POLL: Duration = Duration::from_secs(2);
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
const FEED_BATCH: i64 = 256;
const REBUILD_BATCH: i64 = 2000;

/// The language of the stemmer and stop words (`knowledge.language`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Language(tantivy::tokenizer::Language);

impl Language {
    pub const ENGLISH: Language = Language(tantivy::tokenizer::Language::English);
    /// In the order of `ALL` below.
    pub const NAMES: [&'static str; 18] = crate::config::KNOWLEDGE_LANGUAGES;

    pub fn parse(name: &str) -> Option<Language> {
        use tantivy::tokenizer::Language as L;
        const ALL: [L; 18] = [
            L::Arabic,
            L::Danish,
            L::Dutch,
            L::English,
            L::Finnish,
            L::French,
            L::German,
            L::Greek,
            L::Hungarian,
            L::Italian,
            L::Norwegian,
            L::Portuguese,
            L::Romanian,
            L::Russian,
            L::Spanish,
            L::Swedish,
            L::Tamil,
            L::Turkish,
        ];
        let i = Self::NAMES.iter().position(|n| *n == name)?;
        Some(Language(ALL[i]))
    }

    fn name(self) -> &'static str {
        let all = Self::NAMES.iter().filter_map(|n| Self::parse(n));
        let i = all.clone().position(|l| l == self).unwrap_or(3);
        Self::NAMES[i]
    }

    fn analyzer(self) -> TextAnalyzer {
        let builder = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .dynamic();
        let builder = match self.0 {
            tantivy::tokenizer::Language::English => builder
                .filter_dynamic(StopWordFilter::remove(ENGLISH_STOP_WORDS.iter().map(|w| w.to_string()))),
            other => match StopWordFilter::new(other) {
                Some(stop) => builder.filter_dynamic(stop),
                None => builder,
            },
        };
        builder.filter_dynamic(Stemmer::new(self.0)).build()
    }
}

#[derive(Clone, Copy)]
struct Fields {
    chunk: Field,
    document: Field,
    collection: Field,
    title: Field,
    source: Field,
    heading: Field,
    page: Field,
    body: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let key = NumericOptions::default().set_indexed().set_stored();
    let fields = Fields {
        chunk: b.add_u64_field("chunk", STORED),
        document: b.add_u64_field("document", key.clone()),
        collection: b.add_u64_field("collection", key),
        title: b.add_text_field("title", text.clone()),
        source: b.add_text_field("source", STORED),
        heading: b.add_text_field("heading", text.clone()),
        page: b.add_u64_field("page", STORED),
        body: b.add_text_field("body", text),
    };
    (b.build(), fields)
}

/// What a commit carries: how far along the feed the index is, and what built it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Payload {
    version: u32,
    language: String,
    seq: i64,
}

/// How the index stands, for `/api/admin/index` and the CLI.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexStatus {
    /// The last change-feed seq the index holds.
    pub applied_seq: i64,
    /// Passages in the index.
    pub passages: u64,
    pub rebuilding: bool,
    /// The last error the writer met, until it next succeeds.
    pub last_error: Option<String>,
}

/// A passage the index found.
#[derive(Debug, Clone, Serialize)]
pub struct IndexHit {
    pub chunk_id: i64,
    pub document_id: i64,
    pub collection_id: i64,
    pub title: String,
    pub source: String,
    pub heading: String,
    pub page: Option<u32>,
    pub text: String,
    /// The best-matching stretch of the passage, and the byte ranges in it that matched.
    pub snippet: String,
    pub highlights: Vec<[usize; 2]>,
    pub score: f32,
}

enum Msg {
    Wake,
    Rebuild(mpsc::Sender<Result<u64, String>>),
}

struct Shared {
    status: Mutex<IndexStatus>,
    advanced: Condvar,
}

pub struct SearchIndex {
    reader: IndexReader,
    fields: Fields,
    parser: QueryParser,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    shared: Arc<Shared>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(
        "the index at {0} is in use by another Ayush process (stop the server, or use ayushctl without --local)"
    )]
    Busy(String),
    #[error("cannot open the index at {0}: {1}")]
    Open(String, String),
}

impl SearchIndex {
    /// Opens the index in `dir` (creating or rebuilding it as needed) and starts its writer,
    /// which catches up with the database's feed at once.
    pub fn open(dir: &Path, language: Language, store: Store) -> Result<SearchIndex, IndexError> {
        let (schema, fields) = schema();
        let open_err = |e: &dyn std::fmt::Display| IndexError::Open(dir.display().to_string(), e.to_string());
        std::fs::create_dir_all(dir).map_err(|e| open_err(&e))?;
        let wanted = |p: &Payload| p.version == SCHEMA_VERSION && p.language == language.name();
        let (index, fresh) = match open_existing(dir, &schema) {
            Ok(Some((index, payload))) if wanted(&payload) => (index, false),
            Ok(Some((_, payload))) => {
                tracing::info!(?payload, "the index was built by another version or language; rebuilding it");
                (recreate(dir, &schema)?, true)
            }
            Ok(None) => (recreate(dir, &schema)?, true),
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "the index cannot be opened; rebuilding it from the database");
                (recreate(dir, &schema)?, true)
            }
        };
        index.tokenizers().register(ANALYZER, language.analyzer());
        let writer: IndexWriter = index.writer_with_num_threads(1, WRITER_MEMORY).map_err(|e| match e {
            tantivy::TantivyError::LockFailure(..) => IndexError::Busy(dir.display().to_string()),
            e => open_err(&e),
        })?;
        let reader: IndexReader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| open_err(&e))?;
        let seq = if fresh { 0 } else { payload_of(&index).map_or(0, |p| p.seq) };
        let shared = Arc::new(Shared {
            status: Mutex::new(IndexStatus {
                applied_seq: seq,
                passages: reader.searcher().num_docs(),
                ..IndexStatus::default()
            }),
            advanced: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel();
        let mut parser = QueryParser::for_index(&index, vec![fields.body, fields.title, fields.heading]);
        // Chosen on bench/retrieval's question sets (title 0–2.5 × heading 0.25–3): a heading
        // path is shared by every passage under it, so a strong heading boost lifted whole
        // sections of long manuals over the passage that answers; 0.5 ranked best. The title
        // is shared by all of a document's passages too, but with one passage per document in
        // the results it ranks documents, and the body picks the passage.
        parser.set_field_boost(fields.title, 1.5);
        parser.set_field_boost(fields.heading, 0.5);
        let worker =
            Writer { writer, reader: reader.clone(), fields, store, shared: shared.clone(), language, seq };
        let thread = std::thread::Builder::new()
            .name("ayush-index".into())
            .spawn(move || worker.run(rx, fresh))
            .map_err(|e| open_err(&e))?;
        Ok(SearchIndex {
            reader,
            fields,
            parser,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            shared,
        })
    }

    fn send(&self, msg: Msg) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok())
    }

    /// Tells the writer the feed has news, so it need not wait for its next look.
    pub fn notify(&self) {
        self.send(Msg::Wake);
    }

    /// Waits until the index holds `seq` (or `timeout` passes); whether it does.
    pub fn wait_for(&self, seq: i64, timeout: Duration) -> bool {
        self.notify();
        let deadline = Instant::now() + timeout;
        let mut status = self.shared.status.lock().unwrap_or_else(|p| p.into_inner());
        while status.applied_seq < seq {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            status = self.shared.advanced.wait_timeout(status, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }

    /// Empties the index and builds it again from the database; the passages indexed.
    /// Searches go on meanwhile and see the new index once it is committed.
    pub fn rebuild(&self) -> Result<u64, String> {
        let (tx, rx) = mpsc::channel();
        if !self.send(Msg::Rebuild(tx)) {
            return Err("the index writer has stopped".into());
        }
        rx.recv().map_err(|_| "the index writer stopped during the rebuild".to_string())?
    }

    pub fn status(&self) -> IndexStatus {
        self.shared.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The best `limit` passages for `query` among those of `collections`. The query is read
    /// leniently (words, "phrases", -exclusions, field:term); a syntax error never fails it.
    /// The best `limit` passages for `query` in `collections`, with at most `per_document` of
    /// any one document (0: no cap).
    pub fn search(
        &self,
        query: &str,
        collections: &[i64],
        limit: usize,
        per_document: usize,
    ) -> Result<Vec<IndexHit>, String> {
        if collections.is_empty() || query.trim().is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let (matching, _errors) = self.parser.parse_query_lenient(query);
        let readable = TermSetQuery::new(
            collections.iter().map(|&id| Term::from_field_u64(self.fields.collection, id as u64)),
        );
        let query = BooleanQuery::new(vec![
            (Occur::Must, matching.box_clone()),
            (Occur::Must, Box::new(ConstScoreQuery::new(Box::new(readable), 0.0))),
        ]);
        let searcher = self.reader.searcher();
        // Deeper than `limit` when documents are capped, so the cap leaves `limit` to show.
        let depth = if per_document == 0 { limit } else { limit.saturating_mul(4).min(limit + 400) };
        let top = searcher
            .search(&query, &TopDocs::with_limit(depth).order_by_score())
            .map_err(|e| e.to_string())?;
        let mut snippets =
            SnippetGenerator::create(&searcher, &*matching, self.fields.body).map_err(|e| e.to_string())?;
        snippets.set_max_num_chars(280);
        let f = self.fields;
        let mut hits = Vec::with_capacity(limit.min(top.len()));
        let mut cap = DocumentCap::new(per_document);
        for (score, address) in top {
            if hits.len() == limit {
                break;
            }
            let doc: TantivyDocument = searcher.doc(address).map_err(|e| e.to_string())?;
            let u = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0);
            if !cap.admit(u(f.document) as i64) {
                continue;
            }
            let s =
                |field| doc.get_first(field).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let text = s(f.body);
            let snippet = snippets.snippet(&text);
            let (snippet, highlights) = if snippet.fragment().is_empty() {
                (lead(&text, 280), Vec::new())
            } else {
                (
                    snippet.fragment().to_string(),
                    snippet.highlighted().iter().map(|r| [r.start, r.end]).collect(),
                )
            };
            hits.push(IndexHit {
                chunk_id: u(f.chunk) as i64,
                document_id: u(f.document) as i64,
                collection_id: u(f.collection) as i64,
                title: s(f.title),
                source: s(f.source),
                heading: s(f.heading),
                page: Some(u(f.page) as u32).filter(|p| *p > 0),
                text,
                snippet,
                highlights,
                score,
            });
        }
        Ok(hits)
    }
}

impl Drop for SearchIndex {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// The start of a passage, cut at a word, for hits that matched only the title or heading.
pub(crate) fn lead(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let cut = text[..cut].rfind(' ').unwrap_or(cut);
    format!("{}…", &text[..cut])
}

/// How the index in `dir` stands as its last commit left it, read without taking it over:
/// for `ayushctl --local` beside a running server. Whether a rebuild is running, and the
/// writer's last error, only the process that holds the index knows; here they read as none.
pub fn read_status(dir: &Path) -> Result<IndexStatus, String> {
    if !dir.join("meta.json").exists() {
        return Ok(IndexStatus::default());
    }
    let index =
        Index::open_in_dir(dir).map_err(|e| format!("reading the index in {}: {e}", dir.display()))?;
    let reader: IndexReader =
        index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(|e| e.to_string())?;
    Ok(IndexStatus {
        applied_seq: payload_of(&index).map_or(0, |p| p.seq),
        passages: reader.searcher().num_docs(),
        ..IndexStatus::default()
    })
}

fn open_existing(dir: &Path, schema: &Schema) -> Result<Option<(Index, Payload)>, String> {
    if !dir.join("meta.json").exists() {
        return Ok(None);
    }
    let index = Index::open_in_dir(dir).map_err(|e| e.to_string())?;
    if index.schema() != *schema {
        return Ok(Some((index, Payload { version: 0, language: String::new(), seq: 0 })));
    }
    // Every segment must be readable, or searches would fail later instead of now.
    index.searchable_segment_metas().map_err(|e| e.to_string())?;
    let payload = payload_of(&index).unwrap_or(Payload { version: 0, language: String::new(), seq: 0 });
    Ok(Some((index, payload)))
}

fn payload_of(index: &Index) -> Option<Payload> {
    let metas = index.load_metas().ok()?;
    serde_json::from_str(metas.payload.as_deref()?).ok()
}

/// At most `per` passages of any one document among results (0: no cap), admitted in rank
/// order: the index applies it before making snippets, hybrid ranking after fusion.
pub struct DocumentCap {
    per: usize,
    seen: std::collections::HashMap<i64, usize>,
}

impl DocumentCap {
    pub fn new(per: usize) -> DocumentCap {
        DocumentCap { per, seen: std::collections::HashMap::new() }
    }

    /// Whether the next passage of `document` still fits.
    pub fn admit(&mut self, document: i64) -> bool {
        let n = self.seen.entry(document).or_default();
        *n += 1;
        self.per == 0 || *n <= self.per
    }
}

/// Whether a running Ayush process (a server, or `ayushctl --local` rebuilding) holds the
/// index in `dir`: opening a writer is what tells, as it fails there with a lock error.
pub fn in_use(dir: &Path) -> bool {
    dir.join(".tantivy-writer.lock").exists()
        && Index::open_in_dir(dir).is_ok_and(|index| {
            matches!(
                index.writer::<TantivyDocument>(WRITER_MEMORY),
                Err(tantivy::TantivyError::LockFailure(..))
            )
        })
}

/// Removes whatever is in `dir` and makes an empty index there.
fn recreate(dir: &Path, schema: &Schema) -> Result<Index, IndexError> {
    let err = |e: &dyn std::fmt::Display| IndexError::Open(dir.display().to_string(), e.to_string());
    if in_use(dir) {
        // Another process holds the writer: taking its directory away would corrupt its index.
        return Err(IndexError::Busy(dir.display().to_string()));
    }
    std::fs::remove_dir_all(dir).map_err(|e| err(&e))?;
    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    Index::create_in_dir(dir, schema.clone()).map_err(|e| err(&e))
}

/// The writer thread's state.
struct Writer {
    writer: IndexWriter,
    reader: IndexReader,
    fields: Fields,
    store: Store,
    shared: Arc<Shared>,
    language: Language,
    seq: i64,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>, fresh: bool) {
        if fresh && let Err(e) = self.rebuild() {
            self.failed(e);
        }
        loop {
            let msg = match rx.recv_timeout(POLL) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if let Some(Msg::Rebuild(reply)) = msg {
                let result = self.rebuild();
                if let Err(e) = &result {
                    self.failed(e.clone());
                }
                let _ = reply.send(result);
                continue;
            }
            if let Err(e) = self.catch_up() {
                self.failed(e);
            }
        }
        if let Err(e) = self.writer.wait_merging_threads() {
            tracing::warn!(error = %e, "index merges did not finish");
        }
    }

    fn failed(&mut self, error: String) {
        tracing::warn!(%error, "the full-text index could not follow the database; it retries");
        if let Err(e) = self.writer.rollback() {
            tracing::warn!(error = %e, "index rollback failed");
        }
        self.shared.status.lock().unwrap_or_else(|p| p.into_inner()).last_error = Some(error);
    }

    fn passage(&self, p: Passage) -> TantivyDocument {
        let f = self.fields;
        doc!(
            f.chunk => p.chunk_id as u64,
            f.document => p.document_id as u64,
            f.collection => p.collection_id as u64,
            f.title => p.title,
            f.source => p.source,
            f.heading => p.heading,
            f.page => p.page.unwrap_or(0).max(0) as u64,
            f.body => p.body,
        )
    }

    /// Applies the feed after the last seq committed, a batch per commit.
    fn catch_up(&mut self) -> Result<(), String> {
        loop {
            let seq = self.seq;
            let changes =
                self.store.run_blocking(|c| feed::after(c, seq, FEED_BATCH)).map_err(|e| e.to_string())?;
            let Some(last) = changes.last().map(|c| c.seq) else { return Ok(()) };
            let mut docs: Vec<i64> = Vec::new();
            for change in &changes {
                match change.document_id {
                    Some(d) => docs.push(d),
                    None => {
                        let term = Term::from_field_u64(self.fields.collection, change.collection_id as u64);
                        self.writer.delete_term(term);
                    }
                }
            }
            docs.sort_unstable();
            docs.dedup();
            for d in docs {
                self.writer.delete_term(Term::from_field_u64(self.fields.document, d as u64));
                // What the database holds now: nothing if the document was removed since.
                let passages =
                    self.store.run_blocking(|c| documents::passages_of(c, d)).map_err(|e| e.to_string())?;
                for p in passages {
                    self.writer.add_document(self.passage(p)).map_err(|e| e.to_string())?;
                }
            }
            self.commit(last)?;
        }
    }

    fn rebuild(&mut self) -> Result<u64, String> {
        self.shared.status.lock().unwrap_or_else(|p| p.into_inner()).rebuilding = true;
        let result = self.rebuild_inner();
        self.shared.status.lock().unwrap_or_else(|p| p.into_inner()).rebuilding = false;
        result
    }

    fn rebuild_inner(&mut self) -> Result<u64, String> {
        let started = Instant::now();
        // Changes after `head` are applied by the next catch-up; applying one twice is harmless,
        // as each replaces its document's passages with what the database holds.
        let head = self.store.run_blocking(feed::head).map_err(|e| e.to_string())?;
        self.writer.delete_all_documents().map_err(|e| e.to_string())?;
        let (mut after, mut count) = (0, 0u64);
        loop {
            let batch = self
                .store
                .run_blocking(|c| documents::passages_after(c, after, REBUILD_BATCH))
                .map_err(|e| e.to_string())?;
            let Some(last) = batch.last().map(|p| p.chunk_id) else { break };
            for p in batch {
                self.writer.add_document(self.passage(p)).map_err(|e| e.to_string())?;
                count += 1;
            }
            after = last;
        }
        self.commit(head)?;
        tracing::info!(
            passages = count,
            seconds = started.elapsed().as_secs_f32(),
            "full-text index rebuilt"
        );
        Ok(count)
    }

    fn commit(&mut self, seq: i64) -> Result<(), String> {
        let payload = Payload { version: SCHEMA_VERSION, language: self.language.name().into(), seq };
        let payload = serde_json::to_string(&payload).map_err(|e| e.to_string())?;
        let mut prepared = self.writer.prepare_commit().map_err(|e| e.to_string())?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(|e| e.to_string())?;
        self.reader.reload().map_err(|e| e.to_string())?;
        self.seq = seq;
        let mut status = self.shared.status.lock().unwrap_or_else(|p| p.into_inner());
        status.applied_seq = seq;
        status.passages = self.reader.searcher().num_docs();
        status.last_error = None;
        self.shared.advanced.notify_all();
        Ok(())
    }
}

/// The directory the index lives in.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

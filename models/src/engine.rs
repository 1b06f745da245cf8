//! The engine: one dedicated thread per loaded model that serves many requests at once. Each
//! step reads one token for every sequence being decoded and a piece of each new prompt, all
//! in one pass over the weights (continuous batching, with prompts read in pieces so a long
//! one does not freeze everyone else's stream).
//!
//! Every request gets a KV cache. When it ends its cache is kept, least recently used evicted
//! first, within `kv_cache_bytes`; the next request that continues the same conversation picks
//! it up and reads only what is new, and one that merely shares its beginning (a system prompt)
//! gets a copy of that part. Requests beyond `max_sequences` wait in a bounded queue, told
//! their place in line, and are taken by fairness (whoever has the fewest sequences running
//! first); a full queue is refused at once, so the server can answer 429 instead of piling
//! up. Dropping the handle (the client went away) or calling `cancel` ends a request at the
//! next step and frees its place.

use crate::ModelError;
use crate::kv::KvCache;
use crate::model::{Completion, FinishReason, LoadedModel, Sequence};
use crate::sampling::GenerateParams;
use crate::template::ChatMessage;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

#[derive(Debug)]
pub enum Event {
    /// Waiting for a place: `position` requests are ahead, counting this one (1 = next).
    Queued {
        position: usize,
    },
    /// Text as it is generated.
    Token(String),
    /// The end, with the whole reply and its counts.
    Done(Completion),
    Failed(ModelError),
}

/// How much an engine takes on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sequences generated together.
    pub max_sequences: usize,
    /// Requests that may wait beyond those.
    pub queue: usize,
    /// Memory for every KV cache, running and kept.
    pub kv_cache_bytes: usize,
    /// Prompt tokens read per step, shared out among the prompts being read.
    pub prefill_chunk: usize,
}

impl Limits {
    /// Defaults for this machine: a few sequences per core (decoding is bound by memory
    /// traffic, which a batch shares), an eighth of memory for KV caches up to 4 GiB.
    pub fn for_machine() -> Limits {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Limits {
            max_sequences: (cores * 4).clamp(4, 64),
            queue: 32,
            kv_cache_bytes: total_memory().map_or(1 << 30, |m| (m / 8).min(4 << 30)) as usize,
            prefill_chunk: 256,
        }
    }
}

/// Total memory in bytes, from `/proc/meminfo` where there is one.
fn total_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What an engine is doing, for metrics: read at any time from any thread.
#[derive(Debug, Default)]
pub struct Stats {
    pub running: AtomicUsize,
    pub waiting: AtomicUsize,
    /// KV cache memory held, running and kept.
    pub kv_bytes: AtomicUsize,
    /// Caches kept for conversations that are not being answered.
    pub kept_caches: AtomicUsize,
    pub requests: AtomicU64,
    pub prompt_tokens: AtomicU64,
    /// Prompt tokens read from a kept cache instead of computed.
    pub cached_prompt_tokens: AtomicU64,
    /// Requests that started from a kept cache.
    pub cache_hits: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub steps: AtomicU64,
    /// Time from submission to the first token, queue included.
    pub first_token: Histogram,
    /// Requests admitted or waiting, for the bound on the queue.
    admitted: AtomicUsize,
}

/// Upper bounds, in seconds, of the time-to-first-token buckets.
pub const FIRST_TOKEN_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0];

/// A cumulative histogram over `FIRST_TOKEN_BUCKETS`, as Prometheus reads one.
#[derive(Debug, Default)]
pub struct Histogram {
    pub buckets: [AtomicU64; FIRST_TOKEN_BUCKETS.len()],
    pub count: AtomicU64,
    pub sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, secs: f64) {
        for (bound, n) in FIRST_TOKEN_BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }
}

/// A request's place in the engine: given back when the request ends, however it ends.
struct Ticket(Arc<Stats>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Job {
    owner: i64,
    messages: Vec<ChatMessage>,
    params: GenerateParams,
    events: UnboundedSender<Event>,
    cancel: Arc<AtomicBool>,
    told: Option<usize>,
    submitted: Instant,
    _ticket: Ticket,
}

impl Job {
    fn abandoned(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.events.is_closed()
    }
}

#[derive(Clone)]
pub struct Engine {
    jobs: Sender<Job>,
    pub name: String,
    limits: Limits,
    stats: Arc<Stats>,
}

/// A request in flight. Dropping it cancels the request.
pub struct Handle {
    pub events: UnboundedReceiver<Event>,
    cancel: Arc<AtomicBool>,
}

impl Handle {
    /// A handle and the two ends its producer holds: where events go, and the cancel flag.
    pub(crate) fn channel() -> (Handle, UnboundedSender<Event>, Arc<AtomicBool>) {
        let (events, rx) = unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        (Handle { events: rx, cancel: cancel.clone() }, events, cancel)
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Engine {
    /// Starts the engine thread for `model`.
    pub fn start(name: &str, model: LoadedModel, limits: Limits) -> Result<Engine, ModelError> {
        let mut limits = limits;
        limits.max_sequences = limits.max_sequences.clamp(1, model.max_batch());
        if limits.prefill_chunk == 0 {
            return Err(ModelError::BadRequest(
                "the prompt piece per step must be at least one token".into(),
            ));
        }
        let (jobs, rx) = channel::<Job>();
        let stats = Arc::new(Stats::default());
        let scheduler = Scheduler {
            model,
            limits,
            stats: stats.clone(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            kept: Vec::new(),
        };
        std::thread::Builder::new()
            .name(format!("engine-{name}"))
            .spawn(move || scheduler.run(rx))
            .map_err(|e| ModelError::Load(format!("cannot start the engine thread: {e}")))?;
        Ok(Engine { jobs, name: name.to_string(), limits, stats })
    }

    /// Queues a chat for `owner` (whose requests are weighed against others' for fairness);
    /// `Busy` when every place and the queue are taken.
    pub fn submit(
        &self,
        owner: i64,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> Result<Handle, ModelError> {
        params.validate().map_err(ModelError::BadRequest)?;
        let places = self.limits.max_sequences + self.limits.queue;
        if self.stats.admitted.fetch_add(1, Ordering::Relaxed) >= places {
            self.stats.admitted.fetch_sub(1, Ordering::Relaxed);
            return Err(ModelError::Busy);
        }
        let ticket = Ticket(self.stats.clone());
        let (handle, events, cancel) = Handle::channel();
        let job = Job {
            owner,
            messages,
            params,
            events,
            cancel,
            told: None,
            submitted: Instant::now(),
            _ticket: ticket,
        };
        self.jobs.send(job).map_err(|_| ModelError::Inference("the engine has stopped".into()))?;
        Ok(handle)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// A request being answered.
struct Running {
    job: Job,
    seq: Sequence,
    /// KV cache memory set aside for the whole request.
    reserved: usize,
}

/// A cache kept after its request ended.
struct Kept {
    cache: KvCache,
    used: Instant,
}

struct Scheduler {
    model: LoadedModel,
    limits: Limits,
    stats: Arc<Stats>,
    waiting: VecDeque<Job>,
    running: Vec<Running>,
    kept: Vec<Kept>,
}

/// Shortest shared beginning worth copying out of another conversation's cache.
const MIN_SHARED_COPY: usize = 16;

impl Scheduler {
    fn run(mut self, jobs: Receiver<Job>) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                self.publish();
                // Idle: sleep until a request comes; ends when every `Engine` clone is dropped.
                match jobs.recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(_) => return,
                }
            }
            self.waiting.extend(jobs.try_iter());
            self.drop_cancelled();
            self.admit();
            self.tell_places();
            self.publish();
            if !self.running.is_empty() {
                self.step();
            }
        }
    }

    fn drop_cancelled(&mut self) {
        self.waiting.retain(|j| !j.abandoned());
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].job.abandoned() {
                let r = self.running.remove(i);
                self.end(r, FinishReason::Cancelled);
            } else {
                i += 1;
            }
        }
    }

    fn reserved(&self) -> usize {
        self.running.iter().map(|r| r.reserved).sum()
    }

    fn kept_bytes(&self) -> usize {
        self.kept.iter().map(|k| k.cache.bytes()).sum()
    }

    /// Starts waiting requests while there are places and memory, fairest first.
    fn admit(&mut self) {
        while self.running.len() < self.limits.max_sequences {
            // Whoever has the fewest sequences running goes next; the earliest among equals.
            let running_of = |owner: i64| self.running.iter().filter(|r| r.job.owner == owner).count();
            let Some(i) = (0..self.waiting.len()).min_by_key(|&i| (running_of(self.waiting[i].owner), i))
            else {
                return;
            };
            let Some(job) = self.waiting.remove(i) else { return };
            let prompt = match self.model.prompt_tokens(&job.messages) {
                Ok(p) => p,
                Err(e) => {
                    let _ = job.events.send(Event::Failed(e));
                    continue;
                }
            };
            let window = self.model.info.context_length;
            let per_token = self.model.kv_bytes_per_token();
            let reserve = (prompt.len() + job.params.max_tokens).min(window) * per_token;
            if reserve > self.limits.kv_cache_bytes {
                let _ = job.events.send(Event::Failed(ModelError::BadRequest(format!(
                    "this request needs {} MiB of KV cache; the model may use {} MiB (models.kv_cache_mib): \
                     ask for fewer tokens or send a shorter conversation",
                    reserve.div_ceil(1 << 20),
                    self.limits.kv_cache_bytes >> 20
                ))));
                continue;
            }
            if self.reserved() + reserve > self.limits.kv_cache_bytes {
                // Waits for a running request to end.
                self.waiting.insert(i, job);
                return;
            }
            let cache = self.cache_for(&prompt);
            self.evict_beyond(reserve);
            match self.model.begin(prompt, &job.params, cache) {
                Ok(seq) => {
                    let s = &self.stats;
                    s.requests.fetch_add(1, Ordering::Relaxed);
                    s.prompt_tokens.fetch_add(seq.prompt_len() as u64, Ordering::Relaxed);
                    s.cached_prompt_tokens.fetch_add(seq.reused() as u64, Ordering::Relaxed);
                    if seq.reused() > 0 {
                        s.cache_hits.fetch_add(1, Ordering::Relaxed);
                    }
                    self.running.push(Running { job, seq, reserved: reserve });
                }
                Err(e) => {
                    let _ = job.events.send(Event::Failed(e));
                }
            }
        }
    }

    /// The cache a new request starts from: a kept one it continues (its conversation's), or
    /// a copy of the longest beginning it shares with any other, or an empty one.
    fn cache_for(&mut self, prompt: &[u32]) -> KvCache {
        let best_kept = (0..self.kept.len()).max_by_key(|&k| self.kept[k].cache.shared_prefix(prompt));
        if let Some(k) = best_kept {
            let cache = &self.kept[k].cache;
            let shared = cache.shared_prefix(prompt);
            // All of it, or all but the tail the last reply added past the prompt's end.
            if shared > 0 && (shared == cache.len() || shared + 1 >= prompt.len()) {
                return self.kept.swap_remove(k).cache;
            }
        }
        let others = self.kept.iter().map(|k| &k.cache).chain(self.running.iter().map(|r| r.seq.cache()));
        match others.max_by_key(|c| c.shared_prefix(prompt)) {
            Some(c) if c.shared_prefix(prompt) >= MIN_SHARED_COPY => c.copy_prefix(c.shared_prefix(prompt)),
            _ => KvCache::default(),
        }
    }

    /// Tells each waiting request its place in line, when it changed.
    fn tell_places(&mut self) {
        for (i, job) in self.waiting.iter_mut().enumerate() {
            if job.told != Some(i + 1) {
                job.told = Some(i + 1);
                let _ = job.events.send(Event::Queued { position: i + 1 });
            }
        }
    }

    fn publish(&self) {
        let s = &self.stats;
        s.running.store(self.running.len(), Ordering::Relaxed);
        s.waiting.store(self.waiting.len(), Ordering::Relaxed);
        s.kept_caches.store(self.kept.len(), Ordering::Relaxed);
        let running: usize = self.running.iter().map(|r| r.seq.cache().bytes()).sum();
        s.kv_bytes.store(running + self.kept_bytes(), Ordering::Relaxed);
    }

    /// One pass over the weights for every running request.
    fn step(&mut self) {
        // Prompt tokens are shared out in the order requests were admitted.
        let mut budget = self.limits.prefill_chunk;
        let mut feeds = Vec::with_capacity(self.running.len());
        let mut stepped = Vec::with_capacity(self.running.len());
        for (i, r) in self.running.iter_mut().enumerate() {
            let left = r.seq.prompt_left();
            if left > 0 && budget == 0 {
                continue;
            }
            let feed = r.seq.feed(budget);
            if left > 0 {
                budget = budget.saturating_sub(feed.tokens.len());
            }
            feeds.push(feed);
            stepped.push((i, left > 0));
        }
        let result = self.model.step(&mut feeds);
        drop(feeds);
        self.stats.steps.fetch_add(1, Ordering::Relaxed);
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                // Every request in the failed step ends with the error; the others go on.
                let message = e.to_string();
                for &(i, _) in stepped.iter().rev() {
                    let r = self.running.remove(i);
                    let _ = r.job.events.send(Event::Failed(ModelError::Inference(message.clone())));
                }
                return;
            }
        };
        let mut ended = Vec::new();
        for (&(i, reading), logits) in stepped.iter().zip(logits) {
            let r = &mut self.running[i];
            if reading && r.seq.prompt_left() == 0 {
                self.stats.first_token.observe(r.job.submitted.elapsed().as_secs_f64());
            }
            let events = &r.job.events;
            let cancel = &r.job.cancel;
            let emit = |text: &str| {
                // A closed channel means nobody is listening: stop.
                if events.send(Event::Token(text.to_string())).is_err() {
                    cancel.store(true, Ordering::Relaxed);
                }
            };
            match self.model.advance(&mut r.seq, logits, emit) {
                Ok(None) => {}
                Ok(Some(finish)) => ended.push((i, Ok(finish))),
                Err(e) => ended.push((i, Err(e))),
            }
        }
        // Highest index first, so the others keep their places while removed.
        for (i, outcome) in ended.into_iter().rev() {
            let r = self.running.remove(i);
            match outcome {
                Ok(finish) => self.end(r, finish),
                Err(e) => {
                    let _ = r.job.events.send(Event::Failed(e));
                }
            }
        }
    }

    /// Sends a request its reply and keeps its cache for the conversation's next turn.
    fn end(&mut self, r: Running, finish: FinishReason) {
        let Running { job, seq, .. } = r;
        let emit = |text: &str| {
            let _ = job.events.send(Event::Token(text.to_string()));
        };
        let (done, mut cache) = self.model.finish(seq, finish, emit);
        self.stats.completion_tokens.fetch_add(done.usage.completion_tokens as u64, Ordering::Relaxed);
        let _ = job.events.send(Event::Done(done));
        if !cache.is_empty() {
            cache.shrink();
            self.kept.push(Kept { cache, used: Instant::now() });
        }
        self.evict_beyond(0);
    }

    /// Drops kept caches, least recently used first, until `more` bytes fit in the budget.
    fn evict_beyond(&mut self, more: usize) {
        while self.reserved() + self.kept_bytes() + more > self.limits.kv_cache_bytes {
            let Some(oldest) = (0..self.kept.len()).min_by_key(|&k| self.kept[k].used) else { break };
            self.kept.swap_remove(oldest);
        }
    }
}

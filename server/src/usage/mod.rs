//! Usage: one record per answer asked of a model (a web chat turn, a `/v1` call), written in the
//! same transaction as the answer's audit event, with its cost at the model's price; the day
//! counters quotas are checked against; and the reports admins read from them (by user, group,
//! model, provider or API key, over a span of time).

pub mod prices;
pub mod quotas;

use crate::audit::Actor;
use crate::catalog::Catalog;
use crate::clock::SharedClock;
use crate::config::UsageConfig;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::schema::{api_tokens, usage_counters, usage_daily, usage_hourly, usage_records};
use crate::store::{Conn, Store};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How an answer ended, as usage counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Cancelled,
    Error,
    /// Refused before a model was asked (a limit, a quota).
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Cancelled => "cancelled",
            Outcome::Error => "error",
            Outcome::Refused => "refused",
        }
    }
}

/// One answer's usage.
#[derive(Debug, Clone)]
pub struct Record {
    pub at: i64,
    pub user_id: Option<i64>,
    pub username: String,
    /// The user's groups when the answer was asked for.
    pub groups: Vec<String>,
    pub api_key_id: Option<i64>,
    /// `chat`, `chat.title`, `chat.image`, `v1.chat`, `v1.embeddings`, `v1.transcriptions`,
    /// `v1.speech` or `v1.images`.
    pub source: &'static str,
    pub model: String,
    /// `local`, or the remote provider's name.
    pub provider: String,
    /// For a speech model, the characters it was given to speak.
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Images drawn, priced per image (not kept in the record: its cost is).
    pub images: i64,
    /// Time to the first token, for streamed answers that produced one.
    pub ttft_ms: Option<i64>,
    pub duration_ms: i64,
    pub outcome: Outcome,
}

impl Record {
    /// An answer `actor` asked of `model` at `at`, with nothing counted yet; the groups are
    /// filled in where the answer is recorded.
    pub fn new(at: i64, actor: &crate::audit::Actor, source: &'static str, model: &str) -> Record {
        Record {
            at,
            user_id: actor.user_id,
            username: actor.name.clone(),
            groups: Vec::new(),
            api_key_id: actor.api_key_id,
            source,
            model: model.to_string(),
            provider: provider_of(model).to_string(),
            prompt_tokens: 0,
            completion_tokens: 0,
            images: 0,
            ttft_ms: None,
            duration_ms: 0,
            outcome: Outcome::Ok,
        }
    }
}

/// Records a call that is not a chat turn (`/v1/embeddings`, a transcription): its usage, with
/// the asker's groups as they are now, and its audit event on the model, in one transaction.
pub async fn record_call(
    store: &Store,
    now: i64,
    used: Record,
    actor: Actor,
    action: &'static str,
    outcome: crate::audit::Outcome,
    details: serde_json::Value,
) -> AppResult<()> {
    record_call_with(store, now, used, actor, action, outcome, details, |_, _| Ok(())).await
}

/// [`record_call`], with `also` done in the same transaction before the audit event is written
/// (what it stores, it may name in the event's details).
#[allow(clippy::too_many_arguments)]
pub async fn record_call_with<T: Send + 'static>(
    store: &Store,
    now: i64,
    mut used: Record,
    actor: Actor,
    action: &'static str,
    outcome: crate::audit::Outcome,
    mut details: serde_json::Value,
    also: impl FnOnce(&mut Conn, &mut serde_json::Value) -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    store
        .run(move |c| {
            c.transaction(|c| {
                if let Some(id) = used.user_id {
                    used.groups = crate::auth::groups::of_user(c, id)?;
                }
                record(c, &used)?;
                let done = also(c, &mut details)?;
                let event = crate::audit::Event::new(&actor, action, outcome)
                    .target("model", &used.model)
                    .details(details);
                crate::audit::record(c, now, &event)?;
                Ok(done)
            })
        })
        .await
}

/// Writes one record at its model's price, and adds it to the asker's day counter (a refused
/// request costs nothing and counts only in the report); callers do so inside the transaction
/// that records the answer.
pub fn record(conn: &mut Conn, r: &Record) -> AppResult<()> {
    let groups = serde_json::to_string(&r.groups).map_err(AppError::internal)?;
    let answered = r.outcome != Outcome::Refused;
    let cost = match answered {
        true => prices::of(conn, &r.model)?
            .map_or(0, |rates| rates.cost_nanos(r.prompt_tokens, r.completion_tokens, r.images)),
        false => 0,
    };
    if let Some(user_id) = r.user_id.filter(|_| answered) {
        let tokens = r.prompt_tokens + r.completion_tokens;
        conn.execute(
            diesel::insert_into(usage_counters::table)
                .values((
                    usage_counters::user_id.eq(user_id),
                    usage_counters::pool.eq(pool_of(&r.model)),
                    usage_counters::day.eq(r.at.div_euclid(86_400)),
                    usage_counters::requests.eq(1),
                    usage_counters::tokens.eq(tokens),
                    usage_counters::cost_nanos.eq(cost),
                ))
                .on_conflict((usage_counters::user_id, usage_counters::pool, usage_counters::day))
                .do_update()
                .set((
                    usage_counters::requests.eq(usage_counters::requests + 1),
                    usage_counters::tokens.eq(usage_counters::tokens + tokens),
                    usage_counters::cost_nanos.eq(usage_counters::cost_nanos + cost),
                )),
        )?;
    }
    conn.execute(diesel::insert_into(usage_records::table).values((
        usage_records::at.eq(r.at),
        usage_records::user_id.eq(r.user_id),
        usage_records::username.eq(&r.username),
        usage_records::groups.eq(groups),
        usage_records::api_key_id.eq(r.api_key_id),
        usage_records::source.eq(r.source),
        usage_records::model.eq(&r.model),
        usage_records::provider.eq(&r.provider),
        usage_records::prompt_tokens.eq(r.prompt_tokens),
        usage_records::completion_tokens.eq(r.completion_tokens),
        usage_records::ttft_ms.eq(r.ttft_ms),
        usage_records::duration_ms.eq(r.duration_ms),
        usage_records::outcome.eq(r.outcome.as_str()),
        usage_records::cost_nanos.eq(cost),
    )))?;
    Ok(())
}

/// How long the hourly rollup is kept: the dashboard draws hours for spans of two days or
/// less, and a year back is as far as anyone compares hours.
pub const HOURLY_KEEP_DAYS: i64 = 400;

/// Rolls the records of the whole UTC days older than `keep_days` up into `usage_hourly` and
/// `usage_daily` and deletes them, in one transaction (nothing when it is 0); how many records
/// went. Whole days only, so each day and hour is rolled up once. Hours older than
/// [`HOURLY_KEEP_DAYS`] go too.
pub fn prune(conn: &mut Conn, now: i64, keep_days: u64) -> AppResult<usize> {
    if keep_days == 0 {
        return Ok(0);
    }
    let cutoff = now.saturating_sub(keep_days as i64 * 86_400).div_euclid(86_400) * 86_400;
    let oldest_hour = now.saturating_sub(HOURLY_KEEP_DAYS * 86_400).div_euclid(3_600);
    conn.transaction(|c| {
        // The cutoff is a number computed here, written into the statement: the two backends
        // spell bind parameters differently.
        for (table, period, width) in [("usage_hourly", "hour", 3_600), ("usage_daily", "day", 86_400)] {
            c.execute(diesel::sql_query(format!(
                "INSERT INTO {table} ({period}, username, groups, api_key_id, model, provider, requests, \
                 prompt_tokens, completion_tokens, errors, cancelled, refused, cost_nanos, ttft_sum, \
                 ttft_count, duration_sum) \
                 SELECT at / {width}, username, groups, COALESCE(api_key_id, 0), model, provider, COUNT(*), \
                 SUM(prompt_tokens), SUM(completion_tokens), \
                 SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN outcome = 'cancelled' THEN 1 ELSE 0 END), \
                 SUM(CASE WHEN outcome = 'refused' THEN 1 ELSE 0 END), \
                 SUM(cost_nanos), SUM(COALESCE(ttft_ms, 0)), SUM(CASE WHEN ttft_ms IS NULL THEN 0 ELSE 1 END), \
                 SUM(CASE WHEN outcome = 'refused' THEN 0 ELSE duration_ms END) \
                 FROM usage_records WHERE at < {cutoff} \
                 GROUP BY at / {width}, username, groups, COALESCE(api_key_id, 0), model, provider"
            )))?;
        }
        c.execute(diesel::delete(usage_hourly::table.filter(usage_hourly::hour.lt(oldest_hour))))?;
        Ok(c.execute(diesel::delete(usage_records::table.filter(usage_records::at.lt(cutoff))))?)
    })
}

/// Where a model runs: `local`, or the provider of a `provider/model` name.
pub fn provider_of(model: &str) -> &str {
    prices::key_of(model).0
}

/// Which counters a model's answers go to, as quotas count them: `local` or `remote`.
pub fn pool_of(model: &str) -> &'static str {
    if model.contains('/') { "remote" } else { "local" }
}

/// What a report is broken down by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    #[default]
    User,
    /// Each group its members' answers count towards (an answer of someone in two groups
    /// counts in both; one of someone in none counts under `-`).
    Group,
    Model,
    Provider,
    /// The API key answers were asked with (`-`: a signed-in session, not a key).
    Key,
}

impl By {
    pub const ALL: [By; 5] = [By::User, By::Group, By::Model, By::Provider, By::Key];

    pub fn as_str(self) -> &'static str {
        match self {
            By::User => "user",
            By::Group => "group",
            By::Model => "model",
            By::Provider => "provider",
            By::Key => "key",
        }
    }
}

impl std::str::FromStr for By {
    type Err = String;
    fn from_str(s: &str) -> Result<By, String> {
        Ok(match s {
            "user" => By::User,
            "group" => By::Group,
            "model" => By::Model,
            "provider" => By::Provider,
            "key" => By::Key,
            other => {
                return Err(format!("{other:?} is not a breakdown: user, group, model, provider or key"));
            }
        })
    }
}

/// What a report covers: answers from `from` (inclusive) to `to` (exclusive), unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub from: i64,
    pub to: i64,
}

/// One line of a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Line {
    /// The user, group, model, provider or key (`#ID name`).
    pub key: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub errors: i64,
    pub cancelled: i64,
    pub refused: i64,
    /// In the installation's currency, at the prices of the answers' days.
    pub cost: f64,
    /// Time to the first token over the answers that had one.
    pub mean_ttft_ms: Option<i64>,
    pub p50_ttft_ms: Option<i64>,
    pub p95_ttft_ms: Option<i64>,
    /// Duration over the answers a model was asked for (not the refused).
    pub mean_duration_ms: Option<i64>,
    pub p50_duration_ms: Option<i64>,
    pub p95_duration_ms: Option<i64>,
}

/// Times in milliseconds, for their mean and percentiles: each one of the records, and the
/// sums of rolled-up days, which count in the mean only.
#[derive(Default)]
pub struct Times {
    each: Vec<i64>,
    rolled_sum: i64,
    rolled_count: i64,
}

impl Times {
    pub fn add(&mut self, ms: i64) {
        self.each.push(ms);
    }

    fn add_rolled(&mut self, sum: i64, count: i64) {
        self.rolled_sum += sum;
        self.rolled_count += count;
    }

    /// The mean, p50 and p95 (nearest rank, over the records not rolled up); none without a
    /// time.
    pub fn summary(&mut self) -> (Option<i64>, Option<i64>, Option<i64>) {
        let count = self.each.len() as i64 + self.rolled_count;
        let mean = (count > 0).then(|| (self.each.iter().sum::<i64>() + self.rolled_sum) / count);
        let n = self.each.len();
        if n == 0 {
            return (mean, None, None);
        }
        self.each.sort_unstable();
        let rank = |p: f64| self.each[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        (mean, Some(rank(0.50)), Some(rank(0.95)))
    }
}

#[derive(Default)]
struct Tally {
    line: Line,
    ttft: Times,
    duration: Times,
    cost_nanos: i64,
}

impl Tally {
    fn add(&mut self, row: &Row) {
        let l = &mut self.line;
        l.requests += 1;
        l.prompt_tokens += row.prompt_tokens;
        l.completion_tokens += row.completion_tokens;
        match row.outcome.as_str() {
            "error" => l.errors += 1,
            "cancelled" => l.cancelled += 1,
            "refused" => l.refused += 1,
            _ => {}
        }
        if let Some(t) = row.ttft_ms {
            self.ttft.add(t);
        }
        if row.outcome != "refused" {
            self.duration.add(row.duration_ms);
        }
        self.cost_nanos += row.cost_nanos;
    }

    fn add_rolled(&mut self, d: &Daily) {
        let l = &mut self.line;
        l.requests += d.requests;
        l.prompt_tokens += d.prompt_tokens;
        l.completion_tokens += d.completion_tokens;
        l.errors += d.errors;
        l.cancelled += d.cancelled;
        l.refused += d.refused;
        self.ttft.add_rolled(d.ttft_sum, d.ttft_count);
        self.duration.add_rolled(d.duration_sum, d.requests - d.refused);
        self.cost_nanos += d.cost_nanos;
    }

    fn finish(mut self, key: String) -> Line {
        self.line.key = key;
        (self.line.mean_ttft_ms, self.line.p50_ttft_ms, self.line.p95_ttft_ms) = self.ttft.summary();
        (self.line.mean_duration_ms, self.line.p50_duration_ms, self.line.p95_duration_ms) =
            self.duration.summary();
        self.line.cost = prices::nanos_to_f64(self.cost_nanos);
        self.line
    }
}

#[derive(Queryable)]
struct Row {
    id: i64,
    at: i64,
    username: String,
    groups: String,
    api_key_id: Option<i64>,
    model: String,
    provider: String,
    prompt_tokens: i64,
    completion_tokens: i64,
    ttft_ms: Option<i64>,
    duration_ms: i64,
    outcome: String,
    cost_nanos: i64,
}

/// How many records a report reads at a time: memory stays bounded by what is kept per line.
const PAGE: i64 = 5_000;

/// Hands each record in `span` to `each`, oldest first, a page at a time.
fn scan(conn: &mut Conn, span: Span, mut each: impl FnMut(&Row)) -> AppResult<()> {
    let mut after = 0;
    loop {
        let rows: Vec<Row> = conn.load(
            usage_records::table
                .filter(usage_records::at.ge(span.from))
                .filter(usage_records::at.lt(span.to))
                .filter(usage_records::id.gt(after))
                .order(usage_records::id.asc())
                .limit(PAGE)
                .select((
                    usage_records::id,
                    usage_records::at,
                    usage_records::username,
                    usage_records::groups,
                    usage_records::api_key_id,
                    usage_records::model,
                    usage_records::provider,
                    usage_records::prompt_tokens,
                    usage_records::completion_tokens,
                    usage_records::ttft_ms,
                    usage_records::duration_ms,
                    usage_records::outcome,
                    usage_records::cost_nanos,
                )),
        )?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = last.id;
        rows.iter().for_each(&mut each);
    }
}

/// A day's or an hour's records of one user, key and model, rolled up by `prune`.
#[derive(Queryable)]
struct Daily {
    /// The day (or hour) since the epoch.
    day: i64,
    username: String,
    groups: String,
    api_key_id: i64,
    model: String,
    provider: String,
    requests: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    errors: i64,
    cancelled: i64,
    refused: i64,
    cost_nanos: i64,
    ttft_sum: i64,
    ttft_count: i64,
    duration_sum: i64,
}

/// How finely a chart is drawn, and which rollup stands in for pruned records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grain {
    Hour,
    Day,
}

impl Grain {
    pub fn seconds(self) -> i64 {
        match self {
            Grain::Hour => 3_600,
            Grain::Day => 86_400,
        }
    }
}

/// Hands each rolled-up day (or hour) whose start is in `span` to `each`, a week at a time.
fn scan_rolled(conn: &mut Conn, span: Span, grain: Grain, mut each: impl FnMut(&Daily)) -> AppResult<()> {
    let width = grain.seconds();
    let ceil = |t: i64| t.div_euclid(width) + i64::from(t.rem_euclid(width) > 0);
    let (from, to, week) = (ceil(span.from), ceil(span.to), 7 * 86_400 / width);
    // The two rollups are alike but for the name of their first column.
    macro_rules! walk {
        ($table:ident, $period:ident) => {{
            let in_span = $table::table.filter($table::$period.ge(from)).filter($table::$period.lt(to));
            let bounds =
                in_span.select((diesel::dsl::min($table::$period), diesel::dsl::max($table::$period)));
            let found: Vec<(Option<i64>, Option<i64>)> = conn.load(bounds)?;
            let Some((Some(mut at), Some(last))) = found.into_iter().next() else { return Ok(()) };
            while at <= last {
                let rows: Vec<Daily> = conn.load(
                    in_span
                        .filter($table::$period.ge(at))
                        .filter($table::$period.lt(at + week))
                        .select($table::all_columns),
                )?;
                rows.iter().for_each(&mut each);
                at += week;
            }
        }};
    }
    match grain {
        Grain::Hour => walk!(usage_hourly, hour),
        Grain::Day => walk!(usage_daily, day),
    }
    Ok(())
}

/// What a record or a rolled-up day counts towards in a breakdown `by`.
fn keys_of(
    by: By,
    username: &str,
    groups: &str,
    api_key_id: Option<i64>,
    model: &str,
    provider: &str,
) -> Vec<String> {
    match by {
        By::User => vec![username.to_string()],
        By::Model => vec![model.to_string()],
        By::Provider => vec![provider.to_string()],
        By::Key => vec![api_key_id.filter(|id| *id > 0).map_or("-".to_string(), |id| format!("#{id}"))],
        By::Group => {
            let groups: Vec<String> = serde_json::from_str(groups).unwrap_or_default();
            if groups.is_empty() { vec!["-".to_string()] } else { groups }
        }
    }
}

/// A breakdown being tallied: one line per user, group, model, provider or key.
struct Breakdown {
    by: By,
    tallies: BTreeMap<String, Tally>,
}

impl Breakdown {
    fn new(by: By) -> Breakdown {
        Breakdown { by, tallies: BTreeMap::new() }
    }

    fn add(&mut self, row: &Row) {
        for key in keys_of(self.by, &row.username, &row.groups, row.api_key_id, &row.model, &row.provider) {
            self.tallies.entry(key).or_default().add(row);
        }
    }

    fn add_rolled(&mut self, d: &Daily) {
        for key in keys_of(self.by, &d.username, &d.groups, Some(d.api_key_id), &d.model, &d.provider) {
            self.tallies.entry(key).or_default().add_rolled(d);
        }
    }

    /// The lines, most tokens first.
    fn finish(self, conn: &mut Conn) -> AppResult<Vec<Line>> {
        let mut lines: Vec<Line> = self.tallies.into_iter().map(|(key, t)| t.finish(key)).collect();
        if self.by == By::Key {
            name_keys(conn, &mut lines)?;
        }
        lines.sort_by(|a, b| {
            (b.prompt_tokens + b.completion_tokens)
                .cmp(&(a.prompt_tokens + a.completion_tokens))
                .then(a.key.cmp(&b.key))
        });
        Ok(lines)
    }
}

/// The answers in `span`, broken down `by`, most tokens first. Days rolled up count whole, by
/// the day they fall in.
pub fn report(conn: &mut Conn, span: Span, by: By) -> AppResult<Vec<Line>> {
    let mut breakdown = Breakdown::new(by);
    scan(conn, span, |row| breakdown.add(row))?;
    scan_rolled(conn, span, Grain::Day, |d| breakdown.add_rolled(d))?;
    breakdown.finish(conn)
}

/// One bar of the dashboard's charts: a UTC day of answers, or an hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bar {
    /// Its first second.
    pub start: i64,
    pub requests: i64,
    pub local_tokens: i64,
    pub remote_tokens: i64,
    pub cost: f64,
    pub errors: i64,
    pub refused: i64,
}

impl Bar {
    /// Adds `requests` answers of `provider`; `cost` gathers the bar's billionths.
    #[allow(clippy::too_many_arguments)] // each is one of a record's or a rolled-up day's figures
    fn add(
        &mut self,
        cost: &mut i64,
        requests: i64,
        provider: &str,
        tokens: i64,
        cost_nanos: i64,
        errors: i64,
        refused: i64,
    ) {
        self.requests += requests;
        if provider == prices::LOCAL {
            self.local_tokens += tokens;
        } else {
            self.remote_tokens += tokens;
        }
        *cost += cost_nanos;
        self.errors += errors;
        self.refused += refused;
    }
}

/// Every day (or hour) of `span`, those without answers too, and the span's totals in one line.
pub fn bars(conn: &mut Conn, span: Span, grain: Grain) -> AppResult<(Vec<Bar>, Line)> {
    chart(conn, span, grain, &mut [])
}

/// The bars and totals of `span`, feeding `breakdowns` from the same reading of the records.
fn chart(
    conn: &mut Conn,
    span: Span,
    grain: Grain,
    breakdowns: &mut [Breakdown],
) -> AppResult<(Vec<Bar>, Line)> {
    let width = grain.seconds();
    let first = span.from.div_euclid(width);
    let count = (span.to - 1).div_euclid(width) - first + 1;
    let most = match grain {
        Grain::Day => MAX_DAYS,
        Grain::Hour => MAX_HOURS,
    };
    if !(1..=most).contains(&count) {
        return Err(AppError::validation(format!(
            "a chart covers 1 to {MAX_DAYS} days, or 1 to {MAX_HOURS} hours"
        )));
    }
    let mut bars: Vec<(Bar, i64)> =
        (0..count).map(|i| (Bar { start: (first + i) * width, ..Bar::default() }, 0)).collect();
    let mut total = Tally::default();
    scan(conn, span, |row| {
        total.add(row);
        breakdowns.iter_mut().for_each(|b| b.add(row));
        let (bar, cost) = &mut bars[(row.at.div_euclid(width) - first) as usize];
        let tokens = row.prompt_tokens + row.completion_tokens;
        let is = |outcome: &str| i64::from(row.outcome == outcome);
        bar.add(cost, 1, &row.provider, tokens, row.cost_nanos, is("error"), is("refused"));
    })?;
    scan_rolled(conn, span, grain, |d| {
        total.add_rolled(d);
        breakdowns.iter_mut().for_each(|b| b.add_rolled(d));
        let (bar, cost) = &mut bars[(d.day - first) as usize];
        let tokens = d.prompt_tokens + d.completion_tokens;
        bar.add(cost, d.requests, &d.provider, tokens, d.cost_nanos, d.errors, d.refused);
    })?;
    let bars = bars
        .into_iter()
        .map(|(mut bar, cost)| {
            bar.cost = prices::nanos_to_f64(cost);
            bar
        })
        .collect();
    Ok((bars, total.finish("all".into())))
}

/// The longest span a chart draws, a day per bar.
pub const MAX_DAYS: i64 = 366;
/// Spans of up to this many hours are drawn an hour per bar (while the hourly rollup lasts).
pub const MAX_HOURS: i64 = 48;

/// `#12` becomes `#12 ci-deploy` where the key still exists.
fn name_keys(conn: &mut Conn, lines: &mut [Line]) -> AppResult<()> {
    let ids: Vec<i64> = lines.iter().filter_map(|l| l.key.strip_prefix('#')?.parse().ok()).collect();
    let names: BTreeMap<i64, String> = conn
        .load(
            api_tokens::table.filter(api_tokens::id.eq_any(&ids)).select((api_tokens::id, api_tokens::name)),
        )?
        .into_iter()
        .collect();
    for line in lines {
        if let Some(name) =
            line.key.strip_prefix('#').and_then(|id| id.parse().ok()).and_then(|id| names.get(&id))
        {
            line.key = format!("{} {name}", line.key);
        }
    }
    Ok(())
}

/// The Usage service: reports over the records, prices, quotas and the check each answer
/// passes, for the admin API, the console, the account page and `ayushctl`.
#[derive(Clone)]
pub struct Usage {
    store: Store,
    clock: SharedClock,
    /// Which models exist, so a price names one.
    catalog: Arc<Catalog>,
    config: UsageConfig,
}

/// A report's span as people write it: `from` and `to` as unix seconds, `YYYY-MM-DD` or
/// `YYYY-MM-DDTHH:MM[:SS]` (UTC); by default the last 30 days up to now.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(default)]
    pub by: By,
}

/// The console's usage page, over one span.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub span: Span,
    pub by: By,
    pub currency: String,
    /// A bar per hour for spans of two days or less, else per day.
    pub grain: Grain,
    pub bars: Vec<Bar>,
    pub total: Line,
    pub lines: Vec<Line>,
    /// The ten with the most tokens.
    pub top_users: Vec<Line>,
}

/// What `PUT /api/admin/prices` and `ayushctl providers price` take: amounts per million
/// tokens and per image, as numbers or strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPrice {
    /// A provider's name, or `local` for a local model's notional price.
    pub provider: String,
    /// The provider's own name for the model (or the local model's name).
    pub model: String,
    #[serde(default)]
    pub input_per_mtok: Option<serde_json::Value>,
    #[serde(default)]
    pub output_per_mtok: Option<serde_json::Value>,
    #[serde(default)]
    pub per_image: Option<serde_json::Value>,
}

/// One limit that holds for a person, with how much of it they have used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Allowance {
    /// `all`, `local` or `remote`: which answers it counts.
    pub pool: &'static str,
    /// `tokens_per_day`, `tokens_per_month`, `requests_per_minute`, `concurrent` or
    /// `spend_per_month` (in the currency).
    pub limit: &'static str,
    pub allowed: f64,
    /// Used in the current period (not counted for `requests_per_minute` and `concurrent`).
    pub used: Option<f64>,
    pub resets_at: Option<i64>,
}

/// A person's own usage and what is left of their quota: the account page, `GET /api/me/usage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mine {
    pub currency: String,
    /// Today and this month, by pool (`local`, `remote`).
    pub pools: BTreeMap<String, quotas::Used>,
    pub cost_this_month: f64,
    pub allowances: Vec<Allowance>,
    /// Admins answer regardless of quotas here (`usage.exempt_admins`).
    pub exempt: bool,
}

/// A request let through: the generation slot it holds until dropped, and the
/// `x-ratelimit-*` headers of the limits it met.
pub struct Admission {
    slot: Option<(Store, i64)>,
    pub headers: Vec<(&'static str, String)>,
}

impl Admission {
    /// Frees the generation slot held, without waiting for the database: the next request's
    /// check gives a full concurrent limit a moment before refusing.
    pub fn release(&mut self) {
        let Some((store, id)) = self.slot.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = store.run(move |c| quotas::free(c, id)).await {
                        tracing::warn!(error = %e, "cannot free a generation slot; it lapses by itself");
                    }
                });
            }
            Err(_) => {
                let _ = store.run_blocking(|c| quotas::free(c, id));
            }
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.release();
    }
}

impl Usage {
    pub fn new(store: Store, clock: SharedClock, catalog: Arc<Catalog>, config: UsageConfig) -> Usage {
        Usage { store, clock, catalog, config }
    }

    /// The span a query asks for, checked.
    fn span(&self, query: &ReportQuery) -> AppResult<Span> {
        let now = self.clock.now();
        let time = |name: &str, raw: &Option<String>, default: i64| match raw.as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some(raw) => crate::audit::query::parse_time(raw).ok_or_else(|| {
                AppError::validation(format!(
                    "{name} = {raw:?} is not a time: use unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
                ))
            }),
        };
        let to = time("to", &query.to, now + 1)?;
        let from = time("from", &query.from, now - 30 * 86_400)?;
        if from >= to {
            return Err(AppError::validation("from must be before to"));
        }
        Ok(Span { from, to })
    }

    pub async fn report(&self, query: ReportQuery) -> AppResult<Vec<Line>> {
        let (span, by) = (self.span(&query)?, query.by);
        self.store.run(move |c| report(c, span, by)).await
    }

    /// What the console's usage page shows: each day's tokens, cost, errors and refusals, the
    /// span's totals, the breakdown asked for and the top users.
    pub async fn dashboard(&self, query: ReportQuery) -> AppResult<Dashboard> {
        let (span, by, currency) = (self.span(&query)?, query.by, self.config.currency.clone());
        let hours = (span.to - span.from + 3_599) / 3_600;
        // Hours while the hourly rollup still has them, for short spans; days otherwise.
        let kept_from = self.clock.now() - HOURLY_KEEP_DAYS * 86_400;
        let grain = if hours <= MAX_HOURS && span.from >= kept_from { Grain::Hour } else { Grain::Day };
        self.store
            .run(move |c| {
                // One reading of the records for the charts, the breakdown and the top users.
                let mut breakdowns = vec![Breakdown::new(by)];
                if by != By::User {
                    breakdowns.push(Breakdown::new(By::User));
                }
                let (bars, total) = chart(c, span, grain, &mut breakdowns)?;
                let mut finished = breakdowns.into_iter().map(|b| b.finish(c));
                let lines = finished.next().unwrap_or(Ok(Vec::new()))?;
                let mut top_users = match finished.next() {
                    Some(users) => users?,
                    None => lines.clone(),
                };
                top_users.truncate(10);
                Ok(Dashboard { span, by, currency, grain, bars, total, lines, top_users })
            })
            .await
    }

    pub async fn prices(&self) -> AppResult<Vec<prices::Price>> {
        self.store.run(prices::list).await
    }

    /// Sets a model's price; the model must be one the catalog (or the provider) offers.
    pub async fn set_price(&self, actor: Actor, set: SetPrice) -> AppResult<prices::Price> {
        let amount = |name: &str, v: &Option<serde_json::Value>| {
            v.as_ref().map_or(Ok(0), |v| prices::amount_of_json(name, v))
        };
        if set.input_per_mtok.is_none() && set.output_per_mtok.is_none() && set.per_image.is_none() {
            return Err(AppError::validation(
                "give input_per_mtok and output_per_mtok, or per_image for an image model",
            ));
        }
        let rates = prices::Rates {
            input: amount("input_per_mtok", &set.input_per_mtok)?,
            output: amount("output_per_mtok", &set.output_per_mtok)?,
            per_image: amount("per_image", &set.per_image)?,
        };
        let (provider, model) = (set.provider.trim().to_string(), set.model.trim().to_string());
        if provider.is_empty() || model.is_empty() {
            return Err(AppError::validation("name the provider (or local) and the model"));
        }
        let (now, catalog) = (self.clock.now(), self.catalog.clone());
        self.store
            .run(move |c| {
                let name = if provider == prices::LOCAL { model.clone() } else { format!("{provider}/{model}") };
                crate::catalog::find(&catalog, c, &name).map_err(|e| match e.kind {
                    ErrorKind::NotFound if provider == prices::LOCAL => {
                        AppError::validation(format!("there is no local model named {model:?}"))
                    }
                    ErrorKind::NotFound => AppError::validation(format!(
                        "provider {provider:?} offers no model named {model:?} (see `ayushctl providers list`)"
                    )),
                    _ => e,
                })?;
                prices::set(c, now, &actor, &provider, &model, rates)
            })
            .await
    }

    pub async fn remove_price(&self, actor: Actor, provider: String, model: String) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| prices::remove(c, now, &actor, provider.trim(), model.trim())).await
    }

    pub async fn quotas(&self) -> AppResult<Vec<quotas::Quota>> {
        self.store.run(quotas::list).await
    }

    pub async fn set_quota(&self, actor: Actor, set: quotas::SetQuota) -> AppResult<quotas::Quota> {
        let now = self.clock.now();
        self.store.run(move |c| quotas::set(c, now, &actor, set)).await
    }

    pub async fn remove_quota(&self, actor: Actor, of: quotas::QuotaOf) -> AppResult<()> {
        let now = self.clock.now();
        self.store.run(move |c| quotas::remove(c, now, &actor, of)).await
    }

    /// What `user_id` has used today and this month, and what their quotas leave them.
    pub async fn mine(&self, user_id: i64, admin: bool) -> AppResult<Mine> {
        let (now, currency) = (self.clock.now(), self.config.currency.clone());
        let exempt = admin && self.config.exempt_admins;
        self.store
            .run(move |c| {
                let periods = quotas::Periods::at(now);
                let pools = quotas::used(c, user_id, &periods)?;
                let mut holding = quotas::effective(c, user_id, "local")?;
                for (covering, limits) in quotas::effective(c, user_id, "remote")? {
                    if !holding.iter().any(|(p, _)| *p == covering) {
                        holding.push((covering, limits));
                    }
                }
                let mut allowances = Vec::new();
                for (pool, l) in holding {
                    let mut add = |limit, allowed: Option<i64>, used: Option<f64>, resets_at| {
                        if let Some(allowed) = allowed {
                            allowances.push(Allowance {
                                pool,
                                limit,
                                allowed: allowed as f64,
                                used,
                                resets_at,
                            });
                        }
                    };
                    let counted = quotas::in_pool(&pools, pool);
                    let today = counted.tokens_today as f64;
                    let month = counted.tokens_this_month as f64;
                    add("tokens_per_day", l.tokens_per_day, Some(today), Some(periods.next_day_at));
                    add("tokens_per_month", l.tokens_per_month, Some(month), Some(periods.next_month_at));
                    add("requests_per_minute", l.requests_per_minute, None, None);
                    add("concurrent", l.concurrent, None, None);
                    if let Some(cap) = l.spend_micros_per_month {
                        allowances.push(Allowance {
                            pool,
                            limit: "spend_per_month",
                            allowed: prices::micros_to_f64(cap),
                            used: Some(quotas::in_pool(&pools, "remote").cost()),
                            resets_at: Some(periods.next_month_at),
                        });
                    }
                }
                let cost_this_month = quotas::in_pool(&pools, "all").cost();
                Ok(Mine { currency, pools, cost_this_month, allowances, exempt })
            })
            .await
    }

    /// Checks a request against its asker's quotas and counts it. Refused, the refusal is
    /// counted and recorded (outcome `refused`) and the error says which limit, what was used
    /// and when it resets.
    pub async fn admit(&self, record: Record) -> AppResult<Admission> {
        let Some(user_id) = record.user_id else {
            return Ok(Admission { slot: None, headers: Vec::new() });
        };
        let (now, exempt, currency) =
            (self.clock.now(), self.config.exempt_admins, self.config.currency.clone());
        let pool = pool_of(&record.model);
        let store = self.store.clone();
        let checked = self
            .store
            .run(move |c| match quotas::check(c, now, user_id, pool, exempt)? {
                Ok(checked) => Ok(Ok(checked)),
                Err(refusal) => {
                    quotas::count_refusal(c, now, &record, refusal.limit)?;
                    Ok(Err(refusal))
                }
            })
            .await?;
        match checked {
            Ok(checked) => {
                Ok(Admission { slot: checked.slot.map(|id| (store, id)), headers: checked.headers })
            }
            Err(refusal) => Err(refusal.error(now, &currency)),
        }
    }
}

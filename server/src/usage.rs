//! Usage: one record per answer asked of a model (a web chat turn, a `/v1` call), written in the
//! same transaction as the answer's audit event, and the reports admins read from them (by
//! user, group, model, provider or API key, over a span of time).

use crate::clock::SharedClock;
use crate::error::{AppError, AppResult};
use crate::store::schema::{api_tokens, usage_records};
use crate::store::{Conn, Store};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// `chat`, `v1.chat` or `v1.embeddings`.
    pub source: &'static str,
    pub model: String,
    /// `local`, or the remote provider's name.
    pub provider: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
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
            ttft_ms: None,
            duration_ms: 0,
            outcome: Outcome::Ok,
        }
    }
}

/// Writes one record; callers do so inside the transaction that records the answer.
pub fn record(conn: &mut Conn, r: &Record) -> AppResult<()> {
    let groups = serde_json::to_string(&r.groups).map_err(AppError::internal)?;
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
    )))?;
    Ok(())
}

/// Deletes the records older than `keep_days` (none when it is 0); how many went.
pub fn prune(conn: &mut Conn, now: i64, keep_days: u64) -> AppResult<usize> {
    if keep_days == 0 {
        return Ok(0);
    }
    let cutoff = now.saturating_sub(keep_days as i64 * 86_400);
    Ok(conn.execute(diesel::delete(usage_records::table.filter(usage_records::at.lt(cutoff))))?)
}

/// Where a model runs: `local`, or the provider of a `provider/model` name.
pub fn provider_of(model: &str) -> &str {
    model.split_once('/').map_or("local", |(provider, _)| provider)
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Line {
    /// The user, group, model, provider or key (`#ID name`).
    pub key: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub errors: i64,
    pub cancelled: i64,
    pub refused: i64,
    /// Mean time to the first token over the answers that had one.
    pub mean_ttft_ms: Option<i64>,
    pub mean_duration_ms: i64,
}

#[derive(Default)]
struct Tally {
    line: Line,
    ttft_sum: i64,
    ttft_count: i64,
    duration_sum: i64,
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
            self.ttft_sum += t;
            self.ttft_count += 1;
        }
        self.duration_sum += row.duration_ms;
    }

    fn finish(mut self, key: String) -> Line {
        self.line.key = key;
        self.line.mean_ttft_ms = (self.ttft_count > 0).then(|| self.ttft_sum / self.ttft_count);
        self.line.mean_duration_ms = self.duration_sum / self.line.requests.max(1);
        self.line
    }
}

#[derive(Queryable)]
struct Row {
    id: i64,
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
}

/// How many records a report reads at a time: memory stays bounded by the number of lines.
const PAGE: i64 = 5_000;

/// The answers in `span`, broken down `by`, most tokens first.
pub fn report(conn: &mut Conn, span: Span, by: By) -> AppResult<Vec<Line>> {
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
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
                )),
        )?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for row in &rows {
            let keys = match by {
                By::User => vec![row.username.clone()],
                By::Model => vec![row.model.clone()],
                By::Provider => vec![row.provider.clone()],
                By::Key => vec![row.api_key_id.map_or("-".to_string(), |id| format!("#{id}"))],
                By::Group => {
                    let groups: Vec<String> = serde_json::from_str(&row.groups).unwrap_or_default();
                    if groups.is_empty() { vec!["-".to_string()] } else { groups }
                }
            };
            for key in keys {
                tallies.entry(key).or_default().add(row);
            }
        }
    }
    let mut lines: Vec<Line> = tallies.into_iter().map(|(key, t)| t.finish(key)).collect();
    if by == By::Key {
        name_keys(conn, &mut lines)?;
    }
    lines.sort_by(|a, b| {
        (b.prompt_tokens + b.completion_tokens)
            .cmp(&(a.prompt_tokens + a.completion_tokens))
            .then(a.key.cmp(&b.key))
    });
    Ok(lines)
}

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

/// The Usage service: reports over the records, for the admin API, the console and
/// `ayushctl usage report`.
#[derive(Clone)]
pub struct Usage {
    store: Store,
    clock: SharedClock,
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

impl Usage {
    pub fn new(store: Store, clock: SharedClock) -> Usage {
        Usage { store, clock }
    }

    pub async fn report(&self, query: ReportQuery) -> AppResult<Vec<Line>> {
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
        let by = query.by;
        self.store.run(move |c| report(c, Span { from, to }, by)).await
    }
}

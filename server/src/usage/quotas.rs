//! Quotas and rate limits, per person and per group: tokens a day and a month, requests a
//! minute, answers at once, and a monthly spending cap on remote models. Everything is counted
//! in the database (the day counters every answer adds to, a row per person per minute, a row
//! per answer being written), so a limit holds however many replicas share it.
//!
//! A person's own quota, where one is set, is theirs; otherwise the most generous of their
//! groups' quotas holds, limit by limit. A quota limits all answers, or only local or only
//! remote ones (its pool); local and remote answers are counted apart.

use super::Record;
use crate::audit::{self, Actor, Event, Outcome};
use crate::auth::{groups, users};
use crate::error::{AppError, AppResult, ErrorKind, Reason};
use crate::store::schema::{
    generation_slots, group_members, groups as groups_t, quota_refusals, quotas, request_windows,
    usage_counters, users as users_t,
};
use crate::store::{Conn, columns};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// What a quota limits: every answer, or only local or only remote models' answers.
pub const POOLS: [&str; 3] = ["all", "local", "remote"];

/// The most a limit may be set to: larger numbers are typing mistakes.
const MAX_LIMIT: i64 = 1_000_000_000_000_000;

/// The limits of one quota; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub tokens_per_day: Option<i64>,
    pub tokens_per_month: Option<i64>,
    pub requests_per_minute: Option<i64>,
    pub concurrent: Option<i64>,
    /// Remote models only, in millionths of the currency.
    pub spend_micros_per_month: Option<i64>,
}

impl Limits {
    fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// Limit by limit, the more generous of the two; no limit beats any.
    fn most_generous(self, other: Limits) -> Limits {
        let max = |a: Option<i64>, b: Option<i64>| Some(a?.max(b?));
        Limits {
            tokens_per_day: max(self.tokens_per_day, other.tokens_per_day),
            tokens_per_month: max(self.tokens_per_month, other.tokens_per_month),
            requests_per_minute: max(self.requests_per_minute, other.requests_per_minute),
            concurrent: max(self.concurrent, other.concurrent),
            spend_micros_per_month: max(self.spend_micros_per_month, other.spend_micros_per_month),
        }
    }
}

/// A quota as the API, the console and `ayushctl quota list` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quota {
    pub user: Option<String>,
    pub group: Option<String>,
    pub pool: String,
    pub tokens_per_day: Option<i64>,
    pub tokens_per_month: Option<i64>,
    pub requests_per_minute: Option<i64>,
    pub concurrent: Option<i64>,
    pub spend_per_month: Option<f64>,
    pub set_at: i64,
}

/// Whose quota: one person's or one group's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
}

impl Subject {
    /// From the `user` and `group` a request names, exactly one of them.
    pub fn of(user: Option<String>, group: Option<String>) -> AppResult<Subject> {
        let clean = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        match (clean(user), clean(group)) {
            (Some(u), None) => Ok(Subject::User(u)),
            (None, Some(g)) => Ok(Subject::Group(g)),
            _ => Err(AppError::validation("name one user or one group")),
        }
    }
}

/// What `PUT /api/admin/quotas` and `ayushctl quota set` take. The limits given replace the
/// quota's limits: one left out is no limit.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetQuota {
    pub user: Option<String>,
    pub group: Option<String>,
    /// `all` (the default), `local` or `remote`.
    pub pool: Option<String>,
    pub tokens_per_day: Option<i64>,
    pub tokens_per_month: Option<i64>,
    pub requests_per_minute: Option<i64>,
    pub concurrent: Option<i64>,
    /// An amount of the currency, as a number or a string.
    pub spend_per_month: Option<serde_json::Value>,
}

/// Which quota `DELETE /api/admin/quotas` and `ayushctl quota remove` take away.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOf {
    pub user: Option<String>,
    pub group: Option<String>,
    pub pool: Option<String>,
}

pub fn pool_of(raw: Option<&str>) -> AppResult<&'static str> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("all");
    POOLS
        .into_iter()
        .find(|p| *p == raw)
        .ok_or_else(|| AppError::validation(format!("pool {raw:?} is not one of all, local, remote")))
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = quotas)]
struct Row {
    user_id: Option<i64>,
    group_id: Option<i64>,
    pool: String,
    tokens_per_day: Option<i64>,
    tokens_per_month: Option<i64>,
    requests_per_minute: Option<i64>,
    concurrent: Option<i64>,
    spend_micros_per_month: Option<i64>,
    set_at: i64,
}

impl Row {
    fn limits(&self) -> Limits {
        Limits {
            tokens_per_day: self.tokens_per_day,
            tokens_per_month: self.tokens_per_month,
            requests_per_minute: self.requests_per_minute,
            concurrent: self.concurrent,
            spend_micros_per_month: self.spend_micros_per_month,
        }
    }
}

pub fn list(conn: &mut Conn) -> AppResult<Vec<Quota>> {
    let rows: Vec<Row> = conn.load(quotas::table.order(quotas::id.asc()).select(columns::<Row>()))?;
    let user_names: BTreeMap<i64, String> = conn
        .load(
            users_t::table
                .filter(users_t::id.eq_any(rows.iter().filter_map(|r| r.user_id).collect::<Vec<_>>()))
                .select((users_t::id, users_t::username)),
        )?
        .into_iter()
        .collect();
    let group_names: BTreeMap<i64, String> = conn
        .load(
            groups_t::table
                .filter(groups_t::id.eq_any(rows.iter().filter_map(|r| r.group_id).collect::<Vec<_>>()))
                .select((groups_t::id, groups_t::name)),
        )?
        .into_iter()
        .collect();
    let mut list: Vec<Quota> = rows
        .into_iter()
        .map(|r| Quota {
            user: r.user_id.and_then(|id| user_names.get(&id).cloned()),
            group: r.group_id.and_then(|id| group_names.get(&id).cloned()),
            pool: r.pool.clone(),
            tokens_per_day: r.tokens_per_day,
            tokens_per_month: r.tokens_per_month,
            requests_per_minute: r.requests_per_minute,
            concurrent: r.concurrent,
            spend_per_month: r.spend_micros_per_month.map(super::prices::micros_to_f64),
            set_at: r.set_at,
        })
        .collect();
    list.sort_by(|a, b| (&a.group, &a.user, &a.pool).cmp(&(&b.group, &b.user, &b.pool)));
    Ok(list)
}

/// The quota's row: by person or group, and pool.
fn find(
    conn: &mut Conn,
    subject: &Subject,
    pool: &str,
) -> AppResult<(Option<i64>, Option<i64>, Option<i64>)> {
    let (user_id, group_id) = match subject {
        Subject::User(name) => (Some(users::get(conn, name)?.id), None),
        Subject::Group(name) => (None, Some(groups::get(conn, name)?.id)),
    };
    let q = quotas::table.filter(quotas::pool.eq(pool)).select(quotas::id);
    let id: Option<i64> = match (user_id, group_id) {
        (Some(u), _) => conn.load(q.filter(quotas::user_id.eq(u)))?.into_iter().next(),
        (_, Some(g)) => conn.load(q.filter(quotas::group_id.eq(g)))?.into_iter().next(),
        _ => None,
    };
    Ok((id, user_id, group_id))
}

fn target(subject: &Subject) -> (&'static str, &str) {
    match subject {
        Subject::User(n) => ("user", n),
        Subject::Group(n) => ("group", n),
    }
}

/// Sets a quota, replacing the one the person or group had for that pool.
pub fn set(conn: &mut Conn, now: i64, actor: &Actor, set: SetQuota) -> AppResult<Quota> {
    let subject = Subject::of(set.user.clone(), set.group.clone())?;
    let pool = pool_of(set.pool.as_deref())?;
    let spend = set
        .spend_per_month
        .as_ref()
        .map(|v| super::prices::amount_of_json("spend_per_month", v))
        .transpose()?;
    let limits = Limits {
        tokens_per_day: set.tokens_per_day,
        tokens_per_month: set.tokens_per_month,
        requests_per_minute: set.requests_per_minute,
        concurrent: set.concurrent,
        spend_micros_per_month: spend,
    };
    for (name, v) in [
        ("tokens_per_day", limits.tokens_per_day),
        ("tokens_per_month", limits.tokens_per_month),
        ("requests_per_minute", limits.requests_per_minute),
        ("concurrent", limits.concurrent),
        ("spend_per_month", limits.spend_micros_per_month),
    ] {
        if let Some(v) = v
            && !(0..=MAX_LIMIT).contains(&v)
        {
            return Err(AppError::validation(format!("{name} must be 0 or more (0 allows none)")));
        }
    }
    if limits.is_empty() {
        return Err(AppError::validation(
            "give at least one limit (tokens per day or month, requests per minute, concurrent, spend per month); \
             `quota remove` takes a quota away",
        ));
    }
    if pool == "local" && limits.spend_micros_per_month.is_some() {
        return Err(AppError::validation(
            "a spending cap is for remote models: set it on pool all or remote",
        ));
    }
    conn.transaction(|c| {
        let (existing, user_id, group_id) = find(c, &subject, pool)?;
        if let Some(id) = existing {
            c.execute(diesel::delete(quotas::table.find(id)))?;
        }
        c.execute(diesel::insert_into(quotas::table).values((
            quotas::user_id.eq(user_id),
            quotas::group_id.eq(group_id),
            quotas::pool.eq(pool),
            quotas::tokens_per_day.eq(limits.tokens_per_day),
            quotas::tokens_per_month.eq(limits.tokens_per_month),
            quotas::requests_per_minute.eq(limits.requests_per_minute),
            quotas::concurrent.eq(limits.concurrent),
            quotas::spend_micros_per_month.eq(limits.spend_micros_per_month),
            quotas::set_at.eq(now),
        )))?;
        let (kind, name) = target(&subject);
        let quota = Quota {
            user: (kind == "user").then(|| name.to_string()),
            group: (kind == "group").then(|| name.to_string()),
            pool: pool.to_string(),
            tokens_per_day: limits.tokens_per_day,
            tokens_per_month: limits.tokens_per_month,
            requests_per_minute: limits.requests_per_minute,
            concurrent: limits.concurrent,
            spend_per_month: limits.spend_micros_per_month.map(super::prices::micros_to_f64),
            set_at: now,
        };
        let mut details = serde_json::to_value(&quota).map_err(AppError::internal)?;
        details["replaced"] = json!(existing.is_some());
        let event = Event::new(actor, "quota.set", Outcome::Success).target(kind, name).details(details);
        audit::record(c, now, &event)?;
        Ok(quota)
    })
}

pub fn remove(conn: &mut Conn, now: i64, actor: &Actor, of: QuotaOf) -> AppResult<()> {
    let subject = Subject::of(of.user, of.group)?;
    let pool = pool_of(of.pool.as_deref())?;
    conn.transaction(|c| {
        let (kind, name) = target(&subject);
        let Some(id) = find(c, &subject, pool)?.0 else {
            return Err(AppError::not_found(format!("{kind} {name} has no quota for pool {pool}")));
        };
        c.execute(diesel::delete(quotas::table.find(id)))?;
        let event = Event::new(actor, "quota.remove", Outcome::Success)
            .target(kind, name)
            .details(json!({"pool": pool}));
        audit::record(c, now, &event)
    })
}

/// The limits that hold for `user_id`'s answers from `pool` (`local` or `remote`): for each
/// quota pool that covers them (`all`, and `pool` itself), the person's own quota, else the
/// most generous of their groups'.
pub fn effective(conn: &mut Conn, user_id: i64, pool: &str) -> AppResult<Vec<(&'static str, Limits)>> {
    let of_groups = group_members::table
        .filter(group_members::user_id.eq(user_id))
        .select(group_members::group_id.nullable());
    let rows: Vec<Row> = conn.load(
        quotas::table
            .filter(quotas::pool.eq_any(["all", pool]))
            .filter(quotas::user_id.eq(user_id).or(quotas::group_id.eq_any(of_groups)))
            .select(columns::<Row>()),
    )?;
    let mut holding = Vec::new();
    for covering in ["all", if pool == "local" { "local" } else { "remote" }] {
        let in_pool = rows.iter().filter(|r| r.pool == covering);
        let own = in_pool.clone().find(|r| r.user_id.is_some());
        let limits = match own {
            Some(own) => Some(own.limits()),
            None => in_pool.map(Row::limits).reduce(Limits::most_generous),
        };
        if let Some(limits) = limits.filter(|l| !l.is_empty()) {
            holding.push((covering, limits));
        }
    }
    Ok(holding)
}

/// Which limit a request met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    TokensPerDay,
    TokensPerMonth,
    RequestsPerMinute,
    Concurrent,
    SpendPerMonth,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::TokensPerDay => "tokens_per_day",
            Limit::TokensPerMonth => "tokens_per_month",
            Limit::RequestsPerMinute => "requests_per_minute",
            Limit::Concurrent => "concurrent",
            Limit::SpendPerMonth => "spend_per_month",
        }
    }
}

/// UTC day numbers and the seconds where the periods turn.
#[derive(Debug, Clone, Copy)]
pub struct Periods {
    pub today: i64,
    pub month_first_day: i64,
    pub next_day_at: i64,
    pub next_month_at: i64,
    pub next_minute_at: i64,
}

impl Periods {
    pub fn at(now: i64) -> Periods {
        let today = now.div_euclid(86_400);
        let date =
            time::OffsetDateTime::from_unix_timestamp(now).map(|t| t.date()).unwrap_or(time::Date::MIN);
        let first = date.replace_day(1).unwrap_or(date);
        let next = match first.month() {
            time::Month::December => {
                first.replace_year(first.year() + 1).and_then(|d| d.replace_month(time::Month::January))
            }
            m => first.replace_month(m.next()),
        }
        .unwrap_or(first);
        let secs = |d: time::Date| d.midnight().assume_utc().unix_timestamp();
        Periods {
            today,
            month_first_day: secs(first).div_euclid(86_400),
            next_day_at: (today + 1) * 86_400,
            next_month_at: secs(next),
            next_minute_at: (now.div_euclid(60) + 1) * 60,
        }
    }
}

/// What a person has used so far, by pool: today's and this month's tokens, and this month's
/// cost (billionths).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Used {
    pub requests_today: i64,
    pub tokens_today: i64,
    pub tokens_this_month: i64,
    pub cost_nanos_this_month: i64,
}

pub fn used(conn: &mut Conn, user_id: i64, periods: &Periods) -> AppResult<BTreeMap<String, Used>> {
    let rows: Vec<(String, i64, i64, i64, i64)> = conn.load(
        usage_counters::table
            .filter(usage_counters::user_id.eq(user_id))
            .filter(usage_counters::day.ge(periods.month_first_day))
            .select((
                usage_counters::pool,
                usage_counters::day,
                usage_counters::requests,
                usage_counters::tokens,
                usage_counters::cost_nanos,
            )),
    )?;
    let mut used: BTreeMap<String, Used> = BTreeMap::new();
    for (pool, day, requests, tokens, cost) in rows {
        let u = used.entry(pool).or_default();
        if day == periods.today {
            u.requests_today += requests;
            u.tokens_today += tokens;
        }
        u.tokens_this_month += tokens;
        u.cost_nanos_this_month += cost;
    }
    Ok(used)
}

impl Used {
    /// This month's cost in the currency.
    pub fn cost(&self) -> f64 {
        super::prices::nanos_to_f64(self.cost_nanos_this_month)
    }
}

/// What `covering` counts of a person's usage: one pool's, or (`all`) both together.
pub fn in_pool(used: &BTreeMap<String, Used>, covering: &str) -> Used {
    used.iter().filter(|(p, _)| covering == "all" || p.as_str() == covering).fold(
        Used::default(),
        |a, (_, u)| Used {
            requests_today: a.requests_today + u.requests_today,
            tokens_today: a.tokens_today + u.tokens_today,
            tokens_this_month: a.tokens_this_month + u.tokens_this_month,
            cost_nanos_this_month: a.cost_nanos_this_month + u.cost_nanos_this_month,
        },
    )
}

/// Why a request was refused, and what to tell the person.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub limit: Limit,
    pub covering: &'static str,
    pub used: i64,
    pub allowed: i64,
    /// When the limit lets requests through again (unix seconds); none for `concurrent`.
    pub resets_at: Option<i64>,
}

/// An admitted request's place and what the `x-ratelimit-*` headers say about its limits.
#[derive(Debug, Default)]
pub struct Checked {
    /// The generation slot taken, where a concurrent limit holds.
    pub slot: Option<i64>,
    pub headers: Vec<(&'static str, String)>,
}

/// How long a generation slot lasts if its replica dies before freeing it.
pub const SLOT_LAPSE_SECS: i64 = 15 * 60;

/// Checks `user_id`'s request for a `pool` answer against the limits that hold, and counts it:
/// a request in this minute's window, a generation slot. Refused: why.
pub fn check(
    conn: &mut Conn,
    now: i64,
    user_id: i64,
    pool: &str,
    exempt_admins: bool,
) -> AppResult<Result<Checked, Refusal>> {
    if exempt_admins {
        let role: String = conn.first(users_t::table.find(user_id).select(users_t::role))?;
        if role == "admin" {
            return Ok(Ok(Checked::default()));
        }
    }
    let holding = effective(conn, user_id, pool)?;
    if holding.is_empty() {
        return Ok(Ok(Checked::default()));
    }
    let periods = Periods::at(now);
    let mut tokens_header: Header = None;
    let counts_tokens = holding.iter().any(|(_, l)| {
        l.tokens_per_day.is_some() || l.tokens_per_month.is_some() || l.spend_micros_per_month.is_some()
    });
    if counts_tokens {
        let used = used(conn, user_id, &periods)?;
        for (covering, limits) in &holding {
            let u = in_pool(&used, covering);
            for (limit, allowed, so_far, resets_at) in [
                (Limit::TokensPerDay, limits.tokens_per_day, u.tokens_today, periods.next_day_at),
                (Limit::TokensPerMonth, limits.tokens_per_month, u.tokens_this_month, periods.next_month_at),
            ] {
                let Some(allowed) = allowed else { continue };
                if so_far >= allowed {
                    return Ok(Err(Refusal {
                        limit,
                        covering,
                        used: so_far,
                        allowed,
                        resets_at: Some(resets_at),
                    }));
                }
                let remaining = allowed - so_far;
                if tokens_header.is_none_or(|(_, r, _)| remaining < r) {
                    tokens_header = Some((allowed, remaining, resets_at));
                }
            }
            if let Some(cap) = limits.spend_micros_per_month
                && *covering != "local"
            {
                let spent = in_pool(&used, "remote").cost_nanos_this_month;
                if spent >= cap.saturating_mul(1000) {
                    return Ok(Err(Refusal {
                        limit: Limit::SpendPerMonth,
                        covering,
                        used: spent / 1000,
                        allowed: cap,
                        resets_at: Some(periods.next_month_at),
                    }));
                }
            }
        }
    }
    // What the request takes: a place in each minute's window and, under a concurrent limit, a
    // generation slot. On SQLite (one writer at a time) in one transaction, one commit; on
    // PostgreSQL each committed at once, so of two replicas racing for the last place at least
    // one sees the other's row when it counts.
    let taking = |c: &mut Conn| take(c, now, user_id, pool, &holding, &periods);
    let taken = match conn.backend() {
        crate::store::Backend::Sqlite => conn.transaction(taking)?,
        _ => taking(conn)?,
    };
    let (slot, requests_header) = match taken {
        Ok(taken) => taken,
        Err(refusal) => return Ok(Err(refusal)),
    };
    if let Some(id) = slot {
        for (covering, limits) in &holding {
            let Some(allowed) = limits.concurrent else { continue };
            let mut running = running_slots(conn, now, user_id, covering)?;
            // The asker's previous answer may be freeing its slot this very moment (which is
            // not waited for): give it a moment before refusing.
            for _ in 0..SLOT_RETRIES {
                if running <= allowed {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(SLOT_RETRY_MS));
                running = running_slots(conn, now, user_id, covering)?;
            }
            if running > allowed {
                free(conn, id)?;
                return Ok(Err(Refusal {
                    limit: Limit::Concurrent,
                    covering,
                    used: running - 1,
                    allowed,
                    resets_at: None,
                }));
            }
        }
    }
    let mut headers = Vec::new();
    if let Some((limit, remaining, at)) = requests_header {
        headers.push(("x-ratelimit-limit-requests", limit.to_string()));
        headers.push(("x-ratelimit-remaining-requests", remaining.to_string()));
        headers.push(("x-ratelimit-reset-requests", duration(at - now)));
    }
    if let Some((limit, remaining, at)) = tokens_header {
        headers.push(("x-ratelimit-limit-tokens", limit.to_string()));
        headers.push(("x-ratelimit-remaining-tokens", remaining.to_string()));
        headers.push(("x-ratelimit-reset-tokens", duration(at - now)));
    }
    Ok(Ok(Checked { slot, headers }))
}

/// A limit's figures for its `x-ratelimit-*` headers: the limit, what is left, when it resets.
type Header = Option<(i64, i64, i64)>;

/// Counts the request in each minute's window and takes a generation slot where a concurrent
/// limit holds: the slot, and the tightest minute window; or the window it is refused by.
fn take(
    conn: &mut Conn,
    now: i64,
    user_id: i64,
    pool: &str,
    holding: &[(&'static str, Limits)],
    periods: &Periods,
) -> AppResult<Result<(Option<i64>, Header), Refusal>> {
    let minute = now.div_euclid(60);
    let mut header: Header = None;
    for (covering, limits) in holding {
        let Some(allowed) = limits.requests_per_minute else { continue };
        let sent: i64 = conn.get_result(
            diesel::insert_into(request_windows::table)
                .values((
                    request_windows::user_id.eq(user_id),
                    request_windows::pool.eq(*covering),
                    request_windows::minute.eq(minute),
                    request_windows::requests.eq(1),
                ))
                .on_conflict((request_windows::user_id, request_windows::pool, request_windows::minute))
                .do_update()
                .set(request_windows::requests.eq(request_windows::requests + 1))
                .returning(request_windows::requests),
        )?;
        if sent > allowed {
            return Ok(Err(Refusal {
                limit: Limit::RequestsPerMinute,
                covering,
                used: sent - 1,
                allowed,
                resets_at: Some(periods.next_minute_at),
            }));
        }
        let remaining = allowed - sent;
        if header.is_none_or(|(_, r, _)| remaining < r) {
            header = Some((allowed, remaining, periods.next_minute_at));
        }
    }
    if !holding.iter().any(|(_, l)| l.concurrent.is_some()) {
        return Ok(Ok((None, header)));
    }
    let id: i64 = conn.get_result(
        diesel::insert_into(generation_slots::table)
            .values((
                generation_slots::user_id.eq(user_id),
                generation_slots::pool.eq(pool),
                generation_slots::until.eq(now + SLOT_LAPSE_SECS),
            ))
            .returning(generation_slots::id),
    )?;
    Ok(Ok((Some(id), header)))
}

/// Answers `user_id` is writing that `covering` counts, this request's included.
fn running_slots(conn: &mut Conn, now: i64, user_id: i64, covering: &str) -> AppResult<i64> {
    let mine = generation_slots::table
        .filter(generation_slots::user_id.eq(user_id))
        .filter(generation_slots::until.gt(now));
    Ok(match covering {
        "all" => conn.get_result(mine.count())?,
        only => conn.get_result(mine.filter(generation_slots::pool.eq(only)).count())?,
    })
}

/// How many times, and how long apart, a full concurrent limit is counted again before a
/// refusal.
const SLOT_RETRIES: usize = 3;
const SLOT_RETRY_MS: u64 = 20;

/// Frees a generation slot.
pub fn free(conn: &mut Conn, slot: i64) -> AppResult<()> {
    conn.execute(diesel::delete(generation_slots::table.find(slot)))?;
    Ok(())
}

/// A span as OpenAI's `x-ratelimit-reset-*` headers write it: `59s`, `6m0s`, `3h2m1s`.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

impl Refusal {
    /// The message the person reads, with what they used and when they can go on.
    pub fn message(&self, now: i64, currency: &str) -> String {
        let models = match self.covering {
            "local" => " on local models",
            "remote" => " on remote models",
            _ => "",
        };
        let when =
            |at: i64| format!("it resets at {} (in {})", crate::clock::format_time(at), duration(at - now));
        let n = |v: i64| group_digits(v);
        match self.limit {
            Limit::TokensPerDay => format!(
                "You have used {} of your {} tokens for today{models}; {}.",
                n(self.used),
                n(self.allowed),
                when(self.resets_at.unwrap_or(now))
            ),
            Limit::TokensPerMonth => format!(
                "You have used {} of your {} tokens for this month{models}; {}.",
                n(self.used),
                n(self.allowed),
                when(self.resets_at.unwrap_or(now))
            ),
            Limit::SpendPerMonth => format!(
                "You have spent {:.2} of your {:.2} {currency} for this month on remote models; {}.",
                self.used as f64 / 1e6,
                self.allowed as f64 / 1e6,
                when(self.resets_at.unwrap_or(now))
            ),
            Limit::RequestsPerMinute => format!(
                "You have sent {} requests this minute{models}, the most allowed; try again in {}.",
                n(self.used),
                duration(self.resets_at.unwrap_or(now) - now)
            ),
            Limit::Concurrent => match self.used {
                1 => format!(
                    "You already have an answer being written{models}, the most allowed; wait for it to finish."
                ),
                used => format!(
                    "You already have {} answers being written{models}, the most allowed; wait for one to finish.",
                    n(used)
                ),
            },
        }
    }

    /// The error a client gets: 429 with the reason OpenAI gives (`rate_limit_exceeded` for a
    /// rate, `insufficient_quota` for a month's allowance), `Retry-After` and the
    /// `x-ratelimit-*` header of the limit met.
    pub fn error(&self, now: i64, currency: &str) -> AppError {
        let reason = match self.limit {
            Limit::TokensPerMonth | Limit::SpendPerMonth => Reason::QuotaExceeded,
            _ => Reason::RateLimitExceeded,
        };
        let wait = self.resets_at.map_or(5, |at| (at - now).max(1));
        let mut error = AppError::new(ErrorKind::OverQuota, self.message(now, currency))
            .with_reason(reason)
            .with_retry_after(wait as u64);
        let kind = match self.limit {
            Limit::RequestsPerMinute | Limit::Concurrent => "requests",
            _ => "tokens",
        };
        if self.limit != Limit::SpendPerMonth {
            error.headers = vec![
                (header(kind, "limit"), self.allowed.to_string()),
                (header(kind, "remaining"), "0".to_string()),
                (header(kind, "reset"), duration(wait)),
            ];
        }
        error
    }
}

fn header(kind: &str, what: &str) -> &'static str {
    match (what, kind) {
        ("limit", "requests") => "x-ratelimit-limit-requests",
        ("remaining", "requests") => "x-ratelimit-remaining-requests",
        ("reset", "requests") => "x-ratelimit-reset-requests",
        ("limit", _) => "x-ratelimit-limit-tokens",
        ("remaining", _) => "x-ratelimit-remaining-tokens",
        _ => "x-ratelimit-reset-tokens",
    }
}

/// `1234567` as `1,234,567`.
pub fn group_digits(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 { format!("-{out}") } else { out }
}

/// Counts a refusal (and leaves its usage record, outcome `refused`); an hourly summary puts
/// them in the audit log.
pub fn count_refusal(conn: &mut Conn, now: i64, record: &Record, limit: Limit) -> AppResult<()> {
    let Some(user_id) = record.user_id else { return Ok(()) };
    conn.execute(
        diesel::insert_into(quota_refusals::table)
            .values((
                quota_refusals::user_id.eq(user_id),
                quota_refusals::hour.eq(now.div_euclid(3600)),
                quota_refusals::limit_name.eq(limit.as_str()),
                quota_refusals::refusals.eq(1),
                quota_refusals::summarized.eq(false),
            ))
            .on_conflict((quota_refusals::user_id, quota_refusals::hour, quota_refusals::limit_name))
            .do_update()
            .set(quota_refusals::refusals.eq(quota_refusals::refusals + 1)),
    )?;
    let mut refused = record.clone();
    refused.outcome = super::Outcome::Refused;
    refused.groups = groups::of_user(conn, user_id)?;
    super::record(conn, &refused)
}

/// Writes one `quota.refused` event per person for each finished hour with refusals not yet
/// summarised, and marks them; returns how many events. One replica does it (the duty's lease).
pub fn summarize_refusals(conn: &mut Conn, now: i64) -> AppResult<usize> {
    let this_hour = now.div_euclid(3600);
    conn.transaction(|c| {
        let rows: Vec<(i64, i64, String, i64)> = c.load(
            quota_refusals::table
                .filter(quota_refusals::summarized.eq(false))
                .filter(quota_refusals::hour.lt(this_hour))
                .order((quota_refusals::user_id.asc(), quota_refusals::hour.asc()))
                .select((
                    quota_refusals::user_id,
                    quota_refusals::hour,
                    quota_refusals::limit_name,
                    quota_refusals::refusals,
                )),
        )?;
        let mut by_hour: BTreeMap<(i64, i64), serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
        for (user_id, hour, limit, n) in rows {
            by_hour.entry((user_id, hour)).or_default().insert(limit, json!(n));
        }
        let actor = Actor::system("quotas");
        for ((user_id, hour), refusals) in &by_hour {
            let name =
                users::get_by_id(c, *user_id).map(|u| u.username).unwrap_or_else(|_| format!("#{user_id}"));
            let total: i64 = refusals.values().filter_map(|v| v.as_i64()).sum();
            let details = json!({
                "hour": crate::audit::query::rfc3339(hour * 3600),
                "refusals": total,
                "by_limit": refusals,
            });
            let event =
                Event::new(&actor, "quota.refused", Outcome::Denied).target("user", &name).details(details);
            audit::record(c, now, &event)?;
        }
        c.execute(
            diesel::update(
                quota_refusals::table
                    .filter(quota_refusals::summarized.eq(false))
                    .filter(quota_refusals::hour.lt(this_hour)),
            )
            .set(quota_refusals::summarized.eq(true)),
        )?;
        Ok(by_hour.len())
    })
}

/// Drops what the limits no longer need: past minutes' windows, lapsed slots, and summarised
/// refusal counts older than a day.
pub fn sweep(conn: &mut Conn, now: i64) -> AppResult<()> {
    conn.execute(diesel::delete(
        request_windows::table.filter(request_windows::minute.lt(now.div_euclid(60) - 1)),
    ))?;
    conn.execute(diesel::delete(generation_slots::table.filter(generation_slots::until.le(now))))?;
    conn.execute(diesel::delete(
        quota_refusals::table
            .filter(quota_refusals::summarized.eq(true))
            .filter(quota_refusals::hour.lt(now.div_euclid(3600) - 24)),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_generous_limit_wins_and_none_is_unlimited() {
        let a = Limits { tokens_per_day: Some(100), requests_per_minute: Some(5), ..Default::default() };
        let b = Limits {
            tokens_per_day: Some(300),
            requests_per_minute: None,
            concurrent: Some(2),
            ..Default::default()
        };
        let m = a.most_generous(b);
        assert_eq!(m.tokens_per_day, Some(300));
        assert_eq!(m.requests_per_minute, None);
        assert_eq!(m.concurrent, None, "a has no concurrent limit, so none holds");
    }

    #[test]
    fn periods_turn_at_utc_midnight_and_the_first_of_the_month() {
        // 2026-12-31 23:59:30 UTC.
        let now = 1_798_761_570;
        let p = Periods::at(now);
        assert_eq!(p.next_day_at, 1_798_761_600);
        assert_eq!(p.next_month_at, 1_798_761_600, "2027-01-01");
        assert_eq!(p.next_minute_at, 1_798_761_600);
        assert_eq!(p.month_first_day * 86_400, 1_796_083_200, "2026-12-01");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(360), "6m0s");
        assert_eq!(duration(3 * 3600 + 121), "3h2m1s");
        assert_eq!(group_digits(1_234_567), "1,234,567");
    }
}

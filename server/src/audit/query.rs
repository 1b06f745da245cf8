//! Reading the log: the filters the viewer, the API and `ayushctl audit` share, newest-first
//! pages for people, and oldest-first streams for exports (CSV and JSON Lines).

use super::AuditEvent;
use crate::error::{AppError, AppResult};
use crate::store::schema::{audit_events, users};
use crate::store::{Conn, columns};
use crate::with_conn;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

diesel::define_sql_function! {
    /// SQL `lower()`, so free-text search ignores case on both backends.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// The filters as they arrive (query string, form, CLI flags). All optional; all must match.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Filter {
    /// From this time on (inclusive): unix seconds, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]`, UTC.
    pub from: Option<String>,
    /// Before this time (exclusive), same forms.
    pub to: Option<String>,
    /// Events by or about this user (their timeline): by name.
    pub user: Option<String>,
    /// Events done by this actor name exactly.
    pub actor: Option<String>,
    /// An action (`user.create`), or a family of them (`auth.*`).
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// Free text, matched case-insensitively in the details, actor, action, target and address.
    pub q: Option<String>,
}

/// A filter checked and turned into values the query can use.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    from: Option<i64>,
    to: Option<i64>,
    user: Option<(String, Option<i64>)>,
    actor: Option<String>,
    action: Option<Action>,
    target_type: Option<String>,
    target_id: Option<String>,
    outcome: Option<String>,
    q: Option<String>,
}

#[derive(Debug, Clone)]
enum Action {
    Exact(String),
    Prefix(String),
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Unix seconds from `1732600000`, `2026-11-26`, `2026-11-26T10:00` or `2026-11-26T10:00:30`
/// (UTC; a trailing `Z` is accepted).
pub fn parse_time(raw: &str) -> Option<i64> {
    let raw = raw.trim().trim_end_matches('Z');
    if let Ok(secs) = raw.parse::<i64>() {
        return Some(secs);
    }
    let (date, clock) = raw.split_once(['T', ' ']).unwrap_or((raw, "00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = clock.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, min) = (t.next()??, t.next()??);
    let s = t.next().flatten().unwrap_or(0);
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let clock =
        time::Time::from_hms(u8::try_from(h).ok()?, u8::try_from(min).ok()?, u8::try_from(s).ok()?).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp())
}

impl Filter {
    pub fn check(&self) -> AppResult<Checked> {
        let bad = |m: String| Err(AppError::bad_request(m));
        let time = |name: &str, v: &Option<String>| -> AppResult<Option<i64>> {
            match nonempty(v) {
                None => Ok(None),
                Some(raw) => parse_time(&raw).map(Some).ok_or_else(|| {
                    AppError::bad_request(format!(
                        "{name} = {raw:?} is not a time: use unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
                    ))
                }),
            }
        };
        let (from, to) = (time("from", &self.from)?, time("to", &self.to)?);
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return bad("from must be before to".into());
        }
        for (name, v) in [
            ("user", &self.user),
            ("actor", &self.actor),
            ("action", &self.action),
            ("target_type", &self.target_type),
            ("target_id", &self.target_id),
            ("q", &self.q),
        ] {
            if v.as_ref().is_some_and(|s| s.len() > 200) {
                return bad(format!("{name} is longer than 200 characters"));
            }
        }
        let outcome = nonempty(&self.outcome);
        if let Some(o) = &outcome
            && !matches!(o.as_str(), "success" | "failure" | "denied")
        {
            return bad(format!("outcome = {o:?}: expected success, failure or denied"));
        }
        let action = nonempty(&self.action).map(|a| match a.strip_suffix('*') {
            Some(prefix) => Action::Prefix(prefix.to_string()),
            None => Action::Exact(a),
        });
        Ok(Checked {
            from,
            to,
            user: nonempty(&self.user).map(|u| (u, None)),
            actor: nonempty(&self.actor),
            action,
            target_type: nonempty(&self.target_type),
            target_id: nonempty(&self.target_id),
            outcome,
            q: nonempty(&self.q).map(|q| format!("%{}%", escape_like(&q.to_lowercase()))),
        })
    }
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The filtered query, boxed for whichever backend the enclosing `with_conn!` arm runs.
macro_rules! filtered {
    ($f:expr) => {{
        let f: &Checked = $f;
        let mut q = audit_events::table.into_boxed();
        if let Some(from) = f.from {
            q = q.filter(audit_events::at.ge(from));
        }
        if let Some(to) = f.to {
            q = q.filter(audit_events::at.lt(to));
        }
        if let Some((name, id)) = &f.user {
            let about = audit_events::target_type.eq("user").and(audit_events::target_id.eq(name.clone()));
            q = match id {
                Some(id) => q.filter(
                    audit_events::actor_id.eq(*id).or(audit_events::actor_name.eq(name.clone())).or(about),
                ),
                None => q.filter(audit_events::actor_name.eq(name.clone()).or(about)),
            };
        }
        if let Some(actor) = &f.actor {
            q = q.filter(audit_events::actor_name.eq(actor.clone()));
        }
        match &f.action {
            Some(Action::Exact(a)) => q = q.filter(audit_events::action.eq(a.clone())),
            Some(Action::Prefix(p)) => {
                q = q.filter(audit_events::action.like(format!("{}%", escape_like(p))).escape('\\'))
            }
            None => {}
        }
        if let Some(t) = &f.target_type {
            q = q.filter(audit_events::target_type.eq(t.clone()));
        }
        if let Some(t) = &f.target_id {
            q = q.filter(audit_events::target_id.eq(t.clone()));
        }
        if let Some(o) = &f.outcome {
            q = q.filter(audit_events::outcome.eq(o.clone()));
        }
        if let Some(pattern) = &f.q {
            q = q.filter(
                lower(audit_events::details)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(lower(audit_events::actor_name).like(pattern.clone()).escape('\\'))
                    .or(lower(audit_events::action).like(pattern.clone()).escape('\\'))
                    .or(audit_events::target_id.like(pattern.clone()).escape('\\'))
                    .or(audit_events::ip.like(pattern.clone()).escape('\\')),
            );
        }
        q
    }};
}

/// Fills in the user's id so their timeline also shows events signed with their id only.
fn resolve_user(conn: &mut Conn, mut f: Checked) -> AppResult<Checked> {
    if let Some((name, _)) = &f.user {
        let name = name.clone();
        let id: Option<i64> =
            conn.first(users::table.filter(users::username.eq(&name)).select(users::id)).optional()?;
        f.user = Some((name, id));
    }
    Ok(f)
}

pub fn by_seq(conn: &mut Conn, seq: i64) -> AppResult<AuditEvent> {
    conn.first(audit_events::table.filter(audit_events::seq.eq(seq)).select(columns::<AuditEvent>()))
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("no audit event {seq}")))
}

/// The events one page holds unless asked for another number.
pub const PAGE: i64 = 100;
/// The most events one page holds; larger asks are cut to it.
pub const MAX_PAGE: i64 = 500;

/// One page, newest first, of events before `before` (a seq).
pub fn page(
    conn: &mut Conn,
    filter: &Checked,
    before: Option<i64>,
    limit: i64,
) -> AppResult<Vec<AuditEvent>> {
    let f = resolve_user(conn, filter.clone())?;
    let limit = limit.clamp(1, MAX_PAGE);
    Ok(with_conn!(conn, |c| {
        let mut q = filtered!(&f);
        if let Some(before) = before {
            q = q.filter(audit_events::seq.lt(before));
        }
        q.order(audit_events::seq.desc()).limit(limit).select(columns::<AuditEvent>()).load(c)
    })?)
}

/// Up to `limit` events after `after` (a seq), oldest first: for following the log.
pub fn page_after(conn: &mut Conn, filter: &Checked, after: i64, limit: i64) -> AppResult<Vec<AuditEvent>> {
    let f = resolve_user(conn, filter.clone())?;
    let limit = limit.clamp(1, MAX_PAGE);
    // A boxed query is built for one backend: `with_conn!` builds it for each.
    Ok(with_conn!(conn, |c| filtered!(&f)
        .filter(audit_events::seq.gt(after))
        .order(audit_events::seq.asc())
        .limit(limit)
        .select(columns::<AuditEvent>())
        .load(c))?)
}

/// Every matching event after `after` (a seq), oldest first, handed to `each` a page at a time
/// so that exports of any size run in bounded memory. `each` returns false to stop.
pub fn scan(
    conn: &mut Conn,
    filter: &Checked,
    after: i64,
    mut each: impl FnMut(&AuditEvent) -> AppResult<bool>,
) -> AppResult<u64> {
    let f = resolve_user(conn, filter.clone())?;
    let mut cursor = after;
    let mut count = 0;
    loop {
        // A boxed query is built for one backend: `with_conn!` builds it for each.
        let rows: Vec<AuditEvent> = with_conn!(&mut *conn, |c| filtered!(&f)
            .filter(audit_events::seq.gt(cursor))
            .order(audit_events::seq.asc())
            .limit(2000)
            .select(columns::<AuditEvent>())
            .load(c))?;
        let Some(last) = rows.last() else { return Ok(count) };
        cursor = last.seq;
        for event in &rows {
            count += 1;
            if !each(event)? {
                return Ok(count);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

pub const CSV_HEADER: &str = "seq,time,actor_id,actor,auth_method,api_key_id,ip,user_agent,action,\
                              target_type,target_id,outcome,details,prev_hash,hash\r\n";

pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// Records an export of what `filter` selects as `audit.export` and returns the seq it reaches:
/// the export holds the events up to that one, not its own event or anything later.
pub fn record_export(
    conn: &mut Conn,
    now: i64,
    actor: &super::Actor,
    filter: &Filter,
    format: Format,
) -> AppResult<i64> {
    conn.transaction(|c| {
        let (head, _) = super::chain::head(c)?;
        let details = serde_json::json!({"format": format, "filter": filter, "through_seq": head});
        super::record(
            c,
            now,
            &super::Event::new(actor, "audit.export", super::Outcome::Success).details(details),
        )?;
        Ok(head)
    })
}

/// Writes the events `filter` selects up to seq `upto`, oldest first, in `format` (CSV with its
/// header), handing `emit` chunks of about 60 KiB so an export of any size runs in bounded
/// memory. `emit` returns false to stop (the reader went away).
pub fn export(
    conn: &mut Conn,
    filter: &Checked,
    format: Format,
    upto: i64,
    mut emit: impl FnMut(String) -> bool,
) -> AppResult<()> {
    let mut buf = String::with_capacity(64 * 1024);
    if format == Format::Csv {
        buf.push_str(CSV_HEADER);
    }
    let mut reading = true;
    scan(conn, filter, 0, |e| {
        if e.seq > upto {
            return Ok(false);
        }
        write_event(&mut buf, format, e);
        if buf.len() >= 60 * 1024 {
            reading = emit(std::mem::take(&mut buf));
        }
        Ok(reading)
    })?;
    if reading && !buf.is_empty() {
        emit(buf);
    }
    Ok(())
}

/// One event as a JSON object: the stored fields, `details` as JSON, the time both ways.
pub fn to_json(e: &AuditEvent) -> serde_json::Value {
    let details = serde_json::from_str::<serde_json::Value>(&e.details)
        .unwrap_or_else(|_| serde_json::Value::String(e.details.clone()));
    serde_json::json!({
        "seq": e.seq,
        "time": rfc3339(e.at),
        "at": e.at,
        "actor_id": e.actor_id,
        "actor": e.actor_name,
        "auth_method": e.auth_method,
        "api_key_id": e.api_key_id,
        "ip": e.ip,
        "user_agent": e.user_agent,
        "action": e.action,
        "target_type": e.target_type,
        "target_id": e.target_id,
        "outcome": e.outcome,
        "details": details,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

/// Appends one event in `format` to `out`.
pub fn write_event(out: &mut String, format: Format, e: &AuditEvent) {
    match format {
        Format::Jsonl => {
            out.push_str(&to_json(e).to_string());
            out.push('\n');
        }
        Format::Csv => {
            let fields = [
                e.seq.to_string(),
                rfc3339(e.at),
                e.actor_id.map(|v| v.to_string()).unwrap_or_default(),
                e.actor_name.clone(),
                e.auth_method.clone().unwrap_or_default(),
                e.api_key_id.map(|v| v.to_string()).unwrap_or_default(),
                e.ip.clone().unwrap_or_default(),
                e.user_agent.clone().unwrap_or_default(),
                e.action.clone(),
                e.target_type.clone().unwrap_or_default(),
                e.target_id.clone().unwrap_or_default(),
                e.outcome.clone(),
                e.details.clone(),
                e.prev_hash.clone().unwrap_or_default(),
                e.hash.clone().unwrap_or_default(),
            ];
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_field(out, field);
            }
            out.push_str("\r\n");
        }
    }
}

/// RFC 4180 quoting. A value a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab,
/// carriage return first; not a number, not a lone `-`) gets a leading `'`, so opening an
/// export cannot execute what an attacker typed into a username or a document title.
pub fn csv_field(out: &mut String, value: &str) {
    let formula =
        value.starts_with(['=', '+', '-', '@', '\t', '\r']) && value != "-" && value.parse::<f64>().is_err();
    let needs_quotes = formula || value.contains([',', '"', '\n', '\r']);
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    if formula {
        out.push('\'');
    }
    out.push_str(&value.replace('"', "\"\""));
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_documented_form() {
        assert_eq!(parse_time("1732600000"), Some(1_732_600_000));
        assert_eq!(parse_time("2026-11-26"), Some(1_795_651_200));
        assert_eq!(parse_time("2026-11-26T10:00"), Some(1_795_651_200 + 36_000));
        assert_eq!(parse_time("2026-11-26T10:00:30Z"), Some(1_795_651_200 + 36_030));
        assert_eq!(parse_time("2026-13-01"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn bad_filters_are_refused_clearly() {
        let f = Filter { outcome: Some("maybe".into()), ..Default::default() };
        assert!(f.check().unwrap_err().message.contains("outcome"));
        let f =
            Filter { from: Some("2026-11-27".into()), to: Some("2026-11-26".into()), ..Default::default() };
        assert!(f.check().unwrap_err().message.contains("before"));
        let f = Filter { from: Some("soon".into()), ..Default::default() };
        assert!(f.check().unwrap_err().message.contains("from"));
        let f = Filter { q: Some("50%_off\\".into()), ..Default::default() };
        assert_eq!(f.check().unwrap().q.as_deref(), Some("%50\\%\\_off\\\\%"));
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut out = String::new();
        csv_field(&mut out, "plain");
        out.push('|');
        csv_field(&mut out, "a,\"b\"\nc");
        out.push('|');
        csv_field(&mut out, "=HYPERLINK(\"x\")");
        out.push('|');
        csv_field(&mut out, "-5");
        assert_eq!(out, "plain|\"a,\"\"b\"\"\nc\"|\"'=HYPERLINK(\"\"x\"\")\"|-5");
    }
}

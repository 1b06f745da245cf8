//! The audit log for compliance officers (role `auditor`): the viewer page, its JSON twin,
//! exports (themselves audited) and verification. Nobody can edit or delete an event here.

use crate::audit::anchor::{self, Checkpoint};
use crate::audit::content::{self, Captured};
use crate::audit::query::{self, Checked, Filter, Format};
use crate::audit::retention::{self, Hold};
use crate::audit::{self, AuditEvent, Event, Outcome, chain, ledger::Status, log, sink};
use crate::clock::format_time;
use crate::error::AppResult;
use crate::http::guard::{AuditorOnly, Authed};
use crate::http::routes::Routes;
use crate::http::ui::{Chrome, CsrfForm, Page, UiError, render, ui_error};
use crate::state::AppState;
use crate::url::encode_component;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use tokio::sync::mpsc;

pub fn routes(r: &mut Routes) {
    r.get("/audit", viewer)
        .post("/audit/verify", verify_form)
        .get("/audit/events/{seq}", event_page)
        .get("/api/audit/events", events_json)
        .get("/api/audit/events/{seq}", event_json)
        .get("/api/audit/export", export)
        .post("/api/audit/verify", verify_json)
        .get("/api/audit/status", status_json)
        .get("/api/audit/checkpoints", checkpoints_json)
        .get("/api/audit/holds", holds_json)
        .put("/api/audit/holds/{username}", place_hold_json)
        .delete("/api/audit/holds/{username}", release_hold_json)
        .post("/audit/holds", place_hold_form)
        .post("/audit/holds/{username}/release", release_hold_form);
}

#[derive(Deserialize, Default)]
struct Paging {
    /// Newest first, older than this seq.
    before: Option<i64>,
    /// Oldest first, newer than this seq (following the log).
    after: Option<i64>,
    limit: Option<i64>,
}

#[derive(Deserialize)]
struct ExportParams {
    format: Format,
}

const PAGE: i64 = 100;

async fn events_json(
    state: web::Data<AppState>,
    _who: Authed<AuditorOnly>,
    filter: web::Query<Filter>,
    paging: web::Query<Paging>,
) -> AppResult<HttpResponse> {
    let (before, after, limit) = (paging.before, paging.after, paging.limit.unwrap_or(PAGE));
    let events = state.audit_log.events(&filter, log::Paging { before, after, limit }).await?;
    let full = events.len() as i64 == limit.clamp(1, log::MAX_PAGE);
    let next_before = (full && after.is_none()).then(|| events.last().map(|e| e.seq)).flatten();
    let events: Vec<_> = events.iter().map(query::to_json).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({"events": events, "next_before": next_before})))
}

/// The filtered log as a file, streamed oldest first. The export is recorded before the first
/// byte leaves, with the filter that chose what it holds.
async fn export(
    state: web::Data<AppState>,
    who: Authed<AuditorOnly>,
    filter: web::Query<Filter>,
    params: web::Query<ExportParams>,
) -> AppResult<HttpResponse> {
    let format = params.format;
    let export = state.audit_log.export(who.actor(), filter.into_inner(), format).await?;
    let now = state.clock.now();
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    actix_web::rt::spawn(async move {
        let sent = export.write(move |chunk| tx.blocking_send(Bytes::from(chunk)).is_ok()).await;
        if let Err(e) = sent {
            tracing::error!(error = %e, "audit export failed part-way");
        }
    });
    let name = format!("ayush-audit-{}.{}", now, format.extension());
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(crate::http::Chunks(rx)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    from_checkpoint: Option<Checkpoint>,
}

async fn verify_json(
    state: web::Data<AppState>,
    who: Authed<AuditorOnly>,
    body: Option<web::Json<VerifyBody>>,
) -> AppResult<HttpResponse> {
    let from = body.and_then(|b| b.into_inner().from_checkpoint);
    Ok(HttpResponse::Ok().json(state.audit_log.verify(who.actor(), from).await?))
}

async fn status_json(state: web::Data<AppState>, _who: Authed<AuditorOnly>) -> AppResult<HttpResponse> {
    let ((seq, hash), cursors) = state.store.run(|c| Ok((chain::head(c)?, sink::cursors(c)?))).await?;
    let status = state.audit.status();
    let sinks: Vec<_> = state
        .config
        .audit
        .sinks
        .iter()
        .map(|s| {
            let delivered = cursors.iter().find(|(n, _)| *n == s.name).map_or(0, |(_, d)| *d);
            let seen = status.sinks.iter().find(|x| x.name == s.name);
            serde_json::json!({
                "name": s.name,
                "kind": s.kind,
                "delivered_seq": delivered,
                "backlog": (seq - delivered).max(0),
                "last_error": seen.and_then(|x| x.last_error.clone()),
                "last_delivery_at": seen.and_then(|x| x.last_delivery_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "head": {"seq": seq, "hash": hash},
        "sinks": sinks,
        "signing_key_id": state.audit.keys().key_id(),
        "write_failures": state.store.journal().write_failures(),
        "status": status,
    })))
}

async fn checkpoints_json(state: web::Data<AppState>, _who: Authed<AuditorOnly>) -> AppResult<HttpResponse> {
    let list = state.store.run(anchor::stored_checkpoints).await?;
    Ok(HttpResponse::Ok().json(list))
}

async fn holds_json(state: web::Data<AppState>, _who: Authed<AuditorOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.audit_log.holds().await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    reason: String,
}

async fn place_hold_json(
    state: web::Data<AppState>,
    who: Authed<AuditorOnly>,
    path: web::Path<String>,
    body: web::Json<HoldBody>,
) -> AppResult<HttpResponse> {
    let hold = state.audit_log.hold(who.actor(), path.into_inner(), body.into_inner().reason).await?;
    Ok(HttpResponse::Ok().json(hold))
}

async fn release_hold_json(
    state: web::Data<AppState>,
    who: Authed<AuditorOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    state.audit_log.release(who.actor(), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct HoldForm {
    username: String,
    reason: String,
}

async fn place_hold_form(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AuditorOnly, HoldForm>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/audit");
    let HoldForm { username, reason } = form;
    state.audit_log.hold(who.actor(), username, reason).await.map_err(&err)?;
    Ok(HttpResponse::SeeOther().insert_header(("Location", "/audit")).finish())
}

async fn release_hold_form(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AuditorOnly>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/audit");
    state.audit_log.release(who.actor(), path.into_inner()).await.map_err(&err)?;
    Ok(HttpResponse::SeeOther().insert_header(("Location", "/audit")).finish())
}

/// One event, with the chat content the policy captured for it, decrypted. Reading content is
/// recorded as `audit.content_view`.
async fn one_event(
    state: &AppState,
    who: &Authed<AuditorOnly>,
    seq: i64,
) -> AppResult<(AuditEvent, Option<Result<Captured, String>>)> {
    let (ledger, actor, now) = (state.audit.clone(), who.actor(), state.clock.now());
    state
        .store
        .run(move |c| {
            let event = query::by_seq(c, seq)?;
            let details: serde_json::Value = serde_json::from_str(&event.details).unwrap_or_default();
            let binding =
                content::Binding::of(event.target_type.as_deref(), event.target_id.as_deref(), &details);
            let captured = match (details.get("content"), binding) {
                (Some(_), Some(binding)) => {
                    let opened = content::open(ledger.keys(), &details, &binding);
                    let outcome = if opened.is_ok() { Outcome::Success } else { Outcome::Failure };
                    let event_seen = Event::new(&actor, "audit.content_view", outcome)
                        .target("audit_event", seq)
                        .details(binding.to_json());
                    audit::record(c, now, &event_seen)?;
                    Some(opened)
                }
                _ => None,
            };
            Ok((event, captured))
        })
        .await
}

async fn event_json(
    state: web::Data<AppState>,
    who: Authed<AuditorOnly>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (event, captured) = one_event(&state, &who, path.into_inner()).await?;
    let mut json = query::to_json(&event);
    match captured {
        Some(Ok(c)) => json["captured"] = serde_json::json!(c),
        Some(Err(e)) => json["captured_error"] = serde_json::json!(e),
        None => {}
    }
    Ok(HttpResponse::Ok().json(json))
}

#[derive(Template)]
#[template(path = "audit_event.html")]
struct EventPage {
    chrome: Chrome,
    row: Row,
    hash: String,
    prev_hash: String,
    user_agent: String,
    captured: Option<Captured>,
    captured_error: Option<String>,
}

async fn event_page(
    state: web::Data<AppState>,
    Page(who): Page<AuditorOnly>,
    path: web::Path<i64>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/audit");
    let (event, captured) = one_event(&state, &who, path.into_inner()).await.map_err(&err)?;
    let (captured, captured_error) = match captured {
        Some(Ok(c)) => (Some(c), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let page = EventPage {
        chrome: Chrome::for_user(&state, &who, "audit", None),
        row: Row::from(&event),
        hash: event.hash.clone().unwrap_or_default(),
        prev_hash: event.prev_hash.clone().unwrap_or_default(),
        user_agent: event.user_agent.clone().unwrap_or_default(),
        captured,
        captured_error,
    };
    Ok(render(&page, StatusCode::OK))
}

/// One event as the viewer shows it.
pub struct Row {
    pub seq: i64,
    pub time: String,
    pub day: String,
    pub actor: String,
    pub method: String,
    pub ip: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub details: String,
    /// The chat content policy captured this turn (encrypted).
    pub has_content: bool,
}

impl Row {
    fn from(e: &AuditEvent) -> Row {
        let time = format_time(e.at);
        let mut parsed = serde_json::from_str::<serde_json::Value>(&e.details).ok();
        let has_content =
            parsed.as_mut().and_then(|v| v.as_object_mut()).and_then(|o| o.remove("content")).is_some();
        let details = parsed
            .filter(|v| v.as_object().is_none_or(|o| !o.is_empty()))
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
            .unwrap_or_default();
        Row {
            seq: e.seq,
            day: time.split(' ').next().unwrap_or_default().to_string(),
            time: time.split(' ').nth(1).unwrap_or_default().to_string(),
            actor: e.actor_name.clone(),
            method: match (&e.auth_method, e.api_key_id) {
                (Some(m), Some(k)) => format!("{m} #{k}"),
                (Some(m), None) => m.clone(),
                (None, _) => String::new(),
            },
            ip: e.ip.clone().unwrap_or_default(),
            action: e.action.clone(),
            target: match (&e.target_type, &e.target_id) {
                (Some(t), Some(id)) => format!("{t} {id}"),
                _ => String::new(),
            },
            outcome: e.outcome.clone(),
            details,
            has_content,
        }
    }

    pub fn actor_link(&self) -> String {
        format!("/audit?user={}", encode_component(&self.actor))
    }
}

/// The verification status line at the top of the viewer.
pub struct Health {
    pub ok: Option<bool>,
    pub text: String,
}

impl Health {
    fn from(status: &Status, head: i64) -> Health {
        if let Some(problem) = &status.anchor_problem {
            return Health { ok: Some(false), text: problem.clone() };
        }
        match &status.last_report {
            None => Health {
                ok: None,
                text: format!("Not verified since start-up; the log holds {head} events."),
            },
            Some(r) if r.ok => Health {
                ok: Some(true),
                text: format!(
                    "Intact: {} events and {} signed checkpoints verified at {}.",
                    r.events,
                    r.checkpoints,
                    format_time(r.verified_at)
                ),
            },
            Some(r) => Health {
                ok: Some(false),
                text: format!("{} (checked {})", r.summary(), format_time(r.verified_at)),
            },
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct ViewerPage {
    chrome: Chrome,
    filter: Filter,
    rows: Vec<Row>,
    health: Health,
    head: i64,
    /// The query string of the current filter, for export and paging links.
    query: String,
    older: Option<i64>,
    timeline: Option<String>,
    holds: Vec<Hold>,
}

impl ViewerPage {
    fn value<'a>(&self, v: &'a Option<String>) -> &'a str {
        v.as_deref().unwrap_or_default()
    }
    fn outcome_is(&self, o: &str) -> bool {
        self.filter.outcome.as_deref() == Some(o)
    }
    /// Whether this row starts a new day (the viewer groups rows under day headings).
    fn new_day(&self, i: &usize) -> bool {
        *i == 0 || self.rows.get(i - 1).map(|r| &r.day) != self.rows.get(*i).map(|r| &r.day)
    }
}

fn query_string(filter: &Filter) -> String {
    let pairs = [
        ("from", &filter.from),
        ("to", &filter.to),
        ("user", &filter.user),
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("target_type", &filter.target_type),
        ("target_id", &filter.target_id),
        ("outcome", &filter.outcome),
        ("q", &filter.q),
    ];
    pairs
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref().filter(|s| !s.trim().is_empty()).map(|v| format!("{k}={}", encode_component(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn viewer(
    state: web::Data<AppState>,
    Page(who): Page<AuditorOnly>,
    filter: web::Query<Filter>,
    paging: web::Query<Paging>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/audit");
    let filter = filter.into_inner();
    let (checked, flash) = match filter.check() {
        Ok(c) => (c, None),
        Err(e) => (Checked::default(), Some(crate::http::ui::Flash { kind: "error", text: e.message })),
    };
    let before = paging.before;
    let (events, head, holds) = state
        .store
        .run(move |c| Ok((query::page(c, &checked, before, PAGE)?, chain::head(c)?.0, retention::holds(c)?)))
        .await
        .map_err(&err)?;
    let older = (events.len() as i64 == PAGE).then(|| events.last().map(|e| e.seq)).flatten();
    let rows = events.iter().map(Row::from).collect();
    let health = Health::from(&state.audit.status(), head);
    let chrome = Chrome::for_user(&state, &who, "audit", flash);
    let timeline = filter.user.clone().filter(|u| !u.trim().is_empty());
    let page = ViewerPage {
        chrome,
        query: query_string(&filter),
        filter,
        rows,
        health,
        head,
        older,
        timeline,
        holds,
    };
    Ok(render(&page, StatusCode::OK))
}

async fn verify_form(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AuditorOnly>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/audit");
    state.audit_log.verify(who.actor(), None).await.map_err(&err)?;
    Ok(HttpResponse::SeeOther().insert_header(("Location", "/audit")).finish())
}

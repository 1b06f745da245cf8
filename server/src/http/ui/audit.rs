//! The audit viewer for compliance officers (role `auditor`): the filtered log grouped by day,
//! one event with its captured content, verification and legal holds from the page. It adapts
//! to the AuditLog service as the JSON API does.

use crate::audit::content::Captured;
use crate::audit::query::{self, Checked, Filter};
use crate::audit::retention::{self, Hold};
use crate::audit::{AuditEvent, chain, ledger::Status};
use crate::clock::format_time;
use crate::http::guard::AuditorOnly;
use crate::http::routes::Routes;
use crate::http::ui::{Chrome, CsrfForm, Page, UiError, render, ui_error};
use crate::state::AppState;
use crate::url::encode_component;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/audit", viewer)
        .post("/audit/verify", verify_form)
        .get("/audit/events/{seq}", event_page)
        .post("/audit/holds", place_hold_form)
        .post("/audit/holds/{username}/release", release_hold_form);
}

/// Which page of the viewer: the newest events, or those older than `before` (a seq).
#[derive(Deserialize, Default)]
struct Paging {
    before: Option<i64>,
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
    let (event, captured) = state.audit_log.event(who.actor(), path.into_inner()).await.map_err(&err)?;
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
        .run(move |c| {
            Ok((query::page(c, &checked, before, query::PAGE)?, chain::head(c)?.0, retention::holds(c)?))
        })
        .await
        .map_err(&err)?;
    let older = (events.len() as i64 == query::PAGE).then(|| events.last().map(|e| e.seq)).flatten();
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

//! The audit log over JSON, for compliance officers (role `auditor`) and their tools: events,
//! one event with its captured content, exports (themselves audited), verification, status,
//! checkpoints and legal holds. They adapt to the AuditLog service; nobody can edit or delete an
//! event here.

use crate::audit::anchor::{self, Checkpoint};
use crate::audit::query::{self, Filter, Format};
use crate::audit::{chain, log, sink};
use crate::error::AppResult;
use crate::http::guard::{AuditorOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use tokio::sync::mpsc;

pub fn routes(r: &mut Routes) {
    r.get("/api/audit/events", events_json)
        .get("/api/audit/events/{seq}", event_json)
        .get("/api/audit/export", export)
        .post("/api/audit/verify", verify_json)
        .get("/api/audit/status", status_json)
        .get("/api/audit/checkpoints", checkpoints_json)
        .get("/api/audit/holds", holds_json)
        .put("/api/audit/holds/{username}", place_hold_json)
        .delete("/api/audit/holds/{username}", release_hold_json);
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

async fn events_json(
    state: web::Data<AppState>,
    _who: Authed<AuditorOnly>,
    filter: web::Query<Filter>,
    paging: web::Query<Paging>,
) -> AppResult<HttpResponse> {
    let (before, after, limit) = (paging.before, paging.after, paging.limit.unwrap_or(log::PAGE));
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

async fn event_json(
    state: web::Data<AppState>,
    who: Authed<AuditorOnly>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (event, captured) = state.audit_log.event(who.actor(), path.into_inner()).await?;
    let mut json = query::to_json(&event);
    match captured {
        Some(Ok(c)) => json["captured"] = serde_json::json!(c),
        Some(Err(e)) => json["captured_error"] = serde_json::json!(e),
        None => {}
    }
    Ok(HttpResponse::Ok().json(json))
}

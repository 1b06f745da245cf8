//! Admin JSON endpoints for single sign-on: directory group mappings.

use crate::auth::Role;
use crate::auth::guard::{AdminOnly, Authed};
use crate::auth::{directory_sync, mapping};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/mappings", web::get().to(list))
        .route("/api/admin/mappings", web::post().to(create))
        .route("/api/admin/mappings/{id}", web::delete().to(remove))
        .route("/api/admin/directory/sync", web::post().to(sync));
}

async fn list(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.store.run(mapping::rules).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMapping {
    directory_group: String,
    role: Option<String>,
    group: Option<String>,
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<NewMapping>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let role = body.role.map(|r| r.parse::<Role>().map_err(AppError::validation)).transpose()?;
    let (now, actor) = (state.clock.now(), who.actor());
    let rule = state
        .store
        .run(move |c| mapping::add(c, now, &actor, &body.directory_group, role, body.group.as_deref()))
        .await?;
    Ok(HttpResponse::Created().json(rule))
}

async fn remove(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (now, actor, id) = (state.clock.now(), who.actor(), path.into_inner());
    state.store.run(move |c| mapping::remove(c, now, &actor, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    #[serde(default)]
    dry_run: bool,
}

/// Runs the directory sync now (or, with `dry_run`, says what it would change).
async fn sync(
    state: web::Data<AppState>,
    _who: Authed<AdminOnly>,
    body: Option<web::Json<SyncBody>>,
) -> AppResult<HttpResponse> {
    let dry_run = body.map(|b| b.dry_run).unwrap_or_default();
    let directory = state
        .directory
        .clone()
        .ok_or_else(|| AppError::validation("no directory is configured ([ldap] enabled = false)"))?;
    let report = directory_sync::sync(
        &state.store,
        &directory,
        state.clock.now(),
        state.authority().default_role,
        dry_run,
    )
    .await?;
    Ok(HttpResponse::Ok().json(report))
}

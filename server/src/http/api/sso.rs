//! Single sign-on administration over JSON: directory group mappings and the directory sync,
//! adapted to the Sso service.

use crate::auth::sso::NewRule;
use crate::error::AppResult;
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/api/admin/mappings", list)
        .post("/api/admin/mappings", create)
        .delete("/api/admin/mappings/{id}", remove)
        .post("/api/admin/directory/sync", sync);
}

async fn list(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.sso.rules().await?))
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<NewRule>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(state.sso.map(who.actor(), body.into_inner()).await?))
}

async fn remove(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    state.sso.unmap(who.actor(), path.into_inner()).await?;
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
    Ok(HttpResponse::Ok().json(state.sso.sync(dry_run).await?))
}

//! Assistants (model presets) over HTTP: `/api/presets` lists those one may chat with;
//! `/api/admin/presets…` lets admins make, change and remove them.

use crate::assistants::PresetBody;
use crate::error::AppResult;
use crate::http::guard::{AdminOnly, Authed, ChatUser};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::{HttpResponse, web};

pub fn routes(r: &mut Routes) {
    r.get("/api/presets", offered)
        .get("/api/admin/presets", list)
        .post("/api/admin/presets", create)
        .get("/api/admin/presets/{name}", show)
        .patch("/api/admin/presets/{name}", change)
        .delete("/api/admin/presets/{name}", remove);
}

async fn offered(state: web::Data<AppState>, who: Authed<ChatUser>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.assistants.offered_to(who.user.id).await?))
}

async fn list(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.assistants.list().await?))
}

async fn show(
    state: web::Data<AppState>,
    _who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.assistants.show(path.into_inner()).await?))
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<PresetBody>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(state.assistants.create(who.actor(), body.into_inner()).await?))
}

async fn change(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
    body: web::Json<PresetBody>,
) -> AppResult<HttpResponse> {
    let changed = state.assistants.change(who.actor(), path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(changed))
}

async fn remove(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    state.assistants.remove(who.actor(), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

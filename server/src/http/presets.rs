//! Assistants (model presets) over HTTP: `/api/presets` lists those one may chat with;
//! `/api/admin/presets…` lets admins make, change and remove them.

use crate::chat::presets::{self, PresetBody};
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
    let uid = who.user.id;
    Ok(HttpResponse::Ok().json(state.store.run(move |c| presets::offered_to(c, uid)).await?))
}

async fn list(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.store.run(presets::list).await?))
}

async fn show(
    state: web::Data<AppState>,
    _who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    Ok(HttpResponse::Ok().json(state.store.run(move |c| presets::get(c, &name)).await?))
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<PresetBody>,
) -> AppResult<HttpResponse> {
    let (now, actor, catalog, body) =
        (state.clock.now(), who.actor(), state.catalog.clone(), body.into_inner());
    let made = state.store.run(move |c| presets::create(c, now, &actor, &catalog, body)).await?;
    Ok(HttpResponse::Created().json(made))
}

async fn change(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
    body: web::Json<PresetBody>,
) -> AppResult<HttpResponse> {
    let (now, actor, catalog, name, body) =
        (state.clock.now(), who.actor(), state.catalog.clone(), path.into_inner(), body.into_inner());
    Ok(HttpResponse::Ok()
        .json(state.store.run(move |c| presets::change(c, now, &actor, &catalog, &name, body)).await?))
}

async fn remove(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (now, actor, name) = (state.clock.now(), who.actor(), path.into_inner());
    state.store.run(move |c| presets::remove(c, now, &actor, &name)).await?;
    Ok(HttpResponse::NoContent().finish())
}

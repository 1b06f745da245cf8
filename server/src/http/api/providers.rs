//! Remote providers over JSON, for admins. An API key is taken once and never shown again;
//! `upstream-models` asks the provider for its models, which checks the URL, the egress policy
//! and the key in one go. They adapt to the Providers service.

use crate::catalog::providers::{Change, NewProvider};
use crate::error::AppResult;
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub fn routes(r: &mut Routes) {
    r.get("/api/admin/providers", list)
        .post("/api/admin/providers", create)
        .get("/api/admin/providers/{name}", show)
        .patch("/api/admin/providers/{name}", change)
        .delete("/api/admin/providers/{name}", remove)
        .get("/api/admin/providers/{name}/upstream-models", upstream_models);
}

async fn list(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.providers.list().await?))
}

async fn show(
    state: web::Data<AppState>,
    _who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    Ok(HttpResponse::Ok().json(state.providers.show(name).await?))
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<NewProvider>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(state.providers.create(who.actor(), body.into_inner()).await?))
}

async fn change(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
    body: web::Json<Change>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok()
        .json(state.providers.change(who.actor(), path.into_inner(), body.into_inner()).await?))
}

async fn remove(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    state.providers.remove(who.actor(), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn upstream_models(
    state: web::Data<AppState>,
    _who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let models = state.providers.test(path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(json!({"models": models})))
}

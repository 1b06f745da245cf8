//! API keys over JSON: people create, list and revoke their own; admins list and revoke
//! anyone's, and create keys for themselves and for service accounts (never for another person:
//! see `tokens::Issuer`). A key is shown once; only its SHA-256 is stored, and it carries its
//! owner's permissions. They adapt to the Keys service.

use crate::auth::keys::NewKey;
use crate::error::AppResult;
use crate::http::guard::{AdminOnly, AnyUser, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/api/keys", mine)
        .post("/api/keys", create_mine)
        .delete("/api/keys/{id}", revoke_mine)
        .get("/api/admin/keys", all)
        .post("/api/admin/keys", create_for)
        .delete("/api/admin/keys/{id}", revoke_any);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOwnKey {
    name: String,
    /// Days until it expires (default: never).
    expires_days: Option<u32>,
}

async fn mine(state: web::Data<AppState>, who: Authed<AnyUser>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.keys.own(who.user.username.clone()).await?))
}

async fn create_mine(
    state: web::Data<AppState>,
    who: Authed<AnyUser>,
    body: web::Json<NewOwnKey>,
) -> AppResult<HttpResponse> {
    let NewOwnKey { name, expires_days } = body.into_inner();
    let new = NewKey { user: who.user.username.clone(), name, expires_days };
    Ok(HttpResponse::Created().json(state.keys.create(who.actor(), who.issuer(), new).await?))
}

async fn revoke_mine(
    state: web::Data<AppState>,
    who: Authed<AnyUser>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    state.keys.revoke_own(who.actor(), who.user.id, path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct UserQuery {
    user: Option<String>,
}

async fn all(
    state: web::Data<AppState>,
    _who: Authed<AdminOnly>,
    q: web::Query<UserQuery>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.keys.list(q.into_inner().user).await?))
}

async fn create_for(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<NewKey>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(state.keys.create(who.actor(), who.issuer(), body.into_inner()).await?))
}

async fn revoke_any(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    state.keys.revoke(who.actor(), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

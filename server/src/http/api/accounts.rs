//! `/api/admin/users` and `/api/admin/groups`, over the Accounts service.

use crate::auth::accounts::{AccountChanges, NewAccount, NewGroup};
use crate::error::AppResult;
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/api/admin/users", list_users)
        .post("/api/admin/users", create_user)
        .get("/api/admin/users/{username}", get_user)
        .patch("/api/admin/users/{username}", update_user)
        .post("/api/admin/users/{username}/password", reset_password)
        .post("/api/admin/users/{username}/link", link_user)
        .post("/api/admin/users/{username}/deprovision", deprovision_user)
        .get("/api/admin/groups", list_groups)
        .post("/api/admin/groups", create_group)
        .get("/api/admin/groups/{name}", get_group)
        .delete("/api/admin/groups/{name}", delete_group)
        .put("/api/admin/groups/{name}/members/{username}", add_member)
        .delete("/api/admin/groups/{name}/members/{username}", remove_member);
}

async fn list_users(state: web::Data<AppState>, _: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.list().await?))
}

async fn create_user(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<NewAccount>,
) -> AppResult<HttpResponse> {
    let user = state.accounts.create(who.actor(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(user))
}

async fn get_user(
    state: web::Data<AppState>,
    _: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.show(path.into_inner()).await?))
}

async fn update_user(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
    body: web::Json<AccountChanges>,
) -> AppResult<HttpResponse> {
    let user = state.accounts.change(who.actor(), path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

async fn reset_password(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
    body: web::Json<PasswordBody>,
) -> AppResult<HttpResponse> {
    state.accounts.reset_password(who.actor(), path.into_inner(), body.into_inner().password).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    provider: String,
    subject: String,
}

/// Links an OIDC identity to an existing account.
async fn link_user(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
    body: web::Json<LinkBody>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let user = state.accounts.link(who.actor(), path.into_inner(), &body.provider, &body.subject).await?;
    Ok(HttpResponse::Ok().json(user))
}

async fn deprovision_user(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.deprovision(who.actor(), path.into_inner()).await?))
}

async fn list_groups(state: web::Data<AppState>, _: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.groups().await?))
}

async fn create_group(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<NewGroup>,
) -> AppResult<HttpResponse> {
    let group = state.accounts.create_group(who.actor(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(group))
}

async fn get_group(
    state: web::Data<AppState>,
    _: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.accounts.group(path.into_inner()).await?))
}

async fn delete_group(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    state.accounts.delete_group(who.actor(), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn add_member(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (group, user) = path.into_inner();
    state.accounts.add_member(who.actor(), group, user).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn remove_member(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (group, user) = path.into_inner();
    state.accounts.remove_member(who.actor(), group, user).await?;
    Ok(HttpResponse::NoContent().finish())
}

//! JSON API for the web UI, scripts and `ayushctl` in remote mode: sign-in here, each
//! capability's routes in a module of its own. Handlers only adapt HTTP to the services.

pub mod accounts;
pub mod assistants;
pub mod audit;
pub mod backup;
pub mod chat;
pub mod keys;
pub mod knowledge;
pub mod models;
pub mod providers;
pub mod sso;
pub mod status;
pub mod theme;
pub mod usage;

use crate::auth::{groups, login};
use crate::error::{AppError, AppResult};
use crate::http::guard::{AnyUser, Authed, SESSION_COOKIE, Via, client_ip, user_agent};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

/// What `/api/…` paths that no route serves answer.
pub async fn unknown_endpoint() -> AppResult<HttpResponse> {
    Err(AppError::not_found("no such API endpoint"))
}

pub fn routes(r: &mut Routes) {
    r.post("/api/auth/login", login_json).post("/api/auth/logout", logout_json).get("/api/me", me);
    accounts::routes(r);
    models::routes(r);
    usage::routes(r);
    status::routes(r);
    theme::routes(r);
}

pub fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies())
        .finish()
}

pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = session_cookie(state, String::new());
    c.make_removal();
    c
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login_json(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let attempt = login::Attempt {
        username: body.username,
        password: body.password,
        ip: client_ip(&req, &state.proxies),
        user_agent: user_agent(&req),
        previous_session: req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()),
    };
    let signed = login::sign_in(&state.authority(), attempt).await?;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&state, signed.issued.token))
        .json(serde_json::json!({"user": signed.user})))
}

async fn logout_json(state: web::Data<AppState>, who: Authed<AnyUser>) -> AppResult<HttpResponse> {
    if let Via::Session { token, .. } = &who.via {
        login::sign_out(&state.store, &state.clock, who.actor(), token.clone()).await?;
    }
    Ok(HttpResponse::NoContent().cookie(removal_cookie(&state)).finish())
}

async fn me(state: web::Data<AppState>, who: Authed<AnyUser>) -> AppResult<HttpResponse> {
    let id = who.user.id;
    let groups = state.store.run(move |c| groups::of_user(c, id)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"user": who.user, "groups": groups})))
}

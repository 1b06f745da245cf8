//! Personal API keys: people create, name, list and revoke their own (page and JSON); admins
//! list and revoke anyone's, and create keys for themselves and for service accounts (never for
//! another person: see `tokens::Issuer`). A key is shown once; only its SHA-256 is stored, and
//! it carries its owner's permissions.

use crate::auth::tokens::{self, ApiToken};
use crate::error::{AppError, AppResult};
use crate::http::guard::{AdminOnly, AnyUser, Authed};
use crate::http::routes::Routes;
use crate::http::ui::{
    Chrome, CsrfForm, DoneQuery, Flash, Page, UiError, done_flash, render, see_other, ui_error,
};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

pub fn routes(r: &mut Routes) {
    r.get("/keys", page)
        .post("/keys", page_create)
        .post("/keys/{id}/revoke", page_revoke)
        .get("/api/keys", mine)
        .post("/api/keys", create_mine)
        .delete("/api/keys/{id}", revoke_mine)
        .get("/api/admin/keys", all)
        .post("/api/admin/keys", create_for)
        .delete("/api/admin/keys/{id}", revoke_any);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    /// Days until it expires (default: never).
    expires_days: Option<u32>,
}

async fn mine(state: web::Data<AppState>, who: Authed<AnyUser>) -> AppResult<HttpResponse> {
    let name = who.user.username.clone();
    let keys: Vec<ApiToken> =
        state.store.run(move |c| tokens::list(c, Some(&name))).await?.into_iter().map(|(t, _)| t).collect();
    Ok(HttpResponse::Ok().json(keys))
}

async fn create_mine(
    state: web::Data<AppState>,
    who: Authed<AnyUser>,
    body: web::Json<NewKey>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let (now, actor, issuer, user) =
        (state.clock.now(), who.actor(), who.issuer(), who.user.username.clone());
    let (key, secret) = state
        .store
        .run(move |c| tokens::create_for_days(c, now, &actor, issuer, &user, &body.name, body.expires_days))
        .await?;
    Ok(HttpResponse::Created().json(json!({"key": key, "secret": secret})))
}

async fn revoke_mine(
    state: web::Data<AppState>,
    who: Authed<AnyUser>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (now, actor, uid, id) = (state.clock.now(), who.actor(), who.user.id, path.into_inner());
    state.store.run(move |c| tokens::revoke_own(c, now, &actor, uid, id)).await?;
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
    let user = q.into_inner().user;
    let rows = state.store.run(move |c| tokens::list(c, user.as_deref())).await?;
    let rows: Vec<_> = rows
        .into_iter()
        .map(|(t, user)| {
            let mut v = serde_json::to_value(t).unwrap_or_default();
            v["user"] = json!(user);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyFor {
    user: String,
    name: String,
    expires_days: Option<u32>,
}

async fn create_for(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<NewKeyFor>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let (now, actor, issuer) = (state.clock.now(), who.actor(), who.issuer());
    let (key, secret) = state
        .store
        .run(move |c| {
            tokens::create_for_days(c, now, &actor, issuer, &body.user, &body.name, body.expires_days)
        })
        .await?;
    Ok(HttpResponse::Created().json(json!({"key": key, "secret": secret})))
}

async fn revoke_any(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (now, actor, id) = (state.clock.now(), who.actor(), path.into_inner());
    state.store.run(move |c| tokens::revoke(c, now, &actor, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Template)]
#[template(path = "keys.html")]
struct KeysPage {
    chrome: Chrome,
    keys: Vec<ApiToken>,
    /// A key just created, shown this once.
    created: Option<String>,
}

impl KeysPage {
    fn when(&self, at: &Option<i64>) -> String {
        at.map(crate::clock::format_time).unwrap_or_else(|| "never".into())
    }
}

async fn render_page(
    state: &AppState,
    who: &Authed<AnyUser>,
    flash: Option<Flash>,
    created: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let name = who.user.username.clone();
    let keys = state
        .store
        .run(move |c| Ok(tokens::list(c, Some(&name))?.into_iter().map(|(t, _)| t).collect()))
        .await
        .map_err(ui_error(state, "/keys"))?;
    let page = KeysPage { chrome: Chrome::for_user(state, who, "keys", flash), keys, created };
    let mut resp = render(&page, status);
    // The page may hold a secret: never cache it.
    resp.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(resp)
}

async fn page(
    state: web::Data<AppState>,
    Page(who): Page<AnyUser>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_page(&state, &who, done_flash(&q), None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct KeyForm {
    name: String,
    #[serde(default)]
    expires_days: String,
}

async fn page_create(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AnyUser, KeyForm>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        let days = match form.expires_days.trim() {
            "" => None,
            d => Some(d.parse::<u32>().map_err(|_| AppError::validation("expiry must be a number of days"))?),
        };
        let (now, actor, issuer, user) =
            (state.clock.now(), who.actor(), who.issuer(), who.user.username.clone());
        state
            .store
            .run(move |c| tokens::create_for_days(c, now, &actor, issuer, &user, &form.name, days))
            .await
    }
    .await;
    match result {
        Ok((_, secret)) => {
            let flash = Flash { kind: "ok", text: "Key created. Copy it now: it is not shown again.".into() };
            render_page(&state, &who, Some(flash), Some(secret), StatusCode::CREATED).await
        }
        Err(e) => {
            render_page(
                &state,
                &who,
                Some(Flash { kind: "error", text: e.message.clone() }),
                None,
                e.kind.status(),
            )
            .await
        }
    }
}

async fn page_revoke(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AnyUser>,
    path: web::Path<i64>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/keys");
    let (now, actor, uid, id) = (state.clock.now(), who.actor(), who.user.id, path.into_inner());
    state.store.run(move |c| tokens::revoke_own(c, now, &actor, uid, id)).await.map_err(&err)?;
    Ok(see_other("/keys?done=revoked"))
}

//! Personal API keys: people create, name, list and revoke their own (page and JSON); admins
//! list and revoke anyone's, and create keys for themselves and for service accounts (never for
//! another person: see `tokens::Issuer`). A key is shown once; only its SHA-256 is stored, and
//! it carries its owner's permissions.

use crate::auth::keys::{Issued, NewKey};
use crate::auth::tokens::ApiToken;
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
struct NewOwnKey {
    name: String,
    /// Days until it expires (default: never).
    expires_days: Option<u32>,
}

async fn own_keys(state: &AppState, who: &Authed<AnyUser>) -> AppResult<Vec<ApiToken>> {
    let keys = state.keys.list(Some(who.user.username.clone())).await?;
    Ok(keys.into_iter().map(|k| k.key).collect())
}

async fn mine(state: web::Data<AppState>, who: Authed<AnyUser>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(own_keys(&state, &who).await?))
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
    let keys = own_keys(state, who).await.map_err(ui_error(state, "/keys"))?;
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
        let new = NewKey { user: who.user.username.clone(), name: form.name, expires_days: days };
        state.keys.create(who.actor(), who.issuer(), new).await
    }
    .await;
    match result {
        Ok(Issued { secret, .. }) => {
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
    state.keys.revoke_own(who.actor(), who.user.id, path.into_inner()).await.map_err(&err)?;
    Ok(see_other("/keys?done=revoked"))
}

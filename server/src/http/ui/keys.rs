//! The keys page: a person's own API keys, made (shown once), listed and revoked. It adapts to
//! the Keys service as the JSON API does.

use crate::auth::keys::{Issued, NewKey};
use crate::auth::tokens::ApiToken;
use crate::error::AppError;
use crate::http::guard::{AnyUser, Authed};
use crate::http::routes::Routes;
use crate::http::ui::{
    Chrome, CsrfForm, DoneQuery, Flash, Page, UiError, done_flash, render_uncached, see_other, ui_error,
};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/keys", page).post("/keys", page_create).post("/keys/{id}/revoke", page_revoke);
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
    let keys = state.keys.own(who.user.username.clone()).await.map_err(ui_error(state, "/keys"))?;
    let page = KeysPage { chrome: Chrome::for_user(state, who, "keys", flash), keys, created };
    Ok(render_uncached(&page, status))
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

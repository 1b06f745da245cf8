//! The sign-in page (local form, a button per OIDC provider) and signing out.

use crate::auth::{login, secret};
use crate::http::api;
use crate::http::guard::{AnyUser, SESSION_COOKIE, Via, client_ip, user_agent};
use crate::http::routes::Routes;
use crate::http::ui::{Chrome, CsrfForm, UiError, render, safe_next, see_other, ui_error};
use crate::state::AppState;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

const LOGIN_CSRF_COOKIE: &str = "ayush_login_csrf";

pub fn routes(r: &mut Routes) {
    r.get("/login", login_page).post("/login", login_submit).post("/logout", logout_submit);
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
    /// (name, button text, icon data URI or "") of each OIDC provider.
    providers: Vec<(String, String, String)>,
    show_local: bool,
    next_encoded: String,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage {
    chrome: Chrome,
    next: String,
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
    /// The break-glass path: the local form even when the config hides it.
    local: Option<String>,
}

/// The sign-in page: a button per OIDC provider, and the local form unless the config hides
/// it (`local` asks for it anyway: the break-glass path).
pub(crate) fn login_form(
    state: &AppState,
    next: &str,
    username: &str,
    error: Option<String>,
    status: StatusCode,
    local: bool,
) -> HttpResponse {
    let token = secret::random_token();
    let providers: Vec<(String, String, String)> = state
        .oidc
        .0
        .iter()
        .map(|p| (p.cfg.name.clone(), p.cfg.button_text.clone(), p.icon.clone().unwrap_or_default()))
        .collect();
    let page = LoginPage {
        chrome: Chrome::anonymous(state.themes.current()),
        csrf: token.clone(),
        next: safe_next(next),
        username: username.to_string(),
        error,
        show_local: local || state.config.oidc.show_local_login || providers.is_empty(),
        next_encoded: crate::url::encode_component(&safe_next(next)),
        providers,
    };
    let mut resp = render(&page, status);
    let cookie = Cookie::build(LOGIN_CSRF_COOKIE, token)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.secure_cookies())
        .finish();
    let _ = resp.add_cookie(&cookie);
    resp
}

async fn login_page(state: web::Data<AppState>, query: web::Query<LoginQuery>) -> HttpResponse {
    login_form(&state, query.next.as_deref().unwrap_or("/"), "", None, StatusCode::OK, query.local.is_some())
}

#[derive(Deserialize)]
struct LoginForm {
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    next: String,
}

async fn login_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let cookie_token = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    if cookie_token.is_empty() || !secret::constant_time_eq(&cookie_token, &form.csrf) {
        let msg = "The sign-in form expired; please try again.".to_string();
        return login_form(&state, &form.next, &form.username, Some(msg), StatusCode::FORBIDDEN, true);
    }
    let attempt = login::Attempt {
        username: form.username.clone(),
        password: form.password,
        ip: client_ip(&req, &state.proxies),
        user_agent: user_agent(&req),
        previous_session: req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()),
    };
    match login::sign_in(&state.authority(), attempt).await {
        Ok(signed) => {
            let mut resp = see_other(&safe_next(&form.next));
            let _ = resp.add_cookie(&api::session_cookie(&state, signed.issued.token));
            let mut gone = Cookie::build(LOGIN_CSRF_COOKIE, "").path("/login").finish();
            gone.make_removal();
            let _ = resp.add_cookie(&gone);
            resp
        }
        Err(e) => {
            login_form(&state, &form.next, &form.username, Some(e.message.clone()), e.kind.status(), true)
        }
    }
}

async fn logout_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    CsrfForm { who, .. }: CsrfForm<AnyUser>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/logout");
    let mut next = "/login".to_string();
    if let Via::Session { token, .. } = &who.via {
        let t = token.clone();
        let provider =
            state.store.run(move |c| crate::auth::sessions::sso_provider(c, &t)).await.map_err(&err)?;
        login::sign_out(&state.store, &state.clock, who.actor(), token.clone()).await.map_err(&err)?;
        next = crate::http::oidc::after_sign_out(&state, &req, provider).await;
    }
    // The page's CSP allows forms to go only to Ayush (form-action 'self'), which browsers also
    // apply to where a form's answer redirects; so the provider's sign-out is reached from a
    // page of its own.
    let mut resp = match next.as_str() {
        "/login" => see_other("/login"),
        _ => {
            render(&SignedOutPage { chrome: Chrome::anonymous(state.themes.current()), next }, StatusCode::OK)
        }
    };
    let _ = resp.add_cookie(&api::removal_cookie(&state));
    Ok(resp)
}

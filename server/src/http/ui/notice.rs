//! The notice people acknowledge before using the pages (an acceptable-use or monitoring
//! notice, set with the theme): the gate that sends them to it, and the page where they accept
//! it. API keys are not held up: the notice is for people at a browser.

use crate::error::{AppError, ErrorKind};
use crate::http::guard::AnyUser;
use crate::http::routes::Routes;
use crate::http::ui::{Chrome, CsrfForm, Page, UiError, render, safe_next, see_other, ui_error};
use crate::state::AppState;
use crate::theme::Banner;
use crate::url::encode_component;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/notice", page).post("/notice", acknowledge);
}

/// Where a session may go before acknowledging: the notice itself, and the way out.
fn exempt(path: &str) -> bool {
    matches!(path, "/notice" | "/logout")
        || path.starts_with("/login")
        || path.starts_with("/auth/")
        || path.starts_with("/api/auth/")
}

/// For a signed-in person who has not acknowledged the current notice: the answer in place of
/// the one they asked for (pages go to the notice; other requests are refused).
pub async fn gate(state: &AppState, req: &HttpRequest, user_id: i64) -> Option<HttpResponse> {
    if exempt(req.path()) {
        return None;
    }
    match state.themes.notice_for(user_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return None,
        Err(e) => return Some(e.error_response()),
    }
    let is_page = req.method() == actix_web::http::Method::GET
        && !req.path().starts_with("/api/")
        && !req.path().starts_with("/v1/");
    if is_page {
        let here = match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        };
        return Some(see_other(&format!("/notice?next={}", encode_component(&here))));
    }
    let refusal =
        AppError::new(ErrorKind::Forbidden, "acknowledge the notice first: open any page to read it");
    Some(refusal.error_response())
}

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticePage {
    chrome: Chrome,
    csrf: String,
    banner: Banner,
    next: String,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn page(
    state: web::Data<AppState>,
    Page(who): Page<AnyUser>,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, UiError> {
    let next = safe_next(query.next.as_deref().unwrap_or("/"));
    let err = ui_error(&state, "/notice");
    let Some(banner) = state.themes.notice_for(who.user.id).await.map_err(&err)? else {
        return Ok(see_other(&next));
    };
    let page = NoticePage {
        chrome: Chrome::anonymous(state.themes.current()),
        csrf: who.csrf().to_string(),
        banner,
        next,
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Deserialize)]
struct AcknowledgeForm {
    revision: i64,
    #[serde(default)]
    next: String,
}

async fn acknowledge(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AnyUser, AcknowledgeForm>,
) -> Result<HttpResponse, UiError> {
    let next = safe_next(&form.next);
    let err = ui_error(&state, "/notice");
    match state.themes.acknowledge(who.actor(), who.user.id, form.revision).await {
        Ok(()) => Ok(see_other(&next)),
        // Changed while it was open: show the new text.
        Err(e) if e.kind == ErrorKind::Validation => {
            Ok(see_other(&format!("/notice?next={}", encode_component(&next))))
        }
        Err(e) => Err(err(e)),
    }
}

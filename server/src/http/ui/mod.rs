//! Server-rendered pages: what every page shares (the frame, errors as pages, the page guard,
//! the form extractor that checks the session's token), the home page and the 404; the pages of
//! each capability in a module of their own. Handlers adapt forms to the same services the JSON
//! API calls.

use crate::auth::groups::{self};
use crate::auth::users::User;
use crate::auth::{Role, secret};
use crate::error::{AppError, ErrorKind};
use crate::http::guard::{AnyUser, Authed, Policy, Via};
use crate::http::routes::Routes;
use crate::state::AppState;
use crate::theme::Theme;
use crate::url::encode_component;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub mod accounts;
pub mod assistants;
pub mod audit;
pub mod chart;
pub mod chat;
pub mod chat_list;
pub mod keys;
pub mod knowledge;
pub mod me;
pub mod models;
pub mod notice;
pub mod providers;
pub mod sso;
pub mod status;
pub mod theme;
pub mod usage;

pub fn routes(r: &mut Routes) {
    r.get("/", home);
    chat::routes(r);
    chat_list::routes(r);
    accounts::routes(r);
    me::routes(r);
    usage::routes(r);
    status::routes(r);
    theme::routes(r);
    models::routes(r);
    assistants::routes(r);
    notice::routes(r);
}

pub struct Flash {
    pub kind: &'static str,
    pub text: String,
}

/// What every page's frame needs: brand, who is signed in, the CSRF token, where we are.
pub struct Chrome {
    pub theme: Arc<Theme>,
    pub user: Option<User>,
    pub csrf: String,
    pub section: &'static str,
    pub is_admin: bool,
    pub is_auditor: bool,
    pub flash: Option<Flash>,
    /// The user's chats for the sidebar, on pages that show them.
    pub chats: chat_list::ChatList,
    pub chats_shown: bool,
}

impl Chrome {
    pub(crate) fn for_user<P>(
        state: &AppState,
        who: &Authed<P>,
        section: &'static str,
        flash: Option<Flash>,
    ) -> Chrome {
        Chrome {
            theme: state.themes.current(),
            user: Some(who.user.clone()),
            csrf: who.csrf().to_string(),
            section,
            is_admin: who.user.role == Role::Admin,
            is_auditor: who.user.role == Role::Auditor,
            flash,
            chats: chat_list::ChatList::default(),
            chats_shown: false,
        }
    }

    /// Adds the sidebar's list of chats, filtered by `search`.
    async fn with_chats(
        mut self,
        state: &AppState,
        user_id: i64,
        search: Option<String>,
        current: Option<i64>,
    ) -> Result<Chrome, AppError> {
        let conversations = state.chat().conversations(user_id, search.clone()).await?;
        self.chats =
            chat_list::ChatList::new(conversations, search.unwrap_or_default(), current, state.clock.now());
        self.chats_shown = true;
        Ok(self)
    }

    /// Light, dark or auto for this page: the person's own choice, else the theme's.
    pub fn mode(&self) -> &str {
        self.user.as_ref().and_then(|u| u.color_mode.as_deref()).unwrap_or_else(|| self.theme.mode_attr())
    }

    pub(crate) fn anonymous(theme: Arc<Theme>) -> Chrome {
        Chrome {
            theme,
            user: None,
            csrf: String::new(),
            section: "",
            is_admin: false,
            is_auditor: false,
            flash: None,
            chats: chat_list::ChatList::default(),
            chats_shown: false,
        }
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    groups: Vec<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    title: String,
    message: String,
}

pub(crate) fn render(t: &impl Template, status: StatusCode) -> HttpResponse {
    match t.render() {
        Ok(html) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html),
        Err(e) => AppError::internal(format!("template: {e}")).error_response(),
    }
}

/// As [`render`], for a page that may hold a secret (a key just made, a provider's settings):
/// no cache keeps it.
pub(crate) fn render_uncached(t: &impl Template, status: StatusCode) -> HttpResponse {
    let mut resp = render(t, status);
    resp.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// A size as people read it (decimal units, as disks are sold).
pub(crate) fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e12 => format!("{:.1} TB", n / 1e12),
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

/// The theme in effect, for extractors that only have the request.
fn current_theme(req: &HttpRequest) -> Arc<Theme> {
    match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.themes.current(),
        None => Arc::new(Theme::fallback()),
    }
}

pub(crate) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", to.to_string())).finish()
}

/// An error on a page: sign-in problems go to the sign-in page, the rest render as HTML.
#[derive(Debug)]
pub struct UiError {
    error: AppError,
    theme: Arc<Theme>,
    path: String,
}

impl std::fmt::Display for UiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        self.error.kind.status()
    }

    fn error_response(&self) -> HttpResponse {
        if self.error.kind == ErrorKind::Unauthenticated {
            let next = if self.path == "/" {
                String::new()
            } else {
                format!("?next={}", encode_component(&self.path))
            };
            return see_other(&format!("/login{next}"));
        }
        let title = match self.error.kind {
            ErrorKind::Forbidden => "Not allowed",
            ErrorKind::NotFound => "Not found",
            _ => "Something went wrong",
        };
        let page = ErrorPage {
            chrome: Chrome::anonymous(self.theme.clone()),
            title: title.into(),
            message: self.error.message.clone(),
        };
        render(&page, self.status_code())
    }
}

pub(crate) fn ui_error(state: &AppState, path: &str) -> impl Fn(AppError) -> UiError {
    let (theme, path) = (state.themes.current(), path.to_string());
    move |error| UiError { error, theme: theme.clone(), path: path.clone() }
}

/// `Authed<P>` for pages: same guard, HTML-shaped failures.
pub struct Page<P>(pub Authed<P>);

impl<P: Policy + 'static> FromRequest for Page<P> {
    type Error = UiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, UiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = Authed::<P>::from_request(req, payload);
        let theme = current_theme(req);
        // After signing in, only a page can be returned to, not a form's target.
        let path =
            if req.method() == actix_web::http::Method::GET { req.path().to_string() } else { "/".into() };
        Box::pin(async move { fut.await.map(Page).map_err(|error| UiError { error, theme, path }) })
    }
}

pub(crate) fn check_csrf<P>(who: &Authed<P>, sent: &str) -> Result<(), AppError> {
    match &who.via {
        Via::Session { csrf, .. } if secret::constant_time_eq(csrf, sent) => Ok(()),
        _ => Err(AppError::new(ErrorKind::CrossSite, "the form has expired; reload the page and try again")),
    }
}

/// For a page's script that sends a file as the request body: the session's form token comes
/// in the `X-CSRF-Token` header. A key needs none: a cookie rides along with any site's
/// request, a key does not.
pub(crate) fn check_csrf_header<P>(who: &Authed<P>, req: &HttpRequest) -> Result<(), AppError> {
    match who.via {
        Via::Session { .. } => {
            let sent = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
            check_csrf(who, sent)
        }
        Via::ApiToken { .. } => Ok(()),
    }
}

/// A form posted from one of Ayush's pages: the signed-in person under policy `P` and the
/// form's fields `T`, once the session's form token it carries (`csrf`) has been checked. A
/// form without the right token (a page left open past its session, or a forged one) is
/// refused before the handler runs.
pub(crate) struct CsrfForm<P, T = NoFields> {
    pub who: Authed<P>,
    pub form: T,
}

/// The fields of a form that is only a button.
#[derive(Deserialize)]
pub(crate) struct NoFields {}

#[derive(Deserialize)]
struct FormToken {
    #[serde(default)]
    csrf: String,
}

impl<P: Policy + 'static, T: DeserializeOwned + 'static> FromRequest for CsrfForm<P, T> {
    type Error = UiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, UiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let page = Page::<P>::from_request(req, payload);
        let body = web::Bytes::from_request(req, payload);
        let is_form = req.content_type().eq_ignore_ascii_case("application/x-www-form-urlencoded");
        let theme = current_theme(req);
        Box::pin(async move {
            let Page(who) = page.await?;
            let refuse = |error| UiError { error, theme: theme.clone(), path: "/".into() };
            let invalid = |why: String| refuse(AppError::bad_request(format!("invalid form: {why}")));
            let body = body.await.map_err(|e| invalid(e.to_string()))?;
            if !is_form {
                return Err(invalid("send application/x-www-form-urlencoded".into()));
            }
            let token: FormToken = serde_urlencoded::from_bytes(&body).map_err(|e| invalid(e.to_string()))?;
            check_csrf(&who, &token.csrf).map_err(refuse)?;
            let form = serde_urlencoded::from_bytes(&body).map_err(|e| invalid(e.to_string()))?;
            Ok(CsrfForm { who, form })
        })
    }
}

/// Where to go after signing in: a path on this site, never elsewhere, so the sign-in page
/// cannot be used to send people away. The value is read as a browser reads it (WHATWG URL
/// parsing, which drops tabs and newlines and takes `\` for `/`) relative to this site, and kept
/// only if it lands on this site; anything else is `/`.
pub(crate) fn safe_next(next: &str) -> String {
    // Any host will do as the base: only whether the result keeps its origin matters.
    const SITE: &str = "http://ayush.invalid/";
    let Ok(site) = url::Url::parse(SITE) else { return "/".into() };
    if !next.starts_with('/') {
        return "/".into();
    }
    match site.join(next) {
        Ok(to) if to.origin() == site.origin() => to[url::Position::BeforePath..].to_string(),
        _ => "/".into(),
    }
}

pub(crate) fn done_flash(query: &web::Query<DoneQuery>) -> Option<Flash> {
    let text = match query.done.as_deref()? {
        "created" => "Created.",
        "saved" => "Saved.",
        "password" => "Password changed; the user's sessions were ended.",
        "added" => "Member added.",
        "removed" => "Member removed.",
        "revoked" => "Key revoked.",
        "unmapped" => "Mapping removed.",
        "provider-removed" => "Provider removed.",
        "quota-removed" => "Quota removed.",
        "price-removed" => "Price removed.",
        "theme" => "Theme saved: every page shows it now.",
        "model-removed" => "Model removed.",
        "assistant-removed" => "Assistant removed.",
        "imported" => "Model imported: people can pick it now.",
        "default" => "Default model set.",
        "allowed" => "Group added: the model is open to its members.",
        "disallowed" => "Group taken off the model.",
        _ => return None,
    };
    Some(Flash { kind: "ok", text: text.into() })
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

async fn home(state: web::Data<AppState>, Page(who): Page<AnyUser>) -> Result<HttpResponse, UiError> {
    if who.user.role == Role::Auditor {
        return Ok(see_other("/audit"));
    }
    let err = ui_error(&state, "/");
    let id = who.user.id;
    let groups = state.store.run(move |c| groups::of_user(c, id)).await.map_err(&err)?;
    let chrome = Chrome::for_user(&state, &who, "home", None)
        .with_chats(&state, id, None, None)
        .await
        .map_err(&err)?;
    Ok(render(&HomePage { chrome, groups }, StatusCode::OK))
}

/// Any path no route claims.
pub async fn not_found(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, UiError> {
    Err(ui_error(&state, req.path())(AppError::not_found("There is no page at this address.")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_site() {
        assert_eq!(safe_next("/admin/users"), "/admin/users");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil"), "/");
        // Browsers drop tabs and newlines anywhere in a URL: these are `//evil.example`.
        for hostile in ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example", "\\/evil", "/\\\\evil"]
        {
            assert_eq!(safe_next(hostile), "/", "{hostile:?}");
        }
        assert_eq!(safe_next(" //evil.example"), "/");
        assert_eq!(safe_next("javascript:alert(1)"), "/");
        assert_eq!(safe_next("/chat?c=3#end"), "/chat?c=3#end", "query and fragment are kept");
        assert_eq!(safe_next("/a/../admin"), "/admin", "read as the browser reads it");
    }
}

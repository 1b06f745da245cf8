//! Server-rendered pages. Handlers adapt forms to the same auth and admin functions the JSON API
//! uses; every form carries the session's CSRF token.

use crate::auth::accounts::{AccountChanges, GroupView, NewAccount, NewGroup};
use crate::auth::groups::{self, Group, GroupSummary};
use crate::auth::users::{self, User};
use crate::auth::{Role, secret};
use crate::catalog::ModelEntry;
use crate::chat::conversations::Opened;
use crate::chat::store::Conversation;
use crate::error::{AppError, ErrorKind};
use crate::http::guard::{AdminOnly, AnyUser, Authed, ChatUser, Policy, Via};
use crate::http::message::MessageView;
use crate::http::routes::Routes;
use crate::state::AppState;
use crate::url::encode_component;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;

pub fn routes(r: &mut Routes) {
    r.get("/", home)
        .get("/chat", chat_page)
        .get("/admin/users", users_page)
        .post("/admin/users", users_create)
        .post("/admin/users/{username}/role", users_set_role)
        .post("/admin/users/{username}/status", users_set_status)
        .post("/admin/users/{username}/password", users_reset_password)
        .get("/admin/groups", groups_page)
        .post("/admin/groups", groups_create)
        .get("/admin/groups/{name}", group_page)
        .post("/admin/groups/{name}/members", group_add_member)
        .post("/admin/groups/{name}/members/{username}/remove", group_remove_member);
}

pub struct Flash {
    pub kind: &'static str,
    pub text: String,
}

/// What every page's frame needs: brand, who is signed in, the CSRF token, where we are.
pub struct Chrome {
    pub product: String,
    pub user: Option<User>,
    pub csrf: String,
    pub section: &'static str,
    pub is_admin: bool,
    pub is_auditor: bool,
    pub flash: Option<Flash>,
    /// The user's chats for the sidebar (pages that show them), the search, the open one.
    pub conversations: Vec<Conversation>,
    pub search: String,
    pub current: Option<i64>,
}

impl Chrome {
    pub(crate) fn for_user<P>(
        state: &AppState,
        who: &Authed<P>,
        section: &'static str,
        flash: Option<Flash>,
    ) -> Chrome {
        Chrome {
            product: state.theme.product_name.clone(),
            user: Some(who.user.clone()),
            csrf: who.csrf().to_string(),
            section,
            is_admin: who.user.role == Role::Admin,
            is_auditor: who.user.role == Role::Auditor,
            flash,
            conversations: Vec::new(),
            search: String::new(),
            current: None,
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
        self.conversations = state.chat().conversations(user_id, search.clone()).await?;
        self.search = search.unwrap_or_default();
        self.current = current;
        Ok(self)
    }

    pub(crate) fn anonymous(product: &str) -> Chrome {
        Chrome {
            product: product.to_string(),
            user: None,
            csrf: String::new(),
            section: "",
            is_admin: false,
            is_auditor: false,
            flash: None,
            conversations: Vec::new(),
            search: String::new(),
            current: None,
        }
    }

    pub fn is_current(&self, id: impl std::borrow::Borrow<i64>) -> bool {
        self.current == Some(*id.borrow())
    }
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    chrome: Chrome,
    groups: Vec<String>,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {
    chrome: Chrome,
    conversation: Option<Conversation>,
    messages: Vec<MessageView>,
    models: Vec<ModelEntry>,
    selected_model: String,
    /// The collections the viewer may read, and whether the chat answers from each.
    collections: Vec<(String, bool)>,
    /// Admins' assistants the viewer may chat with, and the one this chat follows.
    presets: Vec<crate::assistants::Preset>,
    selected_preset: Option<String>,
}

impl ChatPage {
    /// How many collections the chat answers from.
    fn answering(&self) -> usize {
        self.collections.iter().filter(|c| c.1).count()
    }
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    users: Vec<User>,
    roles: [&'static str; 3],
    min_password: usize,
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage {
    chrome: Chrome,
    groups: Vec<GroupSummary>,
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    chrome: Chrome,
    group: Group,
    members: Vec<User>,
    candidates: Vec<User>,
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

pub(crate) fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", to.to_string())).finish()
}

/// An error on a page: sign-in problems go to the sign-in page, the rest render as HTML.
#[derive(Debug)]
pub struct UiError {
    error: AppError,
    product: String,
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
            chrome: Chrome::anonymous(&self.product),
            title: title.into(),
            message: self.error.message.clone(),
        };
        render(&page, self.status_code())
    }
}

pub(crate) fn ui_error(state: &AppState, path: &str) -> impl Fn(AppError) -> UiError {
    let (product, path) = (state.theme.product_name.clone(), path.to_string());
    move |error| UiError { error, product: product.clone(), path: path.clone() }
}

/// `Authed<P>` for pages: same guard, HTML-shaped failures.
pub struct Page<P>(pub Authed<P>);

impl<P: Policy + 'static> FromRequest for Page<P> {
    type Error = UiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, UiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = Authed::<P>::from_request(req, payload);
        let product =
            req.app_data::<web::Data<AppState>>().map(|s| s.theme.product_name.clone()).unwrap_or_default();
        // After signing in, only a page can be returned to, not a form's target.
        let path =
            if req.method() == actix_web::http::Method::GET { req.path().to_string() } else { "/".into() };
        Box::pin(async move { fut.await.map(Page).map_err(|error| UiError { error, product, path }) })
    }
}

pub(crate) fn check_csrf<P>(who: &Authed<P>, sent: &str) -> Result<(), AppError> {
    match &who.via {
        Via::Session { csrf, .. } if secret::constant_time_eq(csrf, sent) => Ok(()),
        _ => Err(AppError::new(ErrorKind::CrossSite, "the form has expired; reload the page and try again")),
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
        let product =
            req.app_data::<web::Data<AppState>>().map(|s| s.theme.product_name.clone()).unwrap_or_default();
        Box::pin(async move {
            let Page(who) = page.await?;
            let refuse = |error| UiError { error, product: product.clone(), path: "/".into() };
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

#[derive(Deserialize)]
struct ChatQuery {
    c: Option<i64>,
    q: Option<String>,
}

async fn chat_page(
    state: web::Data<AppState>,
    Page(who): Page<ChatUser>,
    query: web::Query<ChatQuery>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/chat");
    let ChatQuery { c, q } = query.into_inner();
    let uid = who.user.id;
    let readable: Vec<String> = state
        .store
        .run(move |c| crate::knowledge::collections::readable_names(c, uid))
        .await
        .map_err(&err)?;
    let presets = state.assistants.offered_to(uid).await.map_err(&err)?;
    let (conversation, messages, attached) = match c {
        Some(id) => {
            let opened = state.chat().conversation(uid, id).await.map_err(&err)?;
            let Opened { conversation, messages, mut citations } = opened;
            let views = messages
                .into_iter()
                .map(|m| {
                    let cited = citations.remove(&m.id).unwrap_or_default();
                    MessageView::of(m, cited)
                })
                .collect();
            let attached = conversation.collections;
            let conv = conversation.conversation;
            (Some(conv), views, attached)
        }
        None => (None, Vec::new(), Vec::new()),
    };
    let collections = readable.into_iter().map(|n| (n.clone(), attached.contains(&n))).collect();
    let selected_preset = conversation
        .as_ref()
        .and_then(|c| c.preset_id)
        .and_then(|id| presets.iter().find(|p| p.id == id).map(|p| p.name.clone()));
    let catalog = state.catalog.clone();
    let mut models =
        state.store.run(move |c| crate::catalog::visible_to(&catalog, c, uid)).await.map_err(&err)?;
    models.retain(ModelEntry::chats);
    let selected_model = conversation
        .as_ref()
        .map(|c| c.model.clone())
        .or_else(|| state.catalog.default_name())
        .unwrap_or_default();
    let chrome =
        Chrome::for_user(&state, &who, "chat", None).with_chats(&state, uid, q, c).await.map_err(&err)?;
    let page = ChatPage {
        chrome,
        conversation,
        messages,
        models,
        selected_model,
        collections,
        presets,
        selected_preset,
    };
    Ok(render(&page, StatusCode::OK))
}

async fn render_users(
    state: &AppState,
    who: &Authed<AdminOnly>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let users = state.accounts.list().await.map_err(ui_error(state, "/admin/users"))?;
    let page = UsersPage {
        chrome: Chrome::for_user(state, who, "users", flash),
        users,
        roles: Role::ALL.map(Role::as_str),
        min_password: state.config.auth.password_min_length,
    };
    Ok(render(&page, status))
}

async fn users_page(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_users(&state, &who, done_flash(&q), StatusCode::OK).await
}

/// After a form: back to the page with a fixed notice, or the same page with the error.
async fn after_users_form(
    state: &AppState,
    who: &Authed<AdminOnly>,
    result: Result<&str, AppError>,
) -> Result<HttpResponse, UiError> {
    match result {
        Ok(done) => Ok(see_other(&format!("/admin/users?done={done}"))),
        Err(e) => {
            render_users(state, who, Some(Flash { kind: "error", text: e.message.clone() }), e.kind.status())
                .await
        }
    }
}

#[derive(Deserialize)]
struct NewUserForm {
    username: String,
    #[serde(default)]
    display_name: String,
    role: String,
    password: String,
    #[serde(default)]
    email: String,
}

async fn users_create(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, NewUserForm>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        let role = form.role.parse::<Role>().map_err(AppError::validation)?;
        let new = NewAccount {
            username: form.username.trim().to_string(),
            role,
            display_name: form.display_name,
            password: Some(form.password),
            email: Some(form.email).filter(|e| !e.trim().is_empty()),
            kind: users::Kind::Person,
        };
        state.accounts.create(who.actor(), new).await.map(|_| "created")
    }
    .await;
    after_users_form(&state, &who, result).await
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

async fn users_set_role(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, RoleForm>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        let role = form.role.parse::<Role>().map_err(AppError::validation)?;
        let changes = AccountChanges { role: Some(role), ..Default::default() };
        state.accounts.change(who.actor(), path.into_inner(), changes).await.map(|_| "saved")
    }
    .await;
    after_users_form(&state, &who, result).await
}

#[derive(Deserialize)]
struct StatusForm {
    disabled: bool,
}

async fn users_set_status(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, StatusForm>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        let changes = AccountChanges { disabled: Some(form.disabled), ..Default::default() };
        state.accounts.change(who.actor(), path.into_inner(), changes).await.map(|_| "saved")
    }
    .await;
    after_users_form(&state, &who, result).await
}

#[derive(Deserialize)]
struct PasswordForm {
    password: String,
}

async fn users_reset_password(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, PasswordForm>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        state.accounts.reset_password(who.actor(), path.into_inner(), form.password).await.map(|_| "password")
    }
    .await;
    after_users_form(&state, &who, result).await
}

async fn render_groups(
    state: &AppState,
    who: &Authed<AdminOnly>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let groups = state.accounts.groups().await.map_err(ui_error(state, "/admin/groups"))?;
    Ok(render(&GroupsPage { chrome: Chrome::for_user(state, who, "groups", flash), groups }, status))
}

async fn groups_page(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_groups(&state, &who, done_flash(&q), StatusCode::OK).await
}

#[derive(Deserialize)]
struct NewGroupForm {
    name: String,
    #[serde(default)]
    description: String,
}

async fn groups_create(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, NewGroupForm>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        let new = NewGroup { name: form.name.trim().to_string(), description: form.description };
        state.accounts.create_group(who.actor(), new).await
    }
    .await;
    match result {
        Ok(g) => Ok(see_other(&format!("/admin/groups/{}?done=created", encode_component(&g.name)))),
        Err(e) => {
            render_groups(
                &state,
                &who,
                Some(Flash { kind: "error", text: e.message.clone() }),
                e.kind.status(),
            )
            .await
        }
    }
}

async fn render_group(
    state: &AppState,
    who: &Authed<AdminOnly>,
    name: String,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let path = format!("/admin/groups/{name}");
    let viewed = async { Ok((state.accounts.group(name).await?, state.accounts.list().await?)) };
    let (GroupView { group, members }, all) = viewed.await.map_err(ui_error(state, &path))?;
    let candidates = all.into_iter().filter(|u| !members.iter().any(|m| m.id == u.id)).collect();
    Ok(render(
        &GroupPage { chrome: Chrome::for_user(state, who, "groups", flash), group, members, candidates },
        status,
    ))
}

async fn group_page(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    path: web::Path<String>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_group(&state, &who, path.into_inner(), done_flash(&q), StatusCode::OK).await
}

async fn after_group_form(
    state: &AppState,
    who: &Authed<AdminOnly>,
    group: String,
    result: Result<&str, AppError>,
) -> Result<HttpResponse, UiError> {
    match result {
        Ok(done) => Ok(see_other(&format!("/admin/groups/{}?done={done}", encode_component(&group)))),
        Err(e) => {
            let flash = Some(Flash { kind: "error", text: e.message.clone() });
            render_group(state, who, group, flash, e.kind.status()).await
        }
    }
}

#[derive(Deserialize)]
struct MemberForm {
    username: String,
}

async fn group_add_member(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, MemberForm>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let group = path.into_inner();
    let result =
        async { state.accounts.add_member(who.actor(), group.clone(), form.username).await.map(|_| "added") }
            .await;
    after_group_form(&state, &who, group, result).await
}

async fn group_remove_member(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AdminOnly>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, UiError> {
    let (group, username) = path.into_inner();
    let result =
        async { state.accounts.remove_member(who.actor(), group.clone(), username).await.map(|_| "removed") }
            .await;
    after_group_form(&state, &who, group, result).await
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

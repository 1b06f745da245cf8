//! The admin pages of people and groups: they adapt forms to the Accounts service, as
//! `http/api/accounts.rs` adapts JSON.

use super::{Chrome, CsrfForm, DoneQuery, Flash, Page, UiError, done_flash, render, see_other, ui_error};
use crate::auth::Role;
use crate::auth::accounts::{AccountChanges, GroupView, NewAccount, NewGroup};
use crate::auth::groups::{Group, GroupSummary};
use crate::auth::users::{self, User};
use crate::error::AppError;
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use crate::url::encode_component;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/admin/users", users_page)
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

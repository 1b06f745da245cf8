//! Single sign-on administration: directory group mappings (the JSON API and the admin page)
//! and the directory sync.

use crate::auth::{Role, directory_sync, groups, mapping};
use crate::error::{AppError, AppResult};
use crate::http::guard::{AdminOnly, Authed};
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
    r.get("/admin/sso", page)
        .post("/admin/sso/mappings", page_create)
        .post("/admin/sso/mappings/{id}/remove", page_remove)
        .get("/api/admin/mappings", list)
        .post("/api/admin/mappings", create)
        .delete("/api/admin/mappings/{id}", remove)
        .post("/api/admin/directory/sync", sync);
}

async fn list(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.store.run(mapping::rules).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMapping {
    directory_group: String,
    role: Option<String>,
    group: Option<String>,
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<NewMapping>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let role = body.role.map(|r| r.parse::<Role>().map_err(AppError::validation)).transpose()?;
    let (now, actor) = (state.clock.now(), who.actor());
    let rule = state
        .store
        .run(move |c| mapping::add(c, now, &actor, &body.directory_group, role, body.group.as_deref()))
        .await?;
    Ok(HttpResponse::Created().json(rule))
}

async fn remove(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (now, actor, id) = (state.clock.now(), who.actor(), path.into_inner());
    state.store.run(move |c| mapping::remove(c, now, &actor, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SyncBody {
    #[serde(default)]
    dry_run: bool,
}

/// Runs the directory sync now (or, with `dry_run`, says what it would change).
async fn sync(
    state: web::Data<AppState>,
    _who: Authed<AdminOnly>,
    body: Option<web::Json<SyncBody>>,
) -> AppResult<HttpResponse> {
    let dry_run = body.map(|b| b.dry_run).unwrap_or_default();
    let directory = state
        .directory
        .clone()
        .ok_or_else(|| AppError::validation("no directory is configured ([ldap] enabled = false)"))?;
    let report = directory_sync::sync(
        &state.store,
        &directory,
        state.clock.now(),
        state.authority().default_role,
        dry_run,
    )
    .await?;
    Ok(HttpResponse::Ok().json(report))
}

/// A configured sign-in source, for the page's summary.
pub struct Source {
    pub kind: &'static str,
    pub name: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "sso.html")]
struct SsoPage {
    chrome: Chrome,
    rules: Vec<mapping::Rule>,
    groups: Vec<String>,
    roles: [&'static str; 3],
    sources: Vec<Source>,
}

impl SsoPage {
    fn role_of(&self, rule: &mapping::Rule) -> String {
        rule.role.map(|r| r.as_str().to_string()).unwrap_or_else(|| "-".into())
    }
    fn group_of(&self, rule: &mapping::Rule) -> String {
        rule.group.clone().unwrap_or_else(|| "-".into())
    }
}

async fn render_page(
    state: &AppState,
    who: &Authed<AdminOnly>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let (rules, groups) = state
        .store
        .run(|c| Ok((mapping::rules(c)?, groups::list(c)?.into_iter().map(|g| g.group.name).collect())))
        .await
        .map_err(ui_error(state, "/admin/sso"))?;
    let mut sources: Vec<Source> = state
        .config
        .oidc
        .providers
        .iter()
        .map(|p| Source { kind: "OpenID Connect", name: p.name.clone(), detail: p.issuer.clone() })
        .collect();
    if state.config.ldap.enabled {
        let l = &state.config.ldap;
        sources.push(Source {
            kind: "LDAP",
            name: format!("{:?}", l.preset).to_lowercase(),
            detail: l.url.clone(),
        });
    }
    let page = SsoPage {
        chrome: Chrome::for_user(state, who, "sso", flash),
        rules,
        groups,
        roles: Role::ALL.map(Role::as_str),
        sources,
    };
    Ok(render(&page, status))
}

async fn page(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_page(&state, &who, done_flash(&q), StatusCode::OK).await
}

#[derive(Deserialize)]
struct MappingForm {
    directory_group: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    group: String,
}

async fn page_create(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, MappingForm>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        let role = Some(form.role.as_str())
            .filter(|r| !r.is_empty())
            .map(str::parse::<Role>)
            .transpose()
            .map_err(AppError::validation)?;
        let group = Some(form.group).filter(|g| !g.is_empty());
        let (now, actor) = (state.clock.now(), who.actor());
        state
            .store
            .run(move |c| mapping::add(c, now, &actor, &form.directory_group, role, group.as_deref()))
            .await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/admin/sso?done=created")),
        Err(e) => {
            render_page(&state, &who, Some(Flash { kind: "error", text: e.message.clone() }), e.kind.status())
                .await
        }
    }
}

async fn page_remove(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AdminOnly>,
    path: web::Path<i64>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/admin/sso");
    let (now, actor, id) = (state.clock.now(), who.actor(), path.into_inner());
    state.store.run(move |c| mapping::remove(c, now, &actor, id)).await.map_err(&err)?;
    Ok(see_other("/admin/sso?done=unmapped"))
}

//! The SSO page for admins: the sign-in sources configured, and the directory group mappings,
//! adapted to the Sso service as the JSON API is.

use crate::auth::sso::NewRule;
use crate::auth::{Role, mapping};
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
        .post("/admin/sso/mappings/{id}/remove", page_remove);
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
    let err = ui_error(state, "/admin/sso");
    let rules = state.sso.rules().await.map_err(&err)?;
    let groups = state.accounts.groups().await.map_err(&err)?.into_iter().map(|g| g.group.name).collect();
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
    let new = NewRule {
        directory_group: form.directory_group,
        role: Some(form.role).filter(|r| !r.is_empty()),
        group: Some(form.group).filter(|g| !g.is_empty()),
    };
    let result = state.sso.map(who.actor(), new).await;
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
    state.sso.unmap(who.actor(), path.into_inner()).await.map_err(&err)?;
    Ok(see_other("/admin/sso?done=unmapped"))
}

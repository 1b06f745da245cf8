//! The console's models page: every model with its file's facts (quantization as the file
//! declares it, size, sha256), the default, which groups may use it; import by upload with
//! progress, verify, make default, remove, and access by group. Each action goes through the
//! Models service, as `ayushctl models` does.

use crate::auth::groups::GroupSummary;
use crate::catalog::ModelEntry;
use crate::error::AppResult;
use crate::http::api::models::{UploadQuery, receive_model};
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::http::ui::{
    Chrome, CsrfForm, DoneQuery, Flash, NoFields, Page, UiError, check_csrf_header, done_flash,
    render_uncached, see_other,
};
use crate::state::AppState;
use crate::url::encode_component;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/admin/models", page)
        .post("/admin/models/upload", upload)
        .post("/admin/models/{name}/verify", verify)
        .post("/admin/models/{name}/default", make_default)
        .post("/admin/models/{name}/remove", remove)
        .post("/admin/models/{name}/allow", allow)
        .post("/admin/models/{name}/disallow", disallow);
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    chrome: Chrome,
    models: Vec<ModelEntry>,
    groups: Vec<GroupSummary>,
}

impl ModelsPage {
    fn size(&self, bytes: &u64) -> String {
        super::human_bytes(*bytes)
    }

    fn when(&self, at: &i64) -> String {
        crate::clock::format_time(*at)
    }

    fn short(&self, sha256: &str) -> String {
        sha256.chars().take(12).collect()
    }

    fn path(&self, name: &str) -> String {
        encode_component(name)
    }
}

async fn page(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_page(&state, &who, done_flash(&q), StatusCode::OK).await
}

async fn render_page(
    state: &AppState,
    who: &Authed<AdminOnly>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let err = super::ui_error(state, "/admin/models");
    let models = state.models.list().await.map_err(&err)?;
    let groups = state.accounts.groups().await.map_err(&err)?;
    let page = ModelsPage { chrome: Chrome::for_user(state, who, "models", flash), models, groups };
    Ok(render_uncached(&page, status))
}

/// What an action ends with: back to the page with its message, or the page with the error.
async fn after(
    state: &AppState,
    who: &Authed<AdminOnly>,
    done: AppResult<&str>,
) -> Result<HttpResponse, UiError> {
    match done {
        Ok(done) => Ok(see_other(&format!("/admin/models?done={done}"))),
        Err(e) => {
            let flash = Flash { kind: "error", text: e.message.clone() };
            render_page(state, who, Some(flash), e.kind.status()).await
        }
    }
}

/// The page's script sends the chosen file as it is (progress is the browser's), with the
/// session's form token in a header; the answer is the model's manifest.
async fn upload(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    req: HttpRequest,
    query: web::Query<UploadQuery>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    check_csrf_header(&who, &req)?;
    let UploadQuery { name, source } = query.into_inner();
    let manifest = receive_model(&state, &who, name, source, body).await?;
    Ok(HttpResponse::Created().json(manifest))
}

async fn verify(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AdminOnly, NoFields>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let name = path.into_inner();
    let flash = match state.models.verify(who.actor(), name.clone(), Box::new(|_, _| {})).await {
        Ok(true) => Flash { kind: "ok", text: format!("{name}: the file matches its manifest (sha256).") },
        Ok(false) => Flash {
            kind: "error",
            text: format!("{name}: the file does NOT match its manifest; it was changed or damaged on disk."),
        },
        Err(e) => Flash { kind: "error", text: e.message },
    };
    render_page(&state, &who, Some(flash), StatusCode::OK).await
}

async fn make_default(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AdminOnly, NoFields>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let done = state.models.set_default(who.actor(), path.into_inner()).await.map(|()| "default");
    after(&state, &who, done).await
}

async fn remove(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AdminOnly, NoFields>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let done = state.models.remove(who.actor(), path.into_inner()).await.map(|()| "model-removed");
    after(&state, &who, done).await
}

#[derive(Deserialize)]
struct GroupForm {
    group: String,
}

async fn allow(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, GroupForm>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let done = state.models.allow(who.actor(), path.into_inner(), form.group).await.map(|()| "allowed");
    after(&state, &who, done).await
}

async fn disallow(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, GroupForm>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let done = state.models.disallow(who.actor(), path.into_inner(), form.group).await.map(|_| "disallowed");
    after(&state, &who, done).await
}

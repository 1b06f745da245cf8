//! The console's assistants page: a model with standing instructions and the shared
//! collections it answers from ("HR assistant"), made, changed and removed through the
//! Assistants service, as `ayushctl assistants` does.

use crate::assistants::{Preset, PresetBody};
use crate::error::AppResult;
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::http::ui::{
    Chrome, CsrfForm, DoneQuery, Flash, NoFields, Page, UiError, done_flash, render_uncached, see_other,
};
use crate::knowledge::collections::Caller;
use crate::state::AppState;
use crate::url::encode_component;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

pub fn routes(r: &mut Routes) {
    r.get("/admin/assistants", page)
        .post("/admin/assistants", create)
        .post("/admin/assistants/{name}", change)
        .post("/admin/assistants/{name}/remove", remove);
}

#[derive(Template)]
#[template(path = "assistants.html")]
struct AssistantsPage {
    chrome: Chrome,
    assistants: Vec<Preset>,
    /// Models an assistant may use: local chat models and providers' models.
    models: Vec<String>,
    /// Shared collections, which an assistant may answer from.
    collections: Vec<String>,
    /// The last try, when it was refused: the new assistant's form keeps it.
    tried: Fields,
}

impl AssistantsPage {
    fn path(&self, name: &str) -> String {
        encode_component(name)
    }

    fn has(&self, chosen: &[String], name: &str) -> bool {
        chosen.iter().any(|c| c == name)
    }
}

/// A form's fields: checkboxes repeat `collections`, so the form is read as pairs.
#[derive(Default)]
struct Fields {
    name: String,
    model: String,
    description: String,
    system_prompt: String,
    collections: Vec<String>,
}

impl Fields {
    fn of(pairs: Vec<(String, String)>) -> Fields {
        let mut f = Fields::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => f.name = value,
                "model" => f.model = value,
                "description" => f.description = value,
                "system_prompt" => f.system_prompt = value.replace("\r\n", "\n"),
                "collections" => f.collections.push(value),
                _ => {}
            }
        }
        f
    }

    fn body(&self, with_name: bool) -> PresetBody {
        PresetBody {
            name: with_name.then(|| self.name.trim().to_string()),
            model: Some(self.model.clone()),
            system_prompt: Some(self.system_prompt.clone()),
            description: Some(self.description.trim().to_string()),
            collections: Some(self.collections.clone()),
        }
    }
}

async fn page(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_page(&state, &who, Fields::default(), done_flash(&q), StatusCode::OK).await
}

async fn render_page(
    state: &AppState,
    who: &Authed<AdminOnly>,
    tried: Fields,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let err = super::ui_error(state, "/admin/assistants");
    let assistants = state.assistants.list().await.map_err(&err)?;
    let models = state
        .models
        .list()
        .await
        .map_err(&err)?
        .into_iter()
        .filter(|m| m.manifest.as_ref().is_none_or(|m| m.purpose == "chat"))
        .map(|m| m.name)
        .collect();
    let collections = state
        .library
        .list(Caller::user(&who.user))
        .await
        .map_err(&err)?
        .into_iter()
        .filter(|c| !c.personal)
        .map(|c| c.name)
        .collect();
    let chrome = Chrome::for_user(state, who, "assistants", flash);
    let page = AssistantsPage { chrome, assistants, models, collections, tried };
    Ok(render_uncached(&page, status))
}

async fn after(
    state: &AppState,
    who: &Authed<AdminOnly>,
    done: AppResult<&str>,
    tried: Fields,
) -> Result<HttpResponse, UiError> {
    match done {
        Ok(done) => Ok(see_other(&format!("/admin/assistants?done={done}"))),
        Err(e) => {
            let flash = Flash { kind: "error", text: e.message.clone() };
            render_page(state, who, tried, Some(flash), e.kind.status()).await
        }
    }
}

async fn create(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, Vec<(String, String)>>,
) -> Result<HttpResponse, UiError> {
    let fields = Fields::of(form);
    let done = state.assistants.create(who.actor(), fields.body(true)).await.map(|_| "created");
    after(&state, &who, done, fields).await
}

async fn change(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, Vec<(String, String)>>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let fields = Fields::of(form);
    let done =
        state.assistants.change(who.actor(), path.into_inner(), fields.body(false)).await.map(|_| "saved");
    after(&state, &who, done, Fields::default()).await
}

async fn remove(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AdminOnly, NoFields>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let done = state.assistants.remove(who.actor(), path.into_inner()).await.map(|()| "assistant-removed");
    after(&state, &who, done, Fields::default()).await
}

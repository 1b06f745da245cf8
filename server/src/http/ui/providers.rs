//! The providers page for admins (`/admin/providers`): add, change, remove and test remote
//! providers, adapted to the Providers service as the JSON API is; and the prices of models,
//! remote and local, adapted to the Usage service.

use crate::catalog::providers::{Change, NewProvider, Provider};
use crate::error::{AppError, AppResult};
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::http::ui::{
    Chrome, CsrfForm, DoneQuery, Flash, Page, UiError, done_flash, render_uncached, see_other, ui_error,
};
use crate::state::AppState;
use crate::usage::SetPrice;
use crate::usage::prices::Price;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use ayush_models::provider::Kind;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/admin/providers", page)
        .post("/admin/providers", page_create)
        .post("/admin/providers/{name}", page_change)
        .post("/admin/providers/{name}/remove", page_remove)
        .post("/admin/providers/{name}/test", page_test)
        .post("/admin/prices", price_set)
        .post("/admin/prices/remove", price_remove);
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ProvidersPage {
    chrome: Chrome,
    providers: Vec<Provider>,
    kinds: Vec<(&'static str, &'static str)>,
    egress_note: String,
    prices: Vec<Price>,
    /// Local models, which a notional price can be set for.
    local_models: Vec<String>,
    currency: String,
}

async fn render_page(
    state: &AppState,
    who: &Authed<AdminOnly>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let list = state.providers.list().await.map_err(ui_error(state, "/admin/providers"))?;
    let prices = state.usage.prices().await.map_err(ui_error(state, "/admin/providers"))?;
    let local_models =
        state.catalog.list().map(|l| l.into_iter().map(|m| m.name).collect()).unwrap_or_default();
    let egress = &state.config.egress;
    let egress_note = match (egress.airgap, egress.allow_hosts.is_empty()) {
        (false, _) => "The egress policy is off: providers may be anywhere.".to_string(),
        (true, true) => "Air-gapped: only providers on loopback can be reached. An admin adds hosts to egress.allow_hosts in the configuration.".to_string(),
        (true, false) => format!("Air-gapped: providers may be on loopback or on {}.", egress.allow_hosts.join(", ")),
    };
    let page = ProvidersPage {
        chrome: Chrome::for_user(state, who, "providers", flash),
        providers: list,
        kinds: Kind::ALL.iter().map(|k| (k.as_str(), k.default_base_url())).collect(),
        egress_note,
        prices,
        local_models,
        currency: state.config.usage.currency.clone(),
    };
    Ok(render_uncached(&page, status))
}

async fn page(
    state: web::Data<AppState>,
    Page(who): Page<AdminOnly>,
    q: web::Query<DoneQuery>,
) -> Result<HttpResponse, UiError> {
    render_page(&state, &who, done_flash(&q), StatusCode::OK).await
}

/// One model id per line (or separated by commas).
fn models_of(text: &str) -> Vec<String> {
    text.split(['\n', ',']).map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect()
}

fn timeout_of(text: &str) -> AppResult<Option<i64>> {
    match text.trim() {
        "" => Ok(None),
        t => t.parse().map(Some).map_err(|_| AppError::validation("the timeout must be a number of seconds")),
    }
}

#[derive(Deserialize)]
struct NewForm {
    name: String,
    kind: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    models: String,
    #[serde(default)]
    speech_models: String,
    #[serde(default)]
    image_models: String,
    #[serde(default)]
    timeout_secs: String,
}

async fn error_page(state: &AppState, who: &Authed<AdminOnly>, e: AppError) -> Result<HttpResponse, UiError> {
    render_page(state, who, Some(Flash { kind: "error", text: e.message.clone() }), e.kind.status()).await
}

async fn page_create(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, NewForm>,
) -> Result<HttpResponse, UiError> {
    let f = form;
    let result = async {
        let new = NewProvider {
            name: f.name.trim().to_string(),
            kind: f.kind,
            base_url: Some(f.base_url.trim().to_string()).filter(|u| !u.is_empty()),
            api_key: Some(f.api_key.trim().to_string()).filter(|k| !k.is_empty()),
            models: models_of(&f.models),
            speech_models: models_of(&f.speech_models),
            image_models: models_of(&f.image_models),
            timeout_secs: timeout_of(&f.timeout_secs)?,
        };
        state.providers.create(who.actor(), new).await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/admin/providers?done=created")),
        Err(e) => error_page(&state, &who, e).await,
    }
}

#[derive(Deserialize)]
struct ChangeForm {
    base_url: String,
    #[serde(default)]
    models: String,
    #[serde(default)]
    speech_models: String,
    #[serde(default)]
    image_models: String,
    #[serde(default)]
    timeout_secs: String,
    /// Blank keeps the key.
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    remove_key: Option<String>,
}

async fn page_change(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AdminOnly, ChangeForm>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let f = form;
    let result = async {
        let api_key = match (f.remove_key.is_some(), f.api_key.trim()) {
            (true, _) => Some(String::new()),
            (false, "") => None,
            (false, k) => Some(k.to_string()),
        };
        let change = Change {
            base_url: Some(f.base_url.trim().to_string()),
            api_key,
            models: Some(models_of(&f.models)),
            speech_models: Some(models_of(&f.speech_models)),
            image_models: Some(models_of(&f.image_models)),
            timeout_secs: timeout_of(&f.timeout_secs)?,
        };
        state.providers.change(who.actor(), path.into_inner(), change).await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/admin/providers?done=saved")),
        Err(e) => error_page(&state, &who, e).await,
    }
}

async fn page_remove(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AdminOnly>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let err = ui_error(&state, "/admin/providers");
    state.providers.remove(who.actor(), path.into_inner()).await.map_err(&err)?;
    Ok(see_other("/admin/providers?done=provider-removed"))
}

async fn page_test(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<AdminOnly>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let name = path.into_inner();
    let flash = match state.providers.test(name.clone()).await {
        Ok(models) if models.is_empty() => {
            Flash { kind: "ok", text: format!("{name} answered, but lists no models.") }
        }
        Ok(models) => {
            Flash { kind: "ok", text: format!("{name} answered. It offers: {}", models.join(", ")) }
        }
        Err(e) => Flash { kind: "error", text: e.message },
    };
    render_page(&state, &who, Some(flash), StatusCode::OK).await
}

#[derive(Deserialize)]
struct PriceForm {
    /// `PROVIDER/MODEL`, or `local/MODEL`, as the form's list offers them.
    model: String,
    #[serde(default)]
    input_per_mtok: String,
    #[serde(default)]
    output_per_mtok: String,
    #[serde(default)]
    per_image: String,
}

async fn price_set(
    state: web::Data<AppState>,
    CsrfForm { who, form: f }: CsrfForm<AdminOnly, PriceForm>,
) -> Result<HttpResponse, UiError> {
    let result = async {
        let (provider, model) =
            f.model.split_once('/').ok_or_else(|| AppError::validation("choose a model from the list"))?;
        let given = |v: String| (!v.trim().is_empty()).then_some(serde_json::Value::String(v));
        let set = SetPrice {
            provider: provider.to_string(),
            model: model.to_string(),
            input_per_mtok: given(f.input_per_mtok),
            output_per_mtok: given(f.output_per_mtok),
            per_image: given(f.per_image),
        };
        state.usage.set_price(who.actor(), set).await
    }
    .await;
    match result {
        Ok(_) => Ok(see_other("/admin/providers?done=saved")),
        Err(e) => error_page(&state, &who, e).await,
    }
}

#[derive(Deserialize)]
struct PriceOf {
    provider: String,
    model: String,
}

async fn price_remove(
    state: web::Data<AppState>,
    CsrfForm { who, form: f }: CsrfForm<AdminOnly, PriceOf>,
) -> Result<HttpResponse, UiError> {
    match state.usage.remove_price(who.actor(), f.provider, f.model).await {
        Ok(()) => Ok(see_other("/admin/providers?done=price-removed")),
        Err(e) => error_page(&state, &who, e).await,
    }
}

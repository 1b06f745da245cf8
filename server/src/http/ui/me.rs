//! The account page: who the person is, what they have used today and this month, and what
//! their quotas leave them. It reads the Usage service, as `GET /api/me/usage` does.

use crate::http::guard::AnyUser;
use crate::http::routes::Routes;
use crate::http::ui::{Chrome, CsrfForm, Page, UiError, render_uncached, see_other, ui_error};
use crate::role::Role;
use crate::state::AppState;
use crate::usage::{Allowance, Mine};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

pub fn routes(r: &mut Routes) {
    r.get("/account", page).post("/account/appearance", appearance);
}

#[derive(serde::Deserialize)]
struct AppearanceForm {
    /// `system`, `light` or `dark`.
    mode: String,
}

/// The person's own light or dark, for every page from now on.
async fn appearance(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<AnyUser, AppearanceForm>,
) -> Result<HttpResponse, UiError> {
    let mode = Some(form.mode).filter(|m| m != "system");
    state
        .accounts
        .set_color_mode(who.actor(), who.user.id, mode)
        .await
        .map_err(ui_error(&state, "/account"))?;
    Ok(see_other("/account?done=appearance"))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    mine: Mine,
}

impl AccountPage {
    /// Whether `mode` (`system`, `light`, `dark`) is the person's choice now.
    fn chosen(&self, mode: &str) -> bool {
        let mine = self.chrome.user.as_ref().and_then(|u| u.color_mode.as_deref()).unwrap_or("system");
        mine == mode
    }

    fn number(&self, v: &i64) -> String {
        crate::usage::quotas::group_digits(*v)
    }

    fn money(&self, v: &f64) -> String {
        format!("{v:.2} {}", self.mine.currency)
    }

    fn amount(&self, a: &Allowance, v: &f64) -> String {
        if a.limit == "spend_per_month" { self.money(v) } else { self.number(&(*v as i64)) }
    }

    fn what(&self, a: &Allowance) -> &'static str {
        match a.limit {
            "tokens_per_day" => "Tokens today",
            "tokens_per_month" => "Tokens this month",
            "requests_per_minute" => "Requests a minute",
            "concurrent" => "Answers at once",
            _ => "Spending this month",
        }
    }

    fn models(&self, a: &Allowance) -> &'static str {
        match a.pool {
            "local" => "local models",
            "remote" => "remote models",
            _ => "all models",
        }
    }

    fn resets(&self, a: &Allowance) -> String {
        a.resets_at.map(crate::clock::format_time).unwrap_or_else(|| "—".into())
    }
}

async fn page(state: web::Data<AppState>, Page(who): Page<AnyUser>) -> Result<HttpResponse, UiError> {
    let mine = state
        .usage
        .mine(who.user.id, who.user.role == Role::Admin)
        .await
        .map_err(ui_error(&state, "/account"))?;
    let page = AccountPage { chrome: Chrome::for_user(&state, &who, "account", None), mine };
    Ok(render_uncached(&page, StatusCode::OK))
}

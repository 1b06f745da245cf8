//! The theme over JSON: what admins set, and what is in effect. `ayushctl theme` and the
//! console adapt to the same Themes service.

use crate::error::{AppError, AppResult};
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use crate::theme::Change;
use actix_web::{HttpResponse, web};

/// Two images of at most 512 KiB in base64, 64 KiB of CSS and the texts, with room to spare.
const MAX_BODY: usize = 2 * 1024 * 1024;

pub fn routes(r: &mut Routes) {
    r.get("/api/admin/theme", show).put("/api/admin/theme", set);
}

async fn show(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.themes.show().await?))
}

/// A change: fields left out stay, `null` removes one (back to the config file's value).
async fn set(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    let bytes = crate::http::read_capped(body, MAX_BODY, "a theme is at most 2 MiB of JSON").await?;
    let change: Change = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::bad_request(format!("invalid JSON body: {e}")))?;
    Ok(HttpResponse::Ok().json(state.themes.set(who.actor(), change).await?))
}

//! `POST /api/admin/backup`: the server takes a backup of itself (as `ayushctl --local backup
//! create` does on the data directory) and sends it. The rules live in `backup`.

use crate::backup::{self, CreateOptions};
use crate::error::{AppError, AppResult};
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.post("/api/admin/backup", create);
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ask {
    /// Seals the keys into the backup; absent, they are left out.
    passphrase: Option<String>,
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<Ask>,
) -> AppResult<HttpResponse> {
    let Ask { passphrase } = body.into_inner();
    if let Some(p) = &passphrase {
        backup::secrets::check_passphrase(p).map_err(AppError::validation)?;
    }
    let (now, actor) = (state.clock.now(), who.actor());
    let state = state.into_inner();
    // Taken into the data directory (a filesystem the server may write), sent, then removed.
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let dir = tempfile::Builder::new()
            .prefix(".backup-")
            .tempdir_in(&state.config.server.data_dir)
            .map_err(|e| e.to_string())?;
        let file = dir.path().join("ayush.backup");
        let options = CreateOptions { passphrase, with_models: false };
        backup::create(&state.config, &state.store, &actor, now, &file, &options)?;
        std::fs::read(&file).map_err(|e| e.to_string())
    })
    .await
    .map_err(AppError::internal)?
    .map_err(|e| AppError::internal(format!("the backup failed: {e}")))?;
    let name = format!("ayush-{}.backup", crate::clock::format_time(now).replace([':', ' '], "-"));
    Ok(HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header(("Cache-Control", "no-store"))
        .body(bytes))
}

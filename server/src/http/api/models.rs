//! `/api/admin/models`, over the Models service.

use crate::catalog::Upload;
use crate::catalog::models::ImportFrom;
use crate::error::{AppError, AppResult};
use crate::http::guard::{AdminOnly, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/api/admin/models", list_models)
        .post("/api/admin/models", upload_model)
        .delete("/api/admin/models/{name}", remove_model)
        .post("/api/admin/models/{name}/verify", verify_model)
        .put("/api/admin/models/{name}/default", set_default_model)
        .put("/api/admin/models/{name}/groups/{group}", allow_model)
        .delete("/api/admin/models/{name}/groups/{group}", disallow_model);
}

/// Every model with the groups it is restricted to (an empty list: open to everyone).
async fn list_models(state: web::Data<AppState>, _: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.models.list().await?))
}

async fn allow_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (model, group) = path.into_inner();
    state.models.allow(who.actor(), model, group).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn disallow_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (model, group) = path.into_inner();
    state.models.disallow(who.actor(), model, group).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub(crate) struct UploadQuery {
    pub name: String,
    /// The uploader's file name, kept in the manifest.
    pub source: Option<String>,
}

/// A GGUF file as the request body (`application/octet-stream`, an API token): streamed to
/// disk, hashed on the way, then checked and named exactly as a local import is.
async fn upload_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    query: web::Query<UploadQuery>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    let UploadQuery { name, source } = query.into_inner();
    let manifest = receive_model(&state, &who, name, source, body).await?;
    Ok(HttpResponse::Created().json(manifest))
}

/// Streams an uploaded GGUF file to disk, hashing it on the way, then imports it under `name`:
/// for the API and the console's models page alike.
pub(crate) async fn receive_model(
    state: &AppState,
    who: &Authed<AdminOnly>,
    name: String,
    source: Option<String>,
    mut body: web::Payload,
) -> AppResult<ayush_models::ModelManifest> {
    // The name is checked once the body is in: a client still sending a large file does not
    // read an early answer (ayushctl checks the name and the file before it uploads).
    let mut upload = Upload::create(state.catalog.partial_path()?)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<web::Bytes>(16);
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = upload.write(&chunk) {
                upload.abandon();
                return Err(e);
            }
        }
        Ok(upload)
    });
    let mut failed = None;
    while let Some(chunk) = crate::http::next_chunk(&mut body).await {
        match chunk {
            Ok(bytes) => {
                if tx.send(bytes).await.is_err() {
                    break; // the writer stopped on an error, which it returns below
                }
            }
            Err(e) => {
                failed = Some(AppError::validation(format!("the upload broke off: {e}")));
                break;
            }
        }
    }
    drop(tx);
    let upload = writer.await.map_err(AppError::internal)??;
    if let Some(e) = failed {
        upload.abandon();
        return Err(e);
    }
    let source = source.map_or_else(|| "an upload".into(), |s| format!("upload of {s}"));
    let placed = upload.finish(source)?;
    state.models.import(who.actor(), ImportFrom::Upload(placed), Some(name), Box::new(|_, _| {})).await
}

async fn remove_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    state.models.remove(who.actor(), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn set_default_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    state.models.set_default(who.actor(), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Re-hashes the file against its manifest: `{"name", "ok"}`.
async fn verify_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    let ok = state.models.verify(who.actor(), name.clone(), Box::new(|_, _| {})).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"name": name, "ok": ok})))
}

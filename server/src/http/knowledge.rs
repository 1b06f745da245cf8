//! Collections, their documents and search over HTTP: `/api/collections…`, `/api/search`, and
//! the index's state for admins. The rules live in `knowledge`; this only translates.

use crate::auth::guard::{AdminOnly, Authed, ChatUser};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::knowledge::collections::{self, Caller, NewCollection};
use crate::knowledge::documents::{self, Status};
use crate::knowledge::{self, MAX_LIMIT};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/collections", web::get().to(list))
        .route("/api/collections", web::post().to(create))
        .route("/api/collections/{name}", web::get().to(show))
        .route("/api/collections/{name}", web::delete().to(remove))
        .route("/api/collections/{name}/readers/{group}", web::put().to(grant))
        .route("/api/collections/{name}/readers/{group}", web::delete().to(revoke))
        .route("/api/collections/{name}/documents", web::get().to(list_documents))
        .route("/api/collections/{name}/documents", web::post().to(add_document))
        .route("/api/collections/{name}/documents/{id}", web::delete().to(remove_document))
        .route("/api/collections/{name}/documents/{id}/file", web::get().to(original))
        .route("/api/search", web::get().to(search))
        .route("/api/admin/index", web::get().to(index_status))
        .route("/api/admin/index/rebuild", web::post().to(rebuild));
}

fn caller<P>(who: &Authed<P>) -> Caller {
    Caller::user(&who.user)
}

async fn list(state: web::Data<AppState>, who: Authed<ChatUser>) -> AppResult<HttpResponse> {
    let caller = caller(&who);
    Ok(HttpResponse::Ok().json(state.store.run(move |c| collections::list(c, caller)).await?))
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    body: web::Json<NewCollection>,
) -> AppResult<HttpResponse> {
    let (now, actor, caller) = (state.clock.now(), who.actor(), caller(&who));
    let new = body.into_inner();
    let created = state.store.run(move |c| collections::create(c, now, &actor, caller, new)).await?;
    Ok(HttpResponse::Created().json(created))
}

async fn show(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (caller, name) = (caller(&who), path.into_inner());
    Ok(HttpResponse::Ok().json(state.store.run(move |c| collections::get(c, caller, &name)).await?))
}

async fn remove(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (now, actor, caller, name) = (state.clock.now(), who.actor(), caller(&who), path.into_inner());
    state.store.run(move |c| collections::remove(c, now, &actor, caller, &name)).await?;
    state.knowledge.index.notify();
    Ok(HttpResponse::NoContent().finish())
}

async fn grant(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (now, actor, (name, group)) = (state.clock.now(), who.actor(), path.into_inner());
    state.store.run(move |c| collections::grant_read(c, now, &actor, &name, &group)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn revoke(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (now, actor, (name, group)) = (state.clock.now(), who.actor(), path.into_inner());
    state.store.run(move |c| collections::revoke_read(c, now, &actor, &name, &group)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Readers see a collection's documents; so do those who manage it.
async fn list_documents(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (caller, name) = (caller(&who), path.into_inner());
    let docs = state
        .store
        .run(move |c| {
            let row = match collections::managed(c, caller, &name) {
                Ok(row) => row,
                Err(_) => collections::readable(c, caller, &name)?,
            };
            documents::list(c, &row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(docs))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddQuery {
    /// The document's name in the collection: a file name, or a path under an ingested folder.
    source: String,
}

/// The file is the request body, as it is on disk (any content type). Only API tokens may
/// send one (the CSRF guard takes JSON alone from browser sessions).
async fn add_document(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<String>,
    query: web::Query<AddQuery>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    let limit = state.knowledge.max_file_bytes;
    let bytes = read_limited(body, limit).await?;
    let ingested = knowledge::add_file(
        &state,
        who.actor(),
        caller(&who),
        path.into_inner(),
        query.into_inner().source,
        bytes,
    )
    .await?;
    Ok(match ingested.status {
        Status::Unchanged => HttpResponse::Ok().json(ingested),
        _ => HttpResponse::Created().json(ingested),
    })
}

async fn read_limited(mut body: web::Payload, limit: u64) -> AppResult<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) =
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(std::pin::Pin::new(&mut body), cx)).await
    {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("the upload broke off: {e}")))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(AppError::new(
                ErrorKind::TooLarge,
                format!("the file is larger than knowledge.max_file_mib ({} MiB)", limit / (1024 * 1024)),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn remove_document(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let (now, actor, caller, (name, id)) = (state.clock.now(), who.actor(), caller(&who), path.into_inner());
    state
        .store
        .run(move |c| {
            let row = collections::managed(c, caller, &name)?;
            documents::remove(c, now, &actor, &row, id)
        })
        .await?;
    state.knowledge.index.notify();
    Ok(HttpResponse::NoContent().finish())
}

/// The original file, for readers of its collection, always as a download: an uploaded HTML
/// page is never rendered as part of Ayush.
async fn original(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let (caller, (name, id)) = (caller(&who), path.into_inner());
    let (doc, bytes) = state
        .store
        .run(move |c| {
            let row = collections::readable(c, caller, &name)?;
            let doc = documents::get_in(c, &row, id)?;
            Ok((doc, documents::file(c, id)?))
        })
        .await?;
    let media = match doc.format.as_str() {
        "pdf" => "application/pdf",
        "markdown" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "text" | "html" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    let file_name = doc.source.rsplit(['/', '\\']).next().unwrap_or(&doc.source).to_string();
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        file_name.replace(|c: char| !c.is_ascii_graphic() || c == '"' || c == '\\', "_"),
        crate::http::encode_component(&file_name)
    );
    Ok(HttpResponse::Ok()
        .content_type(media)
        .insert_header(("Content-Disposition", disposition))
        .insert_header(("Cache-Control", "private, no-store"))
        .body(bytes))
}

/// `GET /api/search?q=TEXT[&collection=NAME]...[&limit=N]`. Collections repeat, which the
/// usual query extractor cannot take, so the query string is read here.
async fn search(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    req: HttpRequest,
) -> AppResult<HttpResponse> {
    let mut q = None;
    let mut names = Vec::new();
    let mut limit = 10;
    for (key, value) in form_pairs(req.query_string())? {
        match key.as_str() {
            "q" => q = Some(value),
            "collection" => names.push(value),
            "limit" => {
                limit = value.parse().map_err(|_| {
                    AppError::validation(format!("limit must be a number from 1 to {MAX_LIMIT}"))
                })?
            }
            other => return Err(AppError::bad_request(format!("unknown query parameter {other:?}"))),
        }
    }
    let q = q.ok_or_else(|| AppError::validation("the search needs some words (q)"))?;
    let hits = knowledge::search(&state.store, &state.knowledge, caller(&who), &q, names, limit).await?;
    Ok(HttpResponse::Ok().json(json!({"query": q, "hits": hits})))
}

/// `application/x-www-form-urlencoded` pairs, repeats kept.
fn form_pairs(query: &str) -> AppResult<Vec<(String, String)>> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| AppError::bad_request("the query string is not UTF-8"))
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

async fn index_status(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.knowledge.index.status()))
}

async fn rebuild(state: web::Data<AppState>, who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    let knowledge = state.knowledge.clone();
    let passages = tokio::task::spawn_blocking(move || knowledge.index.rebuild())
        .await
        .map_err(AppError::internal)?
        .map_err(|e| AppError::new(ErrorKind::Unavailable, format!("the rebuild failed: {e}")))?;
    let (now, actor) = (state.clock.now(), who.actor());
    state
        .store
        .run(move |c| {
            crate::audit::record(
                c,
                now,
                &crate::audit::Event::new(&actor, "index.rebuild", crate::audit::Outcome::Success)
                    .details(json!({"passages": passages})),
            )
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"passages": passages})))
}

//! Collections, their documents and search over HTTP: `/api/collections…`, `/api/search`, and
//! the index's state for admins. The rules live in `knowledge`; this only translates.

use crate::error::{AppError, AppResult, ErrorKind};
use crate::http::guard::{AdminOnly, Authed, ChatUser};
use crate::http::routes::Routes;
use crate::knowledge::collections::{Caller, NewCollection};
use crate::knowledge::library::Settled;
use crate::knowledge::{self, MAX_LIMIT, Queued};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

pub fn routes(r: &mut Routes) {
    r.get("/api/collections", list)
        .post("/api/collections", create)
        .get("/api/collections/{name}", show)
        .delete("/api/collections/{name}", remove)
        .put("/api/collections/{name}/readers/{group}", grant)
        .delete("/api/collections/{name}/readers/{group}", revoke)
        .get("/api/collections/{name}/documents", list_documents)
        .post("/api/collections/{name}/documents", add_document)
        .delete("/api/collections/{name}/documents/{id}", remove_document)
        .get("/api/collections/{name}/documents/{id}/file", original)
        .get("/api/jobs", list_jobs)
        .get("/api/jobs/{id}", show_job)
        .post("/api/jobs/{id}/cancel", cancel_job)
        .get("/api/search", search)
        .get("/api/admin/index", index_status)
        .post("/api/admin/index/rebuild", rebuild);
}

fn caller<P>(who: &Authed<P>) -> Caller {
    Caller::user(&who.user)
}

async fn list(state: web::Data<AppState>, who: Authed<ChatUser>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.library.list(caller(&who)).await?))
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    body: web::Json<NewCollection>,
) -> AppResult<HttpResponse> {
    let created = state.library.create(who.actor(), caller(&who), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(created))
}

async fn show(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.library.show(caller(&who), path.into_inner()).await?))
}

async fn remove(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    state.library.remove(who.actor(), caller(&who), path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn grant(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (name, group) = path.into_inner();
    state.library.grant(who.actor(), name, group).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn revoke(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (name, group) = path.into_inner();
    state.library.revoke(who.actor(), name, group).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Readers see a collection's documents; so do those who manage it.
async fn list_documents(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.library.documents(caller(&who), path.into_inner()).await?))
}

/// How a file is added through the API: under which name, and whether to wait for its job.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddQuery {
    /// The document's name in the collection: a file name, or a path under an ingested folder.
    pub source: String,
    /// `false`: answer 202 with the queued job at once instead of waiting for it.
    #[serde(default = "yes")]
    pub wait: bool,
}

fn yes() -> bool {
    true
}

/// How long adding a file waits for its job before answering 202 with it.
const JOB_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The file is the request body, as it is on disk (any content type). Only API tokens may
/// send one this way (the CSRF guard takes JSON alone from browser sessions; the web UI
/// uploads through `/collections/{name}/upload`).
async fn add_document(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<String>,
    query: web::Query<AddQuery>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    let AddQuery { source, wait } = query.into_inner();
    // The upload's place and memory are freed once it is queued, not after waiting for its job.
    let queued = {
        let upload = read_limited(&state, who.user.id, body).await?;
        state.library.queue(who.actor(), caller(&who), path.into_inner(), source, upload.bytes).await?
    };
    answer_queued(&state, queued, wait).await
}

/// Answers a queued file: 200 unchanged; 201 added or replaced once its job is done (when
/// waiting); 202 with the job otherwise; the job's failure as the error it was.
pub(crate) async fn answer_queued(state: &AppState, queued: Queued, wait: bool) -> AppResult<HttpResponse> {
    Ok(match state.library.settle(queued, wait.then_some(JOB_WAIT)).await? {
        Settled::Unchanged(ingested) => HttpResponse::Ok().json(ingested),
        Settled::Stored(ingested) => HttpResponse::Created().json(ingested),
        Settled::Pending(job) => HttpResponse::Accepted().json(job),
    })
}

/// A file received whole, with what it holds of the server (one of its sender's upload places,
/// its share of the upload memory) until it is dropped, once the file is queued.
pub(crate) struct Upload {
    pub bytes: Vec<u8>,
    _place: crate::limits::Slot,
    _memory: crate::limits::Reserved,
}

/// Receives a file of `user_id`'s: at most `knowledge.max_file_mib`, at most
/// `knowledge.max_concurrent_uploads_per_user` at once (429), within the memory all uploads
/// share (503 when it stays full).
pub(crate) async fn read_limited(
    state: &AppState,
    user_id: i64,
    mut body: web::Payload,
) -> AppResult<Upload> {
    let limit = state.library.max_file_bytes();
    let place = state.uploads.start(user_id)?;
    let mut memory = crate::limits::Reserved::default();
    let mut out = Vec::new();
    while let Some(chunk) = crate::http::next_chunk(&mut body).await {
        let chunk = chunk.map_err(|e| AppError::bad_request(format!("the upload broke off: {e}")))?;
        let size = (out.len() + chunk.len()) as u64;
        if size > limit {
            return Err(AppError::new(
                ErrorKind::TooLarge,
                format!("the file is larger than knowledge.max_file_mib ({} MiB)", limit / (1024 * 1024)),
            ));
        }
        state.upload_memory.reserve(&mut memory, size).await?;
        out.extend_from_slice(&chunk);
    }
    Ok(Upload { bytes: out, _place: place, _memory: memory })
}

async fn remove_document(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let (name, id) = path.into_inner();
    state.library.remove_document(who.actor(), caller(&who), name, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The original file, for readers of its collection, always as a download: an uploaded HTML
/// page is never rendered as part of Ayush.
async fn original(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<(String, i64)>,
) -> AppResult<HttpResponse> {
    let (name, id) = path.into_inner();
    let (doc, bytes) = state.library.original(caller(&who), name, id).await?;
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
        crate::url::encode_component(&file_name)
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
    let hits =
        knowledge::search(&state.store, &state.knowledge, caller(&who), &q, names, limit, None).await?;
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

/// `ayushctl --local index status` gives the same report from the data directory.
async fn index_status(state: web::Data<AppState>, _who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    let (index, vectors) = (state.knowledge.index.status(), state.knowledge.vectors.status());
    let report =
        state.store.run(move |c| knowledge::report(c, index, vectors.model, Some(vectors.embedded))).await?;
    Ok(HttpResponse::Ok().json(report))
}

async fn rebuild(state: web::Data<AppState>, who: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    let passages = state.library.rebuild(who.actor()).await?;
    Ok(HttpResponse::Ok().json(json!({"passages": passages})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsQuery {
    collection: Option<String>,
    #[serde(default = "fifty")]
    limit: i64,
}

fn fifty() -> i64 {
    50
}

/// Jobs of a collection one manages or reads, or one's own; admins see those of shared
/// collections too.
async fn list_jobs(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    query: web::Query<JobsQuery>,
) -> AppResult<HttpResponse> {
    let JobsQuery { collection, limit } = query.into_inner();
    Ok(HttpResponse::Ok().json(state.library.jobs(caller(&who), collection, limit).await?))
}

async fn show_job(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.library.job(caller(&who), path.into_inner()).await?))
}

async fn cancel_job(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.library.cancel_job(caller(&who), path.into_inner()).await?))
}

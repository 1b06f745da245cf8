//! The pages of company knowledge: `/collections` (those one may read, and making one),
//! `/collections/{name}` (its documents, uploads by drag and drop with per-file progress, its
//! ingestion jobs) and `/search`. They adapt to the Knowledge service (`knowledge::Library`) as
//! the JSON API does; uploads from the page come through `/collections/{name}/upload` with the
//! session's CSRF token.

use crate::error::AppResult;
use crate::http::api::knowledge::{answer_queued, read_limited};
use crate::http::guard::{Authed, ChatUser};
use crate::http::routes::Routes;
use crate::http::ui::{Chrome, CsrfForm, Flash, Page, UiError, check_csrf, render, see_other, ui_error};
use crate::knowledge::collections::{Caller, Collection, NewCollection};
use crate::knowledge::documents::Document;
use crate::knowledge::jobs::Job;
use crate::knowledge::library::Overview;
use crate::knowledge::{self, Hit};
use crate::state::AppState;
use crate::url::encode_component;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub fn routes(r: &mut Routes) {
    r.get("/collections", list_page)
        .post("/collections", create)
        .get("/collections/{name}", collection_page)
        .post("/collections/{name}/upload", upload)
        .post("/collections/{name}/remove", remove_collection)
        .post("/collections/{name}/documents/{id}/remove", remove_document)
        .post("/chat/{id}/attach", attach_to_chat)
        .get("/search", search_page);
}

#[derive(Template)]
#[template(path = "collections.html")]
struct ListPage {
    chrome: Chrome,
    collections: Vec<Collection>,
}

async fn render_list(
    state: &AppState,
    who: &Authed<ChatUser>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<HttpResponse, UiError> {
    let collections =
        state.library.list(Caller::user(&who.user)).await.map_err(ui_error(state, "/collections"))?;
    Ok(render(&ListPage { chrome: Chrome::for_user(state, who, "collections", flash), collections }, status))
}

async fn list_page(state: web::Data<AppState>, Page(who): Page<ChatUser>) -> Result<HttpResponse, UiError> {
    render_list(&state, &who, None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct NewForm {
    name: String,
    #[serde(default)]
    description: String,
    /// "personal" or "shared" (admins).
    #[serde(default)]
    kind: String,
    /// Reader groups, separated by commas.
    #[serde(default)]
    readers: String,
}

async fn create(
    state: web::Data<AppState>,
    CsrfForm { who, form }: CsrfForm<ChatUser, NewForm>,
) -> Result<HttpResponse, UiError> {
    let f = form;
    let new = NewCollection {
        name: f.name.trim().to_string(),
        description: f.description.trim().to_string(),
        personal: f.kind != "shared",
        owner: None,
        readers: f.readers.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect(),
    };
    let result = state.library.create(who.actor(), Caller::user(&who.user), new).await;
    match result {
        Ok(made) => Ok(see_other(&format!("/collections/{}", encode_component(&made.name)))),
        Err(e) => {
            render_list(&state, &who, Some(Flash { kind: "error", text: e.message.clone() }), e.kind.status())
                .await
        }
    }
}

#[derive(Template)]
#[template(path = "collection.html")]
struct CollectionPage {
    chrome: Chrome,
    collection: Collection,
    path: String,
    documents: Vec<Document>,
    jobs: Vec<Job>,
    manage: bool,
    max_mib: u64,
}

impl CollectionPage {
    fn size(&self, bytes: &i64) -> String {
        match *bytes {
            b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
            b if b >= 1 << 10 => format!("{} KiB", b >> 10),
            b => format!("{b} B"),
        }
    }
}

async fn collection_page(
    state: web::Data<AppState>,
    Page(who): Page<ChatUser>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let name = path.into_inner();
    let here = format!("/collections/{}", encode_component(&name));
    let Overview { collection, documents, jobs, manage } =
        state.library.overview(Caller::user(&who.user), name, 30).await.map_err(ui_error(&state, &here))?;
    let page = CollectionPage {
        chrome: Chrome::for_user(&state, &who, "collections", None),
        path: here,
        collection,
        documents,
        jobs,
        manage,
        max_mib: state.library.max_file_bytes() >> 20,
    };
    Ok(render(&page, StatusCode::OK))
}

/// The name a raw-body upload is stored under.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceQuery {
    source: String,
}

/// Scripts on the pages send the session's CSRF token in a header with raw-body uploads.
fn check_csrf_header(who: &Authed<ChatUser>, req: &HttpRequest) -> AppResult<()> {
    let sent = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    check_csrf(who, sent)
}

/// One file from the page's drop zone: queued, answered at once with its job (202), which the
/// page then follows.
async fn upload(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SourceQuery>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    check_csrf_header(&who, &req)?;
    let upload = read_limited(&state, who.user.id, body).await?;
    let queued = state
        .library
        .queue(
            who.actor(),
            Caller::user(&who.user),
            path.into_inner(),
            query.into_inner().source,
            upload.bytes,
        )
        .await?;
    answer_queued(&state, queued, false).await
}

/// A file attached from the chat's composer, with the session's CSRF token: 202 with its job.
async fn attach_to_chat(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    req: HttpRequest,
    path: web::Path<i64>,
    query: web::Query<SourceQuery>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    check_csrf_header(&who, &req)?;
    let upload = read_limited(&state, who.user.id, body).await?;
    let queued = crate::http::api::chat::queue_chat_file(
        &state,
        &who,
        path.into_inner(),
        query.into_inner().source,
        upload.bytes,
    )
    .await?;
    answer_queued(&state, queued, false).await
}

async fn remove_collection(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<ChatUser>,
    path: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let name = path.into_inner();
    let err = ui_error(&state, "/collections");
    state.library.remove(who.actor(), Caller::user(&who.user), name).await.map_err(&err)?;
    Ok(see_other("/collections"))
}

async fn remove_document(
    state: web::Data<AppState>,
    CsrfForm { who, .. }: CsrfForm<ChatUser>,
    path: web::Path<(String, i64)>,
) -> Result<HttpResponse, UiError> {
    let (name, id) = path.into_inner();
    let here = format!("/collections/{}", encode_component(&name));
    let err = ui_error(&state, &here);
    state.library.remove_document(who.actor(), Caller::user(&who.user), name, id).await.map_err(&err)?;
    Ok(see_other(&here))
}

/// A stretch of a snippet, marked where it matched the query.
pub struct Piece {
    pub text: String,
    pub mark: bool,
}

/// A hit as the search page shows it.
pub struct ShownHit {
    pub hit: Hit,
    pub pieces: Vec<Piece>,
    pub file_url: String,
}

fn pieces(snippet: &str, highlights: &[[usize; 2]]) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut at = 0;
    for &[start, end] in highlights {
        if start < at
            || end > snippet.len()
            || !snippet.is_char_boundary(start)
            || !snippet.is_char_boundary(end)
        {
            continue;
        }
        if start > at {
            out.push(Piece { text: snippet[at..start].to_string(), mark: false });
        }
        out.push(Piece { text: snippet[start..end].to_string(), mark: true });
        at = end;
    }
    if at < snippet.len() {
        out.push(Piece { text: snippet[at..].to_string(), mark: false });
    }
    out
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    chrome: Chrome,
    query: String,
    collection: String,
    /// The collections the searcher may read, for the picker.
    collections: Vec<String>,
    hits: Option<Vec<ShownHit>>,
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    collection: String,
}

async fn search_page(
    state: web::Data<AppState>,
    Page(who): Page<ChatUser>,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, UiError> {
    let SearchQuery { q, collection } = query.into_inner();
    let caller = Caller::user(&who.user);
    let collections = state.library.readable_names(caller).await.map_err(ui_error(&state, "/search"))?;
    let mut flash = None;
    let hits = if q.trim().is_empty() {
        None
    } else {
        let names = if collection.is_empty() { Vec::new() } else { vec![collection.clone()] };
        match knowledge::search(&state.store, &state.knowledge, caller, &q, names, 20, None).await {
            Ok(hits) => Some(
                hits.into_iter()
                    .map(|hit| ShownHit {
                        pieces: pieces(&hit.found.snippet, &hit.found.highlights),
                        file_url: format!(
                            "/api/collections/{}/documents/{}/file",
                            encode_component(&hit.collection),
                            hit.found.document_id
                        ),
                        hit,
                    })
                    .collect(),
            ),
            Err(e) => {
                flash = Some(Flash { kind: "error", text: e.message });
                Some(Vec::new())
            }
        }
    };
    let page = SearchPage {
        chrome: Chrome::for_user(&state, &who, "search", flash),
        query: q,
        collection,
        collections,
        hits,
    };
    Ok(render(&page, StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_cut_at_their_highlights() {
        let p = pieces("the parental leave policy", &[[4, 12], [13, 18]]);
        let shown: Vec<(&str, bool)> = p.iter().map(|p| (p.text.as_str(), p.mark)).collect();
        assert_eq!(
            shown,
            [("the ", false), ("parental", true), (" ", false), ("leave", true), (" policy", false)]
        );
        assert_eq!(pieces("é", &[[0, 1]]).len(), 1, "a range inside a character is ignored");
    }
}

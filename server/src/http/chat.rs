//! The UI's chat API: conversations, messages streamed as server-sent events, and the models
//! the signed-in user may use.

use crate::chat::turn::{self, Input, StreamEvent, Turn};
use crate::chat::{complete, markdown, sources, store};
use crate::error::AppError;
use crate::error::AppResult;
use crate::http::guard::{Authed, ChatUser};
use crate::http::routes::Routes;
use crate::knowledge::collections::Caller;
use crate::state::AppState;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use ayush_models::GenerateParams;
use serde::Deserialize;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub fn routes(r: &mut Routes) {
    r.get("/api/models", list_models)
        .get("/api/conversations", list)
        .post("/api/conversations", create)
        .get("/api/conversations/{id}", get)
        .patch("/api/conversations/{id}", update)
        .delete("/api/conversations/{id}", delete)
        .post("/api/conversations/{id}/messages", send)
        .post("/api/conversations/{id}/files", attach_file)
        .post("/api/conversations/{id}/regenerate", regenerate)
        .post("/api/conversations/{id}/messages/{message_id}/edit", edit);
}

/// The models the signed-in user may chat with.
async fn list_models(state: web::Data<AppState>, who: Authed<ChatUser>) -> AppResult<HttpResponse> {
    let (catalog, uid) = (state.catalog.clone(), who.user.id);
    let mut mine = state.store.run(move |c| crate::catalog::visible_to(&catalog, c, uid)).await?;
    mine.retain(crate::catalog::ModelEntry::chats);
    Ok(HttpResponse::Ok().json(mine))
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    q: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let (uid, query) = (who.user.id, q.into_inner().q);
    Ok(HttpResponse::Ok().json(state.store.run(move |c| store::list(c, uid, query.as_deref())).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    model: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    system_prompt: String,
    /// Collections the conversation answers from (each must be readable).
    #[serde(default)]
    collections: Vec<String>,
    /// An admin's assistant to chat with: its model, instructions and collections.
    preset: Option<String>,
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    body: web::Json<CreateBody>,
) -> AppResult<HttpResponse> {
    let mut body = body.into_inner();
    let preset = match body.preset.take() {
        Some(name) => {
            let preset = state.assistants.show(name).await?;
            if body.model.as_ref().is_some_and(|m| *m != preset.model) {
                return Err(AppError::validation(format!(
                    "the assistant {} chats with {}; leave model out",
                    preset.name, preset.model
                )));
            }
            body.model = Some(preset.model.clone());
            Some(preset)
        }
        None => None,
    };
    let model = complete::usable(&state, &who.actor(), body.model.clone()).await?.name().to_string();
    let (now, uid) = (state.clock.now(), who.user.id);
    let caller = Caller::user(&who.user);
    let (conv, collections) = state
        .store
        .run(move |c| {
            c.transaction(|c| {
                let conv = store::create(c, now, uid, &body.title, &model, &body.system_prompt)?;
                sources::attach(c, caller, conv.id, &body.collections)?;
                if let Some(p) = &preset {
                    store::set_preset(c, conv.id, Some(p.id))?;
                }
                let conv = store::get(c, uid, conv.id)?;
                Ok(((conv.clone(), preset_name(c, conv.id)?), names(sources::attached(c, conv.id)?)))
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(with_collections(&conv, collections)))
}

async fn get(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (uid, id) = (who.user.id, path.into_inner());
    let (conv, msgs, collections, mut citations) = state
        .store
        .run(move |c| {
            let conv = store::get(c, uid, id)?;
            let msgs = store::messages(c, id)?;
            let ids: Vec<i64> = msgs.iter().map(|m| m.id).collect();
            let citations = sources::of_messages(c, uid, &ids)?;
            Ok(((conv, preset_name(c, id)?), msgs, names(sources::attached(c, id)?), citations))
        })
        .await?;
    let messages: Vec<serde_json::Value> = msgs
        .into_iter()
        .map(|m| {
            let html = (m.role == "assistant").then(|| markdown::to_html(&m.content));
            let cited = citations.remove(&m.id).unwrap_or_default();
            let mut v = serde_json::to_value(&m).unwrap_or_default();
            v["html"] = serde_json::json!(html);
            v["citations"] = serde_json::json!(cited);
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "conversation": with_collections(&conv, collections), "messages": messages,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    title: Option<String>,
    model: Option<String>,
    system_prompt: Option<String>,
    collections: Option<Vec<String>>,
    /// Follow this assistant from now on (its model too); choosing a `model` alone leaves it.
    preset: Option<String>,
}

async fn update(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
    body: web::Json<UpdateBody>,
) -> AppResult<HttpResponse> {
    let mut body = body.into_inner();
    let (now, uid, id) = (state.clock.now(), who.user.id, path.into_inner());
    // Some(Some(id)): follow that preset; Some(None): leave the one followed; None: no change.
    let preset_change = match body.preset.take() {
        Some(name) => {
            let preset = state.assistants.show(name).await?;
            body.model = Some(preset.model.clone());
            Some(Some(preset.id))
        }
        None if body.model.is_some() => Some(None),
        None => None,
    };
    if let Some(m) = &body.model {
        complete::usable(&state, &who.actor(), Some(m.clone())).await?;
    }
    let caller = Caller::user(&who.user);
    let (conv, collections) = state
        .store
        .run(move |c| {
            c.transaction(|c| {
                let conv = store::update(
                    c,
                    now,
                    uid,
                    id,
                    body.title.as_deref(),
                    body.model.as_deref(),
                    body.system_prompt.as_deref(),
                )?;
                if let Some(names) = &body.collections {
                    sources::attach(c, caller, conv.id, names)?;
                }
                if let Some(preset) = preset_change {
                    store::set_preset(c, conv.id, preset)?;
                }
                let conv = store::get(c, uid, conv.id)?;
                Ok(((conv.clone(), preset_name(c, conv.id)?), names(sources::attached(c, conv.id)?)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(with_collections(&conv, collections)))
}

async fn delete(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let (uid, id, actor, now) = (who.user.id, path.into_inner(), who.actor(), state.clock.now());
    state.store.run(move |c| store::delete(c, now, &actor, uid, id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sampling options a request may set; the rest keep their defaults.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    max_tokens: Option<usize>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<usize>,
    repetition_penalty: Option<f32>,
    seed: Option<u64>,
    stop: Option<Vec<String>>,
}

impl Options {
    fn params(self) -> GenerateParams {
        let d = GenerateParams::default();
        GenerateParams {
            max_tokens: self.max_tokens.unwrap_or(d.max_tokens),
            temperature: self.temperature.unwrap_or(d.temperature),
            top_p: self.top_p.or(d.top_p),
            top_k: self.top_k.or(d.top_k),
            repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
            seed: self.seed.unwrap_or(d.seed),
            stop: self.stop.unwrap_or_default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    content: String,
    model: Option<String>,
    #[serde(flatten)]
    options: Options,
}

async fn stream_turn(
    state: &AppState,
    who: Authed<ChatUser>,
    id: i64,
    input: Input,
    model: Option<String>,
    options: Options,
) -> AppResult<HttpResponse> {
    let turn = Turn {
        actor: who.actor(),
        user: who.user,
        conversation_id: id,
        input,
        model,
        params: options.params(),
    };
    let rx = turn::start(state, turn).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(Sse(rx)))
}

async fn send(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
    body: web::Json<SendBody>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    stream_turn(&state, who, path.into_inner(), Input::Message(body.content), body.model, body.options).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RegenerateBody {
    model: Option<String>,
    #[serde(flatten)]
    options: Options,
}

async fn regenerate(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
    body: web::Json<RegenerateBody>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    stream_turn(&state, who, path.into_inner(), Input::Regenerate, body.model, body.options).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditBody {
    content: String,
    #[serde(flatten)]
    options: Options,
}

async fn edit(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<(i64, i64)>,
    body: web::Json<EditBody>,
) -> AppResult<HttpResponse> {
    let (id, message_id) = path.into_inner();
    let body = body.into_inner();
    stream_turn(&state, who, id, Input::Edit { message_id, content: body.content }, None, body.options).await
}

/// Server-sent events from the turn's channel. Dropping it (the client went away) closes the
/// channel, which cancels generation.
struct Sse(mpsc::Receiver<StreamEvent>);

impl futures_core::Stream for Sse {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|ev| {
            ev.map(|ev| {
                let name = match &ev {
                    StreamEvent::Queued { .. } => "queued",
                    StreamEvent::Token { .. } => "token",
                    StreamEvent::Done { .. } => "done",
                    StreamEvent::Error { .. } => "error",
                };
                let data = serde_json::to_string(&ev).unwrap_or_default();
                Ok(Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
            })
        })
    }
}

fn names(attached: Vec<(i64, String)>) -> Vec<String> {
    attached.into_iter().map(|(_, n)| n).collect()
}

/// A conversation as the API shows it: with the collections it answers from, and the
/// assistant it follows (`preset`), if any.
fn with_collections(
    conv: &(store::Conversation, Option<String>),
    collections: Vec<String>,
) -> serde_json::Value {
    let mut v = serde_json::to_value(&conv.0).unwrap_or_default();
    v["collections"] = serde_json::json!(collections);
    v["preset"] = serde_json::json!(conv.1);
    v
}

fn preset_name(c: &mut crate::store::Conn, conversation_id: i64) -> AppResult<Option<String>> {
    Ok(crate::assistants::of_conversation(c, conversation_id)?.map(|p| p.name))
}

/// Stores a file for one chat in the chat's files collection (made on first use, owned by the
/// chat's owner, attached to the chat) and queues it as any upload.
pub(crate) async fn queue_chat_file(
    state: &AppState,
    who: &Authed<ChatUser>,
    conversation_id: i64,
    source: String,
    bytes: Vec<u8>,
) -> AppResult<crate::knowledge::Queued> {
    let (now, actor, caller, uid) = (state.clock.now(), who.actor(), Caller::user(&who.user), who.user.id);
    let collection = state
        .store
        .run(move |c| {
            store::get(c, uid, conversation_id)?;
            sources::ensure_files_collection(c, now, &actor, caller, conversation_id)
        })
        .await?;
    state.library.queue(who.actor(), caller, collection, source, bytes).await
}

/// `POST /api/conversations/{id}/files?source=NAME`: the file is the body (API keys; the web UI
/// attaches through `/chat/{id}/attach`).
async fn attach_file(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
    query: web::Query<crate::http::knowledge::AddQuery>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    let crate::http::knowledge::AddQuery { source, wait } = query.into_inner();
    // The upload's place and memory are freed once it is queued, not after waiting for its job.
    let queued = {
        let upload = crate::http::knowledge::read_limited(&state, who.user.id, body).await?;
        queue_chat_file(&state, &who, path.into_inner(), source, upload.bytes).await?
    };
    crate::http::knowledge::answer_queued(&state, queued, wait).await
}

//! The UI's chat API: conversations, messages streamed as server-sent events, and the models
//! the signed-in user may use.

use crate::chat::conversations::{ConversationChanges, NewConversation, Owner};
use crate::chat::turn::{self, Input, StreamEvent, Turn};
use crate::chat::{sources, store};
use crate::error::AppResult;
use crate::http::guard::{Authed, ChatUser};
use crate::http::message::MessageView;
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
        .post("/api/conversations/{id}/continue", continue_answer)
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
    Ok(HttpResponse::Ok().json(state.chat().conversations(who.user.id, q.into_inner().q).await?))
}

fn owner(who: &Authed<ChatUser>) -> Owner {
    Owner { actor: who.actor(), user_id: who.user.id, caller: Caller::user(&who.user) }
}

async fn create(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    body: web::Json<NewConversation>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(state.chat().start(owner(&who), body.into_inner()).await?))
}

async fn get(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let opened = state.chat().conversation(who.user.id, path.into_inner()).await?;
    let (conversation, messages) = opened.messages_out();
    Ok(HttpResponse::Ok().json(serde_json::json!({"conversation": conversation, "messages": messages})))
}

async fn update(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
    body: web::Json<ConversationChanges>,
) -> AppResult<HttpResponse> {
    let changed = state.chat().change(owner(&who), path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(changed))
}

async fn delete(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    state.chat().remove(owner(&who), path.into_inner()).await?;
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
    let rx = turn::start(&state.chat(), turn).await?;
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
    let (body, id, uid) = (body.into_inner(), path.into_inner(), who.user.id);
    let model = match &body.model {
        Some(m) => m.clone(),
        None => state.store.run(move |c| crate::chat::store::get(c, uid, id)).await?.model,
    };
    if crate::media::is_image_model(&state, &model).await? {
        return draw_turn(&state, &who, id, body.content, model).await;
    }
    stream_turn(&state, who, id, Input::Message(body.content), body.model, body.options).await
}

/// A message to an image model: its answer is the image, sent as one `done` event in the
/// stream a chat turn's reply comes in, so the page treats both alike.
async fn draw_turn(
    state: &AppState,
    who: &Authed<ChatUser>,
    id: i64,
    prompt: String,
    model: String,
) -> AppResult<HttpResponse> {
    let drawn =
        crate::media::draw_in_chat(state, &who.actor(), who.user.id, id, prompt, model.clone()).await?;
    let event = match drawn.error {
        None => StreamEvent::Done {
            message_id: drawn.message_id,
            model,
            finish_reason: "stop".into(),
            usage: crate::chat::turn::UsageOut {
                prompt_tokens: 0,
                completion_tokens: 0,
                cached_prompt_tokens: 0,
                latency_ms: drawn.latency_ms,
                ttft_ms: None,
            },
            html: crate::chat::markdown::to_html(&drawn.content),
            citations: Vec::new(),
            images: drawn.images,
        },
        Some(e) => StreamEvent::Error {
            code: e.code().into(),
            message: e.message,
            message_id: Some(drawn.message_id),
        },
    };
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.send(event).await;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(Sse(rx)))
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

/// Writes on from where the last answer stopped, by the model that wrote it.
async fn continue_answer(
    state: web::Data<AppState>,
    who: Authed<ChatUser>,
    path: web::Path<i64>,
    options: web::Json<Options>,
) -> AppResult<HttpResponse> {
    stream_turn(&state, who, path.into_inner(), Input::Continue, None, options.into_inner()).await
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
                    StreamEvent::Title { .. } => "title",
                };
                let mut data = serde_json::to_value(&ev).unwrap_or_default();
                if let StreamEvent::Done {
                    message_id,
                    model,
                    finish_reason,
                    html,
                    citations,
                    images,
                    usage,
                } = ev
                {
                    // The reply as the chat page shows it, for the page to put in place.
                    let shown = MessageView {
                        id: message_id,
                        role: "assistant".into(),
                        content: String::new(),
                        html,
                        model: Some(model),
                        error: None,
                        finish_reason: Some(finish_reason),
                        citations,
                        images,
                        stats: crate::http::message::Stats {
                            prompt_tokens: Some(usage.prompt_tokens),
                            completion_tokens: Some(usage.completion_tokens),
                            ttft_ms: usage.ttft_ms,
                            latency_ms: Some(usage.latency_ms),
                        },
                    };
                    data["item"] = shown.render().into();
                }
                Ok(Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
            })
        })
    }
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
    query: web::Query<crate::http::api::knowledge::AddQuery>,
    body: web::Payload,
) -> AppResult<HttpResponse> {
    let crate::http::api::knowledge::AddQuery { source, wait } = query.into_inner();
    // The upload's place and memory are freed once it is queued, not after waiting for its job.
    let queued = {
        let upload = crate::http::api::knowledge::read_limited(&state, who.user.id, body).await?;
        queue_chat_file(&state, &who, path.into_inner(), source, upload.bytes).await?
    };
    crate::http::api::knowledge::answer_queued(&state, queued, wait).await
}

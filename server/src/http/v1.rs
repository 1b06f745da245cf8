//! The OpenAI-compatible API: what the official SDKs, LangChain and IDE assistants call when
//! pointed at Ayush with a base URL and an API key. The same JSON shapes, SSE framing and error
//! objects as the OpenAI API reference; below the adapter, the same model access rules, engine
//! and audit as the web UI. A key carries its owner's permissions and no more.

use crate::audit::{Actor, Outcome, content};
use crate::chat::complete::{self, Asker, Ended, Filing, Step, Usable};
use crate::error::{AppError, ErrorKind, Reason};
use crate::http::guard::{ApiUser, Authed};
use crate::http::routes::Routes;
use crate::state::AppState;
use crate::usage;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use ayush_models::{ChatMessage, GenerateParams, ModelError, Usage};
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::mpsc;

pub fn routes(r: &mut Routes) {
    r.get("/v1/models", models)
        .post("/v1/chat/completions", chat_completions)
        .post("/v1/embeddings", embeddings)
        .post("/v1/audio/transcriptions", transcriptions)
        .post("/v1/audio/speech", speech)
        .post("/v1/images/generations", images);
}

/// What `/v1/…` paths that are none of the above answer, in the OpenAI shape.
pub async fn unknown_endpoint() -> Result<HttpResponse, OaiError> {
    Err(OaiError {
        status: 404,
        message: "Unknown endpoint. This server serves /v1/models, /v1/chat/completions, /v1/embeddings, /v1/audio/transcriptions, /v1/audio/speech and /v1/images/generations."
            .into(),
        kind: "invalid_request_error",
        param: None,
        code: Some("unknown_url"),
        retry_after: None,
        headers: Vec::new(),
    })
}

/// The largest `/v1` request body: conversations sent whole are larger than the rest of the
/// API's forms.
const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body of at most `BODY_LIMIT`, with errors in the OpenAI shape.
pub struct OaiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for OaiJson<T> {
    type Error = OaiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, OaiError>>>>;
    fn from_request(_: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let mut payload = payload.take();
        Box::pin(async move {
            let mut body = Vec::new();
            while let Some(chunk) = crate::http::next_chunk(&mut payload).await {
                let chunk =
                    chunk.map_err(|e| OaiError::invalid(format!("the request body broke off: {e}"), None))?;
                if body.len() + chunk.len() > BODY_LIMIT {
                    return Err(OaiError {
                        status: 413,
                        message: format!("the request body is larger than {} KiB", BODY_LIMIT / 1024),
                        kind: "invalid_request_error",
                        param: None,
                        code: None,
                        retry_after: None,
                        headers: Vec::new(),
                    });
                }
                body.extend_from_slice(&chunk);
            }
            serde_json::from_slice(&body).map(OaiJson).map_err(|e| {
                OaiError::invalid(format!("the request body is not valid JSON for this endpoint: {e}"), None)
            })
        })
    }
}

/// An error as the OpenAI API shapes it: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug)]
pub struct OaiError {
    status: u16,
    message: String,
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
    /// What the error carried over: its `Retry-After` and `x-ratelimit-*` headers.
    retry_after: Option<u64>,
    headers: Vec<(&'static str, String)>,
}

impl OaiError {
    fn invalid(message: impl Into<String>, param: Option<&'static str>) -> OaiError {
        OaiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    fn model_not_found(model: &str) -> OaiError {
        OaiError {
            status: 404,
            message: format!("The model `{model}` does not exist or you do not have access to it."),
            kind: "invalid_request_error",
            param: Some("model"),
            code: Some("model_not_found"),
            retry_after: None,
            headers: Vec::new(),
        }
    }
}

impl OaiError {
    fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl std::fmt::Display for OaiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for OaiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
    fn error_response(&self) -> HttpResponse {
        let body = self.body();
        let mut resp = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            resp.insert_header(("Retry-After", secs.to_string()));
        }
        for (name, value) in &self.headers {
            resp.insert_header((*name, value.as_str()));
        }
        resp.json(body)
    }
}

impl From<AppError> for OaiError {
    /// The JSON API's kinds as OpenAI's types; a model's failure by its reason, with the
    /// status and code OpenAI gives it.
    fn from(e: AppError) -> OaiError {
        if let Some(reason) = e.reason {
            let (status, kind, param) = match reason {
                Reason::RateLimitExceeded => (429, "rate_limit_error", None),
                Reason::QuotaExceeded => (429, "insufficient_quota", None),
                Reason::ModelNotFound => (404, "invalid_request_error", Some("model")),
                Reason::ContextLengthExceeded => (400, "invalid_request_error", Some("messages")),
                Reason::UpstreamBadRequest => (400, "invalid_request_error", None),
                Reason::UpstreamTimeout => (504, "server_error", None),
                // Ayush's own link to the provider: nothing the client can fix.
                Reason::UpstreamAuthFailed
                | Reason::UpstreamUnreachable
                | Reason::EgressRefused
                | Reason::UpstreamError => (502, "server_error", None),
            };
            return OaiError {
                status,
                message: e.message,
                kind,
                param,
                code: Some(reason.code()),
                retry_after: e.retry_after.or((status == 429).then_some(5)),
                headers: e.headers,
            };
        }
        let (status, kind, code) = match e.kind {
            ErrorKind::Unauthenticated | ErrorKind::InvalidCredentials => {
                (401, "invalid_request_error", Some("invalid_api_key"))
            }
            ErrorKind::Forbidden | ErrorKind::CrossSite => (403, "permission_error", None),
            ErrorKind::NotFound => (404, "invalid_request_error", None),
            ErrorKind::BadRequest | ErrorKind::Validation | ErrorKind::UnsupportedMediaType => {
                (400, "invalid_request_error", None)
            }
            ErrorKind::Busy | ErrorKind::LockedOut | ErrorKind::OverQuota => {
                (429, "rate_limit_error", Some("rate_limit_exceeded"))
            }
            ErrorKind::Unavailable => (503, "server_error", None),
            ErrorKind::TooLarge => (413, "invalid_request_error", None),
            _ => (500, "server_error", None),
        };
        let retry_after = e.retry_after.or((status == 429).then_some(5));
        OaiError { status, message: e.message, kind, param: None, code, retry_after, headers: e.headers }
    }
}

impl From<ModelError> for OaiError {
    fn from(e: ModelError) -> OaiError {
        AppError::from(e).into()
    }
}

/// The caller, by API key (or session), with errors in the OpenAI shape.
pub struct Caller(Authed<ApiUser>);

impl FromRequest for Caller {
    type Error = OaiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, OaiError>>>>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let fut = Authed::<ApiUser>::from_request(req, payload);
        Box::pin(async move { fut.await.map(Caller).map_err(OaiError::from) })
    }
}

async fn models(state: web::Data<AppState>, Caller(who): Caller) -> Result<HttpResponse, OaiError> {
    let (catalog, uid) = (state.catalog.clone(), who.user.id);
    let mine = state.store.run(move |c| crate::catalog::visible_to(&catalog, c, uid)).await?;
    // A local model is owned by this installation, under the product name it is branded with.
    let theme = state.themes.current();
    let here = theme.product_name.as_str();
    let data: Vec<Value> = mine
        .iter()
        .map(|m| json!({"id": m.name, "object": "model", "created": m.created(), "owned_by": m.owned_by(here)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": data})))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    stop: Option<Stop>,
    seed: Option<u64>,
    n: Option<u32>,
    user: Option<String>,
}

impl ChatRequest {
    fn prompt(&self) -> Result<Vec<ChatMessage>, OaiError> {
        if self.messages.is_empty() {
            return Err(OaiError::invalid("messages must hold at least one message", Some("messages")));
        }
        self.messages
            .iter()
            .map(|m| {
                let role = match m.role.as_str() {
                    "system" | "developer" => "system",
                    "user" => "user",
                    "assistant" => "assistant",
                    other => {
                        return Err(OaiError::invalid(
                            format!("messages: the role {other:?} is not supported (system, developer, user, assistant)"),
                            Some("messages"),
                        ));
                    }
                };
                let text = match &m.content {
                    None => String::new(),
                    Some(Content::Text(t)) => t.clone(),
                    Some(Content::Parts(parts)) => {
                        let mut text = String::new();
                        for p in parts {
                            if p.kind != "text" {
                                return Err(OaiError::invalid(
                                    format!("messages: content parts of type {:?} are not supported; send text", p.kind),
                                    Some("messages"),
                                ));
                            }
                            text.push_str(p.text.as_deref().unwrap_or_default());
                        }
                        text
                    }
                };
                Ok(ChatMessage::new(role, &text))
            })
            .collect()
    }

    fn params(&self) -> Result<GenerateParams, OaiError> {
        if self.n.is_some_and(|n| n != 1) {
            return Err(OaiError::invalid("only n = 1 is supported", Some("n")));
        }
        let d = GenerateParams::default();
        let params = GenerateParams {
            max_tokens: self.max_completion_tokens.or(self.max_tokens).unwrap_or(d.max_tokens),
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.or(Some(1.0)),
            top_k: None,
            repetition_penalty: 1.0,
            seed: self.seed.unwrap_or(d.seed),
            stop: match &self.stop {
                None => Vec::new(),
                Some(Stop::One(s)) => vec![s.clone()],
                Some(Stop::Many(v)) => v.clone(),
            },
        };
        params.validate().map_err(|m| OaiError::invalid(m, None))?;
        Ok(params)
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// Records an embeddings call: usage, and an audit event with the key that made it.
/// `details` starts with what the request said; `tokens` is `None` for a failed call, whose
/// error is in `details`.
async fn record_embeddings(
    state: &AppState,
    actor: Actor,
    user_id: i64,
    mut details: Value,
    tokens: Option<usize>,
    started: std::time::Instant,
) {
    let now = state.clock.now();
    let model = details["model"].as_str().unwrap_or_default().to_string();
    let used = usage::Record {
        user_id: Some(user_id),
        prompt_tokens: tokens.unwrap_or(0) as i64,
        duration_ms: started.elapsed().as_millis() as i64,
        outcome: if tokens.is_some() { usage::Outcome::Ok } else { usage::Outcome::Error },
        ..usage::Record::new(now, &actor, "v1.embeddings", &model)
    };
    let outcome = match tokens {
        Some(n) => {
            details["prompt_tokens"] = json!(n);
            Outcome::Success
        }
        None => Outcome::Failure,
    };
    let stored = usage::record_call(&state.store, now, used, actor, "v1.embeddings", outcome, details).await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "cannot record a /v1 call");
    }
}

/// Records an answer through the completion core; the client has had it already, so a
/// failure to record is logged, not answered.
async fn record_answer(state: &AppState, ended: &Ended, filing: Filing) {
    if let Err(e) = complete::record(&state.chat(), ended, filing, |_, _| Ok(())).await {
        tracing::error!(error = %e, "cannot record a /v1 call");
    }
}

/// A model that exists and the caller may use; any other is "not found", exactly as OpenAI
/// answers for a model a key cannot see (a denial is still audited).
async fn usable(state: &AppState, who: &Authed<ApiUser>, model: &str) -> Result<Usable, OaiError> {
    complete::usable(&state.chat(), &who.actor(), Some(model.to_string())).await.map_err(|e| match e.kind {
        ErrorKind::Validation | ErrorKind::NotFound | ErrorKind::Forbidden => {
            OaiError::model_not_found(model)
        }
        _ => OaiError::from(e),
    })
}

/// The answer's end as OpenAI names it (it has no `cancelled`: a stopped answer stopped).
fn finish_reason(ended: &Ended) -> &'static str {
    match ended.finish_reason() {
        "length" => "length",
        _ => "stop",
    }
}

async fn chat_completions(
    state: web::Data<AppState>,
    Caller(who): Caller,
    OaiJson(request): OaiJson<ChatRequest>,
) -> Result<HttpResponse, OaiError> {
    let prompt = request.prompt()?;
    let params = request.params()?;
    let usable = usable(&state, &who, &request.model).await?;
    let asker = Asker { actor: who.actor(), user_id: who.user.id, source: "v1.chat" };
    let chat = state.chat();
    let admission = complete::admit(&chat, &asker, &usable).await?;
    let mut answer =
        complete::open(&chat, asker, admission, &usable, prompt, params).await?.map_err(OaiError::from)?;
    let model = request.model.clone();
    let limit_headers = answer.rate_limit_headers().to_vec();
    let with_limits = |mut response: actix_web::HttpResponseBuilder| {
        for (name, value) in &limit_headers {
            response.insert_header((*name, value.as_str()));
        }
        response
    };
    let id = format!("chatcmpl-{}", crate::auth::secret::random_token());
    let created = state.clock.now();
    let filing = Filing {
        action: "v1.chat.completions",
        target: ("model", model.clone()),
        binding: content::Binding::Call(id.clone()),
        details: json!({"stream": request.stream, "user": request.user, "call": id}),
    };

    if !request.stream {
        let ended = loop {
            if let Step::End(ended) = answer.next().await {
                break *ended;
            }
        };
        record_answer(&state, &ended, filing).await;
        return match ended.outcome {
            Ok(ref d) => Ok(with_limits(HttpResponse::Ok()).json(json!({
                "id": id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": d.text},
                    "finish_reason": finish_reason(&ended),
                    "logprobs": null,
                }],
                "usage": usage_json(&d.usage),
                "system_fingerprint": null,
            }))),
            Err(e) => Err(OaiError::from(e)),
        };
    }

    // Streaming: chat.completion.chunk objects as SSE `data:` lines, then `data: [DONE]`.
    let include_usage = request.stream_options.unwrap_or_default().include_usage;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let state = state.into_inner();
    tokio::spawn(async move {
        let chunk = |delta: Value, finish: Option<&str>| {
            let c = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": null,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
            });
            Bytes::from(format!("data: {c}\n\n"))
        };
        let mut alive = tx.send(chunk(json!({"role": "assistant", "content": ""}), None)).await.is_ok();
        let ended = loop {
            match answer.next().await {
                // OpenAI's shapes have no place in line: a /v1 client just waits for its first token.
                Step::Queued(_) => {}
                Step::Text(piece) => {
                    if alive && tx.send(chunk(json!({"content": piece}), None)).await.is_err() {
                        // The client went away: stop generating.
                        alive = false;
                        answer.cancel();
                    }
                }
                Step::End(ended) => break *ended,
            }
        };
        match &ended.outcome {
            Ok(d) => {
                // The end in one write: the finish reason, the usage if asked, and [DONE].
                let mut end = chunk(json!({}), Some(finish_reason(&ended))).to_vec();
                if include_usage {
                    let u = json!({
                        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                        "choices": [],
                        "usage": usage_json(&d.usage),
                    });
                    end.extend_from_slice(format!("data: {u}\n\n").as_bytes());
                }
                end.extend_from_slice(b"data: [DONE]\n\n");
                let _ = tx.send(Bytes::from(end)).await;
            }
            Err(e) => {
                let err = OaiError::from(AppError::from(e));
                let _ = tx.send(Bytes::from(format!("data: {}\n\n", err.body()))).await;
            }
        }
        // The stream ends here for the client; the record is written after.
        drop(tx);
        record_answer(&state, &ended, filing).await;
    });
    Ok(with_limits(HttpResponse::Ok())
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(crate::http::Chunks(rx)))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbedInput {
    One(String),
    Many(Vec<String>),
    /// Token arrays: recognised only to be refused with a clear message.
    Tokens(#[allow(dead_code)] Vec<Value>),
}

#[derive(Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: EmbedInput,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    user: Option<String>,
}

/// Inputs one request may carry, and the characters each may hold.
const MAX_INPUTS: usize = 2048;
const MAX_INPUT_CHARS: usize = 100_000;

impl EmbeddingsRequest {
    fn texts(&self) -> Result<Vec<String>, OaiError> {
        let texts = match &self.input {
            EmbedInput::One(t) => vec![t.clone()],
            EmbedInput::Many(list) => list.clone(),
            EmbedInput::Tokens(_) => {
                return Err(OaiError::invalid(
                    "input: send text; token arrays are not supported",
                    Some("input"),
                ));
            }
        };
        if texts.is_empty() || texts.len() > MAX_INPUTS {
            return Err(OaiError::invalid(format!("input: 1 to {MAX_INPUTS} texts"), Some("input")));
        }
        if let Some(i) = texts.iter().position(|t| t.is_empty() || t.chars().count() > MAX_INPUT_CHARS) {
            return Err(OaiError::invalid(
                format!("input[{i}]: each text must be 1 to {MAX_INPUT_CHARS} characters"),
                Some("input"),
            ));
        }
        Ok(texts)
    }
}

/// Little-endian f32s in base64, as the OpenAI SDKs ask for by default.
fn base64_vector(v: &[f32]) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn embeddings(
    state: web::Data<AppState>,
    Caller(who): Caller,
    OaiJson(request): OaiJson<EmbeddingsRequest>,
) -> Result<HttpResponse, OaiError> {
    let texts = request.texts()?;
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(OaiError::invalid(
                format!("encoding_format {other:?}: use float or base64"),
                Some("encoding_format"),
            ));
        }
    };
    let model = request.model.clone();
    usable(&state, &who, &model).await?;
    let engine = match state.catalog.embedder(&model).await {
        Ok(engine) => engine,
        Err(e) if e.kind == ErrorKind::Validation || e.kind == ErrorKind::NotFound => {
            return Err(OaiError::invalid(
                format!("{model} is not an embedding model; /v1/models lists the models you may use"),
                Some("model"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(d) = request.dimensions.filter(|d| *d != engine.dimensions) {
        return Err(OaiError::invalid(
            format!("{model} makes vectors of {} dimensions, not {d}", engine.dimensions),
            Some("dimensions"),
        ));
    }
    let details = json!({"model": model, "inputs": texts.len(), "user": request.user});
    let (actor, user_id, started) = (who.actor(), who.user.id, std::time::Instant::now());
    let mut asked = usage::Record::new(state.clock.now(), &actor, "v1.embeddings", &model);
    asked.user_id = Some(user_id);
    let admission = state.usage.admit(asked).await?;
    let (vectors, tokens) = match engine.embed(texts).await {
        Ok(done) => done,
        Err(e) => {
            let err = OaiError::from(e);
            let mut failed = details;
            failed["error"] = json!(err.message);
            record_embeddings(&state, actor, user_id, failed, None, started).await;
            return Err(err);
        }
    };
    record_embeddings(&state, actor, user_id, details, Some(tokens), started).await;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 { json!(base64_vector(v)) } else { json!(v) };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let mut response = ok_with(&admission.headers);
    Ok(response.json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

/// `POST /v1/audio/transcriptions`: a multipart form with the audio `file` and the `model`,
/// answered in the `response_format` asked for.
async fn transcriptions(
    state: web::Data<AppState>,
    Caller(who): Caller,
    req: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, OaiError> {
    use crate::http::multipart;
    use crate::transcription::{self, formats};
    // The chat page's microphone calls this with the session: a form any site could post, so
    // the session's token must come too.
    crate::http::ui::check_csrf_header(&who, &req)?;
    let content_type =
        req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multipart::boundary(content_type).map_err(|m| OaiError::invalid(m, None))?;
    // The form's other fields are small; the file may be as large as allowed.
    let limit = transcription::max_file_bytes(&state) + 64 * 1024;
    let too_large = format!(
        "the audio file is larger than {} MiB, the most this server accepts",
        state.config.transcription.max_file_mib
    );
    let body = crate::http::read_capped(body, limit, &too_large).await?;
    let parts = multipart::parse(&body, &boundary).map_err(|m| OaiError::invalid(m, None))?;
    drop(body);
    let mut form = TranscriptionForm::default();
    for part in parts {
        form.take(part)?;
    }
    let file = form.file.ok_or_else(|| OaiError::invalid("the form has no `file`", Some("file")))?;
    let model = form.model.ok_or_else(|| OaiError::invalid("the form has no `model`", Some("model")))?;
    let format = form.response_format.unwrap_or_else(|| "json".into());
    if !["json", "text", "srt", "vtt", "verbose_json"].contains(&format.as_str()) {
        return Err(OaiError::invalid(
            format!("response_format {format:?}: use json, text, srt, verbose_json or vtt"),
            Some("response_format"),
        ));
    }
    let request = transcription::Request {
        model,
        audio: file.data,
        filename: file.filename,
        options: ayush_models::whisper::Options {
            language: form.language,
            prompt: form.prompt,
            temperature: form.temperature,
        },
    };
    let heard = transcription::transcribe(&state, &who.actor(), "v1.transcriptions", request).await?;
    let t = &heard.transcript;
    let mut response = ok_with(&heard.headers);
    let plain = "text/plain; charset=utf-8";
    Ok(match format.as_str() {
        "text" => response.content_type(plain).body(t.text() + "\n"),
        "srt" => response.content_type(plain).body(formats::srt(t)),
        "vtt" => response.content_type("text/vtt; charset=utf-8").body(formats::vtt(t)),
        "verbose_json" => response.json(formats::verbose_json(t)),
        _ => response.json(json!({"text": t.text(), "usage": formats::usage(t)})),
    })
}

/// What `POST /v1/audio/speech` takes (fields OpenAI defines that Ayush does not use, such as
/// `stream_format`, are read and left).
#[derive(Deserialize)]
struct SpeechBody {
    model: String,
    input: String,
    voice: String,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f64>,
    #[serde(default)]
    instructions: Option<String>,
}

/// `POST /v1/audio/speech`: the audio itself, in the format asked for (mp3 unless told).
async fn speech(
    state: web::Data<AppState>,
    Caller(who): Caller,
    req: HttpRequest,
    OaiJson(body): OaiJson<SpeechBody>,
) -> Result<HttpResponse, OaiError> {
    use ayush_models::provider::AudioFormat;
    // The chat's Read aloud calls this with the session.
    crate::http::ui::check_csrf_header(&who, &req)?;
    let name = body.response_format.as_deref().unwrap_or("mp3");
    let format = AudioFormat::parse(name).ok_or_else(|| {
        OaiError::invalid(
            format!("response_format {name:?}: use mp3, opus, aac, flac, wav or pcm"),
            Some("response_format"),
        )
    })?;
    let ask = ayush_models::provider::SpeechRequest {
        model: body.model,
        input: body.input,
        voice: body.voice,
        format,
        speed: body.speed,
        instructions: body.instructions,
    };
    let spoken = crate::media::speak(&state, &who.actor(), "v1.speech", ask).await?;
    let mut response = ok_with(&spoken.headers);
    Ok(response.content_type(spoken.made.format.content_type()).body(spoken.made.audio))
}

/// What `POST /v1/images/generations` takes; `quality`, `style` and the like are read and
/// left to the provider's defaults.
#[derive(Deserialize)]
struct ImagesBody {
    model: String,
    prompt: String,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    response_format: Option<String>,
}

/// `POST /v1/images/generations`: the images inline, as base64 (`b64_json`); Ayush keeps no
/// public URL to hand out.
async fn images(
    state: web::Data<AppState>,
    Caller(who): Caller,
    req: HttpRequest,
    OaiJson(body): OaiJson<ImagesBody>,
) -> Result<HttpResponse, OaiError> {
    use base64::Engine as _;
    crate::http::ui::check_csrf_header(&who, &req)?;
    if let Some(f) = body.response_format.as_deref().filter(|f| *f != "b64_json") {
        return Err(OaiError::invalid(
            format!(
                "response_format {f:?}: this server answers with the images themselves; ask for b64_json (or leave it out)"
            ),
            Some("response_format"),
        ));
    }
    let ask = crate::media::DrawAsk {
        model: body.model,
        prompt: body.prompt,
        n: body.n.unwrap_or(1),
        size: body.size,
    };
    let drawn = crate::media::draw(&state, &who.actor(), "v1.images", ask).await?;
    let data: Vec<Value> = drawn
        .made
        .iter()
        .map(|i| {
            let mut item = json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(&i.bytes)});
            if let Some(p) = &i.revised_prompt {
                item["revised_prompt"] = json!(p);
            }
            item
        })
        .collect();
    let mut response = ok_with(&drawn.headers);
    let format = drawn.made.first().map_or("png", |i| i.format.extension());
    Ok(response.json(json!({
        "created": state.clock.now(),
        "data": data,
        "output_format": if format == "jpg" { "jpeg" } else { format },
    })))
}

/// A 200 answer carrying the rate-limit headers an admission gave.
fn ok_with(headers: &[(&'static str, String)]) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    for (name, value) in headers {
        response.insert_header((*name, value.as_str()));
    }
    response
}

/// The fields of a transcription form, each at most once.
#[derive(Default)]
struct TranscriptionForm {
    file: Option<crate::http::multipart::Part>,
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    response_format: Option<String>,
    temperature: Option<f64>,
}

impl TranscriptionForm {
    fn take(&mut self, part: crate::http::multipart::Part) -> Result<(), OaiError> {
        let text = |p: &crate::http::multipart::Part| -> Result<String, OaiError> {
            p.text().map(|t| t.trim().to_string()).map_err(|m| OaiError::invalid(m, None))
        };
        match part.name.as_str() {
            "file" => self.file = Some(part),
            "model" => self.model = Some(text(&part)?),
            "language" => self.language = Some(text(&part)?).filter(|l| !l.is_empty()),
            "prompt" => self.prompt = Some(text(&part)?),
            "response_format" => self.response_format = Some(text(&part)?),
            "temperature" => {
                let t = text(&part)?;
                let parsed = t.parse::<f64>().ok().filter(|v| v.is_finite());
                let t = parsed.ok_or_else(|| {
                    OaiError::invalid(format!("temperature {t:?} is not a number"), Some("temperature"))
                })?;
                self.temperature = Some(t);
            }
            "timestamp_granularities[]" | "timestamp_granularities" => {
                let g = text(&part)?;
                if g != "segment" {
                    return Err(OaiError::invalid(
                        format!("timestamp_granularities {g:?}: this server gives segment timestamps only"),
                        Some("timestamp_granularities"),
                    ));
                }
            }
            "stream" if text(&part)? == "true" => {
                return Err(OaiError::invalid(
                    "streamed transcription is not offered; ask without stream",
                    Some("stream"),
                ));
            }
            // Fields later API versions add (chunking_strategy, include[]) change nothing here.
            _ => {}
        }
        Ok(())
    }
}

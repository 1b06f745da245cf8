//! A fake model vendor on loopback that speaks the three wire formats Ayush's providers use,
//! as their references document them: OpenAI Chat Completions (`/v1/chat/completions`,
//! `/v1/models`), Anthropic Messages (`/v1/messages`, `/v1/models` with `anthropic-version`)
//! and Gemini (`/v1beta/models/M:streamGenerateContent?alt=sse`, `/v1beta/models`). It streams
//! the way each vendor does, checks the key where each vendor carries it, and records every
//! request. What it answers depends on the model asked for:
//!
//! | model | answer |
//! | --- | --- |
//! | `echo` | "Echo: " and the last user message, a word per event, with usage |
//! | `count-N` | N pieces `w0 w1 …` as fast as it can (benchmarks) |
//! | `missing` | the vendor's "model not found" |
//! | `busy` | the vendor's rate-limit error |
//! | `huge` | the vendor's "context too long" |
//! | `broken` | one piece, then the vendor's error event mid-stream |
//! | `truncated` | one piece, then the connection closes |
//! | `stall` | nothing for 5 seconds |
//! | `moved` | a 307 redirect elsewhere |
//!
//! Speech and image vendors are in [`media`].

pub mod media;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// The key the fake accepts.
pub const KEY: &str = "sk-upstream-test-0123456789";

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    /// Whether this is Ayush asking for a chat's title after its first answer (by the title
    /// prompt's words), not a question someone asked.
    pub fn asks_for_title(&self) -> bool {
        self.body.to_string().contains("You name conversations")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Upstream {
    /// Without waiting, so the fake can also be dropped inside async tests.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Upstream {
    /// Starts the fake on a free loopback port, on `threads` worker threads of its own.
    pub fn start(threads: usize) -> Upstream {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("runtime");
        let requests = Arc::new(Mutex::new(Vec::new()));
        // Bound here, outside any runtime, so the fake also starts inside async tests.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake upstream");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("address");
        let seen = requests.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let _ = stream.set_nodelay(true);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, seen.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream { addr, requests, runtime: Some(runtime) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The OpenAI-format chat requests received so far, without the title requests.
    pub fn chats(&self) -> Vec<Recorded> {
        self.received("/chat/completions").into_iter().filter(|r| !r.asks_for_title()).collect()
    }

    /// Requests received so far for paths containing `part`.
    pub fn received(&self, part: &str) -> Vec<Recorded> {
        self.requests.lock().expect("requests").iter().filter(|r| r.path.contains(part)).cloned().collect()
    }
}

/// A body fed from a channel, so events go out as they are made.
struct Channel(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Channel {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

type Body = http_body_util::Either<Full<Bytes>, Channel>;

fn json_reply(status: u16, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(http_body_util::Either::Left(Full::new(Bytes::from(body.to_string()))))
        .expect("response")
}

#[derive(Clone, Copy, PartialEq)]
enum Vendor {
    OpenAi,
    Anthropic,
    Gemini,
}

/// The vendor's error body for a kind of failure.
fn vendor_error(vendor: Vendor, what: &str) -> Response<Body> {
    let (status, openai, anthropic, gemini) = match what {
        "key" => (
            401,
            ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
            "authentication_error",
            "UNAUTHENTICATED",
        ),
        "missing" => (
            404,
            ("invalid_request_error", "model_not_found", "The model `missing` does not exist."),
            "not_found_error",
            "NOT_FOUND",
        ),
        "busy" => (
            429,
            ("rate_limit_error", "rate_limit_exceeded", "Rate limit reached."),
            "rate_limit_error",
            "RESOURCE_EXHAUSTED",
        ),
        _ => (
            400,
            (
                "invalid_request_error",
                "context_length_exceeded",
                "This model's maximum context length is 8192 tokens.",
            ),
            "invalid_request_error",
            "INVALID_ARGUMENT",
        ),
    };
    match vendor {
        Vendor::OpenAi => json_reply(
            status,
            json!({"error": {"message": openai.2, "type": openai.0, "param": null, "code": openai.1}}),
        ),
        Vendor::Anthropic => {
            let message =
                if what == "huge" { "prompt is too long: 250000 tokens > 200000 maximum" } else { openai.2 };
            json_reply(status, json!({"type": "error", "error": {"type": anthropic, "message": message}}))
        }
        Vendor::Gemini => {
            let message = if what == "huge" {
                "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576)."
            } else {
                openai.2
            };
            json_reply(status, json!({"error": {"code": status, "message": message, "status": gemini}}))
        }
    }
}

fn key_ok(vendor: Vendor, req: &Recorded) -> bool {
    match vendor {
        Vendor::OpenAi => req.header("authorization") == Some(&format!("Bearer {KEY}")),
        Vendor::Anthropic => {
            req.header("x-api-key") == Some(KEY) && req.header("anthropic-version").is_some()
        }
        Vendor::Gemini => req.header("x-goog-api-key") == Some(KEY),
    }
}

fn last_user_text(vendor: Vendor, body: &Value) -> String {
    let list = match vendor {
        Vendor::Gemini => &body["contents"],
        _ => &body["messages"],
    };
    let last = list.as_array().and_then(|a| a.iter().rev().find(|m| m["role"] == "user"));
    match (vendor, last) {
        (Vendor::Gemini, Some(m)) => m["parts"][0]["text"].as_str().unwrap_or_default().to_string(),
        (_, Some(m)) => m["content"].as_str().unwrap_or_default().to_string(),
        _ => String::new(),
    }
}

/// The text of an OpenAI-format request's last message, when it is an answer to continue.
fn last_answer(body: &Value) -> Option<&str> {
    let last = body["messages"].as_array()?.last()?;
    if last["role"] == "assistant" { last["content"].as_str() } else { None }
}

/// One streamed piece, as the vendor frames it.
fn piece(vendor: Vendor, text: &str) -> String {
    match vendor {
        Vendor::OpenAi => format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        ),
        Vendor::Anthropic => format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}})
        ),
        Vendor::Gemini => format!(
            "data: {}\n\n",
            json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}]})
        ),
    }
}

fn opening(vendor: Vendor, prompt_tokens: usize) -> String {
    match vendor {
        Vendor::OpenAi => format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})
        ),
        Vendor::Anthropic => format!(
            "event: message_start\ndata: {}\n\nevent: content_block_start\ndata: {}\n\nevent: ping\ndata: {{\"type\": \"ping\"}}\n\n",
            json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": "m",
                   "stop_reason": null, "usage": {"input_tokens": prompt_tokens, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        ),
        Vendor::Gemini => String::new(),
    }
}

/// The end of an answer; `cut` where it stopped at its length limit.
fn closing(vendor: Vendor, prompt_tokens: usize, completion_tokens: usize, cut: bool) -> String {
    let reason = match (vendor, cut) {
        (Vendor::OpenAi, false) => "stop",
        (Vendor::OpenAi, true) => "length",
        (Vendor::Anthropic, false) => "end_turn",
        (Vendor::Anthropic, true) => "max_tokens",
        (Vendor::Gemini, false) => "STOP",
        (Vendor::Gemini, true) => "MAX_TOKENS",
    };
    match vendor {
        Vendor::OpenAi => format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}),
            json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [],
                   "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}})
        ),
        Vendor::Anthropic => format!(
            "event: content_block_stop\ndata: {}\n\nevent: message_delta\ndata: {}\n\nevent: message_stop\ndata: {}\n\n",
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null}, "usage": {"output_tokens": completion_tokens}}),
            json!({"type": "message_stop"})
        ),
        Vendor::Gemini => format!(
            "data: {}\n\n",
            json!({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": reason, "index": 0}],
                   "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": completion_tokens,
                                     "totalTokenCount": prompt_tokens + completion_tokens}})
        ),
    }
}

fn mid_stream_error(vendor: Vendor) -> String {
    match vendor {
        Vendor::OpenAi => format!(
            "data: {}\n\n",
            json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}})
        ),
        Vendor::Anthropic => format!(
            "event: error\ndata: {}\n\n",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        ),
        Vendor::Gemini => format!(
            "data: {}\n\n",
            json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
        ),
    }
}

/// Sends the parts, then ends the body (for `truncated`, before the answer is complete).
fn stream(tx: mpsc::Sender<Bytes>, parts: Vec<String>) {
    tokio::spawn(async move {
        for p in parts {
            if tx.send(Bytes::from(p)).await.is_err() {
                return;
            }
        }
    });
}

async fn handle(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Recorded>>>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let bytes = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    // A form (Ideogram's) is kept as its text.
    let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        if bytes.is_empty() { Value::Null } else { Value::String(String::from_utf8_lossy(&bytes).into()) }
    });
    let recorded = Recorded { method, path: path.clone(), headers, body };
    seen.lock().expect("requests").push(recorded.clone());
    if let Some(answer) = media::answer(&recorded).await {
        return Ok(answer);
    }

    let (vendor, model) = if path.starts_with("/v1/chat/completions") {
        (Vendor::OpenAi, recorded.body["model"].as_str().unwrap_or_default().to_string())
    } else if path.starts_with("/v1/messages") {
        (Vendor::Anthropic, recorded.body["model"].as_str().unwrap_or_default().to_string())
    } else if let Some(rest) = path.strip_prefix("/v1beta/models/") {
        let model = rest.split(':').next().unwrap_or_default().to_string();
        (Vendor::Gemini, model)
    } else if path.starts_with("/v1beta/models") {
        if !key_ok(Vendor::Gemini, &recorded) {
            return Ok(vendor_error(Vendor::Gemini, "key"));
        }
        let models: Vec<Value> = ["echo", "count-16"]
            .iter()
            .map(
                |m| json!({"name": format!("models/{m}"), "supportedGenerationMethods": ["generateContent"]}),
            )
            .collect();
        return Ok(json_reply(200, json!({"models": models})));
    } else if path.starts_with("/v1/models") {
        let vendor =
            if recorded.header("anthropic-version").is_some() { Vendor::Anthropic } else { Vendor::OpenAi };
        if !key_ok(vendor, &recorded) {
            return Ok(vendor_error(vendor, "key"));
        }
        let data: Vec<Value> = ["echo", "count-16"]
            .iter()
            .map(|m| json!({"id": m, "object": "model", "type": "model"}))
            .collect();
        return Ok(json_reply(200, json!({"object": "list", "data": data})));
    } else {
        return Ok(json_reply(404, json!({"error": {"message": "no such endpoint"}})));
    };

    if !key_ok(vendor, &recorded) {
        return Ok(vendor_error(vendor, "key"));
    }
    match model.as_str() {
        "missing" | "busy" | "huge" => return Ok(vendor_error(vendor, &model)),
        "moved" => {
            return Ok(Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", "http://10.255.255.1/elsewhere")
                .body(http_body_util::Either::Left(Full::new(Bytes::new())))
                .expect("response"));
        }
        "stall" => tokio::time::sleep(Duration::from_secs(5)).await,
        _ => {}
    }
    let (tx, rx) = mpsc::channel(64);
    let prompt_tokens = 7;
    let mut parts = vec![opening(vendor, prompt_tokens)];
    match model.as_str() {
        "broken" => {
            parts.push(piece(vendor, "Partial"));
            parts.push(mid_stream_error(vendor));
            stream(tx, parts);
        }
        "truncated" => {
            parts.push(piece(vendor, "Partial"));
            stream(tx, parts);
        }
        m if m.starts_with("count-") => {
            let n: usize = m["count-".len()..].parse().unwrap_or(1);
            parts.extend((0..n).map(|i| piece(vendor, &format!("w{i} "))));
            parts.push(closing(vendor, prompt_tokens, n, false));
            stream(tx, parts);
        }
        // Counts 8 words on from those of an answer given last (to continue), and stops at its
        // length limit.
        "long" => {
            let start = last_answer(&recorded.body).map_or(0, |a| a.split_whitespace().count());
            parts.extend((start..start + 8).map(|i| piece(vendor, &format!(" w{i}"))));
            parts.push(closing(vendor, prompt_tokens, 8, true));
            stream(tx, parts);
        }
        _ => {
            let answer = format!("Echo: {}", last_user_text(vendor, &recorded.body));
            let words: Vec<String> = answer.split_inclusive(' ').map(str::to_string).collect();
            let n = words.len();
            parts.extend(words.iter().map(|w| piece(vendor, w)));
            parts.push(closing(vendor, prompt_tokens, n, false));
            stream(tx, parts);
        }
    }
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(http_body_util::Either::Right(Channel(rx)))
        .expect("response"))
}

//! Providers: whatever answers a chat. The local candle engine is one; remote ones speak a
//! vendor's wire format over HTTP: OpenAI's (and every server that copies it: vLLM, TGI,
//! llama.cpp server, Ollama, LM Studio, another Ayush), Anthropic's Messages API and Google's
//! Gemini API. All stream, all report usage, all hand back the same `Handle`, and all turn an
//! upstream's error into one of a few kinds with a message a person can act on.

mod anthropic;
mod gemini;
mod media;
mod openai;
mod transport;

pub use media::{AudioFormat, Image, ImageFormat, ImageRequest, Purpose, Speech, SpeechRequest, is_token};

use crate::ModelError;
use crate::engine::{Event, Handle};
use crate::model::{Completion, FinishReason, Usage};
use crate::sampling::GenerateParams;
use crate::template::ChatMessage;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use transport::{SendError, SseDecoder, SseEvent, Transport};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that answers chats (speech and images are asked of a [`Remote`] directly: only
/// remote providers make them).
pub trait Provider: Send + Sync {
    /// Starts a chat with `model`; its events come through the handle, which cancels the
    /// request when dropped.
    fn chat(
        &self,
        model: &str,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> Result<Handle, ModelError>;

    /// The models the provider offers, as it names them.
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<String>, ModelError>>;
}

/// Where outbound connections are allowed: resolves `host:port` to the addresses that may be
/// connected to, or says why not. `what` names the provider in a refusal.
pub trait Gate: Send + Sync {
    fn resolve(&self, what: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, String>;
}

/// No policy: whatever the name resolves to.
pub struct OpenGate;

impl Gate for OpenGate {
    fn resolve(&self, _what: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        use std::net::ToSocketAddrs;
        (host, port).to_socket_addrs().map(|a| a.collect()).map_err(|e| format!("cannot resolve {host}: {e}"))
    }
}

/// The wire formats a remote provider may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OpenAi,
    Anthropic,
    Gemini,
    /// ElevenLabs: speech only.
    ElevenLabs,
    /// Black Forest Labs (Flux): images only.
    Bfl,
    /// Ideogram: images only.
    Ideogram,
}

impl Kind {
    pub const ALL: [Kind; 6] =
        [Kind::OpenAi, Kind::Anthropic, Kind::Gemini, Kind::ElevenLabs, Kind::Bfl, Kind::Ideogram];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
            Kind::Gemini => "gemini",
            Kind::ElevenLabs => "elevenlabs",
            Kind::Bfl => "bfl",
            Kind::Ideogram => "ideogram",
        }
    }

    /// Whether the vendor's API does what models of `purpose` are for.
    pub fn offers(self, purpose: Purpose) -> bool {
        match self {
            Kind::OpenAi => true,
            Kind::Anthropic | Kind::Gemini => purpose == Purpose::Chat,
            Kind::ElevenLabs => purpose == Purpose::Speech,
            Kind::Bfl | Kind::Ideogram => purpose == Purpose::Image,
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The vendor's own endpoint, for when an admin gives none.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Kind::OpenAi => "https://api.openai.com/v1",
            Kind::Anthropic => "https://api.anthropic.com",
            Kind::Gemini => "https://generativelanguage.googleapis.com",
            Kind::ElevenLabs => "https://api.elevenlabs.io",
            Kind::Bfl => "https://api.bfl.ai",
            Kind::Ideogram => "https://api.ideogram.ai",
        }
    }
}

/// What kind of failure an upstream reported, whatever its vendor calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    RateLimited,
    BadKey,
    ModelNotFound,
    ContextTooLong,
    BadRequest,
    Timeout,
    Unreachable,
    /// The egress policy refused the connection.
    Refused,
    /// The upstream failed (5xx, overloaded) or answered something we cannot read.
    Failed,
}

impl UpstreamKind {
    /// A message a user or admin can act on; `detail` is the upstream's own words, shortened.
    fn message(self, provider: &str, detail: &str) -> String {
        let what = match self {
            UpstreamKind::RateLimited => format!("{provider} is rate limiting requests; try again shortly"),
            UpstreamKind::BadKey => {
                format!(
                    "{provider} refused the API key Ayush holds for it; an admin must update the provider's key"
                )
            }
            UpstreamKind::ModelNotFound => {
                format!("{provider} does not offer this model (or not to this key)")
            }
            UpstreamKind::ContextTooLong => {
                format!("the conversation is too long for the model's context window at {provider}")
            }
            UpstreamKind::BadRequest => format!("{provider} refused the request"),
            UpstreamKind::Timeout => format!("{provider} did not answer in time"),
            UpstreamKind::Unreachable => format!("{provider} cannot be reached"),
            UpstreamKind::Refused => format!("the egress policy does not allow connections to {provider}"),
            UpstreamKind::Failed => format!("{provider} failed to answer"),
        };
        if detail.is_empty() { what } else { format!("{what} ({detail})") }
    }
}

/// The upstream's words, on one line and short enough for a message.
fn shorten(detail: &str) -> String {
    let line: String = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= 300 {
        line
    } else {
        format!("{}…", line.chars().take(300).collect::<String>())
    }
}

fn upstream(kind: UpstreamKind, provider: &str, detail: &str) -> ModelError {
    ModelError::Upstream { kind, message: kind.message(provider, &shorten(detail)) }
}

/// How an upstream is reached.
#[derive(Clone)]
pub struct RemoteSpec {
    /// The provider's name in Ayush, used in messages.
    pub name: String,
    pub kind: Kind,
    /// The API's base URL, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    pub api_key: Option<String>,
    /// How long the upstream may take to start answering, and to send each next piece.
    pub timeout: Duration,
}

impl std::fmt::Debug for RemoteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("RemoteSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "…"))
            .finish()
    }
}

/// Checks a base URL: https (plain http only to this machine, where nothing crosses a
/// network), a host, no credentials, query or fragment.
pub fn check_base_url(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if is_loopback_host(host) => {}
        Some("http") => {
            return Err(format!(
                "{url:?}: plain http:// is only for this machine (localhost, 127.0.0.1, ::1); use https:// so \
                 the API key and the chats are encrypted on the way"
            ));
        }
        _ => return Err(format!("{url:?}: the base URL must start with https:// (or http:// to localhost)")),
    }
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!("{url:?}: put the API key in the key field, not in the URL"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("{url:?}: the base URL takes no query or fragment"));
    }
    Ok(())
}

/// A request as one vendor shapes it.
pub(crate) struct WireRequest {
    pub path: String,
    pub body: Value,
}

/// Text and the end of an answer, as read from one vendor's stream.
#[derive(Default)]
pub(crate) struct Progress {
    pub text: String,
    pub usage: Usage,
    pub finish: Option<FinishReason>,
    /// The stream said it is over (the body may still be open).
    pub done: bool,
}

/// One vendor's wire format.
pub(crate) trait Wire: Send + Sync + 'static {
    /// Headers that carry the key and the API version.
    fn headers(&self, key: Option<&str>) -> Vec<(&'static str, String)>;
    fn chat_request(&self, model: &str, messages: &[ChatMessage], params: &GenerateParams) -> WireRequest;
    /// Reads one event; returns the text it adds. An error event is an `Err`.
    fn on_event(
        &self,
        provider: &str,
        event: &SseEvent,
        progress: &mut Progress,
    ) -> Result<String, ModelError>;
    /// What an error status and body mean.
    fn error_kind(&self, status: u16, body: &Value) -> UpstreamKind;
    /// The human part of an error body.
    fn error_detail(&self, body: &Value) -> String;
    fn models_path(&self) -> String;
    fn parse_models(&self, body: &Value) -> Vec<String>;
}

/// One event's data as JSON.
pub(crate) fn event_json(provider: &str, event: &SseEvent) -> Result<Value, ModelError> {
    serde_json::from_str(&event.data)
        .map_err(|e| upstream(UpstreamKind::Failed, provider, &format!("a stream event is not JSON: {e}")))
}

/// For vendors that keep system text apart and want roles to alternate: the system messages
/// joined, and the rest as (role, text) turns where neighbours with the same role are joined.
/// The assistant's role takes the vendor's name for it.
pub(crate) fn alternating(
    messages: &[ChatMessage],
    assistant: &str,
) -> (Option<String>, Vec<(String, String)>) {
    let system: Vec<&str> =
        messages.iter().filter(|m| m.role == "system").map(|m| m.content.as_str()).collect();
    let mut turns: Vec<(String, String)> = Vec::new();
    for m in messages.iter().filter(|m| m.role != "system") {
        let role = if m.role == "assistant" { assistant } else { "user" };
        match turns.last_mut() {
            Some((r, text)) if r == role => {
                text.push_str("\n\n");
                text.push_str(&m.content);
            }
            _ => turns.push((role.to_string(), m.content.clone())),
        }
    }
    ((!system.is_empty()).then(|| system.join("\n\n")), turns)
}

/// Error-body fields most vendors share: `{"error": {"message": …}}`.
pub(crate) fn error_message(body: &Value) -> String {
    body.pointer("/error/message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| match body {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// What an HTTP status means when the body says nothing more specific.
pub(crate) fn kind_for_status(status: u16) -> UpstreamKind {
    match status {
        401 | 403 => UpstreamKind::BadKey,
        404 => UpstreamKind::ModelNotFound,
        408 | 504 => UpstreamKind::Timeout,
        413 => UpstreamKind::ContextTooLong,
        429 => UpstreamKind::RateLimited,
        400..=499 => UpstreamKind::BadRequest,
        _ => UpstreamKind::Failed,
    }
}

/// A provider reached over HTTP.
#[derive(Clone)]
pub struct Remote {
    spec: RemoteSpec,
    /// How it chats; none for vendors that only speak or draw.
    wire: Option<Arc<dyn Wire>>,
    transport: Transport,
}

/// Error bodies and model lists larger than this are cut.
pub(crate) const SMALL_BODY: usize = 1 << 20;

impl Remote {
    pub fn new(
        spec: RemoteSpec,
        gate: Arc<dyn Gate>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Remote, String> {
        check_base_url(&spec.base_url)?;
        let wire: Option<Arc<dyn Wire>> = match spec.kind {
            Kind::OpenAi => Some(Arc::new(openai::OpenAi)),
            Kind::Anthropic => Some(Arc::new(anthropic::Anthropic)),
            Kind::Gemini => Some(Arc::new(gemini::Gemini)),
            Kind::ElevenLabs | Kind::Bfl | Kind::Ideogram => None,
        };
        let transport = Transport::new(&format!("provider {}", spec.name), gate, tls, spec.timeout);
        Ok(Remote { spec, wire, transport })
    }

    pub fn spec(&self) -> &RemoteSpec {
        &self.spec
    }

    /// The headers that carry the key (and an API version) for this vendor.
    fn auth_headers(&self) -> Vec<(&'static str, String)> {
        let key = self.spec.api_key.as_deref();
        match &self.wire {
            Some(wire) => wire.headers(key),
            None => media::key_headers(self.spec.kind, key),
        }
    }

    fn wire(&self) -> Result<&Arc<dyn Wire>, ModelError> {
        self.wire.as_ref().ok_or_else(|| {
            ModelError::BadRequest(format!("{} ({}) does not chat", self.spec.name, self.spec.kind.as_str()))
        })
    }

    fn request(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Request<Full<Bytes>>, ModelError> {
        let url = format!("{}{path}", self.spec.base_url.trim_end_matches('/'));
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("accept", "application/json, text/event-stream");
        for (name, value) in self.auth_headers() {
            builder = builder.header(name, value);
        }
        let bytes = match body {
            Some(b) => {
                builder = builder.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(b).map_err(|e| ModelError::Inference(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        builder.body(Full::new(bytes)).map_err(|e| {
            upstream(
                UpstreamKind::BadRequest,
                &self.spec.name,
                &format!("building the request to {url}: {e}"),
            )
        })
    }

    fn send_error(&self, e: SendError) -> ModelError {
        match e {
            SendError::Refused(m) => upstream(UpstreamKind::Refused, &self.spec.name, &m),
            SendError::Unreachable(m) => upstream(UpstreamKind::Unreachable, &self.spec.name, &m),
            SendError::Timeout => upstream(
                UpstreamKind::Timeout,
                &self.spec.name,
                &format!("nothing for {} s", self.transport.timeout.as_secs()),
            ),
        }
    }

    /// Sends a request; a non-2xx answer becomes the error it means.
    async fn call(&self, request: hyper::Request<Full<Bytes>>) -> Result<hyper::body::Incoming, ModelError> {
        let response = self.transport.send(request).await.map_err(|e| self.send_error(e))?;
        let status = response.status();
        let location = response.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string);
        let mut body = response.into_body();
        if status.is_success() {
            return Ok(body);
        }
        if status.is_redirection() {
            let to = location.unwrap_or_default();
            return Err(upstream(
                UpstreamKind::Failed,
                &self.spec.name,
                &format!(
                    "it answered with a redirect to {to:?}, which Ayush does not follow: configure the final URL"
                ),
            ));
        }
        let bytes = self.transport.read_all(&mut body, SMALL_BODY).await.unwrap_or_default();
        let json: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        let (kind, detail) = match &self.wire {
            Some(wire) => (wire.error_kind(status.as_u16(), &json), wire.error_detail(&json)),
            None => (kind_for_status(status.as_u16()), media::error_detail(&json)),
        };
        let detail = if detail.is_empty() {
            format!("HTTP {}", status.as_u16())
        } else {
            format!("HTTP {}: {detail}", status.as_u16())
        };
        Err(upstream(kind, &self.spec.name, &detail))
    }
}

impl Provider for Remote {
    fn chat(
        &self,
        model: &str,
        messages: Vec<ChatMessage>,
        params: GenerateParams,
    ) -> Result<Handle, ModelError> {
        params.validate().map_err(ModelError::BadRequest)?;
        let wire_request = self.wire()?.chat_request(model, &messages, &params);
        let request = self.request(hyper::Method::POST, &wire_request.path, Some(&wire_request.body))?;
        let (handle, events, cancel) = Handle::channel();
        let this = self.clone();
        tokio::spawn(async move {
            let closed = events.clone();
            let result = tokio::select! {
                r = this.stream(request, &events, &cancel) => r,
                // The client went away: dropping the request closes the upstream connection.
                _ = closed.closed() => return,
            };
            let _ = events.send(match result {
                Ok(done) => Event::Done(done),
                Err(e) => Event::Failed(e),
            });
        });
        Ok(handle)
    }

    fn list_models(&self) -> BoxFuture<'_, Result<Vec<String>, ModelError>> {
        Box::pin(async move {
            let wire = match (self.spec.kind, &self.wire) {
                (_, Some(wire)) => wire,
                (Kind::ElevenLabs, None) => return self.elevenlabs_models().await,
                (kind, None) => {
                    return Err(ModelError::BadRequest(format!(
                        "{} ({}) publishes no list of models to test the connection with; draw an image to check its key",
                        self.spec.name,
                        kind.as_str()
                    )));
                }
            };
            let request = self.request(hyper::Method::GET, &wire.models_path(), None)?;
            let mut body = self.call(request).await?;
            let bytes =
                self.transport.read_all(&mut body, SMALL_BODY).await.map_err(|e| self.send_error(e))?;
            let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
                upstream(UpstreamKind::Failed, &self.spec.name, &format!("the model list is not JSON: {e}"))
            })?;
            Ok(wire.parse_models(&json))
        })
    }
}

impl Remote {
    async fn stream(
        &self,
        request: hyper::Request<Full<Bytes>>,
        events: &tokio::sync::mpsc::UnboundedSender<Event>,
        cancel: &AtomicBool,
    ) -> Result<Completion, ModelError> {
        let started = Instant::now();
        let mut body = self.call(request).await?;
        let mut decoder = SseDecoder::default();
        let mut progress = Progress::default();
        let mut first_token: Option<Instant> = None;
        let mut batch = Vec::new();
        let mut ended = false;
        while !progress.done {
            match self.transport.next_chunk(&mut body).await {
                Ok(Some(bytes)) => decoder
                    .feed(&bytes, &mut batch)
                    .map_err(|m| upstream(UpstreamKind::Failed, &self.spec.name, &m))?,
                Ok(None) => {
                    decoder.finish(&mut batch);
                    ended = true;
                }
                Err(e) => return Err(self.send_error(e)),
            }
            for event in batch.drain(..) {
                let text = self.wire()?.on_event(&self.spec.name, &event, &mut progress)?;
                if !text.is_empty() {
                    first_token.get_or_insert_with(Instant::now);
                    progress.text.push_str(&text);
                    let _ = events.send(Event::Token(text));
                }
                if progress.done {
                    break;
                }
            }
            if ended {
                break;
            }
            if cancel.load(Ordering::Relaxed) {
                // Stopped by the client: what came so far is the answer.
                progress.finish = Some(FinishReason::Cancelled);
                break;
            }
        }
        let Some(finish) = progress.finish else {
            return Err(upstream(
                UpstreamKind::Failed,
                &self.spec.name,
                "the stream ended before the answer was complete",
            ));
        };
        Ok(Completion {
            text: progress.text,
            finish,
            usage: progress.usage,
            prompt_ms: first_token.unwrap_or_else(Instant::now).duration_since(started).as_millis() as u64,
            total_ms: started.elapsed().as_millis() as u64,
        })
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The scheme, host and port a base URL reaches, lowercased, with the scheme's default port
/// filled in: two URLs with the same origin reach the same server.
pub fn origin_of(url: &str) -> Option<(String, String, u16)> {
    let uri: hyper::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
    Some((scheme, uri.host()?.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert!(check_base_url("https://api.openai.com/v1").is_ok());
        assert!(check_base_url("http://127.0.0.1:8080/v1/").is_ok());
        assert!(check_base_url("http://localhost:11434/v1").is_ok());
        assert!(check_base_url("http://[::1]:8080/v1").is_ok());
        let plain = check_base_url("http://10.0.0.5:8080/v1").unwrap_err();
        assert!(plain.contains("only for this machine"), "{plain}");
        assert!(check_base_url("http://127.0.0.1.evil.example/v1").is_err());
        assert!(check_base_url("ftp://x/").unwrap_err().contains("https://"));
        assert_eq!(origin_of("https://API.example.com/v1"), origin_of("https://api.example.com:443/other"));
        assert_ne!(origin_of("https://api.example.com/v1"), origin_of("https://api.example.com:8443/v1"));
        assert_ne!(origin_of("https://api.example.com/v1"), origin_of("https://evil.example/v1"));
        assert!(check_base_url("https://user:pw@x/").unwrap_err().contains("key field"));
        assert!(check_base_url("https://x/v1?key=1").unwrap_err().contains("no query"));
        assert!(check_base_url("not a url").is_err());
    }

    #[test]
    fn errors_say_what_to_do_and_keep_the_upstreams_words_short() {
        let e = upstream(UpstreamKind::BadKey, "openai", "Incorrect API key provided: sk-…\n\n  see docs");
        assert_eq!(
            e.to_string(),
            "openai refused the API key Ayush holds for it; an admin must update the provider's key (Incorrect API key provided: sk-… see docs)"
        );
        let long = "x".repeat(1000);
        assert!(upstream(UpstreamKind::Failed, "p", &long).to_string().len() < 400);
    }
}

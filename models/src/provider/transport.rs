//! HTTP/1.1 to an upstream, through a connector of our own: the host is resolved by the
//! `Gate` (the server's egress policy), and the connection goes to the addresses it returned,
//! so neither a second DNS answer nor a redirect (never followed) can reach another address.
//! Connections are pooled per host. Every wait is bounded: connecting, the response head, and
//! each gap between pieces of a streamed body.

use super::Gate;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain or TLS connection to an upstream.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Connector {
    /// Names the provider in the gate's refusals.
    what: String,
    gate: Arc<dyn Gate>,
    tls: Arc<rustls::ClientConfig>,
}

/// Why a connection could not be made, kept apart so that a policy refusal is reported as one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

async fn connect_any(addrs: &[SocketAddr]) -> Result<TcpStream, ConnectError> {
    let mut last = String::from("the name resolved to no address");
    for addr in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: no answer in {} s", CONNECT_TIMEOUT.as_secs()),
        }
    }
    Err(ConnectError::Failed(last))
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| ConnectError::Failed(format!("{uri} names no host")))?;
            let host = host.trim_matches(['[', ']']).to_string();
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let (gate, what, h) = (this.gate.clone(), this.what.clone(), host.clone());
            // Resolution may block (getaddrinfo) and the gate may record a refusal.
            let addrs = tokio::task::spawn_blocking(move || gate.resolve(&what, &h, port))
                .await
                .map_err(|e| ConnectError::Failed(e.to_string()))?
                .map_err(ConnectError::Refused)?;
            let tcp = connect_any(&addrs).await?;
            if !https {
                return Ok(TokioIo::new(Stream::Plain(tcp)));
            }
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| ConnectError::Failed(format!("{host}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(this.tls.clone());
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connect(name, tcp))
                .await
                .map_err(|_| {
                    ConnectError::Failed(format!("{host}: the TLS handshake did not finish in time"))
                })?
                .map_err(|e| ConnectError::Failed(format!("{host}: TLS: {e}")))?;
            Ok(TokioIo::new(Stream::Tls(Box::new(stream))))
        })
    }
}

/// How a request failed before a response arrived.
#[derive(Debug)]
pub(crate) enum SendError {
    Refused(String),
    Unreachable(String),
    Timeout,
}

#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<Connector, Full<Bytes>>,
    /// How long the response head, and then each piece of a streamed body, may take.
    pub(crate) timeout: Duration,
}

impl Transport {
    pub(crate) fn new(
        what: &str,
        gate: Arc<dyn Gate>,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Transport {
        let connector = Connector { what: what.to_string(), gate, tls };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(connector);
        Transport { client, timeout }
    }

    pub(crate) async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, SendError> {
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Err(_) => Err(SendError::Timeout),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                // The connector's own error, if that is where it failed.
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(err) = source {
                    if let Some(c) = err.downcast_ref::<ConnectError>() {
                        return Err(match c {
                            ConnectError::Refused(m) => SendError::Refused(m.clone()),
                            ConnectError::Failed(m) => SendError::Unreachable(m.clone()),
                        });
                    }
                    source = err.source();
                }
                Err(SendError::Unreachable(e.to_string()))
            }
        }
    }

    /// The next piece of a body: `Ok(None)` at its end.
    pub(crate) async fn next_chunk(&self, body: &mut Incoming) -> Result<Option<Bytes>, SendError> {
        loop {
            let frame = match tokio::time::timeout(self.timeout, body.frame()).await {
                Err(_) => return Err(SendError::Timeout),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(SendError::Unreachable(e.to_string())),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                return Ok(Some(data));
            }
        }
    }

    /// A whole body, refused past `limit` bytes (error bodies and model lists are small).
    pub(crate) async fn read_all(&self, body: &mut Incoming, limit: usize) -> Result<Vec<u8>, SendError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk(body).await? {
            if out.len() + chunk.len() > limit {
                out.extend_from_slice(&chunk[..limit - out.len()]);
                break;
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// One server-sent event: its `event:` name (empty when none) and its `data:` lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Splits a byte stream into server-sent events as the HTML standard defines them: lines end
/// in LF, CR LF or CR; a blank line ends an event; comments start with a colon.
#[derive(Default)]
pub(crate) struct SseDecoder {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

/// A single line longer than this is not an event stream.
const MAX_LINE: usize = 4 << 20;

impl SseDecoder {
    pub(crate) fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        let mut i = 0;
        while i < self.buf.len() {
            let b = self.buf[i];
            if b == b'\n' || b == b'\r' {
                // A CR at the very end may be followed by an LF not yet received.
                if b == b'\r' && i + 1 == self.buf.len() {
                    break;
                }
                let line = String::from_utf8_lossy(&self.buf[start..i]).into_owned();
                self.line(&line, out);
                i += if b == b'\r' && self.buf.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
                start = i;
                continue;
            }
            i += 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            return Err("the event stream has a line longer than 4 MiB".into());
        }
        Ok(())
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if !self.data.is_empty() {
                out.push(SseEvent { event: std::mem::take(&mut self.event), data: self.data.join("\n") });
                self.data.clear();
            }
            self.event.clear();
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_string(),
            "data" => self.data.push(value.to_string()),
            _ => {}
        }
    }

    /// What is left at the end of the body: an event not followed by a blank line still counts.
    pub(crate) fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.buf.is_empty() {
            let line = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
            self.line(line.trim_end_matches('\r'), out);
        }
        self.line("", out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(pieces: &[&[u8]]) -> Vec<SseEvent> {
        let mut d = SseDecoder::default();
        let mut out = Vec::new();
        for p in pieces {
            d.feed(p, &mut out).unwrap();
        }
        d.finish(&mut out);
        out
    }

    #[test]
    fn events_survive_any_split_and_any_line_ending() {
        let whole =
            b": comment\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata: one\ndata: two\n\ndata:tail";
        let expected = vec![
            SseEvent { event: "message_start".into(), data: "{\"a\":1}".into() },
            SseEvent { event: String::new(), data: "one\ntwo".into() },
            SseEvent { event: String::new(), data: "tail".into() },
        ];
        assert_eq!(decode(&[whole]), expected);
        for cut in 1..whole.len() {
            assert_eq!(decode(&[&whole[..cut], &whole[cut..]]), expected, "split at {cut}");
        }
        let bytewise: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(decode(&bytewise), expected);
        assert_eq!(decode(&[b"data: a\r\rdata: b\r\r"]).len(), 2, "bare CR line endings");
    }
}

//! Anthropic's Messages API: `POST {base}/v1/messages` with `stream: true`, answered by named
//! events (`message_start`, `content_block_delta`, `message_delta`, `message_stop`, `ping`,
//! `error`). System text goes in its own field, and roles must alternate, so neighbours with
//! the same role are joined.

use super::{Progress, SseEvent, UpstreamKind, Wire, WireRequest, kind_for_status, upstream};
use crate::ModelError;
use crate::model::FinishReason;
use crate::sampling::GenerateParams;
use crate::template::ChatMessage;
use serde_json::{Value, json};

pub(crate) struct Anthropic;

const API_VERSION: &str = "2023-06-01";

fn count(v: &Value, pointer: &str) -> Option<usize> {
    v.pointer(pointer).and_then(Value::as_u64).map(|n| n as usize)
}

fn kind_of(status: u16, body: &Value) -> UpstreamKind {
    let kind = body.pointer("/error/type").and_then(Value::as_str).unwrap_or_default();
    let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "authentication_error" | "permission_error" => UpstreamKind::BadKey,
        "not_found_error" => UpstreamKind::ModelNotFound,
        "rate_limit_error" => UpstreamKind::RateLimited,
        "request_too_large" => UpstreamKind::ContextTooLong,
        "invalid_request_error" if message.contains("prompt is too long") => UpstreamKind::ContextTooLong,
        "invalid_request_error" => UpstreamKind::BadRequest,
        "overloaded_error" | "api_error" => UpstreamKind::Failed,
        _ if status == 0 => UpstreamKind::Failed,
        _ => kind_for_status(status),
    }
}

impl Wire for Anthropic {
    fn headers(&self, key: Option<&str>) -> Vec<(&'static str, String)> {
        let mut h = vec![("anthropic-version", API_VERSION.to_string())];
        if let Some(k) = key {
            h.push(("x-api-key", k.to_string()));
        }
        h
    }

    fn chat_request(&self, model: &str, messages: &[ChatMessage], params: &GenerateParams) -> WireRequest {
        let (system, turns) = super::alternating(messages, "assistant");
        let messages: Vec<Value> = turns.iter().map(|(r, t)| json!({"role": r, "content": t})).collect();
        let mut body = json!({
            "model": model,
            "max_tokens": params.max_tokens,
            "messages": messages,
            "stream": true,
            // Anthropic's range is 0 to 1.
            "temperature": params.temperature.min(1.0),
        });
        if let Some(system) = system {
            body["system"] = json!(system);
        }
        if let Some(p) = params.top_p.filter(|p| *p < 1.0) {
            body["top_p"] = json!(p);
        }
        if let Some(k) = params.top_k {
            body["top_k"] = json!(k);
        }
        if !params.stop.is_empty() {
            body["stop_sequences"] = json!(params.stop);
        }
        WireRequest { path: "/v1/messages".into(), body }
    }

    fn on_event(
        &self,
        provider: &str,
        event: &SseEvent,
        progress: &mut Progress,
    ) -> Result<String, ModelError> {
        let data = super::event_json(provider, event)?;
        let kind = data["type"].as_str().unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                let usage = &data["message"]["usage"];
                let cached = count(usage, "/cache_read_input_tokens").unwrap_or(0);
                progress.usage.prompt_tokens = count(usage, "/input_tokens").unwrap_or(0) + cached;
                progress.usage.cached_prompt_tokens = cached;
                progress.usage.completion_tokens = count(usage, "/output_tokens").unwrap_or(0);
            }
            "content_block_delta" if data["delta"]["type"] == "text_delta" => {
                return Ok(data["delta"]["text"].as_str().unwrap_or_default().to_string());
            }
            "message_delta" => {
                if let Some(n) = count(&data, "/usage/output_tokens") {
                    progress.usage.completion_tokens = n;
                }
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    progress.finish =
                        Some(if reason == "max_tokens" { FinishReason::Length } else { FinishReason::Stop });
                }
            }
            "message_stop" => progress.done = true,
            "error" => return Err(upstream(kind_of(0, &data), provider, &super::error_message(&data))),
            _ => {}
        }
        Ok(String::new())
    }

    fn error_kind(&self, status: u16, body: &Value) -> UpstreamKind {
        kind_of(status, body)
    }

    fn error_detail(&self, body: &Value) -> String {
        super::error_message(body)
    }

    fn models_path(&self) -> String {
        "/v1/models?limit=1000".into()
    }

    fn parse_models(&self, body: &Value) -> Vec<String> {
        body["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_text_moves_out_and_roles_alternate() {
        let msgs = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "one"),
            ChatMessage::new("user", "two"),
            ChatMessage::new("assistant", "ok"),
            ChatMessage::new("user", "three"),
        ];
        let r = Anthropic.chat_request(
            "claude-x",
            &msgs,
            &GenerateParams { temperature: 1.5, ..Default::default() },
        );
        assert_eq!(r.body["system"], "Be brief.");
        assert_eq!(
            r.body["messages"],
            json!([{"role": "user", "content": "one\n\ntwo"}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "three"}])
        );
        assert_eq!(r.body["temperature"], json!(1.0));
    }

    #[test]
    fn a_stream_gives_text_finish_and_usage() {
        let events = [
            (
                "message_start",
                r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":12,"cache_read_input_tokens":3,"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            ),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}"#,
            ),
            ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":3}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ];
        let mut p = Progress::default();
        let mut text = String::new();
        for (name, data) in events {
            let e = SseEvent { event: name.into(), data: data.into() };
            text.push_str(&Anthropic.on_event("claude", &e, &mut p).unwrap());
        }
        assert_eq!(text, "Hi there");
        assert_eq!(p.finish, Some(FinishReason::Stop));
        assert_eq!(
            (p.usage.prompt_tokens, p.usage.cached_prompt_tokens, p.usage.completion_tokens),
            (15, 3, 3)
        );
        assert!(p.done);
        let overloaded = SseEvent {
            event: "error".into(),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#.into(),
        };
        let err = Anthropic.on_event("claude", &overloaded, &mut p).unwrap_err();
        assert_eq!(err.to_string(), "claude failed to answer (Overloaded)");
    }

    #[test]
    fn errors_are_sorted_by_what_they_mean() {
        let e = |t: &str, m: &str| json!({"type": "error", "error": {"type": t, "message": m}});
        assert_eq!(
            Anthropic.error_kind(401, &e("authentication_error", "invalid x-api-key")),
            UpstreamKind::BadKey
        );
        assert_eq!(Anthropic.error_kind(404, &e("not_found_error", "model: x")), UpstreamKind::ModelNotFound);
        assert_eq!(Anthropic.error_kind(429, &e("rate_limit_error", "slow down")), UpstreamKind::RateLimited);
        let long = e("invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum");
        assert_eq!(Anthropic.error_kind(400, &long), UpstreamKind::ContextTooLong);
        assert_eq!(Anthropic.error_kind(529, &e("overloaded_error", "Overloaded")), UpstreamKind::Failed);
    }
}
